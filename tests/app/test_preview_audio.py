# ruff: noqa: F401, F811 - pytest fixtures imported from tests.app.panel_fixtures
"""The preview player's sound: it plays the song on a real (virtual) audio device, in sync.

The ``audio_device`` fixture (``tests/app/conftest.py``) gives the process a PulseAudio
null sink; these tests press play as a user does, record the sink's monitor and find the
recording in the synthesized song, so they check what was *heard*, not what the player
says it did.  ``Heard`` windows give, for a wall time, the song time that was playing; a
frame is in sync when the time it shows is that song time, within one frame (1/30 s).
"""

from __future__ import annotations

import itertools
import time
import wave
from pathlib import Path

import numpy as np
import pytest
from PySide6.QtCore import QPoint, Qt
from PySide6.QtMultimedia import QMediaDevices, QMediaPlayer
from pytestqt.qtbot import QtBot

from app.engine_bridge import EngineBridge
from app.widgets.preview_player import PreviewPlayer
from app.widgets.timeline_view import TimelineView
from engine.api import TimelineDocument
from tests.app.audio_device import (
    SINK_NAME,
    Heard,
    MonitorRecorder,
    PulseDaemon,
    heard_song_times,
)
from tests.app.panel_fixtures import bridge
from tests.app.timeline_media import song_document

FRAME = 1 / 30  # the document's frame rate
RATE = 16000  # the synthesized song's sample rate; the recording is made at the same
SETTLE = 0.2  # after play or a seek, the sound takes this long to start; frames then are not judged
WINDOW = 0.2  # heard_song_times' window (s)
GOOD_MATCH = 0.95  # correlation of a recorded window with the song that counts as the song


class Watch:
    """Wall-clock stamped record of the player's signals and the QMediaPlayer's position."""

    def __init__(self, player: PreviewPlayer) -> None:
        self.media = player.findChild(QMediaPlayer)
        assert self.media is not None
        self.frames: list[tuple[float, float, float]] = []  # (wall, shown, media position)
        self.playhead: list[tuple[float, float]] = []  # (wall, position_changed)
        player.frame_shown.connect(self._frame)
        player.position_changed.connect(self._moved)

    def _frame(self, seconds: float) -> None:
        self.frames.append((time.monotonic(), seconds, self.media.position() / 1000.0))

    def _moved(self, seconds: float) -> None:
        self.playhead.append((time.monotonic(), seconds))

    def expected(self, wall: float) -> float:
        """Where the playhead was at ``wall`` (the search hint for the recording)."""
        walls = [w for w, _ in self.playhead]
        return float(np.interp(wall, walls, [s for _, s in self.playhead]))


def _song(path: Path) -> np.ndarray:
    with wave.open(str(path), "rb") as handle:
        assert handle.getframerate() == RATE
        pcm = np.frombuffer(handle.readframes(handle.getnframes()), dtype="<i2")
    return pcm.reshape(-1, handle.getnchannels()).mean(axis=1) / 32768.0


def _sync_offsets(
    heard: list[Heard], stamped: list[tuple[float, float]], a: float, b: float
) -> np.ndarray:
    """Time shown minus time heard (s) of the ``(wall, seconds)`` stamps between ``a`` and ``b``.

    The time heard at a stamp comes from the recorded windows around it (``wall + lead``,
    ``lead`` their median), so a drop-out elsewhere does not count against it.
    """
    good = [h for h in heard if h.match > GOOD_MATCH]
    offsets = []
    for wall, shown in stamped:
        if not a + SETTLE <= wall <= b:
            continue
        near = [h.song_seconds - h.wall for h in good if abs(h.wall + WINDOW / 2 - wall) <= 0.15]
        if near:
            offsets.append(shown - (wall + float(np.median(near))))
    return np.array(offsets)


