# ruff: noqa: F401, F811 - pytest fixtures imported from tests.app.shell_fixtures
"""The render queue: a draft render to 100 % with a valid output and QC verdict, the
persistent queue after a restart, cancel (not an error) and retry."""

from __future__ import annotations

from pathlib import Path

import pytest
from PySide6.QtCore import Qt
from pytestqt.qtbot import QtBot

from app.engine_bridge import EngineBridge
from app.widgets.render_queue import RENDER_STAGES, QueueRow, RenderQueueWidget, group_of
from tests.app.shell_fixtures import bridge, engine_config, song_file
from tests.media import read_audio, read_video_frames


def _open_song(bridge: EngineBridge, qtbot: QtBot, song: Path) -> None:
    with qtbot.waitSignal(bridge.analysis_ready, timeout=60000):
        bridge.new_project_from_audio(song)


def test_group_of_puts_a_renders_six_jobs_in_one_row() -> None:
    assert group_of("render-0123abcd0123abcd-generate") == ("render-0123abcd0123abcd", "generate")
    assert group_of("render-0123abcd0123abcd-2-qa") == ("render-0123abcd0123abcd-2", "qa")
    assert group_of("5f1e2d") == ("5f1e2d", None)


def test_a_draft_render_reaches_100_percent_with_a_valid_output_and_qc(
    bridge: EngineBridge, qtbot: QtBot, song_file: Path, tmp_path: Path
) -> None:
    queue = RenderQueueWidget(bridge)
    queue.open_externally = False
    qtbot.addWidget(queue)
    queue.show()
    _open_song(bridge, qtbot, song_file)
    assert queue.render_button.isEnabled()
    progress: list[float] = []
    queue.row_changed.connect(
        lambda key: progress.append(queue.rows[key].progress) if key.startswith("render-") else None
    )
    with qtbot.waitSignal(bridge.render_queued, timeout=20000) as queued:
        qtbot.mouseClick(queue.render_button, Qt.MouseButton.LeftButton)
    key, stage = group_of(queued.args[0])
    assert stage == "render"
    qtbot.waitUntil(lambda: queue.rows[key].state == "succeeded", timeout=120000)
    row = queue.rows[key]
    assert row.progress == 1.0
    assert progress[-1] == 1.0 and any(0.0 < p < 1.0 for p in progress)
    assert progress == sorted(progress)  # never goes backwards
    item = queue._items[key]
    assert item.text(0) == "Render draft · night drive-draft.mp4"
    assert queue._bars[key].value() == 1000 and queue._bars[key].text() == "100 %"
    assert item.text(4) == "passed" and item.toolTip(4).startswith("QC passed")
    output = row.output
    assert output is not None and output.parent == bridge.project.path / "renders"
    frames, fps = read_video_frames(output)
    assert len(frames) > 100 and fps > 0
    audio, rate = read_audio(output)
    assert audio.shape[1] / rate > 10.0
    # open output: select the row, click the button
    queue.select(key)
    with qtbot.waitSignal(queue.output_opened, timeout=2000) as opened:
        qtbot.mouseClick(queue.open_button, Qt.MouseButton.LeftButton)
    assert opened.args[0] == output

    # the queue persists: a new bridge on the same project shows the finished render
    folder = bridge.project.path
    bridge.shutdown()
    again = EngineBridge(tmp_path / "projects", config=engine_config())
    reopened = RenderQueueWidget(again)
    qtbot.addWidget(reopened)
    try:
        with qtbot.waitSignal(reopened.row_changed, timeout=20000):
            again.open_project(folder)
        qtbot.waitUntil(lambda: key in reopened.rows, timeout=10000)
        assert reopened.rows[key].state == "succeeded"
        assert reopened.rows[key].progress == 1.0
        assert reopened.rows[key].qc[0] is True
        assert reopened.rows[key].output == output
    finally:
        again.shutdown()


def test_cancel_is_not_an_error_and_retry_queues_again(
    bridge: EngineBridge, qtbot: QtBot, song_file: Path
) -> None:
    queue = RenderQueueWidget(bridge)
    qtbot.addWidget(queue)
    queue.show()
    errors: list[str] = []
    bridge.error_occurred.connect(errors.append)
    bridge.job_failed.connect(lambda event: errors.append(event.error))
    _open_song(bridge, qtbot, song_file)
    with qtbot.waitSignal(bridge.render_queued, timeout=20000) as queued:
        bridge.render(preset="web")
    key, _ = group_of(queued.args[0])
    qtbot.waitUntil(lambda: key in queue.rows, timeout=5000)
    queue.select(key)
    assert queue.cancel_button.isEnabled() and not queue.retry_button.isEnabled()
    qtbot.mouseClick(queue.cancel_button, Qt.MouseButton.LeftButton)
    # the queued stages are cancelled at once, the running one at its next safe point
    qtbot.waitUntil(lambda: queue.rows[key].actionable("cancel") is None, timeout=30000)
    assert queue.rows[key].state == "cancelled"
    assert errors == []
    assert queue.retry_button.isEnabled() and not queue.cancel_button.isEnabled()
    with qtbot.waitSignal(bridge.job_queued, timeout=10000):
        qtbot.mouseClick(queue.retry_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: queue.rows[key].state in ("queued", "running"), timeout=10000)
    # stop it again so the test ends quickly
    qtbot.mouseClick(queue.cancel_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: queue.rows[key].state == "cancelled", timeout=30000)
    assert errors == []


def test_a_rows_progress_eta_and_actions_follow_its_stage_jobs() -> None:
    row = QueueRow(key="render-00ff", kind="render")
    ids = row.job_ids()
    assert [i.rsplit("-", 1)[1] for i in ids] == list(RENDER_STAGES)
    assert row.state == "queued" and row.progress == 0.0 and row.eta_s(100.0) is None
    assert row.actionable("cancel") == ids[0] and row.actionable("retry") is None
    row.started_at = 100.0
    row.states.update({ids[0]: "succeeded", ids[1]: "succeeded", ids[2]: "running"})
    row.fractions[ids[2]] = 0.5
    assert row.state == "running"
    assert row.progress == (2 + 0.5) / 6
    # 25 s for 2.5 of 6 stages: 35 s to go at that rate
    assert row.eta_s(125.0) == pytest.approx(35.0)
    assert row.actionable("cancel") == ids[2]
    row.states[ids[2]] = "failed"
    row.states.update({i: "failed" for i in ids[3:]})
    assert row.state == "failed" and row.actionable("retry") == ids[2]
    assert row.actionable("cancel") is None and row.eta_s(130.0) is None
    row.result = {"report": {"qc": {"passed": False, "summary": "QC FAILED: loud"}}}
    assert row.qc == (False, "QC FAILED: loud") and row.output is None
