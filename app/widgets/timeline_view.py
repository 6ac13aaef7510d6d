"""The timeline: waveform, beat grid, section bands and shot clips, edited with the mouse.

:class:`TimelineView` draws a :class:`~app.viewmodels.timeline_model.TimelineModel` from
top to bottom as a time ruler, the labelled section bands, the video track (each clip
with its still's thumbnail and the transition into it) and the song's waveform, with the
beat grid across all of them (downbeats stronger) and the playhead.

Time runs left to right at :attr:`TimelineView.pixels_per_second`: a clip starting at
``t`` seconds is at content x ``t * pixels_per_second`` (:meth:`TimelineView.clip_rect`).

Mouse and keys:

- click or drag on the ruler: move the playhead (``position_changed`` is emitted);
- click a clip: select it; drag it: slide it along (snapped to beats);
- drag a cut between two clips: trim (roll) it, snapped to the nearest beat;
- ``S``: split the selected clip (or the one under the playhead) at the playhead;
- ctrl + wheel or ``+``/``-``: zoom around the pointer; wheel: scroll;
- ctrl+Z / ctrl+shift+Z: undo / redo (the model's :class:`QUndoStack`).

Painting is bounded by what is on screen: clips, beats and waveform are looked up by
time (bisect) for the visible span only, thumbnails are decoded once (a few per event
loop turn, never inside a paint) and the waveform is drawn into cached pixmap tiles per
zoom level.  :func:`benchmark_repaint` measures a repaint of a long timeline.
"""

from __future__ import annotations

import bisect
import logging
import statistics
import tempfile
import time
import zlib
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PySide6.QtCore import QLineF, QPointF, QRectF, QSize, Qt, QTimer, Signal
from PySide6.QtGui import (
    QBrush,
    QColor,
    QContextMenuEvent,
    QFont,
    QImage,
    QImageReader,
    QKeyEvent,
    QKeySequence,
    QMouseEvent,
    QPainter,
    QPaintEvent,
    QPen,
    QPixmap,
    QPolygonF,
    QResizeEvent,
    QWheelEvent,
)
from PySide6.QtWidgets import QAbstractScrollArea, QApplication, QMenu, QWidget

from app.viewmodels.timeline_model import (
    TimelineModel,
    Waveform,
    read_wav_waveform,
    waveform_job,
)
from engine.api import TRANSITIONS, APEXDirectorError, TimelineDocument

__all__ = ["TimelineView", "benchmark_repaint"]

log = logging.getLogger(__name__)

RULER_H = 30
SECTION_H = 20
VIDEO_H = 64
WAVE_H = 56
GAP = 4
SECTION_Y = RULER_H
VIDEO_Y = SECTION_Y + SECTION_H + GAP
WAVE_Y = VIDEO_Y + VIDEO_H + GAP
TOTAL_H = WAVE_Y + WAVE_H + GAP
EDGE_GRAB_PX = 5
TILE_W = 512
MIN_PPS, MAX_PPS = 0.5, 4000.0
THUMB_H = VIDEO_H - 18

_BG = QColor(30, 31, 36)
_TRACK_BG = QColor(40, 42, 48)
_CLIP = QColor(70, 96, 140)
_CLIP_SELECTED = QColor(240, 190, 60)
_CLIP_DENSE = QColor(58, 80, 118)  # a run of clips too narrow to draw one by one
# opaque: alpha-blended lines cost ten times more to draw in Qt's raster engine
_BEAT = QColor(68, 71, 82)
_DOWNBEAT = QColor(120, 124, 136)
_PLAYHEAD = QColor(235, 64, 52)
_WAVE = QColor(110, 190, 150)
_GHOST = QColor(80, 220, 255)
_TEXT = QColor(225, 225, 230)


def _section_color(label: str) -> QColor:
    """A stable colour per section label."""
    hue = zlib.crc32(label.encode()) % 360
    return QColor.fromHsv(hue, 110, 150)


@dataclass
class _Drag:
    kind: str  # "scrub", "trim", "move"
    clip_id: str = ""
    edge: str = ""
    grab_offset: float = 0.0  # seconds from the clip's start to the pointer
    press_x: float = 0.0
    target: float | None = None  # proposed (snapped) seconds
    moved: bool = False


