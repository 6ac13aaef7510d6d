"""Looking after stored assets: duplicates, storage statistics, quota and clean-up.

:class:`MaintenanceMixin` holds the methods of
:class:`~engine.assets.asset_manager.AssetManager` that look over every open project
rather than one asset: :meth:`~MaintenanceMixin.find_duplicates` (identical bytes, or
images whose perceptual hashes are close), :meth:`~MaintenanceMixin.get_storage_statistics`,
:meth:`~MaintenanceMixin.get_quota_status` and :meth:`~MaintenanceMixin.cleanup_temp_files`
(the temporary files that killed writes leave).  numpy is imported when duplicates are
compared.

``AssetManager`` inherits the mixin; everything here is also importable from
:mod:`engine.assets.asset_manager`, as before the module was split.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from engine.assets.errors import AssetPathError
from engine.assets.perceptual import to_unsigned
from engine.assets.project import Project
from engine.errors import ParameterError
from engine.security.api_keys import Permission, requires

if TYPE_CHECKING:
    from engine.assets.rate_limit import TokenBucket

__all__ = ["MaintenanceMixin"]

# The asset manager's logger, as before the split, so logging set up for it still applies.
log = logging.getLogger("engine.assets.asset_manager")


class MaintenanceMixin:
    """The duplicate, statistics, quota and clean-up methods of
    :class:`~engine.assets.asset_manager.AssetManager`.

    Not used on its own: the methods rely on the asset manager's open projects, settings,
    rate limit, ``_record_path()`` and ``_used_bytes()``.
    """

    if TYPE_CHECKING:  # set by AssetManager.__init__
        config: dict[str, Any]
        _projects: dict[str, Project]
        _bucket: TokenBucket
        base_dir: Path

    # -- duplicates -----------------------------------------------------------------

    def find_duplicates(self, *, max_distance: int | None = None) -> list[list[Path]]:
        """Groups of duplicate assets across the open projects.

        Two assets are duplicates when their bytes are identical (same hash; within one
        project that never happens, stores are deduplicated) or, for images, when their
        perceptual hashes differ in at most ``max_distance`` of 64 bits
        (``near_duplicate_distance`` by default): a re-encoded or resized copy.

        Returns
        -------
        list of list of Path
            Each group sorted, groups sorted by their first path.
        """
        distance = self.config["near_duplicate_distance"] if max_distance is None else max_distance
        if not isinstance(distance, int) or not 0 <= distance <= 32:
            raise ParameterError("max_distance", distance, "an integer 0..32")
        entries: list[tuple[Path, str, int | None]] = []
        for project in self._projects.values():
            rows = project.database.execute_sql(
                "SELECT rel_path, content_hash, perceptual_hash FROM asset"
            ).fetchall()
            for rel_path, digest, phash in rows:
                try:
                    path = self._record_path(project, rel_path)
                except AssetPathError as err:
                    log.warning("skipping a bad asset record: %s", err)
                    continue
                entries.append((path, digest, None if phash is None else to_unsigned(phash)))
        parent = list(range(len(entries)))

        def find(i: int) -> int:
            while parent[i] != i:
                parent[i] = parent[parent[i]]
                i = parent[i]
            return i

        def union(i: int, j: int) -> None:
            a, b = find(i), find(j)
            if a != b:
                parent[max(a, b)] = min(a, b)

        first_of_hash: dict[str, int] = {}
        for index, (_, digest, _) in enumerate(entries):
            if digest in first_of_hash:
                union(first_of_hash[digest], index)
            else:
                first_of_hash[digest] = index
        hashed = [(i, p) for i, (_, _, p) in enumerate(entries) if p is not None]
        if len(hashed) > 1:
            import numpy as np

            values = np.array([p for _, p in hashed], dtype=np.uint64)
            bytes_view = values.view(np.uint8).reshape(-1, 8)
            popcount = np.array([bin(v).count("1") for v in range(256)], dtype=np.uint8)
            for row in range(len(hashed) - 1):
                rest = bytes_view[row + 1 :] ^ bytes_view[row]
                bits = popcount[rest].sum(axis=1)
                for offset in np.nonzero(bits <= distance)[0]:
                    union(hashed[row][0], hashed[row + 1 + int(offset)][0])
        groups: dict[int, list[Path]] = {}
        for index, (path, _, _) in enumerate(entries):
            groups.setdefault(find(index), []).append(path)
        return sorted(
            (sorted(group) for group in groups.values() if len(group) > 1), key=lambda g: g[0]
        )

    # -- statistics, quota, cleanup -------------------------------------------------

    def get_storage_statistics(self) -> dict[str, Any]:
        """Storage use of the open projects: assets by category and MIME type, folders, disk.

        Returns
        -------
        dict
            ``total_assets``, ``total_bytes``, ``by_category`` and ``by_mime``
            (``{name: {"count", "bytes"}}``), ``tags``, ``projects`` (per project: assets,
            bytes, database, renders, cache and backups bytes, temporary files), and
            ``disk`` (``total_bytes``, ``free_bytes`` of the first project's disk).
        """
        self._bucket.acquire()
        by_category: dict[str, dict[str, int]] = {}
        by_mime: dict[str, dict[str, int]] = {}
        projects: list[dict[str, Any]] = []
        total_assets = total_bytes = tag_count = 0
        for project in self._projects.values():
            db = project.database
            for column, table in (("category", by_category), ("mime", by_mime)):
                for name, count, size in db.execute_sql(
                    f"SELECT {column}, count(*), total(size) FROM asset GROUP BY {column}"
                ).fetchall():
                    entry = table.setdefault(name, {"count": 0, "bytes": 0})
                    entry["count"] += int(count)
                    entry["bytes"] += int(size)
            count, size = db.execute_sql("SELECT count(*), total(size) FROM asset").fetchone()
            tag_count += int(db.execute_sql("SELECT count(*) FROM tag").fetchone()[0])
            total_assets += int(count)
            total_bytes += int(size)
            projects.append(
                {
                    "id": project.id,
                    "name": project.name,
                    "path": str(project.path),
                    "assets": int(count),
                    "asset_bytes": int(size),
                    "database_bytes": sum(
                        _size(project.path / f"apex.db{suffix}") for suffix in ("", "-wal", "-shm")
                    ),
                    "renders_bytes": _folder_bytes(project.renders_dir),
                    "cache_bytes": _folder_bytes(project.cache_dir),
                    "backups_bytes": _folder_bytes(project.backups_dir),
                    "temp_files": len(self._temp_files(project, max_age_s=0.0)),
                }
            )
        disk: dict[str, int] = {}
        where = next(iter(self._projects.values())).path if self._projects else self.base_dir
        with contextlib.suppress(OSError):
            usage = shutil.disk_usage(where if where.exists() else where.parent)
            disk = {"total_bytes": usage.total, "free_bytes": usage.free}
        return {
            "total_assets": total_assets,
            "total_bytes": total_bytes,
            "by_category": by_category,
            "by_mime": by_mime,
            "tags": tag_count,
            "projects": projects,
            "disk": disk,
        }

    def get_quota_status(self) -> dict[str, Any]:
        """Storage used and allowed, and asset operations left this minute.

        Returns
        -------
        dict
            ``storage_used_gb``, ``storage_limit_gb``, ``storage_free_gb`` (room left
            under the limit), ``requests_remaining`` (``None``: unlimited) and
            ``requests_per_minute``.
        """
        used = self._used_bytes() / 1024**3
        limit = float(self.config["storage_limit_gb"])
        return {
            "storage_used_gb": used,
            "storage_limit_gb": limit,
            "storage_free_gb": max(0.0, limit - used),
            "requests_remaining": self._bucket.remaining,
            "requests_per_minute": self._bucket.per_minute,
        }

    @requires(Permission.WRITE, "cleanup_temp_files")
    def cleanup_temp_files(self, max_age_hours: float = 24) -> int:
        """Delete temporary files older than ``max_age_hours`` that killed writes left.

        These are the temporary files of atomic writes (``.NAME.tmp-*``) in the project
        folder and under ``assets/``, half-written backups (``backups/.tmp-*``) and
        ``cache/tmp/``.  Symbolic links are removed as links, never followed; nothing
        outside the project is touched.

        Returns
        -------
        int
            How many files (or half-written backup folders) were removed.
        """
        if not isinstance(max_age_hours, int | float) or max_age_hours < 0:
            raise ParameterError("max_age_hours", max_age_hours, "a number of hours >= 0")
        self._bucket.acquire()
        removed = 0
        for project in self._projects.values():
            for path in self._temp_files(project, max_age_s=max_age_hours * 3600.0):
                try:
                    if path.is_dir() and not path.is_symlink():
                        shutil.rmtree(path)
                    else:
                        path.unlink()
                    removed += 1
                except FileNotFoundError:
                    continue
                except OSError as err:
                    log.warning("cannot remove %s: %s", path, err)
            with project.database.write():
                project.models.AuditLog.create(
                    timestamp=time.time(),
                    action="asset.cleanup",
                    target=project.id,
                    details={"max_age_hours": max_age_hours},
                )
        if removed:
            log.info("removed %d temporary files", removed)
        return removed

    @staticmethod
    def _temp_files(project: Project, *, max_age_s: float) -> list[Path]:
        now = time.time()
        found: list[Path] = []

        def old(path: Path) -> bool:
            try:
                return now - path.lstat().st_mtime >= max_age_s
            except OSError:
                return False

        def temp_name(name: str) -> bool:
            return name.startswith(".") and ".tmp-" in name

        found.extend(p for p in project.path.iterdir() if temp_name(p.name) and not p.is_dir())
        for folder, dirnames, filenames in os.walk(project.assets_dir, followlinks=False):
            dirnames[:] = [d for d in dirnames if not Path(folder, d).is_symlink()]
            found.extend(Path(folder, name) for name in filenames if temp_name(name))
        if project.backups_dir.is_dir():
            found.extend(p for p in project.backups_dir.iterdir() if p.name.startswith(".tmp-"))
        cache_tmp = project.cache_dir / "tmp"
        if cache_tmp.is_dir() and not cache_tmp.is_symlink():
            for folder, dirnames, filenames in os.walk(cache_tmp, followlinks=False):
                dirnames[:] = [d for d in dirnames if not Path(folder, d).is_symlink()]
                found.extend(Path(folder, name) for name in filenames)
        return [p for p in found if old(p)]


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def _folder_bytes(folder: Path) -> int:
    total = 0
    for root, _, files in os.walk(folder, followlinks=False):
        for name in files:
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(root, name)).st_size
    return total
