"""Camera motion on a still: zooms, pans, Ken Burns moves, shake and beat pulse.

Two layers live here:

* :func:`motion_matrix` / :func:`apply_motion`: the simple per-shot moves the
  renderer has used since issue 2 (names in :data:`MOTIONS`, progress 0..1).
* :class:`MotionSpec` / :func:`render_motion`: the full effect.  A base move
  (:data:`MOTION_KINDS`, eased), a seeded smooth camera shake and an audio-reactive
  zoom kick ("beat pulse") are composed into **one** float affine matrix and
  applied with a single bilinear warp, so positions are never rounded to whole
  pixels and the picture is resampled once.  The zoom always covers the shake's
  reach, so no border is ever shown.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from numbers import Real
from typing import TYPE_CHECKING

import numpy as np

from engine.assembly.easing import check_easing, ease
from engine.errors import ParameterError

if TYPE_CHECKING:
    from engine.audio.types import SpectralFeatures

__all__ = [
    "MOTIONS",
    "MOTION_KINDS",
    "PULSE_SOURCES",
    "MotionSpec",
    "apply_motion",
    "motion_matrix",
    "motion_transform",
    "pulse_envelope",
    "render_motion",
    "shake_offset",
]

MOTIONS = ("zoom_in", "zoom_out", "pan_left", "pan_right", "static")


def motion_matrix(
    motion: str, progress: float, *, width: int, height: int, amount: float
) -> np.ndarray:
    """The 2x3 affine matrix that maps still pixels to frame pixels at ``progress`` (0..1).

    The scale never drops below 1 and a pan never travels past the margin the
    zoom creates, so no border is ever shown.
    """
    if motion not in MOTIONS:
        raise ParameterError("motion", motion, f"one of {', '.join(MOTIONS)}")
    p = min(1.0, max(0.0, progress))
    if motion == "zoom_in":
        scale, shift = 1.0 + amount * p, 0.0
    elif motion == "zoom_out":
        scale, shift = 1.0 + amount * (1.0 - p), 0.0
    elif motion == "static":
        scale, shift = 1.0, 0.0
    else:
        scale = 1.0 + amount
        margin = (scale - 1.0) * width / 2.0
        # pan_right: the camera travels right, so the picture slides left.
        shift = margin * (1.0 - 2.0 * p) if motion == "pan_right" else margin * (2.0 * p - 1.0)
    cx, cy = (width - 1) / 2.0, (height - 1) / 2.0
    return np.array(
        [[scale, 0.0, cx - scale * cx + shift], [0.0, scale, cy - scale * cy]], dtype=np.float64
    )


def apply_motion(still: np.ndarray, motion: str, progress: float, *, amount: float) -> np.ndarray:
    """Render one frame of ``motion`` over ``still`` (``(h, w, 3)`` uint8, frame-sized)."""
    import cv2

    height, width = still.shape[:2]
    if motion == "static" or amount == 0.0:
        return still
    matrix = motion_matrix(motion, progress, width=width, height=height, amount=amount)
    return cv2.warpAffine(
        still, matrix, (width, height), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT101
    )


# --------------------------------------------------------------------------------------
# The full motion effect: base move + shake + beat pulse in one warp.
# --------------------------------------------------------------------------------------

MOTION_KINDS: tuple[str, ...] = (
    "ken_burns",
    "zoom_in",
    "zoom_out",
    "pan_left",
    "pan_right",
    "pan_up",
    "pan_down",
    "static",
)
PULSE_SOURCES: tuple[str, ...] = ("beats", "rms", "onset", "low", "mid", "high", "centroid")

Rect = tuple[float, float, float, float]

# A beat lands on the frame nearest to it, which may show a time up to half a frame
# early (20 ms at 25 fps): the kick starts that much ahead so it is never a frame late.
_BEAT_LEAD = 0.02
# The shake noise is two octaves; this bounds |offset| / amplitude (Catmull-Rom
# overshoots knot values by at most 25 %), and sizes the zoom margin that hides borders.
_SHAKE_REACH = 1.25
_SHAKE_KNOTS = 4096
_TOLERANCE = 1e-9


@dataclass(frozen=True, kw_only=True)
class MotionSpec:
    """How the camera moves over one still.  Validated on construction.

    Parameters
    ----------
    kind : str
        The base move, one of :data:`MOTION_KINDS`.  ``pan_right`` means the camera
        travels right (the picture slides left); ``pan_up`` means it travels up.
    amount : float
        0..1.  Zoom moves change the scale by ``1 + amount``; pans zoom in by
        ``1 + amount`` and travel across the margin that creates; a seeded Ken Burns
        move zooms by ``1 + amount`` towards or away from a random point.
    easing : str
        Easing of the base move over the shot, one of
        :data:`~engine.assembly.easing.EASINGS`.
    start_rect, end_rect : tuple of 4 floats, optional
        ``kind="ken_burns"`` only, both or neither: the visible window at the start
        and end of the shot as ``(x, y, width, height)`` fractions of the full
        picture.  Fractions keep the frame's aspect ratio, so ``width == height``.
        Without them the move is drawn from ``seed``.
    seed : int
        Non-negative; picks the random Ken Burns move and the shake pattern.
    shake : float
        Camera-shake amplitude in pixels of a 1080-line frame (scaled with the
        output height), 0..200.  Smooth noise, not per-frame jitter; the offset
        can reach 1.25x this.
    shake_frequency : float
        How many shake swings per second, 0.05..30 Hz.
    pulse : float
        Zoom kick, 0..0.5: the picture scales by ``1 + pulse`` at a beat (or by
        ``1 + pulse * value`` at a peak of a spectral curve).
    pulse_decay : float
        Seconds for a kick to fall to 37 % (exponential time constant), 0.01..5.
    pulse_source : str
        ``"beats"`` (needs beat times) or a curve of
        :class:`~engine.audio.types.SpectralFeatures` (needs the curves).

    Raises
    ------
    ParameterError
        If any value is out of range.

    Examples
    --------
    >>> spec = MotionSpec(kind="zoom_in", amount=0.08, easing="ease_out", pulse=0.03)
    >>> spec.pulse_source
    'beats'
    """

    kind: str = "ken_burns"
    amount: float = 0.1
    easing: str = "linear"
    start_rect: Rect | None = None
    end_rect: Rect | None = None
    seed: int = 0
    shake: float = 0.0
    shake_frequency: float = 2.0
    pulse: float = 0.0
    pulse_decay: float = 0.25
    pulse_source: str = "beats"

    def __post_init__(self) -> None:
        if self.kind not in MOTION_KINDS:
            raise ParameterError("kind", self.kind, f"one of {', '.join(MOTION_KINDS)}")
        _check_range("amount", self.amount, 0.0, 1.0)
        check_easing(self.easing)
        if (self.start_rect is None) != (self.end_rect is None):
            raise ParameterError(
                "start_rect" if self.start_rect is None else "end_rect",
                None,
                "both start_rect and end_rect, or neither",
            )
        if self.start_rect is not None and self.kind != "ken_burns":
            raise ParameterError("start_rect", self.start_rect, "None unless kind='ken_burns'")
        for name, rect in (("start_rect", self.start_rect), ("end_rect", self.end_rect)):
            if rect is not None:
                _check_rect(name, rect)
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise ParameterError("seed", self.seed, "a non-negative integer")
        _check_range("shake", self.shake, 0.0, 200.0)
        _check_range("shake_frequency", self.shake_frequency, 0.05, 30.0)
        _check_range("pulse", self.pulse, 0.0, 0.5)
        _check_range("pulse_decay", self.pulse_decay, 0.01, 5.0)
        if self.pulse_source not in PULSE_SOURCES:
            raise ParameterError(
                "pulse_source", self.pulse_source, f"one of {', '.join(PULSE_SOURCES)}"
            )

    def rects(self) -> tuple[Rect, Rect]:
        """The Ken Burns start and end windows: the given ones, or the seeded move's."""
        if self.start_rect is not None and self.end_rect is not None:
            return self.start_rect, self.end_rect
        return _random_rects(self.seed, self.amount)


