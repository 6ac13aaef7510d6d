"""Render stages in a child process (the orchestrator's ``stage_isolation = "process"``).

A short synthesized song is rendered (draft) through the job chain in thread mode and in
process mode: the videos match, progress arrives in the parent while the child works,
and the work ran in another pid.  A cancel mid-render ends the job cancelled with no
video; a child SIGKILLed mid-job fails that attempt with the typed StageProcessError and
the retry (in a fresh child) finishes the render; a typed error raised in the child
arrives as its own type; an encrypted project's sealed song renders in process mode.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import signal
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from engine.audio.synth import SectionSpec, SongSpec, synthesize_song
from engine.config.schema import default_config
from engine.context import StageContext
from engine.errors import CancelledError, MediaInputError, ParameterError
from engine.events import JobEvent, JobProgress
from engine.orchestrator.orchestrator import APEXOrchestrator
from engine.orchestrator.render_jobs import prepare_render, run_render
from engine.orchestrator.render_pipeline import RenderRequest
from engine.orchestrator.stage_process import StageProcessError, StageProcesses
from tests.media import write_wav

PROBE = "engine.orchestrator.stage_process:probe"
RENDER = "engine.orchestrator.stage_process:render_stage"


def config(isolation: str, **orchestrator: Any) -> dict[str, Any]:
    cfg = default_config()
    cfg["qa"]["enabled"] = False
    cfg["grade"]["section_looks"] = ""
    cfg["orchestrator"] = {**cfg.get("orchestrator", {}), "stage_isolation": isolation}
    cfg["orchestrator"].update(orchestrator)
    return cfg


@pytest.fixture(scope="module")
def song(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 6.4 s song: four bars at 150 bpm."""
    spec = SongSpec(tempo=150.0, sections=(SectionSpec(label="verse", bars=4, energy=0.6),), seed=3)
    made = synthesize_song(spec)
    return write_wav(tmp_path_factory.mktemp("song") / "song.wav", made.audio, made.sample_rate)


def frames(path: Path) -> np.ndarray:
    import av

    with av.open(str(path)) as container:
        return np.stack(
            [
                f.reformat(width=160, height=90, format="gray").to_ndarray().astype(np.float32)
                for f in container.decode(video=0)
            ]
        )


def request(song: Path, folder: Path, name: str) -> RenderRequest:
    return RenderRequest(
        audio_path=song,
        output_path=folder / f"{name}.mp4",
        preset="draft",
        cache_dir=folder / f"cache-{name}",
    )


