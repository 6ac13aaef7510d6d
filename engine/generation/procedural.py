"""The procedural draft backend: fast, deterministic stills painted with numpy and OpenCV.

When no Stable Diffusion weights are installed, every shot still comes from here.  The
painter reads the prompt's keywords to pick one of six composition families, takes its
colours from the request's palette (or from :func:`palette_from_prompt`), and lets the
music's energy drive contrast, saturation, brightness, glow and how busy the frame is.

=============  ====================================================================
family         what it paints
=============  ====================================================================
``landscape``  gradient sky, sun or moon with glow, clouds, layered mountains, hills
               or dunes fading into haze (atmospheric perspective)
``city``       night skyline in three depths, lit windows, neon signs with glow, wet
               reflections, rain
``ocean``      sky and sun over a perspective sea, sun glitter path, distant islands
``space``      domain-warped nebula in the palette's colours, stars with spikes, a
               shaded planet with atmosphere and rings
``abstract``   silk ribbons, bokeh circles, geometric shapes with soft shadows
``forest``     misty layered conifers and light rays through fog
=============  ====================================================================

Smooth content (skies, noise fields, glows) is computed at a quarter or half of the
output size and upscaled with OpenCV; silhouettes are drawn anti-aliased at full size.
Every frame gets the same cinematic finish: bloom, colour grade, vignette and
deterministic film grain, which also dithers away banding before quantising.

The result depends only on the request's prompt, seed, size, palette, energy and
section (not on ``shot_index``: the planner folds that into the seed when it wants
shots to differ).  Every random draw comes from a named NumPy ``PCG64`` stream seeded
from ``request.seed`` and a SHA-256 digest of the prompt, so equal requests give
bit-identical images.
"""

from __future__ import annotations

import hashlib
import logging
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from engine.generation.palette import RGB, keywords, palette_from_prompt, prompt_words
from engine.generation.types import StillRequest

__all__ = ["COMPOSITIONS", "ProceduralBackend", "composition_for_prompt"]

logger = logging.getLogger(__name__)

COMPOSITIONS: tuple[str, ...] = ("landscape", "city", "ocean", "space", "abstract", "forest")

_FAMILY_WORDS: dict[str, frozenset[str]] = {
    "space": keywords(
        "space nebula nebulae galaxy galaxies cosmos cosmic universe planet planets orbit "
        "astronaut interstellar galactic stars starry starfield supernova"
    ),
    "city": keywords(
        "city cities neon urban street streets skyline downtown cyberpunk metropolis tokyo "
        "skyscraper skyscrapers building buildings rooftop rooftops traffic"
    ),
    "ocean": keywords(
        "ocean oceans sea seas wave waves beach shore coast coastal surf tide seascape "
        "lake bay harbor harbour island islands"
    ),
    "forest": keywords(
        "forest forests tree trees wood woods woodland pine pines jungle grove fir firs "
        "redwood redwoods"
    ),
    "landscape": keywords(
        "mountain mountains peak peaks hill hills desert deserts dune dunes valley canyon "
        "sunset sunrise dusk dawn landscape field fields meadow plains prairie volcano "
        "alps cliffs moon moonlight"
    ),
    "abstract": keywords(
        "abstract bokeh geometric geometry shape shapes ribbon ribbons flow flowing light "
        "lights gold golden particles fractal kaleidoscope dream dreamy colors colours "
        "liquid silk glow glowing"
    ),
}

# How a section label shifts the look: (energy bias, exposure bias).
_SECTION_BIAS: dict[str, tuple[float, float]] = {
    "intro": (-0.12, -0.08),
    "outro": (-0.15, -0.10),
    "verse": (0.0, 0.0),
    "pre-chorus": (0.05, 0.02),
    "prechorus": (0.05, 0.02),
    "chorus": (0.15, 0.06),
    "hook": (0.12, 0.05),
    "drop": (0.22, 0.08),
    "bridge": (-0.04, -0.02),
    "breakdown": (-0.10, -0.05),
    "solo": (0.08, 0.03),
}

_LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)


def composition_for_prompt(prompt: str, seed: int) -> str:
    """Choose the composition family for a prompt.

    The family whose keywords the prompt names most often wins (ties: the one named
    first); a prompt naming none gets a family chosen from the seed and the prompt's
    digest.

    Parameters
    ----------
    prompt : str
        The shot's text prompt.
    seed : int
        The request's seed, used only when no keyword matches.

    Returns
    -------
    str
        One of :data:`COMPOSITIONS`.

    Examples
    --------
    >>> composition_for_prompt("neon city at night, rain", 0)
    'city'
    """
    hits: dict[str, tuple[int, int]] = {}
    for position, word in enumerate(prompt_words(prompt)):
        for family, words in _FAMILY_WORDS.items():
            if word in words:
                count, first = hits.get(family, (0, position))
                hits[family] = (count + 1, first)
    if hits:
        return min(hits, key=lambda f: (-hits[f][0], hits[f][1]))
    digest = hashlib.sha256(f"{seed}|{prompt}".encode()).digest()
    return COMPOSITIONS[digest[0] % len(COMPOSITIONS)]


# --------------------------------------------------------------------------- helpers


def _smoothstep(e0: float, e1: float, x: np.ndarray) -> np.ndarray:
    t = np.clip((x - e0) / (e1 - e0), 0.0, 1.0)
    return t * t * (3.0 - 2.0 * t)


def _resize(a: np.ndarray, w: int, h: int, *, cubic: bool = True) -> np.ndarray:
    """Resize a float image; cubic for smooth fields (clipped later), linear otherwise."""
    if a.shape[1] == w and a.shape[0] == h:
        return a
    interp = cv2.INTER_CUBIC if cubic else cv2.INTER_LINEAR
    return cv2.resize(a, (w, h), interpolation=interp)


def _shrink(a: np.ndarray, w: int, h: int) -> np.ndarray:
    return cv2.resize(a, (w, h), interpolation=cv2.INTER_AREA)


def _noise(rng: np.random.Generator, h: int, w: int, cy: int, cx: int) -> np.ndarray:
    """Value noise in 0..1 with ``cy`` x ``cx`` cells, cubic-interpolated to ``h`` x ``w``."""
    cy = max(1, min(cy, h))
    cx = max(1, min(cx, w))
    grid = rng.random((cy + 1, cx + 1), dtype=np.float32)
    return cv2.resize(grid, (w, h), interpolation=cv2.INTER_CUBIC)


def _fbm(
    rng: np.random.Generator,
    h: int,
    w: int,
    *,
    cells: float,
    octaves: int,
    stretch: float = 1.0,
    gain: float = 0.5,
) -> np.ndarray:
    """Fractal noise normalised to mean 0.5, std ~0.17 (clipped to 0..1).

    ``cells`` counts the coarsest octave's cells along the shorter side; ``stretch`` > 1
    makes the features wider than tall.
    """
    short = min(h, w)
    total = np.zeros((h, w), dtype=np.float32)
    amp = 1.0
    for octave in range(octaves):
        c = cells * (2.0**octave)
        cy = round(c * h / short)
        cx = round(c * w / short / stretch)
        total += amp * _noise(rng, h, w, max(cy, 1), max(cx, 1))
        amp *= gain
    total -= total.mean()
    total *= 0.17 / (float(total.std()) + 1e-6)
    total += 0.5
    return np.clip(total, 0.0, 1.0, out=total)


def _noise1d(rng: np.random.Generator, n: int, cells: int, octaves: int) -> np.ndarray:
    """1-D fractal noise of length ``n`` in roughly 0..1."""
    total = np.zeros(n, dtype=np.float32)
    amp, weight = 1.0, 0.0
    for octave in range(octaves):
        c = min(cells * 2**octave, n - 1)
        ctrl = rng.random((1, c + 1), dtype=np.float32)
        total += amp * cv2.resize(ctrl, (n, 1), interpolation=cv2.INTER_CUBIC)[0]
        weight += amp
        amp *= 0.5
    return total / weight


def _gradient(t: np.ndarray, colours: Sequence[np.ndarray]) -> np.ndarray:
    """Map values in 0..1 through evenly spaced colour stops; returns ``t.shape + (3,)``."""
    stops = np.linspace(0.0, 1.0, len(colours))
    flat = t.reshape(-1)
    out = np.empty((flat.size, 3), dtype=np.float32)
    table = np.stack(colours)
    for ch in range(3):
        out[:, ch] = np.interp(flat, stops, table[:, ch])
    return out.reshape(*t.shape, 3)


def _vertical(h: int, stops: Sequence[tuple[float, np.ndarray]]) -> np.ndarray:
    """A ``(h, 1, 3)`` column of colours through ``(position, colour)`` stops."""
    ys = (np.arange(h, dtype=np.float32) + 0.5) / h
    pos = np.array([p for p, _ in stops], dtype=np.float32)
    table = np.stack([c for _, c in stops])
    col = np.empty((h, 1, 3), dtype=np.float32)
    for ch in range(3):
        col[:, 0, ch] = np.interp(ys, pos, table[:, ch])
    return col


def _over(img: np.ndarray, colour: np.ndarray, mask: np.ndarray, y0: int = 0) -> None:
    """Paint ``colour`` over ``img[y0:]`` through ``mask`` (in place)."""
    region = img[y0:]
    diff = colour - region
    diff *= mask[..., None]
    region += diff