def _check_sync(name: str, heard: list[Heard], watch: Watch, a: float, b: float) -> None:
    """The playhead and the frames shown are within one frame of the sound heard.

    On a loaded machine (CI, two cores shared) a frame can be rendered late and the sound
    can drop out, so 10 % may be off.  The figures are printed (``pytest -s``).
    """
    clock = _sync_offsets(heard, watch.playhead, a, b)
    frames = _sync_offsets(heard, [(w, s) for w, s, _ in watch.frames], a, b)
    for what, ms in (("playhead", clock * 1000), ("frame shown", frames * 1000)):
        print(
            f"\n{name}: {what} minus sound heard, {ms.size} samples: mean {ms.mean():+.1f} ms, "
            f"max |{np.abs(ms).max():.1f}| ms, range [{ms.min():+.1f}, {ms.max():+.1f}] ms"
        )
        assert ms.size >= 15, f"too few {what} samples to judge"
        assert np.mean(np.abs(ms) <= 1000 * FRAME) >= 0.9, f"{what} vs sound (ms): {np.round(ms)}"


def _check_heard(heard: list[Heard], what: str) -> None:
    """Most recorded windows are the song (a drop-out on a loaded machine may spoil a few)."""
    poor = [round(h.match, 2) for h in heard if h.match <= GOOD_MATCH]
    assert len(heard) >= 5 and len(poor) <= 0.2 * len(heard), (
        f"{what}: {len(poor)} of {len(heard)} recorded windows unlike the song: {poor}"
    )


def _song_time_at_start(recorder: MonitorRecorder, heard: list[Heard], after: float) -> float:
    """The song time of the first sound recorded after wall ``after``."""
    began = recorder.sound_starts(after)
    first = min((h for h in heard if h.wall >= began), key=lambda h: h.wall)
    return first.song_seconds - (first.wall - began)


@pytest.fixture
def media(tmp_path: Path) -> tuple[TimelineDocument, np.ndarray]:
    document, audio, _ = song_document(tmp_path)
    return document, _song(audio)


@pytest.fixture
def player(
    qtbot: QtBot,
    audio_device: PulseDaemon,
    bridge: EngineBridge,
    media: tuple[TimelineDocument, np.ndarray],
) -> PreviewPlayer:
    widget = PreviewPlayer(bridge, preview_size=(160, 90))
    qtbot.addWidget(widget)
    widget.resize(400, 300)
    widget.show()
    qtbot.waitExposed(widget)
    with qtbot.waitSignal(widget.frame_shown, timeout=20000):
        widget.set_document(media[0])
    watch = widget.findChild(QMediaPlayer)
    assert watch is not None
    qtbot.waitUntil(
        lambda: watch.mediaStatus() == QMediaPlayer.MediaStatus.LoadedMedia, timeout=5000
    )
    return widget


def test_the_virtual_device_is_the_players_audio_output(
    audio_device: PulseDaemon, player: PreviewPlayer
) -> None:
    outputs = [bytes(device.id().data()) for device in QMediaDevices.audioOutputs()]
    assert SINK_NAME.encode() in outputs
    assert bytes(QMediaDevices.defaultAudioOutput().id().data()) == SINK_NAME.encode()
    assert player.has_audio_output


def test_play_sounds_the_song_and_the_frames_follow_the_sound(
    qtbot: QtBot,
    audio_device: PulseDaemon,
    player: PreviewPlayer,
    media: tuple[TimelineDocument, np.ndarray],
) -> None:
    watch = Watch(player)
    start = 3.0
    with qtbot.waitSignal(player.frame_shown, timeout=20000):
        player.seek(start)
    with audio_device.record(rate=RATE) as recorder:
        qtbot.waitUntil(lambda: recorder.recorded_seconds() > 0.3, timeout=5000)
        pressed = time.monotonic()
        qtbot.keyClick(player, Qt.Key.Key_Space)
        assert player.playing
        qtbot.wait(2000)
        assert watch.media.playbackState() == QMediaPlayer.PlaybackState.PlayingState
        qtbot.keyClick(player, Qt.Key.Key_Space)
        paused = time.monotonic()
        paused_at = watch.media.position()
        qtbot.wait(700)
    assert not player.playing
    assert watch.media.playbackState() == QMediaPlayer.PlaybackState.PausedState
    assert watch.media.position() == paused_at  # paused: the audio clock stands still
    played, wall = paused_at / 1000.0 - start, paused - pressed
    assert 0.85 * wall < played < 1.02 * wall, f"the song moved {played:.2f} s in {wall:.2f} s"

    heard = heard_song_times(recorder, media[1], watch.expected, window=WINDOW)
    # what the device played is the song, from where play was pressed (a window that
    # spans the pause holds the song and silence: it is not judged)
    _check_heard([h for h in heard if h.wall + WINDOW < paused], "play")
    assert _song_time_at_start(recorder, heard, pressed) == pytest.approx(start, abs=0.03)
    assert recorder.sound_starts(pressed) - pressed < 0.2  # the sound starts promptly
    # pausing silences it
    assert max(h.wall for h in heard) < paused + 0.15
    tail = recorder.samples()[round((paused + 0.2 - recorder.sample_zero_time()) * RATE) :]
    assert tail.size > 0.3 * RATE and np.abs(tail).max() < 1e-3

    # every frame shown while playing is a new one, in step with the sound
    playing = [f for f in watch.frames if pressed + SETTLE <= f[0] <= paused]
    shown = [s for _, s, _ in playing]
    assert len(shown) >= 30 and all(b > a for a, b in itertools.pairwise(shown))
    _check_sync("play", heard, watch, pressed, paused)
    # and with the QMediaPlayer's own clock (which moves in 64 ms audio-buffer steps)
    steps = np.array([abs(s - m) for _, s, m in playing])
    assert np.mean(steps <= 0.1) >= 0.9, f"frames vs QMediaPlayer.position(): {steps}"


