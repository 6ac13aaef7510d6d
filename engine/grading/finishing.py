"""Stage 4, finishing: halation, bloom, vignette, film grain and letterbox.

They run in that fixed order on float32 display values (0..1): glows first (both
from the same input, screen-blended), so the vignette darkens them with the rest of the
picture; grain after the vignette, as it is in the film; the letterbox last, so its
bars stay pure black.

=========== ===================================================================================
effect      parameters (range, default)
=========== ===================================================================================
halation    ``amount`` (0..1, 0.25), ``threshold`` (0..1, 0.8), ``radius`` (0.001..0.25, 0.012)
            — a red-orange glow around highlights, like light scattered back through film
bloom       ``amount`` (0..1, 0.25), ``threshold`` (0..1, 0.8), ``radius`` (0.001..0.25, 0.04)
            — a wide glow of the highlights' own colour
vignette    ``amount`` (0..1, 0.3), ``radius`` (0..1.5, 0.6), ``softness`` (0.01..1.5, 0.6)
            — darkens toward the corners; distance 0 at the centre, 1 in the corners
grain       ``amount`` (0..1, 0.25), ``size`` (1..4 px, 1.5), ``chroma`` (0..1, 0.2),
            ``seed`` (int >= 0, 0) — strongest in the mid-tones (standard deviation
            ``0.06 * amount`` at mid grey, so 0.25 is about 4/255)
letterbox   ``aspect`` (1.0..4.0, 2.39) — black bars to this width/height ratio (top and
            bottom, or at the sides for a narrower ratio than the frame's)
=========== ===================================================================================

Glow ``radius`` is the blur's sigma as a fraction of the frame height, so a grade looks
the same at 720p and 2160p.  Grain is deterministic: the same ``(seed, frame_index)``
always gives the same grain, and every frame index gives a different one (a
PCG64 stream seeded with both), so it moves like film grain.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any, ClassVar

import numpy as np

from engine.errors import ParameterError
from engine.grading.params import reject_unknown_keys
from engine.grading.primary import LUMA_709

__all__ = [
    "EFFECTS",
    "Bloom",
    "FinishingSettings",
    "Grain",
    "Halation",
    "Letterbox",
    "Vignette",
    "apply_finishing",
    "apply_grain",
    "apply_letterbox",
    "apply_vignette",
    "finish_in_place",
    "letterbox_bars",
]


def _validate(obj: Any, ranges: Mapping[str, tuple[float, float]]) -> None:
    for name, (lo, hi) in ranges.items():
        value = getattr(obj, name)
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ParameterError(name, value, f"a number in {lo}..{hi}")
        if not (lo <= value <= hi):
            raise ParameterError(f"{obj.effect}.{name}", value, f"{lo}..{hi}")
        object.__setattr__(obj, name, float(value))


class _Effect:
    effect: ClassVar[str]
    ranges: ClassVar[dict[str, tuple[float, float]]]

    def __post_init__(self) -> None:
        _validate(self, self.ranges)

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]) -> Any:
        """Build from a dict, rejecting unknown keys with :class:`ParameterError`."""
        reject_unknown_keys(cls, values, f"{cls.effect} parameter")
        return cls(**dict(values))

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        return {f.name: getattr(self, f.name) for f in fields(self)}  # type: ignore[arg-type]


@dataclass(frozen=True, kw_only=True)
class Grain(_Effect):
    """Film grain; see the module docstring."""

    effect: ClassVar[str] = "grain"
    ranges: ClassVar[dict[str, tuple[float, float]]] = {
        "amount": (0.0, 1.0),
        "size": (1.0, 4.0),
        "chroma": (0.0, 1.0),
    }
    amount: float = 0.25
    size: float = 1.5
    chroma: float = 0.2
    seed: int = 0

    def __post_init__(self) -> None:
        super().__post_init__()
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise ParameterError("grain.seed", self.seed, "a whole number >= 0")


@dataclass(frozen=True, kw_only=True)
class Vignette(_Effect):
    """Darkening toward the corners; see the module docstring."""

    effect: ClassVar[str] = "vignette"
    ranges: ClassVar[dict[str, tuple[float, float]]] = {
        "amount": (0.0, 1.0),
        "radius": (0.0, 1.5),
        "softness": (0.01, 1.5),
    }
    amount: float = 0.3
    radius: float = 0.6
    softness: float = 0.6


@dataclass(frozen=True, kw_only=True)
class Halation(_Effect):
    """Red-orange glow around highlights; see the module docstring."""

    effect: ClassVar[str] = "halation"
    ranges: ClassVar[dict[str, tuple[float, float]]] = {
        "amount": (0.0, 1.0),
        "threshold": (0.0, 1.0),
        "radius": (0.001, 0.25),
    }
    tint: ClassVar[tuple[float, float, float]] = (1.0, 0.32, 0.12)
    amount: float = 0.25
    threshold: float = 0.8
    radius: float = 0.012


@dataclass(frozen=True, kw_only=True)
class Bloom(_Effect):
    """Wide glow of the highlights' own colour; see the module docstring."""

    effect: ClassVar[str] = "bloom"
    ranges: ClassVar[dict[str, tuple[float, float]]] = {
        "amount": (0.0, 1.0),
        "threshold": (0.0, 1.0),
        "radius": (0.001, 0.25),
    }
    amount: float = 0.25
    threshold: float = 0.8
    radius: float = 0.04


