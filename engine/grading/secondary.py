"""Stage 2, secondary correction: an HSL qualifier with soft edges, and a hue-vs-saturation
curve.

The **qualifier** builds a matte (0..1 per pixel) from hue, saturation and lightness
(HSL, as OpenCV's ``RGB2HLS`` computes them on the stage's display values).  A pixel
is fully selected when its hue is within ``hue_width / 2`` degrees of ``hue_center``
and its saturation and lightness are inside ``[sat_low, sat_high]`` and
``[lum_low, lum_high]``; the matte then falls smoothly (a smoothstep) to 0 over
``hue_softness`` degrees and ``range_softness`` outside those ranges.  Inside the matte
the adjustments apply: ``hue_shift`` (degrees, a rotation about the grey axis),
``saturation_gain`` (chroma around Rec.709 luma) and ``lightness_offset``.

The **hue-vs-saturation curve** scales chroma by a gain that depends on the pixel's hue,
interpolated linearly and periodically between ``(hue, gain)`` points, over the whole
frame (after the qualifier).  Grey pixels have no chroma and are never changed by it.

=================  ==========  ========  ============================================
name               range       default   meaning
=================  ==========  ========  ============================================
hue_center         0..360      0         centre of the selected hues, degrees
hue_width          0..360      360       fully selected band (360 = every hue)
hue_softness       0..180      20        feather on each side of the band, degrees
sat_low, sat_high  0..1        0, 1      selected HSL saturation range
lum_low, lum_high  0..1        0, 1      selected HSL lightness range
range_softness     0..0.5      0.1       feather outside the two ranges above
hue_shift          -180..180   0         rotate the selected hues, degrees
saturation_gain    0..4        1         chroma gain on the selection
lightness_offset   -0.5..0.5   0         added to the selection
hue_vs_sat         ≤ 16 pairs  ()        ``(hue 0..360, gain 0..4)`` points
=================  ==========  ========  ============================================

Example: make skies (blue, hue about 215) a little deeper and leave the rest alone::

    SecondaryCorrection(hue_center=215, hue_width=40, hue_softness=25,
                        sat_low=0.15, saturation_gain=1.3, lightness_offset=-0.05)
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from typing import Any

import numpy as np

from engine.errors import ParameterError
from engine.grading.params import reject_unknown_keys
from engine.grading.primary import LUMA_709

__all__ = ["SecondaryCorrection", "apply_secondary", "hsl", "hue_rotation_matrix", "qualify"]

_RANGES: dict[str, tuple[float, float]] = {
    "hue_center": (0.0, 360.0),
    "hue_width": (0.0, 360.0),
    "hue_softness": (0.0, 180.0),
    "sat_low": (0.0, 1.0),
    "sat_high": (0.0, 1.0),
    "lum_low": (0.0, 1.0),
    "lum_high": (0.0, 1.0),
    "range_softness": (0.0, 0.5),
    "hue_shift": (-180.0, 180.0),
    "saturation_gain": (0.0, 4.0),
    "lightness_offset": (-0.5, 0.5),
}
_MAX_CURVE_POINTS = 16


def _smoothstep(edge0: float, edge1: float, x: np.ndarray) -> np.ndarray:
    if edge1 <= edge0:
        return (x >= edge0).astype(np.float32)
    t = np.clip((x - edge0) / (edge1 - edge0), 0.0, 1.0)
    return (t * t * (3.0 - 2.0 * t)).astype(np.float32)


def hsl(rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Hue (degrees, 0..360), HSL saturation and lightness (0..1) of ``(n, 3)`` float RGB."""
    import cv2

    flat = np.ascontiguousarray(np.clip(rgb, 0.0, 1.0), dtype=np.float32).reshape(-1, 1, 3)
    hls = cv2.cvtColor(flat, cv2.COLOR_RGB2HLS).reshape(-1, 3)
    return hls[:, 0], hls[:, 2], hls[:, 1]


def hue_rotation_matrix(degrees: float) -> np.ndarray:
    """Rotation about the grey axis by ``degrees`` (red toward yellow for positive angles).

    Returned in the ``out = M @ rgb`` form; it keeps the channel mean, so greys stay put.
    """
    theta = math.radians(degrees)
    c, s = math.cos(theta), math.sin(theta)
    k = 1.0 / 3.0
    q = math.sqrt(k)
    # Rodrigues' formula about the unit axis (1, 1, 1) / sqrt(3).
    return np.array(
        [
            [c + (1 - c) * k, (1 - c) * k - q * s, (1 - c) * k + q * s],
            [(1 - c) * k + q * s, c + (1 - c) * k, (1 - c) * k - q * s],
            [(1 - c) * k - q * s, (1 - c) * k + q * s, c + (1 - c) * k],
        ],
        dtype=np.float32,
    )


def _scale_chroma(rgb: np.ndarray, gain: np.ndarray | float) -> np.ndarray:
    luma = (rgb @ LUMA_709)[:, None]
    gain_col = gain[:, None] if isinstance(gain, np.ndarray) else gain
    return luma + (rgb - luma) * gain_col


