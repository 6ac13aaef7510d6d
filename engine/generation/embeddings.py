"""Image descriptors for style and character checks: colour (Lab, HSV), shape (HOG), CLIP.

Two families of embedding, chosen at run time:

``clip``
    The image embedding of a CLIP vision encoder the user put in ``models/clip/<name>/``
    (a ``transformers`` folder: ``config.json`` + weights, optionally
    ``preprocessor_config.json``), loaded with ``CLIPVisionModelWithProjection`` and
    ``CLIPImageProcessor``, ``local_files_only=True``.  Used when such a folder exists
    and torch/transformers are installed.
``classical``
    No model needed.  The frame is reduced to 192 px; :func:`foreground_mask` separates
    the figure from the background (colours unlike those along the top and upper side
    edges), and on the central 70 % of the frame (:func:`subject_crop`; OpenCV 5's main
    package has no face detector that works without a model file) it computes:

    * a hue-saturation histogram (18 x 8 bins plus one bin for grey/dark pixels) of the
      foreground pixels, Hellinger-mapped, so brightness changes move it little;
    * a HOG descriptor (:func:`hog_descriptor`: 64 x 128 pixels, 8-pixel cells, 9
      orientations) of the CLAHE-equalised grey crop with the background flattened,
      which encodes silhouette and clothing shapes and tolerates small shifts, scale
      and brightness changes thanks to its block normalisation.

    Both parts are L2-normalised and concatenated with weights 0.6 (colour) and 0.4
    (shape).  Cosine similarity of two such vectors lies in [0, 1].  On synthetic
    figures (``tests/engine/test_characters.py``) the same figure shifted by 5 %,
    scaled by ±10 %, 15 % darker or brighter, or on another background scores >= 0.85,
    a different figure <= 0.3.

Colour helpers (:func:`dominant_colours`, :func:`palette_distance`) compare palettes in
CIE Lab with the CIE76 colour difference (Euclidean ΔE; ΔE ≈ 2.3 is a just noticeable
difference, ΔE > 50 are clearly different colours).
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from engine.errors import BackendError

__all__ = [
    "ClipImageEncoder",
    "classical_embedding",
    "cosine_similarity",
    "dominant_colours",
    "find_clip_encoder",
    "histogram_distance",
    "hog_descriptor",
    "hsv_histogram",
    "palette_distance",
    "rgb_to_lab",
    "subject_crop",
]

log = logging.getLogger(__name__)

RGB = tuple[int, int, int]

_COLOUR_WEIGHT = 0.6
_SHAPE_WEIGHT = 0.4


def rgb_to_lab(colours: np.ndarray) -> np.ndarray:
    """sRGB uint8 colours ``(..., 3)`` to CIE Lab (D65), float64 (L in 0..100)."""
    rgb = np.asarray(colours, dtype=np.float64) / 255.0
    linear = np.where(rgb <= 0.04045, rgb / 12.92, ((rgb + 0.055) / 1.055) ** 2.4)
    matrix = np.array(
        [
            [0.4124564, 0.3575761, 0.1804375],
            [0.2126729, 0.7151522, 0.0721750],
            [0.0193339, 0.1191920, 0.9503041],
        ]
    )
    xyz = linear @ matrix.T / np.array([0.95047, 1.0, 1.08883])
    eps, kappa = 216 / 24389, 24389 / 27
    f = np.where(xyz > eps, np.cbrt(xyz), (kappa * xyz + 16) / 116)
    lab = np.empty_like(f)
    lab[..., 0] = 116 * f[..., 1] - 16
    lab[..., 1] = 500 * (f[..., 0] - f[..., 1])
    lab[..., 2] = 200 * (f[..., 1] - f[..., 2])
    return lab


def _small(image: np.ndarray, side: int = 128) -> np.ndarray:
    import cv2

    h, w = image.shape[:2]
    scale = side / max(h, w)
    if scale >= 1:
        return image
    return cv2.resize(image, (max(1, round(w * scale)), max(1, round(h * scale))), cv2.INTER_AREA)


def dominant_colours(image: np.ndarray, k: int = 5) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` dominant colours of an RGB image by k-means in Lab.

    Returns
    -------
    colours : numpy.ndarray
        ``(k, 3)`` Lab centres, most frequent first.
    weights : numpy.ndarray
        ``(k,)`` share of the pixels of each, summing to 1.
    """
    import cv2

    lab = rgb_to_lab(_small(image)).reshape(-1, 3).astype(np.float32)
    k = max(1, min(k, len(lab)))
    criteria = (cv2.TERM_CRITERIA_EPS + cv2.TERM_CRITERIA_MAX_ITER, 30, 0.5)
    cv2.setRNGSeed(12345)  # deterministic k-means++ seeding
    _, labels, centres = cv2.kmeans(lab, k, None, criteria, 2, cv2.KMEANS_PP_CENTERS)
    counts = np.bincount(labels.ravel(), minlength=k).astype(np.float64)
    order = np.argsort(-counts)
    return centres[order].astype(np.float64), counts[order] / counts.sum()


