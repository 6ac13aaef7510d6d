"""The timeline widget: drawing a synthesized song's edit, and editing it with mouse and keys."""

from __future__ import annotations

from pathlib import Path

import pytest
from PySide6.QtCore import QPoint, QPointF, Qt
from PySide6.QtGui import QColor, QWheelEvent
from PySide6.QtWidgets import QApplication
from pytestqt.qtbot import QtBot

from app.viewmodels.timeline_model import TimelineModel, analysis_document, read_wav_waveform
from app.widgets.timeline_view import (
    RULER_H,
    SECTION_H,
    SECTION_Y,
    TOTAL_H,
    VIDEO_H,
    VIDEO_Y,
    WAVE_H,
    WAVE_Y,
    TimelineView,
    _section_color,
    benchmark_repaint,
)
from engine.api import ParameterError
from tests.app.timeline_media import song_document

VIDEO_MID = VIDEO_Y + VIDEO_H // 2


@pytest.fixture
def song(tmp_path: Path) -> tuple:
    return song_document(tmp_path)


@pytest.fixture
def view(qtbot: QtBot, song: tuple) -> TimelineView:
    document, audio, _analysis = song
    widget = TimelineView()
    qtbot.addWidget(widget)
    widget.resize(1200, widget.minimumHeight())
    widget.show()
    qtbot.waitExposed(widget)
    widget.set_document(document, waveform=read_wav_waveform(audio))
    return widget


def _x(view: TimelineView, seconds: float) -> int:
    return round(view.x_at(seconds))


