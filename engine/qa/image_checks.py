"""Still-image QC: resolution, sharpness, noise, exposure, contrast, banding, blocking,
colour cast and legal levels, each scored 0..1, plus located artifacts.

The measures are classical and documented in docs/quality-control.md:

- sharpness: variance of the Laplacian of the luma, computed at a fixed 1024-pixel long
  side so that it does not depend on the image's size;
- noise: Immerkær's fast noise estimate (sigma of Gaussian noise, 8-bit code values);
- blocking: mean absolute luma step across the 8x8 grid divided by the step inside the
  blocks (1.0 for a clean picture; JPEG/MPEG blocking raises it);
- banding: the share of smooth-gradient area where the luma jumps by 3 or more code values
  between flat runs (contouring), where an 8-bit ramp would step by one;
- colour cast: mean a*/b* (CIELAB) of the near-neutral pixels.
"""

from __future__ import annotations

import logging
import math
import re
from pathlib import Path
from typing import Any

import numpy as np

from engine.errors import MediaInputError, ParameterError
from engine.qa.report import Artifact, QualityIssue, QualityReport

__all__ = ["IMAGE_TARGETS", "detect_image_artifacts", "measure_image", "validate_image"]

log = logging.getLogger(__name__)

# Standard names an image can be held to: the delivery size it must reach.
IMAGE_TARGETS: dict[str, tuple[int, int]] = {
    "draft": (640, 360),
    "web": (1920, 1080),
    "hd": (1920, 1080),
    "broadcast": (1920, 1080),
    "uhd": (3840, 2160),
    "cinema": (3840, 2160),
}
_SIZE = re.compile(r"^(\d+)x(\d+)$")

SHARPNESS_BLURRY = 50.0  # variance of the Laplacian at 1024 px
NOISE_HIGH = 6.0  # sigma, 8-bit codes
BLOCKING_HIGH = 1.5  # boundary / interior step ratio
BANDING_HIGH = 0.005  # share of smooth-gradient area on staircase steps
CLIP_HIGH = 0.02  # share of pixels at 0 or 255 luma
CONTRAST_LOW = 0.08  # RMS contrast, 0..1
CAST_HIGH = 8.0  # a*/b* units
LEGAL_HIGH = 0.01  # share of pixels outside 16-235 (broadcast-safe stills)
_TILE = 64


def _targets(standards: list[str] | tuple[str, ...] | None) -> list[tuple[str, int, int]]:
    out = []
    for name in standards or ():
        key = str(name).lower()
        match = _SIZE.match(key)
        if match:
            out.append((key, int(match[1]), int(match[2])))
        elif key in IMAGE_TARGETS:
            out.append((key, *IMAGE_TARGETS[key]))
        else:
            raise ParameterError(
                "standards", name, f"one of {', '.join(IMAGE_TARGETS)} or WIDTHxHEIGHT"
            )
    return out


def load_rgb(image: Path | str | np.ndarray) -> tuple[np.ndarray, Path | None]:
    """An RGB uint8 array from a path or an array (gray or RGBA accepted).

    Raises
    ------
    MediaInputError
        Missing, unreadable, 0x0 or wrongly shaped image.
    """
    if isinstance(image, np.ndarray):
        array, path = image, None
        where: Path | str = "<array>"
    else:
        from engine.generation.image_io import read_image_safely

        path = Path(image)
        where = path
        array = read_image_safely(path)
    if array.ndim == 2:
        array = np.repeat(array[:, :, None], 3, axis=2)
    if array.ndim != 3 or array.shape[2] not in (3, 4):
        raise MediaInputError(where, f"has shape {array.shape}; expected (height, width, 3)")
    if array.shape[0] == 0 or array.shape[1] == 0:
        raise MediaInputError(where, f"is empty ({array.shape[1]}x{array.shape[0]} pixels)")
    if array.dtype != np.uint8:
        if np.issubdtype(array.dtype, np.floating):
            array = (np.clip(array, 0, 1) * 255 + 0.5).astype(np.uint8)
        else:
            array = np.clip(array, 0, 255).astype(np.uint8)
    return np.ascontiguousarray(array[:, :, :3]), path


def _luma(rgb: np.ndarray) -> np.ndarray:
    """BT.709 luma of full-range RGB, float32 0..255."""
    f = rgb.astype(np.float32)
    return 0.2126 * f[:, :, 0] + 0.7152 * f[:, :, 1] + 0.0722 * f[:, :, 2]


