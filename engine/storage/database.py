"""The project database: SQLite in WAL mode through peewee.

Open it with :func:`open_database`; it checks the schema version read-only first (a
database from a newer APEX Director is refused and not touched), then connects with
the pragmas below and applies the numbered migrations of
:mod:`engine.storage.migrations` in one transaction.

Pragmas (docs/decisions/0007-project-storage.md says why):

- ``journal_mode=wal``: readers never block the writer, and a killed writer leaves the
  database as of its last commit.
- ``synchronous=FULL``: a commit is on disk when it returns, also across a power cut,
  so the database is never older than the project file written after it.
- ``foreign_keys=ON``: tags and links cannot dangle.
- ``busy_timeout``: a writer waits this long for another process's lock, then
  :class:`~engine.storage.errors.DatabaseLockedError` says what to do.
"""

from __future__ import annotations

import contextlib
import logging
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import peewee

from engine.storage.errors import (
    DatabaseCorruptError,
    DatabaseLockedError,
    DiskFullError,
    SchemaTooNewError,
    StorageError,
)
from engine.storage.migrations import LATEST_VERSION, MIGRATIONS

__all__ = [
    "DEFAULT_BUSY_TIMEOUT_S",
    "ProjectDatabase",
    "open_database",
    "read_schema_version",
]

log = logging.getLogger(__name__)

DEFAULT_BUSY_TIMEOUT_S = 5.0
_SYNCHRONOUS = ("OFF", "NORMAL", "FULL", "EXTRA")


class ProjectDatabase(peewee.SqliteDatabase):
    """A peewee SQLite database whose errors are the engine's typed storage errors.

    Use :func:`open_database` rather than this constructor; it also migrates.
    ``thread_safe`` (peewee's default) gives every thread its own connection, which
    WAL mode lets read while another writes.
    """

    def __init__(self, path: Path, *, busy_timeout_s: float, synchronous: str) -> None:
        self.path = Path(path)
        self.busy_timeout_s = float(busy_timeout_s)
        super().__init__(
            str(self.path),
            timeout=self.busy_timeout_s,
            pragmas=(
                ("busy_timeout", int(self.busy_timeout_s * 1000)),
                ("journal_mode", "wal"),
                ("synchronous", synchronous),
                ("foreign_keys", 1),
            ),
        )

    def _translate(self, err: Exception) -> StorageError | None:
        message = str(err).lower()
        if "locked" in message or "busy" in message:
            return DatabaseLockedError(self.path, timeout_s=self.busy_timeout_s)
        if "disk is full" in message or "disk full" in message:
            return DiskFullError(self.path, operation="database write")
        if "not a database" in message or "malformed" in message:
            return DatabaseCorruptError(self.path, detail=str(err))
        return None

    def connect(self, reuse_if_open: bool = False) -> bool:
        try:
            return bool(super().connect(reuse_if_open=reuse_if_open))
        except peewee.DatabaseError as err:
            typed = self._translate(err)
            if typed is None:
                raise
            raise typed from err

    def execute_sql(self, sql: str, params: Any = None, commit: Any = None) -> Any:
        try:
            return super().execute_sql(sql, params)
        except peewee.DatabaseError as err:
            typed = self._translate(err)
            if typed is None:
                raise
            raise typed from err

    def commit(self) -> None:
        try:
            super().commit()
        except peewee.DatabaseError as err:
            typed = self._translate(err)
            if typed is None:
                raise
            raise typed from err

    def write(self) -> Any:
        """A write transaction that takes the write lock up front (``BEGIN IMMEDIATE``).

        Taking it at the start means a busy database makes us wait the busy timeout
        and then fail cleanly, instead of failing half-way when a read upgrades to a
        write (which SQLite refuses without waiting).
        """
        return self.atomic("IMMEDIATE")

    def schema_version(self) -> int:
        """The schema version of this database (0 for an empty one)."""
        return _version_of(self.connection())

    def backup_to(self, target: Path) -> None:
        """Copy a consistent snapshot of the database to ``target`` (SQLite backup API).

        ``target`` must not exist; the caller renames it into place.
        """
        dest = sqlite3.connect(str(target))
        try:
            self.connection().backup(dest)
        except sqlite3.Error as err:
            typed = self._translate(err)
            if typed is None:
                raise StorageError(f"cannot back up {self.path}: {err}", path=self.path) from err
            raise typed from err
        finally:
            dest.close()