def _screen_add(img: np.ndarray, light: np.ndarray, y0: int = 0) -> None:
    """Add light, softened so bright areas do not clip hard (in place)."""
    region = img[y0:]
    region += light * (1.0 - 0.5 * np.clip(region, 0.0, 1.0))


def _poly_mask(h: int, w: int, polys: Sequence[np.ndarray]) -> np.ndarray:
    """Anti-aliased uint8 mask of filled polygons given in float pixel coordinates."""
    mask = np.zeros((h, w), dtype=np.uint8)
    # One call per polygon: a single fillPoly call over several contours fills by the
    # even-odd rule, punching holes where the shapes overlap.
    for poly in polys:
        cv2.fillPoly(mask, [np.round(poly * 8.0).astype(np.int32)], 255, cv2.LINE_AA, shift=3)
    return mask


def _to_float(mask: np.ndarray, y0: int = 0) -> np.ndarray:
    return mask[y0:].astype(np.float32) * np.float32(1.0 / 255.0)


def _radial(h: int, w: int, cx: float, cy: float, scale: float) -> np.ndarray:
    """Distance from ``(cx, cy)`` divided by ``scale`` (pixel units of this grid)."""
    ys = (np.arange(h, dtype=np.float32) - cy)[:, None]
    xs = (np.arange(w, dtype=np.float32) - cx)[None, :]
    return np.sqrt(xs * xs + ys * ys) / scale


def _luma(c: np.ndarray) -> float:
    return float(c @ _LUMA)


@dataclass(frozen=True)
class _Palette:
    """The palette in roles, as float32 RGB in 0..1, darkest to lightest."""

    deep: np.ndarray
    dark: np.ndarray
    mid: np.ndarray
    light: np.ndarray
    bright: np.ndarray
    accent: np.ndarray
    accent2: np.ndarray

    @classmethod
    def from_rgb(cls, colours: Sequence[RGB]) -> _Palette:
        cols = [np.array(c, dtype=np.float32) / 255.0 for c in colours]
        cols.sort(key=_luma)
        if len(cols) > 5:
            idx = np.linspace(0, len(cols) - 1, 5).round().astype(int)
            cols = [cols[i] for i in idx]
        while len(cols) < 5:
            # Too few colours: add a darker shade of the darkest, then a lighter tint of
            # the lightest, so every role still has a sensible colour.
            if len(cols) % 2:
                cols.insert(0, cols[0] * 0.35)
            else:
                cols.append(cols[-1] + (1.0 - cols[-1]) * 0.55)

        def vividness(c: np.ndarray) -> float:
            return float(c.max() - c.min()) * (0.35 + float(c.max()))

        by_vivid = sorted(range(1, 5), key=lambda i: -vividness(cols[i]))
        return cls(
            deep=cols[0],
            dark=cols[1],
            mid=cols[2],
            light=cols[3],
            bright=cols[4],
            accent=cols[by_vivid[0]],
            accent2=cols[by_vivid[1]],
        )


def _mix(a: np.ndarray, b: np.ndarray, t: float) -> np.ndarray:
    return (a + (b - a) * np.float32(t)).astype(np.float32)


def _lift(c: np.ndarray, amount: float) -> np.ndarray:
    """Move a colour toward white (amount > 0) or black (amount < 0)."""
    if amount >= 0:
        return _mix(c, np.ones(3, np.float32), amount)
    return (c * np.float32(1.0 + amount)).astype(np.float32)


