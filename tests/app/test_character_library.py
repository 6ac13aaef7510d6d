# ruff: noqa: F401, F811 - pytest fixtures imported from tests.app.panel_fixtures
"""The character library: profiles from dropped images, thumbnails, consistency scores."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PySide6.QtCore import Qt
from pytestqt.qtbot import QtBot

from app.engine_bridge import EngineBridge
from app.widgets.character_library import CharacterLibrary
from engine.api import CharacterConsistencyManager
from tests.app.panel_fixtures import bridge, drop_files, figure_image, project_dir

RED, BLUE = (190, 30, 40), (30, 60, 200)


@pytest.fixture
def library(bridge: EngineBridge, project_dir: Path, qtbot: QtBot) -> CharacterLibrary:
    widget = CharacterLibrary(bridge)
    qtbot.addWidget(widget)
    widget.resize(520, 620)
    widget.show()
    widget.set_project_dir(project_dir)
    qtbot.waitUntil(lambda: widget.status_label.text().startswith("No characters"), timeout=5000)
    return widget


def make_mara(library: CharacterLibrary, qtbot: QtBot, tmp_path: Path) -> str:
    front = figure_image(tmp_path / "drops" / "mara_front.png", coat=RED)
    side = figure_image(tmp_path / "drops" / "mara_side.png", coat=RED, shift=-8)
    drop = drop_files(library.grid.viewport(), [front, side])
    assert drop.isAccepted()
    assert library.pending_images == [front, side]
    assert library.name_edit.text() == "Mara"
    qtbot.keyClicks(library.description_edit, "young woman, red raincoat")
    with qtbot.waitSignal(library.character_created, timeout=10000) as created:
        qtbot.mouseClick(library.create_button, Qt.MouseButton.LeftButton)
    return created.args[0]


def test_dropped_images_and_a_description_make_a_character_with_a_thumbnail(
    library: CharacterLibrary, project_dir: Path, qtbot: QtBot, tmp_path: Path
) -> None:
    assert not library.create_button.isEnabled()
    cid = make_mara(library, qtbot, tmp_path)
    assert cid == "mara"
    item = library.item_for("mara")
    assert item is not None and item.text().startswith("Mara")
    assert not item.icon().isNull()
    assert item.icon().actualSize(library.grid.iconSize()).width() > 0
    assert "young woman, red raincoat" in item.toolTip()
    index = json.loads((project_dir / "characters" / "characters.json").read_text())
    profile = index["characters"]["mara"]
    assert profile["description"] == "young woman, red raincoat"
    assert len(profile["reference_images"]) == 2
    assert all((project_dir / ref).is_file() for ref in profile["reference_images"])
    assert library.pending_images == [] and library.pending_list.count() == 0


def test_consistency_scores_of_generated_shots_are_shown_per_character(
    library: CharacterLibrary, project_dir: Path, qtbot: QtBot, tmp_path: Path
) -> None:
    make_mara(library, qtbot, tmp_path)
    images = project_dir / "images"
    same = figure_image(images / "shot_01.png", coat=RED, background=(120, 140, 90), shift=10)
    other = figure_image(images / "shot_02.png", coat=BLUE)
    unrelated = figure_image(images / "shot_03.png", coat=BLUE)
    for path, character in ((same, "mara"), (other, "mara"), (unrelated, None)):
        sidecar = {"path": str(path), "backend": "procedural", "draft": True}
        if character:
            sidecar["character_id"] = character
        path.with_suffix(".json").write_text(json.dumps(sidecar))

    with qtbot.waitSignal(library.scores_updated, timeout=20000) as updated:
        qtbot.mouseClick(library.check_button, Qt.MouseButton.LeftButton)
    score = updated.args[0]["mara"]
    assert score["shots"] == 2
    assert score["per_shot"][str(same)] >= score["threshold"]
    assert score["per_shot"][str(other)] < score["threshold"]
    assert score["inconsistent"] == 1
    text = library.item_for("mara").text()
    assert f"{score['mean']:.2f} · 2 shot(s)" in text
    assert "1 off-model" in text


def test_a_file_that_is_not_an_image_is_refused_and_a_broken_image_named(
    library: CharacterLibrary, project_dir: Path, qtbot: QtBot, tmp_path: Path
) -> None:
    notes = tmp_path / "notes.txt"
    notes.write_text("not a picture")
    assert not drop_files(library.grid.viewport(), [notes]).isAccepted()
    assert library.pending_images == []

    broken = tmp_path / "broken.png"
    broken.write_bytes(b"\x89PNG\r\n\x1a\n not really")
    drop_files(library.grid.viewport(), [broken])
    qtbot.keyClicks(library.name_edit, "x")  # "Broken" + x
    qtbot.mouseClick(library.create_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: library.error_text() != "", timeout=10000)
    assert library.error_text().startswith("Not created:")
    assert "broken.png" in library.error_text()
    assert not (project_dir / "characters" / "characters.json").exists()
    assert library.create_button.isEnabled()  # fix the images and try again


def test_characters_of_the_project_are_shown_when_it_opens(
    bridge: EngineBridge, project_dir: Path, qtbot: QtBot, tmp_path: Path
) -> None:
    manager = CharacterConsistencyManager(project_dir)
    manager.create_profile("Jun", [figure_image(tmp_path / "jun.png", coat=BLUE)], "tall man")
    library = CharacterLibrary(bridge)
    qtbot.addWidget(library)
    with qtbot.waitSignal(library.characters_changed, timeout=5000) as shown:
        library.set_project_dir(project_dir)
    assert shown.args == [["jun"]]
    assert library.item_for("jun").text() == "Jun"
    shot = library.screenshot(tmp_path / "library.png")
    assert shot.stat().st_size > 1000


def test_two_characters_that_look_alike_are_flagged(
    library: CharacterLibrary, project_dir: Path, qtbot: QtBot, tmp_path: Path
) -> None:
    make_mara(library, qtbot, tmp_path)
    twin = figure_image(tmp_path / "drops" / "ida.png", coat=RED, shift=4)
    jun = figure_image(tmp_path / "drops" / "jun.png", coat=BLUE)
    for path in (twin, jun):
        drop_files(library.grid.viewport(), [path])
        with qtbot.waitSignal(library.character_created, timeout=10000):
            qtbot.mouseClick(library.create_button, Qt.MouseButton.LeftButton)
    with qtbot.waitSignal(library.scores_updated, timeout=20000) as updated:
        qtbot.mouseClick(library.check_button, Qt.MouseButton.LeftButton)
    scores = updated.args[0]
    assert [o["name"] for o in scores["mara"]["lookalikes"]] == ["Ida"]
    assert scores["jun"]["lookalikes"] == []
    assert "looks like Ida" in library.item_for("mara").text()
    assert "looks like" not in library.item_for("jun").text()
