"""Export a project folder to an archive and import one safely.

An archive from someone else is untrusted input.  :func:`import_archive` therefore:

* refuses absolute member names, ``..`` components and names that normalise outside the
  project (:class:`UnsafeArchiveError`);
* refuses device files, FIFOs and symbolic or hard links that point outside the project;
  a link that points at a regular file inside the archive is written as a *copy* of that
  file, so no link ever reaches the disk;
* refuses archives with more than ``max_members`` members or more than
  ``max_total_bytes`` of content (:class:`ArchiveTooLargeError`).  The sizes are counted
  while the bytes are written, not taken from the headers (which a zip bomb may fake);
* unpacks into a temporary folder beside ``dest``, checks that it holds a project, and
  only then renames it to ``dest``.  On any error the temporary folder is removed: nothing
  is left at ``dest`` or anywhere outside it.

:func:`export_archive` writes a ``.zip`` (or ``.tar.gz``/``.tgz``/``.tar``) atomically,
with a consistent snapshot of the database (SQLite's backup API, safe while it is open).
"""

from __future__ import annotations

import logging
import os
import posixpath
import shutil
import sqlite3
import stat
import tarfile
import tempfile
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from engine.atomic_files import atomic_path, fsync_dir
from engine.security.errors import ArchiveError, ArchiveTooLargeError, UnsafeArchiveError

__all__ = [
    "DEFAULT_MAX_MEMBERS",
    "DEFAULT_MAX_TOTAL_BYTES",
    "export_archive",
    "import_archive",
]

log = logging.getLogger(__name__)

PROJECT_FILE = "project.apex.json"  # engine.assets.project.PROJECT_FILE (no import: layering)
DATABASE_FILE = "apex.db"
DEFAULT_MAX_TOTAL_BYTES = 64 * 1024**3
DEFAULT_MAX_MEMBERS = 200_000
_CHUNK = 1 << 20
_EXPORT_SKIP = ("cache", "backups")


@dataclass(frozen=True)
class _Member:
    """One archive member, format-independent."""

    name: str  # normalised, relative, posix
    kind: str  # "file", "dir", "link"
    link_target: str | None  # normalised, relative to the project root (links only)
    handle: object  # zipfile.ZipInfo or tarfile.TarInfo


def _safe_name(archive: Path, raw: str) -> str:
    """Normalise a member name; raise if it is absolute or leaves the project."""
    name = raw.replace("\\", "/")
    if not name or name.startswith("/") or (len(name) > 1 and name[1] == ":"):
        raise UnsafeArchiveError(archive, member=raw, reason="absolute path")
    if "\x00" in name:
        raise UnsafeArchiveError(archive, member=raw, reason="NUL byte in the name")
    if ".." in name.split("/"):
        raise UnsafeArchiveError(archive, member=raw, reason="path traversal ('..')")
    norm = posixpath.normpath(name)
    if norm in ("", ".") and name.strip("/.") == "":
        return "."
    if norm.startswith("../") or norm == ".." or norm.startswith("/"):
        raise UnsafeArchiveError(archive, member=raw, reason="path traversal")
    return norm


def _link_target(archive: Path, member: str, target: str, *, hard: bool) -> str:
    """The project-relative path a link points at; raise if it points out."""
    if not target or target.startswith("/") or target.replace("\\", "/").startswith("/"):
        raise UnsafeArchiveError(
            archive, member=member, reason=f"link to an absolute path {target!r}"
        )
    base = "" if hard else posixpath.dirname(member)
    resolved = posixpath.normpath(posixpath.join(base, target.replace("\\", "/")))
    if resolved == ".." or resolved.startswith("../"):
        raise UnsafeArchiveError(
            archive, member=member, reason=f"link pointing outside the project ({target!r})"
        )
    return resolved


def _zip_members(archive: Path, zf: zipfile.ZipFile) -> Iterator[_Member]:
    for info in zf.infolist():
        name = _safe_name(archive, info.filename)
        mode = info.external_attr >> 16
        if info.create_system == 3 and stat.S_IFMT(mode):  # unix file type present
            if stat.S_ISLNK(mode):
                target = zf.read(info).decode("utf-8", "replace")
                yield _Member(name, "link", _link_target(archive, name, target, hard=False), info)
                continue
            if not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
                raise UnsafeArchiveError(
                    archive, member=info.filename, reason="not a regular file or folder"
                )
        yield _Member(name, "dir" if info.is_dir() else "file", None, info)


