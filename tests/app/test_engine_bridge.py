# ruff: noqa: F401, F811 - pytest fixtures imported from tests.app.shell_fixtures
"""The engine bridge: calls off the GUI thread, engine events as Qt signals, projects."""

from __future__ import annotations

import sqlite3
import threading
import wave
from pathlib import Path

import pytest
from pytestqt.qtbot import QtBot

from app.engine_bridge import EngineBridge, ProjectInfo
from engine.api import AudioAnalysis, CancelledError, JobFinished, JobQueued, JobStarted
from tests.app.shell_fixtures import bridge, engine_config, song_file


def test_call_runs_work_off_the_gui_thread_and_answers_on_it(
    bridge: EngineBridge, qtbot: QtBot
) -> None:
    gui = threading.get_ident()
    seen: dict[str, int] = {}

    def work() -> int:
        seen["worker"] = threading.get_ident()
        return 42

    results: list[object] = []
    with qtbot.waitSignal(bridge.busy_changed, timeout=5000, check_params_cb=lambda b: not b):
        bridge.call(work, on_done=lambda value: results.append((value, threading.get_ident())))
    assert results == [(42, gui)]
    assert seen["worker"] != gui


def test_a_coroutine_runs_on_the_engine_loop(bridge: EngineBridge, qtbot: QtBot) -> None:
    import asyncio

    async def work() -> str:
        await asyncio.sleep(0.01)
        return threading.current_thread().name

    results: list[str] = []
    with qtbot.waitSignal(bridge.busy_changed, timeout=5000, check_params_cb=lambda b: not b):
        bridge.call(work(), on_done=results.append)
    assert results == ["apex-gui-engine"]


def test_errors_reach_on_error_or_the_error_signal_and_cancels_neither(
    bridge: EngineBridge, qtbot: QtBot
) -> None:
    def boom() -> None:
        raise ValueError("the file is\n  broken")

    caught: list[BaseException] = []
    with qtbot.waitSignal(bridge.busy_changed, timeout=5000, check_params_cb=lambda b: not b):
        bridge.call(boom, on_error=caught.append)
    assert isinstance(caught[0], ValueError)
    with qtbot.waitSignal(bridge.error_occurred, timeout=5000) as blocker:
        bridge.call(boom)
    assert blocker.args == ["the file is broken"]  # one line

    def cancelled() -> None:
        raise CancelledError("the user stopped it")

    errors: list[str] = []
    bridge.error_occurred.connect(errors.append)
    with qtbot.waitSignal(bridge.busy_changed, timeout=5000, check_params_cb=lambda b: not b):
        bridge.call(cancelled, on_error=lambda err: errors.append("on_error"))
    assert errors == []


def test_a_song_becomes_a_project_whose_analysis_arrives_as_a_signal(
    bridge: EngineBridge, qtbot: QtBot, song_file: Path
) -> None:
    events: list[object] = []
    for signal in (bridge.job_queued, bridge.job_started, bridge.job_finished):
        signal.connect(events.append)
    with (
        qtbot.waitSignal(bridge.project_opened, timeout=20000) as opened,
        qtbot.waitSignal(bridge.analysis_ready, timeout=60000) as analysed,
    ):
        bridge.new_project_from_audio(song_file)
    info = opened.args[0]
    assert isinstance(info, ProjectInfo)
    assert info.path.parent == bridge.workspace
    assert (info.path / "project.apex.json").is_file()
    # the song is copied into the project: moving the original loses nothing
    assert info.audio_path.is_relative_to(info.path / "assets")
    assert info.audio_path.read_bytes() == song_file.read_bytes()
    assert info.settings["audio_source"] == str(song_file)
    assert info.settings["song_name"] == "night drive.wav"
    analysis = analysed.args[0]
    assert isinstance(analysis, AudioAnalysis)
    with wave.open(str(song_file)) as handle:
        seconds = handle.getnframes() / handle.getframerate()
    assert analysis.duration == pytest.approx(seconds, abs=0.05)
    assert 140 <= analysis.tempo <= 160
    assert len(analysis.sections) >= 1
    kinds = [(type(e).__name__, getattr(e, "kind", None)) for e in events]
    assert ("JobQueued", "analyse") in kinds and ("JobStarted", "analyse") in kinds
    assert any(isinstance(e, JobFinished) for e in events)
    assert all(isinstance(e, JobQueued | JobStarted | JobFinished) for e in events)


