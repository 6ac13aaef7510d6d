"""Project folders: create/open, saves, broken and newer files, backups, autosave, disk full."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from engine.assets import project as project_module
from engine.assets.errors import ProjectExistsError, ProjectFileError, ProjectNotFoundError
from engine.assets.project import PROJECT_FILE, BackupPolicy, Project
from engine.errors import UserInputError
from engine.storage import DiskFullError, SchemaTooNewError


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def small_fs(tmp_path: Path) -> Iterator[Path]:
    """A real 1 MiB tmpfs, so a write fails with ENOSPC (needs root; skipped otherwise)."""
    mount_point = tmp_path / "small_fs"
    mount_point.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount_point)],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here ({done.stderr.strip()}); needs root")
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", "-l", str(mount_point)], check=False)


def test_create_save_and_open_round_trip(tmp_path: Path) -> None:
    root = tmp_path / "my video"
    project = Project.create(root, name="My video", description="test", tags=["rock"])
    expected = {"project.apex.json", "apex.db", "apex.db-wal", "apex.db-shm", "assets"}
    assert {p.name for p in root.iterdir()} == expected | {"renders", "cache", "backups"}
    on_disk = json.loads((root / PROJECT_FILE).read_text())
    assert on_disk["schema_version"] == 1 and on_disk["revision"] == 0
    assert on_disk["name"] == "My video" and on_disk["tags"] == ["rock"]
    project.update(settings={"preset": "web"}, document={"song": "a.wav"})
    assert project.dirty
    assert project.save() == 1 and not project.dirty
    assert project.database_revision() == 1
    project.update(document={"shots": [1, 2]})
    project.close()  # saves the unsaved change
    reopened = Project.open(root / PROJECT_FILE)
    try:
        assert reopened.revision == 2 and reopened.database_revision() == 2
        assert reopened.settings == {"preset": "web"}
        assert reopened.document == {"song": "a.wav", "shots": [1, 2]}
        assert reopened.id == project.id
        info = reopened.info()
        assert info["revision"] == 2 and info["assets"] == 0 and info["backups"] >= 1
        actions = [row.action for row in reopened.models.AuditLog.select()]
        assert actions == ["project.created", "project.save", "project.save"]
    finally:
        reopened.close()


def test_create_refuses_an_existing_project_and_open_a_missing_one(tmp_path: Path) -> None:
    Project.create(tmp_path / "p").close()
    before = _digest(tmp_path / "p" / PROJECT_FILE)
    with pytest.raises(ProjectExistsError, match="open it instead"):
        Project.create(tmp_path / "p")
    assert _digest(tmp_path / "p" / PROJECT_FILE) == before
    with pytest.raises(ProjectNotFoundError, match="project new") as info:
        Project.open(tmp_path / "nothing-here")
    assert isinstance(info.value, UserInputError)


def test_update_rejects_values_that_cannot_be_saved(tmp_path: Path) -> None:
    with Project.create(tmp_path / "p") as project:
        with pytest.raises(TypeError):
            project.update(settings={"when": object()})
        assert not project.dirty


def _broken(root: Path) -> bytes:
    text = (root / PROJECT_FILE).read_text()
    lines = text.splitlines()
    lines[2] = lines[2].replace(",", "") + " oops"  # a hand edit gone wrong, on line 3
    data = ("\n".join(lines) + "\n").encode()
    (root / PROJECT_FILE).write_bytes(data)
    return data


def test_broken_json_names_the_place_and_offers_the_backup(tmp_path: Path) -> None:
    root = tmp_path / "p"
    with Project.create(root, backup_policy=BackupPolicy(min_interval_s=0)) as project:
        project.update(document={"v": 1})
        project.save()  # revision 1, backed up
        project.update(document={"v": 2})
    broken = _broken(root)
    with pytest.raises(ProjectFileError, match=r"not valid JSON.*line 3, column \d+") as info:
        Project.open(root)
    err = info.value
    assert err.line == 3 and err.column is not None
    assert err.backup is not None and err.backup.parent.name.endswith("-r2")
    assert "recover" in str(err)
    assert (root / PROJECT_FILE).read_bytes() == broken  # nothing overwritten

    recovered = Project.open(root, recover=True)
    try:
        assert recovered.revision == 2 and recovered.document == {"v": 2}
    finally:
        recovered.close()
    aside = list(root.glob(f"{PROJECT_FILE}.broken-*"))
    assert len(aside) == 1 and aside[0].read_bytes() == broken


def test_broken_json_without_backups_cannot_be_recovered(tmp_path: Path) -> None:
    root = tmp_path / "p"
    Project.create(root).close()  # create makes no backup
    broken = _broken(root)
    with pytest.raises(ProjectFileError, match="no valid backup") as info:
        Project.open(root)
    assert info.value.backup is None
    with pytest.raises(ProjectFileError):
        Project.open(root, recover=True)
    assert (root / PROJECT_FILE).read_bytes() == broken


def test_wrong_types_are_a_project_file_error(tmp_path: Path) -> None:
    root = tmp_path / "p"
    Project.create(root).close()
    document = json.loads((root / PROJECT_FILE).read_text())
    document["revision"] = "three"
    (root / PROJECT_FILE).write_text(json.dumps(document))
    with pytest.raises(ProjectFileError, match="revision must be int"):
        Project.open(root)


def test_project_file_from_a_newer_schema_is_refused_and_untouched(tmp_path: Path) -> None:
    root = tmp_path / "p"
    Project.create(root).close()
    document = json.loads((root / PROJECT_FILE).read_text())
    document["schema_version"] = 7
    (root / PROJECT_FILE).write_text(json.dumps(document))
    before = {p.name: _digest(p) for p in root.iterdir() if p.is_file()}
    with pytest.raises(SchemaTooNewError, match=r"schema 7.*nothing was changed"):
        Project.open(root)
    with pytest.raises(SchemaTooNewError):
        Project.open(root, recover=True)  # recovery is for broken files, not newer ones
    assert {p.name: _digest(p) for p in root.iterdir() if p.is_file()} == before
    assert list((root / "backups").iterdir()) == []


def test_older_project_files_are_migrated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / "p"
    Project.create(root, settings={"fps": 24}).close()
    monkeypatch.setattr(project_module, "PROJECT_SCHEMA_VERSION", 2)

    def one_to_two(doc: dict) -> dict:
        doc["settings"]["frame_rate"] = doc["settings"].pop("fps")
        return doc

    monkeypatch.setitem(project_module.MIGRATIONS, 1, one_to_two)
    with Project.open(root) as project:
        assert project.settings == {"frame_rate": 24}
        project.save()
    assert json.loads((root / PROJECT_FILE).read_text())["schema_version"] == 2


def test_backups_keep_the_last_n_and_one_per_day(tmp_path: Path) -> None:
    root = tmp_path / "p"
    policy = BackupPolicy(keep_last=3, keep_daily=2, min_interval_s=3600)
    project = Project.create(root, backup_policy=policy)
    template = project.backup()
    # Older backups, as if made on earlier days (two on each day).
    old = [
        "20260101T080000000000Z-r1",
        "20260101T090000000000Z-r2",
        "20260102T080000000000Z-r3",
        "20260102T090000000000Z-r4",
        "20260103T080000000000Z-r5",
        "20260103T090000000000Z-r6",
    ]
    for name in old:
        shutil.copytree(template, root / "backups" / name)
    newest = [project.backup() for _ in range(2)]
    kept = [p.name for p in project.list_backups()]
    # The 3 newest (today's), then the newest of each earlier day, for 2 days in all.
    assert kept == [newest[1].name, newest[0].name, template.name, "20260103T090000000000Z-r6"]
    for folder in project.list_backups():
        assert (folder / PROJECT_FILE).exists() and (folder / "apex.db").exists()
    project.close()


def test_backup_database_is_a_consistent_copy(tmp_path: Path) -> None:
    import sqlite3

    with Project.create(tmp_path / "p") as project:
        project.save()
        folder = project.backup()
    conn = sqlite3.connect(folder / "apex.db")
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert conn.execute("SELECT value FROM project_state WHERE key='revision'").fetchone()[0] == "1"
    conn.close()


def test_autosave_writes_changes_in_the_background(tmp_path: Path) -> None:
    root = tmp_path / "p"
    project = Project.create(root)
    project.start_autosave(0.05)
    project.update(document={"edited": True})
    deadline = time.monotonic() + 5
    while project.revision == 0 and time.monotonic() < deadline:
        time.sleep(0.02)
    project.stop_autosave()
    assert project.revision >= 1 and not project.dirty
    assert json.loads((root / PROJECT_FILE).read_text())["document"] == {"edited": True}
    project.close()


def test_disk_full_on_save_is_typed_and_keeps_the_previous_file(small_fs: Path) -> None:
    root = small_fs / "p"
    project = Project.create(root, backup_policy=BackupPolicy(min_interval_s=1e9))
    project.update(document={"note": "small"})
    project.save()
    before = (root / PROJECT_FILE).read_bytes()
    project.update(document={"blob": "x" * 2_000_000})
    with pytest.raises(DiskFullError, match=r"disk is full.*previous version is intact"):
        project.save()
    assert (root / PROJECT_FILE).read_bytes() == before
    assert project.revision == 1 and project.dirty
    leftovers = [p.name for p in root.iterdir() if p.name.startswith(".")]
    assert leftovers == []
    project.update(document={"blob": "fits now"})
    assert project.save() == 2
    project.close()


def test_save_while_another_process_holds_the_database_writes_nothing(tmp_path: Path) -> None:
    import sys

    from engine.storage import DatabaseLockedError

    root = tmp_path / "p"
    project = Project.create(root, busy_timeout_s=0.3)
    before = (root / PROJECT_FILE).read_bytes()
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sqlite3, sys\n"
            "c = sqlite3.connect(sys.argv[1], isolation_level=None)\n"
            "c.execute('BEGIN IMMEDIATE')\n"
            "print('locked', flush=True)\n"
            "sys.stdin.readline()\n",
            str(root / "apex.db"),
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        project.update(document={"edit": 1})
        with pytest.raises(DatabaseLockedError, match="another process"):
            project.save()
        assert (root / PROJECT_FILE).read_bytes() == before
        assert project.revision == 0 and project.dirty
    finally:
        assert holder.stdin is not None
        holder.stdin.write("\n")
        holder.stdin.flush()
        holder.wait(timeout=10)
    assert project.save() == 1
    project.close()


def test_a_missing_database_is_not_silently_recreated(tmp_path: Path) -> None:
    from engine.assets.errors import ProjectError

    root = tmp_path / "p"
    with Project.create(root, backup_policy=BackupPolicy(min_interval_s=0)) as project:
        project.save()  # revision 1, backed up with its database
    for name in ("apex.db", "apex.db-wal", "apex.db-shm"):
        (root / name).unlink(missing_ok=True)
    with pytest.raises(ProjectError, match=r"apex\.db is missing.*--recover"):
        Project.open(root)
    assert not (root / "apex.db").exists()
    with Project.open(root, recover=True) as project:
        assert project.database_revision() == 1
        actions = [row.action for row in project.models.AuditLog.select()]
        assert actions == ["project.created", "project.save"]
    shutil.rmtree(root / "backups")
    (root / "apex.db").unlink()
    with pytest.raises(ProjectError, match="no backup"):
        Project.open(root, recover=True)
