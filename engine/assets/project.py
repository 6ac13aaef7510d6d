"""A project: one folder that holds everything of one music video.

Layout::

    my-video/
        project.apex.json   the document: schema_version, name, settings... (atomic writes)
        apex.db             SQLite (WAL): assets, tags, jobs, checkpoints, audit log
        assets/             content-addressed files (assets/ab/abcdef....png)
        renders/            finished videos
        cache/              anything that can be rebuilt
        backups/            rolling backups: 20261125T224501123456Z-r12/{project.apex.json,apex.db}

A save writes the database first (one transaction) and then the project file
(temporary file, fsync, rename).  A process killed at any moment therefore leaves a
project that opens, at worst one save older; ``tests/integration/test_project_crash.py``
kills a saving process with SIGKILL hundreds of times to show it.
"""

from __future__ import annotations

import contextlib
import copy
import datetime as dt
import errno
import json
import logging
import os
import shutil
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

from engine.assets.errors import (
    ProjectError,
    ProjectExistsError,
    ProjectFileError,
    ProjectNotFoundError,
)
from engine.atomic_files import atomic_path, atomic_write_bytes, fsync_dir
from engine.errors import ParameterError
from engine.storage import (
    DEFAULT_BUSY_TIMEOUT_S,
    DiskFullError,
    Models,
    ProjectDatabase,
    SchemaTooNewError,
    bind_models,
    open_database,
)

__all__ = [
    "DATABASE_FILE",
    "MIGRATIONS",
    "PROJECT_FILE",
    "PROJECT_SCHEMA_VERSION",
    "BackupPolicy",
    "Project",
]

log = logging.getLogger(__name__)

PROJECT_FILE = "project.apex.json"
DATABASE_FILE = "apex.db"
PROJECT_SCHEMA_VERSION = 1
SUBFOLDERS = ("assets", "renders", "cache", "backups")
_BACKUP_TMP_PREFIX = ".tmp-"
_BROKEN_SUFFIX = ".broken-"

# Numbered migrations of the project file: MIGRATIONS[n] turns a version-n document into
# version n+1 (as engine/config/manager.py does for the configuration).
MIGRATIONS: dict[int, Callable[[dict[str, Any]], dict[str, Any]]] = {}


@dataclass(frozen=True, kw_only=True)
class BackupPolicy:
    """How many backups a project keeps and how often saves make one.

    Parameters
    ----------
    keep_last : int
        The newest ``keep_last`` backups are always kept.
    keep_daily : int
        Of older backups, the newest of each UTC day is kept, for this many days.
    min_interval_s : float
        A save (and opening) makes a backup when the newest is older than this.
    """

    keep_last: int = 10
    keep_daily: int = 30
    min_interval_s: float = 600.0

    def __post_init__(self) -> None:
        if self.keep_last < 1:
            raise ParameterError("keep_last", self.keep_last, "an integer >= 1")
        if self.keep_daily < 0:
            raise ParameterError("keep_daily", self.keep_daily, "an integer >= 0")
        if self.min_interval_s < 0:
            raise ParameterError("min_interval_s", self.min_interval_s, "seconds >= 0")


def _now_iso() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="microseconds")


def _is_disk_full(err: OSError) -> bool:
    return err.errno in (errno.ENOSPC, errno.EDQUOT)


def _write_file(path: Path, data: bytes, *, operation: str) -> None:
    """Atomic write whose failures are typed (disk full, or any other OS error)."""
    try:
        atomic_write_bytes(path, data)
    except OSError as err:
        if _is_disk_full(err):
            raise DiskFullError(path, operation=operation) from err
        raise ProjectError(
            f"{path}: cannot write ({err.strerror}); check the folder's permissions and the "
            "disk, then save again (the previous version is intact)",
            path=path,
        ) from err


def _encode(document: dict[str, Any]) -> bytes:
    return (json.dumps(document, indent=2, sort_keys=True, ensure_ascii=False) + "\n").encode()


