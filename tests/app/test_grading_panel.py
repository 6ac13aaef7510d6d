# ruff: noqa: F401, F811 - pytest fixtures imported from tests.app.panel_fixtures
"""The grading panel: sliders change the grade and the preview, resets, LUT drops, scopes."""

from __future__ import annotations

import json
import wave
from pathlib import Path

import numpy as np
import pytest
from PySide6.QtCore import Qt
from pytestqt.qtbot import QtBot

from app.engine_bridge import EngineBridge
from app.widgets.grading_panel import GradingPanel
from app.widgets.panel_common import qimage_to_array
from engine.api import Clip, ClipSource, ColorGrader, TimePoint, shipped_looks
from tests.app.panel_fixtures import bridge, drop_files, gradient_image


@pytest.fixture
def panel(bridge: EngineBridge, qtbot: QtBot, tmp_path: Path) -> GradingPanel:
    widget = GradingPanel(bridge)
    qtbot.addWidget(widget)
    widget.resize(560, 720)
    widget.show()
    still = gradient_image(tmp_path / "images" / "shot_03.png")
    with qtbot.waitSignal(widget.preview_updated, timeout=10000):
        widget.set_shot(still, shot_id="clip-3", section="chorus")
    return widget


def write_cube(path: Path, size: int = 3, *, drop_last: bool = False) -> Path:
    """A 3D ``.cube`` that swaps red and blue (the file order: red changes fastest)."""
    lines = ['TITLE "swap"', f"LUT_3D_SIZE {size}"]
    steps = np.linspace(0.0, 1.0, size)
    for b in steps:
        for g in steps:
            for r in steps:
                lines.append(f"{b:.6f} {g:.6f} {r:.6f}")
    if drop_last:
        lines.pop()
    path.write_text("\n".join(lines) + "\n")
    return path


def test_the_first_preview_is_the_still_itself(panel: GradingPanel) -> None:
    assert panel.preview_frame is not None
    assert np.array_equal(panel.preview_frame, panel.source_frame)
    assert panel.shot_label.text() == "Shot clip-3 · chorus"


def test_moving_the_exposure_slider_changes_the_grade_and_the_preview(
    panel: GradingPanel, qtbot: QtBot
) -> None:
    before = panel.preview_frame.copy()
    slider = panel.control(1, "exposure").slider
    slider.setFocus()
    with qtbot.waitSignal(panel.grade_changed, timeout=2000) as changed:
        qtbot.keyClick(slider, Qt.Key.Key_PageUp)  # +1/20 of -2..2: +0.2 stop
    assert changed.args[0]["primary"]["exposure"] == pytest.approx(0.2)
    assert panel.control(1, "exposure").spin.value() == pytest.approx(0.2)
    qtbot.waitUntil(lambda: not np.array_equal(panel.preview_frame, before), timeout=10000)
    after = panel.preview_frame
    assert after.mean() > before.mean() + 3  # brighter: 0.2 stop is ~+15 % linear light
    grader = ColorGrader.from_dict(changed.args[0])
    exact = np.round(grader.grade_float(panel.source_frame) * 255).astype(np.uint8)
    assert np.array_equal(after, exact)
    rendered = grader.grade(panel.source_frame)  # what the render computes
    assert np.abs(after.astype(int) - rendered.astype(int)).max() <= 2


def test_typing_a_value_in_the_numeric_field_moves_the_slider(
    panel: GradingPanel, qtbot: QtBot
) -> None:
    field = panel.control(1, "saturation")
    field.spin.setFocus()
    field.spin.selectAll()
    with qtbot.waitSignal(panel.grade_changed, timeout=2000) as changed:
        qtbot.keyClicks(field.spin, "0")
        qtbot.keyClick(field.spin, Qt.Key.Key_Return)
    assert changed.args[0]["primary"]["saturation"] == 0.0
    assert field.slider.value() == 0
    qtbot.waitUntil(
        lambda: np.ptp(panel.preview_frame.astype(int), axis=2).max() <= 1, timeout=15000
    )  # black and white: R = G = B


def test_reset_puts_a_stage_back_to_identity(panel: GradingPanel, qtbot: QtBot) -> None:
    original = panel.source_frame
    panel.control(1, "exposure").spin.setValue(1.0)
    panel.control(1, "temperature").spin.setValue(40.0)
    qtbot.waitUntil(lambda: not np.array_equal(panel.preview_frame, original), timeout=10000)
    assert "primary" in panel.grade()
    with qtbot.waitSignal(panel.preview_updated, timeout=10000):
        qtbot.mouseClick(panel.reset_buttons[1], Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: np.array_equal(panel.preview_frame, original), timeout=10000)
    assert panel.grade() == {"schema": 1}
    assert panel.grader.is_identity
    assert panel.control(1, "exposure").value() == 0.0
    assert panel.control(1, "temperature").slider.value() == 500


