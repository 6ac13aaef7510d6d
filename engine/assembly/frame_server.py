"""The realtime assembly mode: any frame of the edit, on demand, at preview size.

A preview player (the GUI's timeline) asks for the frame at a time; the server
renders it with the same :class:`~engine.assembly.frame_renderer.FrameRenderer` as
the final encode, from stills scaled down once, so a scrub shows what the render
will show.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from engine.assembly.compose import StillCache
from engine.assembly.frame_renderer import FrameRenderer, FrameStyle
from engine.assembly.timeline import Timeline
from engine.errors import ParameterError
from engine.planning.shots import ShotList

__all__ = ["FrameServer"]


class FrameServer:
    """Serve frames of ``shots`` at ``width`` x ``height``.

    Parameters
    ----------
    shots : ShotList
    load_still : callable
        ``load_still(i)`` returns shot ``i``'s still (any size; it is scaled to cover
        the preview size once and cached).
    fps : float
        The edit's frame rate (frame numbers match the final render's).
    width, height : int
        Preview size.
    style : FrameStyle
        The same style as the final render; ``motion`` and pulses scale with the size.
    transition_seconds : mapping, optional
        Per-shot transition lengths, as for :class:`Timeline`.
    """

    def __init__(
        self,
        shots: ShotList,
        load_still: Callable[[int], np.ndarray],
        *,
        fps: float,
        width: int,
        height: int,
        style: FrameStyle,
        transition_seconds: dict[int, float] | None = None,
    ) -> None:
        if width < 16 or height < 16:
            raise ParameterError("size", (width, height), "at least 16x16 pixels")
        from engine.generation.stills import cover_crop

        self.fps = fps
        self.size = (width, height)
        self.timeline = Timeline(
            shots,
            fps=fps,
            crossfade_seconds=style.transition_seconds,
            transition_seconds=transition_seconds,
        )
        self._stills = StillCache(lambda i: cover_crop(load_still(i), width, height), capacity=8)
        self._renderer = FrameRenderer(shots, self.timeline, self._stills.get, style)

    @property
    def frame_count(self) -> int:
        return self.timeline.frame_count

    def frame(self, index: int) -> np.ndarray:
        """Frame ``index`` (clamped to the edit) as ``(height, width, 3)`` uint8 RGB."""
        return self._renderer.render(min(max(0, index), self.frame_count - 1))

    def frame_at(self, seconds: float) -> np.ndarray:
        """The frame shown at ``seconds`` (the nearest frame)."""
        return self.frame(round(seconds * self.fps))

    def frames(self, indices: Sequence[int]) -> list[np.ndarray]:
        return [self.frame(i) for i in indices]
