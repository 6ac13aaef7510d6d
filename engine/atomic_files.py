"""Atomic file writes: temp file in the same folder, fsync, rename.

A reader (or a crash) sees either the old file or the complete new one, never a
partial write.  Use :func:`atomic_path` when a library (PyAV, OpenCV) wants a path
to write to; use :func:`atomic_write_bytes` / :func:`atomic_write_text` otherwise.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

__all__ = ["atomic_path", "atomic_write_bytes", "atomic_write_text", "fsync_dir"]


def _umask() -> int:
    current = os.umask(0)
    os.umask(current)
    return current


def fsync_dir(directory: Path) -> None:
    """Flush a folder's entry table so a rename inside it survives a power cut."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:  # pragma: no cover - platforms without directory fds (Windows)
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover
        pass
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_path(target: Path | str, *, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path beside ``target``; on success fsync and rename it over.

    On any exception the temporary file is removed and ``target`` is untouched.
    ``suffix`` defaults to the target's suffix, so libraries that pick a format from
    the file name (``.mp4``, ``.png``) still do.
    """
    target = Path(target)
    directory = target.parent
    fd, tmp_name = tempfile.mkstemp(
        prefix=f".{target.name}.tmp-",
        suffix=target.suffix if suffix is None else suffix,
        dir=directory,
    )
    # mkstemp makes the file private (0600); give it the mode a plain open() would
    # (or keep the mode of the file it replaces).
    try:
        mode = target.stat().st_mode & 0o7777
    except FileNotFoundError:
        mode = 0o666 & ~_umask()
    os.fchmod(fd, mode)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        with open(tmp, "rb+") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, target)
        fsync_dir(directory)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise


def atomic_write_bytes(target: Path | str, data: bytes) -> None:
    """Write ``data`` to ``target`` atomically."""
    with atomic_path(target) as tmp:
        tmp.write_bytes(data)


def atomic_write_text(target: Path | str, text: str, *, encoding: str = "utf-8") -> None:
    """Write ``text`` to ``target`` atomically."""
    atomic_write_bytes(target, text.encode(encoding))
