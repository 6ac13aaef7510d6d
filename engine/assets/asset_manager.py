"""``AssetManager``: content-addressed asset files with metadata, tags and full-text search.

An asset is a file in a project's ``assets/`` folder named by the SHA-256 of its bytes
(``assets/ab/abcdef....png``) plus a row in the project database (name, description,
prompt, category, MIME type, size, tags, free-form metadata).  Storing the same bytes
twice gives the same file: nothing is duplicated.  Files are written atomically; the
database row is written after the file, so a process killed in between leaves at worst
an unrecorded file, which the next store of the same bytes adopts.

Search uses SQLite FTS5 over name, description, tags and prompt.

This module holds the class, its construction, the projects, path checks and storing;
the rest of its methods come from mixins named for what they do:
:mod:`engine.assets.encryption` (encryption at rest, :func:`project_audio_source`),
:mod:`engine.assets.search` (search, metadata, tags and the full-text index) and
:mod:`engine.assets.maintenance` (duplicates, statistics, quota, clean-up).  Every name
they took from this module is still importable from here.

Examples
--------
>>> manager = AssetManager(tmp / "workspace")
>>> project = manager.create_project("Night drive", tags=["synthwave"])
>>> path = manager.store_asset({"content": png_bytes, "name": "city at night",
...                             "category": "image", "tags": ["city"], "extension": "png"})
>>> manager.search_assets("city", category="image") == [path]
True
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import logging
import mimetypes
import os
import posixpath
import re
import time
import weakref
from pathlib import Path
from typing import Any

from engine.assets.encryption import (
    _MANAGER_OF,
    _SEALED_STATE,  # noqa: F401 (moved; still importable from here)
    EncryptionMixin,
    _starts_sealed,
    project_audio_source,
)
from engine.assets.errors import AssetPathError, QuotaExceededError
from engine.assets.maintenance import (
    MaintenanceMixin,
    _folder_bytes,  # noqa: F401 (moved; still importable from here)
    _size,  # noqa: F401
)
from engine.assets.perceptual import image_phash, to_signed
from engine.assets.project import PROJECT_FILE, Project
from engine.assets.rate_limit import TokenBucket
from engine.assets.search import (
    _CATEGORY,
    _FILTER_KEYS,  # noqa: F401 (moved; still importable from here)
    _UPDATE_KEYS,  # noqa: F401
    RANK_WINDOW,  # noqa: F401
    SearchMixin,
    _clean_tags,
    _fts_query,  # noqa: F401
    _iso,  # noqa: F401
    _timestamp,  # noqa: F401
)
from engine.atomic_files import atomic_path
from engine.config.sections import section_settings
from engine.errors import AssetError, MediaInputError, ParameterError
from engine.security.api_keys import LOCAL, Permission, Principal, requires
from engine.storage import DEFAULT_BUSY_TIMEOUT_S, DiskFullError

__all__ = ["DEFAULT_ASSET_CONFIG", "AssetManager", "project_audio_source"]

log = logging.getLogger(__name__)

DEFAULT_ASSET_CONFIG: dict[str, Any] = {
    # The API reference's quota and limit: storage, and asset operations a minute.
    "storage_limit_gb": 100.0,
    "asset_operations_per_minute": 1000,
    # pHash bits that may differ for two images to count as near-identical.
    "near_duplicate_distance": 8,
    "busy_timeout_s": DEFAULT_BUSY_TIMEOUT_S,
}

_ASSET_KEYS = {
    "content",
    "source_path",
    "path",
    "name",
    "description",
    "prompt",
    "category",
    "tags",
    "metadata",
    "mime",
    "extension",
}
_EXTENSION = re.compile(r"^[a-z0-9]{1,10}$")
_HASH = re.compile(r"^[0-9a-f]{64}$")
_CHUNK = 1 << 20


def _slug(name: str) -> str:
    slug = re.sub(r"[^A-Za-z0-9._-]+", "-", name.strip()).strip("-.")
    return slug[:60] or "project"


def _is_disk_full(err: OSError) -> bool:
    return err.errno in (errno.ENOSPC, errno.EDQUOT)


class AssetManager(EncryptionMixin, SearchMixin, MaintenanceMixin):
    """Projects' assets: store, search, describe, deduplicate, clean up.

    Parameters
    ----------
    base_dir : Path
        A project folder (opened at once), or a workspace folder in which
        :meth:`create_project` makes project folders.
    config : dict, optional
        Either the engine configuration (its ``assets`` table is used) or that table:
        ``storage_limit_gb``, ``asset_operations_per_minute`` (``None``: unlimited),
        ``near_duplicate_distance``, ``busy_timeout_s``.

    Notes
    -----
    Methods that take no ``project_id`` work on the current project: the one last
    created or opened.  Paths given to :meth:`get_asset_metadata` and
    :meth:`update_asset_metadata` find their own project.
    """

    def __init__(self, base_dir: Path | str, config: dict[str, Any] | None = None) -> None:
        self.base_dir = Path(base_dir).expanduser().absolute()
        self.config = self._validated_config(config or {})
        self._bucket = TokenBucket("asset_operations", self.config["asset_operations_per_minute"])
        self._projects: dict[str, Project] = {}
        self._current: Project | None = None
        self._ciphers: dict[str, Any] = {}  # project id -> ProjectCipher (encrypted projects)
        # Who calls (engine/security/api_keys.py): the local user unless APEXDirector
        # was given an API key.  Writes need "write", encryption "admin".
        self.principal: Principal = LOCAL
        if (self.base_dir / PROJECT_FILE).exists():
            self.open_project(self.base_dir)

    @staticmethod
    def _validated_config(config: dict[str, Any]) -> dict[str, Any]:
        merged = section_settings(config, "assets", DEFAULT_ASSET_CONFIG)
        limit = merged["storage_limit_gb"]
        if not isinstance(limit, int | float) or isinstance(limit, bool) or limit <= 0:
            raise ParameterError("storage_limit_gb", limit, "a number of GB > 0")
        distance = merged["near_duplicate_distance"]
        if not isinstance(distance, int) or not 0 <= distance <= 32:
            raise ParameterError("near_duplicate_distance", distance, "an integer 0..32")
        return merged

    # -- projects -------------------------------------------------------------------

    def create_project(
        self, name: str, description: str = "", tags: list[str] | None = None
    ) -> Project:
        """Create a project folder under ``base_dir`` (named after ``name``) and open it.

        Returns
        -------
        Project
            The new project, now the current one.
        """
        if not isinstance(name, str) or not name.strip():
            raise ParameterError("name", name, "a non-empty project name")
        folder = self.base_dir / _slug(name)
        suffix = 2
        while folder.exists():
            folder = self.base_dir / f"{_slug(name)}-{suffix}"
            suffix += 1
        project = Project.create(
            folder,
            name=name,
            description=description,
            tags=_clean_tags("tags", tags),
            busy_timeout_s=self.config["busy_timeout_s"],
        )
        self._projects[project.id] = project
        _MANAGER_OF[project] = weakref.ref(self)
        self._current = project
        return project

    def open_project(self, path: Path | str, *, recover: bool = False) -> Project:
        """Open an existing project folder and make it the current project."""
        project = Project.open(path, recover=recover, busy_timeout_s=self.config["busy_timeout_s"])
        existing = self._projects.get(project.id)
        if existing is not None:
            project.close(save=False)
            project = existing
        self._projects[project.id] = project
        _MANAGER_OF[project] = weakref.ref(self)
        self._current = project
        return project

    def project(self, project_id: str | None = None) -> Project:
        """The open project with this id (or folder name); the current one by default."""
        if project_id is None:
            if self._current is None:
                raise AssetError(
                    "no project is open; create one with create_project() or open one "
                    "(AssetManager(project_folder) opens it)",
                    operation="project",
                )
            return self._current
        for project in self._projects.values():
            if project_id in (project.id, project.path.name):
                return project
        raise ParameterError("project_id", project_id, f"one of {self._project_names()}")

    @property
    def projects(self) -> list[Project]:
        """The open projects."""
        return list(self._projects.values())

    def _project_names(self) -> list[str]:
        return [f"{p.id} ({p.path.name})" for p in self._projects.values()]

    def close(self) -> None:
        """Close every open project (saving unsaved project changes)."""
        for project in self._projects.values():
            project.close()
            _MANAGER_OF.pop(project, None)
        self._projects.clear()
        self._ciphers.clear()  # the keys are forgotten with the projects
        self._current = None

    def __enter__(self) -> AssetManager:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- paths ----------------------------------------------------------------------

    def _record_path(self, project: Project, rel_path: str, *, follow_links: bool = False) -> Path:
        """The absolute path of a record's file; refuses one that leads outside.

        The check is on the text of the stored path (relative, normalised, under
        ``assets/``), so searches pay no system call per result.  With ``follow_links``
        (when a file is about to be read or described) links are resolved too, so a
        symbolic link planted in ``assets/`` cannot lead outside either.
        """
        inside = (
            isinstance(rel_path, str)
            and rel_path.startswith("assets/")
            and "\\" not in rel_path
            and posixpath.normpath(rel_path) == rel_path
        )
        if inside and follow_links:
            resolved = (project.path / rel_path).resolve()
            inside = resolved.is_relative_to(project.assets_dir.resolve())
        if not inside:
            raise AssetPathError(
                f"the asset record {rel_path!r} in {project.path / 'apex.db'} points outside the "
                "project's assets folder; the database was edited by hand or is damaged. "
                "Restore it from backups/ or remove that record; nothing was read or changed",
                asset_path=Path(str(rel_path)),
                operation="resolve",
            )
        return project.path / rel_path

    def _locate(self, asset_path: Path | str) -> tuple[Project, Any]:
        """The project and record of an asset given by path (absolute or relative) or hash."""
        text = str(asset_path)
        if _HASH.match(text):
            for project in self._ordered_projects():
                record = project.models.Asset.get_or_none(project.models.Asset.content_hash == text)
                if record is not None:
                    return project, record
            raise AssetError(f"no asset with hash {text}", asset_path=Path(text), operation="find")
        path = Path(asset_path).expanduser()
        for project in self._ordered_projects():
            absolute = path if path.is_absolute() else project.path / path
            normal = Path(os.path.normpath(absolute))
            if not normal.is_relative_to(project.path):
                continue
            if not normal.is_relative_to(project.assets_dir):
                break
            rel = normal.relative_to(project.path).as_posix()
            record = project.models.Asset.get_or_none(project.models.Asset.rel_path == rel)
            if record is None:
                raise AssetError(
                    f"{normal} is not a stored asset of {project.name}; store it with "
                    "store_asset() first",
                    asset_path=normal,
                    operation="find",
                )
            return project, record
        raise AssetPathError(
            f"{path} is not inside the assets folder of an open project; give the path that "
            "store_asset() returned (or the asset's content hash)",
            asset_path=path,
            operation="find",
        )

    def _ordered_projects(self) -> list[Project]:
        ordered = list(self._projects.values())
        if self._current is not None:
            ordered.remove(self._current)
            ordered.insert(0, self._current)
        return ordered

    # -- storing --------------------------------------------------------------------

    @requires(Permission.WRITE, "store_asset")
    def store_asset(self, asset_data: dict[str, Any], project_id: str | None = None) -> Path:
        """Store an asset (bytes or a file to import) with its metadata.

        Parameters
        ----------
        asset_data : dict
            ``content`` (bytes) or ``source_path`` (a file to copy in); optional
            ``name``, ``description``, ``prompt``, ``category`` (default from the MIME
            type: image, audio, video, other), ``tags``, ``metadata`` (JSON object),
            ``mime`` and ``extension`` (guessed from the source name or content).
        project_id : str, optional
            The project (id or folder name); the current project by default.

        Returns
        -------
        Path
            The stored file, ``<project>/assets/ab/abcdef....ext``.  The same bytes
            stored again return the same path (new tags are added to the record).

        Raises
        ------
        AssetPathError
            ``source_path`` is a symlink to somewhere outside the project.
        MediaInputError
            ``source_path`` does not exist or is not a regular file.
        QuotaExceededError
            The asset would take the storage past ``storage_limit_gb``.
        DiskFullError
            The disk filled up; nothing was written (no partial or temporary file).
        RateLimitError
            More than ``asset_operations_per_minute`` operations this minute.
        """
        if not isinstance(asset_data, dict):
            raise ParameterError("asset_data", type(asset_data).__name__, "a dict")
        unknown = set(asset_data) - _ASSET_KEYS
        if unknown:
            raise ParameterError("asset_data", sorted(unknown), f"keys among {sorted(_ASSET_KEYS)}")
        project = self.project(project_id)
        self._bucket.acquire()
        source = asset_data.get("source_path", asset_data.get("path"))
        content = asset_data.get("content")
        if (source is None) == (content is None):
            raise ParameterError(
                "asset_data", sorted(asset_data), "exactly one of 'content' or 'source_path'"
            )
        if content is not None:
            if not isinstance(content, bytes | bytearray | memoryview):
                raise ParameterError("content", type(content).__name__, "bytes")
            data: bytes | None = bytes(content)
            size = len(data)
            digest = hashlib.sha256(data).hexdigest()
            source_path = None
        else:
            source_path = self._check_source(project, Path(source))
            data = None
            size = source_path.stat().st_size
            digest = _hash_file(source_path)
        if data is None and self._cipher_for(project) is not None:  # sealed from memory
            data = source_path.read_bytes()
            size, digest = len(data), hashlib.sha256(data).hexdigest()

        tags = _clean_tags("tags", asset_data.get("tags"))
        m = project.models
        existing = m.Asset.get_or_none(m.Asset.content_hash == digest)
        if existing is not None:
            target = self._record_path(project, existing.rel_path, follow_links=True)
            if not target.exists():  # the file was lost: put it back
                self._write_content(target, data, source_path, digest, project=project)
            if tags:
                with project.database.write():
                    self._set_tags(project, existing.id, tags, replace=False)
                    self._reindex(project, existing.id)
            return target

        mime = asset_data.get("mime") or self._guess_mime(source_path, data, asset_data)
        extension = self._extension(asset_data, source_path, mime)
        category = asset_data.get("category") or mime.split("/", 1)[0]
        if category not in ("image", "audio", "video", "text") and not asset_data.get("category"):
            category = "other"
        if not isinstance(category, str) or not _CATEGORY.match(category):
            raise ParameterError("category", category, "lowercase letters, digits, '-' or '_'")
        metadata = asset_data.get("metadata") or {}
        if not isinstance(metadata, dict):
            raise ParameterError("metadata", metadata, "a JSON object (dict)")
        json.dumps(metadata)
        self._check_quota(size)

        rel = f"assets/{digest[:2]}/{digest}.{extension}"
        target = project.path / rel
        written = False
        if not target.exists():  # else: a file of a killed store, same bytes by its name
            self._write_content(target, data, source_path, digest, project=project)
            written = True
        elif self._cipher_for(project) is not None and not _starts_sealed(target):
            # a clear leftover of a killed store in an encrypted project: seal it now
            self._write_content(target, data, source_path, digest, project=project)
        phash = None
        if mime.startswith("image/"):
            phash = image_phash(data if data is not None else target.read_bytes())
        now = time.time()
        name = asset_data.get("name") or (source_path.name if source_path else digest[:12])
        description = str(asset_data.get("description") or "")
        prompt = str(asset_data.get("prompt") or "")
        cipher = self._cipher_for(project)
        if cipher is not None:  # sensitive metadata is sealed too (docs/security.md)
            description = cipher.seal_text(description, digest, "description")
            prompt = cipher.seal_text(prompt, digest, "prompt")
            metadata = cipher.seal_metadata(metadata, digest)
        try:
            with project.database.write():
                record = m.Asset.create(
                    content_hash=digest,
                    rel_path=rel,
                    name=str(name),
                    description=description,
                    prompt=prompt,
                    category=category,
                    mime=mime,
                    size=size,
                    perceptual_hash=None if phash is None else to_signed(phash),
                    created_at=now,
                    modified_at=now,
                    metadata=metadata,
                )
                self._set_tags(project, record.id, tags, replace=True)
                self._reindex(project, record.id)
                m.AuditLog.create(
                    timestamp=now, action="asset.store", target=digest, details={"path": rel}
                )
        except BaseException:
            if written:
                with contextlib.suppress(OSError):
                    target.unlink()
            raise
        log.debug("stored %s (%d bytes) as %s", name, size, rel)
        return target

    def _check_source(self, project: Project, source: Path) -> Path:
        source = source.expanduser()
        if source.is_symlink():
            resolved = source.resolve()
            if not resolved.is_relative_to(project.path.resolve()):
                raise AssetPathError(
                    f"{source} is a symbolic link to {resolved}, outside the project; import "
                    "the file itself (give its real path) if you mean to copy it in",
                    asset_path=source,
                    operation="import",
                )
        if not source.exists():
            raise MediaInputError(source, "no such file; check the path")
        if not source.is_file():
            raise MediaInputError(source, "not a regular file; give one file to import")
        return source

    @staticmethod
    def _guess_mime(source: Path | None, data: bytes | None, asset_data: dict[str, Any]) -> str:
        if source is not None:
            guessed = mimetypes.guess_type(source.name)[0]
            if guessed:
                return guessed
        extension = asset_data.get("extension")
        if extension:
            guessed = mimetypes.guess_type(f"x.{extension}")[0]
            if guessed:
                return guessed
        head = data[:16] if data is not None else (source.open("rb").read(16) if source else b"")
        for magic, mime in (
            (b"\x89PNG", "image/png"),
            (b"\xff\xd8\xff", "image/jpeg"),
            (b"RIFF", "audio/wav"),
            (b"fLaC", "audio/flac"),
            (b"ID3", "audio/mpeg"),
        ):
            if head.startswith(magic):
                return mime
        if head[4:8] == b"ftyp":
            return "video/mp4"
        return "application/octet-stream"

    @staticmethod
    def _extension(asset_data: dict[str, Any], source: Path | None, mime: str) -> str:
        extension = asset_data.get("extension")
        if extension is None and source is not None and source.suffix:
            extension = source.suffix
        if extension is None:
            extension = (mimetypes.guess_extension(mime) or ".bin").lstrip(".")
        extension = str(extension).lower().lstrip(".")
        if not _EXTENSION.match(extension):
            raise ParameterError("extension", extension, "1-10 letters or digits")
        return extension

    def _write_content(
        self,
        target: Path,
        data: bytes | None,
        source: Path | None,
        digest: str,
        *,
        project: Project | None = None,
    ) -> None:
        cipher = None if project is None else self._cipher_for(project)
        if cipher is not None and data is not None:
            rel = target.relative_to(project.path).as_posix()  # type: ignore[union-attr]
            data = cipher.encrypt_asset(data, rel, digest)
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            with atomic_path(target) as tmp:
                if data is not None:
                    tmp.write_bytes(data)
                else:
                    assert source is not None
                    hasher = hashlib.sha256()
                    with source.open("rb") as src, tmp.open("wb") as dst:
                        while chunk := src.read(_CHUNK):
                            hasher.update(chunk)
                            dst.write(chunk)
                    if hasher.hexdigest() != digest:
                        raise AssetError(
                            f"{source} changed while it was being imported; import it again "
                            "once it is complete",
                            asset_path=source,
                            operation="import",
                        )
        except OSError as err:
            if _is_disk_full(err):
                raise DiskFullError(target, operation="store asset") from err
            raise AssetError(
                f"cannot write {target} ({err.strerror}); check the folder's permissions",
                asset_path=target,
                operation="store",
            ) from err

    def _check_quota(self, needed: int) -> None:
        limit = int(self.config["storage_limit_gb"] * 1024**3)
        used = self._used_bytes()
        if used + needed > limit:
            raise QuotaExceededError(used_bytes=used, limit_bytes=limit, needed_bytes=needed)

    def _used_bytes(self) -> int:
        total = 0
        for project in self._projects.values():
            total += int(
                project.database.execute_sql("SELECT total(size) FROM asset").fetchone()[0]
            )
        return total


def _hash_file(path: Path) -> str:
    hasher = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(_CHUNK):
            hasher.update(chunk)
    return hasher.hexdigest()
