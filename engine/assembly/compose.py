"""Compose the video frame by frame from stills and encode it, streaming."""

from __future__ import annotations

import contextlib
import dataclasses
import io
import json
import logging
import queue
import shutil
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from engine.assembly.encoder import (
    AudioTrack,
    EncodeSettings,
    VideoWriter,
    encode_audio_track,
    join_segments,
)
from engine.assembly.frame_renderer import FrameRenderer, FrameStyle
from engine.assembly.timeline import Timeline
from engine.atomic_files import atomic_path, atomic_write_text
from engine.audio.decode import AudioBytes, AudioSource
from engine.planning.shots import ShotList

__all__ = ["RenderStats", "StillCache", "compose_video"]

log = logging.getLogger(__name__)

Progress = Callable[[int, int], None]


class StillCache:
    """Keeps the few stills the current frames need decoded; loads others on demand."""

    def __init__(self, loader: Callable[[int], np.ndarray], *, capacity: int = 3) -> None:
        self._loader = loader
        self._capacity = capacity
        self._items: OrderedDict[int, np.ndarray] = OrderedDict()

    def get(self, index: int) -> np.ndarray:
        if index in self._items:
            self._items.move_to_end(index)
            return self._items[index]
        image = self._loader(index)
        self._items[index] = image
        while len(self._items) > self._capacity:
            self._items.popitem(last=False)
        return image


def _frames(
    shots: ShotList,
    timeline: Timeline,
    cache: StillCache,
    motion_amount: float,
    frames: range | None = None,
    *,
    style: FrameStyle | None = None,
    size: tuple[int, int] | None = None,
) -> Iterator[np.ndarray]:
    """The frames of ``frames`` (default: all): RGB, or I420 frames of ``size`` (width,
    height) for the encoder when ``size`` is given and the edit can be composed on
    planes (:attr:`FrameRenderer.supports_i420`)."""
    style = style or FrameStyle(motion_amount=motion_amount)
    renderer = FrameRenderer(shots, timeline, cache.get, style)
    numbers = frames if frames is not None else range(timeline.frame_count)
    if size is not None and renderer.supports_i420 and size[0] % 2 == 0 and size[1] % 2 == 0:
        for frame in numbers:
            yield renderer.render_i420(frame, size)
        return
    for frame in numbers:
        yield renderer.render(frame)