def _tar_members(archive: Path, tf: tarfile.TarFile) -> Iterator[_Member]:
    for info in tf:
        name = _safe_name(archive, info.name)
        if info.issym() or info.islnk():
            target = _link_target(archive, name, info.linkname, hard=info.islnk())
            yield _Member(name, "link", target, info)
        elif info.isdir():
            yield _Member(name, "dir", None, info)
        elif info.isreg():
            yield _Member(name, "file", None, info)
        else:
            kind = (
                "device file"
                if info.ischr() or info.isblk()
                else "FIFO"
                if info.isfifo()
                else "special member"
            )
            raise UnsafeArchiveError(archive, member=info.name, reason=f"{kind} refused")


class _Budget:
    """Counts members and bytes actually written against the limits."""

    def __init__(self, archive: Path, max_total_bytes: int, max_members: int) -> None:
        self.archive = archive
        self.max_total_bytes = max_total_bytes
        self.max_members = max_members
        self.total = 0
        self.members = 0

    def member(self) -> None:
        self.members += 1
        if self.members > self.max_members:
            raise ArchiveTooLargeError(
                self.archive, limit="members", allowed=self.max_members, found=self.members
            )

    def add(self, n: int) -> None:
        self.total += n
        if self.total > self.max_total_bytes:
            raise ArchiveTooLargeError(
                self.archive,
                limit="total_bytes",
                allowed=self.max_total_bytes,
                found=self.total,
            )


def _copy_stream(src: IO[bytes], dst_path: Path, budget: _Budget) -> None:
    with open(dst_path, "xb") as dst:
        while chunk := src.read(_CHUNK):
            budget.add(len(chunk))
            dst.write(chunk)


def _open_archive(archive: Path) -> tuple[str, zipfile.ZipFile | tarfile.TarFile]:
    try:
        if zipfile.is_zipfile(archive):
            return "zip", zipfile.ZipFile(archive)
        if tarfile.is_tarfile(archive):
            return "tar", tarfile.open(archive, "r:*")
    except (OSError, zipfile.BadZipFile, tarfile.TarError) as err:
        raise ArchiveError(f"{archive}: cannot read the archive ({err})", path=archive) from err
    raise ArchiveError(
        f"{archive}: not a zip or tar archive; export one with `apex-director project export`",
        path=archive,
    )


def import_archive(
    archive: Path | str,
    dest: Path | str,
    *,
    max_total_bytes: int = DEFAULT_MAX_TOTAL_BYTES,
    max_members: int = DEFAULT_MAX_MEMBERS,
) -> Path:
    """Unpack a project archive into the new folder ``dest`` (see the module docstring).

    Parameters
    ----------
    archive : Path or str
        A ``.zip`` or tar archive (any compression) holding a project folder's contents.
    dest : Path or str
        The project folder to make; it must not exist (or be an empty folder).
    max_total_bytes, max_members : int
        Limits on the unpacked content.

    Returns
    -------
    Path
        ``dest``, absolute.

    Raises
    ------
    UnsafeArchiveError
        A member escapes the project, is a link out, a device file or a FIFO.
    ArchiveTooLargeError
        A limit was exceeded.
    ArchiveError
        Unreadable archive, no ``project.apex.json`` in it, or ``dest`` is taken.
    """
    archive = Path(archive).expanduser().absolute()
    dest = Path(dest).expanduser().absolute()
    if not archive.is_file():
        raise ArchiveError(f"{archive}: no such archive file", path=archive)
    if dest.exists() and (not dest.is_dir() or any(dest.iterdir())):
        raise ArchiveError(
            f"{dest} already exists and is not an empty folder; choose a new folder",
            path=archive,
        )
    dest.parent.mkdir(parents=True, exist_ok=True)
    budget = _Budget(archive, max_total_bytes, max_members)
    kind, handle = _open_archive(archive)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.import-", dir=dest.parent))
    try:
        with handle:
            members = _zip_members if kind == "zip" else _tar_members
            files: dict[str, Path] = {}
            for member in members(archive, handle):  # type: ignore[arg-type]
                budget.member()
                if member.name == ".":
                    continue
                out = tmp / member.name
                if member.name in files or out.is_symlink():
                    raise UnsafeArchiveError(archive, member=member.name, reason="duplicate member")
                out.parent.mkdir(parents=True, exist_ok=True)
                if member.kind == "dir":
                    out.mkdir(exist_ok=True)
                elif member.kind == "link":
                    source = files.get(member.link_target or "")
                    if source is None:
                        raise UnsafeArchiveError(
                            archive,
                            member=member.name,
                            reason=f"link to {member.link_target!r}, which is not a file "
                            "earlier in the archive",
                        )
                    with open(source, "rb") as src:
                        _copy_stream(src, out, budget)
                    files[member.name] = out
                else:
                    if kind == "zip":
                        src_ctx = handle.open(member.handle)  # type: ignore[arg-type]
                    else:
                        src_ctx = handle.extractfile(member.handle)  # type: ignore[arg-type]
                    if src_ctx is None:
                        raise UnsafeArchiveError(
                            archive, member=member.name, reason="unreadable member"
                        )
                    with src_ctx as src:
                        _copy_stream(src, out, budget)
                    files[member.name] = out
        if not (tmp / PROJECT_FILE).is_file():
            raise ArchiveError(
                f"{archive}: no {PROJECT_FILE} at the top of the archive; it is not an "
                "APEX Director project export",
                path=archive,
            )
        if dest.exists():
            dest.rmdir()  # empty (checked above)
        os.replace(tmp, dest)
        fsync_dir(dest.parent)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    log.info(
        "imported %s into %s (%d members, %d bytes)", archive, dest, budget.members, budget.total
    )
    return dest


