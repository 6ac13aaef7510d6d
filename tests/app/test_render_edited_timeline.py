# ruff: noqa: F401, F811 - pytest fixtures imported from tests.app.shell_fixtures
"""The GUI renders the user's edit: a clip split with S is a cut in the next render."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PySide6.QtCore import QPoint, QSettings, Qt
from pytestqt.qtbot import QtBot

from app.engine_bridge import EngineBridge
from app.main_window import MainWindow
from app.widgets.render_queue import group_of
from tests.app.shell_fixtures import (
    drop_files,
    engine_config,
    fast_window,
    gui_settings,
    song_file,
)
from tests.engine.test_render_edited_timeline import detect_cuts, small_frames


def _render(window: MainWindow, qtbot: QtBot) -> Path:
    """Queue a draft render with the render queue's button; the finished video."""
    queue = window.render_queue
    with qtbot.waitSignal(window.bridge.render_queued, timeout=20000) as queued:
        qtbot.mouseClick(queue.render_button, Qt.MouseButton.LeftButton)
    key, _ = group_of(queued.args[0])
    qtbot.waitUntil(lambda: queue.rows[key].state == "succeeded", timeout=120000)
    return Path(queue.rows[key].output)


def test_a_split_made_with_s_is_a_cut_in_the_next_render(
    fast_window: MainWindow, qtbot: QtBot, song_file: Path
) -> None:
    window = fast_window
    with qtbot.waitSignal(window.timeline_shown, timeout=90000):
        drop_files(window, [song_file])
    with qtbot.waitSignal(window.timeline_shown, timeout=120000):
        planned_video = _render(window, qtbot)
    planned = small_frames(planned_video)
    planned_copy = planned_video.with_name("planned-copy.mp4")
    planned_copy.write_bytes(planned_video.read_bytes())

    model, timeline = window.timeline.model, window.timeline
    clips_before = len(model.clips)
    longest = max(model.clips, key=lambda c: c.duration)
    x = round(timeline.x_at((longest.start.seconds + longest.end.seconds) / 2))
    qtbot.mouseClick(timeline.viewport(), Qt.MouseButton.LeftButton, pos=QPoint(x, 8))
    timeline.setFocus()
    qtbot.keyClick(timeline, Qt.Key.Key_S)
    assert len(model.clips) == clips_before + 1
    new = next(c for c in model.clips if c.clip_id.startswith(f"{longest.clip_id}."))
    fps = model.document.fps
    cut = new.start.frame(fps)

    edited = small_frames(_render(window, qtbot))
    assert len(edited) == len(planned)
    found, before = detect_cuts(edited), detect_cuts(planned)
    assert any(abs(f - cut) <= 1 for f in found), (cut, found)
    assert all(abs(f - cut) > 1 for f in before), (cut, before)
    # the render used the user's edit, frozen when it was queued
    edits = list((window.bridge.project.path / "cache" / "edits").glob("*.timeline.json"))
    assert len(edits) == 1
    # and the timeline kept the edit (with its undo history) after the render
    assert len(model.clips) == clips_before + 1 and model.undo_stack.count() == 1