def palette_distance(
    lab_a: np.ndarray,
    lab_b: np.ndarray,
    weights_a: np.ndarray | None = None,
    weights_b: np.ndarray | None = None,
) -> float:
    """Symmetric mean nearest-colour ΔE (CIE76) between two Lab palettes.

    Each colour of A is matched with its nearest colour of B and the other way round;
    the two weighted means of those distances are averaged.  0 for equal palettes.
    """
    a, b = np.atleast_2d(lab_a), np.atleast_2d(lab_b)
    wa = np.full(len(a), 1 / len(a)) if weights_a is None else np.asarray(weights_a, float)
    wb = np.full(len(b), 1 / len(b)) if weights_b is None else np.asarray(weights_b, float)
    d = np.linalg.norm(a[:, None, :] - b[None, :, :], axis=-1)
    return float(0.5 * (wa @ d.min(axis=1) / wa.sum() + wb @ d.min(axis=0) / wb.sum()))


def hsv_histogram(image: np.ndarray, *, mask_dark: bool = True) -> np.ndarray:
    """Normalised 18 x 8 hue-saturation histogram (plus one grey bin) of an RGB image."""
    import cv2

    hsv = cv2.cvtColor(_small(image, 256), cv2.COLOR_RGB2HSV)
    h, s, v = hsv[..., 0], hsv[..., 1], hsv[..., 2]
    coloured = s >= 30
    if mask_dark:
        coloured &= v >= 40
    hist = np.zeros(18 * 8 + 1)
    hb = np.minimum(h[coloured].astype(int) * 18 // 180, 17)
    sb = np.minimum(s[coloured].astype(int) * 8 // 256, 7)
    np.add.at(hist, hb * 8 + sb, 1.0)
    hist[-1] = float((~coloured).sum())  # grey / dark pixels in one bin
    return hist / max(hist.sum(), 1.0)


def histogram_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Hellinger (Bhattacharyya) distance of two normalised histograms, 0 (equal) .. 1."""
    bc = float(np.sum(np.sqrt(np.asarray(a) * np.asarray(b))))
    return float(np.sqrt(max(0.0, 1.0 - min(bc, 1.0))))


def cosine_similarity(a: np.ndarray, b: np.ndarray) -> float:
    """Cosine of the angle between two vectors (0 when either is zero)."""
    na, nb = float(np.linalg.norm(a)), float(np.linalg.norm(b))
    if na == 0 or nb == 0:
        return 0.0
    return float(np.dot(a, b) / (na * nb))


def subject_crop(image: np.ndarray) -> np.ndarray:
    """The central 70 % of the frame, where a shot's subject usually is."""
    h, w = image.shape[:2]
    mx, my = int(w * 0.15), int(h * 0.15)
    return image[my : h - my, mx : w - mx]


def hog_descriptor(grey: np.ndarray, *, cell: int = 8, bins: int = 9) -> np.ndarray:
    """Histogram of oriented gradients (Dalal & Triggs) of a grey image.

    Unsigned orientations in ``bins`` bins, ``cell`` x ``cell`` pixel cells, 2 x 2-cell
    blocks with stride one cell, L2-Hys block normalisation (clip at 0.2).  Written
    here because OpenCV 5 moved ``HOGDescriptor`` out of the main package.
    """
    g = grey.astype(np.float32)
    gx = np.zeros_like(g)
    gy = np.zeros_like(g)
    gx[:, 1:-1] = g[:, 2:] - g[:, :-2]
    gy[1:-1, :] = g[2:, :] - g[:-2, :]
    magnitude = np.hypot(gx, gy)
    angle = np.rad2deg(np.arctan2(gy, gx)) % 180.0
    ch, cw = g.shape[0] // cell, g.shape[1] // cell
    position = angle / (180.0 / bins) - 0.5  # linear interpolation between bin centres
    low = np.floor(position).astype(int)
    frac = position - low
    hist = np.zeros((ch, cw, bins), dtype=np.float64)
    rows = np.repeat(np.arange(ch), cell)[:, None].repeat(cw * cell, axis=1)
    cols = np.repeat(np.arange(cw), cell)[None, :].repeat(ch * cell, axis=0)
    m = magnitude[: ch * cell, : cw * cell]
    lo = low[: ch * cell, : cw * cell]
    fr = frac[: ch * cell, : cw * cell]
    np.add.at(hist, (rows, cols, lo % bins), m * (1 - fr))
    np.add.at(hist, (rows, cols, (lo + 1) % bins), m * fr)
    blocks = []
    for y in range(ch - 1):
        for x in range(cw - 1):
            block = hist[y : y + 2, x : x + 2].ravel()
            block = block / np.sqrt(np.sum(block**2) + 1e-6)
            block = np.minimum(block, 0.2)
            blocks.append(block / np.sqrt(np.sum(block**2) + 1e-6))
    return np.concatenate(blocks)


def foreground_mask(image: np.ndarray, *, border: float = 0.08) -> np.ndarray:
    """Pixels unlike the frame's border: a cheap figure/background separation.

    The colours of the top edge and the upper 60 % of the left and right edges (a band
    ``border`` of the frame wide; hue 18 x saturation 4 x value 4 bins) are taken as the
    background model; pixels whose bin is rare there (under 5 % of the most
    common border bin) are foreground.  Cleaned with a morphological open/close.  When
    under 3 % of the frame is left (a subject-less landscape), every pixel counts.
    """
    import cv2

    hsv = cv2.cvtColor(image, cv2.COLOR_RGB2HSV).astype(np.int32)
    bins = (
        np.minimum(hsv[..., 0] * 18 // 180, 17) * 16
        + np.minimum(hsv[..., 1] * 4 // 256, 3) * 4
        + np.minimum(hsv[..., 2] * 4 // 256, 3)
    )
    h, w = bins.shape
    by, bx = max(1, int(h * border)), max(1, int(w * border))
    upper = int(h * 0.6)
    # Top edge and the upper sides only: a figure in a medium shot is usually cut by the
    # bottom of the frame, and its colours must not become "background".
    band = np.concatenate(
        [bins[:by].ravel(), bins[:upper, :bx].ravel(), bins[:upper, -bx:].ravel()]
    )
    model = np.bincount(band, minlength=18 * 16).astype(np.float64)
    mask = (model[bins] / max(model.max(), 1.0) < 0.05).astype(np.uint8)
    kernel = np.ones((3, 3), np.uint8)
    mask = cv2.morphologyEx(mask, cv2.MORPH_OPEN, kernel)
    mask = cv2.morphologyEx(mask, cv2.MORPH_CLOSE, kernel)
    if mask.mean() < 0.03:
        return np.ones((h, w), dtype=bool)
    return mask.astype(bool)


def classical_embedding(image: np.ndarray) -> np.ndarray:
    """The classical descriptor of an RGB uint8 image (see the module docstring)."""
    import cv2

    small = _small(image, 192)
    mask = subject_crop(foreground_mask(small))
    crop = subject_crop(small)
    colour = np.sqrt(_masked_hs_histogram(crop, mask))  # Hellinger map: cosine ~ Bhattacharyya
    grey = cv2.cvtColor(crop, cv2.COLOR_RGB2GRAY).astype(np.float32)
    grey[~mask] = float(grey[mask].mean()) if mask.any() else 0.0
    grey8 = cv2.resize(np.clip(grey, 0, 255).astype(np.uint8), (64, 128), cv2.INTER_AREA)
    grey8 = cv2.createCLAHE(clipLimit=2.0, tileGridSize=(4, 4)).apply(grey8)
    shape = hog_descriptor(grey8)
    parts = []
    for vector, weight in ((colour, _COLOUR_WEIGHT), (shape, _SHAPE_WEIGHT)):
        norm = float(np.linalg.norm(vector))
        parts.append(weight * vector / norm if norm > 0 else vector)
    out = np.concatenate(parts)
    return (out / max(float(np.linalg.norm(out)), 1e-12)).astype(np.float32)


def _masked_hs_histogram(image: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """18 x 8 hue-saturation histogram of the masked pixels, plus one grey/dark bin."""
    import cv2

    hsv = cv2.cvtColor(image, cv2.COLOR_RGB2HSV)
    h, s, v = hsv[..., 0][mask], hsv[..., 1][mask], hsv[..., 2][mask]
    coloured = (s >= 30) & (v >= 40)
    hist = np.zeros(18 * 8 + 1)
    hb = np.minimum(h[coloured].astype(int) * 18 // 180, 17)
    sb = np.minimum(s[coloured].astype(int) * 8 // 256, 7)
    np.add.at(hist, hb * 8 + sb, 1.0)
    hist[-1] = float((~coloured).sum())
    return hist / max(hist.sum(), 1.0)


# --------------------------------------------------------------------------- CLIP


def find_clip_encoder(models_dir: Path | str | None, name: str | None = None) -> Path | None:
    """The CLIP image-encoder folder in ``models_dir/clip/`` (``name``, or the first), or None.

    A folder qualifies when its ``config.json`` exists; torch/transformers are not
    imported here.
    """
    if models_dir is None:
        return None
    root = Path(models_dir).expanduser() / "clip"
    if not root.is_dir():
        return None
    if name:
        folder = root / name
        return folder if (folder / "config.json").is_file() else None
    for folder in sorted(p for p in root.iterdir() if p.is_dir()):
        if (folder / "config.json").is_file():
            return folder
    return None


@dataclass(frozen=True)
class ClipImageEncoder:
    """A CLIP vision encoder loaded from a local folder (see the module docstring).

    Use :meth:`load` (cached per folder) rather than the constructor.
    """

    folder: Path
    model: Any
    processor: Any

    @property
    def key(self) -> str:
        """Identifies the encoder in embedding caches: ``"clip:<folder name>"``."""
        return f"clip:{self.folder.name}"

    @staticmethod
    def load(folder: Path | str) -> ClipImageEncoder:
        """Load (once per folder) with ``local_files_only=True``.

        Raises
        ------
        BackendError
            torch/transformers missing, or the folder is not a loadable CLIP encoder.
        """
        return _load_clip(str(Path(folder).resolve()))

    def embed(self, images: Sequence[np.ndarray]) -> np.ndarray:
        """L2-normalised image embeddings, ``(len(images), projection_dim)`` float32."""
        import torch

        inputs = self.processor(images=list(images), return_tensors="pt")
        with torch.inference_mode():
            out = self.model(pixel_values=inputs["pixel_values"]).image_embeds
        emb = out.float().cpu().numpy()
        return (emb / np.maximum(np.linalg.norm(emb, axis=1, keepdims=True), 1e-12)).astype(
            np.float32
        )


@functools.cache
def _load_clip(folder: str) -> ClipImageEncoder:
    try:
        from transformers import CLIPImageProcessor, CLIPVisionModelWithProjection
    except ImportError as err:
        raise BackendError(
            "CLIP image embeddings need torch and transformers; install the sd extra: "
            "pip install 'apex-director[sd]'",
            backend_name="clip",
        ) from err
    path = Path(folder)
    try:
        model = CLIPVisionModelWithProjection.from_pretrained(path, local_files_only=True)
        model.eval()
        if (path / "preprocessor_config.json").is_file():
            processor = CLIPImageProcessor.from_pretrained(path, local_files_only=True)
        else:
            size = int(model.config.image_size)
            processor = CLIPImageProcessor(
                size={"shortest_edge": size}, crop_size={"height": size, "width": size}
            )
    except (OSError, ValueError, KeyError) as err:
        raise BackendError(
            f"{path} is not a loadable CLIP image encoder ({err}); remove it from models/clip "
            "or replace it with a transformers CLIPVisionModelWithProjection folder",
            backend_name="clip",
        ) from err
    log.info("CLIP image encoder loaded from %s", path)
    return ClipImageEncoder(folder=path, model=model, processor=processor)