def test_scrubbing_the_timeline_moves_the_sound(
    qtbot: QtBot,
    audio_device: PulseDaemon,
    player: PreviewPlayer,
    media: tuple[TimelineDocument, np.ndarray],
) -> None:
    document, song = media
    view = TimelineView()
    qtbot.addWidget(view)
    view.resize(900, view.minimumHeight())
    view.show()
    qtbot.waitExposed(view)
    player.connect_timeline(view)
    with qtbot.waitSignal(player.frame_shown, timeout=20000):
        view.set_document(document)
    watch = Watch(player)
    early, late = view.x_at(2.0), view.x_at(12.0)
    with audio_device.record(rate=RATE) as recorder:
        qtbot.waitUntil(lambda: recorder.recorded_seconds() > 0.3, timeout=5000)
        # scrub while paused, then play: the sound starts where the playhead is
        qtbot.mouseClick(view.viewport(), Qt.MouseButton.LeftButton, pos=QPoint(round(early), 10))
        target = view.time_at(round(early))
        pressed = time.monotonic()
        qtbot.keyClick(player, Qt.Key.Key_Space)
        qtbot.wait(1200)
        # scrub while playing: the sound jumps with the playhead
        qtbot.mouseClick(view.viewport(), Qt.MouseButton.LeftButton, pos=QPoint(round(late), 10))
        jumped = time.monotonic()
        jump_target = view.time_at(round(late))
        qtbot.wait(1400)
        qtbot.keyClick(player, Qt.Key.Key_Space)
        paused = time.monotonic()
        qtbot.wait(300)

    # the playhead never goes back to where it was when the sound starts or jumps
    first_stretch = [s for w, s in watch.playhead if pressed <= w < jumped]
    assert first_stretch and min(first_stretch) >= target - 1e-3
    second_stretch = [s for w, s in watch.playhead if jumped <= w <= paused]
    assert second_stretch and min(second_stretch) >= jump_target - 1e-3

    heard = heard_song_times(recorder, song, watch.expected, window=WINDOW)
    # a window that spans the jump holds two parts of the song: only the others must match
    before = [h for h in heard if h.wall + WINDOW < jumped]
    after = [h for h in heard if jumped + 0.15 <= h.wall and h.wall + WINDOW < paused]
    _check_heard(before, "before the scrub")
    _check_heard(after, "after the scrub")
    before = [h for h in before if h.match > GOOD_MATCH]
    after = [h for h in after if h.match > GOOD_MATCH]
    assert _song_time_at_start(recorder, before, pressed) == pytest.approx(target, abs=0.03)
    assert all(h.song_seconds < target + 1.2 for h in before)
    assert min(after, key=lambda h: h.wall).song_seconds == pytest.approx(
        jump_target + (min(h.wall for h in after) - jumped), abs=0.1
    )
    for name, a, b in (("scrub, play", pressed, jumped), ("scrub while playing", jumped, paused)):
        _check_sync(name, heard, watch, a, b)
