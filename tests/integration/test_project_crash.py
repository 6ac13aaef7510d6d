"""Save-crash test: a process saving a project is SIGKILLed at random moments, 200+ times.

A runner subprocess (a fresh interpreter) forks a child that opens the project and saves
in a tight loop, reporting each revision once ``save()`` has returned; the runner kills it
with SIGKILL 1-30 ms after it is ready, then opens the project itself.  Forking from the
runner makes a kill cheap (no interpreter start per kill), and keeps pytest's own process
(threads, open handles) out of the fork.  Each time the project must open, its file must
be at the last reported revision or the one being written (never older), the database at
the file's revision or one ahead (it is written first), and SQLite's check must pass.
The runner waits for the child to be ready and, half the time, for one finished save
before the random delay, so kills spread over saves however loaded the machine is.
Backups are made every 0.1 s of saving here, so some kills land inside backups too.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from engine.assets.project import Project

_RUNNER = r"""
import json, os, random, signal, sys, time
from pathlib import Path
from engine.assets.project import BackupPolicy, Project

root, kills, seed = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
rng = random.Random(seed)
policy = BackupPolicy(keep_last=3, keep_daily=1, min_interval_s=0.1)
quiet = BackupPolicy(keep_last=3, keep_daily=1, min_interval_s=1e9)  # checking makes none
results = []
for i in range(kills):
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(read_end)
        try:
            project = Project.open(root, backup_policy=policy)
            os.write(write_end, b"ready\n")
            while True:
                project.update(document={"counter": project.revision + 1,
                                         "pad": "x" * rng.randrange(0, 30000)})
                revision = project.save()
                os.write(write_end, f"{revision}\n".encode())
        finally:
            os._exit(3)
    os.close(write_end)
    # Wait until the child is ready and, half the time, has finished one save (so the
    # kill points spread over the saves however slow this machine is today), then kill
    # it 1-30 ms later.
    wanted = b"ready\n" if rng.random() < 0.5 else b"ready\n" + b"\n"
    received = b""
    while received.count(b"\n") < wanted.count(b"\n"):
        chunk = os.read(read_end, 65536)
        if not chunk:
            break
        received += chunk
    time.sleep(rng.uniform(0.001, 0.030))
    os.kill(pid, signal.SIGKILL)
    _, status = os.waitpid(pid, 0)
    while chunk := os.read(read_end, 65536):
        received += chunk
    os.close(read_end)
    reported = [int(x) for x in received.split() if x.isdigit()]
    entry = {"killed": os.WIFSIGNALED(status), "ready": b"ready" in received,
             "last_reported": max(reported) if reported else None, "saves": len(reported)}
    try:
        project = Project.open(root, backup_policy=quiet)
        entry["file_revision"] = project.revision
        entry["db_revision"] = project.database_revision()
        entry["counter"] = project.document.get("counter", 0)
        entry["check"] = project.database.execute_sql("PRAGMA quick_check").fetchone()[0]
        project.close(save=False)
    except Exception as err:
        entry["error"] = f"{type(err).__name__}: {err}"
    results.append(entry)
print(json.dumps(results))
"""


def _run(root: Path, kills: int, seed: int) -> list[dict]:
    done = subprocess.run(
        [sys.executable, "-c", _RUNNER, str(root), str(kills), str(seed)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_project_survives_200_sigkills_while_saving(tmp_path: Path) -> None:
    root = tmp_path / "crashy"
    Project.create(root, name="crash test").close()
    results = _run(root, 110, seed=1) + _run(root, 110, seed=2)
    assert len(results) == 220
    previous = 0
    for number, entry in enumerate(results):
        where = f"kill {number}: {entry}"
        assert "error" not in entry, where
        assert entry["killed"] and entry["ready"], where
        assert entry["check"] == "ok", where
        reported = entry["last_reported"] if entry["last_reported"] is not None else previous
        # The file is at the last save that returned, or the one in flight: never older.
        assert entry["file_revision"] in (reported, reported + 1), where
        assert entry["counter"] == entry["file_revision"], where
        # The database is written first: at the file's revision, or one ahead.
        assert entry["db_revision"] in (entry["file_revision"], entry["file_revision"] + 1), where
        previous = entry["file_revision"]
    # The kills landed at different points: after some saves had returned, between a save's
    # database commit and its file rename, and after the rename but before the report.
    assert sum(1 for e in results if e["saves"] > 0) > 80
    assert any(e["db_revision"] == e["file_revision"] + 1 for e in results)
    assert any(
        e["last_reported"] is not None and e["file_revision"] == e["last_reported"] + 1
        for e in results
    )
    with Project.open(root) as project:
        assert project.revision == previous
        assert project.database.execute_sql("PRAGMA integrity_check").fetchone()[0] == "ok"
        backups = project.list_backups()
        assert 1 <= len(backups) <= 4  # keep_last=3 plus today's daily
    # Half-written backups of killed processes (.tmp-*) never count as backups.
    for folder in backups:
        json.loads((folder / "project.apex.json").read_text())