@dataclass(frozen=True, kw_only=True)
class Letterbox(_Effect):
    """Black bars to a target aspect ratio; see the module docstring."""

    effect: ClassVar[str] = "letterbox"
    ranges: ClassVar[dict[str, tuple[float, float]]] = {"aspect": (1.0, 4.0)}
    aspect: float = 2.39


EFFECTS: dict[str, type[_Effect]] = {
    cls.effect: cls for cls in (Halation, Bloom, Vignette, Grain, Letterbox)
}


@dataclass(frozen=True, kw_only=True)
class FinishingSettings:
    """Stage 4 settings: each effect is on when it is not ``None``."""

    halation: Halation | None = None
    bloom: Bloom | None = None
    vignette: Vignette | None = None
    grain: Grain | None = None
    letterbox: Letterbox | None = None

    def __post_init__(self) -> None:
        for name, cls in EFFECTS.items():
            value = getattr(self, name)
            if value is not None and not isinstance(value, cls):
                raise ParameterError(name, value, f"a {cls.__name__} or None")

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]) -> FinishingSettings:
        """Build from ``{effect name: {parameter: value} or None}``."""
        effects: dict[str, Any] = {}
        for name, params in values.items():
            if name not in EFFECTS:
                raise ParameterError("finishing effect", name, "one of " + ", ".join(EFFECTS))
            if params is None:
                effects[name] = None
            elif isinstance(params, Mapping):
                effects[name] = EFFECTS[name].from_mapping(params)
            else:
                raise ParameterError(name, params, "a dict of parameters, or None to remove it")
        return cls(**effects)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict of the effects that are on."""
        return {
            name: getattr(self, name).to_dict()
            for name in EFFECTS
            if getattr(self, name) is not None
        }

    @property
    def is_identity(self) -> bool:
        """True when no effect is on."""
        return all(getattr(self, name) is None for name in EFFECTS)


# --------------------------------------------------------------------------- effects


def letterbox_bars(height: int, width: int, aspect: float) -> tuple[int, int]:
    """``(rows, columns)`` of black on *each* side to show ``aspect`` inside the frame."""
    frame_aspect = width / height
    if aspect > frame_aspect:
        return max(0, math.floor((height - width / aspect) / 2.0 + 0.5)), 0
    if aspect < frame_aspect:
        return 0, max(0, math.floor((width - height * aspect) / 2.0 + 0.5))
    return 0, 0


def apply_letterbox(image: np.ndarray, letterbox: Letterbox) -> np.ndarray:
    """Black out the bars in place and return ``image``."""
    rows, cols = letterbox_bars(image.shape[0], image.shape[1], letterbox.aspect)
    if rows:
        image[:rows] = 0
        image[image.shape[0] - rows :] = 0
    if cols:
        image[:, :cols] = 0
        image[:, image.shape[1] - cols :] = 0
    return image


_LUMA_ROW = LUMA_709.reshape(1, 3)


def _luma(image: np.ndarray) -> np.ndarray:
    import cv2

    return cv2.transform(image, _LUMA_ROW)


# Masks are (h, w, 3) float32 (25 MB at 1080p): a contiguous multiply is 2-3 times
# faster than broadcasting an (h, w) mask, so keep only the two most recent sizes.
@functools.lru_cache(maxsize=2)
def _vignette_mask(height: int, width: int, vignette: Vignette) -> np.ndarray:
    # Elliptical: follows the frame's shape, distance 1 in the corners.
    v = np.linspace(-1.0, 1.0, height, dtype=np.float32)[:, None]
    u = np.linspace(-1.0, 1.0, width, dtype=np.float32)[None, :]
    distance = np.sqrt((u * u + v * v) / 2.0)
    t = np.clip((distance - vignette.radius) / vignette.softness, 0.0, 1.0)
    mask = 1.0 - vignette.amount * (t * t * (3.0 - 2.0 * t))
    mask = np.ascontiguousarray(np.repeat(mask[:, :, None], 3, axis=2), dtype=np.float32)
    mask.setflags(write=False)
    return mask


def apply_vignette(image: np.ndarray, vignette: Vignette) -> np.ndarray:
    """Multiply by a smooth mask that is 1 in the centre; in place, returns ``image``."""
    np.multiply(image, _vignette_mask(image.shape[0], image.shape[1], vignette), out=image)
    return image


def _apply_glows(image: np.ndarray, glows: list[Halation | Bloom]) -> np.ndarray:
    """Screen-blend the blurred highlights of ``image`` for each glow; in place.

    Every glow is computed from the same input (so halation does not feed bloom) at a
    reduced size (a wide Gaussian at full 1080p would cost more than the whole grade),
    and the screens combine there: ``1 - (1 - x)(1 - a)(1 - b) = 1 - (1 - x) * keep``
    with ``keep = (1 - a)(1 - b)``; only ``keep`` is brought back to full size.
    """
    import cv2

    height, width = image.shape[:2]
    sigmas = [max(glow.radius * height, 0.5) for glow in glows]
    factor = int(min(8, max(1, min(sigmas) // 2)))
    size = (max(1, width // factor), max(1, height // factor))
    small = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
    luma = _luma(small)
    keep = np.ones_like(small)
    for glow, sigma in zip(glows, sigmas, strict=True):
        knee = np.clip((luma - glow.threshold) / max(1.0 - glow.threshold, 1e-3), 0.0, 1.0)
        weight = knee * knee
        if isinstance(glow, Halation):
            tint = np.asarray(Halation.tint, dtype=np.float32)
            highlights = (weight * luma)[:, :, None] * tint
        else:
            highlights = small * weight[:, :, None]
        blurred = cv2.GaussianBlur(highlights, (0, 0), sigma / factor)
        keep *= 1.0 - np.float32(glow.amount) * np.clip(blurred, 0.0, 1.0)
    keep = cv2.resize(keep, (width, height), interpolation=cv2.INTER_LINEAR)
    np.subtract(1.0, image, out=image)
    image *= keep
    np.subtract(1.0, image, out=image)
    return image


@functools.lru_cache(maxsize=8)
def _upsampled_noise_gain(small: tuple[int, int], full: tuple[int, int]) -> float:
    """1 / the standard deviation that bilinear upsampling leaves of unit white noise."""
    import cv2

    if small == full:
        return 1.0
    sample = np.random.Generator(np.random.PCG64(0)).standard_normal(small, dtype=np.float32)
    up = cv2.resize(sample, (full[1], full[0]), interpolation=cv2.INTER_LINEAR)
    return 1.0 / max(float(up.std()), 1e-6)


def _noise(rng: np.random.Generator, small: tuple[int, ...], full: tuple[int, int]) -> np.ndarray:
    """Zero-mean unit-variance noise drawn at ``small`` and upsampled to ``full``.

    Uniform: five times faster to draw than Gaussian, and indistinguishable as grain
    once upsampled (interpolation sums neighbours, which makes it near-Gaussian).
    """
    import cv2

    noise = rng.random(small, dtype=np.float32)
    noise -= 0.5
    noise *= np.float32(np.sqrt(12.0))
    if small[:2] != full:
        noise = cv2.resize(noise, (full[1], full[0]), interpolation=cv2.INTER_LINEAR)
        noise *= np.float32(_upsampled_noise_gain(small[:2], full))
    return noise


def apply_grain(image: np.ndarray, grain: Grain, *, frame_index: int) -> np.ndarray:
    """Add film grain for ``frame_index``, in place; returns ``image``."""
    import cv2

    height, width = image.shape[:2]
    rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence([grain.seed, frame_index])))
    small = (max(2, round(height / grain.size)), max(2, round(width / grain.size)))
    mono = _noise(rng, small, (height, width))
    # Grain shows most in the mid-tones: weight 0.3 at black and white, 1 at mid grey.
    strength = np.float32(0.06 * grain.amount)
    luma = _luma(image)
    weight = 1.0 - luma
    weight *= luma
    weight *= 2.8 * strength
    weight += 0.3 * strength
    if grain.chroma > 0.0:
        # Colour grain is coarser than the luminance grain: drawn at half the size again.
        coarse = (max(2, small[0] // 2), max(2, small[1] // 2), 3)
        colour = _noise(rng, coarse, (height, width))
        colour *= np.float32(grain.chroma)
        mono *= np.float32(1.0 - grain.chroma)
        colour += cv2.merge([mono, mono, mono])
        colour *= cv2.merge([weight, weight, weight])
        image += colour
    else:
        mono *= weight
        image += cv2.merge([mono, mono, mono])
    return image


def apply_finishing(
    image: np.ndarray, settings: FinishingSettings, *, frame_index: int = 0
) -> np.ndarray:
    """Apply stage 4 to an ``(h, w, 3)`` float32 image (display values 0..1).

    Returns a new array, clipped to 0..1.
    """
    return finish_in_place(
        np.array(image, dtype=np.float32, copy=True), settings, frame_index=frame_index
    )


def finish_in_place(
    image: np.ndarray, settings: FinishingSettings, *, frame_index: int = 0
) -> np.ndarray:
    """:func:`apply_finishing` on ``image`` itself (contiguous float32); returns it."""
    if isinstance(frame_index, bool) or not isinstance(frame_index, int) or frame_index < 0:
        raise ParameterError("frame_index", frame_index, "a whole number >= 0")
    glows = [g for g in (settings.halation, settings.bloom) if g is not None and g.amount > 0]
    if glows:
        image = _apply_glows(image, glows)
    if settings.vignette is not None and settings.vignette.amount > 0:
        image = apply_vignette(image, settings.vignette)
    if settings.grain is not None and settings.grain.amount > 0:
        image = apply_grain(image, settings.grain, frame_index=frame_index)
    np.clip(image, 0.0, 1.0, out=image)
    if settings.letterbox is not None:
        image = apply_letterbox(image, settings.letterbox)
    return image
