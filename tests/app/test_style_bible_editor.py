# ruff: noqa: F401, F811 - pytest fixtures imported from tests.app.panel_fixtures
"""The style-bible editor: validated as you type, saved in the project, presets, swatches."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PySide6.QtCore import QPoint, Qt
from pytestqt.qtbot import QtBot

from app.engine_bridge import EngineBridge
from app.widgets.style_bible_editor import CAMERA_PRESETS, StyleBibleEditor
from engine.api import STYLE_BIBLE_FILE, StylePersistenceManager, load_presets
from tests.app.panel_fixtures import bridge, drop_files, project_dir, split_image


def saved_bible(project_dir: Path) -> dict:
    return json.loads((project_dir / STYLE_BIBLE_FILE).read_text())["style_bible"]


@pytest.fixture
def editor(bridge: EngineBridge, project_dir: Path, qtbot: QtBot) -> StyleBibleEditor:
    widget = StyleBibleEditor(bridge)
    qtbot.addWidget(widget)
    widget.resize(520, 760)
    widget.show()
    widget.set_project_dir(project_dir)
    qtbot.waitUntil(lambda: widget.field("seed_family").isEnabled(), timeout=5000)
    return widget


def retype(qtbot: QtBot, widget, text: str) -> None:  # type: ignore[no-untyped-def]
    widget.setFocus()
    widget.selectAll()
    qtbot.keyClick(widget, Qt.Key.Key_Delete)
    qtbot.keyClicks(widget, text)


def test_an_invalid_seed_is_marked_and_not_saved_until_fixed(
    editor: StyleBibleEditor, project_dir: Path, qtbot: QtBot
) -> None:
    seed = editor.field("seed_family")
    with qtbot.assertNotEmitted(editor.saved, wait=700):
        retype(qtbot, seed, "12x")
    assert seed.property("invalid") is True
    assert "seed_family='12x'" in editor.error_text()
    assert "0..4294967295" in editor.error_text()
    assert not editor.is_valid
    assert not (project_dir / STYLE_BIBLE_FILE).exists()

    with qtbot.waitSignal(editor.saved, timeout=5000):
        qtbot.keyClick(seed, Qt.Key.Key_Backspace)
    assert not seed.property("invalid")
    assert editor.error_text() == ""
    assert saved_bible(project_dir)["seed_family"] == 12


def test_a_bad_palette_code_names_the_colour_and_keeps_the_saved_bible(
    editor: StyleBibleEditor, project_dir: Path, qtbot: QtBot
) -> None:
    palette = editor.field("palette")
    with qtbot.waitSignal(editor.saved, timeout=5000):
        retype(qtbot, palette, "#0b3d4f, #f2a541")
    assert saved_bible(project_dir)["palette"] == ["#0b3d4f", "#f2a541"]
    assert len(editor.swatches.colours()) == 2

    with qtbot.assertNotEmitted(editor.saved, wait=700):
        qtbot.keyClicks(palette, ", #12345g")
    assert palette.property("invalid") is True
    assert "palette[2]" in editor.error_text()
    assert saved_bible(project_dir)["palette"] == ["#0b3d4f", "#f2a541"]


def test_a_missing_lut_is_refused_by_name(
    editor: StyleBibleEditor, project_dir: Path, qtbot: QtBot
) -> None:
    lut = editor.field("lut_path")
    retype(qtbot, lut, "looks/none.cube")
    assert lut.property("invalid") is True
    assert "lut_path" in editor.error_text() and "not found" in editor.error_text()
    (project_dir / "looks").mkdir()
    (project_dir / "looks" / "none.cube").write_text("LUT_3D_SIZE 2\n" + "0 0 0\n" * 8)
    with qtbot.waitSignal(editor.saved, timeout=5000):
        qtbot.keyClick(lut, Qt.Key.Key_Space)  # any edit re-checks the form
        qtbot.keyClick(lut, Qt.Key.Key_Backspace)
    assert saved_bible(project_dir)["lut_path"] == "looks/none.cube"


def test_typing_the_template_saves_it(
    editor: StyleBibleEditor, project_dir: Path, qtbot: QtBot
) -> None:
    with qtbot.waitSignal(editor.saved, timeout=5000) as saved:
        editor.field("prompt_template").setFocus()
        qtbot.keyClicks(editor.field("prompt_template"), "teal and amber grade, anamorphic")
    assert saved.args == [project_dir / STYLE_BIBLE_FILE]
    assert saved_bible(project_dir)["prompt_template"] == "teal and amber grade, anamorphic"


def test_presets_from_the_combos_update_the_bible_and_the_template(
    editor: StyleBibleEditor, project_dir: Path, qtbot: QtBot
) -> None:
    director = editor.field("director_style")
    first_director = next(iter(load_presets("directors").values()))
    with qtbot.waitSignal(editor.saved, timeout=5000):
        director.setFocus()
        qtbot.keyClick(director, Qt.Key.Key_Down)
    assert saved_bible(project_dir)["director_style"] == first_director.id
    assert first_director.summary in editor.preset_summary.text()

    camera = editor.camera_combo
    with qtbot.waitSignal(editor.saved, timeout=5000):
        camera.setFocus()
        qtbot.keyClick(camera, Qt.Key.Key_Down)
    first_camera = next(iter(CAMERA_PRESETS.values()))
    template = saved_bible(project_dir)["prompt_template"]
    assert template == first_camera
    assert camera.currentIndex() == 0  # ready to add another


def test_a_palette_colour_is_picked_from_a_dropped_reference_image(
    editor: StyleBibleEditor, project_dir: Path, qtbot: QtBot
) -> None:
    image = split_image(project_dir / "refs" / "look.png", (200, 40, 30), (20, 60, 190))
    with qtbot.waitSignal(editor.saved, timeout=5000):
        drop = drop_files(editor.reference_list.viewport(), [image])
    assert drop.isAccepted()
    assert saved_bible(project_dir)["reference_images"] == ["refs/look.png"]
    assert editor.reference_list.count() == 1
    assert not editor.reference_list.item(0).icon().isNull()

    picker = editor.picker
    left = QPoint(picker.width() // 2 - 10, picker.height() // 2)
    right = QPoint(picker.width() // 2 + 10, picker.height() // 2)
    with qtbot.waitSignal(editor.saved, timeout=5000):
        qtbot.mouseClick(picker, Qt.MouseButton.LeftButton, pos=left)
        qtbot.mouseClick(picker, Qt.MouseButton.LeftButton, pos=right)
    assert saved_bible(project_dir)["palette"] == ["#c8281e", "#143cbe"]


def test_dropping_something_that_is_not_an_image_is_refused(
    editor: StyleBibleEditor, project_dir: Path
) -> None:
    notes = project_dir / "notes.txt"
    notes.write_text("hello")
    drop = drop_files(editor.reference_list.viewport(), [notes])
    assert not drop.isAccepted()
    assert editor.reference_list.count() == 0


def test_an_existing_bible_is_loaded_when_the_project_opens(
    bridge: EngineBridge, project_dir: Path, qtbot: QtBot, tmp_path: Path
) -> None:
    StylePersistenceManager(project_dir).load_style_bible(
        {
            "name": "teal night",
            "prompt_template": "teal and amber grade",
            "palette": ["#0b3d4f", "#f2a541"],
            "genre": "noir",
            "seed_family": 77,
        }
    )
    editor = StyleBibleEditor(bridge)
    qtbot.addWidget(editor)
    assert not editor.field("name").isEnabled()  # no project yet
    editor.set_project_dir(project_dir)
    qtbot.waitUntil(lambda: editor.field("name").isEnabled(), timeout=5000)
    assert editor.field("name").text() == "teal night"
    assert editor.field("genre").currentData() == "noir"
    assert editor.field("seed_family").text() == "77"
    assert len(editor.swatches.colours()) == 2
    assert editor.is_valid

    shot = editor.screenshot(tmp_path / "editor.png")
    assert shot.stat().st_size > 1000


def test_a_broken_bible_file_is_reported_not_overwritten(
    bridge: EngineBridge, project_dir: Path, qtbot: QtBot
) -> None:
    (project_dir / STYLE_BIBLE_FILE).write_text("{ not json")
    editor = StyleBibleEditor(bridge)
    qtbot.addWidget(editor)
    editor.set_project_dir(project_dir)
    qtbot.waitUntil(lambda: editor.error_text() != "", timeout=5000)
    assert "style_bible.json" in editor.error_text()
    assert "fix or delete it" in editor.error_text()
    assert not editor.field("name").isEnabled()
    assert (project_dir / STYLE_BIBLE_FILE).read_text() == "{ not json"


def test_references_from_outside_the_project_are_copied_into_it(
    editor: StyleBibleEditor, project_dir: Path, qtbot: QtBot, tmp_path: Path
) -> None:
    first = split_image(tmp_path / "downloads" / "look.png", (10, 20, 30), (40, 50, 60))
    second = split_image(tmp_path / "elsewhere" / "look.png", (90, 20, 30), (40, 50, 60))
    with qtbot.waitSignal(editor.saved, timeout=5000):
        drop_files(editor.reference_list.viewport(), [first, second])
    refs = saved_bible(project_dir)["reference_images"]
    assert refs == ["references/look.png", "references/look-2.png"]
    assert (project_dir / refs[0]).read_bytes() == first.read_bytes()
    assert (project_dir / refs[1]).read_bytes() == second.read_bytes()
    assert not list((project_dir / "references").glob(".*"))  # no partial files left
    first.unlink()  # the original moves away: the look keeps its copy
    assert editor.is_valid