def _check_range(name: str, value: float, lo: float, hi: float) -> None:
    if not isinstance(value, Real) or not (lo <= value <= hi):
        raise ParameterError(name, value, f"a number in {lo:g}..{hi:g}")


def _check_rect(name: str, rect: Rect) -> None:
    try:
        x, y, w, h = (float(v) for v in rect)
    except (TypeError, ValueError) as err:
        raise ParameterError(name, rect, "(x, y, width, height) fractions of the picture") from err
    if not (0.0 < w <= 1.0 and 0.0 < h <= 1.0):
        raise ParameterError(name, rect, "width and height in (0, 1]")
    if x < -_TOLERANCE or y < -_TOLERANCE or x + w > 1 + 1e-6 or y + h > 1 + 1e-6:
        raise ParameterError(name, rect, "a window inside the picture (x + width <= 1, ...)")
    if abs(w - h) > 1e-3:
        raise ParameterError(
            name, rect, "width == height (fractions of the picture keep the frame's aspect)"
        )


@lru_cache(maxsize=256)
def _random_rects(seed: int, amount: float) -> tuple[Rect, Rect]:
    """A Ken Burns move from ``seed``: between the full picture and a tighter window
    (zoom ``1 + amount``) pushed towards a random point, in or out."""
    rng = np.random.default_rng([seed, 0x4B42])
    zoom_in = bool(rng.random() < 0.5)
    angle = float(rng.uniform(0.0, 2.0 * math.pi))
    size = 1.0 / (1.0 + amount)
    margin = (1.0 - size) / 2.0
    cx = 0.5 + 0.8 * margin * math.cos(angle)
    cy = 0.5 + 0.8 * margin * math.sin(angle)
    tight = (cx - size / 2.0, cy - size / 2.0, size, size)
    full = (0.0, 0.0, 1.0, 1.0)
    return (full, tight) if zoom_in else (tight, full)