def _ahead(source: Iterator[np.ndarray], *, depth: int = 6) -> Iterator[np.ndarray]:
    """Run ``source`` in a worker thread, ``depth`` items ahead of the consumer.

    Compositing (OpenCV, numpy) and encoding (x264) both release the GIL, so the two
    overlap on a multi-core machine.  If the consumer stops early (an error, a
    cancellation) the worker is told to stop and joined; a worker's error is
    re-raised in the consumer.
    """
    items: queue.Queue[tuple[str, object]] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(kind: str, value: object) -> bool:
        while not stop.is_set():
            try:
                items.put((kind, value), timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def work() -> None:
        try:
            for item in source:
                if not put("item", item):
                    return
            put("end", None)
        except BaseException as err:  # handed to the consumer, which re-raises it
            put("error", err)

    worker = threading.Thread(target=work, name="apex-compose", daemon=True)
    worker.start()
    try:
        while True:
            kind, value = items.get()
            if kind == "end":
                return
            if kind == "error":
                raise value  # type: ignore[misc]
            yield value  # type: ignore[misc]
    finally:
        stop.set()
        worker.join()


@dataclass(frozen=True)
class RenderStats:
    frames: int
    segments: int
    segments_reused: int
    audio: AudioTrack


def compose_video(
    shots: ShotList,
    load_still: Callable[[int], np.ndarray],
    *,
    output_path: Path,
    audio_path: AudioSource,
    work_dir: Path,
    settings: EncodeSettings,
    crossfade_seconds: float,
    motion_amount: float,
    max_audio_duration: float | None = None,
    segment_seconds: float = 4.0,
    progress: Progress | None = None,
    style: FrameStyle | None = None,
    transition_seconds: dict[int, float] | None = None,
) -> RenderStats:
    """Render every frame of ``shots``, encode it in segments, and join them with the audio.

    ``work_dir`` holds the finished segments and the audio track; it must be unique to
    everything that determines the frames (the caller keys it by a hash).  Segments
    already there are reused, so a render that was killed resumes where it stopped;
    the folder is removed once the output is written.  ``load_still(i)`` returns
    shot ``i``'s still at the frame size.  ``progress`` is called about once per
    second of video with (frames done, total) and may raise to cancel.  Frames are
    composed in a worker thread while the previous ones are encoded; memory holds a
    handful of frames, whatever the song's length.  For ``yuv420p`` output of an edit
    without grades or whip pans, frames are composed on BT.709 I420 planes and handed to
    the encoder as they are (:meth:`FrameRenderer.render_i420`); otherwise in RGB.

    ``audio_path`` may be :class:`~engine.audio.decode.AudioBytes` (an encrypted
    project's song, opened in memory): its AAC track is then encoded into memory rather
    than ``work_dir/audio.m4a``, so no clear copy of the song is left on disk by a
    killed render (a resumed render encodes the track again: a second or two).
    """
    style = style or FrameStyle(motion_amount=motion_amount, transition_seconds=crossfade_seconds)
    timeline = Timeline(
        shots,
        fps=float(settings.fps),
        crossfade_seconds=crossfade_seconds,
        transition_seconds=transition_seconds,
    )
    cache = StillCache(load_still)
    total = timeline.frame_count
    per_segment = max(1, round(segment_seconds * float(settings.fps)))
    work_dir.mkdir(parents=True, exist_ok=True)

    audio_file = work_dir / "audio.m4a"
    audio_info = work_dir / "audio.json"
    audio_track: Path | bytes = audio_file
    if isinstance(audio_path, AudioBytes):
        buffer = io.BytesIO()
        audio = encode_audio_track(
            audio_path,
            buffer,
            bitrate=settings.audio_bitrate,
            gain_db=settings.audio_gain_db,
            max_duration=max_audio_duration,
        )
        audio_track = buffer.getvalue()
    elif audio_file.exists() and audio_info.exists():
        meta = json.loads(audio_info.read_text())
        audio = AudioTrack(samples=int(meta["samples"]), sample_rate=int(meta["sample_rate"]))
    else:
        with atomic_path(audio_file) as tmp:
            audio = encode_audio_track(
                audio_path,
                tmp,
                bitrate=settings.audio_bitrate,
                gain_db=settings.audio_gain_db,
                max_duration=max_audio_duration,
            )
        atomic_write_text(audio_info, json.dumps(dataclasses.asdict(audio)))

    segments: list[Path] = []
    reused = 0
    tick = max(1, round(float(settings.fps)))
    for index, first in enumerate(range(0, total, per_segment)):
        frames = range(first, min(total, first + per_segment))
        path = work_dir / f"segment_{index:05d}.mp4"
        segments.append(path)
        if path.exists():
            reused += 1
            if progress is not None:
                progress(frames.stop, total)
            continue
        planes = (settings.width, settings.height) if settings.pix_fmt == "yuv420p" else None
        images = _ahead(
            _frames(shots, timeline, cache, motion_amount, frames, style=style, size=planes)
        )
        with (
            contextlib.closing(images),
            atomic_path(path) as tmp,
            VideoWriter(tmp, settings) as writer,
        ):
            for frame, image in zip(frames, images, strict=True):
                writer.write(image)
                if progress is not None and (frame % tick == 0 or frame == total - 1):
                    progress(frame + 1, total)
    with atomic_path(output_path) as tmp:
        joined = join_segments(
            segments, audio_track, tmp, fps=settings.fps, metadata=settings.metadata
        )
    shutil.rmtree(work_dir, ignore_errors=True)
    if reused:
        log.info("resumed: reused %d of %d segments", reused, len(segments))
    log.info(
        "composed %d frames at %s fps in %d segments", joined.frames, settings.fps, len(segments)
    )
    return RenderStats(
        frames=joined.frames, segments=len(segments), segments_reused=reused, audio=audio
    )
