"""Transitions between two shots, as pure frame functions.

:func:`blend_transition` takes the outgoing and incoming frames (each already
moving, from :func:`~engine.assembly.motion.render_motion`) and the progress
through the transition window, and returns the frame to show.  Progress runs
0..1 across the window and is 0.5 at the cut point, so a transition centred on a
downbeat changes shot on the beat (see ``docs/decisions/0002-cut-timing.md``).

==================  ==================================================================
kind                what the viewer sees
==================  ==================================================================
``cut``             the outgoing frame until 0.5, then the incoming one
``crossfade``       eased mix of the two
``dip_to_black``    the outgoing shot fades to black by 0.5, the incoming fades in
``dip_to_white``    the same through white (a flash)
``whip_pan``        the camera whips across: both pictures rush past along the
                    direction with a directional motion blur that follows the speed,
                    strongest at 0.5
==================  ==================================================================

Every transition is one or two OpenCV passes over the frame: about 1-15 ms at
1920x1080 on a 2-core machine (``docs/transitions-and-motion.md``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from numbers import Real

import numpy as np

from engine.assembly.easing import check_easing, ease, ease_speed
from engine.errors import ParameterError

__all__ = [
    "TRANSITIONS",
    "WHIP_DIRECTIONS",
    "TransitionSpec",
    "blend_transition",
    "blend_transition_i420",
]

TRANSITIONS: tuple[str, ...] = ("cut", "crossfade", "whip_pan", "dip_to_black", "dip_to_white")
WHIP_DIRECTIONS: tuple[str, ...] = ("left", "right", "up", "down")

# Up to this many kernel taps the whip blur is an exact fractional box (sub-pixel
# position and length) through cv2.filter2D; longer blurs use cv2.blur, whose cost
# does not grow with the length, and there a rounded position cannot be seen.
_EXACT_TAPS = 16


@dataclass(frozen=True, kw_only=True)
class TransitionSpec:
    """One transition into a shot.  Validated on construction.

    Parameters
    ----------
    kind : str
        One of :data:`TRANSITIONS`.
    duration_beats : float, optional
        Length of the whole window in beats, in (0, 64].
    duration_seconds : float, optional
        Length of the whole window in seconds, in (0, 30].  Give exactly one of the
        two durations (a ``cut`` needs neither: it takes no time).
    direction : str
        ``whip_pan`` only: where the camera whips, one of :data:`WHIP_DIRECTIONS`.
        The pictures rush the other way: with ``"left"`` the incoming shot enters
        from the left edge.
    easing : str
        Curve of the mix (crossfade), of each half of a dip, or of the whip's
        position (one of :data:`~engine.assembly.easing.EASINGS`).  The default
        ``"sine"`` starts and ends at rest; ``"ease_in_out"`` gives a snappier whip.
    blur : float
        ``whip_pan`` only: motion-blur length at top speed, as a fraction of the
        frame's extent along the whip, 0..1.

    Raises
    ------
    ParameterError
        If any value is out of range, or the durations are not exactly one.

    Examples
    --------
    >>> TransitionSpec(kind="whip_pan", duration_beats=1, direction="right").seconds(0.5)
    0.5
    >>> TransitionSpec(kind="crossfade", duration_seconds=0.8).seconds(0.5)
    0.8
    """

    kind: str = "crossfade"
    duration_beats: float | None = None
    duration_seconds: float | None = None
    direction: str = "left"
    easing: str = "sine"
    blur: float = 0.25

    def __post_init__(self) -> None:
        if self.kind not in TRANSITIONS:
            raise ParameterError("kind", self.kind, f"one of {', '.join(TRANSITIONS)}")
        given = [d for d in (self.duration_beats, self.duration_seconds) if d is not None]
        if len(given) > 1 or (not given and self.kind != "cut"):
            raise ParameterError(
                "duration_beats",
                (self.duration_beats, self.duration_seconds),
                "exactly one of duration_beats and duration_seconds",
            )
        if self.duration_beats is not None:
            _check_positive("duration_beats", self.duration_beats, 64.0)
        if self.duration_seconds is not None:
            _check_positive("duration_seconds", self.duration_seconds, 30.0)
        if self.direction not in WHIP_DIRECTIONS:
            raise ParameterError(
                "direction", self.direction, f"one of {', '.join(WHIP_DIRECTIONS)}"
            )
        check_easing(self.easing)
        if not isinstance(self.blur, Real) or not (0.0 <= self.blur <= 1.0):
            raise ParameterError("blur", self.blur, "a number in 0..1")

    def seconds(self, beat_period: float) -> float:
        """Length of the window in seconds, given the song's ``beat_period`` (s/beat).

        A ``cut`` always takes 0 seconds.

        Raises
        ------
        ParameterError
            If ``beat_period`` is not positive.
        """
        if not (isinstance(beat_period, Real) and beat_period > 0.0):
            raise ParameterError("beat_period", beat_period, "a positive number of seconds")
        if self.kind == "cut":
            return 0.0
        if self.duration_seconds is not None:
            return float(self.duration_seconds)
        assert self.duration_beats is not None  # validated in __post_init__
        return float(self.duration_beats) * float(beat_period)


def _check_positive(name: str, value: float, hi: float) -> None:
    if not isinstance(value, Real) or not (0.0 < value <= hi):
        raise ParameterError(name, value, f"a number in (0, {hi:g}]")


def blend_transition(
    outgoing: np.ndarray, incoming: np.ndarray, progress: float, spec: TransitionSpec
) -> np.ndarray:
    """The frame at ``progress`` (0..1, clamped) through transition ``spec``.

    Parameters
    ----------
    outgoing, incoming : ndarray
        Frames of the same shape, ``(h, w, 3)`` uint8 RGB.
    progress : float
        0 shows ``outgoing``, 1 shows ``incoming``; 0.5 is the cut point.
    spec : TransitionSpec
        The transition.

    Returns
    -------
    ndarray
        ``(h, w, 3)`` uint8.  At the ends (and either side of a cut) it is one of
        the inputs itself, not a copy.

    Raises
    ------
    ParameterError
        If the frames are not uint8 RGB images of the same shape.
    """
    import cv2

    if outgoing.shape != incoming.shape or outgoing.ndim != 3 or outgoing.shape[2] != 3:
        raise ParameterError(
            "incoming", incoming.shape, f"an (h, w, 3) image shaped like outgoing {outgoing.shape}"
        )
    if outgoing.dtype != np.uint8 or incoming.dtype != np.uint8:
        raise ParameterError("outgoing", (outgoing.dtype, incoming.dtype), "uint8 images")
    p = min(1.0, max(0.0, float(progress)))
    if spec.kind == "cut":
        return outgoing if p < 0.5 else incoming
    if p <= 0.0:
        return outgoing
    if p >= 1.0:
        return incoming
    if spec.kind == "crossfade":
        weight = ease(spec.easing, p)
        return cv2.addWeighted(outgoing, 1.0 - weight, incoming, weight, 0.0)
    if spec.kind in ("dip_to_black", "dip_to_white"):
        colour = 0.0 if spec.kind == "dip_to_black" else 255.0
        if p < 0.5:
            image, amount = outgoing, ease(spec.easing, 2.0 * p)
        else:
            image, amount = incoming, 1.0 - ease(spec.easing, 2.0 * p - 1.0)
        # amount of colour mixed in; addWeighted's scalar term saves a colour image.
        return cv2.addWeighted(image, 1.0 - amount, image, 0.0, colour * amount)
    return _whip_pan(outgoing, incoming, p, spec)


def blend_transition_i420(
    outgoing: np.ndarray,
    incoming: np.ndarray,
    progress: float,
    spec: TransitionSpec,
    size: tuple[int, int],
) -> np.ndarray:
    """:func:`blend_transition` on I420 frames (:mod:`engine.assembly.yuv`) of ``size``.

    Cuts, crossfades and dips give the picture the RGB version gives, converted (a mix
    is linear, so mixing planes equals converting the mix, up to rounding; a dip mixes
    towards the black or white of limited range: Y' 16 or 235, chroma 128).  Whip pans
    blur along RGB rows and are not offered here.

    Raises
    ------
    ParameterError
        For a whip pan, or frames that are not I420 frames of ``size``.
    """
    import cv2

    from engine.assembly.yuv import BLACK, WHITE, i420_planes, new_i420

    width, height = size
    shape = (height * 3 // 2, width)
    if outgoing.shape != shape or incoming.shape != shape:
        raise ParameterError("incoming", incoming.shape, f"I420 frames shaped {shape}")
    p = min(1.0, max(0.0, float(progress)))
    if spec.kind == "cut":
        return outgoing if p < 0.5 else incoming
    if p <= 0.0:
        return outgoing
    if p >= 1.0:
        return incoming
    if spec.kind == "crossfade":
        weight = ease(spec.easing, p)
        return cv2.addWeighted(outgoing, 1.0 - weight, incoming, weight, 0.0)
    if spec.kind in ("dip_to_black", "dip_to_white"):
        colour = BLACK if spec.kind == "dip_to_black" else WHITE
        if p < 0.5:
            image, amount = outgoing, ease(spec.easing, 2.0 * p)
        else:
            image, amount = incoming, 1.0 - ease(spec.easing, 2.0 * p - 1.0)
        out = new_i420(width, height)
        for plane, target, level in zip(
            i420_planes(image, width, height), i420_planes(out, width, height), colour, strict=True
        ):
            cv2.addWeighted(plane, 1.0 - amount, plane, 0.0, level * amount, dst=target)
        return out
    raise ParameterError("kind", spec.kind, "cut, crossfade or a dip on I420 frames")


def _whip_pan(
    outgoing: np.ndarray, incoming: np.ndarray, p: float, spec: TransitionSpec
) -> np.ndarray:
    """Both pictures side by side on a strip that slides past the frame, blurred.

    The strip is ``[first, second]`` along the axis and the frame shows strip pixels
    ``offset .. offset + extent``; the blur is a box along the axis whose length
    follows the eased speed.
    """
    import cv2

    axis = 1 if spec.direction in ("left", "right") else 0
    extent = outgoing.shape[axis]
    travel = ease(spec.easing, p) * extent
    if spec.direction in ("left", "up"):
        # The camera turns left (up): the pictures move right (down), the incoming
        # shot enters from the left (top) edge.
        first, second, offset = incoming, outgoing, extent - travel
    else:
        first, second, offset = outgoing, incoming, travel
    length = max(1.0, spec.blur * extent * ease_speed(spec.easing, p))

    base = math.floor(offset)
    frac = offset - base
    lo, hi = frac - length / 2.0, frac + length / 2.0
    kmin, kmax = math.floor(lo + 0.5), math.ceil(hi - 0.5)
    if kmax - kmin + 1 <= _EXACT_TAPS:
        # Exact box of fractional length centred at a fractional position: tap k
        # weighs the overlap of [lo, hi] with pixel k's cell [k - 0.5, k + 0.5]
        # (length 1 is plain linear interpolation, so slow moves stay sub-pixel).
        taps = np.arange(kmin, kmax + 1, dtype=np.float64)
        weights = np.clip(np.minimum(hi, taps + 0.5) - np.maximum(lo, taps - 0.5), 0.0, None)
        kernel = (weights / weights.sum()).astype(np.float32)
        region = _strip(first, second, base + kmin, base + kmax + extent, axis)
        kernel = kernel.reshape((1, -1) if axis == 1 else (-1, 1))
        blurred = cv2.filter2D(region, -1, kernel, anchor=(0, 0), borderType=cv2.BORDER_REPLICATE)
        start = 0
    else:
        size = round(length)
        before = size // 2
        shift = round(offset)
        region = _strip(first, second, shift - before, shift + extent + size - 1 - before, axis)
        ksize = (size, 1) if axis == 1 else (1, size)
        blurred = cv2.blur(region, ksize, borderType=cv2.BORDER_REPLICATE)
        start = before
    if axis == 1:
        return np.ascontiguousarray(blurred[:, start : start + extent])
    return blurred[start : start + extent]


def _strip(first: np.ndarray, second: np.ndarray, start: int, stop: int, axis: int) -> np.ndarray:
    """Pixels ``start:stop`` along ``axis`` of ``first`` and ``second`` laid end to end,
    the strip's end pixels repeated beyond it (only a blur's reach ever goes there)."""
    extent = first.shape[axis]
    pieces: list[np.ndarray] = []
    if start < 0:
        pieces.append(np.repeat(np.take(first, [0], axis=axis), -start, axis=axis))
    for image, origin in ((first, 0), (second, extent)):
        a, b = max(start, origin) - origin, min(stop, origin + extent) - origin
        if b > a:
            pieces.append(image[:, a:b] if axis == 1 else image[a:b])
    if stop > 2 * extent:
        pieces.append(np.repeat(np.take(second, [extent - 1], axis=axis), stop - 2 * extent, axis))
    return np.concatenate(pieces, axis=axis)