@dataclass(frozen=True, kw_only=True)
class SecondaryCorrection:
    """Stage 2 settings; see the module docstring for ranges.

    Raises
    ------
    ParameterError
        A value is out of range, a low bound exceeds its high bound, or a curve point
        is malformed.
    """

    hue_center: float = 0.0
    hue_width: float = 360.0
    hue_softness: float = 20.0
    sat_low: float = 0.0
    sat_high: float = 1.0
    lum_low: float = 0.0
    lum_high: float = 1.0
    range_softness: float = 0.1
    hue_shift: float = 0.0
    saturation_gain: float = 1.0
    lightness_offset: float = 0.0
    hue_vs_sat: tuple[tuple[float, float], ...] = ()

    def __post_init__(self) -> None:
        for name, (lo, hi) in _RANGES.items():
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ParameterError(name, value, f"a number in {lo}..{hi}")
            if not (lo <= value <= hi):
                raise ParameterError(name, value, f"{lo}..{hi}")
            object.__setattr__(self, name, float(value))
        if self.sat_low > self.sat_high:
            raise ParameterError("sat_low", self.sat_low, f"<= sat_high ({self.sat_high})")
        if self.lum_low > self.lum_high:
            raise ParameterError("lum_low", self.lum_low, f"<= lum_high ({self.lum_high})")
        object.__setattr__(self, "hue_vs_sat", _curve(self.hue_vs_sat))

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]) -> SecondaryCorrection:
        """Build from a dict, rejecting unknown keys with :class:`ParameterError`."""
        reject_unknown_keys(cls, values, "secondary key")
        return cls(**dict(values))

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        out: dict[str, Any] = {f.name: getattr(self, f.name) for f in fields(self)}
        out["hue_vs_sat"] = [list(p) for p in self.hue_vs_sat]
        return out

    @property
    def qualifier_active(self) -> bool:
        """True when the qualified adjustments change anything."""
        return self.hue_shift != 0.0 or self.saturation_gain != 1.0 or self.lightness_offset != 0

    @property
    def is_identity(self) -> bool:
        """True when the stage changes nothing."""
        return not self.qualifier_active and all(g == 1.0 for _h, g in self.hue_vs_sat)


def _curve(points: Any) -> tuple[tuple[float, float], ...]:
    allowed = f"up to {_MAX_CURVE_POINTS} (hue 0..360, gain 0..4) pairs with distinct hues"
    if isinstance(points, str) or not isinstance(points, Sequence):
        raise ParameterError("hue_vs_sat", points, allowed)
    if len(points) > _MAX_CURVE_POINTS:
        raise ParameterError("hue_vs_sat", points, allowed)
    out: list[tuple[float, float]] = []
    for point in points:
        if isinstance(point, str) or not isinstance(point, Sequence) or len(point) != 2:
            raise ParameterError("hue_vs_sat", point, allowed)
        hue, gain = point
        if not all(isinstance(v, int | float) and not isinstance(v, bool) for v in (hue, gain)):
            raise ParameterError("hue_vs_sat", point, allowed)
        if not (0.0 <= hue <= 360.0 and 0.0 <= gain <= 4.0):
            raise ParameterError("hue_vs_sat", point, allowed)
        out.append((float(hue) % 360.0, float(gain)))
    out.sort()
    if len({h for h, _g in out}) != len(out):
        raise ParameterError("hue_vs_sat", points, allowed)
    return tuple(out)


def qualify(rgb: np.ndarray, correction: SecondaryCorrection) -> np.ndarray:
    """The qualifier's matte (0..1) for ``(n, 3)`` float RGB."""
    hue, sat, lum = hsl(rgb)
    matte = np.ones(hue.shape, dtype=np.float32)
    if correction.hue_width < 360.0:
        distance = np.abs((hue - correction.hue_center + 180.0) % 360.0 - 180.0)
        inner = correction.hue_width / 2.0
        matte *= 1.0 - _smoothstep(inner, inner + correction.hue_softness, distance)
    soft = correction.range_softness
    for value, lo, hi in (
        (sat, correction.sat_low, correction.sat_high),
        (lum, correction.lum_low, correction.lum_high),
    ):
        if lo > 0.0:
            matte *= _smoothstep(lo - soft, lo, value)
        if hi < 1.0:
            matte *= 1.0 - _smoothstep(hi, hi + soft, value)
    return matte


def apply_secondary(rgb: np.ndarray, correction: SecondaryCorrection) -> np.ndarray:
    """Apply stage 2 to float32 RGB (display values 0..1), any ``(..., 3)`` shape."""
    image = np.asarray(rgb, dtype=np.float32)
    if correction.is_identity:
        return image
    x = image.reshape(-1, 3)
    if correction.qualifier_active:
        matte = qualify(x, correction)[:, None]
        adjusted = x
        if correction.hue_shift:
            adjusted = adjusted @ hue_rotation_matrix(correction.hue_shift).T
        if correction.saturation_gain != 1.0:
            adjusted = _scale_chroma(adjusted, correction.saturation_gain)
        if correction.lightness_offset:
            adjusted = adjusted + np.float32(correction.lightness_offset)
        x = x + (adjusted - x) * matte
    if correction.hue_vs_sat:
        hue, _sat, _lum = hsl(x)
        hues = np.array([h for h, _g in correction.hue_vs_sat], dtype=np.float32)
        gains = np.array([g for _h, g in correction.hue_vs_sat], dtype=np.float32)
        gain = np.interp(hue, hues, gains, period=360.0).astype(np.float32)
        x = _scale_chroma(x, gain)
    return np.clip(x, 0.0, 1.0).reshape(image.shape).astype(np.float32)