def _version_of(conn: sqlite3.Connection) -> int:
    row = conn.execute(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name = 'schema_version'"
    ).fetchone()
    if row is None:
        tables = conn.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]
        if tables:
            raise DatabaseCorruptError(None, detail="it has tables but no schema_version table")
        return 0
    value = conn.execute("SELECT max(version) FROM schema_version").fetchone()[0]
    return int(value or 0)


def read_schema_version(path: Path) -> int:
    """Read a database's schema version without writing anything to it.

    Returns 0 when the file does not exist or is empty.

    Raises
    ------
    DatabaseCorruptError
        The file is not an SQLite database, or not one of ours.
    """
    path = Path(path)
    if not path.exists() or path.stat().st_size == 0:
        return 0
    # With no -wal file beside it the main file is complete, and ``immutable`` reads it
    # without creating -shm/-wal files; otherwise read-only mode (which sees the WAL).
    wal = path.with_name(path.name + "-wal")
    mode = "ro" if wal.exists() else "ro&immutable=1"
    try:
        conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode={mode}", uri=True)
    except sqlite3.Error as err:
        raise DatabaseCorruptError(path, detail=str(err)) from err
    try:
        return _version_of(conn)
    except DatabaseCorruptError as err:
        raise DatabaseCorruptError(path, detail=str(err).split("(", 1)[-1].rstrip(")")) from err
    except sqlite3.DatabaseError as err:
        raise DatabaseCorruptError(path, detail=str(err)) from err
    finally:
        conn.close()


def _migrate(db: ProjectDatabase) -> None:
    with db.write():
        conn = db.connection()
        current = _version_of(conn)
        if current > LATEST_VERSION:  # a newer writer got there between check and lock
            raise SchemaTooNewError(db.path, found=current, supported=LATEST_VERSION)
        for migration in MIGRATIONS:
            if current >= migration.VERSION:
                continue
            log.info("%s: applying migration %d (%s)", db.path, migration.VERSION, migration.NAME)
            migration.apply(conn)
            conn.execute(
                "INSERT INTO schema_version (version, name, applied_at) VALUES (?, ?, ?)",
                (migration.VERSION, migration.NAME, time.time()),
            )


def open_database(
    path: Path,
    *,
    busy_timeout_s: float = DEFAULT_BUSY_TIMEOUT_S,
    synchronous: str = "FULL",
) -> ProjectDatabase:
    """Open (creating if needed) and migrate the project database at ``path``.

    Parameters
    ----------
    path : Path
        The database file (``apex.db`` in a project folder).
    busy_timeout_s : float
        How long a write waits for another process's lock before
        :class:`DatabaseLockedError`.
    synchronous : {"NORMAL", "FULL", "EXTRA", "OFF"}
        SQLite's durability level; FULL (default) survives a power cut.

    Returns
    -------
    ProjectDatabase
        Connected in this thread, at :data:`LATEST_VERSION`.

    Raises
    ------
    SchemaTooNewError
        The database comes from a newer APEX Director; it was not modified.
    DatabaseLockedError
        Another process held the write lock for longer than ``busy_timeout_s``.
    DatabaseCorruptError
        The file is not a readable database of ours.
    """
    path = Path(path)
    if synchronous.upper() not in _SYNCHRONOUS:
        from engine.errors import ParameterError

        raise ParameterError("synchronous", synchronous, f"one of {', '.join(_SYNCHRONOUS)}")
    if busy_timeout_s < 0:
        from engine.errors import ParameterError

        raise ParameterError("busy_timeout_s", busy_timeout_s, "a number of seconds >= 0")
    found = read_schema_version(path)
    if found > LATEST_VERSION:
        raise SchemaTooNewError(path, found=found, supported=LATEST_VERSION)
    db = ProjectDatabase(path, busy_timeout_s=busy_timeout_s, synchronous=synchronous.upper())
    try:
        db.connect()
        if found < LATEST_VERSION:
            _migrate(db)
    except BaseException:
        with contextlib.suppress(Exception):
            db.close()
        raise
    return db


@contextlib.contextmanager
def opened(path: Path, **kwargs: Any) -> Iterator[ProjectDatabase]:
    """:func:`open_database` as a context manager that closes it afterwards."""
    db = open_database(path, **kwargs)
    try:
        yield db
    finally:
        db.close()
