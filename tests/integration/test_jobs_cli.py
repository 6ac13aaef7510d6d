"""``apex-director jobs list|show|cancel|retry`` on a real project database."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from engine.assets.project import Project
from engine.cli import main
from engine.orchestrator.job_queue import JobQueue


@pytest.fixture(autouse=True)
def _drop_cli_log_handler() -> Iterator[None]:
    """main() logs to the stderr of its test (capsys); later logging must not use it."""
    yield
    root = logging.getLogger()
    for handler in [h for h in root.handlers if h.get_name() == "apex-director-cli"]:
        root.removeHandler(handler)


@pytest.fixture
def project(tmp_path: Path) -> Path:
    folder = tmp_path / "p"
    with Project.create(folder) as opened:
        queue = JobQueue(opened.database)
        queue.submit("analyse", {"audio_path": "song.wav"}, job_id="aaa-analyse")
        queue.submit("plan", depends_on=["aaa-analyse"], job_id="aaa-plan")
        queue.submit("qa", job_id="bbb-qa")
        claimed = queue.claim("w", kinds=["qa"])
        assert claimed is not None
        queue.fail(claimed.id, "AssemblyError: no frames", retryable=False)
    return folder


def _run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["jobs", *args])
    out, err = capsys.readouterr()
    return code, out, err


def test_list_shows_counts_and_jobs(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _run(capsys, "list", "--project", str(project))
    assert code == 0
    assert out.splitlines()[0] == "2 queued, 1 failed"
    assert {line.split()[0] for line in out.splitlines()[1:]} == {
        "aaa-analyse",
        "aaa-plan",
        "bbb-qa",
    }
    code, out, _ = _run(capsys, "list", "--project", str(project), "--state", "failed", "--json")
    assert code == 0
    rows = json.loads(out)
    assert [(r["id"], r["state"], r["error"]) for r in rows] == [
        ("bbb-qa", "failed", "AssemblyError: no frames")
    ]


def test_show_finds_a_job_by_a_unique_start(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = _run(capsys, "show", "bbb", "--project", str(project))
    assert code == 0
    shown = json.loads(out)
    assert shown["id"] == "bbb-qa" and shown["attempts"] == 1
    code, _, err = _run(capsys, "show", "aaa", "--project", str(project))
    assert code == 2 and "unique start" in err
    code, _, err = _run(capsys, "show", "zzz", "--project", str(project))
    assert code == 2 and "jobs list" in err


def test_cancel_then_retry(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _run(capsys, "cancel", "aaa-analyse", "--project", str(project))
    assert code == 0 and "cancelled aaa-analyse" in out
    code, out, _ = _run(capsys, "cancel", "aaa-analyse", "--project", str(project))
    assert code == 1 and "already finished" in out
    code, out, _ = _run(capsys, "retry", "aaa-analyse", "--project", str(project))
    assert code == 0
    code, out, _ = _run(capsys, "retry", "bbb-qa", "--project", str(project))
    assert code == 0
    with Project.open(project) as opened:
        states = {job.id: job.state for job in JobQueue(opened.database).jobs()}
    assert states == {"aaa-analyse": "queued", "aaa-plan": "queued", "bbb-qa": "queued"}
    code, _, err = _run(capsys, "retry", "bbb-qa", "--project", str(project))
    assert code == 2 and "failed, cancelled or quarantined" in err


def test_not_a_project_is_a_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = _run(capsys, "list", "--project", str(tmp_path))
    assert code == 2
    assert str(tmp_path) in err