def sharpness(gray: np.ndarray) -> float:
    """Variance of the Laplacian at a 1024-pixel long side (size-normalised)."""
    import cv2

    h, w = gray.shape
    scale = 1024.0 / max(h, w)
    if scale < 1.0:
        gray = cv2.resize(
            gray, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA
        )
    return float(cv2.Laplacian(gray.astype(np.float32), cv2.CV_32F, ksize=1).var())


def noise_sigma(gray: np.ndarray) -> float:
    """Immerkær (1996) fast noise estimate: sigma of additive Gaussian noise."""
    import cv2

    h, w = gray.shape
    if h < 3 or w < 3:
        return 0.0
    kernel = np.array([[1, -2, 1], [-2, 4, -2], [1, -2, 1]], np.float32)
    response = cv2.filter2D(gray.astype(np.float32), -1, kernel)[1:-1, 1:-1]
    return float(math.sqrt(math.pi / 2) * np.abs(response).sum() / (6 * (w - 2) * (h - 2)))


def blockiness(gray: np.ndarray) -> float:
    """Mean |step| across 8-pixel block edges / mean |step| inside blocks (1 = none)."""
    g = gray.astype(np.float32)
    ratios = []
    for steps in (np.abs(np.diff(g, axis=1)), np.abs(np.diff(g, axis=0)).T):
        n = steps.shape[1]
        if n < 16:
            continue
        columns = np.arange(n)
        edge = (columns % 8) == 7
        # Ignore flat areas: both means are over pixels where something happens.
        boundary = steps[:, edge].mean()
        interior = steps[:, ~edge].mean()
        ratios.append((boundary + 0.5) / (interior + 0.5))
    # Compression blocks have edges both ways; one shape edge on the grid has one.
    return float(min(ratios)) if len(ratios) == 2 else 1.0


def _banded_steps(g: np.ndarray, gentle: np.ndarray) -> np.ndarray:
    """Pixels on an isolated contour step (>= 2 code values, flat on both sides) with at
    least two more such steps of the same sign and none of the opposite sign within 64
    pixels along the row: a staircase."""
    import cv2

    step = np.diff(g, axis=1, append=g[:, -1:])
    # A band edge is a jump between flat runs; a soft edge or a ramp steps every pixel.
    flat = step == 0
    isolated = np.zeros_like(flat)
    isolated[:, 1:-1] = flat[:, :-2] & flat[:, 2:]
    up = ((step >= 2) & gentle & isolated).astype(np.float32)
    down = ((step <= -2) & gentle & isolated).astype(np.float32)
    kernel = (129, 1)
    ups = cv2.boxFilter(up, -1, kernel, normalize=False, borderType=cv2.BORDER_CONSTANT)
    downs = cv2.boxFilter(down, -1, kernel, normalize=False, borderType=cv2.BORDER_CONSTANT)
    return ((up > 0) & (ups >= 3) & (downs < 0.5)) | ((down > 0) & (downs >= 3) & (ups < 0.5))