def _snapshot_database(database: Path, into: Path) -> None:
    """A consistent copy of the (possibly open, WAL) database."""
    src = sqlite3.connect(f"file:{database}?mode=ro", uri=True)
    try:
        dst = sqlite3.connect(into)
        try:
            src.backup(dst)
        finally:
            dst.close()
    finally:
        src.close()


def export_archive(project_dir: Path | str, archive: Path | str) -> Path:
    """Write the project in ``project_dir`` to ``archive`` atomically.

    ``cache/`` and ``backups/`` are left out (rebuildable or local); the database is a
    consistent snapshot.  The format follows the name: ``.zip`` (default), ``.tar``,
    ``.tar.gz``/``.tgz``.  Symbolic links in the folder are not followed or stored.

    Raises
    ------
    ArchiveError
        ``project_dir`` holds no project.
    """
    project_dir = Path(project_dir).expanduser().absolute()
    archive = Path(archive).expanduser().absolute()
    if not (project_dir / PROJECT_FILE).is_file():
        raise ArchiveError(f"{project_dir}: no {PROJECT_FILE} here", path=project_dir)
    name = archive.name.lower()
    archive.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".apex-export-") as scratch:
        db_copy = Path(scratch) / DATABASE_FILE
        if (project_dir / DATABASE_FILE).exists():
            _snapshot_database(project_dir / DATABASE_FILE, db_copy)
        entries: list[tuple[Path, str]] = [(project_dir / PROJECT_FILE, PROJECT_FILE)]
        if db_copy.exists():
            entries.append((db_copy, DATABASE_FILE))
        for root, dirs, filenames in os.walk(project_dir):
            rel_root = Path(root).relative_to(project_dir)
            if rel_root == Path("."):
                dirs[:] = [d for d in dirs if d not in _EXPORT_SKIP]
            for filename in sorted(filenames):
                path = Path(root) / filename
                rel = (rel_root / filename).as_posix()
                if rel_root == Path(".") and (
                    filename in (PROJECT_FILE,) or filename.startswith(DATABASE_FILE)
                ):
                    continue
                if path.is_symlink() or not path.is_file():
                    continue
                entries.append((path, rel))
        with atomic_path(archive) as tmp:
            if name.endswith((".tar.gz", ".tgz", ".tar")):
                mode = "w" if name.endswith(".tar") else "w:gz"
                with tarfile.open(tmp, mode) as tf:  # type: ignore[call-overload]
                    for path, rel in entries:
                        tf.add(path, arcname=rel, recursive=False)
            else:
                with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as zf:
                    for path, rel in entries:
                        zf.write(path, rel)
    log.info("exported %s to %s (%d files)", project_dir, archive, len(entries))
    return archive
