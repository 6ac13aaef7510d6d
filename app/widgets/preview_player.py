"""The preview player: the edit's frames from the engine's realtime frame server, with sound.

:class:`PreviewPlayer` shows the frame of the timeline document at the playhead,
rendered at reduced size by :func:`engine.api.document_frame_server` (the same frame
renderer as the final encode, so a scrub shows what the render will show).  Frames are
rendered through the engine bridge (``bridge.call``), never on the GUI thread; while one
frame is being made, further requests collapse into the latest, so scrubbing never
queues up stale work.

Playback plays the song with :class:`QMediaPlayer` / :class:`QAudioOutput` and follows
the sound: a monotonic clock locked to the position the player reports; where there is no
audio device (a server, a CI machine without ``pulseaudio``) the monotonic clock runs free,
silently.  :meth:`PreviewPlayer.connect_timeline` keeps the
player and a :class:`~app.widgets.timeline_view.TimelineView` on one playhead.

The *Before grade* button shows the same frame without the document's grades.

The song of an encrypted project is sealed on disk: with :attr:`PreviewPlayer.audio_opener`
set (the main window gives ``bridge.audio_source``), the song is opened through the
bridge and a sealed one is played from memory, ``QMediaPlayer.setSourceDevice`` on a
:class:`QBuffer` holding the clear bytes; nothing of it is written to disk.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from PySide6.QtCore import (
    QBuffer,
    QByteArray,
    QElapsedTimer,
    QIODevice,
    QSize,
    Qt,
    QTimer,
    QUrl,
    Signal,
)
from PySide6.QtGui import QImage, QKeyEvent, QPixmap, QResizeEvent
from PySide6.QtMultimedia import QAudioOutput, QMediaDevices, QMediaPlayer
from PySide6.QtWidgets import (
    QHBoxLayout,
    QLabel,
    QPushButton,
    QSizePolicy,
    QVBoxLayout,
    QWidget,
)

from engine.api import TimelineDocument, document_frame_server

__all__ = ["PreviewPlayer", "rgb_to_qimage"]

log = logging.getLogger(__name__)

TICK_MS = 33
AUDIO_CLOCK_WINDOW_S = 1.0


class Bridge(Protocol):
    """What the player needs of :class:`app.engine_bridge.EngineBridge`."""

    def call(self, work: Any, on_done: Any = None, on_error: Any = None) -> Any: ...


def rgb_to_qimage(frame: np.ndarray) -> QImage:
    """A deep-copied QImage of an ``(h, w, 3)`` uint8 RGB array."""
    data = np.ascontiguousarray(frame, dtype=np.uint8)
    height, width = data.shape[:2]
    image = QImage(data.data, width, height, 3 * width, QImage.Format.Format_RGB888)
    return image.copy()


def _clock_text(seconds: float) -> str:
    minutes, rest = divmod(max(0.0, seconds), 60)
    return f"{int(minutes)}:{rest:05.2f}"


class PreviewPlayer(QWidget):
    """Preview of the edit at the playhead, with playback and a before/after grade toggle.

    Parameters
    ----------
    bridge : EngineBridge
        Runs the frame rendering off the GUI thread (``bridge.call``).
    preview_size : (int, int)
        Width and height of the rendered frames.

    Signals
    -------
    position_changed(float)
        The playhead moved by playback (seconds).
    frame_shown(float)
        A new frame is on screen; the time it shows.
    playing_changed(bool)
    error_occurred(str)
        A frame could not be made (the engine's one-line explanation).
    """

    position_changed = Signal(float)
    frame_shown = Signal(float)
    playing_changed = Signal(bool)
    error_occurred = Signal(str)

    def __init__(
        self,
        bridge: Bridge,
        parent: QWidget | None = None,
        *,
        preview_size: tuple[int, int] = (320, 180),
    ) -> None:
        super().__init__(parent)
        self._bridge = bridge
        self._size = preview_size
        self._document: TimelineDocument | None = None
        self._servers: dict[bool, Any] = {}
        self._generation = 0
        self._in_flight = False
        self._pending: float | None = None
        self._position = 0.0
        self._graded = True
        self._image = QImage()
        self._shown: tuple[float, bool] | None = None

        self._screen = QLabel(self)
        self._screen.setObjectName("preview_screen")
        self._screen.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self._screen.setMinimumSize(QSize(160, 90))
        self._screen.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self._screen.setStyleSheet("background: black; color: #aaa;")
        self._screen.setText("No edit to preview yet")
        self.play_button = QPushButton("Play", self)
        self.play_button.setObjectName("play_button")
        self.play_button.clicked.connect(self.toggle_play)
        self.grade_button = QPushButton("Before grade", self)
        self.grade_button.setObjectName("grade_toggle")
        self.grade_button.setCheckable(True)
        self.grade_button.setToolTip("Show the frame without the grade (before/after)")
        self.grade_button.toggled.connect(lambda before: self.set_graded(not before))
        self._time = QLabel(_clock_text(0.0), self)
        self._time.setObjectName("preview_time")
        controls = QHBoxLayout()
        controls.addWidget(self.play_button)
        controls.addWidget(self._time)
        controls.addStretch(1)
        controls.addWidget(self.grade_button)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addWidget(self._screen, 1)
        layout.addLayout(controls)
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)

        self._media = QMediaPlayer(self)
        # The song's source, run through the bridge: a clear song comes back as its path,
        # a sealed one (encrypted project) as its bytes (``AudioBytes``).  None: the song
        # file is played directly.
        self.audio_opener: Callable[[Path], Any] | None = None
        # a sealed song played from memory: the buffer and its bytes live as long as the
        # player reads them (until the next source is set)
        self._audio_buffer: QBuffer | None = None
        self._audio_bytes: QByteArray | None = None
        self._audio: QAudioOutput | None = None
        if QMediaDevices.audioOutputs():
            self._audio = QAudioOutput(self)
            self._media.setAudioOutput(self._audio)
        self._clock = QElapsedTimer()
        self._clock_origin = 0.0
        self._audio_leads: deque[tuple[float, float]] = deque()
        self._media.positionChanged.connect(self._audio_moved)
        self._ticker = QTimer(self)
        self._ticker.setInterval(TICK_MS)
        self._ticker.timeout.connect(self._tick)

    # -- public API ----------------------------------------------------------------------
    @property
    def position(self) -> float:
        return self._position

    @property
    def graded(self) -> bool:
        return self._graded

    @property
    def playing(self) -> bool:
        return self._ticker.isActive()

    @property
    def has_audio_output(self) -> bool:
        return self._audio is not None

    def current_image(self) -> QImage:
        """The frame on screen (a null image before the first)."""
        return QImage(self._image)

    def shown(self) -> tuple[float, bool] | None:
        """``(seconds, graded)`` of the frame on screen."""
        return self._shown

    def set_document(self, document: TimelineDocument | None) -> None:
        """Preview ``document`` (None clears the player).

        The frame servers are built through the bridge; the frame at the current
        position follows.
        """
        self.pause()
        self._generation += 1
        self._servers = {}
        self._document = document
        self._in_flight = False
        self._pending = None
        if document is None:
            self._set_song(None)
            self._screen.setText("No edit to preview yet")
            return
        audio = document.track("audio")
        song = audio.items[0] if audio is not None and audio.items else None
        source = getattr(song, "source", None)
        self._set_song(Path(source.paths[0]) if source else None)
        if not document.video_clips:
            self._screen.setText("No shots yet: plan the video to preview it")
            return
        generation = self._generation
        width, height = self._size

        def build() -> dict[bool, Any]:
            return {
                graded: document_frame_server(document, width=width, height=height, graded=graded)
                for graded in (True, False)
            }

        def built(servers: dict[bool, Any]) -> None:
            if generation == self._generation:
                self._servers = servers
                self._request(self._position)

        self._bridge.call(build, on_done=built, on_error=self._failed)

    @property
    def audio_device(self) -> QIODevice | None:
        """The in-memory device the song plays from (a sealed song), else None."""
        return self._media.sourceDevice()

    def _set_song(self, path: Path | None) -> None:
        """Play ``path`` (None: no sound): directly, or through :attr:`audio_opener`."""
        self._media.setSource(QUrl())  # the player lets go of a previous in-memory song
        if self._audio_buffer is not None:
            self._audio_buffer.close()
            self._audio_buffer.deleteLater()
        self._audio_buffer = self._audio_bytes = None
        if path is None:
            return
        if self.audio_opener is None:
            self._media.setSource(QUrl.fromLocalFile(str(path)))
            return
        opener, generation = self.audio_opener, self._generation

        def opened(source: Any) -> None:
            if generation != self._generation:
                return
            if isinstance(source, Path | str):
                self._media.setSource(QUrl.fromLocalFile(str(source)))
            else:
                self._play_from_memory(source.data, str(source.name))

        def failed(err: BaseException) -> None:
            # e.g. a locked encrypted project: frames still show, without sound
            message = " ".join(str(err).split()) or type(err).__name__
            log.info("the preview plays no sound for %s: %s", path.name, message)

        self._bridge.call(lambda: opener(path), on_done=opened, on_error=failed)

    def _play_from_memory(self, data: bytes, name: str) -> None:
        """Give the player the song's bytes through a read-only QBuffer (kept alive)."""
        self._audio_bytes = QByteArray(data)
        buffer = QBuffer(self)
        buffer.setData(self._audio_bytes)
        buffer.open(QIODevice.OpenModeFlag.ReadOnly)
        self._audio_buffer = buffer
        # the URL only names the data (its extension helps the demuxer); nothing is read
        # from it
        self._media.setSourceDevice(buffer, QUrl(f"memory:{name}"))

    def seek(self, seconds: float) -> None:
        """Show the frame at ``seconds`` (and play on from there while playing)."""
        duration = self._document.duration if self._document else 0.0
        self._position = min(max(0.0, float(seconds)), duration)
        self._time.setText(_clock_text(self._position))
        if self.playing:
            self._restart_clock()
        self._request(self._position)

    def set_graded(self, graded: bool) -> None:
        """Show frames with (True) or without (False) the document's grades."""
        if graded == self._graded:
            return
        self._graded = graded
        self.grade_button.blockSignals(True)
        self.grade_button.setChecked(not graded)
        self.grade_button.blockSignals(False)
        self._request(self._position)

    def play(self) -> None:
        if self._document is None or self.playing:
            return
        if self._position >= self._document.duration - 1e-3:
            self._position = 0.0
        self._restart_clock()
        self._ticker.start()
        self.play_button.setText("Pause")
        self.playing_changed.emit(True)

    def pause(self) -> None:
        if not self.playing:
            return
        self._ticker.stop()
        self._media.pause()
        self.play_button.setText("Play")
        self.playing_changed.emit(False)

    def toggle_play(self) -> None:
        self.pause() if self.playing else self.play()

    def connect_timeline(self, timeline: Any) -> None:
        """Share one playhead with a TimelineView and follow its document."""
        timeline.position_changed.connect(self.seek)
        self.position_changed.connect(timeline.set_playhead)
        model = timeline.model
        model.document_changed.connect(lambda: self.set_document(model.document))

    def sizeHint(self) -> QSize:  # noqa: N802 (Qt API)
        return QSize(self._size[0] + 8, self._size[1] + 48)

    # -- playback ------------------------------------------------------------------------
    def _restart_clock(self) -> None:
        self._clock_origin = self._position
        self._clock.start()
        self._audio_leads.clear()
        has_song = not self._media.source().isEmpty() or self._media.sourceDevice() is not None
        if self._audio is not None and has_song:
            self._media.setPosition(round(self._position * 1000))
            self._media.play()

    def _audio_moved(self, milliseconds: int) -> None:
        # The player's position moves in audio-buffer steps (64 ms, reported every 50 to
        # 100 ms, with Qt 6.11's FFmpeg backend) and runs up to a step ahead of the sound:
        # followed directly, it shows every other frame twice, +-32 ms around the sound.
        # The clock runs on the monotonic timer instead, at the smallest audio-minus-timer
        # difference of the last second: the report that came soonest after its step.
        if not (
            self.playing
            and self._audio is not None
            and self._media.playbackState() == QMediaPlayer.PlaybackState.PlayingState
        ):
            return
        elapsed = self._clock.nsecsElapsed() / 1e9
        self._audio_leads.append((elapsed, milliseconds / 1000.0 - elapsed))
        while self._audio_leads[0][0] < elapsed - AUDIO_CLOCK_WINDOW_S:
            self._audio_leads.popleft()
        self._clock_origin = min(lead for _, lead in self._audio_leads)

    def _clock_seconds(self) -> float:
        return self._clock_origin + self._clock.nsecsElapsed() / 1e9

    def _tick(self) -> None:
        assert self._document is not None
        seconds = min(self._clock_seconds(), self._document.duration)
        self._position = seconds
        self._time.setText(_clock_text(seconds))
        self.position_changed.emit(seconds)
        self._request(seconds)
        if seconds >= self._document.duration - 1e-3:
            self.pause()

    # -- frames --------------------------------------------------------------------------
    def _request(self, seconds: float) -> None:
        if not self._servers:
            return
        if self._in_flight:
            self._pending = seconds
            return
        self._in_flight = True
        server = self._servers[self._graded]
        graded, generation = self._graded, self._generation

        def done(frame: np.ndarray) -> None:
            if generation != self._generation:
                return
            self._in_flight = False
            self._show(rgb_to_qimage(frame), seconds, graded)
            self._next()

        def failed(err: BaseException) -> None:
            if generation != self._generation:
                return
            self._in_flight = False
            self._failed(err)
            self._next()

        self._bridge.call(lambda: server.frame_at(seconds), on_done=done, on_error=failed)

    def _next(self) -> None:
        wanted = self._pending
        self._pending = None
        if wanted is not None:
            self._request(wanted)
        elif self._shown is not None and self._shown[1] != self._graded:
            self._request(self._position)

    def _show(self, image: QImage, seconds: float, graded: bool) -> None:
        self._image = image
        self._shown = (seconds, graded)
        self._screen.setPixmap(self._scaled(image))
        self.frame_shown.emit(seconds)

    def _scaled(self, image: QImage) -> QPixmap:
        return QPixmap.fromImage(image).scaled(
            self._screen.size(),
            Qt.AspectRatioMode.KeepAspectRatio,
            Qt.TransformationMode.SmoothTransformation,
        )

    def _failed(self, err: BaseException) -> None:
        message = " ".join(str(err).split()) or type(err).__name__
        log.warning("preview frame failed: %s", message)
        self._screen.setText(f"No preview: {message}")
        self.error_occurred.emit(message)

    def resizeEvent(self, event: QResizeEvent) -> None:  # noqa: N802
        super().resizeEvent(event)
        if not self._image.isNull():
            self._screen.setPixmap(self._scaled(self._image))

    def keyPressEvent(self, event: QKeyEvent) -> None:  # noqa: N802
        if event.key() == Qt.Key.Key_Space:
            self.toggle_play()
        else:
            super().keyPressEvent(event)