@dataclass
class _Scene:
    """Everything a family painter needs: size, colours, mood and random streams."""

    h: int
    w: int
    energy: float
    exposure: float
    pal: _Palette
    words: frozenset[str]
    entropy: tuple[int, ...]

    @property
    def lh(self) -> int:
        return max(8, -(-self.h // 4))

    @property
    def lw(self) -> int:
        return max(8, -(-self.w // 4))

    @property
    def hh(self) -> int:
        return max(8, -(-self.h // 2))

    @property
    def hw(self) -> int:
        return max(8, -(-self.w // 2))

    def rng(self, name: str) -> np.random.Generator:
        """An independent stream per element group, so that a change in how many stars
        are drawn never moves the mountains."""
        key = int.from_bytes(hashlib.sha256(name.encode()).digest()[:4], "little")
        return np.random.Generator(np.random.PCG64(np.random.SeedSequence([*self.entropy, key])))

    def has(self, *words: str) -> bool:
        return any(w in self.words for w in words)


def _entropy(seed: int, prompt: str) -> tuple[int, ...]:
    digest = hashlib.sha256(prompt.encode("utf-8")).digest()
    seed_words = [(seed % 2**128) >> (32 * i) & 0xFFFFFFFF for i in range(4)]
    prompt_ints = [int.from_bytes(digest[i : i + 4], "little") for i in range(0, 16, 4)]
    return (*seed_words, *prompt_ints)


# ------------------------------------------------------------------ shared elements


def _sky(
    sc: _Scene,
    stops: Sequence[tuple[float, np.ndarray]],
    *,
    sun: tuple[float, float, float] | None,
    sun_colour: np.ndarray,
    glow: float,
    clouds: float,
    cloud_top: float,
    cloud_bottom: float,
) -> np.ndarray:
    """A full-size sky: gradient, glow around ``sun`` (x, y, radius in pixels), clouds."""
    lh, lw = sc.lh, sc.lw
    sky = np.broadcast_to(_vertical(lh, stops), (lh, lw, 3)).copy()
    rng = sc.rng("sky")
    # Gentle large-scale variation so the gradient never looks like a ramp.
    var = _fbm(rng, lh, lw, cells=1.5, octaves=3)
    sky *= (0.92 + 0.16 * var)[..., None]
    if sun is not None:
        sx, sy, sr = sun[0] / 4.0, sun[1] / 4.0, max(sun[2] / 4.0, 1.0)
        d = _radial(lh, lw, sx, sy, sr)
        halo = glow * (0.55 * np.exp(-d / 2.2) + 0.45 * np.exp(-d / 9.0))
        sky += halo[..., None] * sun_colour
    if clouds > 0:
        n = _fbm(sc.rng("clouds"), lh, lw, cells=3.0, octaves=6, stretch=4.0, gain=0.6)
        ys = (np.arange(lh, dtype=np.float32) + 0.5) / lh
        band = _smoothstep(cloud_top - 0.1, cloud_top + 0.1, ys) * (
            1.0 - _smoothstep(cloud_bottom - 0.12, cloud_bottom, ys)
        )
        alpha = _smoothstep(0.56 - 0.1 * clouds, 0.72, n) * band[:, None] * min(clouds, 1.0)
        # Without a sun, clouds are lit from below (city glow, the horizon's afterglow).
        lit = np.broadcast_to((0.1 + 0.6 * ys)[:, None], (lh, lw))
        if sun is not None:
            d = _radial(lh, lw, sun[0] / 4.0, sun[1] / 4.0, lh * 0.9)
            lit = np.clip(np.exp(-d * 1.4) * 1.3, 0.0, 1.0) * 0.8 + 0.2
        shade = _mix(sc.pal.dark, sc.pal.mid, 0.4) if sun is not None else sc.pal.dark * 1.3
        cloud = shade + (_mix(sun_colour, sc.pal.light, 0.3) - shade) * lit[..., None]
        # Denser cloud is darker underneath: a cheap sense of volume.
        cloud = cloud * (1.05 - 0.35 * _smoothstep(0.65, 0.95, n))[..., None]
        _over(sky, cloud, alpha * 0.85)
    return _resize(sky, sc.w, sc.h)


def _disc(
    img: np.ndarray, cx: float, cy: float, r: float, colour: np.ndarray, *, crescent: float = 0.0
) -> None:
    """A crisp anti-aliased sun or moon disc, with slight limb darkening."""
    h, w = img.shape[:2]
    x0, x1 = max(0, int(cx - r - 2)), min(w, int(cx + r + 3))
    y0, y1 = max(0, int(cy - r - 2)), min(h, int(cy + r + 3))
    if x0 >= x1 or y0 >= y1:
        return
    ys = np.arange(y0, y1, dtype=np.float32)[:, None] - cy
    xs = np.arange(x0, x1, dtype=np.float32)[None, :] - cx
    d = np.sqrt(xs * xs + ys * ys)
    alpha = np.clip(r - d + 0.5, 0.0, 1.0)
    if crescent > 0:
        off = r * crescent
        d2 = np.sqrt((xs - off) ** 2 + (ys + off * 0.3) ** 2)
        alpha *= 1.0 - np.clip(r * 0.95 - d2 + 0.5, 0.0, 1.0) * 0.92
    limb = 1.0 - 0.18 * (d / max(r, 1.0)) ** 2
    col = colour[None, None, :] * limb[..., None]
    _over(img[y0:y1, x0:x1], col, alpha)


def _stars(
    sc: _Scene,
    img: np.ndarray,
    *,
    count: int,
    y_max: float,
    big: int,
    rng: np.random.Generator,
    strength: float = 1.0,
) -> None:
    """Point stars (soft, slightly coloured) and a few bright ones with spikes."""
    h, w = sc.h, sc.w
    ymax = max(2, int(h * y_max))
    layer = np.zeros((ymax, w, 3), dtype=np.float32)
    xs = rng.integers(0, w, count)
    ys = rng.integers(0, ymax, count)
    bright = (rng.random(count, dtype=np.float32) ** 5.0) * 2.2 + 0.15
    tint = rng.random(count, dtype=np.float32)
    cool = np.array([0.75, 0.85, 1.0], np.float32)
    warm = np.array([1.0, 0.88, 0.72], np.float32)
    cols = cool + (warm - cool) * tint[:, None]
    np.add.at(layer, (ys, xs), cols * bright[:, None] * strength)
    sizes = max(1.0, h / 540.0)
    layer = cv2.GaussianBlur(layer, (0, 0), 0.55 * sizes) * (2.2 * sizes)
    for i in range(min(big, count)):
        x, y = float(xs[i]), float(ys[i])
        length = (0.008 + 0.02 * rng.random()) * h
        # Nested lines of growing length add up to a spike that tapers to nothing.
        for k in (1.0, 0.6, 0.3):
            col = tuple(float(c) * 0.25 * strength for c in cols[i])
            for dx, dy in ((1.0, 0.0), (0.0, 1.0)):
                p0 = (round((x - dx * length * k) * 16), round((y - dy * length * k) * 16))
                p1 = (round((x + dx * length * k) * 16), round((y + dy * length * k) * 16))
                cv2.line(layer, p0, p1, col, 1, cv2.LINE_AA, shift=4)
        cv2.circle(layer, (int(x), int(y)), max(1, round(1.5 * sizes)), col, -1, cv2.LINE_AA)
    _screen_add(img[:ymax], layer)


def _ridge(rng: np.random.Generator, n: int, kind: str, roughness: float) -> np.ndarray:
    """A terrain profile in 0..1 (1 = highest) with ``n`` samples."""
    if kind == "mountains":
        # Cubic upsampling can overshoot 0..1 a little; a negative base to a fractional
        # power is NaN, which once crashed a long render.
        base = np.clip(_noise1d(rng, n, 2, 3), 0.0, 1.0)
        detail = np.clip(_noise1d(rng, n, 5, 5), 0.0, 1.0)
        ridged = 1.0 - np.abs(2.0 * detail - 1.0)
        prof = 0.7 * base**1.3 + 0.3 * ridged**2 * (0.5 + roughness)
    elif kind == "dunes":
        x = np.linspace(0.0, 1.0, n, dtype=np.float32)
        freq = 1.5 + 2.0 * rng.random()
        t = x * freq + rng.random() + 0.25 * _noise1d(rng, n, 3, 2)
        s = t - np.floor(t)
        crest = 0.72
        # Long windward slope, short steep slip face: the dune silhouette.
        prof = np.where(s < crest, s / crest, (1.0 - s) / (1.0 - crest)) ** 1.4
        prof = 0.55 * prof + 0.45 * _noise1d(rng, n, 2, 2)
        prof = cv2.GaussianBlur(prof[None, :].astype(np.float32), (0, 0), n / 800.0)[0]
    else:  # hills
        prof = _noise1d(rng, n, 2, 3) * 0.8 + 0.2 * _noise1d(rng, n, 6, 2) * roughness
    lo, hi = float(prof.min()), float(prof.max())
    return ((prof - lo) / max(hi - lo, 1e-6)).astype(np.float32)


def _terrain_layer(
    sc: _Scene,
    img: np.ndarray,
    profile: np.ndarray,
    *,
    base_y: float,
    amplitude: float,
    top_colour: np.ndarray,
    haze_colour: np.ndarray,
    fog: float,
    shade: float,
    light_x: float,
) -> None:
    """Fill below a profile with colour fading into haze, shaded by slope toward light."""
    h, w = sc.h, sc.w
    n = profile.size
    xs = np.linspace(0.0, w, n, dtype=np.float32)
    ys = base_y - amplitude * profile
    poly = np.concatenate([np.stack([xs, ys], 1), [[w + 2, h + 2], [-2, h + 2]]])
    y0 = max(0, int(ys.min()) - 2)
    mask = _to_float(_poly_mask(h, w, [poly.astype(np.float32)]), y0)
    # Colour field at quarter size: haze rises toward the bottom of the layer (valley
    # fog), and faces turned toward the light are lifted a little.
    lh = max(2, -(-(h - y0) // 4))
    lw = sc.lw
    rows = (np.arange(lh, dtype=np.float32) * 4.0 + y0)[:, None]
    ridge_low = np.interp(np.linspace(0, w, lw), xs, ys).astype(np.float32)[None, :]
    below = np.clip((rows - ridge_low) / max(amplitude + (h - base_y) * 0.5, 1.0), 0.0, 1.0)
    fog_t = _smoothstep(0.0, 1.0, below) * fog
    # Faces are shaded by the ridge's slope, sampled along a diagonal that runs down and
    # away from the light: crest lines then descend across the face instead of dropping
    # straight down as stripes.
    slope_x = np.linspace(0, w, 1024, dtype=np.float32)
    slope = np.gradient(np.interp(slope_x, xs, profile)) * 1024.0 / 6.0
    slope = cv2.GaussianBlur(slope[None, :].astype(np.float32), (0, 0), 7.0)[0]
    cols = np.linspace(0, w, lw, dtype=np.float32)[None, :]
    toward = np.tanh((light_x - cols) / (0.15 * w))
    depth_px = np.clip(rows - ridge_low, 0.0, None)
    along = cols - toward * depth_px * 0.6
    facing = np.tanh(np.interp(along, slope_x, slope) * toward * 2.5)
    facing *= np.exp(-depth_px / max(0.8 * amplitude, 1.0))
    lum = 1.0 + shade * facing
    field = top_colour * lum[..., None]
    field += (haze_colour - field) * fog_t[..., None]
    field = _resize(field.astype(np.float32), w, h - y0, cubic=False)
    _over(img, field, mask, y0)


# ---------------------------------------------------------------------- families


def _paint_landscape(sc: _Scene) -> np.ndarray:
    h, w, p, e = sc.h, sc.w, sc.pal, sc.energy
    rng = sc.rng("landscape")
    if sc.has("desert", "deserts", "dune", "dunes", "sand", "sahara"):
        kind = "dunes"
    elif sc.has("mountain", "mountains", "peak", "peaks", "alps", "cliffs", "volcano"):
        kind = "mountains"
    elif sc.has("hill", "hills", "field", "fields", "meadow", "valley", "prairie", "plains"):
        kind = "hills"
    else:
        kind = ("mountains", "hills", "dunes")[int(rng.integers(0, 3))]
    night = sc.has("night", "moon", "moonlight", "midnight", "stars", "starry")
    horizon = h * (0.55 + 0.12 * rng.random())
    sun_x = w * (0.22 + 0.56 * rng.random())
    sun_r = h * (0.045 + 0.035 * rng.random())
    sun_y = horizon - h * (0.08 + 0.22 * rng.random())
    if night:
        top, upper, low = p.deep * 0.6, p.deep, _mix(p.dark, p.mid, 0.35)
        sun_col = _mix(p.bright, np.ones(3, np.float32), 0.6)
        glow = 0.35 + 0.3 * e
    else:
        top, upper, low = _mix(p.dark, p.deep, 0.3), p.mid, _mix(p.light, p.bright, 0.5)
        sun_col = _mix(p.bright, np.array([1.0, 0.95, 0.85], np.float32), 0.5)
        glow = 0.4 + 0.3 * e
    stops = [
        (0.0, top),
        (horizon / h * 0.55, upper),
        (horizon / h, low),
        (1.0, low),
    ]
    img = _sky(
        sc,
        stops,
        sun=(sun_x, sun_y, sun_r),
        sun_colour=sun_col,
        glow=glow,
        clouds=(0.25 + 0.6 * rng.random()) * (0.4 if night else 1.0),
        cloud_top=0.05,
        cloud_bottom=horizon / h - 0.08,
    )
    if night:
        _stars(sc, img, count=int(w * h / 900 * (0.5 + e)), y_max=horizon / h, big=6, rng=rng)
        _disc(img, sun_x, sun_y, sun_r * 0.8, sun_col, crescent=0.45 * rng.random())
    else:
        _disc(img, sun_x, sun_y, sun_r, np.minimum(sun_col * 1.15, 1.2))
    layers = 4 if kind != "dunes" else 3
    haze = _mix(low, sun_col, 0.15) if not night else _mix(p.dark, p.mid, 0.3)
    far_col = _mix(haze, p.mid, 0.35) if not night else _mix(p.dark, p.mid, 0.25)
    near_col = p.deep * (0.35 if night else 0.5)
    if kind == "dunes":
        near_col = _mix(p.dark, p.mid, 0.35)
    n = 512
    for i in range(layers):
        t = i / (layers - 1)
        prof = _ridge(rng, n, kind, 0.5 + 0.5 * e)
        amp = h * (0.18 - 0.08 * t) * (1.3 if kind == "mountains" else 0.7)
        base = horizon + (h - horizon) * (0.08 + 0.62 * t**1.3) + amp * 0.3
        top_col = _mix(far_col, near_col, t**0.8)
        _terrain_layer(
            sc,
            img,
            prof,
            base_y=base,
            amplitude=amp,
            top_colour=top_col,
            haze_colour=_mix(haze, top_col, 0.25 + 0.4 * t),
            fog=0.55 * (1.0 - 0.5 * t),
            shade=0.35 * (1.0 - 0.3 * t) if kind == "dunes" else 0.25 * (0.2 + 0.8 * t),
            light_x=sun_x,
        )
    return img


def _paint_city(sc: _Scene) -> np.ndarray:
    h, w, p, e = sc.h, sc.w, sc.pal, sc.energy
    rng = sc.rng("city")
    rain = sc.has("rain", "rainy", "storm", "wet")
    water = rain or sc.has("river", "water", "reflection", "harbor", "harbour", "bay", "lake")
    water = water or rng.random() < 0.4
    ground = h * (0.68 + 0.06 * rng.random()) if water else h * 1.02
    glow_col = _mix(p.dark, p.accent, 0.55)
    img = _sky(
        sc,
        [(0.0, p.deep * 0.7), (0.45 * ground / h, p.deep), (ground / h, glow_col)],
        sun=None,
        sun_colour=_mix(glow_col, p.light, 0.3),
        glow=0.0,
        clouds=0.5 + 0.4 * rng.random() if rain else 0.3 * rng.random(),
        cloud_top=0.0,
        cloud_bottom=ground / h - 0.05,
    )
    if not rain:
        _stars(sc, img, count=int(w * h / 4000), y_max=ground / h * 0.6, big=0, rng=rng)
        if rng.random() < 0.5:
            mx, my = w * (0.15 + 0.7 * rng.random()), h * (0.12 + 0.15 * rng.random())
            moon = _mix(p.bright, np.ones(3, np.float32), 0.7)
            halo = _sky_halo(sc, mx, my, h * 0.035, moon * 0.5)
            img += halo
            _disc(img, mx, my, h * 0.03, moon, crescent=0.5 * rng.random())
    neon_cols = [p.accent, p.accent2, _mix(p.accent, np.ones(3, np.float32), 0.3)]
    warm = np.array([1.0, 0.78, 0.45], np.float32)
    cool = np.array([0.72, 0.86, 1.0], np.float32)
    depths = 3
    for layer in range(depths):
        t = layer / (depths - 1)
        colour = _mix(_mix(glow_col, p.dark, 0.5), p.deep * 0.3, 0.2 + 0.8 * t**1.6)
        mask = np.zeros((h, w), dtype=np.uint8)
        win = np.zeros((h, w, 3), dtype=np.uint8)
        winmask = np.zeros((h, w), dtype=np.uint8)
        x = -w * 0.02 * rng.random()
        # Widths follow the longer side, so a portrait frame shows fewer, wider towers.
        unit = max(w, h)
        min_w, max_w = unit * (0.018 + 0.03 * t), unit * (0.045 + 0.07 * t)
        top_y = h
        # Buildings in one row merge into one silhouette; a tone per column (each
        # building a little lighter or darker, with a lit edge) keeps them apart.
        tone = np.ones(w, dtype=np.float32)
        neon_low = np.zeros((sc.lh, sc.lw, 3), dtype=np.float32)
        while x < w:
            bw = min_w + (max_w - min_w) * rng.random()
            tall = rng.random() ** 1.6
            bh = ground * (0.16 + 0.22 * t + (0.22 + 0.32 * t) * tall)
            x0, x1, y0 = int(x), int(x + bw), int(ground - bh)
            top_y = min(top_y, y0)
            cv2.rectangle(mask, (x0, y0), (x1, h), 255, -1)
            c0, c1 = max(0, x0), min(w, x1 + 1)
            tone[c0:c1] = 0.75 + 0.5 * rng.random()
            edge = max(1, w // 640)
            tone[c0 : min(w, c0 + edge)] += 0.5
            style = rng.random()
            if style < 0.25:  # stepped crown
                inset = int(bw * 0.2)
                cv2.rectangle(mask, (x0 + inset, int(y0 - bh * 0.08)), (x1 - inset, y0), 255, -1)
            elif style < 0.4:  # antenna
                ax = int(x0 + bw * (0.3 + 0.4 * rng.random()))
                cv2.line(mask, (ax, y0), (ax, int(y0 - bh * 0.18)), 255, max(1, h // 500))
            elif style < 0.5:  # spire
                tri = np.array([[x0, y0], [x1, y0], [(x0 + x1) / 2, y0 - bh * 0.2]], np.float32)
                cv2.fillPoly(mask, [np.round(tri * 8).astype(np.int32)], 255, cv2.LINE_AA, 3)
            if layer > 0:
                _windows(
                    rng,
                    win,
                    winmask,
                    x0=x0,
                    y0=y0,
                    x1=x1,
                    ground=ground,
                    h=h,
                    energy=e,
                    depth=t,
                    warm=warm,
                    cool=cool,
                    accent=p.accent,
                )
            if layer > 0 and rng.random() < (0.15 + 0.4 * e) * (1.5 - t):
                _neon_sign(
                    rng,
                    win,
                    winmask,
                    neon_low,
                    x0=x0,
                    y0=y0,
                    x1=x1,
                    ground=ground,
                    h=h,
                    colours=neon_cols,
                )
            x += bw + w * 0.004 * rng.random()
        y0 = max(0, top_y - int(h * 0.06))
        field = _vertical(h - y0, [(0.0, colour), (1.0, _mix(colour, glow_col, 0.35 * (1 - t)))])
        _over(img, field * tone[None, :, None], _to_float(mask, y0), y0)
        wf = _to_float(winmask, y0)
        _over(img, win[y0:].astype(np.float32) * np.float32(1 / 255), wf, y0)
        # Glow: a tight and a wide halo around the neon, a faint one around the windows.
        # It is added per row of buildings so that nearer buildings hide it.
        windows_low = _shrink(win, sc.lw, sc.lh).astype(np.float32) * np.float32(1 / 255)
        glow = cv2.GaussianBlur(neon_low, (0, 0), sc.lh / 90.0) * (0.8 + 0.8 * e)
        glow += cv2.GaussianBlur(neon_low, (0, 0), sc.lh / 25.0) * (0.6 + 0.6 * e)
        glow += cv2.GaussianBlur(windows_low, (0, 0), sc.lh / 60.0) * 0.35
        _screen_add(img, _resize(glow, w, h))
    if water and ground < h:
        _reflect(sc, img, int(ground), rain)
    if rain:
        _rain(sc, img, rng)
    return img


def _sky_halo(sc: _Scene, x: float, y: float, r: float, colour: np.ndarray) -> np.ndarray:
    d = _radial(sc.lh, sc.lw, x / 4.0, y / 4.0, max(r / 4.0, 1.0))
    halo = 0.5 * np.exp(-d / 1.5) + 0.5 * np.exp(-d / 6.0)
    return _resize((halo[..., None] * colour).astype(np.float32), sc.w, sc.h)


def _windows(
    rng: np.random.Generator,
    win: np.ndarray,
    winmask: np.ndarray,
    *,
    x0: int,
    y0: int,
    x1: int,
    ground: float,
    h: int,
    energy: float,
    depth: float,
    warm: np.ndarray,
    cool: np.ndarray,
    accent: np.ndarray,
) -> None:
    """Grid of windows on one building, a share of them lit."""
    size = max(1, round(h * (0.004 + 0.005 * depth)))
    pitch_x = size * 2 + max(1, round(size * rng.random()))
    pitch_y = size * 2 + 1
    margin = max(1, size)
    lit_p = (0.12 + 0.35 * energy) * (0.5 + 0.8 * rng.random())
    palette = (warm, warm, cool, _mix(accent, np.ones(3, np.float32), 0.5))
    base = palette[int(rng.integers(0, len(palette)))]
    ys = np.arange(y0 + margin * 2, int(ground) - size, pitch_y)
    xs = np.arange(x0 + margin, x1 - size - margin + 1, pitch_x)
    if ys.size == 0 or xs.size == 0:
        return
    lit = rng.random((ys.size, xs.size)) < lit_p
    # Lit windows come in clusters (whole floors on), like offices after dark.
    floors = rng.random(ys.size) < 0.12 + 0.1 * energy
    lit |= floors[:, None] & (rng.random((ys.size, xs.size)) < 0.8)
    levels = 0.55 + 0.45 * rng.random((ys.size, xs.size))
    shades = np.clip(levels[..., None] * base * 255.0, 0, 255).astype(int).tolist()
    for iy, ix in zip(*np.nonzero(lit), strict=True):
        c = tuple(shades[iy][ix])
        px, py = int(xs[ix]), int(ys[iy])
        cv2.rectangle(win, (px, py), (px + size - 1, py + size - 1), c, -1)
        cv2.rectangle(winmask, (px, py), (px + size - 1, py + size - 1), 255, -1)


def _neon_sign(
    rng: np.random.Generator,
    win: np.ndarray,
    winmask: np.ndarray,
    neon_low: np.ndarray,
    *,
    x0: int,
    y0: int,
    x1: int,
    ground: float,
    h: int,
    colours: Sequence[np.ndarray],
) -> None:
    """A vertical sign or a glowing roof line, drawn sharp and into the glow buffer."""
    col = colours[int(rng.integers(0, len(colours)))]
    c8 = tuple(int(v) for v in np.clip(_mix(col, np.ones(3, np.float32), 0.35) * 255, 0, 255))
    cf = tuple(float(v) for v in col)
    thick = max(1, h // 300)
    if rng.random() < 0.5:
        sw = max(3, int((x1 - x0) * 0.25))
        sx = int(x0 + (x1 - x0 - sw) * rng.random())
        sy = int(y0 + (ground - y0) * (0.1 + 0.3 * rng.random()))
        sh = int((ground - y0) * (0.2 + 0.25 * rng.random()))
        cv2.rectangle(win, (sx, sy), (sx + sw, sy + sh), c8, thick)
        cv2.rectangle(winmask, (sx, sy), (sx + sw, sy + sh), 255, thick)
        for k in range(1, 4):
            yy = sy + sh * k // 4
            cv2.line(win, (sx + thick * 2, yy), (sx + sw - thick * 2, yy), c8, thick)
            cv2.line(winmask, (sx + thick * 2, yy), (sx + sw - thick * 2, yy), 255, thick)
        box = (sx, sy, sx + sw, sy + sh)
    else:
        cv2.line(win, (x0, y0), (x1, y0), c8, thick * 2)
        cv2.line(winmask, (x0, y0), (x1, y0), 255, thick * 2)
        box = (x0, y0 - thick, x1, y0 + thick)
    q = 4.0
    cv2.rectangle(
        neon_low,
        (int(box[0] / q), int(box[1] / q)),
        (int(box[2] / q), int(box[3] / q)),
        cf,
        1,
    )


def _reflect(sc: _Scene, img: np.ndarray, ground: int, rain: bool) -> None:
    """Mirror the skyline into rippled water below ``ground``."""
    h, w = sc.h, sc.w
    rows = h - ground
    if rows < 2:
        return
    rng = sc.rng("ripples")
    depth = (np.arange(rows, dtype=np.float32) + 1.0)[:, None]
    ripple = _fbm(rng, max(2, rows // 4), sc.lw, cells=3.0, octaves=4, stretch=0.25)
    ripple = _resize(ripple, w, rows) - 0.5
    amp = (0.004 + 0.012 * sc.energy) * w
    map_x = np.arange(w, dtype=np.float32)[None, :] + ripple * amp * (0.3 + depth / rows)
    map_y = np.broadcast_to(ground - depth, (rows, w)).astype(np.float32)
    map_y = map_y + ripple * (depth / rows) * h * 0.01
    src = img[:ground]
    refl = cv2.remap(
        src, map_x.astype(np.float32), map_y, cv2.INTER_LINEAR, None, cv2.BORDER_REFLECT
    )
    k = max(3, (h // 80) | 1)
    refl = cv2.blur(refl, (max(1, k // 3), k * (2 if rain else 1)))
    water = _vertical(rows, [(0.0, sc.pal.dark * 0.8), (1.0, sc.pal.deep * 0.5)])
    fade = (0.75 - 0.35 * (depth / rows))[..., None]
    img[ground:] = refl * fade + water * (1.0 - fade)
    # A thin bright line where the water meets the city.
    line = max(1, h // 360)
    img[ground : ground + line] += _mix(sc.pal.accent, np.ones(3, np.float32), 0.5) * 0.12


def _rain(sc: _Scene, img: np.ndarray, rng: np.random.Generator) -> None:
    hh, hw = sc.hh, sc.hw
    layer = np.zeros((hh, hw), dtype=np.float32)
    count = int(hw * hh / 180 * (0.4 + sc.energy))
    xs = rng.random(count) * hw * 1.1
    ys = rng.random(count) * hh
    lengths = hh * (0.02 + 0.05 * rng.random(count))
    levels = 0.25 + 0.75 * rng.random(count)
    slant = 0.12
    for x, y, ln, lv in zip(xs, ys, lengths, levels, strict=True):
        p0 = (int(x * 8), int(y * 8))
        p1 = (int((x - ln * slant) * 8), int((y + ln) * 8))
        cv2.line(layer, p0, p1, float(lv), 1, cv2.LINE_AA, shift=3)
    layer = cv2.GaussianBlur(layer, (0, 0), 0.6)
    tint = _mix(sc.pal.light, np.ones(3, np.float32), 0.5) * (0.10 + 0.08 * sc.energy)
    _screen_add(img, _resize(layer, sc.w, sc.h, cubic=False)[..., None] * tint)


def _paint_ocean(sc: _Scene) -> np.ndarray:
    h, w, p, e = sc.h, sc.w, sc.pal, sc.energy
    rng = sc.rng("ocean")
    horizon = int(h * (0.5 + 0.1 * rng.random()))
    sun_x = w * (0.3 + 0.4 * rng.random())
    sun_r = h * (0.035 + 0.03 * rng.random())
    sun_y = horizon - h * (0.03 + 0.18 * rng.random())
    night = sc.has("night", "moon", "moonlight", "midnight")
    sun_col = _mix(p.bright, np.array([1.0, 0.96, 0.88], np.float32), 0.55)
    hz_col = _mix(p.light, p.bright, 0.5) if not night else _mix(p.dark, p.mid, 0.5)
    stops = [(0.0, _mix(p.dark, p.deep, 0.4)), (horizon / h * 0.6, p.mid), (horizon / h, hz_col)]
    stops.append((1.0, hz_col))
    img = _sky(
        sc,
        stops,
        sun=(sun_x, sun_y, sun_r),
        sun_colour=sun_col,
        glow=0.4 + 0.3 * e,
        clouds=0.2 + 0.7 * rng.random(),
        cloud_top=0.0,
        cloud_bottom=horizon / h - 0.04,
    )
    if night:
        _stars(sc, img, count=int(w * h / 1200), y_max=horizon / h, big=4, rng=rng)
    _disc(img, sun_x, sun_y, sun_r, np.minimum(sun_col * 1.15, 1.2), crescent=0.0)
    if rng.random() < 0.6:  # distant islands on the horizon
        prof = _ridge(rng, 256, "hills", 0.6)
        isl = np.clip((prof - 0.45) / 0.55, 0.0, 1.0) ** 0.7
        _terrain_layer(
            sc,
            img,
            isl,
            base_y=horizon + 1,
            amplitude=h * (0.02 + 0.04 * rng.random()),
            top_colour=_mix(hz_col, p.deep, 0.55),
            haze_colour=_mix(hz_col, p.deep, 0.45),
            fog=0.0,
            shade=0.0,
            light_x=sun_x,
        )
    img[horizon:] = _sea(
        sc, horizon=horizon, sun_x=sun_x, sun_y=sun_y, sun_r=sun_r, sun_col=sun_col, hz_col=hz_col
    )
    img[horizon : horizon + max(1, h // 540)] += hz_col * 0.15
    return img


def _sea(
    sc: _Scene,
    *,
    horizon: int,
    sun_x: float,
    sun_y: float,
    sun_r: float,
    sun_col: np.ndarray,
    hz_col: np.ndarray,
) -> np.ndarray:
    """The sea below ``horizon``: a wave texture seen in perspective, painted at half size.

    Far rows sample the texture sparsely, so they read from blurred copies of it (a
    small mip chain) to keep the horizon free of aliasing shimmer.
    """
    h, w, p, e = sc.h, sc.w, sc.pal, sc.energy
    hh, hw = sc.hh, sc.hw
    rows = max(2, hh - horizon // 2)
    wave_rng = sc.rng("waves")
    tex_h, tex_w = 384, 1024
    tex = _fbm(wave_rng, tex_h, tex_w, cells=6.0, octaves=6, stretch=3.5, gain=0.55)
    crest = (1.0 - np.abs(2.0 * tex - 1.0)) ** 5
    t = (np.arange(rows, dtype=np.float32) + 0.6)[:, None] / rows
    xs = (np.arange(hw, dtype=np.float32)[None, :] - hw / 2.0) / (hh * 16.0 / 9.0)
    depth = 1.0 / (t + 0.06)
    map_x = (xs * depth * 420.0 + tex_w / 2.0).astype(np.float32)
    map_y = np.broadcast_to(depth * 120.0, (rows, hw)).astype(np.float32)
    near = _smoothstep(0.02, 0.45, t)

    def sample(field: np.ndarray) -> np.ndarray:
        blurred = [field, cv2.GaussianBlur(field, (0, 0), 2.5), cv2.GaussianBlur(field, (0, 0), 9)]
        got = [
            cv2.remap(b, map_x, map_y, cv2.INTER_LINEAR, None, cv2.BORDER_REFLECT_101)
            for b in blurred
        ]
        mid = _smoothstep(0.0, 0.12, t)
        far_mix = got[2] + (got[1] - got[2]) * mid
        return far_mix + (got[0] - far_mix) * near

    waves = sample(tex)
    crests = sample(crest)
    # Fresnel: the sea mirrors the sky near the horizon and shows its own colour close by.
    base = _vertical(rows, [(0.0, _mix(hz_col, p.mid, 0.35)), (0.3, p.dark), (1.0, p.deep)])
    chop = (0.35 + 0.25 * e) * (0.25 + 0.75 * near)
    sea = base * (1.0 + (waves - 0.5) * chop * 1.5)[..., None]
    sea += (crests * (0.15 + 0.35 * e) * (0.3 + 0.7 * (1.0 - t)))[..., None] * hz_col
    sx = sun_x / 2.0
    spread = hw * (0.02 + 0.11 * t) * (sun_r / (h * 0.05)) ** 0.5
    column = np.exp(-(((np.arange(hw, dtype=np.float32)[None, :] - sx) / spread) ** 2))
    glitter = _smoothstep(0.25, 0.7, crests + (waves - 0.5))
    elev = 1.0 - np.clip((horizon - sun_y) / (h * 0.45), 0.0, 0.75)
    path = column * (0.15 + 1.4 * glitter) * elev * (0.55 + 0.6 * e)
    sea += path[..., None] * sun_col
    if e > 0.45:  # whitecaps when the music pushes
        foam = _smoothstep(0.55, 0.85, crests) * _smoothstep(0.25, 1.0, t) * (e - 0.45) * 1.4
        sea += foam[..., None] * _mix(p.bright, np.ones(3, np.float32), 0.6)
    return _resize(sea.astype(np.float32), w, h - horizon)


def _paint_space(sc: _Scene) -> np.ndarray:
    h, w, p, e = sc.h, sc.w, sc.pal, sc.energy
    rng = sc.rng("space")
    hh, hw = sc.hh, sc.hw
    nrng = sc.rng("nebula")
    wx = _fbm(nrng, hh, hw, cells=1.5, octaves=3)
    wy = _fbm(nrng, hh, hw, cells=1.5, octaves=3)
    warp = min(hh, hw) * (0.35 + 0.25 * e)
    map_x = np.arange(hw, dtype=np.float32)[None, :] + (wx - 0.5) * warp
    map_y = np.arange(hh, dtype=np.float32)[:, None] + (wy - 0.5) * warp
    map_x, map_y = map_x.astype(np.float32), map_y.astype(np.float32)
    dens = _fbm(nrng, hh, hw, cells=2.0, octaves=6, gain=0.55)
    fil = _fbm(nrng, hh, hw, cells=3.0, octaves=5)
    hue = _fbm(nrng, hh, hw, cells=1.0, octaves=3)
    dust = _fbm(nrng, hh, hw, cells=2.5, octaves=5)
    dens = cv2.remap(dens, map_x, map_y, cv2.INTER_LINEAR, None, cv2.BORDER_REFLECT)
    fil = cv2.remap(fil, map_x, map_y, cv2.INTER_LINEAR, None, cv2.BORDER_REFLECT)
    # A broad cloud shape so the nebula has a body and a dark surround.
    body_x, body_y = hw * (0.3 + 0.4 * rng.random()), hh * (0.3 + 0.4 * rng.random())
    body = np.exp(-(_radial(hh, hw, body_x, body_y, min(hh, hw) * 0.75) ** 2))
    d = _smoothstep(0.35, 0.85, dens * (0.55 + 0.6 * body)) ** 1.3
    filaments = (1.0 - np.abs(2.0 * fil - 1.0)) ** 8 * _smoothstep(0.2, 0.7, dens)
    colour = _gradient(hue, [p.dark, p.mid, p.accent, p.accent2, p.light])
    neb = colour * (d * (0.7 + 0.45 * e))[..., None]
    neb += colour * (filaments * (0.5 + 0.6 * e))[..., None]
    neb += _mix(p.bright, np.ones(3, np.float32), 0.4) * (d**3 * (0.3 + 0.3 * e))[..., None]
    neb *= (1.0 - 0.75 * _smoothstep(0.55, 0.78, dust))[..., None]
    base = _gradient(body, [p.deep * 0.25, p.deep * 0.8])
    img = _resize((base + neb).astype(np.float32), w, h)
    _stars(sc, img, count=int(w * h / 350 * (0.5 + e)), y_max=1.0, big=int(6 + 10 * e), rng=rng)
    if rng.random() < 0.7 or sc.has("planet", "planets", "moon", "orbit"):
        _planet(sc, img, sc.rng("planet"))
    return img


def _planet(sc: _Scene, img: np.ndarray, rng: np.random.Generator) -> None:
    h, w, p = sc.h, sc.w, sc.pal
    r = min(h, w) * (0.12 + 0.25 * rng.random())
    corner = int(rng.integers(0, 4))
    cx = w * (0.18 if corner % 2 == 0 else 0.82) + (rng.random() - 0.5) * w * 0.1
    cy = h * (0.25 if corner < 2 else 0.78) + (rng.random() - 0.5) * h * 0.1
    if r > h * 0.28:  # a big planet sits partly off the frame
        cy = h * (1.0 + 0.2 * rng.random()) if corner >= 2 else -r * 0.3
    ext = r * 1.35
    x0, x1 = max(0, int(cx - ext)), min(w, int(cx + ext) + 1)
    y0, y1 = max(0, int(cy - ext)), min(h, int(cy + ext) + 1)
    if x0 >= x1 or y0 >= y1:
        return
    dx = (np.arange(x0, x1, dtype=np.float32)[None, :] - cx) / r
    dy = (np.arange(y0, y1, dtype=np.float32)[:, None] - cy) / r
    rr = dx * dx + dy * dy
    dist = np.sqrt(rr)
    nz = np.sqrt(np.clip(1.0 - rr, 0.0, 1.0))
    ang = rng.random() * math.tau
    light = np.array([math.cos(ang) * 0.8, math.sin(ang) * 0.6, 0.45], np.float32)
    light /= float(np.linalg.norm(light))
    lambert = np.clip(dx * light[0] + dy * light[1] + nz * light[2], 0.0, 1.0)
    bh, bw = y1 - y0, x1 - x0
    turb = _resize(_fbm(rng, max(4, bh // 4), max(4, bw // 4), cells=3.0, octaves=4), bw, bh)
    bands_n = 1024
    bands = _noise1d(rng, bands_n, 10, 4)
    lat = np.clip((dy + (turb - 0.5) * 0.25 + 1.0) * 0.5, 0.0, 1.0)
    surf_t = np.interp(lat, np.linspace(0, 1, bands_n), bands)
    surf = _gradient(surf_t.astype(np.float32), [p.deep, p.dark, p.mid, p.light, p.accent])
    shade = (0.03 + 1.05 * lambert**0.9)[..., None]
    rim = ((1.0 - nz) ** 3 * (0.3 + lambert))[..., None]
    atmo = _mix(p.accent, p.bright, 0.4)
    body = surf * shade + atmo * rim * 0.6
    alpha = np.clip((1.0 - dist) * r + 0.5, 0.0, 1.0)
    region = img[y0:y1, x0:x1]
    facing = np.clip(dx * light[0] + dy * light[1] + 0.3, 0.0, 1.0)
    halo = np.exp(-np.clip(dist - 1.0, 0.0, None) * 14.0) * (1.0 - alpha) * facing
    region *= (1.0 - alpha * 0.97)[..., None]
    region += halo[..., None] * atmo * 0.7
    _over(region, body, alpha)
    if rng.random() < 0.45 or sc.has("ring", "rings", "ringed", "saturn"):
        ring_col = _mix(p.light, p.bright, 0.5)
        _ring(region, dx=dx, dy=dy, r=r, dist=dist, lambert=lambert, colour=ring_col, rng=rng)


def _ring(
    region: np.ndarray,
    *,
    dx: np.ndarray,
    dy: np.ndarray,
    r: float,
    dist: np.ndarray,
    lambert: np.ndarray,
    colour: np.ndarray,
    rng: np.random.Generator,
) -> None:
    tilt = 0.18 + 0.2 * rng.random()
    ca, sa = math.cos(0.35 * (rng.random() - 0.5)), math.sin(0.35 * (rng.random() - 0.5))
    u = dx * ca + dy * sa
    v = (-dx * sa + dy * ca) / tilt
    rad = np.sqrt(u * u + v * v)
    inner, outer = 1.25, 1.9
    px = 1.0 / (r * tilt)
    band = np.clip((rad - inner) / px, 0, 1) * np.clip((outer - rad) / px, 0, 1)
    grooves = 0.6 + 0.4 * np.cos(rad * 38.0) * np.cos(rad * 11.0)
    # The ring's far half passes behind the planet.
    behind = (v < 0) & (dist < 1.0)
    band = np.where(behind, 0.0, band * grooves * 0.75).astype(np.float32)
    _over(region, colour * (0.5 + 0.5 * np.clip(lambert + 0.4, 0, 1))[..., None], band)


def _paint_abstract(sc: _Scene) -> np.ndarray:
    h, w, p, e = sc.h, sc.w, sc.pal, sc.energy
    rng = sc.rng("abstract")
    lh, lw = sc.lh, sc.lw
    # Background: a diagonal two-colour field, bent by noise.
    ang = rng.random() * math.tau
    ys = np.linspace(-0.5, 0.5, lh, dtype=np.float32)[:, None] * (lh / lw)
    xs = np.linspace(-0.5, 0.5, lw, dtype=np.float32)[None, :]
    proj = xs * math.cos(ang) + ys * math.sin(ang)
    bend = _fbm(sc.rng("bend"), lh, lw, cells=1.2, octaves=3)
    grad_t = np.clip(proj + 0.5 + (bend - 0.5) * 0.6, 0.0, 1.0)
    bg = _gradient(grad_t, [p.deep, p.dark, _mix(p.dark, p.accent2, 0.45)])
    img = _resize(bg, w, h)
    style = "geometric" if sc.has("geometric", "geometry", "shape", "shapes") else ""
    if not style:
        style = ("ribbons", "ribbons", "geometric")[int(rng.integers(0, 3))]
    if sc.has("ribbon", "ribbons", "flow", "flowing", "silk", "liquid"):
        style = "ribbons"
    if style == "ribbons":
        _ribbons(sc, img, rng)
    else:
        _geometric(sc, img, rng)
    _bokeh(sc, img, sc.rng("bokeh"), count=int(14 + 50 * e))
    return img


def _ribbons(sc: _Scene, img: np.ndarray, rng: np.random.Generator) -> None:
    p, e = sc.pal, sc.energy
    hh, hw = sc.hh, sc.hw
    acc = np.zeros((hh, hw, 3), dtype=np.float32)
    xs = np.linspace(0.0, 1.0, hw, dtype=np.float32)
    ys = np.arange(hh, dtype=np.float32)[:, None]
    colours = [p.accent, p.accent2, p.light, p.bright, p.mid]
    count = 2 + round(2 * e + rng.random())
    for i in range(count):
        f1, f2 = 0.6 + 1.4 * rng.random(), 1.5 + 2.0 * rng.random()
        ph1, ph2 = rng.random() * math.tau, rng.random() * math.tau
        y_mid = hh * (0.25 + 0.5 * rng.random())
        centre = y_mid + hh * (
            0.18 * np.sin(math.tau * f1 * xs + ph1) + 0.06 * np.sin(math.tau * f2 * xs + ph2)
        )
        twist = np.sin(math.tau * (0.4 + 0.8 * rng.random()) * xs + rng.random() * math.tau)
        width = hh * (0.04 + 0.08 * rng.random()) * (0.25 + 0.75 * np.abs(twist))
        d = (ys - centre[None, :]) / width[None, :]
        strands = 0.55 + 0.45 * np.cos(d * (7.0 + 5.0 * rng.random())) ** 2
        body = np.exp(-d * d * 1.4) * strands
        edge = np.exp(-((np.abs(d) - 1.0) ** 2) * 10.0) * 0.5
        fade = 0.35 + 0.65 * np.sqrt(np.clip(np.sin(math.pi * xs), 0.0, 1.0))
        inten = (body + edge) * fade[None, :] * (0.45 + 0.5 * e)
        acc += inten[..., None] * colours[i % len(colours)]
    _screen_add(img, _resize(acc, sc.w, sc.h))


def _geometric(sc: _Scene, img: np.ndarray, rng: np.random.Generator) -> None:
    """Translucent polygons and discs with soft drop shadows, some as glowing frames."""
    h, w, p, e = sc.h, sc.w, sc.pal, sc.energy
    count = 4 + round(6 * e)
    colours = [p.accent, p.accent2, p.light, p.mid, p.bright]
    unit = min(h, w)
    shadow_off = np.array([0.012 * unit, 0.02 * unit], np.float32)
    glow_low = np.zeros((sc.lh, sc.lw, 3), dtype=np.float32)
    # Shapes gather along a gentle diagonal so the frame has a direction to read.
    slope = (rng.random() - 0.5) * 0.8
    for i in range(count):
        cx = w * (0.05 + 0.9 * rng.random())
        cy = h * (0.5 + slope * (cx / w - 0.5)) + h * 0.28 * (rng.random() - 0.5) * 2.0
        size = unit * (0.06 + 0.2 * rng.random()) * (1.0 - 0.4 * i / count)
        sides = (3, 4, 6, 0)[int(rng.integers(0, 4))]
        rot = rng.random() * math.tau
        n_pts = sides or 72
        angles = rot + np.arange(n_pts) * math.tau / n_pts
        pts = np.stack([cx + size * np.cos(angles), cy + size * np.sin(angles)], 1)
        pts = pts.astype(np.float32)
        x0 = int(max(0, pts[:, 0].min() - size * 0.5))
        x1 = int(min(w, pts[:, 0].max() + size * 0.5 + shadow_off[0] * 2))
        y0 = int(max(0, pts[:, 1].min() - size * 0.5))
        y1 = int(min(h, pts[:, 1].max() + size * 0.5 + shadow_off[1] * 2))
        if x1 - x0 < 2 or y1 - y0 < 2:
            continue
        local = pts - np.array([x0, y0], np.float32)
        bh, bw = y1 - y0, x1 - x0
        shape = _to_float(_poly_mask(bh, bw, [local]))
        col = colours[i % len(colours)]
        col2 = colours[(i + 2) % len(colours)]
        frame = rng.random() < 0.35
        if frame:  # an outline only: a glowing frame
            centre = np.array([cx - x0, cy - y0], np.float32)
            inner = _to_float(_poly_mask(bh, bw, [centre + (local - centre) * 0.88]))
            shape = np.clip(shape - inner, 0.0, 1.0)
            lo = (local + np.array([x0, y0], np.float32)) / 4.0
            cv2.polylines(
                glow_low,
                [np.round(lo * 8).astype(np.int32)],
                True,
                tuple(float(c) for c in col),
                1,
                cv2.LINE_AA,
                3,
            )
        else:
            shadow = _to_float(_poly_mask(bh, bw, [local + shadow_off]))
            shadow = cv2.GaussianBlur(shadow, (0, 0), size * 0.12 + 1.0)
            img[y0:y1, x0:x1] *= (1.0 - 0.5 * shadow)[..., None]
        region = img[y0:y1, x0:x1]
        yy = np.linspace(0.0, 1.0, bh, dtype=np.float32)[:, None, None]
        xx = np.linspace(0.0, 1.0, bw, dtype=np.float32)[None, :, None]
        fill = col + (col2 - col) * (0.6 * yy + 0.4 * xx)
        fill = fill * (1.1 - 0.35 * yy) * (0.75 + 0.35 * e)
        alpha = 1.0 if frame else 0.55 + 0.4 * rng.random()
        _over(region, fill, shape * alpha)
    glow = cv2.GaussianBlur(glow_low, (0, 0), sc.lh / 80.0) * (1.5 + 1.5 * e)
    _screen_add(img, _resize(glow, w, h))


def _bokeh(sc: _Scene, img: np.ndarray, rng: np.random.Generator, *, count: int) -> None:
    """Out-of-focus light discs with brighter rims, additive, in two depths."""
    p, e = sc.pal, sc.energy
    hh, hw = sc.hh, sc.hw
    acc = np.zeros((hh, hw, 3), dtype=np.float32)
    colours = [p.bright, p.light, p.accent, p.accent2]
    for i in range(count):
        r = min(hh, hw) * (0.015 + 0.07 * rng.random() ** 2)
        cx, cy = hw * rng.random(), hh * rng.random()
        x0, x1 = max(0, int(cx - r - 2)), min(hw, int(cx + r + 3))
        y0, y1 = max(0, int(cy - r - 2)), min(hh, int(cy + r + 3))
        if x0 >= x1 or y0 >= y1:
            continue
        xs = np.arange(x0, x1, dtype=np.float32)[None, :] - cx
        ys = np.arange(y0, y1, dtype=np.float32)[:, None] - cy
        d = np.sqrt(xs * xs + ys * ys) / r
        soft = 1.0 + 3.0 * rng.random()  # edge softness in pixels
        disc = np.clip((1.0 - d) * r / soft, 0.0, 1.0)
        rim = 1.0 + 0.5 * d**4
        level = (0.06 + 0.22 * rng.random()) * (0.6 + 0.8 * e)
        col = colours[i % len(colours)]
        acc[y0:y1, x0:x1] += (disc * rim * level)[..., None] * col
    _screen_add(img, _resize(acc, sc.w, sc.h))


def _conifer(
    rng: np.random.Generator, x: float, base: float, height: float, width: float
) -> np.ndarray:
    """Outline of a fir tree: a trunk under jagged tiers of branches."""
    tiers = 9 + int(rng.integers(0, 6))
    top = base - height
    left: list[tuple[float, float]] = []
    right: list[tuple[float, float]] = []
    for k in range(tiers + 1):
        f = k / tiers
        y = top + f * height * 0.96
        half = width * 0.5 * f**0.9 * (0.85 + 0.3 * rng.random())
        droop = height * 0.03
        left.append((x - half, y + droop))
        left.append((x - half * 0.45, y + droop * 0.2))
        right.append((x + half, y + droop))
        right.append((x + half * 0.45, y + droop * 0.2))
    trunk = width * 0.05 + 1.0
    outline = [(x, top)]
    outline += right
    outline += [(x + trunk, base - height * 0.02), (x + trunk, base + 4), (x - trunk, base + 4)]
    outline += [(x - trunk, base - height * 0.02)]
    outline += left[::-1]
    return np.array(outline, dtype=np.float32)


def _paint_forest(sc: _Scene) -> np.ndarray:
    h, w, p, e = sc.h, sc.w, sc.pal, sc.energy
    rng = sc.rng("forest")
    light_x = w * (0.25 + 0.5 * rng.random())
    light_y = -h * 0.05 + h * 0.2 * rng.random()
    fog_col = _mix(p.light, p.bright, 0.5)
    sun_col = _mix(p.bright, np.array([1.0, 0.95, 0.8], np.float32), 0.5)
    img = _sky(
        sc,
        [(0.0, _mix(p.mid, p.light, 0.5)), (0.5, fog_col), (1.0, _mix(fog_col, p.mid, 0.4))],
        sun=(light_x, light_y, h * 0.08),
        sun_colour=sun_col,
        glow=0.45 + 0.25 * e,
        clouds=0.0,
        cloud_top=0.0,
        cloud_bottom=0.0,
    )
    layers = 4
    ground = h * (0.9 + 0.05 * rng.random())
    # Trees are sized by the height; in a portrait frame they are slimmer and shorter so
    # the nearest row does not close the frame into one dark mass.
    slim = min(1.0, (w / h) / (16.0 / 9.0)) ** 0.5
    size = 0.55 + 0.45 * slim
    rays = _god_rays(sc, light_x, light_y, sun_col)
    for layer in range(layers):
        t = layer / (layers - 1)
        colour = _mix(_mix(fog_col, p.mid, 0.45), p.deep * 0.4, t**0.9)
        base = ground - h * (0.25 - 0.25 * t) + h * 0.05 * t
        tree_h = h * (0.22 + 0.55 * t**1.2) * size
        spacing = tree_h * 0.38 * slim * 0.7 / (0.7 + 0.6 * e)
        polys: list[np.ndarray] = []
        x = -spacing * rng.random()
        while x < w + spacing:
            th = tree_h * (0.6 + 0.6 * rng.random())
            tree_w = th * 0.38 * slim
            polys.append(_conifer(rng, x, base + h * 0.03 * rng.random(), th, tree_w))
            x += spacing * (0.5 + 0.9 * rng.random())
        # Undergrowth: a bushy band that merges the trees' lowest branches.
        hill = _ridge(rng, 256, "hills", 1.0)
        xs = np.linspace(-2, w + 2, 256, dtype=np.float32)
        gy = base - tree_h * (0.1 + 0.12 * hill)
        polys.append(np.concatenate([np.stack([xs, gy], 1), [[w + 2, h + 2], [-2, h + 2]]]))
        mask = _poly_mask(h, w, [q.astype(np.float32) for q in polys])
        y0 = max(0, int(base - tree_h * 1.25) - 2)
        fade = _mix(colour, fog_col, 0.3 * (1 - t))
        field = _vertical(h - y0, [(0.0, colour), (0.7, fade), (1.0, _mix(fade, fog_col, 0.3))])
        _over(img, field, _to_float(mask, y0), y0)
        if layer == 1:
            _screen_add(img, rays)
        if layer < layers - 1:  # mist between the rows of trees
            mist = _fbm(sc.rng(f"mist{layer}"), sc.lh, sc.lw, cells=1.5, octaves=4, stretch=4.0)
            ys = (np.arange(sc.lh, dtype=np.float32)[:, None] * 4.0 - base) / h
            band = np.exp(-(((ys + 0.03) / 0.1) ** 2)) * _smoothstep(0.3, 0.7, mist) * 0.75
            _over(img, fog_col, _resize(band.astype(np.float32), w, h))
    return img


def _god_rays(sc: _Scene, lx: float, ly: float, colour: np.ndarray) -> np.ndarray:
    """Shafts of light fanning down from ``(lx, ly)``, as an additive full-size layer."""
    lh, lw = sc.lh, sc.lw
    rng = sc.rng("rays")
    ys = np.arange(lh, dtype=np.float32)[:, None] * 4.0 - ly
    xs = np.arange(lw, dtype=np.float32)[None, :] * 4.0 - lx
    ang = np.arctan2(xs, ys)  # 0 straight down
    n = 720
    profile = _noise1d(rng, n, 60, 3)
    profile = _smoothstep(0.45, 0.8, profile) ** 1.5
    shafts = np.interp(ang, np.linspace(-math.pi, math.pi, n), profile)
    dist = np.sqrt(xs * xs + ys * ys) / sc.h
    fall = np.exp(-dist * 1.6) * _smoothstep(0.0, 0.15, dist)
    strength = 0.25 + 0.45 * sc.energy
    rays = (shafts * fall * strength)[..., None] * colour
    return _resize(rays.astype(np.float32), sc.w, sc.h)


_PAINTERS = {
    "landscape": _paint_landscape,
    "city": _paint_city,
    "ocean": _paint_ocean,
    "space": _paint_space,
    "abstract": _paint_abstract,
    "forest": _paint_forest,
}


# ------------------------------------------------------------------------ finish


def _finish(sc: _Scene, img: np.ndarray) -> np.ndarray:
    """Bloom, grade, vignette, grain, then dithered quantisation to uint8."""
    h, w, e, p = sc.h, sc.w, sc.energy, sc.pal
    lh, lw = sc.lh, sc.lw
    small = _shrink(img, lw, lh)
    bright = np.clip(small - 0.7, 0.0, None)
    bloom = cv2.GaussianBlur(bright, (0, 0), lh / 60.0) * 0.6
    bloom += cv2.GaussianBlur(bright, (0, 0), lh / 14.0) * 0.8
    # The vignette is smooth too, so it rides along at quarter size.
    d = _radial(lh, lw, lw / 2.0, lh / 2.0, math.hypot(lw, lh) / 2.0)
    vignette = 1.0 - (0.22 + 0.12 * (1.0 - e)) * _smoothstep(0.35, 1.05, d)
    lowres = np.concatenate([bloom * (0.3 + 0.35 * e), vignette[..., None]], axis=2)
    lowres = _resize(lowres.astype(np.float32), w, h)
    img += lowres[..., :3]

    # Grade as one affine colour transform: exposure, saturation, contrast, split tone.
    exposure = 0.9 + 0.12 * e + sc.exposure
    saturation = 0.72 + 0.6 * e
    contrast = 0.86 + 0.42 * e
    pivot = 0.42
    grey = np.outer(np.ones(3, np.float32), _LUMA)
    sat_m = grey + saturation * (np.eye(3, dtype=np.float32) - grey)
    matrix = contrast * exposure * sat_m
    shadow_tint = (p.deep - _luma(p.deep)) * 0.35
    offset = pivot * (1.0 - contrast) + shadow_tint * (1.0 - contrast * 0.5)
    affine = np.concatenate([matrix, offset[:, None]], axis=1).astype(np.float32)
    img = cv2.transform(img, affine)
    img *= lowres[..., 3:4]

    # Soft shoulder: highlights roll off instead of clipping (glows stay round).
    np.maximum(img, 0.0, out=img)
    over = img - 0.78
    np.maximum(over, 0.0, out=over)
    img -= over
    img += 0.22 * (1.0 - np.exp(-over / 0.22))

    # Film grain, stronger in the mid-tones; it also dithers away banding.
    grain_rng = sc.rng("grain")
    grain = grain_rng.standard_normal((h, w), dtype=np.float32)
    grain *= np.float32((0.010 + 0.012 * e) * 255.0)
    img *= 255.0
    img += grain[..., None]
    img += grain_rng.random((h, w, 1), dtype=np.float32) - 0.5
    np.clip(img, 0.0, 255.0, out=img)
    return (img + 0.5).astype(np.uint8)


class ProceduralBackend:
    """Paints draft stills from the prompt, palette and energy: fast and deterministic.

    Attributes
    ----------
    name : str
        ``"procedural"``.
    is_draft : bool
        Always ``True``: these stills are drafts, not Stable Diffusion renders.

    Examples
    --------
    >>> backend = ProceduralBackend()
    >>> still = backend.generate(
    ...     StillRequest(prompt="misty pine forest", seed=7, width=320, height=180)
    ... )
    >>> still.shape, still.dtype
    ((180, 320, 3), dtype('uint8'))
    """

    name: str = "procedural"
    is_draft: bool = True

    def generate(self, request: StillRequest) -> np.ndarray:
        """Paint one still.

        Parameters
        ----------
        request : StillRequest
            What to paint.  An empty palette means "pick one from the prompt".

        Returns
        -------
        numpy.ndarray
            ``(request.height, request.width, 3)`` uint8 RGB.  Equal requests give
            bit-identical arrays.
        """
        started = time.perf_counter()
        family = composition_for_prompt(request.prompt, request.seed)
        scene = self._scene(request)
        img = _PAINTERS[family](scene)
        out = _finish(scene, img)
        logger.debug(
            "procedural still %dx%d family=%s energy=%.2f section=%r in %.3fs",
            request.width,
            request.height,
            family,
            request.energy,
            request.section,
            time.perf_counter() - started,
        )
        return out

    @staticmethod
    def _scene(request: StillRequest) -> _Scene:
        palette = request.palette or palette_from_prompt(request.prompt)
        energy_bias, exposure_bias = _SECTION_BIAS.get(request.section.strip().lower(), (0, 0))
        energy = float(np.clip(request.energy + energy_bias, 0.0, 1.0))
        return _Scene(
            h=request.height,
            w=request.width,
            energy=energy,
            exposure=exposure_bias,
            pal=_Palette.from_rgb(palette),
            words=frozenset(prompt_words(request.prompt)),
            entropy=_entropy(request.seed, request.prompt),
        )
