# ruff: noqa: F401, F811 - pytest fixtures imported from tests.app.shell_fixtures
"""The main window: a song dropped to a finished draft render, first-run guidance, the
remembered layout, shortcuts, the status bar and errors shown without a crash."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from PySide6.QtCore import QPoint, QSettings, Qt
from pytestqt.qtbot import QtBot

from app.main_window import MainWindow
from app.widgets.render_queue import group_of
from tests.app.shell_fixtures import drop_files, gui_settings, make_window, song_file, window
from tests.media import read_video_frames


def test_main_window_opens_with_title(window: MainWindow) -> None:
    assert window.windowTitle().startswith("APEX Director")
    assert window.statusBar().currentMessage() == "Ready"
    menus = [action.text() for action in window.menuBar().actions()]
    assert menus == ["&File", "&Render", "&View", "&Help"]
    # nothing to save or render before a project is open
    assert not window.save_action.isEnabled() and not window.render_draft_action.isEnabled()


def test_song_dropped_to_sections_on_the_timeline_to_a_draft_render_to_a_saved_edit(
    window: MainWindow, qtbot: QtBot, song_file: Path
) -> None:
    with qtbot.waitSignal(window.timeline_shown, timeout=90000):
        drop_files(window, [song_file])
    analysis = window.bridge.analysis
    model = window.timeline.model
    assert [band.label for band in model.sections] == [s.label for s in analysis.sections]
    assert abs(model.duration - analysis.duration) < 0.1
    assert model.beats and set(model.downbeats) <= set(model.beats)
    assert model.waveform is not None
    assert model.clips == ()  # the shots come with the first render
    assert window.pages.currentWidget() is window.project_page

    window.activateWindow()
    qtbot.waitUntil(window.isActiveWindow, timeout=5000)
    with qtbot.waitSignal(window.bridge.render_queued, timeout=20000) as queued:
        qtbot.keyClick(window, Qt.Key.Key_R, Qt.KeyboardModifier.ControlModifier)
    key, _ = group_of(queued.args[0])
    queue = window.render_queue
    with qtbot.waitSignal(window.timeline_shown, timeout=120000):
        qtbot.waitUntil(lambda: queue.rows[key].state == "succeeded", timeout=120000)
    # the timeline now shows the rendered edit: every clip's still exists
    assert all(Path(p).is_file() for clip in model.clips for p in clip.source.paths)
    assert queue.rows[key].progress == 1.0
    assert queue._bars[key].text() == "100 %"
    frames, _fps = read_video_frames(queue.rows[key].output)
    assert len(frames) > 100
    assert queue.rows[key].qc[0] is True
    # the status bar follows the queue
    qtbot.waitUntil(lambda: "0 running" in window.queue_label.text(), timeout=10000)
    # ... and the memory of the window and of the render processes the render ran in
    qtbot.waitUntil(lambda: "render processes" in window.memory_label.toolTip(), timeout=10000)
    children = float(window.memory_label.toolTip().split("render processes ")[1].split()[0])
    assert children > 20  # an interpreter with the engine loaded
    assert all(level != "error" for level, _ in window.message_bar.messages())

    # an edit (S splits the shot under the playhead) is saved in the project and comes back
    folder = window.bridge.project.path
    timeline = window.timeline
    clips_before = len(model.clips)
    first = model.clips[0]
    x = round(timeline.x_at((first.start.seconds + first.end.seconds) / 2))
    qtbot.mouseClick(timeline.viewport(), Qt.MouseButton.LeftButton, pos=QPoint(x, 8))
    timeline.setFocus()
    qtbot.keyClick(timeline, Qt.Key.Key_S)
    assert len(model.clips) == clips_before + 1
    qtbot.waitUntil((folder / "edit.timeline.json").is_file, timeout=10000)
    with qtbot.waitSignal(window.bridge.project_closed, timeout=20000):
        window.close_action.trigger()
    with qtbot.waitSignal(window.timeline_shown, timeout=60000):
        window.recent_menu.actions()[0].trigger()
    assert len(window.timeline.model.clips) == clips_before + 1


def test_fresh_environment_says_what_to_do_next(
    tmp_path: Path, gui_settings: QSettings, qtbot: QtBot
) -> None:
    config = tmp_path / "config" / "config.toml"
    config.parent.mkdir()
    config.write_text(f'[paths]\nmodels_dir = "{tmp_path / "no-models-here"}"\n')
    window = make_window(tmp_path, gui_settings, probe_device=True, config_path=config)
    qtbot.addWidget(window)
    window.show()
    try:
        assert window.pages.currentWidget() is window.welcome
        assert "Drop a song" in window.welcome.next_step.text()
        assert not window.welcome.recent.isVisible()  # no projects yet
        qtbot.waitUntil(lambda: "No models yet" in window.welcome.models.text(), timeout=10000)
        assert "no-models-here is not there" in window.welcome.models.text()
        assert "apex-director models pull" in window.welcome.models.text()
        # this machine has no GPU (the CPU build of torch): the window says what that means
        qtbot.waitUntil(lambda: "No GPU" in window.welcome.device.text(), timeout=60000)
        assert window.device_label.text() == "device: CPU"
    finally:
        window.close()


def test_a_broken_config_file_is_a_warning_not_a_crash(
    tmp_path: Path, gui_settings: QSettings, qtbot: QtBot
) -> None:
    config = tmp_path / "config" / "config.toml"
    config.parent.mkdir()
    config.write_text("[render\npreset = ")
    window = make_window(tmp_path, gui_settings, config_path=config)
    qtbot.addWidget(window)
    window.show()
    try:
        level, text = window.message_bar.messages()[0]
        assert level == "warning" and "not valid TOML" in text and "defaults" in text
        assert window.welcome.config_problem.isVisibleTo(window)
    finally:
        window.close()


def test_the_dock_layout_is_remembered(
    tmp_path: Path, gui_settings: QSettings, qtbot: QtBot
) -> None:
    first = make_window(tmp_path, gui_settings)
    qtbot.addWidget(first)
    first.show()
    qtbot.waitExposed(first)
    dock = first.docks["renderQueueDock"]
    assert dock.isVisible()
    dock.toggleViewAction().trigger()  # View ▸ Render queue
    first.close()
    assert gui_settings.value("geometry") is not None
    assert not dock.isVisible()

    second = make_window(tmp_path, gui_settings)
    qtbot.addWidget(second)
    second.show()
    qtbot.waitExposed(second)
    try:
        assert not second.docks["renderQueueDock"].isVisible()
        assert second.docks["styleBibleDock"].isVisible() or second.docks["gradingDock"].isVisible()
        second.reset_layout()
        assert second.docks["renderQueueDock"].isVisible()
    finally:
        second.close()


def test_a_locked_project_from_the_recent_menu_is_a_message_not_a_crash(
    window: MainWindow, qtbot: QtBot, song_file: Path
) -> None:
    with qtbot.waitSignal(window.bridge.analysis_ready, timeout=60000):
        window.bridge.new_project_from_audio(song_file)
    folder = window.bridge.project.path
    with qtbot.waitSignal(window.bridge.project_closed, timeout=20000):
        window.close_action.trigger()
    recent = window.recent_menu.actions()
    assert [a.text() for a in recent] == [str(folder)]
    holder = sqlite3.connect(folder / "apex.db", isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")  # another window or command is writing to it
    try:
        with qtbot.waitSignal(window.message_bar.message_shown, timeout=20000) as shown:
            recent[0].trigger()
        level, text = shown.args
        assert level == "error" and "locked by another process" in text
        assert window.pages.currentWidget() is window.welcome
        assert window.isVisible()
    finally:
        holder.execute("ROLLBACK")
        holder.close()