def _parse(path: Path, data: bytes) -> dict[str, Any]:
    """Parse a project file; raises ProjectFileError (without backup advice yet)."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as err:
        raise ProjectFileError(path, problem=f"not UTF-8 text (byte {err.start})") from err
    try:
        document = json.loads(text)
    except json.JSONDecodeError as err:
        raise ProjectFileError(
            path, problem=f"not valid JSON ({err.msg})", line=err.lineno, column=err.colno
        ) from err
    if not isinstance(document, dict):
        raise ProjectFileError(path, problem="the top level is not a JSON object")
    return document


def _check_and_migrate(path: Path, document: dict[str, Any]) -> dict[str, Any]:
    version = document.get("schema_version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise ProjectFileError(
            path, problem=f"schema_version must be an integer >= 1, not {version!r}"
        )
    if version > PROJECT_SCHEMA_VERSION:
        raise SchemaTooNewError(
            path, found=version, supported=PROJECT_SCHEMA_VERSION, what="project file"
        )
    while version < PROJECT_SCHEMA_VERSION:
        document = MIGRATIONS[version](document)
        version += 1
        document["schema_version"] = version
    problems = []
    for key, kind in (("id", str), ("name", str), ("revision", int), ("created_at", str)):
        if not isinstance(document.get(key), kind) or isinstance(document.get(key), bool):
            problems.append(f"{key} must be {kind.__name__}")
    for key in ("settings", "document"):
        if not isinstance(document.setdefault(key, {}), dict):
            problems.append(f"{key} must be an object")
    if not isinstance(document.setdefault("tags", []), list):
        problems.append("tags must be a list")
    if problems:
        raise ProjectFileError(path, problem="invalid project file: " + "; ".join(problems))
    document.setdefault("description", "")
    return document


class Project:
    """An open project folder (see the module docstring for its layout).

    Make one with :meth:`create` or :meth:`open`; close it with :meth:`close` (or use it
    as a context manager), which saves unsaved changes.

    Examples
    --------
    >>> project = Project.create(tmp / "my-video", name="My video")
    >>> project.update(settings={"preset": "web"})
    >>> project.save()
    1
    >>> project.close()
    >>> Project.open(tmp / "my-video").settings["preset"]
    'web'
    """

    def __init__(
        self,
        path: Path,
        document: dict[str, Any],
        database: ProjectDatabase,
        *,
        backup_policy: BackupPolicy,
    ) -> None:
        self.path = path
        self._document = document
        self.database = database
        self.models: Models = bind_models(database)
        self.backup_policy = backup_policy
        self._lock = threading.RLock()
        self._dirty = False
        self._autosave_thread: threading.Thread | None = None
        self._autosave_stop = threading.Event()
        self.last_autosave_error: BaseException | None = None
        self._closed = False

    # -- creating and opening -------------------------------------------------------

    @classmethod
    def create(
        cls,
        path: Path | str,
        *,
        name: str | None = None,
        description: str = "",
        tags: list[str] | None = None,
        settings: dict[str, Any] | None = None,
        backup_policy: BackupPolicy | None = None,
        busy_timeout_s: float = DEFAULT_BUSY_TIMEOUT_S,
    ) -> Project:
        """Create a project folder (it may exist, but must not hold a project).

        Raises
        ------
        ProjectExistsError
            ``path`` already holds a project file or database.
        DiskFullError, ProjectError
            The folder or files could not be written.
        """
        path = Path(path).expanduser().absolute()
        if (path / PROJECT_FILE).exists() or (path / DATABASE_FILE).exists():
            raise ProjectExistsError(path)
        if path.exists() and not path.is_dir():
            raise ProjectError(f"{path} is a file; choose a folder for the project", path=path)
        try:
            for sub in ("", *SUBFOLDERS):
                (path / sub).mkdir(parents=True, exist_ok=True)
        except OSError as err:
            if _is_disk_full(err):
                raise DiskFullError(path, operation="create folder") from err
            raise ProjectError(
                f"{path}: cannot create the folder ({err.strerror})", path=path
            ) from err
        now = _now_iso()
        document = {
            "schema_version": PROJECT_SCHEMA_VERSION,
            "id": uuid.uuid4().hex,
            "name": name if name is not None else path.name,
            "description": description,
            "tags": list(tags or []),
            "created_at": now,
            "saved_at": now,
            "revision": 0,
            "settings": copy.deepcopy(settings or {}),
            "document": {},
        }
        database = open_database(path / DATABASE_FILE, busy_timeout_s=busy_timeout_s)
        project = cls(path, document, database, backup_policy=backup_policy or BackupPolicy())
        try:
            project._record_state("created")
            _write_file(path / PROJECT_FILE, _encode(document), operation="create project")
        except BaseException:
            database.close()
            raise
        log.info("created project %s at %s", document["name"], path)
        return project

    @classmethod
    def open(
        cls,
        path: Path | str,
        *,
        recover: bool = False,
        backup_policy: BackupPolicy | None = None,
        busy_timeout_s: float = DEFAULT_BUSY_TIMEOUT_S,
    ) -> Project:
        """Open the project in ``path`` (the folder, or its ``project.apex.json``).

        Parameters
        ----------
        recover : bool
            When the project file is broken, restore the newest valid backup of it; the
            broken file is renamed aside (``project.apex.json.broken-<time>``), not deleted.
            When ``apex.db`` is missing, restore the newest backup's copy.

        Raises
        ------
        ProjectNotFoundError
            No project file there.
        ProjectFileError
            The project file is broken; ``line``/``column`` say where, ``backup`` names
            the backup that ``recover=True`` would restore.
        SchemaTooNewError
            The project file or its database comes from a newer APEX Director; nothing
            was changed.
        ProjectError
            ``apex.db`` is missing (and ``recover`` is off, or there is no backup).
        DatabaseLockedError, DatabaseCorruptError
            From the database (see :mod:`engine.storage`).
        """
        path = Path(path).expanduser().absolute()
        if path.name == PROJECT_FILE:
            path = path.parent
        project_file = path / PROJECT_FILE
        policy = backup_policy or BackupPolicy()
        try:
            raw = project_file.read_bytes()
        except FileNotFoundError as err:
            raise ProjectNotFoundError(path) from err
        except IsADirectoryError as err:
            raise ProjectNotFoundError(path) from err
        except OSError as err:
            raise ProjectError(
                f"{project_file}: cannot read ({err.strerror})", path=project_file
            ) from err
        try:
            document = _check_and_migrate(project_file, _parse(project_file, raw))
        except ProjectFileError as err:
            newest = _newest_valid_backup(path / "backups")
            if not recover:
                raise ProjectFileError(
                    project_file,
                    problem=err.problem,
                    line=err.line,
                    column=err.column,
                    backup=newest,
                ) from err
            if newest is None:
                raise
            raw = cls._restore_project_file(project_file, newest)
            document = _check_and_migrate(project_file, _parse(project_file, raw))
        if not (path / DATABASE_FILE).exists():
            cls._missing_database(path, recover=recover)
        database = open_database(path / DATABASE_FILE, busy_timeout_s=busy_timeout_s)
        project = cls(path, document, database, backup_policy=policy)
        try:
            for sub in SUBFOLDERS:
                (path / sub).mkdir(exist_ok=True)
            project._check_revisions()
            if project._backup_due():
                project._make_backup(raw)
        except BaseException:
            database.close()
            raise
        return project

    @staticmethod
    def _missing_database(path: Path, *, recover: bool) -> None:
        """``apex.db`` is gone: restore the newest backup's copy, or say how to.

        Opening would otherwise make an empty database and silently forget every asset
        record and job.
        """
        target = path / DATABASE_FILE
        backups = [b / DATABASE_FILE for b in _list_backups(path / "backups")]
        newest = next((b for b in backups if b.exists()), None)
        if not recover or newest is None:
            advice = (
                f"restore the newest backup ({newest.parent.name}) with `apex-director project "
                "open --recover` / Project.open(path, recover=True)"
                if newest is not None
                else "there is no backup of it; move project.apex.json aside and create the "
                "project again"
            )
            raise ProjectError(
                f"{target} is missing (the project's assets, tags and jobs are recorded there); "
                f"{advice}",
                path=target,
            )
        with atomic_path(target) as tmp:
            shutil.copyfile(newest, tmp)
        log.warning("%s was missing: restored it from backup %s", target, newest.parent.name)

    @staticmethod
    def _restore_project_file(project_file: Path, backup: Path) -> bytes:
        stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S%fZ")
        aside = project_file.with_name(f"{project_file.name}{_BROKEN_SUFFIX}{stamp}")
        os.replace(project_file, aside)
        fsync_dir(project_file.parent)
        data = backup.read_bytes()
        _write_file(project_file, data, operation="restore backup")
        log.warning(
            "%s was broken: restored backup %s (the broken file is now %s)",
            project_file,
            backup.parent.name,
            aside.name,
        )
        return data

    # -- the document ---------------------------------------------------------------

    @property
    def id(self) -> str:
        return str(self._document["id"])

    @property
    def name(self) -> str:
        return str(self._document["name"])

    @property
    def description(self) -> str:
        return str(self._document["description"])

    @property
    def tags(self) -> list[str]:
        return list(self._document["tags"])

    @property
    def revision(self) -> int:
        """How many times the project was saved."""
        return int(self._document["revision"])

    @property
    def settings(self) -> dict[str, Any]:
        """A copy of the project's settings (change them with :meth:`update`)."""
        return copy.deepcopy(self._document["settings"])

    @property
    def document(self) -> dict[str, Any]:
        """A copy of the project's working document (song, shots...; :meth:`update`)."""
        return copy.deepcopy(self._document["document"])

    @property
    def dirty(self) -> bool:
        """Whether there are changes not saved yet."""
        return self._dirty

    @property
    def assets_dir(self) -> Path:
        return self.path / "assets"

    @property
    def renders_dir(self) -> Path:
        return self.path / "renders"

    @property
    def cache_dir(self) -> Path:
        return self.path / "cache"

    @property
    def backups_dir(self) -> Path:
        return self.path / "backups"

    def update(
        self,
        *,
        name: str | None = None,
        description: str | None = None,
        tags: list[str] | None = None,
        settings: dict[str, Any] | None = None,
        document: dict[str, Any] | None = None,
    ) -> None:
        """Change the project in memory (``settings``/``document`` keys are merged).

        The change is written by the next :meth:`save` or autosave.
        """
        with self._lock:
            self._check_open()
            changes = {"name": name, "description": description}
            for key, value in changes.items():
                if value is not None:
                    if not isinstance(value, str):
                        raise ParameterError(key, value, "a string")
                    self._document[key] = value
            if tags is not None:
                self._document["tags"] = [str(tag) for tag in tags]
            for key, value in (("settings", settings), ("document", document)):
                if value is not None:
                    json.dumps(value)  # fail now, not at save time, on a non-JSON value
                    self._document[key].update(copy.deepcopy(value))
            self._dirty = True

    # -- saving ---------------------------------------------------------------------

    def save(self) -> int:
        """Write the database state, then the project file; returns the new revision.

        Raises
        ------
        DiskFullError
            The disk is full; the previous project file is intact.
        DatabaseLockedError
            Another process holds the database; nothing was written.
        """
        with self._lock:
            self._check_open()
            previous = copy.deepcopy(self._document)
            self._document["revision"] = self.revision + 1
            self._document["saved_at"] = _now_iso()
            data = _encode(self._document)
            try:
                self._record_state("save")
                _write_file(self.path / PROJECT_FILE, data, operation="save project")
            except BaseException:
                self._document = previous
                raise
            self._dirty = False
            if self._backup_due():
                try:
                    self._make_backup(data)
                except (DiskFullError, ProjectError, OSError) as err:
                    # The save itself succeeded; a missing backup is worth a warning only.
                    log.warning("project saved, but the backup failed: %s", err)
            return self.revision

    def _record_state(self, action: str) -> None:
        m = self.models
        now = time.time()
        with self.database.write():
            m.ProjectState.replace(key="revision", value=self.revision).execute()
            m.ProjectState.replace(key="saved_at", value=now).execute()
            m.AuditLog.create(
                timestamp=now,
                action=f"project.{action}",
                target=self.id,
                details={"revision": self.revision},
            )

    def database_revision(self) -> int | None:
        """The revision the database last recorded (``None`` before the first save)."""
        row = self.models.ProjectState.get_or_none(self.models.ProjectState.key == "revision")
        return None if row is None else int(row.value)

    def _check_revisions(self) -> None:
        db_revision = self.database_revision()
        if db_revision is not None and db_revision not in (self.revision, self.revision + 1):
            log.warning(
                "%s: the project file is at revision %d but the database at %d (was one of "
                "them restored from a backup?)",
                self.path,
                self.revision,
                db_revision,
            )

    # -- autosave -------------------------------------------------------------------

    def start_autosave(self, interval_s: float = 60.0) -> None:
        """Save unsaved changes every ``interval_s`` seconds in a background thread.

        An autosave that fails (disk full...) is logged and kept in
        :attr:`last_autosave_error`; the next tick tries again.
        """
        if interval_s <= 0:
            raise ParameterError("interval_s", interval_s, "seconds > 0")
        with self._lock:
            self._check_open()
            if self._autosave_thread is not None:
                return
            self._autosave_stop.clear()
            thread = threading.Thread(
                target=self._autosave_loop, args=(interval_s,), name="apex-autosave", daemon=True
            )
            self._autosave_thread = thread
        thread.start()

    def stop_autosave(self) -> None:
        """Stop the autosave thread (does not save by itself)."""
        thread = self._autosave_thread
        if thread is None:
            return
        self._autosave_stop.set()
        thread.join()
        self._autosave_thread = None

    def _autosave_loop(self, interval_s: float) -> None:
        try:
            while not self._autosave_stop.wait(interval_s):
                if not self._dirty:
                    continue
                try:
                    self.save()
                    self.last_autosave_error = None
                except Exception as err:
                    self.last_autosave_error = err
                    log.warning("autosave of %s failed: %s", self.path, err)
        finally:
            self.database.close()  # this thread's connection

    # -- export and import (engine/security/archive.py) -----------------------------

    def export_archive(self, archive: Path | str) -> Path:
        """Save, then write the project to ``archive`` (``.zip`` or ``.tar.gz``) atomically."""
        from engine.security.archive import export_archive

        with self._lock:
            self._check_open()
            self.save()
            return export_archive(self.path, archive)

    @classmethod
    def import_archive(cls, archive: Path | str, dest: Path | str, **limits: int) -> Project:
        """Unpack an exported project into the new folder ``dest`` safely and open it.

        Path traversal, links out of the project, device files and zip bombs are refused
        with :class:`~engine.security.errors.UnsafeArchiveError` or
        :class:`~engine.security.errors.ArchiveTooLargeError`; nothing is written outside
        ``dest`` (``limits``: ``max_total_bytes``, ``max_members``).
        """
        from engine.security.archive import import_archive

        return cls.open(import_archive(archive, dest, **limits))

    # -- backups --------------------------------------------------------------------

    def list_backups(self) -> list[Path]:
        """Backup folders, newest first."""
        return _list_backups(self.backups_dir)

    def backup(self) -> Path:
        """Back up the current project file and database now; returns the backup folder."""
        with self._lock:
            self._check_open()
            try:
                raw = (self.path / PROJECT_FILE).read_bytes()
                _check_and_migrate(self.path / PROJECT_FILE, _parse(self.path / PROJECT_FILE, raw))
            except (OSError, ProjectFileError):
                raw = _encode(self._document)
            folder = self._make_backup(raw)
            with self.database.write():
                self.models.AuditLog.create(
                    timestamp=time.time(),
                    action="project.backup",
                    target=self.id,
                    details={"folder": folder.name},
                )
            return folder

    def _backup_due(self) -> bool:
        backups = self.list_backups()
        if not backups:
            return True
        age = time.time() - _backup_time(backups[0]).timestamp()
        return age >= self.backup_policy.min_interval_s

    def _make_backup(self, project_bytes: bytes) -> Path:
        stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S%fZ")
        name = f"{stamp}-r{self.revision}"
        final = self.backups_dir / name
        tmp = self.backups_dir / f"{_BACKUP_TMP_PREFIX}{name}"
        self.backups_dir.mkdir(exist_ok=True)
        try:
            tmp.mkdir()
            _write_file(tmp / PROJECT_FILE, project_bytes, operation="backup")
            self.database.backup_to(tmp / DATABASE_FILE)
            with open(tmp / DATABASE_FILE, "rb+") as handle:
                os.fsync(handle.fileno())
            fsync_dir(tmp)
            os.rename(tmp, final)
            fsync_dir(self.backups_dir)
        except OSError as err:
            shutil.rmtree(tmp, ignore_errors=True)
            if _is_disk_full(err):
                raise DiskFullError(final, operation="backup") from err
            raise
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        self._prune_backups()
        log.debug("backed up %s to %s", self.path, final.name)
        return final

    def _prune_backups(self) -> None:
        policy = self.backup_policy
        backups = self.list_backups()
        keep = set(backups[: policy.keep_last])
        days_seen: set[dt.date] = set()
        for backup in backups:
            day = _backup_time(backup).date()
            if day in days_seen:
                continue
            if len(days_seen) < policy.keep_daily:
                keep.add(backup)
            days_seen.add(day)
        for backup in backups:
            if backup not in keep:
                shutil.rmtree(backup, ignore_errors=True)
        # Half-written backups of a killed process: remove them once clearly abandoned.
        for leftover in self.backups_dir.glob(f"{_BACKUP_TMP_PREFIX}*"):
            with contextlib.suppress(OSError):
                if time.time() - leftover.stat().st_mtime > 3600:
                    shutil.rmtree(leftover, ignore_errors=True)

    # -- information and closing ----------------------------------------------------

    def info(self) -> dict[str, Any]:
        """A summary: name, id, revision, sizes, counts, backups."""
        m = self.models
        backups = self.list_backups()
        return {
            "path": str(self.path),
            "id": self.id,
            "name": self.name,
            "description": self.description,
            "tags": self.tags,
            "schema_version": int(self._document["schema_version"]),
            "revision": self.revision,
            "database_revision": self.database_revision(),
            "database_schema_version": self.database.schema_version(),
            "created_at": self._document["created_at"],
            "saved_at": self._document.get("saved_at"),
            "assets": m.Asset.select().count(),
            "jobs": m.Job.select().count(),
            "backups": len(backups),
            "latest_backup": backups[0].name if backups else None,
        }

    def _check_open(self) -> None:
        if self._closed:
            raise ProjectError(f"{self.path}: the project is closed; open it again", path=self.path)

    def close(self, *, save: bool = True) -> None:
        """Stop autosave, save unsaved changes (unless ``save=False``) and close the database."""
        if self._closed:
            return
        self.stop_autosave()
        try:
            if save and self._dirty:
                self.save()
        finally:
            self._closed = True
            self.database.close()

    def __enter__(self) -> Project:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close(save=exc_type is None)

    def __repr__(self) -> str:
        return f"Project({str(self.path)!r}, name={self.name!r}, revision={self.revision})"


def _backup_time(folder: Path) -> dt.datetime:
    stamp = folder.name.split("-r", 1)[0]
    try:
        return dt.datetime.strptime(stamp, "%Y%m%dT%H%M%S%fZ").replace(tzinfo=dt.UTC)
    except ValueError:
        return dt.datetime.fromtimestamp(folder.stat().st_mtime, dt.UTC)


def _list_backups(backups_dir: Path) -> list[Path]:
    if not backups_dir.is_dir():
        return []
    found = [
        p
        for p in backups_dir.iterdir()
        if p.is_dir() and not p.name.startswith(".") and (p / PROJECT_FILE).exists()
    ]
    return sorted(found, key=lambda p: p.name, reverse=True)


def _newest_valid_backup(backups_dir: Path) -> Path | None:
    """The newest backup's project file that parses and this version can read."""
    for folder in _list_backups(backups_dir):
        candidate = folder / PROJECT_FILE
        try:
            _check_and_migrate(candidate, _parse(candidate, candidate.read_bytes()))
        except (OSError, ProjectFileError, SchemaTooNewError):
            continue
        return candidate
    return None
