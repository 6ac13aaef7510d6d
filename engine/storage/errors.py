"""Typed errors of the storage layer (the project database).

They derive from the engine's root error so callers catch one hierarchy; the only
engine module the storage layer imports is :mod:`engine.errors`, which imports nothing
of the engine.
"""

from __future__ import annotations

from pathlib import Path

from engine.errors import APEXDirectorError, UserInputError

__all__ = [
    "DatabaseCorruptError",
    "DatabaseLockedError",
    "DiskFullError",
    "SchemaTooNewError",
    "StorageError",
]


class StorageError(APEXDirectorError):
    """The project database could not be opened, read or written.

    Attributes
    ----------
    path : Path | None
        The database (or file) concerned.
    """

    def __init__(self, message: str, *, path: Path | None = None) -> None:
        self.path = Path(path) if path is not None else None
        super().__init__(message)


class SchemaTooNewError(StorageError, UserInputError):
    """The file was written by a newer APEX Director; it was not touched.

    Attributes
    ----------
    found : int
        The schema version in the file.
    supported : int
        The newest schema version this build reads.
    """

    def __init__(self, path: Path, *, found: int, supported: int, what: str = "database") -> None:
        self.found = found
        self.supported = supported
        super().__init__(
            f"{path}: this {what} was written by a newer APEX Director (schema {found}, this "
            f"version reads up to {supported}); nothing was changed. Upgrade APEX Director to "
            "open it.",
            path=path,
        )


class DatabaseLockedError(StorageError):
    """Another process held a write lock on the database past the busy timeout.

    Attributes
    ----------
    timeout_s : float
        How long we waited for the lock.
    """

    def __init__(self, path: Path | None, *, timeout_s: float) -> None:
        self.timeout_s = timeout_s
        super().__init__(
            f"{path}: the project database is locked by another process (waited "
            f"{timeout_s:g} s). Close the other APEX Director window or command that has this "
            "project open, or wait for it to finish, then try again; nothing was written.",
            path=path,
        )


class DiskFullError(StorageError):
    """A write failed because the disk (or the user's disk quota) is full.

    Whatever was on disk before the write is intact and no temporary file is left.
    """

    def __init__(self, path: Path | None, *, operation: str = "write") -> None:
        self.operation = operation
        super().__init__(
            f"{path}: the disk is full ({operation} failed); the previous version is intact. "
            "Free some space on that disk (or move the project to another one) and try again.",
            path=path,
        )


class DatabaseCorruptError(StorageError):
    """The database file is not a readable SQLite database."""

    def __init__(self, path: Path | None, *, detail: str) -> None:
        super().__init__(
            f"{path}: the project database is damaged or is not an APEX Director database "
            f"({detail}). Restore it from the project's backups/ folder "
            "(`apex-director project backup` keeps them), or move it aside to start a new one.",
            path=path,
        )
