"""The project database: pragmas, migrations, newer schemas, locks, damage."""

from __future__ import annotations

import hashlib
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import peewee
import pytest

from engine.errors import APEXDirectorError, UserInputError
from engine.storage import (
    LATEST_VERSION,
    DatabaseCorruptError,
    DatabaseLockedError,
    SchemaTooNewError,
    bind_models,
    open_database,
    read_schema_version,
)


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_new_database_has_wal_pragmas_and_schema(tmp_path: Path) -> None:
    db = open_database(tmp_path / "apex.db", busy_timeout_s=2.5)
    try:
        pragma = lambda name: db.execute_sql(f"PRAGMA {name}").fetchone()[0]  # noqa: E731
        assert pragma("journal_mode") == "wal"
        assert pragma("synchronous") == 2  # FULL
        assert pragma("foreign_keys") == 1
        assert pragma("busy_timeout") == 2500
        tables = {
            row[0] for row in db.execute_sql("SELECT name FROM sqlite_master WHERE type='table'")
        }
        assert {"schema_version", "asset", "tag", "asset_tag", "asset_fts", "job"} <= tables
        assert {"checkpoint", "audit_log", "project_state"} <= tables
        rows = db.execute_sql("SELECT version, name FROM schema_version").fetchall()
        assert rows[0] == (1, "initial") and len(rows) == LATEST_VERSION
        assert rows == sorted(rows) and db.schema_version() == LATEST_VERSION
    finally:
        db.close()


def test_reopening_does_not_migrate_again(tmp_path: Path) -> None:
    path = tmp_path / "apex.db"
    open_database(path).close()
    db = open_database(path)
    try:
        assert db.execute_sql("SELECT count(*) FROM schema_version").fetchone()[0] == LATEST_VERSION
    finally:
        db.close()


def test_models_round_trip_json_and_enforce_foreign_keys(tmp_path: Path) -> None:
    db = open_database(tmp_path / "apex.db")
    models = bind_models(db)
    now = time.time()
    with db.write():
        asset = models.Asset.create(
            content_hash="ab" * 32,
            rel_path="assets/ab/x.png",
            size=3,
            created_at=now,
            modified_at=now,
            metadata={"seed": 7, "nested": {"a": [1, 2]}},
        )
    assert models.Asset.get_by_id(asset.id).metadata == {"seed": 7, "nested": {"a": [1, 2]}}
    with pytest.raises(peewee.IntegrityError), db.write():
        models.AssetTag.insert(asset=asset.id, tag=999).execute()
    db.close()


def test_two_databases_open_at_once_keep_their_rows_apart(tmp_path: Path) -> None:
    first, second = open_database(tmp_path / "a.db"), open_database(tmp_path / "b.db")
    m1, m2 = bind_models(first), bind_models(second)
    with first.write():
        m1.AuditLog.create(timestamp=1.0, action="only-in-a")
    assert m1.AuditLog.select().count() == 1 and m2.AuditLog.select().count() == 0
    first.close()
    second.close()


def test_database_from_a_newer_schema_is_refused_and_untouched(tmp_path: Path) -> None:
    path = tmp_path / "apex.db"
    open_database(path).close()
    conn = sqlite3.connect(path)
    conn.execute("INSERT INTO schema_version VALUES (99, 'from the future', 0)")
    conn.commit()
    conn.close()
    before = _digest(path)
    names_before = sorted(p.name for p in tmp_path.iterdir())
    with pytest.raises(SchemaTooNewError, match=r"schema 99.*nothing was changed") as info:
        open_database(path)
    assert isinstance(info.value, UserInputError)
    assert info.value.found == 99 and info.value.supported == LATEST_VERSION
    assert _digest(path) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == names_before


def test_read_schema_version_of_missing_and_empty_files(tmp_path: Path) -> None:
    assert read_schema_version(tmp_path / "none.db") == 0
    (tmp_path / "empty.db").write_bytes(b"")
    assert read_schema_version(tmp_path / "empty.db") == 0


def test_damaged_or_foreign_database_is_a_typed_error(tmp_path: Path) -> None:
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"this is not sqlite at all" * 100)
    with pytest.raises(DatabaseCorruptError, match="backups"):
        open_database(junk)
    foreign = tmp_path / "foreign.db"
    conn = sqlite3.connect(foreign)
    conn.execute("CREATE TABLE users (id INTEGER)")
    conn.commit()
    conn.close()
    with pytest.raises(DatabaseCorruptError, match="no schema_version"):
        open_database(foreign)


_HOLD_LOCK = """
import sqlite3, sys, time
conn = sqlite3.connect(sys.argv[1], isolation_level=None)
conn.execute("BEGIN IMMEDIATE")
conn.execute("INSERT INTO audit_log (timestamp, action) VALUES (0, 'held')")
print("locked", flush=True)
sys.stdin.readline()
conn.execute("COMMIT")
"""


def test_database_locked_by_another_process_waits_then_says_what_to_do(tmp_path: Path) -> None:
    path = tmp_path / "apex.db"
    open_database(path).close()
    holder = subprocess.Popen(
        [sys.executable, "-c", _HOLD_LOCK, str(path)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        db = open_database(path, busy_timeout_s=0.4)
        models = bind_models(db)
        started = time.monotonic()
        with (
            pytest.raises(DatabaseLockedError, match="locked by another process") as info,
            db.write(),
        ):
            models.AuditLog.create(timestamp=1.0, action="mine")
        waited = time.monotonic() - started
        assert waited >= 0.35, waited
        assert info.value.timeout_s == pytest.approx(0.4)
        assert isinstance(info.value, APEXDirectorError)
        # Readers are not blocked by the writer (WAL), and see only committed rows.
        assert models.AuditLog.select().count() == 0
    finally:
        assert holder.stdin is not None
        holder.stdin.write("\n")
        holder.stdin.flush()
        holder.wait(timeout=10)
    # Once the other process is done, the same handle writes normally.
    with db.write():
        models.AuditLog.create(timestamp=2.0, action="mine")
    assert [row.action for row in models.AuditLog.select().order_by(models.AuditLog.id)] == [
        "held",
        "mine",
    ]
    db.close()


def test_bad_parameters_are_parameter_errors(tmp_path: Path) -> None:
    from engine.errors import ParameterError

    with pytest.raises(ParameterError, match="synchronous"):
        open_database(tmp_path / "a.db", synchronous="SOMETIMES")
    with pytest.raises(ParameterError, match="busy_timeout_s"):
        open_database(tmp_path / "a.db", busy_timeout_s=-1)