def _base_window(spec: MotionSpec, progress: float) -> tuple[float, float, float]:
    """Centre (x, y) and size of the visible window, as fractions of the full picture."""
    p = ease(spec.easing, progress)
    a = spec.amount
    if spec.kind == "static":
        return 0.5, 0.5, 1.0
    if spec.kind == "zoom_in":
        return 0.5, 0.5, 1.0 / (1.0 + a * p)
    if spec.kind == "zoom_out":
        return 0.5, 0.5, 1.0 / (1.0 + a * (1.0 - p))
    if spec.kind == "ken_burns":
        (x0, y0, w0, _h0), (x1, y1, w1, _h1) = spec.rects()
        # Size is interpolated geometrically (a steady zoom speed); the window then
        # stays inside the picture because it is never larger than the linear blend.
        size = w0 * (w1 / w0) ** p
        cx = (x0 + w0 / 2.0) * (1.0 - p) + (x1 + w1 / 2.0) * p
        cy = (y0 + w0 / 2.0) * (1.0 - p) + (y1 + w1 / 2.0) * p
        return cx, cy, size
    size = 1.0 / (1.0 + a)
    margin = (1.0 - size) / 2.0
    travel = 0.5 - margin + 2.0 * margin * p  # from the low edge to the high edge
    if spec.kind == "pan_right":
        return travel, 0.5, size
    if spec.kind == "pan_left":
        return 1.0 - travel, 0.5, size
    if spec.kind == "pan_down":
        return 0.5, travel, size
    return 0.5, 1.0 - travel, size  # pan_up