def _banding_maps(gray: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(staircase-step pixels, gently sloped pixels) of a uint8 luma image."""
    import cv2

    g = gray.astype(np.int16)
    smooth = cv2.GaussianBlur(gray.astype(np.float32), (0, 0), 8.0)
    gx = cv2.Sobel(smooth, cv2.CV_32F, 1, 0, ksize=3) / 8.0
    gy = cv2.Sobel(smooth, cv2.CV_32F, 0, 1, ksize=3) / 8.0
    slope = np.hypot(gx, gy)
    gentle = (slope > 0.02) & (slope < 1.5)
    banded = _banded_steps(g, gentle) | _banded_steps(g.T, gentle.T).T
    return banded, gentle


def banding(gray: np.ndarray) -> float:
    """Contouring in smooth gradients: the share of gently sloped area on staircase steps.

    In gently sloped areas (the slope of a heavily blurred copy is 0.02-1.5 code values
    per pixel) a clean 8-bit ramp steps by 1 code value at a time; a banded one lies flat,
    then jumps by 2 or more, again and again in the same direction.  Noise (jumps both
    ways) and the edge of a flat shape (a single jump) do not count.  A 20-level
    posterised ramp scores about 0.02; a clean picture about 0.
    """
    banded, gentle = _banding_maps(gray)
    area = np.count_nonzero(gentle)
    if area < 0.05 * gray.size:
        return 0.0
    return float(np.count_nonzero(banded) / area)


def colour_cast(rgb: np.ndarray) -> tuple[float, float, float]:
    """(a*, b*, share of pixels used) averaged over near-neutral pixels (chroma < 30)."""
    import cv2

    small = rgb
    if max(rgb.shape[:2]) > 512:
        scale = 512 / max(rgb.shape[:2])
        small = cv2.resize(
            rgb,
            (max(1, round(rgb.shape[1] * scale)), max(1, round(rgb.shape[0] * scale))),
            interpolation=cv2.INTER_AREA,
        )
    lab = cv2.cvtColor(small.astype(np.float32) / 255.0, cv2.COLOR_RGB2LAB)
    a, b, lightness = lab[:, :, 1], lab[:, :, 2], lab[:, :, 0]
    neutral = (np.hypot(a, b) < 30) & (lightness > 15) & (lightness < 95)
    share = float(np.count_nonzero(neutral) / neutral.size)
    if share < 0.05:
        return 0.0, 0.0, share
    return float(a[neutral].mean()), float(b[neutral].mean()), share


def measure_image(rgb: np.ndarray) -> dict[str, Any]:
    """Every raw measurement of an RGB uint8 image."""
    luma = _luma(rgb)
    gray = np.clip(luma + 0.5, 0, 255).astype(np.uint8)
    a, b, neutral = colour_cast(rgb)
    legal = np.any((rgb < 16) | (rgb > 235), axis=2)
    return {
        "width": int(rgb.shape[1]),
        "height": int(rgb.shape[0]),
        "sharpness": sharpness(gray),
        "noise_sigma": noise_sigma(gray),
        "clipped_highlights": float(np.count_nonzero(gray >= 254) / gray.size),
        "crushed_shadows": float(np.count_nonzero(gray <= 1) / gray.size),
        "contrast_rms": float(luma.std() / 255.0),
        "mean_luma": float(luma.mean()),
        "banding": banding(gray),
        "blockiness": blockiness(gray),
        "cast_a": a,
        "cast_b": b,
        "cast": float(math.hypot(a, b)),
        "neutral_share": neutral,
        "outside_legal": float(np.count_nonzero(legal) / legal.size),
    }


def _score_high_bad(value: float, good: float, bad: float) -> float:
    """1 at ``good`` or better, 0 at ``bad`` or worse, linear between."""
    if bad == good:
        return 1.0
    return float(np.clip((bad - value) / (bad - good), 0.0, 1.0))


def validate_image(
    image: Path | str | np.ndarray, standards: list[str] | tuple[str, ...] | None = None
) -> QualityReport:
    """Check a still image and score it.

    Parameters
    ----------
    image : Path or numpy.ndarray
        The image file, or an RGB uint8 array.
    standards : list of str, optional
        Delivery targets to hold the resolution and levels to: ``draft``, ``web``, ``hd``,
        ``broadcast``, ``uhd``, ``cinema`` or ``"WIDTHxHEIGHT"``.  ``broadcast`` also checks
        that 99 % of pixels lie within the broadcast-safe 16-235.

    Returns
    -------
    QualityReport

    Raises
    ------
    MediaInputError
        Missing, unreadable or empty (0x0) image.
    ParameterError
        Unknown standard name.
    """
    targets = _targets(standards)
    rgb, path = load_rgb(image)
    m = measure_image(rgb)
    issues: list[QualityIssue] = []
    advice: list[str] = []
    scores: dict[str, float] = {}

    def issue(  # noqa: PLR0917 - a local helper, called positionally as a table
        check: str, severity: str, message: str, measured: Any, limit: str, tip: str
    ) -> None:
        issues.append(
            QualityIssue(
                check=check, severity=severity, message=message, measured=measured, limit=limit
            )
        )
        if tip not in advice:
            advice.append(tip)

    width, height = m["width"], m["height"]
    resolution_scores = []
    for name, tw, th in targets:
        # Either orientation counts (a portrait 1080x1920 meets "hd" for a 9:16 video).
        enough = (width >= tw and height >= th) or (width >= th and height >= tw)
        long_side, short_side = max(width, height), min(width, height)
        resolution_scores.append(min(1.0, long_side / max(tw, th), short_side / min(tw, th)))
        if not enough:
            issue(
                "resolution",
                "fail",
                f"{width}x{height} is smaller than {name} ({tw}x{th})",
                f"{width}x{height}",
                f">= {tw}x{th}",
                "upscale it: apex-director upscale IMAGE -o OUT --preset broadcast "
                f"--size {tw}x{th}",
            )
    scores["resolution"] = min(resolution_scores) if resolution_scores else 1.0

    scores["sharpness"] = float(np.clip(m["sharpness"] / (2 * SHARPNESS_BLURRY), 0.0, 1.0))
    if m["sharpness"] < SHARPNESS_BLURRY:
        issue(
            "sharpness",
            "warning",
            f"the image is soft or blurred (Laplacian variance {m['sharpness']:.1f})",
            round(m["sharpness"], 2),
            f">= {SHARPNESS_BLURRY:g}",
            "regenerate at a higher resolution or with more steps, or upscale with Real-ESRGAN "
            "instead of plain resizing",
        )
    scores["noise"] = _score_high_bad(m["noise_sigma"], 2.0, 2 * NOISE_HIGH)
    if m["noise_sigma"] > NOISE_HIGH:
        issue(
            "noise",
            "warning",
            f"visible noise (sigma {m['noise_sigma']:.1f} code values)",
            round(m["noise_sigma"], 2),
            f"<= {NOISE_HIGH:g}",
            "denoise the still or lower grade.grain",
        )
    clipped = m["clipped_highlights"] + m["crushed_shadows"]
    scores["exposure"] = _score_high_bad(clipped, 0.0, 5 * CLIP_HIGH)
    for key, word, tip in (
        ("clipped_highlights", "highlights clipped to white", "lower grade.exposure"),
        ("crushed_shadows", "shadows crushed to black", "raise grade.exposure or the shadows"),
    ):
        if m[key] > CLIP_HIGH:
            issue(
                "exposure",
                "warning",
                f"{100 * m[key]:.1f} % of pixels {word}",
                round(100 * m[key], 2),
                f"<= {100 * CLIP_HIGH:g} %",
                tip,
            )
    scores["contrast"] = float(np.clip(m["contrast_rms"] / (2 * CONTRAST_LOW), 0.0, 1.0))
    if m["contrast_rms"] < CONTRAST_LOW:
        issue(
            "contrast",
            "warning",
            f"flat picture (RMS contrast {m['contrast_rms']:.3f})",
            round(m["contrast_rms"], 4),
            f">= {CONTRAST_LOW:g}",
            "raise grade.contrast",
        )
    scores["banding"] = _score_high_bad(m["banding"], 0.0, 3 * BANDING_HIGH)
    if m["banding"] > BANDING_HIGH:
        issue(
            "banding",
            "warning",
            f"banding (contours) in smooth gradients ({100 * m['banding']:.1f} % of them)",
            round(m["banding"], 4),
            f"<= {BANDING_HIGH:g}",
            "avoid 8-bit posterising edits; add a little grain (grade.grain) to hide contours",
        )
    scores["blocking"] = _score_high_bad(m["blockiness"], 1.1, 2 * BLOCKING_HIGH)
    if m["blockiness"] > BLOCKING_HIGH:
        issue(
            "blocking",
            "warning",
            f"8x8 compression blocking (edge/interior ratio {m['blockiness']:.2f})",
            round(m["blockiness"], 3),
            f"<= {BLOCKING_HIGH:g}",
            "use the original or a higher-quality (PNG or JPEG quality >= 90) source",
        )
    scores["colour_cast"] = _score_high_bad(m["cast"], 2.0, 3 * CAST_HIGH)
    if m["cast"] > CAST_HIGH:
        hue = math.degrees(math.atan2(m["cast_b"], m["cast_a"]))
        issue(
            "colour_cast",
            "warning",
            f"colour cast in neutral areas (a* {m['cast_a']:+.1f}, b* {m['cast_b']:+.1f}, "
            f"hue {hue:.0f}°)",
            round(m["cast"], 2),
            f"<= {CAST_HIGH:g}",
            "white-balance the still, unless the tint is the intended look",
        )
    broadcast = any(name == "broadcast" for name, _, _ in targets)
    scores["legal_range"] = _score_high_bad(m["outside_legal"], LEGAL_HIGH, 10 * LEGAL_HIGH)
    if broadcast and m["outside_legal"] > LEGAL_HIGH:
        issue(
            "legal_range",
            "fail",
            f"{100 * m['outside_legal']:.1f} % of pixels outside broadcast-safe 16-235",
            round(100 * m["outside_legal"], 2),
            "<= 1 %",
            "apply a broadcast-safe (legaliser) filter before delivering the still",
        )
    weights = {
        "resolution": 2.0,
        "sharpness": 1.5,
        "blocking": 1.0,
        "banding": 1.0,
        "noise": 1.0,
        "exposure": 1.0,
        "contrast": 0.5,
        "colour_cast": 0.5,
        "legal_range": 1.0 if broadcast else 0.0,
    }
    overall = sum(scores[k] * w for k, w in weights.items()) / sum(weights.values())
    if any(i.severity == "fail" for i in issues):
        overall = min(overall, 0.5)
    issues.sort(key=lambda i: ("fail", "warning", "info").index(i.severity))
    return QualityReport(
        path=path or Path("<array>"),
        media_type="image",
        overall_score=float(overall),
        broadcast_compliant=not any(i.severity == "fail" for i in issues)
        and (not broadcast or m["outside_legal"] <= LEGAL_HIGH),
        issues=issues,
        recommendations=advice,
        detailed_scores=scores,
        measurements=m,
        artifacts=detect_image_artifacts(rgb),
    )


def detect_image_artifacts(
    image: Path | str | np.ndarray, *, frame: int | None = None, time: float | None = None
) -> list[Artifact]:
    """Located defects: blocking, banding, clipped highlights and crushed shadows.

    The image is cut into 64x64 tiles; neighbouring tiles with the same defect are merged
    into one region.  Severity is 0..1.

    Raises
    ------
    MediaInputError
        Missing, unreadable or empty image.
    """
    import cv2

    rgb, _ = load_rgb(image)
    gray = np.clip(_luma(rgb) + 0.5, 0, 255).astype(np.uint8)
    h, w = gray.shape
    rows, cols = max(1, h // _TILE), max(1, w // _TILE)
    banded, gentle = _banding_maps(gray)
    values: dict[str, np.ndarray] = {
        k: np.zeros((rows, cols), np.float32)
        for k in ("blocking", "banding", "clipped_highlights", "crushed_shadows")
    }
    for r in range(rows):
        for c in range(cols):
            tile = gray[r * _TILE : (r + 1) * _TILE, c * _TILE : (c + 1) * _TILE]
            values["blocking"][r, c] = blockiness(tile) if tile.shape[1] >= 16 else 1.0
            sl = (slice(r * _TILE, (r + 1) * _TILE), slice(c * _TILE, (c + 1) * _TILE))
            smooth_area = np.count_nonzero(gentle[sl])
            if smooth_area >= 0.1 * tile.size:
                values["banding"][r, c] = np.count_nonzero(banded[sl]) / smooth_area
            values["clipped_highlights"][r, c] = np.count_nonzero(tile >= 254) / tile.size
            values["crushed_shadows"][r, c] = np.count_nonzero(tile <= 1) / tile.size
    limits = {
        "blocking": (1.2 * BLOCKING_HIGH, 2 * BLOCKING_HIGH),
        "banding": (BANDING_HIGH, 0.05),
        "clipped_highlights": (0.5, 1.0),
        "crushed_shadows": (0.5, 1.0),
    }
    found: list[Artifact] = []
    for kind, grid in values.items():
        start, worst = limits[kind]
        mask = (grid > start).astype(np.uint8)
        if not mask.any():
            continue
        count, labels, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
        for label in range(1, count):
            x, y, bw, bh, area = (int(v) for v in stats[label])
            if kind == "blocking" and area < 2:
                continue  # one tile with a shape edge on the 8x8 grid is not compression
            peak = float(grid[labels == label].max())
            severity = float(np.clip((peak - start) / (worst - start), 0.05, 1.0))
            x1 = min(w, (x + bw) * _TILE) if x + bw < cols else w
            y1 = min(h, (y + bh) * _TILE) if y + bh < rows else h
            found.append(
                Artifact(
                    kind=kind,
                    severity=round(severity, 3),
                    region=(x * _TILE, y * _TILE, x1 - x * _TILE, y1 - y * _TILE),
                    frame=frame,
                    time=time,
                    description=f"{kind.replace('_', ' ')} {peak:.3f} (threshold {start:g})",
                )
            )
    found.sort(key=lambda a: -a.severity)
    return found
