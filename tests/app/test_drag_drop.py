# ruff: noqa: F401, F811 - pytest fixtures imported from tests.app.shell_fixtures
"""Drops onto the main window: songs, projects, LUTs, images and files we do not read."""

from __future__ import annotations

from pathlib import Path

from pytestqt.qtbot import QtBot

from app.drag_drop import DropKind, classify
from app.main_window import MainWindow
from tests.app.shell_fixtures import (
    drop_files,
    gui_settings,
    song_file,
    window,
)


def test_classify_names_what_each_path_is(tmp_path: Path) -> None:
    project = tmp_path / "p"
    project.mkdir()
    (project / "project.apex.json").write_text("{}")
    plain = tmp_path / "plain"
    plain.mkdir()
    assert classify(tmp_path / "a.WAV").kind is DropKind.AUDIO
    assert classify(tmp_path / "a.flac").kind is DropKind.AUDIO
    assert classify(project).kind is DropKind.PROJECT
    assert classify(project / "project.apex.json").path == project
    assert classify(tmp_path / "look.cube").kind is DropKind.LUT
    assert classify(tmp_path / "face.jpg").kind is DropKind.IMAGE
    item = classify(tmp_path / "notes.docx")
    assert item.kind is DropKind.UNSUPPORTED and "'.docx'" in item.reason
    assert "without a project.apex.json" in classify(plain).reason


def test_dropping_a_song_creates_a_project_and_analyses_it(
    window: MainWindow, qtbot: QtBot, song_file: Path
) -> None:
    assert window.pages.currentWidget() is window.welcome
    with qtbot.waitSignal(window.bridge.analysis_ready, timeout=60000) as analysed:
        drop_files(window, [song_file])
    assert window.bridge.project is not None
    info = window.bridge.project
    assert info.settings["audio_source"] == str(song_file)
    assert info.audio_path.is_relative_to(info.path / "assets")  # copied into the project
    assert window.pages.currentWidget() is window.project_page
    sections = analysed.args[0].sections
    shown = window.project_page.sections.text()
    assert all(section.label in shown for section in sections)
    assert window.windowTitle().startswith("night drive")


def test_dropping_a_project_folder_opens_it(
    window: MainWindow, qtbot: QtBot, song_file: Path
) -> None:
    with qtbot.waitSignal(window.bridge.analysis_ready, timeout=60000):
        window.bridge.new_project_from_audio(song_file)
    folder = window.bridge.project.path
    with qtbot.waitSignal(window.bridge.project_closed, timeout=20000):
        window.bridge.close_project()
    assert window.pages.currentWidget() is window.welcome
    with qtbot.waitSignal(window.bridge.project_opened, timeout=20000) as opened:
        drop_files(window, [folder / "project.apex.json"])
    assert opened.args[0].path == folder
    # it was remembered as a recent project
    assert window.welcome.recent.count() == 1


def test_unsupported_drops_say_why_in_one_non_modal_message(
    window: MainWindow, qtbot: QtBot, tmp_path: Path
) -> None:
    files = []
    for number in range(20):
        path = tmp_path / f"notes-{number}.docx"
        path.write_text("not media")
        files.append(path)
    with qtbot.waitSignal(window.message_bar.message_shown, timeout=5000) as shown:
        drop_files(window, files)
    level, text = shown.args
    assert level == "warning"
    assert "notes-0.docx" in text and "does not open '.docx' files" in text
    assert "(and 19 more)" in text
    assert window.message_bar.messages() == [("warning", text)]
    assert window.bridge.project is None  # nothing was created


def test_an_unreadable_song_is_a_message_not_a_crash(
    window: MainWindow, qtbot: QtBot, tmp_path: Path
) -> None:
    broken = tmp_path / "broken.wav"
    broken.write_bytes(b"RIFF" + b"\x00" * 400)  # a header and nothing a decoder can read
    with qtbot.waitSignal(window.message_bar.message_shown, timeout=60000) as shown:
        drop_files(window, [broken])
    level, text = shown.args
    assert level == "error"
    assert "broken.wav" in text
    assert window.isVisible()


def test_a_cube_goes_to_the_grading_panel_and_images_to_the_character_library(
    window: MainWindow, qtbot: QtBot, tmp_path: Path
) -> None:
    from PySide6.QtGui import QColor, QImage

    cube = tmp_path / "warm.cube"
    lines = ['TITLE "warm"', "LUT_3D_SIZE 2"]
    for b in (0.0, 1.0):
        for g in (0.0, 1.0):
            for r in (0.0, 1.0):
                lines.append(f"{min(r * 1.1, 1.0):.4f} {g:.4f} {b * 0.9:.4f}")
    cube.write_text("\n".join(lines) + "\n")
    grading = window.panels["gradingDock"]
    with qtbot.waitSignal(grading.lut_loaded, timeout=10000) as loaded:
        drop_files(window, [cube])
    assert Path(loaded.args[0]).name == "warm.cube"

    faces = []
    for number, colour in enumerate(("#c04040", "#40c040")):
        image = QImage(64, 64, QImage.Format.Format_RGB32)
        image.fill(QColor(colour))
        path = tmp_path / f"face-{number}.png"
        image.save(str(path))
        faces.append(path)
    drop_files(window, faces)
    library = window.panels["characterDock"]
    assert library.pending_images == faces
    assert window.message_bar.messages() == []


def test_an_image_dropped_on_a_shot_becomes_its_still_and_undo_restores(
    window: MainWindow, qtbot: QtBot, tmp_path: Path
) -> None:
    from PySide6.QtCore import QPoint
    from PySide6.QtGui import QColor, QImage

    from tests.app.timeline_media import song_document

    document, _audio, _analysis = song_document(tmp_path)
    window.pages.setCurrentWidget(window.project_page)
    timeline = window.timeline
    timeline.set_document(document)
    qtbot.wait(50)
    clip = timeline.model.clips[1]
    before = clip.source
    image = QImage(96, 54, QImage.Format.Format_RGB32)
    image.fill(QColor("#3060d0"))
    still = tmp_path / "my still.png"
    image.save(str(still))
    centre = timeline.clip_view_rect(clip.clip_id).center().toPoint()
    point = timeline.viewport().mapTo(window, centre)
    drop_files(window, [still], QPoint(point))
    changed = timeline.model.clip(clip.clip_id)
    assert changed.source.paths == (str(still),)
    assert timeline.model.selected == clip.clip_id
    assert window.panels["characterDock"].pending_images == []  # not a character
    timeline.model.undo_stack.undo()
    assert timeline.model.clip(clip.clip_id).source == before
