"""Stage 1, primary correction: exposure, white balance, lift/gamma/gain, contrast,
brightness and saturation, applied to the whole frame.

Working space
-------------
Frames are 8-bit sRGB.  Every stage works on float32 RGB in 0..1 holding the *encoded*
(display) values, because contrast, lift/gamma/gain and ``.cube`` looks are defined on
display values in every grading tool.  The two operations that are physical light,
**exposure** and **white balance** (temperature/tint), decode to linear light with the
sRGB transfer function (IEC 61966-2-1), scale, and encode again: so ``exposure=+1``
doubles the linear light of every pixel (until it clips), exactly like opening the lens
one stop.

The order is fixed: exposure and white balance (linear light), lift/gamma/gain,
contrast, brightness (display values, one channel at a time, clipped to 0..1), then
saturation.  Everything before saturation acts on each channel separately, so it can
be tabulated as three 256-entry curves for 8-bit frames (:meth:`PrimaryCorrection.curves`).

Parameters and ranges
---------------------
=============  ===========  =======  ===================================================
name           range        neutral  meaning
=============  ===========  =======  ===================================================
exposure       -2.0..2.0    0.0      stops: linear light times ``2 ** exposure``
contrast       0..100       50       slope around mid grey (0.5): ``contrast / 50``,
                                     0 = flat grey, 100 = twice the contrast
brightness     0..100       50       offset: ``(brightness - 50) / 200``, so -0.25..+0.25
saturation     0..100       50       chroma around Rec.709 luma: ``saturation / 50``,
                                     0 = grey, 100 = twice as saturated
lift           -0.5..0.5    0.0      raises (or crushes) the blacks, leaves white
gamma          0.2..5.0     1.0      mid-tones: ``x ** (1 / gamma)``, > 1 brightens
gain           0.0..4.0     1.0      scales the whites, leaves black
temperature    -100..100    0        warmer (+, more red, less blue) or cooler (-)
tint           -100..100    0        magenta (+) or green (-)
=============  ===========  =======  ===================================================

``lift``, ``gamma`` and ``gain`` take one number for all channels or an ``(r, g, b)``
triple.  The 0..100 scales with 50 = neutral are the API reference's
(``ColorGrader.set_primary_correction``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from engine.errors import ParameterError
from engine.grading.params import reject_unknown_keys

__all__ = [
    "LUMA_709",
    "PrimaryCorrection",
    "apply_primary",
    "linear_to_srgb",
    "saturation_matrix",
    "srgb_to_linear",
]

LUMA_709 = np.array([0.2126, 0.7152, 0.0722], dtype=np.float32)
CONTRAST_PIVOT = 0.5

Triple = tuple[float, float, float]

_SCALAR_RANGES: dict[str, tuple[float, float]] = {
    "exposure": (-2.0, 2.0),
    "contrast": (0.0, 100.0),
    "brightness": (0.0, 100.0),
    "saturation": (0.0, 100.0),
    "temperature": (-100.0, 100.0),
    "tint": (-100.0, 100.0),
}
_TRIPLE_RANGES: dict[str, tuple[float, float]] = {
    "lift": (-0.5, 0.5),
    "gamma": (0.2, 5.0),
    "gain": (0.0, 4.0),
}


def srgb_to_linear(encoded: np.ndarray) -> np.ndarray:
    """The sRGB decoding function (IEC 61966-2-1), float32 in and out."""
    x = np.asarray(encoded, dtype=np.float32)
    return np.where(
        x <= 0.04045, x / 12.92, ((np.maximum(x, 0.04045) + 0.055) / 1.055) ** 2.4
    ).astype(np.float32)


def linear_to_srgb(linear: np.ndarray) -> np.ndarray:
    """The sRGB encoding function, inverse of :func:`srgb_to_linear` (clamps below 0)."""
    x = np.maximum(np.asarray(linear, dtype=np.float32), 0.0)
    return np.where(
        x <= 0.0031308, x * 12.92, 1.055 * np.maximum(x, 0.0031308) ** (1 / 2.4) - 0.055
    ).astype(np.float32)


def saturation_matrix(factor: float) -> np.ndarray:
    """3x3 matrix ``M`` scaling chroma by ``factor`` around Rec.709 luma: ``out = M @ rgb``.

    The same form as ``cv2.transform`` takes.
    """
    grey = np.tile(LUMA_709, (3, 1))
    return ((1.0 - factor) * grey + factor * np.eye(3, dtype=np.float32)).astype(np.float32)


def _triple(name: str, value: Any) -> Triple:
    lo, hi = _TRIPLE_RANGES[name]
    if isinstance(value, int | float) and not isinstance(value, bool):
        items = [float(value)] * 3
    elif isinstance(value, Sequence) and not isinstance(value, str) and len(value) == 3:
        try:
            items = [float(v) for v in value]
        except (TypeError, ValueError) as err:
            raise ParameterError(name, value, f"a number or (r, g, b) in {lo}..{hi}") from err
    else:
        raise ParameterError(name, value, f"a number or (r, g, b) in {lo}..{hi}")
    if not all(lo <= v <= hi for v in items):
        raise ParameterError(name, value, f"{lo}..{hi} (for each channel)")
    return (items[0], items[1], items[2])


@dataclass(frozen=True, kw_only=True)
class PrimaryCorrection:
    """Stage 1 settings; see the module docstring for ranges and formulas.

    Raises
    ------
    ParameterError
        A value is out of range or of the wrong type.
    """

    exposure: float = 0.0
    contrast: float = 50.0
    brightness: float = 50.0
    saturation: float = 50.0
    lift: Triple = (0.0, 0.0, 0.0)
    gamma: Triple = (1.0, 1.0, 1.0)
    gain: Triple = (1.0, 1.0, 1.0)
    temperature: float = 0.0
    tint: float = 0.0

    def __post_init__(self) -> None:
        for name, (lo, hi) in _SCALAR_RANGES.items():
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ParameterError(name, value, f"a number in {lo}..{hi}")
            if not (lo <= value <= hi):
                raise ParameterError(name, value, f"{lo}..{hi}")
            object.__setattr__(self, name, float(value))
        for name in _TRIPLE_RANGES:
            object.__setattr__(self, name, _triple(name, getattr(self, name)))

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]) -> PrimaryCorrection:
        """Build from a dict, rejecting unknown keys with :class:`ParameterError`."""
        reject_unknown_keys(cls, values, "primary key")
        return cls(**dict(values))

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (triples become lists)."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    @property
    def is_identity(self) -> bool:
        """True when every setting is neutral."""
        return self == PrimaryCorrection()

    @property
    def has_curves(self) -> bool:
        """True when any per-channel setting (everything but saturation) is not neutral."""
        return PrimaryCorrection(saturation=self.saturation) != self

    def white_balance_gains(self) -> np.ndarray:
        """Linear-light RGB gains for temperature and tint, normalised to keep white's luma."""
        warm = 0.25 * self.temperature / 100.0
        magenta = 0.2 * self.tint / 100.0
        gains = np.array([1.0 + warm, 1.0 - magenta, 1.0 - warm], dtype=np.float64)
        gains /= float(LUMA_709.astype(np.float64) @ gains)
        return gains.astype(np.float32)

    def apply_curves(self, rgb: np.ndarray) -> np.ndarray:
        """The per-channel part (everything but saturation), clipped to 0..1."""
        x = np.asarray(rgb, dtype=np.float32)
        if self.exposure != 0.0 or self.temperature != 0.0 or self.tint != 0.0:
            scale = self.white_balance_gains() * np.float32(2.0**self.exposure)
            x = linear_to_srgb(srgb_to_linear(x) * scale)
        lift = np.asarray(self.lift, dtype=np.float32)
        gain = np.asarray(self.gain, dtype=np.float32)
        gamma = np.asarray(self.gamma, dtype=np.float32)
        if self.lift != (0.0, 0.0, 0.0) or self.gain != (1.0, 1.0, 1.0):
            x = gain * (x + lift * (1.0 - x))
        if self.gamma != (1.0, 1.0, 1.0):
            x = np.maximum(x, 0.0) ** (1.0 / gamma)
        if self.contrast != 50.0:
            x = (x - CONTRAST_PIVOT) * np.float32(self.contrast / 50.0) + CONTRAST_PIVOT
        if self.brightness != 50.0:
            x = x + np.float32((self.brightness - 50.0) / 200.0)
        return np.clip(x, 0.0, 1.0).astype(np.float32)

    def curves(self) -> np.ndarray:
        """The per-channel part tabulated for 8-bit input: ``(256, 3)`` float32."""
        levels = np.arange(256, dtype=np.float32) / np.float32(255.0)
        return self.apply_curves(np.repeat(levels[:, None], 3, axis=1))

    def apply_saturation(self, rgb: np.ndarray) -> np.ndarray:
        """Scale chroma around Rec.709 luma; ``saturation=0`` gives R = G = B."""
        x = np.asarray(rgb, dtype=np.float32)
        if self.saturation == 50.0:
            return x
        return np.clip(x @ saturation_matrix(self.saturation / 50.0).T, 0.0, 1.0)


def apply_primary(rgb: np.ndarray, correction: PrimaryCorrection) -> np.ndarray:
    """Apply stage 1 to a float32 RGB image (display values 0..1); returns a new array."""
    return correction.apply_saturation(correction.apply_curves(rgb))