def test_process_render_matches_thread_render(
    song: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    threaded = request(song, tmp_path, "thread")
    run_render(threaded, config=config("thread"))
    events: list[tuple[float, JobEvent]] = []
    isolated = request(song, tmp_path, "process")
    caplog.set_level(logging.DEBUG)
    started = time.monotonic()
    report = run_render(
        isolated,
        config=config("process"),
        sink=lambda e: events.append((time.monotonic(), e)),
    )
    finished = time.monotonic()
    ours, theirs = frames(isolated.output_path), frames(threaded.output_path)
    assert report["output"]["frames"] == len(ours) == len(theirs) > 0
    assert float(np.abs(ours - theirs).mean()) < 1.0
    # progress of every stage reached the parent, spread over the render
    progress = [(t, e) for t, e in events if isinstance(e, JobProgress)]
    assert {e.stage for _, e in progress} >= {"analyse", "plan", "generate", "assemble"}
    assert progress[0][0] < finished - 0.5 and progress[0][0] >= started
    # the stages ran in another process, whose log records reached this one's logging
    remote = [r for r in caplog.records if "runs in the stage process" in r.getMessage()]
    assert len(remote) >= 4
    assert all(r.process != os.getpid() for r in remote)
    assert {r.name for r in remote} >= {"engine.jobs.generate", "engine.jobs.assemble"}


def test_child_imports_no_gui_and_is_reused() -> None:
    processes = StageProcesses()
    try:
        first = processes.run(PROBE, {}, StageContext())
        second = processes.run(PROBE, {}, StageContext())
    finally:
        processes.close()
    assert first["pid"] != os.getpid()
    assert first["pid"] == second["pid"]  # one child per worker thread, kept
    assert first["gui_imported"] is False
    assert processes.pids() == []


def test_a_typed_error_arrives_as_its_type(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-song.wav"
    processes = StageProcesses()
    try:
        with pytest.raises(MediaInputError) as caught:
            processes.run(
                RENDER,
                {
                    "request": request(missing, tmp_path, "x"),
                    "config": config("process"),
                    "until": "analyse",
                },
                StageContext(stage="analyse"),
            )
    finally:
        processes.close()
    assert str(missing) in str(caught.value)
    assert Path(caught.value.path) == missing  # its attributes came along


def test_stage_isolation_is_validated(tmp_path: Path) -> None:
    with pytest.raises(ParameterError, match="stage_isolation"):
        APEXOrchestrator(tmp_path / "p", config={"orchestrator": {"stage_isolation": "fiber"}})


class Chain:
    """A render's job chain in an orchestrator of its own, on an engine thread."""

    def __init__(self, folder: Path, cfg: dict[str, Any]) -> None:
        from engine.orchestrator.engine_thread import EngineThread

        self.engine = EngineThread()
        self.engine.__enter__()
        self.orchestrator = APEXOrchestrator(folder / "project", config=cfg)
        self.cfg = cfg

    def render(self, req: RenderRequest, sink: Any) -> dict[str, Any]:
        call = self.engine.call
        self.orchestrator.subscribe(sink)
        call(self.orchestrator.initialize())
        final = call(prepare_render(self.orchestrator, req, self.cfg))
        call(self.orchestrator.start())
        return call(self.orchestrator.wait_for(final, timeout_s=120), timeout_s=150)

    def close(self) -> None:
        self.engine.call(self.orchestrator.stop(timeout_s=30), timeout_s=60)
        self.orchestrator.project.close()
        self.engine.__exit__(None, None, None)


def test_cancel_mid_render_stops_the_child(song: Path, tmp_path: Path) -> None:
    chain = Chain(tmp_path, config("process"))
    req = request(song, tmp_path, "cancelled")
    asked: dict[str, Any] = {}

    def sink(event: JobEvent) -> None:
        if isinstance(event, JobProgress) and event.stage == "generate" and not asked:
            asked["at"] = time.monotonic()
            asked["pids"] = chain.orchestrator.stage_processes.pids()
            # from the engine's own loop, as the GUI's cancel button does
            chain.orchestrator._loop.call_soon_threadsafe(
                lambda: chain.orchestrator._loop.create_task(
                    chain.orchestrator.cancel_job(event.job_id)
                )
            )
            asked["job"] = event.job_id

    try:
        final = chain.render(req, sink)
        ended = time.monotonic()
        job = chain.engine.call(chain.orchestrator.get_job_status(asked["job"]))
    finally:
        chain.close()
    assert job["state"] == "cancelled"
    assert final["state"] in {"cancelled", "failed"}  # the render job after it
    assert ended - asked["at"] < 8.0
    assert asked["pids"] and os.getpid() not in asked["pids"]
    assert not req.output_path.exists()
    leftovers = [p.name for p in tmp_path.iterdir() if p.name.startswith("cancelled")]
    assert leftovers == []
    assert not any(p.name.endswith(".tmp") for p in req.output_path.parent.iterdir())


def test_a_killed_child_fails_the_attempt_and_the_retry_renders(
    song: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="engine")
    chain = Chain(tmp_path, config("process", retry_base_delay_s=0.1, retry_jitter=0.0))
    req = request(song, tmp_path, "killed")
    killed: list[int] = []

    def sink(event: JobEvent) -> None:
        if isinstance(event, JobProgress) and event.stage == "generate" and not killed:
            pids = chain.orchestrator.stage_processes.pids()
            for pid in pids:
                os.kill(pid, signal.SIGKILL)
            killed.extend(pids)

    try:
        final = chain.render(req, sink)
        errors = chain.orchestrator._exceptions
        stats = chain.engine.call(chain.orchestrator.get_system_stats())
    finally:
        chain.close()
    assert killed and os.getpid() not in killed
    assert final["state"] == "succeeded"
    assert stats["errors"]["by_type"].get("StageProcessError", 0) >= 1
    assert stats["errors"]["recovered"] >= 1
    assert not errors  # the failed attempt's error went once its retry succeeded
    said = [r.getMessage() for r in caplog.records if "retry in" in r.getMessage()]
    assert any(
        "StageProcessError: the render process stopped (SIGKILL, signal 9 — out of memory?)" in m
        for m in said
    ), said
    assert frames(req.output_path).shape[0] == final["result"]["report"]["output"]["frames"]


def test_stage_process_error_says_what_happened() -> None:
    message = str(StageProcessError(-9))
    assert message == (
        "the render process stopped (SIGKILL, signal 9 — out of memory?); "
        "the job is retried while it has attempts left"
    )
    assert "exit code 3" in str(StageProcessError(3))


def test_cancel_reaches_the_child_directly(song: Path, tmp_path: Path) -> None:
    processes = StageProcesses()
    cancel = threading.Event()

    def sink(event: JobEvent) -> None:
        if isinstance(event, JobProgress):
            cancel.set()

    try:
        with pytest.raises(CancelledError):
            processes.run(
                RENDER,
                {
                    "request": request(song, tmp_path, "direct"),
                    "config": config("process"),
                    "until": None,
                },
                StageContext(sink=sink, cancel_event=cancel, stage="assemble"),
            )
        # the same child runs the next job
        assert processes.run(PROBE, {}, StageContext())["pid"] in processes.pids()
    finally:
        processes.close()


def test_sealed_song_renders_in_process_mode(
    song: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    pytest.importorskip("cryptography")
    from tests.integration.test_encrypted_render import PASSPHRASE, _encrypted_project

    secret = tmp_path / "passphrase.txt"
    secret.write_text(PASSPHRASE + "\n")
    project = tmp_path / "project"
    sealed = _encrypted_project(project, song, secret)
    req = dataclasses.replace(
        request(sealed, tmp_path, "sealed"), output_path=project / "renders" / "v.mp4"
    )
    req = dataclasses.replace(req, cache_dir=None)
    caplog.set_level(logging.DEBUG, logger="engine")  # the CLI above set it to INFO
    report = run_render(req, config=config("process"), project_dir=project, passphrase=PASSPHRASE)
    assert report["output"]["frames"] == len(frames(req.output_path)) > 0
    remote = [r for r in caplog.records if "runs in the stage process" in r.getMessage()]
    assert remote and all(r.process != os.getpid() for r in remote)


def test_an_analyse_job_runs_in_the_child(
    song: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from engine.orchestrator.engine_thread import EngineThread

    caplog.set_level(logging.DEBUG, logger="engine")
    progress: list[JobEvent] = []
    with EngineThread() as engine:
        orchestrator = APEXOrchestrator(tmp_path / "project", config=config("process"))
        orchestrator.subscribe(lambda e: progress.append(e) if isinstance(e, JobProgress) else None)
        try:
            engine.call(orchestrator.start())
            job = engine.call(
                orchestrator.submit_job({"kind": "analyse", "payload": {"audio_path": str(song)}})
            )
            status = engine.call(orchestrator.wait_for(job, timeout_s=60), timeout_s=90)
            # the memory the app reports counts its stage process too
            memory = orchestrator.get_performance_metrics()["memory"]
        finally:
            engine.call(orchestrator.stop(timeout_s=30), timeout_s=60)
            orchestrator.project.close()
    assert status["state"] == "succeeded"
    assert memory["stage_processes_mb"] > 20  # an interpreter with numpy and PyAV loaded
    assert memory["current_mb"] == pytest.approx(
        memory["process_mb"] + memory["stage_processes_mb"]
    )
    result = status["result"]
    assert 140 < result["tempo"] < 160
    written = json.loads(Path(result["artifact"]).read_text())
    assert written["tempo"] == pytest.approx(result["tempo"], abs=0.01)
    assert progress and all(e.job_id == job for e in progress)
    remote = [r for r in caplog.records if "runs in the stage process" in r.getMessage()]
    assert remote and all(r.process != os.getpid() for r in remote)


def _gone(pid: int) -> bool:
    """Whether ``pid`` has exited (a zombie nobody reaped counts as gone)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return True
    return "\nState:\tZ" in status


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="reads /proc")
def test_the_child_ends_when_its_parent_is_killed_mid_render(song: Path, tmp_path: Path) -> None:
    import subprocess
    import sys

    req = request(song, tmp_path, "orphan")
    script = f"""
import os, sys, time
from pathlib import Path
from engine.context import StageContext
from engine.events import JobProgress
from engine.orchestrator.render_pipeline import RenderRequest
from engine.orchestrator.stage_process import StageProcesses

processes = StageProcesses()
said = []

def sink(event):
    if isinstance(event, JobProgress) and event.stage == "generate" and not said:
        said.append(1)
        print(processes.pids()[0], flush=True)
        time.sleep(60)  # killed here, mid-render

request = RenderRequest(audio_path=Path({str(song)!r}), output_path=Path({str(req.output_path)!r}),
                        preset="draft", cache_dir=Path({str(req.cache_dir)!r}))
processes.run({RENDER!r}, {{"request": request, "config": {config("process")!r}, "until": None}},
              StageContext(sink=sink, stage="generate"))
"""
    parent = subprocess.Popen(
        [sys.executable, "-c", script],
        cwd=Path(__file__).parents[2],
        stdout=subprocess.PIPE,
        # the killed parent's resource tracker warns about its semaphores: not ours to show
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        child = int(parent.stdout.readline())  # type: ignore[union-attr]
        assert not _gone(child)
        parent.kill()
        parent.wait()
        deadline = time.monotonic() + 5.0
        while not _gone(child) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert _gone(child)
        assert not req.output_path.exists()
    finally:
        parent.kill()
