"""Finding and describing assets: tags, the full-text index, search and metadata.

:class:`SearchMixin` holds the methods of :class:`~engine.assets.asset_manager.AssetManager`
that read and edit what is recorded about stored assets: :meth:`~SearchMixin.search_assets`
(SQLite FTS5 over name, description, tags and prompt, plus category, tag and metadata
filters), :meth:`~SearchMixin.get_asset_metadata` and
:meth:`~SearchMixin.update_asset_metadata`, and the helpers that keep an asset's tags and
its full-text index row up to date (also used when an asset is stored).

``AssetManager`` inherits the mixin; everything here is also importable from
:mod:`engine.assets.asset_manager`, as before the module was split.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import logging
import re
import time
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from engine.assets.errors import AssetPathError
from engine.assets.perceptual import to_unsigned
from engine.assets.project import Project
from engine.errors import ParameterError
from engine.security.api_keys import Permission, requires

if TYPE_CHECKING:
    from engine.assets.rate_limit import TokenBucket

__all__ = ["RANK_WINDOW", "SearchMixin"]

# The asset manager's logger, as before the split, so logging set up for it still applies.
log = logging.getLogger("engine.assets.asset_manager")

_UPDATE_KEYS = {
    "name",
    "description",
    "prompt",
    "category",
    "tags",
    "add_tags",
    "remove_tags",
    "metadata",
    "mime",
}
_FILTER_KEYS = {
    "mime",
    "min_size",
    "max_size",
    "created_after",
    "created_before",
    "metadata",
    "project_id",
    "limit",
}
# Also checked when an asset is stored (asset_manager.py), as are its tags (_clean_tags).
_CATEGORY = re.compile(r"^[a-z0-9][a-z0-9_-]{0,39}$")
# With a limit, full-text results are ranked among the newest this many matches.
RANK_WINDOW = 1000


def _iso(timestamp: float) -> str:
    return dt.datetime.fromtimestamp(timestamp, dt.UTC).isoformat(timespec="seconds")


def _timestamp(name: str, value: Any) -> float:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, dt.datetime):
        return value.timestamp()
    if isinstance(value, str):
        with contextlib.suppress(ValueError):
            parsed = dt.datetime.fromisoformat(value)
            if parsed.tzinfo is None:
                parsed = parsed.replace(tzinfo=dt.UTC)
            return parsed.timestamp()
    raise ParameterError(name, value, "a POSIX timestamp, a datetime or an ISO 8601 string")


def _clean_tags(name: str, tags: Any) -> list[str]:
    if tags is None:
        return []
    if isinstance(tags, str) or not isinstance(tags, Iterable):
        raise ParameterError(name, tags, "a list of strings")
    cleaned: list[str] = []
    for tag in tags:
        if not isinstance(tag, str) or not tag.strip():
            raise ParameterError(name, tags, "a list of non-empty strings")
        value = " ".join(tag.lower().split())
        if value not in cleaned:
            cleaned.append(value)
    return cleaned


def _fts_query(query: str) -> str:
    """Words of a free-text query as an FTS5 expression: every word, as a prefix."""
    words = re.findall(r"\w+", query.lower())
    return " AND ".join(f'"{word}"*' for word in words)


class SearchMixin:
    """The search, metadata and tag methods of :class:`~engine.assets.asset_manager.AssetManager`.

    Not used on its own: the methods rely on the asset manager's projects, rate limit and
    path checks (``project()``, ``_locate()``, ``_record_path()``) and on the encryption
    mixin's ``_cipher_for()`` and ``_open_fields()`` (:mod:`engine.assets.encryption`).
    """

    if TYPE_CHECKING:  # set by AssetManager.__init__
        _bucket: TokenBucket

    @staticmethod
    def _set_tags(project: Project, asset_id: int, tags: list[str], *, replace: bool) -> None:
        m = project.models
        if replace:
            m.AssetTag.delete().where(m.AssetTag.asset == asset_id).execute()
        for tag in tags:
            tag_row, _ = m.Tag.get_or_create(name=tag)
            m.AssetTag.insert(asset=asset_id, tag=tag_row.id).on_conflict_ignore().execute()

    @staticmethod
    def _tags_of(project: Project, asset_id: int) -> list[str]:
        rows = project.database.execute_sql(
            "SELECT tag.name FROM asset_tag JOIN tag ON tag.id = asset_tag.tag_id "
            "WHERE asset_tag.asset_id = ? ORDER BY tag.name",
            (asset_id,),
        ).fetchall()
        return [row[0] for row in rows]

    def _reindex(self, project: Project, asset_id: int) -> None:
        db = project.database
        row = db.execute_sql(
            "SELECT name, description, prompt FROM asset WHERE id = ?", (asset_id,)
        ).fetchone()
        db.execute_sql("DELETE FROM asset_fts WHERE rowid = ?", (asset_id,))
        if row is not None:
            from engine.security.crypto import is_sealed_text

            # Sealed fields are not indexed: the index would hold their clear text.
            description = "" if is_sealed_text(row[1]) else row[1]
            prompt = "" if is_sealed_text(row[2]) else row[2]
            db.execute_sql(
                "INSERT INTO asset_fts (rowid, name, description, tags, prompt) "
                "VALUES (?, ?, ?, ?, ?)",
                (asset_id, row[0], description, " ".join(self._tags_of(project, asset_id)), prompt),
            )

    # -- searching and reading ------------------------------------------------------

    def search_assets(
        self,
        query: str = "",
        category: str = "",
        tags: list[str] | None = None,
        **filters: Any,
    ) -> list[Path]:
        """Find assets by words (full-text, every word as a prefix), category, tags, filters.

        Parameters
        ----------
        query : str
            Words to find in name, description, tags or prompt (all must match); ranked
            by relevance (BM25).  Empty: every asset, newest first.
        category : str
            Only this category.
        tags : list of str
            Only assets with all these tags.
        **filters
            ``mime`` (exact, or a prefix ending in ``/``: ``"image/"``), ``min_size``,
            ``max_size`` (bytes), ``created_after``, ``created_before`` (timestamp,
            datetime or ISO string), ``metadata`` (dict: equal values at those keys),
            ``project_id``, ``limit``.  With a ``limit``, relevance is ranked among the
            newest :data:`RANK_WINDOW` (1000) matches, which keeps a search for a word
            that most assets contain fast; without one, among all of them.

        Returns
        -------
        list of Path
            The matching asset files.  A record whose path leads outside the project is
            left out with a warning (see :meth:`get_asset_metadata` for the error).
        """
        unknown = set(filters) - _FILTER_KEYS
        if unknown:
            raise ParameterError("filters", sorted(unknown), f"keys among {sorted(_FILTER_KEYS)}")
        if not isinstance(query, str):
            raise ParameterError("query", query, "a string")
        project = self.project(filters.get("project_id"))
        self._bucket.acquire()
        where: list[str] = []
        params: list[Any] = []
        match = _fts_query(query)
        if match:
            sql = "SELECT a.id, a.rel_path FROM asset_fts JOIN asset a ON a.id = asset_fts.rowid"
            where.append("asset_fts MATCH ?")
            params.append(match)
            order = "ORDER BY asset_fts.rank"
        else:
            sql = "SELECT a.id, a.rel_path FROM asset a"
            order = "ORDER BY a.created_at DESC, a.id DESC"
        if category:
            where.append("a.category = ?")
            params.append(category)
        wanted_tags = _clean_tags("tags", tags)
        if wanted_tags:
            marks = ", ".join("?" * len(wanted_tags))
            where.append(
                "a.id IN (SELECT asset_tag.asset_id FROM asset_tag JOIN tag ON tag.id = "
                f"asset_tag.tag_id WHERE tag.name IN ({marks}) GROUP BY asset_tag.asset_id "
                "HAVING count(*) = ?)"
            )
            params.extend([*wanted_tags, len(wanted_tags)])
        mime = filters.get("mime")
        if mime:
            if str(mime).endswith("/"):
                where.append("substr(a.mime, 1, ?) = ?")
                params.extend([len(mime), mime])
            else:
                where.append("a.mime = ?")
                params.append(mime)
        for key, op in (("min_size", ">="), ("max_size", "<=")):
            if filters.get(key) is not None:
                value = filters[key]
                if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                    raise ParameterError(key, value, "a number of bytes >= 0")
                where.append(f"a.size {op} ?")
                params.append(value)
        for key, op in (("created_after", ">="), ("created_before", "<")):
            if filters.get(key) is not None:
                where.append(f"a.created_at {op} ?")
                params.append(_timestamp(key, filters[key]))
        metadata = filters.get("metadata")
        # In an encrypted project the metadata is sealed: SQLite cannot look inside, so
        # the filter runs here on the opened metadata (a locked project raises).
        sealed_filter = bool(metadata) and self._cipher_for(project) is not None
        if metadata:
            if not isinstance(metadata, dict):
                raise ParameterError("metadata", metadata, "a dict of key: value")
            for key, value in metadata.items():
                if not isinstance(key, str) or not re.match(r"^[A-Za-z0-9_]+$", key):
                    raise ParameterError("metadata key", key, "letters, digits and '_'")
                if not sealed_filter:
                    where.append(f"json_extract(a.metadata, '$.{key}') = json_extract(?, '$')")
                    params.append(json.dumps(value))
        limit = filters.get("limit")
        if limit is not None and (not isinstance(limit, int) or limit < 1):
            raise ParameterError("limit", limit, "an integer >= 1")
        db = project.database
        where_sql = " WHERE " + " AND ".join(where) if where else ""
        if match and limit is not None and not sealed_filter:
            # BM25 costs a few microseconds per matching row; a word found in most of
            # 10,000 assets would cost tens of ms.  With a limit, rank only the newest
            # RANK_WINDOW matches (of the whole filter set): the cut-off row id comes
            # from a walk of the index in row-id order, which costs no ranking.
            cutoff = db.execute_sql(
                f"{sql}{where_sql} ORDER BY asset_fts.rowid DESC LIMIT 1 OFFSET ?",
                [*params, RANK_WINDOW - 1],
            ).fetchone()
            if cutoff is not None:
                where_sql += " AND asset_fts.rowid >= ?"
                params.append(cutoff[0])
        text = f"{sql}{where_sql} {order}"
        if limit is not None and not sealed_filter:
            text += f" LIMIT {int(limit)}"
        rows = db.execute_sql(text, params).fetchall()
        if sealed_filter:
            rows = self._filter_sealed_metadata(project, rows, metadata)[:limit]
        found: list[Path] = []
        for _, rel_path in rows:
            try:
                found.append(self._record_path(project, rel_path))
            except AssetPathError as err:
                log.warning("skipping a bad asset record: %s", err)
        return found

    def _filter_sealed_metadata(
        self, project: Project, rows: list[Any], wanted: dict[str, Any]
    ) -> list[Any]:
        """The ``(id, rel_path)`` rows whose opened metadata holds every wanted value."""
        m = project.models
        kept = []
        for row in rows:
            record = m.Asset.get_by_id(row[0])
            opened = self._open_fields(project, record)["metadata"]
            if all(key in opened and opened[key] == value for key, value in wanted.items()):
                kept.append(row)
        return kept

    @requires(Permission.READ, "get_asset_metadata")
    def get_asset_metadata(self, asset_path: Path | str) -> dict[str, Any]:
        """Everything recorded about an asset (given by its path or content hash).

        Raises
        ------
        AssetPathError
            The path is outside every open project's assets, or the record's own path
            leads outside its project.
        AssetError
            No such asset.
        """
        self._bucket.acquire()
        project, record = self._locate(asset_path)
        return self._describe(project, record)

    def _describe(self, project: Project, record: Any) -> dict[str, Any]:
        path = self._record_path(project, record.rel_path, follow_links=True)
        phash = record.perceptual_hash
        opened = self._open_fields(project, record)
        return {
            "path": path,
            "rel_path": record.rel_path,
            "project_id": project.id,
            "content_hash": record.content_hash,
            "name": record.name,
            "description": opened["description"],
            "prompt": opened["prompt"],
            "category": record.category,
            "mime": record.mime,
            "size": record.size,
            "tags": self._tags_of(project, record.id),
            "metadata": opened["metadata"],
            "perceptual_hash": None if phash is None else f"{to_unsigned(phash):016x}",
            "created_at": _iso(record.created_at),
            "modified_at": _iso(record.modified_at),
            "exists": path.exists(),
        }

    @requires(Permission.WRITE, "update_asset_metadata")
    def update_asset_metadata(self, asset_path: Path | str, updates: dict[str, Any]) -> bool:
        """Change an asset's description fields, tags or metadata.

        ``updates`` may hold ``name``, ``description``, ``prompt``, ``category``,
        ``mime``, ``tags`` (replaces them), ``add_tags``, ``remove_tags`` and ``metadata``
        (merged into the existing object; a key set to ``None`` is removed).  The file,
        its path and hash never change (content-addressed).

        Returns
        -------
        bool
            ``True`` once written.
        """
        if not isinstance(updates, dict):
            raise ParameterError("updates", updates, "a dict")
        unknown = set(updates) - _UPDATE_KEYS
        if unknown:
            raise ParameterError(
                "updates",
                sorted(unknown),
                f"keys among {sorted(_UPDATE_KEYS)} (the path and "
                "hash of a content-addressed asset cannot change)",
            )
        self._bucket.acquire()
        project, record = self._locate(asset_path)
        self._record_path(project, record.rel_path, follow_links=True)
        for key in ("name", "description", "prompt", "mime"):
            if key in updates and not isinstance(updates[key], str):
                raise ParameterError(key, updates[key], "a string")
        if "category" in updates and not _CATEGORY.match(str(updates["category"])):
            raise ParameterError("category", updates["category"], "lowercase letters, digits")
        new_metadata = dict(self._open_fields(project, record)["metadata"])
        if "metadata" in updates:
            if not isinstance(updates["metadata"], dict):
                raise ParameterError("metadata", updates["metadata"], "a dict")
            for key, value in updates["metadata"].items():
                if value is None:
                    new_metadata.pop(key, None)
                else:
                    new_metadata[key] = value
            json.dumps(new_metadata)
        replace_tags = _clean_tags("tags", updates["tags"]) if "tags" in updates else None
        add_tags = _clean_tags("add_tags", updates.get("add_tags"))
        remove_tags = _clean_tags("remove_tags", updates.get("remove_tags"))
        m = project.models
        now = time.time()
        with project.database.write():
            fields: dict[str, Any] = {
                key: updates[key]
                for key in ("name", "description", "prompt", "category", "mime")
                if key in updates
            }
            stored_metadata: dict[str, Any] = new_metadata
            cipher = self._cipher_for(project)
            if cipher is not None:
                for key in ("description", "prompt"):
                    if key in fields:
                        fields[key] = cipher.seal_text(fields[key], record.content_hash, key)
                stored_metadata = cipher.seal_metadata(new_metadata, record.content_hash)
            m.Asset.update(metadata=stored_metadata, modified_at=now, **fields).where(
                m.Asset.id == record.id
            ).execute()
            if replace_tags is not None:
                self._set_tags(project, record.id, replace_tags, replace=True)
            if add_tags:
                self._set_tags(project, record.id, add_tags, replace=False)
            if remove_tags:
                m.AssetTag.delete().where(
                    (m.AssetTag.asset == record.id)
                    & m.AssetTag.tag.in_(m.Tag.select(m.Tag.id).where(m.Tag.name.in_(remove_tags)))
                ).execute()
            self._reindex(project, record.id)
            m.AuditLog.create(
                timestamp=now,
                action="asset.update",
                target=record.content_hash,
                details={"keys": sorted(updates)},
            )
        return True