def test_a_finishing_effect_turns_on_with_its_box_and_off_with_reset(
    panel: GradingPanel, qtbot: QtBot
) -> None:
    box = panel.effect_box("letterbox")
    panel.tabs.setCurrentIndex(3)
    with qtbot.waitSignal(panel.preview_updated, timeout=10000):
        qtbot.mouseClick(box, Qt.MouseButton.LeftButton)
    assert panel.grade()["finishing"]["letterbox"] == {"aspect": pytest.approx(2.39)}
    assert panel.preview_frame[0].max() == 0  # black bars top
    assert panel.preview_frame[-1].max() == 0
    with qtbot.waitSignal(panel.preview_updated, timeout=10000):
        qtbot.mouseClick(panel.reset_buttons[4], Qt.MouseButton.LeftButton)
    assert not box.isChecked()
    assert np.array_equal(panel.preview_frame, panel.source_frame)


def test_a_dropped_cube_becomes_the_look(panel: GradingPanel, qtbot: QtBot, tmp_path: Path) -> None:
    cube = write_cube(tmp_path / "swap.cube")
    with qtbot.waitSignal(panel.lut_loaded, timeout=10000):
        drop = drop_files(panel, [cube])
    assert drop.isAccepted()
    assert panel.grade()["look"]["lut"] == str(cube)
    assert panel.tabs.currentIndex() == 2
    assert "swap.cube" in panel.look_combo.currentText()
    qtbot.waitUntil(
        lambda: (
            np.abs(
                panel.preview_frame.astype(int) - panel.source_frame[..., ::-1].astype(int)
            ).max()
            <= 1
        ),
        timeout=20000,
    )  # red and blue swapped


def test_a_malformed_cube_is_refused_with_its_line(
    panel: GradingPanel, qtbot: QtBot, tmp_path: Path
) -> None:
    cube = write_cube(tmp_path / "short.cube", drop_last=True)
    with qtbot.waitSignal(panel.lut_failed, timeout=10000) as failed:
        drop_files(panel, [cube])
    message = failed.args[0]
    assert "short.cube" in message and "line " in message
    assert panel.lut_error.isVisibleTo(panel) and panel.lut_error.text() == message
    assert "look" not in panel.grade()


def test_a_shipped_look_is_chosen_from_the_combo(panel: GradingPanel, qtbot: QtBot) -> None:
    name = next(iter(shipped_looks()))
    combo = panel.look_combo
    panel.tabs.setCurrentIndex(2)
    combo.setFocus()
    with qtbot.waitSignal(panel.lut_loaded, timeout=10000):
        qtbot.keyClick(combo, Qt.Key.Key_Down)
    assert combo.currentText() == name
    assert Path(panel.grade()["look"]["lut"]) == shipped_looks()[name]


def test_apply_to_shot_section_and_all(panel: GradingPanel, qtbot: QtBot) -> None:
    panel.control(1, "exposure").spin.setValue(0.5)
    with qtbot.waitSignal(panel.grade_applied, timeout=2000) as applied:
        qtbot.mouseClick(panel.apply_buttons["section"], Qt.MouseButton.LeftButton)
    scope, target, grade = applied.args
    assert (scope, target) == ("section", "chorus")
    assert grade["primary"]["exposure"] == 0.5
    with qtbot.waitSignal(panel.grade_applied, timeout=2000) as applied:
        qtbot.mouseClick(panel.apply_buttons["shot"], Qt.MouseButton.LeftButton)
    assert applied.args[:2] == ["shot", "clip-3"]


def test_an_unreadable_still_says_why(panel: GradingPanel, qtbot: QtBot, tmp_path: Path) -> None:
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"not a png")
    panel.set_shot(broken, shot_id="clip-9")
    qtbot.waitUntil(lambda: panel.status_label.text().startswith("No preview:"), timeout=5000)
    assert "broken.png" in panel.status_label.text()


def test_the_screenshot_helper_writes_a_png(panel: GradingPanel, tmp_path: Path) -> None:
    shot = panel.screenshot(tmp_path / "grading.png")
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def write_tone(path: Path, seconds: float = 2.0, rate: int = 22050) -> Path:
    t = np.arange(int(seconds * rate)) / rate
    samples = (0.3 * np.sin(2 * np.pi * 220 * t) * 32767).astype("<i2")
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(samples.tobytes())
    return path