def test_opening_a_missing_or_empty_folder_is_an_error_message(
    bridge: EngineBridge, qtbot: QtBot, tmp_path: Path
) -> None:
    with qtbot.waitSignal(bridge.error_occurred, timeout=10000) as blocker:
        bridge.open_project(tmp_path / "nowhere")
    assert "nowhere" in blocker.args[0] and "no project.apex.json" in blocker.args[0]
    assert bridge.project is None
    assert not (tmp_path / "nowhere").exists()  # nothing made on the way


def test_a_locked_project_is_an_error_message_not_a_crash(
    tmp_path: Path, qtbot: QtBot, song_file: Path
) -> None:
    first = EngineBridge(tmp_path / "projects", config=engine_config(busy_timeout_s=0.3))
    with qtbot.waitSignal(first.project_opened, timeout=20000) as opened:
        first.new_project_from_audio(song_file)
    folder = opened.args[0].path
    first.shutdown()
    holder = sqlite3.connect(folder / "apex.db", isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")  # another process or window writing to it
    second = EngineBridge(tmp_path / "projects", config=engine_config(busy_timeout_s=0.3))
    try:
        with qtbot.waitSignal(second.error_occurred, timeout=20000) as blocker:
            second.open_project(folder)
        assert "locked" in blocker.args[0]
        assert second.project is None
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    with qtbot.waitSignal(second.project_opened, timeout=20000):
        second.open_project(folder / "project.apex.json")  # unlocked: opens fine
    second.shutdown()


def test_a_bad_drop_path_never_leaves_an_empty_project(
    bridge: EngineBridge, qtbot: QtBot, tmp_path: Path
) -> None:
    empty = tmp_path / "empty.wav"
    empty.write_bytes(b"")
    with qtbot.waitSignal(bridge.error_occurred, timeout=5000) as blocker:
        bridge.new_project_from_audio(empty)
    assert "empty" in blocker.args[0]
    with qtbot.waitSignal(bridge.error_occurred, timeout=5000) as blocker:
        bridge.new_project_from_audio(tmp_path / "gone.mp3")
    assert "not there" in blocker.args[0]
    assert not (tmp_path / "projects").exists() or not any((tmp_path / "projects").iterdir())


def test_a_broken_project_file_is_an_error_message(
    bridge: EngineBridge, qtbot: QtBot, tmp_path: Path
) -> None:
    folder = tmp_path / "broken-project"
    folder.mkdir()
    (folder / "project.apex.json").write_text('{"schema_version": 1, "name": ')
    with qtbot.waitSignal(bridge.error_occurred, timeout=10000) as blocker:
        bridge.open_project(folder)
    assert "project.apex.json" in blocker.args[0]
    assert bridge.project is None


def test_a_missing_model_fails_the_render_with_a_message_not_a_crash(
    tmp_path: Path, qtbot: QtBot, song_file: Path
) -> None:
    config = engine_config()
    config["render"]["backend_order"] = ["diffusers"]
    config["render"]["model"] = str(tmp_path / "no-such-model.safetensors")
    # the engine retries a failed backend (BackendError is transient): keep the test short
    config["orchestrator"] = {"max_attempts": 1}
    bridge = EngineBridge(tmp_path / "projects", config=config)
    failures: list[object] = []
    bridge.job_failed.connect(failures.append)
    try:
        with qtbot.waitSignal(bridge.analysis_ready, timeout=60000):
            bridge.new_project_from_audio(song_file)
        bridge.render(preset="draft")
        qtbot.waitUntil(
            lambda: any(e.job_id.endswith("-generate") for e in failures), timeout=120000
        )
        generate = next(e for e in failures if e.job_id.endswith("-generate"))
        assert "no-such-model.safetensors" in generate.error
        assert bridge.project is not None  # the project stays open and usable
    finally:
        bridge.shutdown()