@lru_cache(maxsize=64)
def _shake_table(seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng([seed, 0x5348])
    knots = rng.uniform(-1.0, 1.0, size=(2, 2, _SHAKE_KNOTS))  # octave, axis, knot
    phases = rng.uniform(0.0, _SHAKE_KNOTS / 2.0, size=(2, 2))
    return knots, phases


def _catmull_rom(knots: np.ndarray, u: float) -> float:
    i = math.floor(u)
    f = u - i
    p0, p1, p2, p3 = (float(knots[(i + k) % _SHAKE_KNOTS]) for k in (-1, 0, 1, 2))
    return 0.5 * (
        2.0 * p1
        + (p2 - p0) * f
        + (2.0 * p0 - 5.0 * p1 + 4.0 * p2 - p3) * f * f
        + (3.0 * p1 - p0 - 3.0 * p2 + p3) * f * f * f
    )


def shake_offset(spec: MotionSpec, time: float, *, height: int) -> tuple[float, float]:
    """Camera-shake offset ``(dx, dy)`` in output pixels at ``time`` seconds.

    Smooth seeded noise: Catmull-Rom splines through random knots at
    ``shake_frequency`` and at 2.17x that (half as strong), so the velocity is
    continuous and bounded.  Equal specs give equal offsets.  ``|dx|, |dy|`` never
    exceed ``1.25 * shake * height / 1080``.
    """
    if spec.shake == 0.0:
        return 0.0, 0.0
    knots, phases = _shake_table(spec.seed)
    scale = spec.shake * height / 1080.0 / 1.5
    offset = []
    for axis in range(2):
        value = _catmull_rom(knots[0, axis], time * spec.shake_frequency + phases[0, axis])
        value += 0.5 * _catmull_rom(
            knots[1, axis], time * spec.shake_frequency * 2.17 + phases[1, axis]
        )
        offset.append(scale * value)
    return offset[0], offset[1]


def pulse_envelope(
    spec: MotionSpec,
    time: float,
    *,
    beat_times: Sequence[float] | np.ndarray | None = None,
    curves: SpectralFeatures | None = None,
) -> float:
    """The kick's strength at ``time``, 0..1: 1 on a beat, decaying exponentially.

    With ``pulse_source="beats"`` the kick restarts at every beat (from up to 20 ms
    before it, so it lands on the frame nearest the beat).  With a curve, it follows
    the curve's peaks and decays from each at the same rate (a peak hold), so a
    spike in ``onset`` kicks like a beat and a loud stretch of ``rms`` holds the zoom.

    Raises
    ------
    ParameterError
        If the spec pulses but the beat times or curves it needs are missing.
    """
    if spec.pulse == 0.0:
        return 0.0
    if spec.pulse_source == "beats":
        if beat_times is None:
            raise ParameterError("beat_times", None, "beat times when pulse_source='beats'")
        beats = np.asarray(beat_times, dtype=np.float64)
        index = int(np.searchsorted(beats, time + _BEAT_LEAD, side="right")) - 1
        if index < 0:
            return 0.0
        return math.exp(-max(0.0, time - float(beats[index])) / spec.pulse_decay)
    if curves is None:
        raise ParameterError(
            "curves", None, f"SpectralFeatures when pulse_source={spec.pulse_source!r}"
        )
    values: np.ndarray = getattr(curves, spec.pulse_source)
    if values.size == 0:
        return 0.0
    now = int(np.clip(round(time * curves.fps), 0, values.size - 1))
    first = max(0, now - math.ceil(5.0 * spec.pulse_decay * curves.fps))
    frames = np.arange(first, now + 1)
    ages = np.maximum(0.0, time - frames / curves.fps)
    held = values[first : now + 1] * np.exp(-ages / spec.pulse_decay)
    return float(np.clip(held.max(), 0.0, 1.0))


def motion_transform(
    spec: MotionSpec,
    *,
    time: float,
    shot_start: float,
    shot_end: float,
    still_size: tuple[int, int],
    out_size: tuple[int, int],
    beat_times: Sequence[float] | np.ndarray | None = None,
    curves: SpectralFeatures | None = None,
) -> np.ndarray:
    """The 2x3 float affine matrix mapping still pixels to output pixels at ``time``.

    Parameters are those of :func:`render_motion`; ``still_size`` and ``out_size``
    are ``(width, height)``.  The still is first scaled to cover the output
    (centre crop if the aspect ratios differ), then the window of the base move is
    zoomed by the shake margin and the pulse, then shifted by the shake.
    """
    still_w, still_h = still_size
    out_w, out_h = out_size
    if min(still_w, still_h, out_w, out_h) < 1:
        raise ParameterError("size", (still_size, out_size), "positive widths and heights")
    if not shot_end > shot_start:
        raise ParameterError("shot_end", shot_end, f"a time after shot_start={shot_start}")
    progress = min(1.0, max(0.0, (time - shot_start) / (shot_end - shot_start)))
    cx, cy, size = _base_window(spec, progress)

    cover = max(out_w / still_w, out_h / still_h)
    view_w, view_h = out_w / cover, out_h / cover  # the full picture, in still pixels
    # Window centre in still "extent" coordinates (pixel i spans [i, i + 1]).
    centre_x = (still_w - view_w) / 2.0 + cx * view_w
    centre_y = (still_h - view_h) / 2.0 + cy * view_h

    dx, dy = shake_offset(spec, time, height=out_h)
    reach = _SHAKE_REACH * spec.shake * out_h / 1080.0
    margin_zoom = 1.0 + 2.0 * reach / min(out_w, out_h)
    kick = 1.0 + spec.pulse * pulse_envelope(spec, time, beat_times=beat_times, curves=curves)
    k = cover / size * margin_zoom * kick

    # X_ext = k (x_ext - centre) + out/2 + d, written for pixel-index coordinates.
    tx = k * (0.5 - centre_x) + out_w / 2.0 - 0.5 + dx
    ty = k * (0.5 - centre_y) + out_h / 2.0 - 0.5 + dy
    return np.array([[k, 0.0, tx], [0.0, k, ty]], dtype=np.float64)


def render_motion(
    still: np.ndarray,
    spec: MotionSpec,
    *,
    time: float,
    shot_start: float,
    shot_end: float,
    beat_times: Sequence[float] | np.ndarray | None = None,
    curves: SpectralFeatures | None = None,
    out_size: tuple[int, int],
) -> np.ndarray:
    """Render the frame at ``time`` of a shot showing ``still`` with motion ``spec``.

    Parameters
    ----------
    still : ndarray
        ``(h, w, 3)`` uint8 RGB.  Any size: a still larger than the output (say
        1.1x, same aspect) gives sharper zooms; a smaller one is scaled up; another
        aspect ratio is centre-cropped.  Beyond about 1.5x the output, downscale it
        once beforehand (bilinear sampling aliases past that).
    spec : MotionSpec
        The move, shake and pulse.
    time : float
        Seconds from the start of the song (shake and pulse use song time, so they
        stay continuous across a crossfade).
    shot_start, shot_end : float
        The shot's span in seconds; the base move runs from one to the other.
    beat_times : sequence of float, optional
        Sorted beat times in seconds; needed when ``spec`` pulses on beats.
    curves : SpectralFeatures, optional
        Needed when ``spec`` pulses on a spectral curve.
    out_size : (int, int)
        Output ``(width, height)``.

    Returns
    -------
    ndarray
        ``(height, width, 3)`` uint8.  May be ``still`` itself when nothing moves.

    Raises
    ------
    ParameterError
        For a bad size, an empty shot, or missing beats/curves the pulse needs.

    Examples
    --------
    >>> spec = MotionSpec(kind="pan_right", amount=0.1, shake=6.0, pulse=0.04)
    >>> frame = render_motion(  # doctest: +SKIP
    ...     still, spec, time=12.3, shot_start=10.0, shot_end=14.0,
    ...     beat_times=analysis.beat_times, out_size=(1920, 1080))
    """
    import cv2

    if still.ndim != 3 or still.shape[2] != 3:
        raise ParameterError("still", still.shape, "an (height, width, 3) image")
    out_w, out_h = (int(v) for v in out_size)
    matrix = motion_transform(
        spec,
        time=time,
        shot_start=shot_start,
        shot_end=shot_end,
        still_size=(still.shape[1], still.shape[0]),
        out_size=(out_w, out_h),
        beat_times=beat_times,
        curves=curves,
    )
    if still.shape[:2] == (out_h, out_w) and np.allclose(
        matrix, [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]], rtol=0.0, atol=1e-9
    ):
        return still
    # BORDER_REPLICATE only ever fills the outermost half pixel that bilinear
    # sampling reaches at the picture's edge; the window itself stays inside.
    return cv2.warpAffine(
        still, matrix, (out_w, out_h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE
    )
