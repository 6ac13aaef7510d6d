"""Compose the video frame by frame from stills and encode it, streaming."""

from __future__ import annotations

import logging
import queue
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np

from engine.assembly.encoder import EncodeSettings, EncodeStats, H264Writer
from engine.assembly.motion import apply_motion
from engine.assembly.timeline import Timeline, blend
from engine.planning.shots import ShotList

__all__ = ["StillCache", "compose_video"]

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
    shots: ShotList, timeline: Timeline, cache: StillCache, motion_amount: float
) -> Iterator[np.ndarray]:
    for frame in range(timeline.frame_count):
        recipe = timeline.recipe(frame)
        layers = [
            apply_motion(cache.get(index), shots.shots[index].motion, prog, amount=motion_amount)
            for index, _weight, prog in recipe.layers
        ]
        yield blend(layers, [w for _i, w, _p in recipe.layers])


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


def compose_video(
    shots: ShotList,
    load_still: Callable[[int], np.ndarray],
    *,
    output_path: Path,
    audio_path: Path,
    settings: EncodeSettings,
    crossfade_seconds: float,
    motion_amount: float,
    max_audio_duration: float | None = None,
    progress: Progress | None = None,
) -> EncodeStats:
    """Render every frame of ``shots`` and encode it with the song's audio.

    ``load_still(i)`` returns shot ``i``'s still at the frame size. ``progress``
    is called about once per second of video with (frames done, total) and may
    raise to cancel.  Frames are composed in a worker thread while the previous
    ones are encoded; memory holds a handful of frames, whatever the song's length.
    """
    timeline = Timeline(shots, fps=settings.fps, crossfade_seconds=crossfade_seconds)
    cache = StillCache(load_still)
    total = timeline.frame_count
    with H264Writer(
        output_path, settings, audio_path=audio_path, max_audio_duration=max_audio_duration
    ) as writer:
        for frame, image in enumerate(_ahead(_frames(shots, timeline, cache, motion_amount))):
            writer.write(image)
            if progress is not None and (frame % settings.fps == 0 or frame == total - 1):
                progress(frame + 1, total)
        stats = writer.close()
    log.info("composed %d frames at %d fps", stats.frames, settings.fps)
    return stats
