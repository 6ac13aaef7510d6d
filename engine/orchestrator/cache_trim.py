"""Keep the render cache under its size limit (``paths.cache_max_gb``).

The render cache (:func:`~engine.orchestrator.render_pipeline.default_cache_dir`) holds
generated stills, encoded segments and audio analyses.  After each render
:func:`trim_cache` removes the least recently used files (by the later of their access and
modification times) until the cache fits, never a file the current render uses: the paths
it names in ``keep`` (files, or folders whose whole content is kept) and any file written
or used since the render started (``since``).  Folders left empty are removed too.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from engine.errors import ParameterError

__all__ = ["TrimResult", "cache_size", "trim_cache"]

log = logging.getLogger(__name__)

GB = 1024**3


@dataclass
class TrimResult:
    """What :func:`trim_cache` did.

    Attributes
    ----------
    size_before, size_after : int
        Bytes in the cache before and after.
    limit : int
        The limit in bytes.
    removed : list of Path
        The files removed, oldest first.
    kept_in_use : int
        Bytes the current render uses (never removed, even when they alone exceed the limit).
    """

    size_before: int
    size_after: int
    limit: int
    removed: list[Path] = field(default_factory=list)
    kept_in_use: int = 0


def _files(root: Path) -> list[tuple[Path, os.stat_result]]:
    out: list[tuple[Path, os.stat_result]] = []
    for dirpath, _dirs, names in os.walk(root):
        for name in names:
            path = Path(dirpath) / name
            try:
                st = path.stat()
            except OSError:  # removed meanwhile (another render)
                continue
            out.append((path, st))
    return out


def cache_size(root: Path) -> int:
    """Bytes in the files under ``root`` (0 when it does not exist)."""
    return sum(st.st_size for _, st in _files(Path(root))) if Path(root).is_dir() else 0


def trim_cache(
    root: Path,
    max_gb: float,
    *,
    keep: Iterable[Path] = (),
    since: float | None = None,
) -> TrimResult:
    """Remove least-recently-used files under ``root`` until it holds at most ``max_gb``.

    Parameters
    ----------
    root : Path
        The render cache folder.
    max_gb : float
        The limit in GB (1024**3 bytes); ``0`` means no limit (nothing is removed).
    keep : iterable of Path
        Files, or folders, the current render uses; never removed.
    since : float, optional
        A ``time.time()`` stamp (the render's start): files modified or accessed at or
        after it are in use and never removed.

    Returns
    -------
    TrimResult

    Raises
    ------
    ParameterError
        ``max_gb`` is negative.
    """
    if max_gb < 0:
        raise ParameterError("paths.cache_max_gb", max_gb, "0 (no limit) or a size in GB")
    root = Path(root)
    files = _files(root) if root.is_dir() else []
    total = sum(st.st_size for _, st in files)
    limit = int(max_gb * GB)
    result = TrimResult(size_before=total, size_after=total, limit=limit)
    if max_gb == 0 or total <= limit:
        return result
    kept = [Path(os.path.abspath(p)) for p in keep]

    def in_use(path: Path, st: os.stat_result) -> bool:
        if since is not None and max(st.st_atime, st.st_mtime) >= since:
            return True
        absolute = Path(os.path.abspath(path))
        return any(absolute == k or k in absolute.parents for k in kept)

    candidates = []
    for path, st in files:
        if in_use(path, st):
            result.kept_in_use += st.st_size
        else:
            candidates.append((max(st.st_atime, st.st_mtime), str(path), path, st.st_size))
    candidates.sort()
    for _, _, path, size in candidates:
        if total <= limit:
            break
        try:
            path.unlink()
        except FileNotFoundError:
            pass
        except OSError as err:
            log.warning("cache trim: could not remove %s (%s)", path, err)
            continue
        total -= size
        result.removed.append(path)
    result.size_after = total
    # folders the trim emptied (deepest first); the root stays
    emptied = {p.parent for p in result.removed}
    for deepest in sorted(emptied, key=lambda f: -len(f.parts)):
        folder = deepest
        while folder != root and root in folder.parents:
            try:
                folder.rmdir()
            except OSError:
                break  # not empty
            folder = folder.parent
    if result.removed:
        log.info(
            "cache trim: removed %d file(s), %.1f MB; cache now %.1f MB (limit %.1f MB)",
            len(result.removed),
            (result.size_before - total) / 1e6,
            total / 1e6,
            limit / 1e6,
        )
    if total > limit:
        log.warning(
            "cache %s is %.1f MB, over its %.1f MB limit (paths.cache_max_gb), with files the "
            "current render uses; raise the limit",
            root,
            total / 1e6,
            limit / 1e6,
        )
    return result