def test_applied_grades_are_saved_in_the_open_project(
    panel: GradingPanel, bridge: EngineBridge, qtbot: QtBot, tmp_path: Path
) -> None:
    song = write_tone(tmp_path / "tone.wav")
    with qtbot.waitSignal(bridge.project_opened, timeout=30000) as opened:
        bridge.new_project_from_audio(song)
    project_file = opened.args[0].path / "project.apex.json"
    panel.control(1, "exposure").spin.setValue(0.5)
    qtbot.mouseClick(panel.apply_buttons["section"], Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: "saved in the project" in panel.status_label.text(), timeout=10000)
    panel.control(1, "exposure").spin.setValue(-0.5)
    qtbot.mouseClick(panel.apply_buttons["all"], Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: "every shot and saved" in panel.status_label.text(), timeout=10000)
    grades = json.loads(project_file.read_text())["settings"]["grades"]
    assert grades["sections"]["chorus"]["primary"]["exposure"] == 0.5
    assert grades["global"]["primary"]["exposure"] == -0.5
    assert grades["shots"] == {}

    # another shot of the chorus, selected on the timeline, shows the chorus grade
    still = gradient_image(tmp_path / "images" / "shot_09.png", 64, 36)
    clip = Clip(
        clip_id="clip-9",
        start=TimePoint("start", 0.0),
        end=TimePoint("end", 1.0),
        source=ClipSource(kind="still", paths=(str(still),)),
        metadata={"section": "chorus"},
    )
    with qtbot.waitSignal(panel.preview_updated, timeout=10000):
        panel.show_clip(clip)
    assert panel.control(1, "exposure").value() == 0.5


def test_a_timeline_clip_is_previewed_with_its_own_grade(
    panel: GradingPanel, qtbot: QtBot, tmp_path: Path
) -> None:
    gradient_image(tmp_path / "images" / "shot_07.png", 96, 54)
    clip = Clip(
        clip_id="clip-7",
        start=TimePoint("start", 0.0),
        end=TimePoint("end", 2.0),
        source=ClipSource(kind="still", paths=("images/shot_07.png",)),
        grade={"schema": 1, "primary": {"exposure": -1.0}},
        metadata={"section": "verse"},
    )
    panel.show_clip(clip, base_dir=tmp_path)
    qtbot.waitUntil(lambda: panel.shot_label.text() == "Shot clip-7 · verse", timeout=10000)
    assert panel.source_frame.shape == (54, 96, 3)
    assert panel.control(1, "exposure").value() == -1.0
    qtbot.waitUntil(lambda: panel.preview_frame.shape == (54, 96, 3), timeout=5000)
    assert panel.preview_frame.mean() < panel.source_frame.mean() - 10


def test_show_before_shows_the_ungraded_still(panel: GradingPanel, qtbot: QtBot) -> None:
    def shown() -> np.ndarray:
        image = panel.preview.pixmap().toImage()
        return qimage_to_array(image)

    panel.control(1, "exposure").spin.setValue(-1.5)
    qtbot.waitUntil(
        lambda: panel.preview_frame.mean() < panel.source_frame.mean() - 20, timeout=10000
    )
    graded_mean = shown().mean()
    qtbot.mouseClick(panel.before_box, Qt.MouseButton.LeftButton)
    assert shown().mean() > graded_mean + 20
    qtbot.mouseClick(panel.before_box, Qt.MouseButton.LeftButton)
    assert shown().mean() == pytest.approx(graded_mean, abs=1)


def test_a_burst_of_slider_steps_grades_only_the_first_and_the_last(
    panel: GradingPanel, qtbot: QtBot
) -> None:
    # a still big enough that grading it outlasts the six steps (a preview that finished
    # within a step would count as graded; the bridge may deliver a fast result at once)
    big = np.random.default_rng(2).integers(0, 256, (540, 960, 3), dtype=np.uint8)
    with qtbot.waitSignal(panel.preview_updated, timeout=10000):
        panel.set_frame(big, shot_id="clip-3")
    slider = panel.control(2, "hue_shift").slider
    panel.tabs.setCurrentIndex(1)
    previews: list[int] = []
    panel.preview_updated.connect(lambda: previews.append(1))
    slider.setFocus()
    for _ in range(6):
        qtbot.keyClick(slider, Qt.Key.Key_PageUp)  # +18 degrees each
    final = panel.grade()
    assert final["secondary"]["hue_shift"] == pytest.approx(108.0)
    exact = np.round(ColorGrader.from_dict(final).grade_float(panel.source_frame) * 255)
    qtbot.waitUntil(lambda: np.array_equal(panel.preview_frame, exact), timeout=20000)
    qtbot.wait(200)
    assert len(previews) == 2  # the first step, then the last; the four between skipped
