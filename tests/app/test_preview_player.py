"""The preview player: frames from the engine's realtime frame server through the bridge."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PySide6.QtCore import QPoint, Qt
from PySide6.QtGui import QImage
from PySide6.QtWidgets import QLabel
from pytestqt.qtbot import QtBot

from app.engine_bridge import EngineBridge
from app.widgets.preview_player import PreviewPlayer
from app.widgets.timeline_view import VIDEO_H, VIDEO_Y, TimelineView
from engine.api import TimelineDocument, document_frame_server
from tests.app.timeline_media import song_document


def _pixels(image: QImage) -> np.ndarray:
    rgb = image.convertToFormat(QImage.Format.Format_RGB888)
    data = np.frombuffer(rgb.constBits(), dtype=np.uint8)
    return data.reshape(rgb.height(), rgb.bytesPerLine())[:, : 3 * rgb.width()].reshape(
        rgb.height(), rgb.width(), 3
    )


@pytest.fixture
def bridge(tmp_path: Path) -> Iterator[EngineBridge]:
    engine = EngineBridge(workspace=tmp_path / "projects").start()
    yield engine
    engine.shutdown()


@pytest.fixture
def document(tmp_path: Path) -> TimelineDocument:
    return song_document(tmp_path)[0]


@pytest.fixture
def player(qtbot: QtBot, bridge: EngineBridge, document: TimelineDocument) -> PreviewPlayer:
    widget = PreviewPlayer(bridge, preview_size=(160, 90))
    qtbot.addWidget(widget)
    widget.resize(400, 300)
    widget.show()
    qtbot.waitExposed(widget)
    with qtbot.waitSignal(widget.frame_shown, timeout=20000):
        widget.set_document(document)
    return widget


def test_seek_shows_the_frame_server_frame(
    qtbot: QtBot, player: PreviewPlayer, document: TimelineDocument
) -> None:
    first = player.current_image()
    assert first.size().width() == 160 and first.size().height() == 90
    target = document.video_clips[2].start.seconds + 0.8
    with qtbot.waitSignal(player.frame_shown, timeout=20000) as shown:
        player.seek(target)
    assert shown.args[0] == pytest.approx(target)
    assert player.shown() == (pytest.approx(target), True)
    expected = document_frame_server(document, width=160, height=90).frame_at(target)
    assert np.array_equal(_pixels(player.current_image()), expected)
    assert not np.array_equal(_pixels(first), expected)  # another shot, another picture


def test_before_after_grade_toggle_changes_the_frame(
    qtbot: QtBot, player: PreviewPlayer, document: TimelineDocument
) -> None:
    graded = _pixels(player.current_image()).copy()
    with qtbot.waitSignal(player.frame_shown, timeout=20000):
        qtbot.mouseClick(player.grade_button, Qt.MouseButton.LeftButton)
    assert player.grade_button.isChecked() and not player.graded
    before = _pixels(player.current_image())
    plain = document_frame_server(document, width=160, height=90, graded=False).frame_at(0.0)
    assert np.array_equal(before, plain)
    # the grade lifts exposure: the graded frame is brighter
    assert graded.mean() > before.mean() + 5
    with qtbot.waitSignal(player.frame_shown, timeout=20000):
        qtbot.mouseClick(player.grade_button, Qt.MouseButton.LeftButton)
    assert np.array_equal(_pixels(player.current_image()), graded)


def test_timeline_and_player_share_the_playhead(
    qtbot: QtBot, player: PreviewPlayer, document: TimelineDocument
) -> None:
    view = TimelineView()
    qtbot.addWidget(view)
    view.resize(900, view.minimumHeight())
    view.show()
    qtbot.waitExposed(view)
    player.connect_timeline(view)
    with qtbot.waitSignal(player.frame_shown, timeout=20000):
        view.set_document(document)
    x = 500
    with qtbot.waitSignal(player.frame_shown, timeout=20000) as shown:
        qtbot.mouseClick(view.viewport(), Qt.MouseButton.LeftButton, pos=QPoint(x, 10))
    assert shown.args[0] == pytest.approx(view.time_at(x))
    # an edit on the timeline reaches the preview
    clip = view.model.clips[1]
    with qtbot.waitSignal(player.frame_shown, timeout=20000):
        view.model.set_transition(clip.clip_id, "dip_to_black", seconds=0.5)
    # playback moves the timeline's playhead
    start = view.model.playhead
    with qtbot.waitSignal(player.position_changed, timeout=5000):
        qtbot.keyClick(player, Qt.Key.Key_Space)
    assert player.playing
    qtbot.waitUntil(lambda: view.model.playhead > start + 0.05, timeout=5000)
    player.pause()
    assert not player.playing
    assert view.clip_view_rect(clip.clip_id).y() == VIDEO_Y
    assert view.clip_view_rect(clip.clip_id).height() == VIDEO_H


def test_missing_still_is_reported_not_raised(
    qtbot: QtBot, bridge: EngineBridge, document: TimelineDocument
) -> None:
    Path(document.video_clips[0].source.paths[0]).unlink()
    widget = PreviewPlayer(bridge, preview_size=(160, 90))
    qtbot.addWidget(widget)
    with qtbot.waitSignal(widget.error_occurred, timeout=20000) as error:
        widget.set_document(document)
    assert "still" in error.args[0] or "image" in error.args[0]


def test_waveform_of_a_non_pcm_song_is_decoded_through_the_bridge(
    qtbot: QtBot, bridge: EngineBridge, tmp_path: Path
) -> None:
    import soundfile

    rate = 8000
    t = np.arange(3 * rate) / rate
    # loud in the first second only: the waveform must show where the sound is
    samples = (np.sin(2 * np.pi * 220 * t) * (t < 1.0)).astype(np.float32)
    path = tmp_path / "float.wav"
    soundfile.write(path, samples, rate, subtype="FLOAT")  # not PCM: the stdlib cannot read it
    view = TimelineView()
    qtbot.addWidget(view)
    with qtbot.waitSignal(view.model.waveform_changed, timeout=20000):
        view.load_waveform(path, bridge)
    wave = view.model.waveform
    assert wave is not None
    second = round(wave.buckets_per_second)
    assert wave.maxima[: second - 2].max() == pytest.approx(1.0, abs=0.02)
    assert np.abs(wave.maxima[second + 2 :]).max() < 1e-3


def test_a_song_without_shots_says_so_without_an_error(
    qtbot: QtBot, bridge: EngineBridge, tmp_path: Path
) -> None:
    from app.viewmodels.timeline_model import analysis_document
    from tests.app.timeline_media import write_song

    audio, analysis = write_song(tmp_path)
    widget = PreviewPlayer(bridge, preview_size=(160, 90))
    qtbot.addWidget(widget)
    errors: list[str] = []
    widget.error_occurred.connect(errors.append)
    widget.set_document(analysis_document(analysis, audio_path=audio))
    screen = widget.findChild(QLabel, "preview_screen")
    assert screen is not None and "No shots yet" in screen.text()
    widget.seek(3.0)
    qtbot.wait(200)
    assert errors == [] and widget.current_image().isNull()