class _Thumbnails:
    """Decoded, scaled stills by path: loaded a few at a time outside painting."""

    def __init__(self, owner: QWidget, on_ready: Any, *, capacity: int = 2048) -> None:
        self._pixmaps: OrderedDict[str, QPixmap | None] = OrderedDict()
        self._wanted: OrderedDict[str, None] = OrderedDict()
        self._capacity = capacity
        self._timer = QTimer(owner)  # dies with the widget, so it never calls a dead one
        self._timer.setSingleShot(True)
        self._timer.setInterval(0)
        self._timer.timeout.connect(self._load_some)
        self._on_ready = on_ready

    def get(self, path: str) -> QPixmap | None:
        if path in self._pixmaps:
            self._pixmaps.move_to_end(path)
            return self._pixmaps[path]
        self._wanted[path] = None
        if not self._timer.isActive():
            self._timer.start()
        return None

    @property
    def pending(self) -> int:
        return len(self._wanted)

    def _load_some(self) -> None:
        # A small budget per turn keeps the event loop free while many stills load.
        deadline = time.perf_counter() + 0.008
        loaded = 0
        while self._wanted and time.perf_counter() < deadline:
            path, _ = self._wanted.popitem(last=False)
            reader = QImageReader(path)
            size = reader.size()
            if size.isValid() and size.height() > 0:
                width = max(1, round(size.width() * THUMB_H / size.height()))
                reader.setScaledSize(QSize(width, THUMB_H))
            image = reader.read()
            if image.isNull():
                log.debug("no thumbnail for %s: %s", path, reader.errorString())
                self._pixmaps[path] = None
            else:
                self._pixmaps[path] = QPixmap.fromImage(image)
            loaded += 1
            while len(self._pixmaps) > self._capacity:
                self._pixmaps.popitem(last=False)
        if self._wanted:
            self._timer.start()
        if loaded:
            self._on_ready()


