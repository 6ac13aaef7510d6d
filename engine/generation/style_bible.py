"""The style bible: one look for every shot of a video, kept in the project.

A :class:`StyleBible` holds a prompt template (style fragments added to every prompt),
negative prompt, palette, an optional LUT, reference images and a *seed family* (the
base seed every shot starts from, so shots share their initial noise and look closer
to each other).  :class:`StylePersistenceManager` validates it, saves it as
``style_bible.json`` in the project folder (atomically), and measures how far a
generated image drifts from it.

Drift (:meth:`StylePersistenceManager.detect_style_drift`)
-----------------------------------------------------------
Up to three measures, each mapped to 0 (same look) .. 1 (unrelated); the report's
``methods`` says which were used:

``palette``
    The image's 5 dominant colours (k-means in CIE Lab), each matched with the nearest
    colour of the look (the bible's palette and the reference images' dominant
    colours): the mean ΔE (CIE76) weighted by each colour's share of the image, divided
    by 40 and capped at 1.
``histogram``
    Hellinger distance between the image's hue-saturation histogram and the mean
    histogram of the reference images (only with reference images).
``clip``
    1 - cosine similarity of the CLIP image embeddings of the image and the mean of the
    references, when a CLIP image encoder is in ``models/clip/`` and torch/transformers
    are installed (only with reference images).

``drift_score`` is the mean of the measures used; ``drift_detected`` is
``drift_score > drift_threshold`` (0.5 by default, a setting of the bible).  On
procedural stills (``tests/engine/test_style_bible.py``) another scene in the same
palette scores about 0.35 with two reference images (0.46 against a palette alone),
the same scene in another palette about 0.73 (0.89).

Similarity (:meth:`StylePersistenceManager.calculate_style_similarity`)
-----------------------------------------------------------------------
A weighted mean over the parts both styles define: palette 0.5 (``1 - ΔE/40``,
floored at 0, with the symmetric mean nearest-colour ΔE of the two palettes),
prompt-template words 0.3 (Jaccard overlap of the lower-cased word sets),
negative-prompt words 0.1 (Jaccard), director and genre 0.1 (1 when equal).  Weights are
renormalised over the parts present; two styles with nothing comparable score 0.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from engine.atomic_files import atomic_write_text
from engine.errors import BackendError, MediaInputError, ParameterError
from engine.generation.embeddings import (
    ClipImageEncoder,
    dominant_colours,
    find_clip_encoder,
    histogram_distance,
    hsv_histogram,
    palette_distance,
    rgb_to_lab,
)
from engine.generation.image_io import read_image_safely

__all__ = ["STYLE_BIBLE_FILE", "StyleBible", "StylePersistenceManager"]

log = logging.getLogger(__name__)

STYLE_BIBLE_FILE = "style_bible.json"
SCHEMA_VERSION = 1
RGB = tuple[int, int, int]

_FIELDS = (
    "name",
    "prompt_template",
    "negative_prompt",
    "palette",
    "lut_path",
    "reference_images",
    "seed_family",
    "genre",
    "director_style",
    "drift_threshold",
)
_HEX = re.compile(r"^#?([0-9a-fA-F]{6})$")
_DELTA_E_SCALE = 40.0


@dataclass(frozen=True, kw_only=True)
class StyleBible:
    """The project's look.

    Attributes
    ----------
    name : str
    prompt_template : str
        Comma-separated style fragments added to every prompt (a ``{prompt}``
        placeholder, if present, is ignored: the user's prompt always comes first).
    negative_prompt : str
        Added to every negative prompt.
    palette : tuple of RGB
        The colours of the look.
    lut_path : str
        A ``.cube`` LUT for the grade (``""`` for none).
    reference_images : tuple of str
        Stills that show the look.
    seed_family : int
        Base seed of every shot (0..2**32-1); variants add 1, 2, ...
    genre, director_style : str
        Preset ids used when a request names none (``""``: the request decides).
    drift_threshold : float
        ``detect_style_drift`` flags drift above this score (0..1).
    """

    name: str = "default"
    prompt_template: str = ""
    negative_prompt: str = ""
    palette: tuple[RGB, ...] = ()
    lut_path: str = ""
    reference_images: tuple[str, ...] = ()
    seed_family: int = 0
    genre: str = ""
    director_style: str = ""
    drift_threshold: float = 0.5

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: palette as ``#rrggbb`` strings."""
        data = asdict(self)
        data["palette"] = ["#{:02x}{:02x}{:02x}".format(*c) for c in self.palette]
        data["reference_images"] = list(self.reference_images)
        return data

    def seed_for(self, variant: int = 0) -> int:
        """The seed of a shot's ``variant``-th try: ``seed_family + variant`` (mod 2**32)."""
        return (self.seed_family + variant) % 2**32


def _colour(value: Any, where: str) -> RGB:
    if isinstance(value, str):
        match = _HEX.match(value.strip())
        if match:
            code = match.group(1)
            return int(code[0:2], 16), int(code[2:4], 16), int(code[4:6], 16)
    elif (
        isinstance(value, Sequence)
        and len(value) == 3
        and all(isinstance(c, int) and not isinstance(c, bool) and 0 <= c <= 255 for c in value)
    ):
        return int(value[0]), int(value[1]), int(value[2])
    raise ParameterError(where, value, "a '#rrggbb' string or an [r, g, b] list of 0..255")


def _text(data: Mapping[str, Any], key: str) -> str:
    value = data.get(key, "")
    if isinstance(value, list | tuple) and all(isinstance(v, str) for v in value):
        value = ", ".join(value)
    if not isinstance(value, str):
        raise ParameterError(key, value, "a string")
    return " ".join(value.split())


def _validate(data: Mapping[str, Any], base_dir: Path | None) -> StyleBible:
    if not isinstance(data, Mapping):
        raise ParameterError("style_data", data, "a mapping of style bible fields")
    unknown = sorted(set(data) - set(_FIELDS))
    if unknown:
        raise ParameterError(
            unknown[0], data[unknown[0]], f"one of the fields {', '.join(_FIELDS)}"
        )
    name = _text(data, "name") or "default"
    palette_raw = data.get("palette", ())
    if isinstance(palette_raw, str):
        palette_raw = [p for p in re.split(r"[,\s]+", palette_raw) if p]
    if not isinstance(palette_raw, Sequence):
        raise ParameterError("palette", palette_raw, "a list of colours")
    palette = tuple(_colour(c, f"palette[{i}]") for i, c in enumerate(palette_raw))
    if len(palette) > 32:
        raise ParameterError("palette", len(palette), "at most 32 colours")

    def resolve(value: str) -> Path:
        path = Path(value).expanduser()
        return path if path.is_absolute() or base_dir is None else base_dir / path

    lut = data.get("lut_path", "") or ""
    if not isinstance(lut, str | Path):
        raise ParameterError("lut_path", lut, "a path to a .cube file")
    lut = str(lut)
    if lut:
        if Path(lut).suffix.lower() != ".cube":
            raise ParameterError("lut_path", lut, "a .cube LUT file")
        if not resolve(lut).is_file():
            raise ParameterError("lut_path", lut, "an existing .cube file (not found)")
    refs_raw = data.get("reference_images", ())
    if isinstance(refs_raw, str | Path) or not isinstance(refs_raw, Sequence):
        raise ParameterError("reference_images", refs_raw, "a list of image paths")
    refs: list[str] = []
    for i, ref in enumerate(refs_raw):
        if not isinstance(ref, str | Path) or not str(ref):
            raise ParameterError(f"reference_images[{i}]", ref, "an image path")
        if not resolve(str(ref)).is_file():
            raise ParameterError(f"reference_images[{i}]", str(ref), "an existing image file")
        refs.append(str(ref))
    seed = data.get("seed_family", 0)
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**32:
        raise ParameterError("seed_family", seed, "an integer in 0..4294967295")
    threshold = data.get("drift_threshold", 0.5)
    if (
        isinstance(threshold, bool)
        or not isinstance(threshold, int | float)
        or not 0.0 < threshold <= 1.0
    ):
        raise ParameterError("drift_threshold", threshold, "a number in (0, 1]")
    genre, director = _text(data, "genre"), _text(data, "director_style")
    if genre or director:
        from engine.generation.prompting import get_preset

        genre = get_preset("genres", genre).id if genre else ""
        director = get_preset("directors", director).id if director else ""
    return StyleBible(
        name=name,
        prompt_template=_text(data, "prompt_template"),
        negative_prompt=_text(data, "negative_prompt"),
        palette=palette,
        lut_path=lut,
        reference_images=tuple(refs),
        seed_family=int(seed),
        genre=genre,
        director_style=director,
        drift_threshold=float(threshold),
    )


def _words(text: str) -> set[str]:
    return set(re.findall(r"[a-z0-9]+", text.lower()))


def _jaccard(a: str, b: str) -> float | None:
    wa, wb = _words(a), _words(b)
    if not wa and not wb:
        return None
    return len(wa & wb) / len(wa | wb)


class StylePersistenceManager:
    """Keeps a project's style bible and checks images against it.

    Parameters
    ----------
    project_dir : Path, optional
        The project folder: ``style_bible.json`` is read from and saved there, and
        relative reference/LUT paths are resolved against it.  ``None`` keeps the bible
        in memory only.
    models_dir : Path, optional
        The weights folder; a CLIP image encoder in ``models_dir/clip/`` adds the CLIP
        measure to drift reports.
    clip_model : str, optional
        Which folder of ``models_dir/clip/`` to use (default: the first).

    Examples
    --------
    >>> styles = StylePersistenceManager(project_dir)  # doctest: +SKIP
    >>> styles.load_style_bible({"prompt_template": "teal and amber grade",
    ...                          "palette": ["#0b3d4f", "#f2a541"], "seed_family": 1234})
    >>> styles.detect_style_drift(Path("shot_01.png"))["drift_score"]  # doctest: +SKIP
    0.12
    """

    def __init__(
        self,
        project_dir: Path | str | None = None,
        *,
        models_dir: Path | str | None = None,
        clip_model: str | None = None,
    ) -> None:
        self.project_dir = Path(project_dir) if project_dir is not None else None
        self.models_dir = Path(models_dir) if models_dir is not None else None
        self.clip_model = clip_model
        self._bible: StyleBible | None = None
        self._reference_cache: dict[str, Any] = {}
        if self.path is not None and self.path.is_file():
            self.load()

    # ------------------------------------------------------------------ storage

    @property
    def path(self) -> Path | None:
        """``<project>/style_bible.json``, or ``None`` without a project."""
        return self.project_dir / STYLE_BIBLE_FILE if self.project_dir is not None else None

    @property
    def style_bible(self) -> StyleBible | None:
        """The current bible (``None`` until one is loaded)."""
        return self._bible

    def load(self) -> StyleBible:
        """Read ``style_bible.json`` from the project.

        Raises
        ------
        MediaInputError
            The file is missing, not JSON, or from a newer version of the program.
        ParameterError
            A field is invalid (named).
        """
        if self.path is None:
            raise ParameterError(
                "project_dir", None, "a project folder to load the style bible from"
            )
        try:
            document = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError as err:
            raise MediaInputError(self.path, "style bible not found") from err
        except (OSError, ValueError) as err:
            raise MediaInputError(
                self.path, f"is not a readable style bible ({err}); fix or delete it"
            ) from err
        version = document.get("schema_version") if isinstance(document, dict) else None
        if version != SCHEMA_VERSION:
            raise MediaInputError(
                self.path,
                f"has schema_version {version!r}; this version reads {SCHEMA_VERSION}. "
                "Update APEX Director or recreate the style bible",
            )
        self._set(_validate(document.get("style_bible", {}), self.project_dir))
        return self._bible  # type: ignore[return-value]

    def save(self) -> Path | None:
        """Write the bible to the project atomically; returns the path (None without one)."""
        if self.path is None or self._bible is None:
            return None
        self.path.parent.mkdir(parents=True, exist_ok=True)
        document = {"schema_version": SCHEMA_VERSION, "style_bible": self._bible.to_dict()}
        atomic_write_text(self.path, json.dumps(document, indent=2, sort_keys=True) + "\n")
        return self.path

    def _set(self, bible: StyleBible) -> None:
        self._bible = bible
        self._reference_cache.clear()

    # ------------------------------------------------------------------ API

    def load_style_bible(self, style_data: dict[str, Any]) -> None:
        """Replace the bible with ``style_data`` (validated) and save it to the project.

        Raises
        ------
        ParameterError
            An unknown field or an invalid value, naming the field.
        """
        self._set(_validate(style_data, self.project_dir))
        self.save()

    def update_style(self, updates: dict[str, Any]) -> None:
        """Change some fields of the bible (validated as a whole) and save it.

        Raises
        ------
        ParameterError
            As :meth:`load_style_bible`.
        """
        current = self._bible.to_dict() if self._bible is not None else {}
        current.update(updates)
        self._set(_validate(current, self.project_dir))
        self.save()

    def seed_for(self, variant: int = 0) -> int:
        """The seed family's ``variant``-th seed (0 without a bible)."""
        return self._bible.seed_for(variant) if self._bible is not None else variant % 2**32

    def resolve(self, value: str) -> Path:
        """A bible path made absolute against the project folder."""
        path = Path(value).expanduser()
        if path.is_absolute() or self.project_dir is None:
            return path
        return self.project_dir / path

    def _references(self) -> dict[str, Any]:
        """Dominant colours, histograms (and CLIP embeddings) of the reference images."""
        cache = self._reference_cache
        if "colours" in cache or self._bible is None:
            return cache
        colours, weights, hists, images = [], [], [], []
        for ref in self._bible.reference_images:
            image = read_image_safely(self.resolve(ref))
            images.append(image)
            c, w = dominant_colours(image)
            colours.append(c)
            weights.append(w / len(self._bible.reference_images))
            hists.append(hsv_histogram(image))
        cache["colours"] = colours
        cache["weights"] = weights
        cache["histogram"] = np.mean(hists, axis=0) if hists else None
        cache["images"] = images
        return cache

    def _clip_encoder(self) -> tuple[ClipImageEncoder | None, str]:
        folder = find_clip_encoder(self.models_dir, self.clip_model)
        if folder is None:
            return None, "no CLIP image encoder in models/clip"
        try:
            return ClipImageEncoder.load(folder), ""
        except BackendError as err:
            return None, str(err)

    def detect_style_drift(self, image_path: Path) -> dict[str, Any]:
        """Measure how far ``image_path`` is from the bible's look (see the module docs).

        Returns
        -------
        dict
            ``drift_score`` (0..1), ``drift_detected``, ``threshold``, ``methods`` (the
            measures used), ``palette_distance`` (ΔE) and ``palette_score``,
            ``histogram_distance``, ``clip_distance`` (``None`` when not used),
            ``clip_note`` (why CLIP was not used), ``image_palette`` (hex).

        Raises
        ------
        ParameterError
            No bible loaded, or one with neither palette nor reference images.
        MediaInputError
            The image (or a reference image) cannot be read.
        """
        bible = self._bible
        if bible is None:
            raise ParameterError("style_bible", None, "a loaded style bible (load_style_bible)")
        if not bible.palette and not bible.reference_images:
            raise ParameterError(
                "style_bible", bible.name, "a palette or reference images to measure drift against"
            )
        image = read_image_safely(image_path)
        refs = self._references()
        centres, weights = dominant_colours(image)
        targets = list(refs["colours"])
        if bible.palette:
            targets.append(rgb_to_lab(np.array(bible.palette, dtype=np.float64)))
        # One way: how far each of the image's colours is from the nearest colour of the
        # look, weighted by its share of the image.  (A palette colour that this one shot
        # does not use is no drift.)
        nearest = np.linalg.norm(
            centres[:, None, :] - np.concatenate(targets)[None, :, :], axis=-1
        ).min(axis=1)
        delta_e = float(weights @ nearest)
        scores = {"palette": min(1.0, delta_e / _DELTA_E_SCALE)}
        report: dict[str, Any] = {
            "palette_distance": round(delta_e, 3),
            "palette_score": round(scores["palette"], 4),
            "histogram_distance": None,
            "clip_distance": None,
            "clip_note": "",
        }
        if refs["histogram"] is not None:
            scores["histogram"] = histogram_distance(hsv_histogram(image), refs["histogram"])
            report["histogram_distance"] = round(scores["histogram"], 4)
            encoder, note = self._clip_encoder()
            if encoder is not None:
                if refs.get("clip_key") != encoder.key:
                    ref_emb = encoder.embed(refs["images"]).mean(axis=0)
                    refs["clip"] = ref_emb / max(float(np.linalg.norm(ref_emb)), 1e-12)
                    refs["clip_key"] = encoder.key
                emb = encoder.embed([image])[0]
                scores["clip"] = float(np.clip(1.0 - float(emb @ refs["clip"]), 0.0, 1.0))
                report["clip_distance"] = round(scores["clip"], 4)
                report["clip_model"] = encoder.key
            else:
                report["clip_note"] = note
        else:
            report["clip_note"] = "no reference images: histogram and CLIP measures need them"
        drift = float(np.mean(list(scores.values())))
        lab_to_hex = _lab_to_hex(centres)
        report.update(
            {
                "image_path": str(image_path),
                "drift_score": round(drift, 4),
                "drift_detected": drift > bible.drift_threshold,
                "threshold": bible.drift_threshold,
                "methods": list(scores),
                "image_palette": lab_to_hex,
                "reference_count": len(bible.reference_images),
            }
        )
        if report["drift_detected"]:
            log.warning(
                "style drift %.2f > %.2f for %s (%s)",
                drift,
                bible.drift_threshold,
                image_path,
                ", ".join(scores),
            )
        return report

    def calculate_style_similarity(self, style1: dict[str, Any], style2: dict[str, Any]) -> float:
        """Similarity of two style definitions, 0..1 (see the module docs for the formula).

        Both are style-bible dictionaries (validated the same way, so an invalid one
        raises :class:`ParameterError`).
        """
        a, b = _validate(style1, self.project_dir), _validate(style2, self.project_dir)
        parts: list[tuple[float, float]] = []
        if a.palette and b.palette:
            de = palette_distance(
                rgb_to_lab(np.array(a.palette, float)), rgb_to_lab(np.array(b.palette, float))
            )
            parts.append((0.5, max(0.0, 1.0 - de / _DELTA_E_SCALE)))
        for weight, x, y in (
            (0.3, a.prompt_template, b.prompt_template),
            (0.1, a.negative_prompt, b.negative_prompt),
        ):
            if x and y:
                score = _jaccard(x, y)
                if score is not None:
                    parts.append((weight, score))
        presets = [
            float(x == y)
            for x, y in ((a.director_style, b.director_style), (a.genre, b.genre))
            if x and y
        ]
        if presets:
            parts.append((0.1, sum(presets) / len(presets)))
        total = sum(w for w, _ in parts)
        if total == 0:
            return 0.0
        value = sum(w * s for w, s in parts) / total
        return float(min(1.0, max(0.0, value)))


def _lab_to_hex(lab: np.ndarray) -> list[str]:
    import cv2

    # OpenCV's float Lab conversion expects L 0..100, a/b -127..127 and gives RGB 0..1.
    rgb = cv2.cvtColor(lab.reshape(1, -1, 3).astype(np.float32), cv2.COLOR_Lab2RGB)
    rgb = np.clip(np.round(rgb.reshape(-1, 3) * 255.0), 0, 255).astype(int)
    return ["#{:02x}{:02x}{:02x}".format(*c) for c in rgb]
