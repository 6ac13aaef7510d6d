"""APEXOrchestrator through its real code paths: the SQLite queue, the worker threads,
the built-in generate handler with real backends registered through the extension point
(engine.orchestrator.handlers.register_backend), and real SIGKILLed processes."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from engine.errors import BackendError
from engine.events import JobCancelled, JobEvent, JobFailed, JobFinished, JobProgress, JobStarted
from engine.orchestrator.engine_thread import EngineThread
from engine.orchestrator.handlers import register_backend, unregister_backend
from engine.orchestrator.orchestrator import APEXOrchestrator, JobContext

FAST = {"retry_base_delay_s": 0.01, "retry_max_delay_s": 0.02, "retry_jitter": 0.0}
REPO = Path(__file__).resolve().parents[2]


class FlakyBackend:
    """A real image backend that fails its first ``failures`` calls, then paints."""

    name = "flaky"
    is_draft = True
    calls = 0

    def __init__(self, failures: int) -> None:
        self.failures = failures

    def generate(self, request: Any) -> np.ndarray:
        FlakyBackend.calls += 1
        if FlakyBackend.calls <= self.failures:
            raise BackendError(f"flaky failure {FlakyBackend.calls}", backend_name=self.name)
        return np.full((request.height, request.width, 3), 90, np.uint8)


class BrokenBackend:
    name = "broken"
    is_draft = True

    def generate(self, request: Any) -> np.ndarray:
        raise BackendError("the broken backend always fails", backend_name=self.name)


@pytest.fixture
def engine() -> Iterator[EngineThread]:
    with EngineThread() as thread:
        yield thread


@pytest.fixture
def backends() -> Iterator[None]:
    FlakyBackend.calls = 0
    register_backend("flaky", lambda **_: FlakyBackend(failures=2))
    register_backend("broken", lambda **_: BrokenBackend())
    yield
    unregister_backend("flaky")
    unregister_backend("broken")


def _start(
    engine: EngineThread, folder: Path, config: dict[str, Any] | None = None, **kwargs: Any
) -> tuple[APEXOrchestrator, list[JobEvent]]:
    orchestrator = APEXOrchestrator(folder, config={**FAST, **(config or {})}, **kwargs)
    events: list[JobEvent] = []
    orchestrator.subscribe(events.append)
    engine.call(orchestrator.initialize())
    engine.call(orchestrator.start())
    return orchestrator, events


def _generate(seed: int, order: list[str], **extra: Any) -> dict[str, Any]:
    return {
        "kind": "generate",
        "payload": {"prompt": "city at night", "seed": seed, "width": 64, "height": 48}
        | {"backend_order": order}
        | extra,
    }


def test_backend_that_fails_twice_is_retried_and_recovers(
    engine: EngineThread, tmp_path: Path, backends: None
) -> None:
    orchestrator, events = _start(engine, tmp_path / "p")
    job_id = engine.call(orchestrator.submit_job(_generate(1, ["flaky"])))
    status = engine.call(orchestrator.wait_for(job_id, timeout_s=30))
    stats = engine.call(orchestrator.get_system_stats())
    engine.call(orchestrator.close())

    assert status["state"] == "succeeded", status
    assert status["attempts"] == 3
    assert status["result"]["backend"] == "flaky"
    assert Path(status["result"]["artifact"]).is_file()
    assert stats["errors"]["total"] == 2
    assert stats["errors"]["recovered"] == 2
    assert stats["errors"]["recovery_rate"] == pytest.approx(1.0)
    assert stats["errors"]["by_type"] == {"BackendError": 2}
    assert stats["queue"]["succeeded"] == 1
    mine = [e for e in events if e.job_id == job_id]
    assert sum(isinstance(e, JobStarted) for e in mine) == 3
    assert isinstance(mine[-1], JobFinished)


def test_always_failing_backend_fails_over_to_procedural(
    engine: EngineThread, tmp_path: Path, backends: None
) -> None:
    orchestrator, _ = _start(engine, tmp_path / "p")
    job_id = engine.call(orchestrator.submit_job(_generate(2, ["broken", "procedural"])))
    status = engine.call(orchestrator.wait_for(job_id, timeout_s=30))
    stats = engine.call(orchestrator.get_system_stats())
    engine.call(orchestrator.close())

    assert status["state"] == "succeeded"
    assert status["attempts"] == 1
    assert status["result"]["backend"] == "procedural"
    assert "always fails" in status["result"]["skipped"][0]
    assert stats["errors"]["total"] == 1
    assert stats["errors"]["recovery_rate"] == pytest.approx(1.0)


def test_always_failing_backend_alone_gives_a_clear_job_failed(
    engine: EngineThread, tmp_path: Path, backends: None
) -> None:
    orchestrator, events = _start(engine, tmp_path / "p", {"max_attempts": 2})
    job_id = engine.call(orchestrator.submit_job(_generate(3, ["broken"])))
    dependent = engine.call(
        orchestrator.submit_job({"kind": "qa", "payload": {}, "depends_on": [job_id]})
    )
    status = engine.call(orchestrator.wait_for(job_id, timeout_s=30))
    after = engine.call(orchestrator.get_job_status(dependent))
    stats = engine.call(orchestrator.get_system_stats())
    engine.call(orchestrator.close())

    assert status["state"] == "failed"
    assert status["attempts"] == 2
    assert "every image backend failed: broken: the broken backend always fails" in status["error"]
    failed = [e for e in events if isinstance(e, JobFailed) and e.job_id == job_id]
    assert len(failed) == 1 and failed[0].error_type == "BackendError"
    assert after["state"] == "failed"
    assert stats["errors"]["total"] == 2
    assert stats["errors"]["recovery_rate"] == 0.0
    assert not list((tmp_path / "p" / "cache").rglob("*.png"))


def test_bad_input_is_not_retried(engine: EngineThread, tmp_path: Path) -> None:
    orchestrator, _ = _start(engine, tmp_path / "p")
    job_id = engine.call(
        orchestrator.submit_job(_generate(4, ["procedural"], width=5))  # < 16 pixels
    )
    status = engine.call(orchestrator.wait_for(job_id, timeout_s=30))
    engine.call(orchestrator.close())
    assert status["state"] == "failed"
    assert status["attempts"] == 1
    assert status["error"].startswith("ParameterError: width=5")


def test_rate_limited_backend_waits_for_the_time_the_error_names(
    engine: EngineThread, tmp_path: Path
) -> None:
    orchestrator, _ = _start(engine, tmp_path / "p", {"generation_requests_per_minute": 60})
    orchestrator.generation_bucket("procedural").acquire(59)  # one token left
    first, second = engine.call(
        orchestrator.submit_batch([_generate(5, ["procedural"]), _generate(6, ["procedural"])])
    )
    started = time.monotonic()
    results = engine.call(orchestrator.drain([first, second], timeout_s=30))
    waited = time.monotonic() - started
    stats = engine.call(orchestrator.get_system_stats())
    engine.call(orchestrator.close())

    assert [r["state"] for r in results] == ["succeeded", "succeeded"]
    assert results[1]["attempts"] == 1  # waiting for the limit is not a failed attempt
    assert stats["errors"]["total"] == 0
    assert stats["rate_limits"]["deferred_jobs"] >= 1
    assert waited >= 0.5  # a token comes back after 1 s at 60 a minute
    assert stats["rate_limits"]["buckets"]["procedural"]["per_minute"] == 60


def test_same_inputs_are_not_generated_twice(engine: EngineThread, tmp_path: Path) -> None:
    orchestrator, _ = _start(engine, tmp_path / "p")
    first = engine.call(orchestrator.submit_job(_generate(7, ["procedural"])))
    one = engine.call(orchestrator.wait_for(first, timeout_s=30))
    second = engine.call(orchestrator.submit_job(_generate(7, ["procedural"])))
    two = engine.call(orchestrator.wait_for(second, timeout_s=30))
    engine.call(orchestrator.close())
    assert one["result"]["reused"] is False
    assert two["result"]["reused"] is True
    assert two["result"]["artifact"] == one["result"]["artifact"]
    assert len(list((tmp_path / "p" / "cache" / "artifacts").rglob("*.png"))) == 1


def _slow_handler(log: list[int], steps: int = 400) -> Any:
    def handler(context: JobContext) -> dict[str, Any]:
        for step in range(steps):
            context.stage.progress(step, steps, "working")
            log.append(step)
            time.sleep(0.005)
        return {"steps": steps}

    return handler


def _wait_until(predicate: Any, timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def test_cancel_stops_a_running_job_and_its_dependents(
    engine: EngineThread, tmp_path: Path
) -> None:
    steps: list[int] = []
    orchestrator, events = _start(engine, tmp_path / "p", handlers={"slow": _slow_handler(steps)})
    job_id = engine.call(orchestrator.submit_job({"kind": "slow"}))
    dependent = engine.call(orchestrator.submit_job({"kind": "slow", "depends_on": [job_id]}))
    _wait_until(lambda: len(steps) >= 5)
    assert engine.call(orchestrator.cancel_job(job_id)) is True
    status = engine.call(orchestrator.wait_for(job_id, timeout_s=10))
    _wait_until(lambda: any(isinstance(e, JobCancelled) and e.job_id == job_id for e in events))
    done_steps = len(steps)
    time.sleep(0.1)
    engine.call(orchestrator.close())

    assert status["state"] == "cancelled"
    assert len(steps) == done_steps < 400  # it stopped at its next check
    cancelled = {e.job_id for e in events if isinstance(e, JobCancelled)}
    assert cancelled == {job_id, dependent}
    assert engine.call(orchestrator.get_job_status(dependent))["state"] == "cancelled"
    assert any(isinstance(e, JobProgress) for e in events)
    assert engine.call(orchestrator.cancel_job(job_id)) is False


def test_cancel_from_another_process_reaches_the_running_job(
    engine: EngineThread, tmp_path: Path
) -> None:
    steps: list[int] = []
    # 4,000 steps (20 s): still running however slowly the CLI process starts
    orchestrator, _ = _start(engine, tmp_path / "p", handlers={"slow": _slow_handler(steps, 4000)})
    job_id = engine.call(orchestrator.submit_job({"kind": "slow"}))
    _wait_until(lambda: len(steps) >= 5)
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "engine.cli",
            "jobs",
            "cancel",
            job_id[:8],
            "--project",
            str(tmp_path / "p"),
        ],
        check=False,
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    status = engine.call(orchestrator.wait_for(job_id, timeout_s=10))
    _wait_until(lambda: not orchestrator._running)
    engine.call(orchestrator.close())
    assert status["state"] == "cancelled"
    assert len(steps) < 4000


def test_stop_while_running_requeues_at_a_safe_point_and_a_restart_finishes(
    engine: EngineThread, tmp_path: Path
) -> None:
    steps: list[int] = []
    orchestrator, _ = _start(engine, tmp_path / "p", handlers={"slow": _slow_handler(steps)})
    job_id = engine.call(orchestrator.submit_job({"kind": "slow"}))
    _wait_until(lambda: len(steps) >= 5)
    engine.call(orchestrator.stop())
    stopped = engine.call(orchestrator.get_job_status(job_id))
    engine.call(orchestrator.close())
    assert stopped["state"] == "queued"
    assert stopped["attempts"] == 0  # a graceful stop is not a failed attempt
    assert stopped["crash_count"] == 0

    steps.clear()
    again, _ = _start(engine, tmp_path / "p", handlers={"slow": _slow_handler(steps, 20)})
    status = engine.call(again.wait_for(job_id, timeout_s=30))
    metrics = again.get_performance_metrics()
    engine.call(again.close())
    assert status["state"] == "succeeded"
    assert status["attempts"] == 1
    assert metrics["throughput"]["jobs_finished"] == 1
    assert metrics["throughput"]["jobs_per_second"] > 0
    assert metrics["latency"]["average_ms"] > 0
    assert metrics["memory"]["current_mb"] > 10


def test_gpu_jobs_run_one_at_a_time_beside_the_cpu_pool(
    engine: EngineThread, tmp_path: Path
) -> None:
    lock = threading.Lock()
    active = {"gpu": 0, "cpu": 0}
    peaks = {"gpu": 0, "cpu": 0, "both": 0}

    def tracked(kind: str) -> Any:
        def handler(context: JobContext) -> dict[str, Any]:
            with lock:
                active[kind] += 1
                peaks[kind] = max(peaks[kind], active[kind])
                if active["gpu"] and active["cpu"]:
                    peaks["both"] = 1
            time.sleep(0.15)
            with lock:
                active[kind] -= 1
            return {}

        return handler

    orchestrator, _ = _start(
        engine,
        tmp_path / "p",
        {"cpu_workers": 2},
        handlers={"generate": tracked("gpu"), "upscale": tracked("gpu"), "plan": tracked("cpu")},
    )
    requests = [{"kind": k} for k in ("generate", "upscale", "generate", "plan", "plan", "plan")]
    ids = engine.call(orchestrator.submit_batch(requests))
    results = engine.call(orchestrator.drain(ids, timeout_s=30))
    engine.call(orchestrator.close())
    assert all(r["state"] == "succeeded" for r in results)
    assert peaks["gpu"] == 1
    assert peaks["cpu"] == 2
    assert peaks["both"] == 1


def test_checkpoint_restores_job_states(engine: EngineThread, tmp_path: Path) -> None:
    orchestrator = APEXOrchestrator(tmp_path / "p", config=FAST)
    engine.call(orchestrator.initialize())  # not started: jobs stay queued
    first, second = engine.call(orchestrator.submit_batch([{"kind": "qa"}, {"kind": "qa"}]))
    checkpoint = engine.call(orchestrator.create_checkpoint("before cancel", "two queued"))
    assert engine.call(orchestrator.cancel_job(first)) is True
    late = engine.call(orchestrator.submit_job({"kind": "qa"}))
    assert engine.call(orchestrator.restore_from_checkpoint(checkpoint)) is True
    states = {
        j: engine.call(orchestrator.get_job_status(j))["state"] for j in (first, second, late)
    }
    engine.call(orchestrator.close())
    assert states == {first: "queued", second: "queued", late: "cancelled"}


def test_unknown_kind_is_refused(engine: EngineThread, tmp_path: Path) -> None:
    from engine.errors import ParameterError

    orchestrator = APEXOrchestrator(tmp_path / "p")
    with pytest.raises(ParameterError, match="kind"):
        engine.call(orchestrator.submit_job({"kind": "paint-the-moon"}))
    engine.call(orchestrator.close())


_WORKER = textwrap.dedent(
    """
    import asyncio, sys, time
    from pathlib import Path
    from engine.atomic_files import atomic_write_text
    from engine.orchestrator.orchestrator import APEXOrchestrator

    def tick(context):
        out = context.artifact_path("txt")
        if out.exists():
            return {"artifact": str(out), "reused": True}
        for step in range(4):
            context.stage.progress(step, 4)
            time.sleep(0.02)
        atomic_write_text(out, context.job.id)
        return {"artifact": str(out), "reused": False}

    async def main():
        orchestrator = APEXOrchestrator(Path(sys.argv[1]), handlers={"tick": tick},
                                        config={"cpu_workers": 2, "poll_interval_s": 0.01})
        await orchestrator.initialize()
        await orchestrator.start()
        ids = [j["id"] for j in await orchestrator.jobs()]
        await orchestrator.drain(ids)
        await orchestrator.close()

    asyncio.run(main())
    """
)


@pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL is POSIX")
def test_sigkilled_orchestrator_resumes_where_it_stopped(
    engine: EngineThread, tmp_path: Path
) -> None:
    project = tmp_path / "p"
    orchestrator = APEXOrchestrator(project)
    requests: list[dict[str, Any]] = [
        {"id": f"tick-{n:02d}", "kind": "tick", "payload": {"n": n}} for n in range(30)
    ]
    for n, request in enumerate(requests[10:], start=10):  # a chain after ten free ones
        request["depends_on"] = [f"tick-{n - 1:02d}"]
    orchestrator.register_handler("tick", lambda context: {})
    ids = engine.call(orchestrator.submit_batch(requests))
    orchestrator.project.close()
    script = tmp_path / "worker.py"
    script.write_text(_WORKER)
    env = {**os.environ, "PYTHONPATH": str(REPO)}

    def count(state: str) -> int:
        with sqlite3.connect(project / "apex.db") as db:
            return int(
                db.execute("SELECT count(*) FROM job WHERE state = ?", (state,)).fetchone()[0]
            )

    # Kill while a job runs (if it finished in the instant before the kill, kill the
    # next run of the worker: it resumes the queue first).
    for _ in range(5):
        process = subprocess.Popen([sys.executable, str(script), str(project)], env=env)
        try:
            _wait_until(lambda: count("succeeded") >= 8 and count("running") >= 1, 60)
            process.send_signal(signal.SIGKILL)
        finally:
            process.wait(30)
        assert process.returncode == -signal.SIGKILL
        if count("running") >= 1:
            break
    done_before = count("succeeded")
    assert 8 <= done_before < 30
    interrupted = count("running")
    assert interrupted >= 1  # the dead worker's jobs still say running

    finished = subprocess.run(
        [sys.executable, str(script), str(project)],
        check=False,
        env=env,
        timeout=120,
        capture_output=True,
    )
    assert finished.returncode == 0, finished.stderr.decode()[-2000:]
    with sqlite3.connect(project / "apex.db") as db:
        rows = db.execute("SELECT id, state, attempts, crash_count, worker FROM job").fetchall()
    assert len(rows) == 30
    assert {row[1] for row in rows} == {"succeeded"}
    assert all(row[4] is None for row in rows)  # no job left claimed
    assert sum(row[3] for row in rows) == interrupted  # each interrupted job: one crash
    artifacts = sorted((project / "cache" / "artifacts" / "tick").rglob("*.txt"))
    assert len(artifacts) == 30  # none lost, none twice
    assert sorted(p.read_text() for p in artifacts) == sorted(ids)
    assert not [p for p in (project / "cache").rglob("*") if ".tmp" in p.name]


def test_facade_hands_out_the_asset_manager_and_the_projects_orchestrator(
    engine: EngineThread, tmp_path: Path
) -> None:
    from engine.api import APEXDirector

    with APEXDirector(tmp_path / "workspace") as director:
        fallback = director.get_orchestrator()  # no project yet: the default one
        assert fallback.project.path == tmp_path / "workspace" / "default"
        assets = director.get_asset_manager()
        assert director.get_asset_manager() is assets
        project = assets.create_project("Night drive")
        orchestrator = director.get_orchestrator()
        assert orchestrator.project is project
        assert director.get_orchestrator() is orchestrator
        engine.call(orchestrator.start())
        job_id = engine.call(orchestrator.submit_job(_generate(8, ["procedural"])))
        assert engine.call(orchestrator.wait_for(job_id, timeout_s=30))["state"] == "succeeded"
        engine.call(orchestrator.stop())
        stats = engine.call(orchestrator.get_system_stats())
        assert stats["project"]["path"] == str(project.path)
        assert stats["queue"]["succeeded"] == 1 and stats["queue"]["total"] == 1
        assert stats["device"]["kind"]  # reported, or "not probed" without torch


def test_analyse_and_qa_jobs_run_the_real_stages(engine: EngineThread, tmp_path: Path) -> None:
    from engine.audio.synth import SectionSpec, SongSpec, synthesize_song
    from tests.media import write_wav

    song = synthesize_song(
        SongSpec(tempo=120.0, sections=(SectionSpec(label="verse", bars=4, energy=0.6),), seed=1)
    )
    audio = write_wav(tmp_path / "song.wav", song.audio, song.sample_rate)
    (tmp_path / "broken.mp4").write_bytes(b"not a video at all")
    orchestrator, _ = _start(engine, tmp_path / "p")
    analyse, again, qa = engine.call(
        orchestrator.submit_batch(
            [
                {"kind": "analyse", "payload": {"audio_path": str(audio)}},
                {"kind": "analyse", "payload": {"audio_path": str(audio)}},
                {"kind": "qa", "payload": {"video_path": str(tmp_path / "broken.mp4")}},
            ]
        )
    )
    first, second, checked = engine.call(orchestrator.drain([analyse, again, qa], timeout_s=60))
    engine.call(orchestrator.close())
    assert first["state"] == second["state"] == "succeeded"
    made, reused = sorted([first["result"], second["result"]], key=lambda r: r["reused"])
    assert made["tempo"] == pytest.approx(120.0, abs=2.0)
    assert reused == {"artifact": made["artifact"], "reused": True}  # made once
    assert Path(made["artifact"]).read_text().startswith("{")
    assert checked["state"] == "failed" and checked["attempts"] == 1
    assert "does not decode" in checked["error"]


def test_database_locked_by_another_process_delays_jobs_and_loses_none(
    engine: EngineThread, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from engine.assets.project import Project

    project = Project.create(tmp_path / "p", busy_timeout_s=0.2)
    orchestrator = APEXOrchestrator(project, config=FAST, handlers={"noop": lambda c: {"ok": 1}})
    ids = engine.call(orchestrator.submit_batch([{"kind": "noop"} for _ in range(5)]))
    engine.call(orchestrator.initialize())  # (locked at start-up, it raises the typed error)
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sqlite3, sys, time\n"
            "db = sqlite3.connect(sys.argv[1], isolation_level=None)\n"
            "db.execute('BEGIN EXCLUSIVE')\n"
            "print('locked', flush=True)\n"
            "time.sleep(1.5)\n"
            "db.execute('COMMIT')\n",
            str(tmp_path / "p" / "apex.db"),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        engine.call(orchestrator.start())
        results = engine.call(orchestrator.drain(ids, timeout_s=60))
    finally:
        holder.wait(30)
    engine.call(orchestrator.stop())
    project.close()
    assert [r["state"] for r in results] == ["succeeded"] * 5
    assert all(r["attempts"] == 1 for r in results)
    assert "could not read the queue" in caplog.text and "locked" in caplog.text