class TimelineView(QAbstractScrollArea):
    """The timeline widget over a :class:`TimelineModel`.

    Signals
    -------
    position_changed(float)
        The user moved the playhead (ruler click or scrub, keys); seconds.
    selection_changed(str)
        The selected clip's id ("" for none).
    zoom_changed(float)
        The new pixels per second.
    """

    position_changed = Signal(float)
    selection_changed = Signal(str)
    zoom_changed = Signal(float)

    def __init__(self, model: TimelineModel | None = None, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.model = model or TimelineModel(self)
        self._pps = 40.0
        self.paint_count = 0  # paints so far (benchmarks check a repaint really painted)
        self._drag: _Drag | None = None
        self._thumbs = _Thumbnails(self, self.viewport().update)
        self._wave_tiles: OrderedDict[tuple[float, int], QPixmap] = OrderedDict()
        self._font = QFont(self.font())
        self._font.setPointSizeF(8.0)
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self.setVerticalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOn)
        self.viewport().setMouseTracking(True)
        self.setMinimumHeight(TOTAL_H + self.horizontalScrollBar().sizeHint().height() + 4)
        self.horizontalScrollBar().valueChanged.connect(self.viewport().update)
        self.model.document_changed.connect(self._on_document_changed)
        self.model.waveform_changed.connect(self._on_waveform_changed)
        self.model.playhead_changed.connect(self._on_playhead_changed)
        self.model.selection_changed.connect(self._on_selection_changed)

    # -- public API ----------------------------------------------------------------------
    def set_document(self, document: TimelineDocument, *, waveform: Waveform | None = None) -> None:
        """Show ``document`` (a fresh undo history) with an optional waveform."""
        self._wave_tiles.clear()
        self.model.load(document, waveform=waveform)
        self.fit()

    def load_waveform(
        self, audio_path: Path | str, bridge: Any, *, opener: Any | None = None
    ) -> None:
        """Draw the song's waveform: a PCM WAV is read here at once, any other file is
        decoded by the engine through ``bridge`` (``bridge.call``) and drawn when done.

        ``opener`` (``bridge.audio_source``) opens the song off the GUI thread first: an
        encrypted project's sealed song (which is no WAV on disk) comes back as its clear
        bytes and is decoded from memory, never written to disk.
        """
        if Path(audio_path).suffix.lower() == ".wav":
            try:
                self.model.set_waveform(read_wav_waveform(audio_path))
                return
            except APEXDirectorError as err:
                log.debug("%s; decoding it with the engine instead", err)
        if opener is None:
            bridge.call(waveform_job(audio_path), on_done=self._waveform_ready)
            return

        def work() -> Waveform:
            # waveform_job decodes with engine.api.decode_audio, which reads AudioBytes too
            return waveform_job(opener(Path(audio_path)))()

        bridge.call(work, on_done=self._waveform_ready)

    def _waveform_ready(self, waveform: Waveform) -> None:
        self.model.set_waveform(waveform)

    def _on_waveform_changed(self) -> None:
        self._wave_tiles.clear()
        self.viewport().update()

    @property
    def pixels_per_second(self) -> float:
        return self._pps

    def set_pixels_per_second(self, pps: float, *, anchor_x: float | None = None) -> None:
        """Zoom to ``pps`` keeping the time under viewport x ``anchor_x`` in place."""
        pps = min(max(float(pps), MIN_PPS), MAX_PPS)
        if pps == self._pps:
            return
        anchor = self.viewport().width() / 2 if anchor_x is None else anchor_x
        anchor_time = self.time_at(anchor)
        self._pps = pps
        self._update_scroll_range()
        self.horizontalScrollBar().setValue(round(anchor_time * pps - anchor))
        self.viewport().update()
        self.zoom_changed.emit(pps)

    def zoom_by(self, factor: float, *, anchor_x: float | None = None) -> None:
        self.set_pixels_per_second(self._pps * factor, anchor_x=anchor_x)

    def fit(self) -> None:
        """Zoom so the whole song fits the viewport."""
        duration = self.model.duration
        if duration > 0:
            width = max(100, self.viewport().width() - 8)
            self._pps = min(max(width / duration, MIN_PPS), MAX_PPS)
        self._update_scroll_range()
        self.horizontalScrollBar().setValue(0)
        self.viewport().update()
        self.zoom_changed.emit(self._pps)

    def scroll_to(self, seconds: float) -> None:
        """Scroll so ``seconds`` is at the left edge."""
        self.horizontalScrollBar().setValue(round(seconds * self._pps))

    def time_at(self, x: float) -> float:
        """Seconds at viewport x."""
        return (x + self.horizontalScrollBar().value()) / self._pps

    def x_at(self, seconds: float) -> float:
        """Viewport x of ``seconds``."""
        return seconds * self._pps - self.horizontalScrollBar().value()

    def clip_rect(self, clip_id: str) -> QRectF:
        """The clip's rectangle in content coordinates (x = start seconds * zoom)."""
        clip = self.model.clip(clip_id)
        if clip is None:
            return QRectF()
        return QRectF(clip.start.seconds * self._pps, VIDEO_Y, clip.duration * self._pps, VIDEO_H)

    def clip_view_rect(self, clip_id: str) -> QRectF:
        """The clip's rectangle in viewport coordinates (where to click it)."""
        return self.clip_rect(clip_id).translated(-self.horizontalScrollBar().value(), 0)

    def set_playhead(self, seconds: float) -> None:
        """Move the playhead without emitting ``position_changed`` (for the player)."""
        self.model.set_playhead(seconds)

    def split_at_playhead(self) -> str | None:
        """Split the selected clip (else the one under the playhead) at the playhead."""
        at = self.model.playhead
        clip = self.model.clip(self.model.selected) if self.model.selected else None
        if clip is None or not (clip.start.seconds < at < clip.end.seconds):
            clip = self.model.clip_at(at)
        if clip is None:
            return None
        return self.model.split(clip.clip_id, at)

    def sizeHint(self) -> QSize:  # noqa: N802 (Qt API)
        return QSize(900, self.minimumHeight())

    # -- model events --------------------------------------------------------------------
    def _on_document_changed(self) -> None:
        self._update_scroll_range()
        self.viewport().update()

    def _on_selection_changed(self, clip_id: str) -> None:
        self.viewport().update()
        self.selection_changed.emit(clip_id)

    def _on_playhead_changed(self, seconds: float) -> None:
        x = self.x_at(seconds)
        width = self.viewport().width()
        if self._drag is None and (x < 0 or x > width):
            # follow the playhead during playback, a page at a time
            self.horizontalScrollBar().setValue(round(seconds * self._pps - width * 0.1))
        self.viewport().update()

    def _update_scroll_range(self) -> None:
        content = self.model.duration * self._pps
        bar = self.horizontalScrollBar()
        bar.setPageStep(self.viewport().width())
        bar.setSingleStep(20)
        bar.setRange(0, max(0, round(content - self.viewport().width()) + 20))

    def resizeEvent(self, event: QResizeEvent) -> None:  # noqa: N802
        super().resizeEvent(event)
        self._update_scroll_range()

    # -- painting ------------------------------------------------------------------------
    def paintEvent(self, event: QPaintEvent) -> None:  # noqa: N802
        painter = QPainter(self.viewport())
        try:
            self._paint(painter, event.rect())
        finally:
            painter.end()

    def _paint(self, painter: QPainter, area: Any) -> None:
        self.paint_count += 1
        width = self.viewport().width()
        painter.fillRect(area, _BG)
        painter.setFont(self._font)
        if self.model.document is None:
            painter.setPen(_TEXT)
            painter.drawText(
                QRectF(0, 0, width, TOTAL_H),
                Qt.AlignmentFlag.AlignCenter,
                "No timeline yet: open a project or drop a song on the window",
            )
            return
        t0 = max(0.0, self.time_at(area.left() - 1))
        t1 = min(self.model.duration, self.time_at(area.right() + 1))
        painter.fillRect(QRectF(0, VIDEO_Y, width, VIDEO_H), _TRACK_BG)
        painter.fillRect(QRectF(0, WAVE_Y, width, WAVE_H), _TRACK_BG)
        self._paint_sections(painter, t0, t1)
        # the grid goes under the waveform and clips, so both stay readable
        self._paint_beats(painter, t0, t1)
        self._paint_waveform(painter, area)
        self._paint_clips(painter, t0, t1)
        self._paint_ruler(painter, t0, t1, width)
        self._paint_drag(painter)
        x = self.x_at(self.model.playhead)
        painter.setPen(QPen(_PLAYHEAD, 2))
        painter.drawLine(QLineF(x, 0, x, TOTAL_H))
        painter.setBrush(_PLAYHEAD)
        painter.drawPolygon(QPolygonF([QPointF(x - 5, 0), QPointF(x + 5, 0), QPointF(x, 8)]))

    def _paint_sections(self, painter: QPainter, t0: float, t1: float) -> None:
        for band in self.model.sections:
            if band.end < t0 or band.start > t1:
                continue
            rect = QRectF(
                self.x_at(band.start), SECTION_Y, (band.end - band.start) * self._pps, SECTION_H
            )
            painter.fillRect(rect.adjusted(0, 1, -1, -1), _section_color(band.label))
            painter.setPen(_TEXT)
            text = rect.adjusted(4, 0, -2, 0).intersected(QRectF(0, 0, 1e9, TOTAL_H))
            if text.width() > 12:
                painter.drawText(
                    text, Qt.AlignmentFlag.AlignVCenter | Qt.AlignmentFlag.AlignLeft, band.label
                )

    def _paint_beats(self, painter: QPainter, t0: float, t1: float) -> None:
        beats = self.model.beat_array
        if beats.size == 0:
            return
        tempo_map = self.model.document.tempo_map
        first, last = np.searchsorted(beats, [t0, t1], side="left")
        period = tempo_map.beat_period_at(t0)
        pps, scroll = self._pps, self.horizontalScrollBar().value()
        # a grid denser than a few pixels is noise: leave out beats, then bars
        show_beats = period * pps >= 5
        show_bars = period * tempo_map.beats_per_bar * pps >= 4
        is_downbeat = self.model.downbeat_mask[first : last + 1]
        xs = beats[first : last + 1] * pps - scroll
        if show_beats:
            painter.setPen(QPen(_BEAT, 1))
            top = SECTION_Y + SECTION_H
            painter.drawLines([QLineF(x, top, x, TOTAL_H) for x in xs[~is_downbeat].tolist()])
        if show_bars:
            painter.setPen(QPen(_DOWNBEAT, 1))
            painter.drawLines([QLineF(x, SECTION_Y, x, TOTAL_H) for x in xs[is_downbeat].tolist()])

    def _paint_ruler(self, painter: QPainter, t0: float, t1: float, width: int) -> None:
        painter.fillRect(QRectF(0, 0, width, RULER_H), QColor(22, 23, 27))
        step = next(
            (s for s in (0.1, 0.25, 0.5, 1, 2, 5, 10, 15, 30, 60, 120, 300) if s * self._pps >= 70),
            600.0,
        )
        painter.setPen(_TEXT)
        t = (t0 // step) * step
        while t <= t1 + step:
            x = self.x_at(t)
            painter.drawLine(QLineF(x, 0, x, 4))
            minutes, seconds = divmod(t, 60)
            label = (
                f"{int(minutes)}:{seconds:04.1f}" if step < 1 else f"{int(minutes)}:{seconds:02.0f}"
            )
            painter.drawText(QPointF(x + 3, 11), label)
            t += step
        self._paint_bar_numbers(painter, t0, t1)

    def _paint_bar_numbers(self, painter: QPainter, t0: float, t1: float) -> None:
        """Bar numbers under the time labels, every bar or every 2nd, 4th... as room allows."""
        tempo_map = self.model.document.tempo_map
        bar_seconds = tempo_map.beat_period_at(t0) * tempo_map.beats_per_bar
        every = 1
        while bar_seconds * every * self._pps < 28 and every < 1024:
            every *= 2
        beats = self.model.beat_array
        first, last = np.searchsorted(beats, [t0, t1], side="left")
        mask = self.model.downbeat_mask[first : last + 1]
        painter.setPen(QColor(170, 172, 180))
        pps, scroll = self._pps, self.horizontalScrollBar().value()
        for index in (np.flatnonzero(mask) + first).tolist():
            _time, bar, _beat = tempo_map.beats[index]
            if bar % every == 0 or (every > 1 and bar == 1):
                x = beats[index] * pps - scroll
                painter.drawLine(QLineF(x, RULER_H - 10, x, RULER_H))
                painter.drawText(QPointF(x + 3, RULER_H - 3), str(bar))

    def _paint_clips(self, painter: QPainter, t0: float, t1: float) -> None:
        clips = self.model.clips
        visible = self.model.visible_clips(t0, t1)
        if not visible:
            return
        pps, scroll = self._pps, self.horizontalScrollBar().value()
        starts, ends = self.model.clip_spans
        xs = starts[visible.start : visible.stop] * pps - scroll
        widths = (ends[visible.start : visible.stop] - starts[visible.start : visible.stop]) * pps
        narrow = widths < 3
        if narrow.any():
            # Clips too narrow to tell apart: each run of them is one band (the track
            # stays contiguous, so a run has no gaps).
            flags = np.concatenate(([False], narrow, [False])).astype(np.int8)
            edges = np.flatnonzero(np.diff(flags))
            for first, stop in zip(edges[::2], edges[1::2], strict=True):
                left = xs[first]
                right = xs[stop - 1] + widths[stop - 1]
                painter.fillRect(QRectF(left, VIDEO_Y + 1, right - left, VIDEO_H - 2), _CLIP_DENSE)
        selected = self.model.selected
        outline = QPen(QColor(20, 20, 24), 1)
        for offset in np.flatnonzero(~narrow):
            index = visible.start + int(offset)
            clip = clips[index]
            x, w = float(xs[offset]), float(widths[offset])
            rect = QRectF(x, VIDEO_Y + 1, w, VIDEO_H - 2)
            painter.fillRect(rect, _CLIP)
            if w >= 24:
                painter.save()
                painter.setClipRect(rect.adjusted(1, 1, -1, -1))
                pixmap = self._thumbs.get(clip.source.paths[0])
                if pixmap is not None:
                    painter.drawPixmap(QPointF(x + 2, VIDEO_Y + 16), pixmap)
                painter.setPen(_TEXT)
                painter.drawText(QPointF(x + 4, VIDEO_Y + 12), clip.clip_id)
                painter.restore()
            painter.setPen(QPen(_CLIP_SELECTED, 2) if clip.clip_id == selected else outline)
            painter.setBrush(Qt.BrushStyle.NoBrush)
            painter.drawRect(rect.adjusted(0.5, 0.5, -0.5, -0.5))
            if clip.transition_in is not None and index > 0:
                self._paint_transition(painter, clip, x)

    def _paint_transition(self, painter: QPainter, clip: Any, x: float) -> None:
        spec = clip.transition_in
        period = self.model.document.tempo_map.beat_period_at(clip.start.seconds)
        half = max(4.0, spec.seconds(period) * self._pps / 2)
        top, bottom = VIDEO_Y + VIDEO_H - 14, VIDEO_Y + VIDEO_H - 2
        # a bow tie across the cut, as long as the transition
        shape = QPolygonF(
            [
                QPointF(x - half, top),
                QPointF(x + half, bottom),
                QPointF(x + half, top),
                QPointF(x - half, bottom),
            ]
        )
        painter.setPen(QPen(QColor(255, 255, 255, 200), 1))
        painter.setBrush(QBrush(QColor(255, 255, 255, 70)))
        painter.drawPolygon(shape)

    def _paint_waveform(self, painter: QPainter, area: Any) -> None:
        wave = self.model.waveform
        if wave is None:
            return
        scroll = self.horizontalScrollBar().value()
        first = max(0, (area.left() + scroll) // TILE_W)
        last = (area.right() + scroll) // TILE_W
        for tile in range(first, last + 1):
            pixmap = self._wave_tile(wave, tile)
            if pixmap is not None:
                painter.drawPixmap(QPointF(tile * TILE_W - scroll, WAVE_Y), pixmap)

    def _wave_tile(self, wave: Waveform, tile: int) -> QPixmap | None:
        key = (self._pps, tile)
        if key in self._wave_tiles:
            self._wave_tiles.move_to_end(key)
            return self._wave_tiles[key]
        # bucket range of each pixel column of the tile
        px = np.arange(tile * TILE_W, (tile + 1) * TILE_W + 1, dtype=np.float64)
        edges = np.floor(px / self._pps * wave.buckets_per_second).astype(np.int64)
        n = wave.minima.size
        if edges[0] >= n:
            return None
        edges = np.clip(edges, 0, n)
        columns = int(np.count_nonzero(edges[:-1] < n))
        starts = edges[:columns]
        stops = np.maximum(edges[1 : columns + 1], starts + 1)
        stops = np.minimum(stops, n)
        lo = np.minimum.reduceat(wave.minima, starts) if columns else np.zeros(0)
        hi = np.maximum.reduceat(wave.maxima, starts) if columns else np.zeros(0)
        # reduceat reaches to the next start; the last column to its own stop
        if columns:
            lo[-1] = wave.minima[starts[-1] : stops[-1]].min()
            hi[-1] = wave.maxima[starts[-1] : stops[-1]].max()
        peak = max(1e-6, float(max(np.abs(wave.minima).max(), np.abs(wave.maxima).max())))
        mid, half = WAVE_H / 2, WAVE_H / 2 - 2
        image = QImage(TILE_W, WAVE_H, QImage.Format.Format_ARGB32_Premultiplied)
        image.fill(Qt.GlobalColor.transparent)
        tile_painter = QPainter(image)
        tile_painter.setPen(QPen(_WAVE, 1))
        lines = [
            QLineF(c + 0.5, mid - hi[c] / peak * half, c + 0.5, mid - lo[c] / peak * half + 0.5)
            for c in range(columns)
        ]
        tile_painter.drawLines(lines)
        tile_painter.end()
        pixmap = QPixmap.fromImage(image)
        self._wave_tiles[key] = pixmap
        while len(self._wave_tiles) > 64:
            self._wave_tiles.popitem(last=False)
        return pixmap

    def _paint_drag(self, painter: QPainter) -> None:
        drag = self._drag
        if drag is None or drag.target is None or drag.kind == "scrub":
            return
        painter.setPen(QPen(_GHOST, 2, Qt.PenStyle.DashLine))
        painter.setBrush(Qt.BrushStyle.NoBrush)
        if drag.kind == "trim":
            x = self.x_at(drag.target)
            painter.drawLine(QLineF(x, VIDEO_Y - 2, x, VIDEO_Y + VIDEO_H + 2))
        else:
            clip = self.model.clip(drag.clip_id)
            if clip is not None:
                painter.drawRect(
                    QRectF(self.x_at(drag.target), VIDEO_Y, clip.duration * self._pps, VIDEO_H)
                )

    # -- mouse and keys ------------------------------------------------------------------
    def _cut_near(self, x: float) -> tuple[str, str] | None:
        """The clip and edge of a cut within grabbing distance of viewport x."""
        clips = self.model.clips
        if len(clips) < 2:
            return None
        t = self.time_at(x)
        starts = [c.start.seconds for c in clips]
        i = bisect.bisect_left(starts, t)
        best = None
        for j in (i - 1, i):
            if 1 <= j < len(clips):
                distance = abs(self.x_at(starts[j]) - x)
                if distance <= EDGE_GRAB_PX and (best is None or distance < best[0]):
                    best = (distance, j)
        if best is None:
            return None
        return clips[best[1] - 1].clip_id, "end"

    def mousePressEvent(self, event: QMouseEvent) -> None:  # noqa: N802
        if self.model.document is None or event.button() != Qt.MouseButton.LeftButton:
            super().mousePressEvent(event)
            return
        pos = event.position()
        self.setFocus(Qt.FocusReason.MouseFocusReason)
        if VIDEO_Y <= pos.y() < VIDEO_Y + VIDEO_H:
            cut = self._cut_near(pos.x())
            if cut is not None:
                self._drag = _Drag("trim", clip_id=cut[0], edge=cut[1])
                return
            clip = self.model.clip_at(self.time_at(pos.x()))
            if clip is not None:
                self.model.select(clip.clip_id)
                self._drag = _Drag(
                    "move",
                    clip_id=clip.clip_id,
                    grab_offset=self.time_at(pos.x()) - clip.start.seconds,
                    press_x=pos.x(),
                )
                return
            self.model.select("")
            return
        self._drag = _Drag("scrub")
        self._scrub(pos.x())

    def mouseMoveEvent(self, event: QMouseEvent) -> None:  # noqa: N802
        pos = event.position()
        drag = self._drag
        if drag is None:
            on_cut = VIDEO_Y <= pos.y() < VIDEO_Y + VIDEO_H and self._cut_near(pos.x())
            self.viewport().setCursor(
                Qt.CursorShape.SizeHorCursor if on_cut else Qt.CursorShape.ArrowCursor
            )
            return
        drag.moved = True
        if drag.kind == "scrub":
            self._scrub(pos.x())
        elif drag.kind == "trim":
            drag.target = self.model.snapped(self.time_at(pos.x()))
        else:
            low, high = self.model.slide_range(drag.clip_id)
            target = self.model.snapped(self.time_at(pos.x()) - drag.grab_offset)
            drag.target = min(max(target, low), high) if low <= high else None
        self.viewport().update()

    def mouseReleaseEvent(self, event: QMouseEvent) -> None:  # noqa: N802
        drag, self._drag = self._drag, None
        if drag is None:
            super().mouseReleaseEvent(event)
            return
        if drag.kind == "scrub":
            return
        # the release position decides (a drag may arrive as press + release only)
        pos = event.position()
        try:
            if drag.kind == "trim":
                self.model.trim(drag.clip_id, drag.edge, self.time_at(pos.x()))
            elif abs(pos.x() - drag.press_x) >= 2:
                index = self.model.index_of(drag.clip_id)
                if 0 < index < len(self.model.clips) - 1:
                    self.model.move(drag.clip_id, self.time_at(pos.x()) - drag.grab_offset)
        except APEXDirectorError as err:
            log.info("edit refused: %s", err)
        self.viewport().update()

    def _scrub(self, x: float) -> None:
        seconds = min(max(0.0, self.time_at(x)), self.model.duration)
        self.model.set_playhead(seconds)
        self.position_changed.emit(self.model.playhead)

    def wheelEvent(self, event: QWheelEvent) -> None:  # noqa: N802
        delta = event.angleDelta().y() or event.angleDelta().x()
        if event.modifiers() & Qt.KeyboardModifier.ControlModifier:
            self.zoom_by(1.25 ** (delta / 120.0), anchor_x=event.position().x())
            event.accept()
            return
        bar = self.horizontalScrollBar()
        bar.setValue(bar.value() - round(delta / 120.0 * 60))
        event.accept()

    def keyPressEvent(self, event: QKeyEvent) -> None:  # noqa: N802
        if event.matches(QKeySequence.StandardKey.Undo):
            self.model.undo_stack.undo()
        elif event.matches(QKeySequence.StandardKey.Redo):
            self.model.undo_stack.redo()
        elif event.key() == Qt.Key.Key_S and not event.modifiers():
            self.split_at_playhead()
        elif event.key() in (Qt.Key.Key_Plus, Qt.Key.Key_Equal):
            self.zoom_by(1.5, anchor_x=self.x_at(self.model.playhead))
        elif event.key() == Qt.Key.Key_Minus:
            self.zoom_by(1 / 1.5, anchor_x=self.x_at(self.model.playhead))
        elif event.key() in (Qt.Key.Key_Left, Qt.Key.Key_Right) and self.model.beats:
            beats = self.model.beats
            here = self.model.playhead
            if event.key() == Qt.Key.Key_Right:
                i = bisect.bisect_right(beats, here + 1e-6)
                target = beats[i] if i < len(beats) else self.model.duration
            else:
                i = bisect.bisect_left(beats, here - 1e-6) - 1
                target = beats[i] if i >= 0 else 0.0
            self.model.set_playhead(target)
            self.position_changed.emit(self.model.playhead)
        else:
            super().keyPressEvent(event)

    def contextMenuEvent(self, event: QContextMenuEvent) -> None:  # noqa: N802
        clip = self.model.clip_at(self.time_at(event.pos().x()))
        if clip is None or self.model.document is None:
            return
        self.model.select(clip.clip_id)
        menu = QMenu(self)
        menu.addAction("Split at playhead", self.split_at_playhead)
        if self.model.index_of(clip.clip_id) > 0:
            sub = menu.addMenu("Transition in")
            for kind in TRANSITIONS:
                sub.addAction(
                    kind.replace("_", " "),
                    lambda k=kind, c=clip.clip_id: self.model.set_transition(c, k),
                )
        menu.exec(event.globalPos())


# -- benchmark -------------------------------------------------------------------------


def _synthetic_document(clips: int, folder: Path) -> TimelineDocument:
    """``clips`` one-second clips at 120 BPM, stills cycling through 8 small images."""
    from engine.api import Clip, ClipSource, TempoMap, TimePoint, Track

    paths = []
    for i in range(8):
        image = QImage(192, 108, QImage.Format.Format_RGB32)
        image.fill(QColor.fromHsv(i * 45, 160, 200))
        path = folder / f"still-{i}.png"
        image.save(str(path))
        paths.append(str(path))
    duration = float(clips)
    beats = tuple((i * 0.5, i // 4 + 1, i % 4 + 1) for i in range(clips * 2))
    tempo_map = TempoMap(beats, 4, duration)
    items = []
    for i in range(clips):
        start = (
            TimePoint("start", 0.0) if i == 0 else TimePoint.at(tempo_map.position(i), tempo_map)
        )
        end = (
            TimePoint("end", duration)
            if i == clips - 1
            else TimePoint.at(tempo_map.position(i + 1.0), tempo_map)
        )
        items.append(
            Clip(
                clip_id=f"shot-{i + 1:04d}",
                start=start,
                end=end,
                source=ClipSource(kind="still", paths=(paths[i % 8],)),
            )
        )
    return TimelineDocument(
        fps=30, tempo_map=tempo_map, tracks=(Track(name="V1", kind="video", items=tuple(items)),)
    )


def benchmark_repaint(
    clips: int = 1000, *, repeats: int = 30, width: int = 1600, seconds_visible: float = 0.0
) -> dict[str, float]:
    """Time full repaints of a timeline of ``clips`` clips (needs a QApplication).

    Parameters
    ----------
    clips : int
        One-second clips on a 120 BPM grid, with thumbnails and a waveform.
    repeats : int
        Repaints timed (after a warm-up that loads thumbnails and waveform tiles).
    width : int
        Widget width in pixels.
    seconds_visible : float
        Zoom so this many seconds fill the width; 0 fits the whole timeline (every
        clip on screen, the worst case).

    Returns
    -------
    dict
        ``median_ms``, ``max_ms``, ``mean_ms`` of one synchronous repaint (wall time),
        ``p95_ms``, ``median_cpu_ms`` and ``max_cpu_ms`` (the GUI thread's CPU time, which
        leaves out waiting for a busy CPU), ``clips``, ``visible_clips``, ``width``.
    """
    app = QApplication.instance()
    if app is None:
        raise RuntimeError("benchmark_repaint needs a QApplication")
    with tempfile.TemporaryDirectory(prefix="apex-timeline-bench-") as folder:
        document = _synthetic_document(clips, Path(folder))
        sr = 8000
        t = np.arange(int(document.duration * sr)) / sr
        samples = np.sin(2 * np.pi * 110 * t) * (0.3 + 0.7 * (np.sin(2 * np.pi * 0.5 * t) ** 2))
        view = TimelineView()
        view.resize(width, view.minimumHeight())
        view.show()
        view.set_document(document, waveform=Waveform.from_samples(samples, sr))
        if seconds_visible > 0:
            view.set_pixels_per_second(view.viewport().width() / seconds_visible, anchor_x=0)
            view.scroll_to(0)
        deadline = time.perf_counter() + 30
        while not view.windowHandle().isExposed() and time.perf_counter() < deadline:
            app.processEvents()
        view.viewport().repaint()
        while view._thumbs.pending and time.perf_counter() < deadline:
            app.processEvents()
        view.viewport().repaint()
        timings, cpu = [], []
        for _ in range(repeats):
            before = view.paint_count
            start, start_cpu = time.perf_counter(), time.thread_time()
            view.viewport().repaint()
            timings.append((time.perf_counter() - start) * 1000)
            cpu.append((time.thread_time() - start_cpu) * 1000)
            if view.paint_count != before + 1:
                raise RuntimeError("the timeline did not paint; is the window exposed?")
        visible = len(view.model.visible_clips(view.time_at(0), view.time_at(width)))
        view.close()
        view.deleteLater()
    return {
        "median_ms": statistics.median(timings),
        "max_ms": max(timings),
        "mean_ms": statistics.fmean(timings),
        # CPU time of the GUI thread: on a busy machine wall time also counts waiting
        "median_cpu_ms": statistics.median(cpu),
        "max_cpu_ms": max(cpu),
        "p95_ms": sorted(timings)[min(len(timings) - 1, round(0.95 * (len(timings) - 1)))],
        "clips": float(clips),
        "visible_clips": float(visible),
        "width": float(width),
    }
