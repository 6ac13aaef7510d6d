# ruff: noqa: F401, F811 - pytest fixtures imported from tests.app.shell_fixtures
"""Screenshots of the app with a project loaded, for docs/images/.

Marked slow (a song is analysed and rendered as a draft so the timeline has stills).
To refresh the pictures in the docs::

    APEX_WRITE_SCREENSHOTS=1 QT_QPA_PLATFORM=offscreen .venv/bin/python -m pytest \\
        tests/app/test_screenshots.py --run-slow -q

Without ``APEX_WRITE_SCREENSHOTS`` they go to the test's temporary folder.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from PySide6.QtCore import QPoint, QSettings, Qt
from PySide6.QtGui import QImage
from PySide6.QtWidgets import QApplication, QWidget
from pytestqt.qtbot import QtBot

from app.main_window import MainWindow
from app.widgets.render_queue import group_of
from tests.app.shell_fixtures import drop_files, gui_settings, make_window, song_file

ROOT = Path(__file__).resolve().parents[2]


def _save(widget: QWidget, path: Path) -> Path:
    QApplication.processEvents()
    assert widget.grab().save(str(path)), f"could not write {path}"
    return path


def _not_blank(path: Path) -> float:
    image = QImage(str(path)).convertToFormat(QImage.Format.Format_RGB888)
    pixels = np.frombuffer(image.constBits(), np.uint8, image.sizeInBytes())
    return float(pixels.std())


@pytest.mark.slow
def test_screenshots_of_the_window_and_panels_with_a_project(
    qtbot: QtBot, song_file: Path, tmp_path: Path, gui_settings: QSettings
) -> None:
    folder = ROOT / "docs" / "images" if os.environ.get("APEX_WRITE_SCREENSHOTS") else tmp_path
    folder.mkdir(parents=True, exist_ok=True)
    window = make_window(tmp_path, gui_settings, probe_device=True)
    qtbot.addWidget(window)
    window.resize(1440, 900)
    window.show()
    qtbot.waitExposed(window)
    qtbot.waitUntil(lambda: window.device_label.text() != "device: —", timeout=60000)
    with qtbot.waitSignal(window.timeline_shown, timeout=90000):
        drop_files(window, [song_file])
    with qtbot.waitSignal(window.bridge.render_queued, timeout=20000) as queued:
        window.render_draft_action.trigger()
    key, _ = group_of(queued.args[0])
    with qtbot.waitSignal(window.timeline_shown, timeout=180000):
        qtbot.waitUntil(lambda: window.render_queue.rows[key].state == "succeeded", timeout=180000)
    timeline = window.timeline
    qtbot.waitUntil(lambda: timeline._thumbs.pending == 0, timeout=10000)
    # select the third shot on the timeline: the grading panel previews it
    clip = timeline.model.clips[2]
    rect = timeline.clip_view_rect(clip.clip_id)
    grading = window.panels["gradingDock"]
    window.docks["gradingDock"].raise_()
    with qtbot.waitSignal(grading.preview_updated, timeout=20000):
        qtbot.mouseClick(
            timeline.viewport(),
            Qt.MouseButton.LeftButton,
            pos=QPoint(round(rect.center().x()), round(rect.center().y())),
        )
    assert timeline.model.selected == clip.clip_id
    # a character from two of the render's stills
    library = window.panels["characterDock"]
    stills = [Path(c.source.paths[0]) for c in timeline.model.clips[:2]]
    library.add_reference_images(stills)
    with qtbot.waitSignal(library.character_created, timeout=30000):
        library.create_character("Night driver", "a lone driver on a neon-lit highway")
    # a style bible: a name typed in, a director and a genre preset, a reference image
    editor = window.panels["styleBibleDock"]
    window.docks["styleBibleDock"].raise_()
    qtbot.keyClicks(editor.name_edit, "Neon nights")
    editor.director_combo.setCurrentIndex(1)
    editor.genre_combo.setCurrentIndex(1)
    editor.add_reference_images(stills[1:2])
    window.message_bar.clear()
    qtbot.wait(300)

    shots = {"gui-main-window.png": window}
    for name, dock in (
        ("gui-grading-panel.png", "gradingDock"),
        ("gui-character-library.png", "characterDock"),
        ("gui-style-bible.png", "styleBibleDock"),
    ):
        window.docks[dock].raise_()
        qtbot.wait(200)
        if name == "gui-grading-panel.png":
            _save(window, folder / "gui-main-window.png")  # the grade panel on top
            shots.pop("gui-main-window.png")
        shots[name] = window.panels[dock]
    for name, widget in shots.items():
        dock = next((d for d, p in window.panels.items() if p is widget), None)
        if dock is not None:
            window.docks[dock].raise_()
            widget.resize(widget.width(), max(widget.height(), widget.sizeHint().height()))
        _save(widget, folder / name)
    for name in (
        "gui-main-window.png",
        "gui-grading-panel.png",
        "gui-character-library.png",
        "gui-style-bible.png",
    ):
        assert _not_blank(folder / name) > 10.0, name
    window.close()


@pytest.mark.slow
def test_screenshot_of_the_unlock_bar(
    qtbot: QtBot, song_file: Path, tmp_path: Path, gui_settings: QSettings
) -> None:
    """An encrypted project dropped on the window, a wrong passphrase tried: the unlock
    bar says so and waits for another try (docs/images/gui-unlock.png)."""
    pytest.importorskip("cryptography")
    from tests.app.test_encrypted_project_gui import encrypted_project

    folder = ROOT / "docs" / "images" if os.environ.get("APEX_WRITE_SCREENSHOTS") else tmp_path
    window = make_window(tmp_path, gui_settings)
    qtbot.addWidget(window)
    window.resize(1440, 900)
    window.show()
    qtbot.waitExposed(window)
    project = encrypted_project(tmp_path / "projects", song_file)
    with qtbot.waitSignal(window.bridge.project_opened, timeout=30000):
        drop_files(window, [project])
    bar = window.unlock_bar
    qtbot.waitUntil(bar.isVisible, timeout=5000)
    from PySide6.QtWidgets import QLineEdit

    field = bar.findChild(QLineEdit, "passphrase")
    qtbot.keyClicks(field, "a wrong guess")
    qtbot.keyClick(field, Qt.Key.Key_Return)
    qtbot.waitUntil(bar.problem.isVisible, timeout=30000)
    path = _save(window, folder / "gui-unlock.png")
    assert _not_blank(path) > 10.0
    window.close()
