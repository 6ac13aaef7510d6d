"""The timeline: which shot (or blend of two) each output frame shows.

Frame ``k`` shows time ``k / fps``.  A hard cut at time ``t`` lands on frame
``round(t * fps)``, so it is never more than half a frame from the beat.  A
crossfade at a section change is centred on the cut: the new shot is at 50 % on
the downbeat itself.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from engine.assembly.tempo_map import frame_at
from engine.errors import ParameterError
from engine.planning.shots import ShotList

__all__ = ["FrameRecipe", "Timeline"]


@dataclass(frozen=True)
class FrameRecipe:
    """What one frame is made of: shot indices with their blend weights and motion progress."""

    frame: int
    layers: tuple[tuple[int, float, float], ...]  # (shot index, weight, motion progress)
    transition_progress: float = 0.0  # 0..1 across a transition window (0.5 on the cut)


class Timeline:
    """Maps output frames to shots.

    Parameters
    ----------
    shots : ShotList
        The plan; shots are contiguous from 0 to ``shots.duration``.
    fps : float
        Output frame rate (30000/1001 is given as 29.97002997...).
    crossfade_seconds : float
        Length of the transition into a shot whose ``transition_in`` is not "cut".
    transition_seconds : dict, optional
        Per-shot lengths (by shot index) that replace ``crossfade_seconds``.
    """

    def __init__(
        self,
        shots: ShotList,
        *,
        fps: float,
        crossfade_seconds: float,
        transition_seconds: dict[int, float] | None = None,
    ) -> None:
        if fps <= 0:
            raise ParameterError("fps", fps, "a positive number")
        if not shots.shots:
            raise ParameterError("shots", shots, "at least one shot")
        self.shots = shots
        self.fps = fps
        self.frame_count = max(1, frame_at(shots.duration, fps))
        self.cut_frames = [frame_at(s.start, fps) for s in shots.shots]
        self.cut_frames[0] = 0
        lengths = transition_seconds or {}
        # A transition never takes more than half of either neighbouring shot.
        self._fade_frames: list[int] = [0]
        for index, (prev, shot) in enumerate(
            zip(shots.shots, shots.shots[1:], strict=False), start=1
        ):
            seconds = lengths.get(index, crossfade_seconds)
            if shot.transition_in == "cut" or seconds <= 0:
                self._fade_frames.append(0)
                continue
            limit = min(prev.duration, shot.duration) * 0.5
            self._fade_frames.append(max(2, round(min(seconds, limit) * fps)))

    def shot_at(self, frame: int) -> int:
        """Index of the shot that owns ``frame`` (the incoming shot from its cut frame on)."""
        lo, hi = 0, len(self.cut_frames) - 1
        while lo < hi:
            mid = (lo + hi + 1) // 2
            if self.cut_frames[mid] <= frame:
                lo = mid
            else:
                hi = mid - 1
        return lo

    def _progress(self, index: int, frame: int) -> float:
        shot = self.shots.shots[index]
        time = frame / self.fps
        return (time - shot.start) / max(shot.duration, 1e-6)

    def recipe(self, frame: int) -> FrameRecipe:
        """The layers of ``frame``: one shot, or two during a crossfade."""
        index = self.shot_at(frame)
        layers: list[tuple[int, float, float]] = []
        # A crossfade into `index` (starting before its cut) or into `index + 1` (after).
        for incoming in (index, index + 1):
            if incoming <= 0 or incoming >= len(self.cut_frames):
                continue
            fade = self._fade_frames[incoming]
            if fade == 0:
                continue
            cut = self.cut_frames[incoming]
            first = cut - fade / 2.0
            if first <= frame < cut + fade / 2.0:
                linear = min(1.0, max(0.0, (frame - first + 0.5) / fade))
                weight = 0.5 - 0.5 * math.cos(math.pi * linear)
                layers = [
                    (incoming - 1, 1.0 - weight, self._progress(incoming - 1, frame)),
                    (incoming, weight, self._progress(incoming, frame)),
                ]
                return FrameRecipe(frame=frame, layers=tuple(layers), transition_progress=linear)
        return FrameRecipe(frame=frame, layers=((index, 1.0, self._progress(index, frame)),))


def blend(images: list[np.ndarray], weights: list[float]) -> np.ndarray:
    """Weighted sum of uint8 images, rounded back to uint8."""
    if len(images) == 1:
        return images[0]
    acc = np.zeros(images[0].shape, dtype=np.float32)
    for image, weight in zip(images, weights, strict=True):
        acc += image.astype(np.float32) * weight
    return np.clip(acc + 0.5, 0, 255).astype(np.uint8)