def _drag(qtbot: QtBot, view: TimelineView, start: QPoint, end: QPoint) -> None:
    port = view.viewport()
    qtbot.mousePress(port, Qt.MouseButton.LeftButton, pos=start)
    middle = QPoint((start.x() + end.x()) // 2, start.y())
    qtbot.mouseMove(port, middle)
    qtbot.mouseMove(port, end)
    qtbot.mouseRelease(port, Qt.MouseButton.LeftButton, pos=end)


def test_song_is_drawn_with_sections_beats_clips_and_waveform(
    qtbot: QtBot, view: TimelineView, song: tuple
) -> None:
    document, _audio, analysis = song
    model = view.model
    assert [b.label for b in model.sections] == ["intro", "verse", "chorus"]
    assert model.beats == tuple(b.time for b in analysis.beats)
    assert model.downbeats == tuple(b.time for b in analysis.beats if b.is_downbeat)
    assert model.waveform is not None and model.waveform.maxima.max() > 0.05
    scale = view.pixels_per_second
    # the whole song fits the width
    assert document.duration * scale <= view.viewport().width()
    for clip in document.video_clips:
        rect = view.clip_rect(clip.clip_id)
        assert rect.x() == pytest.approx(clip.start.seconds * scale)
        assert rect.width() == pytest.approx(clip.duration * scale)
        assert rect.y() == VIDEO_Y
    # what is on screen: let the thumbnails load, then read pixels of a grab
    qtbot.waitUntil(lambda: view._thumbs.pending == 0)
    image = view.viewport().grab().toImage()
    for band in model.sections:
        x = _x(view, (band.start + band.end) / 2 + 0.11)  # between grid lines
        colour = image.pixelColor(x, SECTION_Y + SECTION_H - 3)
        assert colour.rgb() == _section_color(band.label).rgb(), band.label
    clip = document.video_clips[1]
    inside = image.pixelColor(_x(view, clip.end.seconds) - 3, VIDEO_Y + 6)
    assert (
        inside.rgb() == QColor(70, 96, 140).rgb()
    )  # the clip's body colour, right of its thumbnail
    # a downbeat's grid line under the waveform row (not on a clip)
    downbeat = next(t for t in model.downbeats if t > 1)
    column = [image.pixelColor(_x(view, downbeat), y) for y in range(WAVE_Y, WAVE_Y + WAVE_H)]
    assert QColor(120, 124, 136).rgb() in [c.rgb() for c in column]
    # the waveform is drawn: its colour appears in the middle of its row
    middle = [image.pixelColor(x, WAVE_Y + WAVE_H // 2) for x in range(20, 200)]
    assert QColor(110, 190, 150).rgb() in [c.rgb() for c in middle]


def test_ruler_click_moves_playhead_and_emits_position(qtbot: QtBot, view: TimelineView) -> None:
    x = 400
    with qtbot.waitSignal(view.position_changed, timeout=2000) as signal:
        qtbot.mouseClick(view.viewport(), Qt.MouseButton.LeftButton, pos=QPoint(x, 10))
    assert signal.args[0] == pytest.approx(view.time_at(x))
    assert view.model.playhead == pytest.approx(view.time_at(x))
    # the playhead is drawn where it is
    image = view.viewport().grab().toImage()
    assert image.pixelColor(x, RULER_H + SECTION_H + 2).rgb() == QColor(235, 64, 52).rgb()
    # dragging along the ruler scrubs
    seen: list[float] = []
    view.position_changed.connect(seen.append)
    _drag(qtbot, view, QPoint(100, 10), QPoint(300, 10))
    assert seen[-1] == pytest.approx(view.time_at(300))
    assert len(seen) >= 3


def test_dragging_a_cut_trims_to_the_nearest_beat_and_undo_restores(
    qtbot: QtBot, view: TimelineView
) -> None:
    model = view.model
    original = model.document.to_dict()
    left, right = model.clips[1], model.clips[2]
    cut = right.start.seconds
    beats = model.beats
    i = beats.index(cut)
    period = beats[i + 1] - beats[i]
    # released 1.3 beats later: the nearest beat is the next one
    target = cut + 1.3 * period
    _drag(qtbot, view, QPoint(_x(view, cut), VIDEO_MID), QPoint(_x(view, target), VIDEO_MID))
    nearest = min(beats, key=lambda b: abs(b - view.time_at(_x(view, target))))
    assert nearest == beats[i + 1]
    clips = {c.clip_id: c for c in model.clips}
    assert clips[left.clip_id].end.seconds == nearest
    assert clips[right.clip_id].start.seconds == nearest
    assert clips[right.clip_id].end == right.end
    assert clips[right.clip_id].start.position.fraction == 0.0  # on the beat exactly
    model.document.render_plan()  # still one contiguous track the renderer can play
    edited = model.document.to_dict()
    assert model.undo_stack.count() == 1
    qtbot.keyClick(view, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    assert model.document.to_dict() == original
    qtbot.keyClick(
        view, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier | Qt.KeyboardModifier.ShiftModifier
    )
    assert model.document.to_dict() == edited


def test_dragging_a_clip_slides_it_on_the_beat_grid(qtbot: QtBot, view: TimelineView) -> None:
    model = view.model
    before = list(model.clips)
    clip = before[2]
    beats = model.beats
    period = beats[beats.index(clip.start.seconds) + 1] - clip.start.seconds
    grab = (clip.start.seconds + clip.end.seconds) / 2
    start = QPoint(_x(view, grab), VIDEO_MID)
    end = QPoint(_x(view, grab - 1.8 * period), VIDEO_MID)
    with qtbot.waitSignal(view.selection_changed, timeout=2000) as selected:
        _drag(qtbot, view, start, end)
    assert selected.args == [clip.clip_id]
    moved = model.clip(clip.clip_id)
    assert moved is not None
    # 1.8 beats earlier, snapped: 2 beats earlier, same length, neighbours follow
    assert moved.start.seconds == beats[beats.index(clip.start.seconds) - 2]
    assert moved.duration == pytest.approx(clip.duration, abs=1e-6)
    assert model.clips[1].end == moved.start and model.clips[3].start == moved.end
    assert view.clip_rect(clip.clip_id).x() == pytest.approx(
        moved.start.seconds * view.pixels_per_second
    )
    model.undo_stack.undo()
    assert list(model.clips) == before


def test_split_at_playhead_with_s_key(qtbot: QtBot, view: TimelineView) -> None:
    model = view.model
    original = model.document.to_dict()
    clip = max(model.clips, key=lambda c: c.duration)
    inside = [b for b in model.beats if clip.start.seconds < b < clip.end.seconds]
    at = inside[len(inside) // 2] + 0.1  # a little after a beat
    qtbot.mouseClick(view.viewport(), Qt.MouseButton.LeftButton, pos=QPoint(_x(view, at), 10))
    qtbot.mouseClick(
        view.viewport(),
        Qt.MouseButton.LeftButton,
        pos=QPoint(_x(view, (clip.start.seconds + clip.end.seconds) / 2), VIDEO_MID),
    )
    assert model.selected == clip.clip_id
    count = len(model.clips)
    qtbot.keyClick(view, Qt.Key.Key_S)
    assert len(model.clips) == count + 1
    left = model.clip(clip.clip_id)
    right = model.clips[model.index_of(clip.clip_id) + 1]
    cut = min(model.beats, key=lambda b: abs(b - model.playhead))
    assert left.end.seconds == right.start.seconds == cut
    assert right.end == clip.end and right.source == clip.source
    model.document.render_plan()
    model.undo_stack.undo()
    assert model.document.to_dict() == original


def test_ctrl_wheel_zooms_around_the_pointer(qtbot: QtBot, view: TimelineView) -> None:
    port = view.viewport()
    before = view.pixels_per_second
    x = 500
    under = view.time_at(x)
    with qtbot.waitSignal(view.zoom_changed, timeout=2000):
        event = QWheelEvent(
            QPointF(x, VIDEO_MID),
            port.mapToGlobal(QPointF(x, VIDEO_MID)),
            QPoint(),
            QPoint(0, 240),
            Qt.MouseButton.NoButton,
            Qt.KeyboardModifier.ControlModifier,
            Qt.ScrollPhase.NoScrollPhase,
            False,
        )
        QApplication.sendEvent(port, event)
    assert view.pixels_per_second == pytest.approx(before * 1.25**2)
    assert view.time_at(x) == pytest.approx(under, abs=1.0 / view.pixels_per_second)
    clip = view.model.clips[3]
    assert view.clip_rect(clip.clip_id).x() == pytest.approx(
        clip.start.seconds * view.pixels_per_second
    )
    # a plain wheel scrolls instead
    scroll = view.horizontalScrollBar().value()
    event = QWheelEvent(
        QPointF(x, VIDEO_MID),
        port.mapToGlobal(QPointF(x, VIDEO_MID)),
        QPoint(),
        QPoint(0, -120),
        Qt.MouseButton.NoButton,
        Qt.KeyboardModifier.NoModifier,
        Qt.ScrollPhase.NoScrollPhase,
        False,
    )
    QApplication.sendEvent(port, event)
    assert view.horizontalScrollBar().value() > scroll
    assert view.pixels_per_second == pytest.approx(before * 1.25**2)


def test_undo_redo_of_a_series_of_edits_restores_each_document_exactly(
    qtbot: QtBot, view: TimelineView
) -> None:
    model = view.model
    states = [model.document.to_dict()]
    clips = model.clips
    assert model.trim(clips[1].clip_id, "end", clips[1].end.seconds + 0.6)
    states.append(model.document.to_dict())
    assert model.move(model.clips[3].clip_id, model.clips[3].start.seconds - 0.5)
    states.append(model.document.to_dict())
    assert model.split(model.clips[0].clip_id, model.clips[0].duration / 2) is not None
    states.append(model.document.to_dict())
    assert model.set_transition(model.clips[2].clip_id, "dip_to_black", seconds=0.4)
    states.append(model.document.to_dict())
    assert model.document.render_plan().transitions[2].kind == "dip_to_black"
    for state in reversed(states[:-1]):
        model.undo_stack.undo()
        assert model.document.to_dict() == state
    for state in states[1:]:
        model.undo_stack.redo()
        assert model.document.to_dict() == state


def test_bad_edits_are_refused_with_typed_errors(view: TimelineView) -> None:
    model = view.model
    with pytest.raises(ParameterError, match="song's ends are fixed"):
        model.trim(model.clips[0].clip_id, "start", 1.0)
    with pytest.raises(ParameterError, match="clip_id"):
        model.move("no-such-clip", 1.0)
    with pytest.raises(ParameterError, match="first and last stay put"):
        model.move(model.clips[-1].clip_id, 1.0)
    with pytest.raises(ParameterError, match="kind"):
        model.set_transition(model.clips[1].clip_id, "spin")
    assert model.undo_stack.count() == 0


def test_empty_timeline_paints_guidance(qtbot: QtBot) -> None:
    widget = TimelineView(TimelineModel())
    qtbot.addWidget(widget)
    widget.resize(600, widget.minimumHeight())
    widget.show()
    qtbot.waitExposed(widget)
    image = widget.viewport().grab().toImage()
    assert widget.paint_count >= 1
    # the guidance text is drawn in the middle of the background
    row = {image.pixelColor(x, TOTAL_H // 2).rgb() for x in range(0, image.width())}
    assert len(row) > 2
    # clicks on an empty timeline do nothing (and do not fail)
    qtbot.mouseClick(widget.viewport(), Qt.MouseButton.LeftButton, pos=QPoint(50, VIDEO_MID))
    assert widget.model.document is None


def test_benchmark_repaint_paints_a_long_timeline(qtbot: QtBot) -> None:
    result = benchmark_repaint(300, repeats=3, width=800)
    assert result["clips"] == 300 and result["visible_clips"] == 300
    assert 0 < result["median_ms"] <= result["max_ms"]
    zoomed = benchmark_repaint(300, repeats=3, width=800, seconds_visible=30)
    assert zoomed["visible_clips"] <= 32


def test_arrow_keys_step_the_playhead_by_beats_and_plus_minus_zoom(
    qtbot: QtBot, view: TimelineView
) -> None:
    beats = view.model.beats
    with qtbot.waitSignal(view.position_changed, timeout=2000) as moved:
        qtbot.keyClick(view, Qt.Key.Key_Right)
    assert moved.args[0] == beats[0]
    qtbot.keyClick(view, Qt.Key.Key_Right)
    qtbot.keyClick(view, Qt.Key.Key_Right)
    assert view.model.playhead == beats[2]
    qtbot.keyClick(view, Qt.Key.Key_Left)
    assert view.model.playhead == beats[1]
    scale = view.pixels_per_second
    qtbot.keyClick(view, Qt.Key.Key_Plus)
    assert view.pixels_per_second == pytest.approx(scale * 1.5)
    qtbot.keyClick(view, Qt.Key.Key_Minus)
    assert view.pixels_per_second == pytest.approx(scale)


def test_context_menu_sets_the_transition_into_a_clip(qtbot: QtBot, view: TimelineView) -> None:
    from PySide6.QtCore import QTimer
    from PySide6.QtGui import QContextMenuEvent
    from PySide6.QtWidgets import QMenu

    model = view.model
    clip = model.clips[2]
    pos = QPoint(_x(view, (clip.start.seconds + clip.end.seconds) / 2), VIDEO_MID)
    chosen: list[str] = []

    def pick() -> None:
        # the menu is open: choose Transition in > dip to white with the keyboard
        menu = QApplication.activePopupWidget()
        assert isinstance(menu, QMenu)
        sub = next(a.menu() for a in menu.actions() if a.menu() is not None)
        action = next(a for a in sub.actions() if a.text() == "dip to white")
        chosen.append(action.text())
        action.trigger()
        menu.close()

    QTimer.singleShot(200, pick)
    event = QContextMenuEvent(QContextMenuEvent.Reason.Mouse, pos, view.viewport().mapToGlobal(pos))
    view.contextMenuEvent(event)
    assert chosen == ["dip to white"]
    assert model.selected == clip.clip_id
    assert model.clip(clip.clip_id).transition_in.kind == "dip_to_white"
    model.undo_stack.undo()
    assert model.clip(clip.clip_id).transition_in == clip.transition_in


def test_set_still_replaces_a_clip_image_and_its_thumbnail(
    qtbot: QtBot, view: TimelineView, tmp_path: Path
) -> None:
    from tests.app.timeline_media import write_stills

    model = view.model
    clip = model.clips[1]
    (tmp_path / "new").mkdir()
    other = write_stills(tmp_path / "new", 1)[0]
    assert model.set_still(clip.clip_id, other)
    assert model.clip(clip.clip_id).source.paths == (str(other),)
    qtbot.waitUntil(lambda: view._thumbs.get(str(other)) is not None, timeout=3000)
    model.undo_stack.undo()
    assert model.clip(clip.clip_id).source == clip.source


def test_an_analysed_song_shows_its_sections_before_any_shot(
    qtbot: QtBot, song: tuple, tmp_path: Path
) -> None:
    _document, audio, analysis = song
    widget = TimelineView()
    qtbot.addWidget(widget)
    widget.resize(900, widget.minimumHeight())
    widget.show()
    qtbot.waitExposed(widget)
    widget.set_document(analysis_document(analysis, audio_path=audio))
    assert [b.label for b in widget.model.sections] == [s.label for s in analysis.sections]
    assert widget.model.clips == ()
    assert widget.model.document.track("audio").items[0].source.paths == (str(audio),)
    image = widget.viewport().grab().toImage()
    chorus = widget.model.sections[-1]
    x = _x(widget, (chorus.start + chorus.end) / 2 + 0.11)
    assert image.pixelColor(x, SECTION_Y + 5).rgb() == _section_color("chorus").rgb()
    # nothing to edit yet, but the playhead works
    qtbot.keyClick(widget, Qt.Key.Key_S)
    with qtbot.waitSignal(widget.position_changed, timeout=2000):
        qtbot.mouseClick(widget.viewport(), Qt.MouseButton.LeftButton, pos=QPoint(300, 10))
    qtbot.mouseClick(widget.viewport(), Qt.MouseButton.LeftButton, pos=QPoint(300, VIDEO_MID))
    assert widget.model.undo_stack.count() == 0
