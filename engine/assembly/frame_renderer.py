"""Render one output frame: each shot's still with its camera move (plus the beat
pulse), the transition between two shots, then the colour grade.

:meth:`FrameRenderer.render` gives RGB.  :meth:`FrameRenderer.render_i420` gives the
same picture as the encoder's BT.709 4:2:0 planes, composed on planes of stills
converted once (see :mod:`engine.assembly.yuv`): about half the CPU per frame of an RGB
frame plus its conversion.  It serves edits without a grade or whip pans
(:attr:`FrameRenderer.supports_i420`); the others compose in RGB."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import numpy as np

from engine.assembly.motion import MotionSpec, motion_transform, render_motion
from engine.assembly.timeline import FrameRecipe, Timeline
from engine.assembly.transitions import TransitionSpec, blend_transition, blend_transition_i420
from engine.assembly.yuv import new_i420, rgb_to_i420, warp_i420
from engine.planning.shots import ShotList

__all__ = ["FrameRenderer", "FrameStyle"]

Grade = Callable[[np.ndarray, int], np.ndarray]


@dataclass(frozen=True, kw_only=True)
class FrameStyle:
    """How frames look beyond the plan itself.

    Attributes
    ----------
    motion_amount : float
        How far each shot's zoom or pan travels (0..0.5 of the frame).
    transition_seconds : float
        Length of the transition into a shot whose ``transition_in`` is not "cut".
    beat_pulse : float
        Zoom kick on every beat (0 = none); ``beat_times`` must then be given.
    beat_times : tuple of float
        Beat times in seconds, for the pulse.
    grade : callable, optional
        ``grade(frame, frame_index) -> frame``, applied last (a
        :class:`~engine.grading.grader.ColorGrader`'s ``grade``).
    motions : mapping of int to MotionSpec
        Per-shot camera moves (by shot index) replacing the plan's.
    transitions : mapping of int to TransitionSpec
        Per-shot transitions in (by shot index) replacing the plan's kind.
    shot_grades : mapping of int to callable
        Per-shot grades (by shot index) used instead of ``grade`` for frames whose
        main picture is that shot (the incoming one from the middle of a transition).
    image_at : callable, optional
        ``image_at(shot index, seconds into the shot) -> image index``: which image the
        ``still`` loader gives for a shot at a time (an image sequence shows a new
        image every so often).  By default a shot shows one image, its own index.
    """

    motion_amount: float = 0.08
    transition_seconds: float = 0.5
    beat_pulse: float = 0.0
    beat_times: tuple[float, ...] = ()
    grade: Grade | None = None
    motions: Mapping[int, MotionSpec] = field(default_factory=dict)
    transitions: Mapping[int, TransitionSpec] = field(default_factory=dict)
    shot_grades: Mapping[int, Grade] = field(default_factory=dict)
    image_at: Callable[[int, float], int] | None = None


class FrameRenderer:
    """Turns frame numbers into pictures for one shot list."""

    def __init__(
        self,
        shots: ShotList,
        timeline: Timeline,
        still: Callable[[int], np.ndarray],
        style: FrameStyle,
    ) -> None:
        self.shots = shots
        self.timeline = timeline
        self.still = still
        self.style = style
        self._beats = np.asarray(style.beat_times, dtype=np.float64)
        self._motion: dict[int, MotionSpec] = {}
        self._transitions: dict[int, TransitionSpec] = {}
        # I420 copies of the stills in use: (index, (width, height) of the RGB still).
        self._i420: OrderedDict[int, tuple[np.ndarray, tuple[int, int]]] = OrderedDict()

    @property
    def supports_i420(self) -> bool:
        """Whether :meth:`render_i420` can compose this edit on planes: no grade (grades
        work on RGB) and no whip pan (its blur runs along RGB rows)."""
        if self.style.grade is not None or self.style.shot_grades:
            return False
        return all(
            self._transition(shot.index).kind != "whip_pan"
            for shot in self.shots.shots[1:]
            if shot.transition_in != "cut" or shot.index in self.style.transitions
        )

    def _motion_spec(self, index: int) -> MotionSpec:
        if index in self.style.motions:
            return self.style.motions[index]
        if index not in self._motion:
            shot = self.shots.shots[index]
            self._motion[index] = MotionSpec(
                kind=shot.motion,
                amount=self.style.motion_amount,
                seed=shot.seed % (2**31),
                pulse=self.style.beat_pulse,
                pulse_decay=0.15,
                pulse_source="beats",
            )
        return self._motion[index]

    def _transition(self, index: int) -> TransitionSpec:
        if index in self.style.transitions:
            return self.style.transitions[index]
        if index not in self._transitions:
            kind = self.shots.shots[index].transition_in
            self._transitions[index] = TransitionSpec(
                kind=kind,
                duration_seconds=max(self.style.transition_seconds, 1e-3),
                direction="left" if index % 2 else "right",
            )
        return self._transitions[index]

    def _image(self, index: int, frame: int) -> int:
        """The image shot ``index`` shows at ``frame``."""
        if self.style.image_at is None:
            return index
        return self.style.image_at(index, frame / self.timeline.fps - self.shots.shots[index].start)

    def _layer(self, index: int, progress: float, frame: int) -> np.ndarray:
        still = self.still(self._image(index, frame))
        shot = self.shots.shots[index]
        # One path for every move (the plan's own and a timeline document's), so a
        # document converted back to specs renders the very same pixels.
        height, width = still.shape[:2]
        return render_motion(
            still,
            self._motion_spec(index),
            time=frame / self.timeline.fps,
            shot_start=shot.start,
            shot_end=shot.end,
            beat_times=self._beats,
            out_size=(width, height),
        )

    def _still_i420(self, index: int) -> tuple[np.ndarray, tuple[int, int]]:
        if index in self._i420:
            self._i420.move_to_end(index)
            return self._i420[index]
        still = self.still(index)
        height, width = still.shape[:2]
        if width % 2 or height % 2:  # 4:2:0 needs even sizes: repeat the last row/column
            still = np.pad(still, ((0, height % 2), (0, width % 2), (0, 0)), mode="edge")
        self._i420[index] = (rgb_to_i420(still), (width, height))
        while len(self._i420) > 3:
            self._i420.popitem(last=False)
        return self._i420[index]

    def _layer_i420(self, index: int, frame: int, size: tuple[int, int]) -> np.ndarray:
        planes, (width, height) = self._still_i420(self._image(index, frame))
        shot = self.shots.shots[index]
        matrix = motion_transform(
            self._motion_spec(index),
            time=frame / self.timeline.fps,
            shot_start=shot.start,
            shot_end=shot.end,
            still_size=(width, height),
            out_size=size,
            beat_times=self._beats,
        )
        padded = (width + width % 2, height + height % 2)
        if padded == size and np.allclose(
            matrix, [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]], rtol=0.0, atol=1e-9
        ):
            return planes
        out = new_i420(*size)
        return warp_i420(planes, matrix, source_size=padded, out=out, out_size=size)

    def render_i420(self, frame: int, size: tuple[int, int]) -> np.ndarray:
        """Frame ``frame`` at ``size`` (width, height; even) as an I420 frame.

        Only for edits where :attr:`supports_i420` holds.  The picture is the one
        :meth:`render` draws, converted to BT.709 4:2:0 (within a level or two of
        rounding: the move and the mix are computed on the planes).

        Raises
        ------
        ParameterError
            The edit needs RGB compositing, or ``size`` is odd.
        """
        from engine.errors import ParameterError

        if not self.supports_i420:
            raise ParameterError("render_i420", frame, "an edit without grades or whip pans")
        recipe: FrameRecipe = self.timeline.recipe(frame)
        layers = [self._layer_i420(index, frame, size) for index, _w, _p in recipe.layers]
        if len(layers) == 1:
            return layers[0]
        incoming = recipe.layers[1][0]
        return blend_transition_i420(
            layers[0], layers[1], recipe.transition_progress, self._transition(incoming), size
        )

    def render(self, frame: int) -> np.ndarray:
        recipe: FrameRecipe = self.timeline.recipe(frame)
        layers = [self._layer(index, prog, frame) for index, _w, prog in recipe.layers]
        if len(layers) == 1:
            image = layers[0]
        else:
            incoming = recipe.layers[1][0]
            image = blend_transition(
                layers[0], layers[1], recipe.transition_progress, self._transition(incoming)
            )
        main = recipe.layers[-1 if recipe.transition_progress >= 0.5 else 0][0]
        grade = self.style.shot_grades.get(main, self.style.grade)
        if grade is not None:
            image = grade(image, frame)
        return image
