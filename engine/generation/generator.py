"""CinematicImageGenerator: stills for shots, in the project's style, with its characters.

One call turns a :class:`~engine.generation.prompting.GenerationRequest` into a PNG in
the output folder (``<project>/images`` by default):

1. prompts are composed within the text encoder's token budget
   (:func:`~engine.generation.prompting.compose_prompts`), with the style bible's
   template and negatives and the character's description;
2. the seed is the request's, else the character's fixed seed (when the character is
   maintained), else the style bible's seed family (the same base seed for every shot,
   so shots share their initial noise); variants add 1, 2, ...;
3. the image backends are tried in the configured order (``backend_order``); one that
   raises :class:`~engine.errors.BackendError` or
   :class:`~engine.errors.GenerationError` is skipped (logged, and listed under
   ``failover`` in the result) and the next one is tried;
4. the PNG and a JSON sidecar with the result are written atomically.  Their name
   carries a hash of every input (prompts, seed, size, steps, guidance, conditioning,
   backend order), so asking again for the same still returns the file on disk
   (``cached: True``) instead of generating it again.

Character conditioning
    With ``maintain_character``, shots are conditioned on the character's first reference
    at the character's seed (see
    :meth:`~engine.generation.characters.CharacterConsistencyManager.conditioning_for`):
    through an IP-Adapter when its weights and image encoder are in ``models/``, else as
    the ``init_image`` of an img2img pass.  ``character_conditioning`` in the result says
    which ran (``method``: ``"ip_adapter"``, ``"img2img"`` or ``"not applied"``).
    Only backends with an image input (``diffusers``) can use it; on the others the
    result says ``"not applied"`` and why.  The result then carries a consistency check.

Drafts
    The ``procedural`` backend paints from the user's own prompt words (its scene
    families are chosen by keywords; style fragments would only confuse them) and the
    style bible's palette, or the director preset's palette.  Its results have
    ``draft: True``.

Variant score (:func:`score_image`)
    ``sharpness``: variance of the Laplacian of the grey image resized to 512 px on its
    long side, mapped to 0..1 by ``v / (v + 100)``; ``exposure``: ``(1 - 4 c) * (1 - 2
    d)`` floored at 0, with ``c`` the share of clipped pixels (every channel <= 2, or
    any channel >= 254) and ``d`` the distance of the mean luma from mid-grey (0.46, 18 %
    grey in sRGB; night scenes score lower on this part by design);
    ``style``: ``1 - drift_score`` against the style bible (when it has a palette or
    references); ``character``: the consistency confidence (when a character is
    maintained).  ``total`` is the weighted mean of the parts present with weights 0.3,
    0.3, 0.2, 0.2.  The variant with the highest total wins (ties: lowest seed).
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import json
import logging
import math
import re
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from engine.atomic_files import atomic_write_bytes, atomic_write_text
from engine.context import StageContext
from engine.errors import BackendError, CancelledError, GenerationError, ParameterError
from engine.generation.characters import CharacterConsistencyManager
from engine.generation.image_io import read_image_safely
from engine.generation.prompting import (
    ComposedPrompt,
    GenerationRequest,
    TokenCounter,
    compose_prompts,
    get_preset,
)
from engine.generation.style_bible import StylePersistenceManager
from engine.generation.types import ImageBackend, StillRequest

__all__ = ["SCORE_WEIGHTS", "CinematicImageGenerator", "score_image"]

log = logging.getLogger(__name__)

#: Weights of the variant score's parts (renormalised over the parts present).
SCORE_WEIGHTS = {"sharpness": 0.3, "exposure": 0.3, "style": 0.2, "character": 0.2}
_SHARPNESS_HALF = 100.0
_MID_GREY = 0.46
_CONFIG_KEYS = {
    "backend_order",
    "model",
    "models_dir",
    "device",
    "images_dir",
    "diffusers_options",
    "output_dir",
    "variants",
    "batch_size",
    "clip_model",
    "min_width",
    "min_height",
}


# --------------------------------------------------------------------------- scoring


def _luma(image: np.ndarray) -> np.ndarray:
    return image[..., 0] * 0.2126 + image[..., 1] * 0.7152 + image[..., 2] * 0.0722


def sharpness(image: np.ndarray) -> tuple[float, float]:
    """``(variance of Laplacian at 512 px, normalised 0..1)`` of an RGB uint8 image."""
    import cv2

    grey = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
    h, w = grey.shape
    scale = 512.0 / max(h, w)
    if scale != 1.0:
        interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC
        grey = cv2.resize(grey, (max(1, round(w * scale)), max(1, round(h * scale))), interp)
    variance = float(cv2.Laplacian(grey, cv2.CV_64F).var())
    return variance, variance / (variance + _SHARPNESS_HALF)


def exposure(image: np.ndarray) -> dict[str, float]:
    """Clipping, mean luma and the 0..1 exposure score of an RGB uint8 image."""
    peak = image.max(axis=2)
    shadows = float(np.mean(peak <= 2))  # every channel black
    highlights = float(np.mean(peak >= 254))  # at least one channel clipped
    mean = float(_luma(image.astype(np.float32)).mean() / 255.0)
    clipped = shadows + highlights
    score = max(0.0, 1.0 - 4.0 * clipped) * max(0.0, 1.0 - 2.0 * abs(mean - _MID_GREY))
    return {
        "clipped_shadows": shadows,
        "clipped_highlights": highlights,
        "mean_luma": mean,
        "score": score,
    }


def score_image(
    image: np.ndarray,
    *,
    style_drift: float | None = None,
    character_confidence: float | None = None,
) -> dict[str, float]:
    """The variant score (see the module docs): parts and ``total``, each 0..1."""
    parts = {"sharpness": sharpness(image)[1], "exposure": exposure(image)["score"]}
    if style_drift is not None:
        parts["style"] = max(0.0, 1.0 - style_drift)
    if character_confidence is not None:
        parts["character"] = character_confidence
    weight = sum(SCORE_WEIGHTS[k] for k in parts)
    total = sum(SCORE_WEIGHTS[k] * v for k, v in parts.items()) / weight
    return {**{k: round(v, 4) for k, v in parts.items()}, "total": round(total, 4)}


# --------------------------------------------------------------------------- jobs


@dataclass
class _Job:
    request: GenerationRequest
    composed: ComposedPrompt
    seed: int
    key: str
    path: Path
    character_id: str = ""
    conditioning: dict[str, Any] | None = None
    init_image: np.ndarray | None = None
    compose_s: float = 0.0
    notes: list[str] = field(default_factory=list)


@dataclass
class _Rendered:
    image: np.ndarray
    backend: str
    draft: bool
    failover: list[dict[str, str]]
    generate_s: float
    conditioning_applied: bool
    model: str | None = None


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "-", text).strip("-")[:40] or "image"


class CinematicImageGenerator:
    """Generates the stills of a video (see the module docs for what each call does).

    Parameters
    ----------
    base_dir : Path
        The project folder: the style bible and characters are read from it, stills
        are written to ``base_dir/images`` unless ``config["output_dir"]`` says otherwise.
    config : dict, optional
        ``backend_order`` (list of backend names; default ``["diffusers", "procedural"]``
        when ``model`` is given, else ``["procedural"]``), ``model`` (checkpoint path or
        name), ``models_dir``, ``device``, ``images_dir`` (stills backend),
        ``diffusers_options`` (dict for the diffusers backend), ``output_dir``,
        ``variants`` (default count for :meth:`generate_with_variants`, 4),
        ``batch_size`` (prompts per GPU batch, 4), ``clip_model``, ``min_width`` and
        ``min_height`` (quality check, default 1920 x 1080).
    backends : sequence of ImageBackend, optional
        Ready backend objects to use in this order instead of ``backend_order``.
    tokenizer : callable, optional
        Token counter for prompt composition (default: the shipped CLIP tokenizer).
    context : StageContext, optional
        Progress events and cancellation.

    Raises
    ------
    ParameterError
        An unknown config key or an invalid value.
    """

    def __init__(
        self,
        base_dir: Path,
        config: dict[str, Any] | None = None,
        *,
        backends: Sequence[ImageBackend] | None = None,
        tokenizer: TokenCounter | None = None,
        context: StageContext | None = None,
    ) -> None:
        self.base_dir = Path(base_dir)
        cfg = dict(config or {})
        unknown = sorted(set(cfg) - _CONFIG_KEYS)
        if unknown:
            raise ParameterError(
                f"config.{unknown[0]}", cfg[unknown[0]], f"one of {', '.join(sorted(_CONFIG_KEYS))}"
            )
        self.config = cfg
        default_order = ["diffusers", "procedural"] if cfg.get("model") else ["procedural"]
        order = cfg.get("backend_order") or default_order
        if isinstance(order, str) or not all(isinstance(n, str) for n in order):
            raise ParameterError("config.backend_order", order, "a list of backend names")
        self.backend_order: list[str] = list(order)
        for key, low, high in (("variants", 1, 16), ("batch_size", 1, 64)):
            value = cfg.get(key, 4)
            if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
                raise ParameterError(f"config.{key}", value, f"an integer in {low}..{high}")
        self.default_variants: int = cfg.get("variants", 4)
        self.batch_size: int = cfg.get("batch_size", 4)
        self.models_dir = Path(cfg["models_dir"]) if cfg.get("models_dir") else None
        self.output_dir = Path(cfg.get("output_dir") or self.base_dir / "images")
        self.style = StylePersistenceManager(
            self.base_dir, models_dir=self.models_dir, clip_model=cfg.get("clip_model")
        )
        self.characters = CharacterConsistencyManager(
            self.base_dir, models_dir=self.models_dir, clip_model=cfg.get("clip_model")
        )
        self.context = context
        self._tokenizer = tokenizer
        self._given_backends = list(backends) if backends is not None else None
        self._backends: dict[str, ImageBackend] = {}
        self._unavailable: dict[str, str] = {}
        self._lock = threading.RLock()

    # ------------------------------------------------------------------ backends

    def _candidates(self, name: str = "") -> list[tuple[str, ImageBackend | None]]:
        if self._given_backends is not None:
            chosen = [b for b in self._given_backends if not name or b.name == name]
            if not chosen:
                raise ParameterError(
                    "backend", name, f"one of {', '.join(b.name for b in self._given_backends)}"
                )
            return [(b.name, b) for b in chosen]
        return [(n, self._backends.get(n)) for n in ([name] if name else self.backend_order)]

    def _backend(self, name: str) -> ImageBackend:
        if name in self._unavailable:
            raise BackendError(self._unavailable[name], backend_name=name)
        if name not in self._backends:
            from engine.generation.backends import create_backend

            kwargs: dict[str, Any] = {}
            if name == "stills":
                kwargs["images_dir"] = self.config.get("images_dir")
            if name == "diffusers":
                kwargs.update(
                    model=self.config.get("model"),
                    device=self.config.get("device", "auto"),
                    models_dir=self.models_dir,
                    **dict(self.config.get("diffusers_options") or {}),
                )
            try:
                backend = create_backend(name, **kwargs)
                if hasattr(backend, "load"):
                    backend.load()
            except BackendError as err:
                self._unavailable[name] = str(err)  # do not retry it for every still
                raise
            self._backends[name] = backend
        return self._backends[name]

    # ------------------------------------------------------------------ preparing

    def _prepare(
        self, request: GenerationRequest, *, variant: int = 0, seed: int | None = None
    ) -> _Job:
        started = time.perf_counter()
        bible = self.style.style_bible
        if bible is not None and (bible.director_style or bible.genre):
            changes: dict[str, Any] = {}
            if bible.director_style and not request.director_style:
                changes["director_style"] = bible.director_style
            if bible.genre and request.genre == "cinematic":  # the request kept the default
                changes["genre"] = bible.genre
            if changes:
                request = dataclasses.replace(request, **changes)
        character_id, description, conditioning = "", "", None
        if request.character_name:
            profile = self.characters.get_profile(request.character_name)
            character_id, description = profile.id, profile.description
            if request.maintain_character:
                conditioning = self.characters.conditioning_for(profile.id)
        composed = compose_prompts(request, bible, self._tokenizer, character=description)
        if seed is None:
            if request.seed is not None:
                seed = (request.seed + variant) % 2**32
            elif conditioning is not None:
                seed = (int(conditioning["seed"]) + variant) % 2**32
            else:
                seed = self.style.seed_for(variant)
        key_data = {
            "positive": composed.positive,
            "negative": composed.negative,
            "seed": seed,
            "size": [request.width, request.height],
            "steps": request.steps,
            "guidance": request.guidance_scale,
            "backend": request.backend or [n for n, _ in self._candidates()],
            "model": str(self.config.get("model", "")),
            "draft_prompt": request.prompt,
            "energy": request.energy,
            "section": request.section,
            "shot_index": request.shot_index,
            "palette": self._draft_palette(request),
            "conditioning": (
                [
                    conditioning["method"],
                    str(conditioning["init_image"]),
                    conditioning["strength"],
                    str(conditioning.get("ip_adapter")),
                    conditioning.get("ip_adapter_scale"),
                ]
                if conditioning
                else None
            ),
        }
        key = hashlib.sha256(json.dumps(key_data, sort_keys=True).encode()).hexdigest()
        name = f"{_slug(request.scene_id or request.prompt)}-{seed}-{key[:12]}.png"
        return _Job(
            request=request,
            composed=composed,
            seed=seed,
            key=key,
            path=self.output_dir / name,
            character_id=character_id,
            conditioning=conditioning,
            compose_s=time.perf_counter() - started,
        )

    def _draft_palette(self, request: GenerationRequest) -> list[list[int]]:
        bible = self.style.style_bible
        if bible is not None and bible.palette:
            return [list(c) for c in bible.palette]
        if request.director_style:
            return [list(c) for c in get_preset("directors", request.director_style).palette]
        return []

    def _init_image(self, job: _Job, width: int, height: int) -> np.ndarray | None:
        if job.conditioning is None:
            return None
        from engine.generation.stills import cover_crop

        image = read_image_safely(job.conditioning["init_image"])
        return cover_crop(image, width, height)

    # ------------------------------------------------------------------ rendering

    def _render(self, jobs: Sequence[_Job]) -> list[_Rendered]:
        """Render jobs that share a request shape, failing over along the backend order."""
        request = jobs[0].request
        failover: list[dict[str, str]] = []
        for name, given in self._candidates(request.backend):
            if self.context is not None:
                self.context.check_cancelled()
            try:
                with self._lock:
                    backend = given if given is not None else self._backend(name)
                    started = time.perf_counter()
                    if hasattr(backend, "diffuse"):
                        images = self._diffuse(backend, jobs)
                        applied = True
                    else:
                        images = [self._still(backend, job) for job in jobs]
                        applied = False
                    elapsed = (time.perf_counter() - started) / len(jobs)
            except CancelledError:
                raise
            except (BackendError, GenerationError) as err:
                failover.append({"backend": name, "error": str(err)})
                log.warning("image backend %s failed (%s); trying the next one", name, err)
                continue
            return [
                _Rendered(
                    image=img,
                    backend=backend.name,
                    draft=bool(backend.is_draft),
                    failover=list(failover),
                    generate_s=elapsed,
                    conditioning_applied=applied,
                    model=str(getattr(backend, "model_path", "")) or None,
                )
                for img in images
            ]
        raise BackendError(
            "no image backend could make the still: "
            + "; ".join(f"{f['backend']}: {f['error']}" for f in failover),
            backend_name=",".join(f["backend"] for f in failover),
        )

    def _still(self, backend: ImageBackend, job: _Job) -> np.ndarray:
        request = job.request
        palette = tuple(tuple(c) for c in self._draft_palette(request))
        return backend.generate(
            StillRequest(
                prompt=request.prompt,
                seed=job.seed,
                width=request.width,
                height=request.height,
                palette=palette,  # type: ignore[arg-type]
                energy=float(request.energy),
                section=request.section,
                shot_index=request.shot_index,
            )
        )

    def _diffuse(self, backend: Any, jobs: Sequence[_Job]) -> list[np.ndarray]:
        import cv2

        from engine.generation.diffusers_backend import DiffusionRequest

        request = jobs[0].request
        width, height = backend.native_size(request.width, request.height)
        out: list[np.ndarray] = []
        # Jobs with the same conditioning image batch together; img2img needs one image.
        groups: dict[tuple[str, str], list[_Job]] = {}
        for job in jobs:
            cond = job.conditioning
            key = (str(cond["method"]), str(cond["init_image"])) if cond else ("", "")
            groups.setdefault(key, []).append(job)
        results: dict[int, np.ndarray] = {}
        for (method, ref), members in groups.items():
            cond = members[0].conditioning
            ip_kwargs: dict[str, Any] = {}
            if method == "ip_adapter" and cond is not None:
                ip_kwargs = {
                    "ip_adapter": Path(cond["ip_adapter"]),
                    "ip_adapter_image": read_image_safely(cond["init_image"]),
                    "ip_adapter_scale": float(cond["ip_adapter_scale"]),
                    "ip_adapter_encoder": cond.get("image_encoder"),
                }
            # IP-Adapter: text-to-image at the character's seed, guided by the adapter
            img2img = bool(ref) and not ip_kwargs
            init = self._init_image(members[0], width, height) if img2img else None
            strength = float(cond["strength"]) if img2img and cond else 0.6
            steps = request.steps
            if init is not None and steps * strength < 1:
                # img2img runs only the last `strength` part of the schedule: make it >= 1 step
                steps = math.ceil(1 / strength)
                log.info(
                    "img2img at strength %.2f needs %d steps (asked %d)",
                    strength,
                    steps,
                    request.steps,
                )
            for start in range(0, len(members), self.batch_size):
                chunk = members[start : start + self.batch_size]
                images = backend.diffuse(
                    DiffusionRequest(
                        prompts=tuple(j.composed.positive for j in chunk),
                        seeds=tuple(j.seed for j in chunk),
                        negative_prompt=chunk[0].composed.negative,
                        width=width,
                        height=height,
                        steps=steps,
                        guidance=float(request.guidance_scale),
                        init_image=init,
                        strength=strength,
                        **ip_kwargs,
                    ),
                    self.context,
                )
                for job, image in zip(chunk, images, strict=True):
                    results[id(job)] = image
        for job in jobs:
            image = results[id(job)]
            if image.shape[:2] != (request.height, request.width):
                interp = cv2.INTER_AREA if width > request.width else cv2.INTER_LANCZOS4
                image = cv2.resize(image, (request.width, request.height), interpolation=interp)
            out.append(image)
        return out

    # ------------------------------------------------------------------ results

    def _cached(self, job: _Job) -> dict[str, Any] | None:
        sidecar = job.path.with_suffix(".json")
        if not (job.path.is_file() and sidecar.is_file()):
            return None
        try:
            result = json.loads(sidecar.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        if result.get("key") != job.key:
            return None
        result["cached"] = True
        return result

    def _finish(self, job: _Job, rendered: _Rendered) -> dict[str, Any]:
        import cv2

        started = time.perf_counter()
        self.output_dir.mkdir(parents=True, exist_ok=True)
        ok, encoded = cv2.imencode(".png", cv2.cvtColor(rendered.image, cv2.COLOR_RGB2BGR))
        if not ok:  # pragma: no cover - OpenCV always encodes uint8 RGB
            raise GenerationError("could not encode the still as PNG", backend=rendered.backend)
        atomic_write_bytes(job.path, encoded.tobytes())
        write_s = time.perf_counter() - started
        request = job.request
        if job.conditioning is None:
            conditioning = None
        elif rendered.conditioning_applied and job.conditioning["method"] == "ip_adapter":
            conditioning = {
                "method": "ip_adapter",
                "ip_adapter": str(job.conditioning["ip_adapter"]),
                "image_encoder": str(job.conditioning["image_encoder"]),
                "ip_adapter_scale": job.conditioning["ip_adapter_scale"],
                "reference_image": str(job.conditioning["init_image"]),
            }
        elif rendered.conditioning_applied:
            conditioning = {
                "method": "img2img",
                "init_image": str(job.conditioning["init_image"]),
                "strength": job.conditioning["strength"],
                "ip_adapter_found": job.conditioning["ip_adapter"] is not None,
                "fallback_reason": job.conditioning.get("fallback_reason"),
            }
        else:
            conditioning = {
                "method": "not applied",
                "reason": f"the {rendered.backend} backend has no image input",
            }
        result: dict[str, Any] = {
            "success": True,
            "key": job.key,
            "path": str(job.path),
            "scene_id": request.scene_id,
            "seed": job.seed,
            "backend": rendered.backend,
            "draft": rendered.draft,
            "model": rendered.model,
            "width": request.width,
            "height": request.height,
            "prompt": job.composed.positive,
            "negative_prompt": job.composed.negative,
            "prompts": {
                "user": request.prompt,
                "positive": job.composed.positive,
                "negative": job.composed.negative,
                "tokens_used": job.composed.tokens_used,
                "negative_tokens_used": job.composed.negative_tokens_used,
                "dropped": list(job.composed.dropped),
                "truncated_tokens": job.composed.truncated_tokens,
                "draft_prompt": request.prompt if rendered.draft else None,
            },
            "failover": rendered.failover,
            "character_id": job.character_id or None,
            "character_conditioning": conditioning,
            "request": request.to_dict(),
            "timings": {
                "compose_s": round(job.compose_s, 4),
                "generate_s": round(rendered.generate_s, 4),
                "write_s": round(write_s, 4),
            },
            "cached": False,
        }
        atomic_write_text(job.path.with_suffix(".json"), json.dumps(result, indent=2) + "\n")
        return result

    def _checks(self, result: dict[str, Any], *, style: bool, character: bool) -> None:
        """Add drift / consistency reports and the score to ``result`` (in place)."""
        started = time.perf_counter()
        path = Path(result["path"])
        bible = self.style.style_bible
        drift = None
        if style and bible is not None and (bible.palette or bible.reference_images):
            result["style_drift"] = self.style.detect_style_drift(path)
            drift = result["style_drift"]["drift_score"]
        confidence = None
        if character and result.get("character_id"):
            report = self.characters.check_consistency(path, result["character_id"])
            result["character_consistency"] = report
            confidence = report["confidence"]
        result["score"] = score_image(
            read_image_safely(path), style_drift=drift, character_confidence=confidence
        )
        result["timings"]["checks_s"] = round(time.perf_counter() - started, 4)

    def _run(
        self, jobs: list[_Job], *, style: bool | None = None, character: bool | None = None
    ) -> list[dict[str, Any]]:
        """Render (or reuse) jobs, grouped by request shape for batching; keep order."""
        results: dict[int, dict[str, Any]] = {}
        pending: dict[tuple[Any, ...], list[_Job]] = {}
        for job in jobs:
            cached = self._cached(job)
            if cached is not None:
                results[id(job)] = cached
                continue
            r = job.request
            shape = (r.backend, r.width, r.height, r.steps, r.guidance_scale, job.composed.negative)
            pending.setdefault(shape, []).append(job)
        done = 0
        for group in pending.values():
            for start in range(0, len(group), self.batch_size):
                chunk = group[start : start + self.batch_size]
                for job, rendered in zip(chunk, self._render(chunk), strict=True):
                    results[id(job)] = self._finish(job, rendered)
                done += len(chunk)
                if self.context is not None:
                    self.context.progress(done, len(jobs), "stills generated")
        out = []
        for job in jobs:
            result = results[id(job)]
            if "score" not in result or not result.get("cached"):
                self._checks(
                    result,
                    style=job.request.style_constraints if style is None else style,
                    character=job.request.maintain_character if character is None else character,
                )
            if job.request.upscale and "upscaled" not in result:
                result["upscaled"] = self._upscale(Path(result["path"]), job.request.upscale_preset)
            result["timings"]["total_s"] = round(
                sum(v for k, v in result["timings"].items() if k != "total_s"), 4
            )
            if not result.get("cached"):
                atomic_write_text(
                    job.path.with_suffix(".json"), json.dumps(result, indent=2) + "\n"
                )
            out.append(result)
        return out

    # ------------------------------------------------------------------ public API

    def generate_single(self, request: GenerationRequest) -> dict[str, Any]:
        """Blocking version of :meth:`generate_single_image`."""
        return self._run([self._prepare(request)])[0]

    async def generate_single_image(self, request: GenerationRequest) -> dict[str, Any]:
        """Generate one still.

        Returns
        -------
        dict
            ``path``, ``seed``, ``backend``, ``draft``, ``prompt`` / ``negative_prompt``
            and ``prompts`` (tokens used, dropped fragments), ``failover``,
            ``character_conditioning``, ``style_drift`` (with ``style_constraints``),
            ``character_consistency`` (with ``maintain_character``), ``score``,
            ``upscaled`` (with ``upscale``), ``timings``, ``cached``.

        Raises
        ------
        BackendError
            Every backend of the order failed (each named with its reason).
        ParameterError
            Unknown character, or a prompt over budget in strict mode.
        CancelledError
            Cancelled through the context.
        """
        return await asyncio.to_thread(self.generate_single, request)

    def generate_sequence(self, requests: Sequence[GenerationRequest]) -> dict[str, Any]:
        """Blocking version of :meth:`generate_image_sequence`."""
        if not requests:
            raise ParameterError("requests", [], "one or more generation requests")
        started = time.perf_counter()
        jobs = [
            self._prepare(r if r.shot_index else dataclasses.replace(r, shot_index=i))
            for i, r in enumerate(requests)
        ]
        bible = self.style.style_bible
        has_look = bible is not None and bool(bible.palette or bible.reference_images)
        results = self._run(jobs, style=has_look or None)
        drifts = [r["style_drift"]["drift_score"] for r in results if "style_drift" in r]
        confidences = {
            i: r["character_consistency"]
            for i, r in enumerate(results)
            if "character_consistency" in r
        }
        summary: dict[str, Any] = {
            "success": True,
            "count": len(results),
            "images": results,
            "seed_family": bible.seed_family if bible is not None else 0,
            "style_consistency": None,
            "character_consistency": None,
            "total_s": round(time.perf_counter() - started, 4),
        }
        if drifts:
            summary["style_consistency"] = {
                "mean_drift": round(float(np.mean(drifts)), 4),
                "max_drift": round(float(np.max(drifts)), 4),
                "drifted_shots": [
                    i
                    for i, r in enumerate(results)
                    if r.get("style_drift", {}).get("drift_detected")
                ],
            }
        if confidences:
            summary["character_consistency"] = {
                "mean_confidence": round(
                    float(np.mean([c["confidence"] for c in confidences.values()])), 4
                ),
                "inconsistent_shots": [i for i, c in confidences.items() if not c["consistent"]],
            }
        return summary

    async def generate_image_sequence(self, requests: list[GenerationRequest]) -> dict[str, Any]:
        """Generate the stills of several shots in one look.

        Every shot shares the style bible (template, negatives, palette), the seed family
        (same base seed unless a request sets its own) and, for requests that maintain a
        character, the character's reference conditioning and seed.  When the bible has
        a palette or reference images every still gets a drift report.

        Returns
        -------
        dict
            ``images`` (one result per request, in order), ``count``, ``seed_family``,
            ``style_consistency`` (mean/max drift, drifted shot indexes) and
            ``character_consistency`` (mean confidence, inconsistent shot indexes), each
            ``None`` when not measured, ``total_s``.
        """
        return await asyncio.to_thread(self.generate_sequence, requests)

    def generate_variants(self, request: GenerationRequest) -> dict[str, Any]:
        """Blocking version of :meth:`generate_with_variants`."""
        count = request.variants if request.variants > 1 else self.default_variants
        started = time.perf_counter()
        jobs = [self._prepare(request, variant=k) for k in range(count)]
        bible = self.style.style_bible
        has_look = bible is not None and bool(bible.palette or bible.reference_images)
        results = self._run(jobs, style=has_look, character=bool(request.character_name))
        best = max(
            range(len(results)), key=lambda i: (results[i]["score"]["total"], -results[i]["seed"])
        )
        return {
            "success": True,
            "best": results[best],
            "best_index": best,
            "best_path": results[best]["path"],
            "variants": results,
            "count": len(results),
            "score_weights": dict(SCORE_WEIGHTS),
            "total_s": round(time.perf_counter() - started, 4),
        }

    async def generate_with_variants(self, request: GenerationRequest) -> dict[str, Any]:
        """Generate ``request.variants`` stills (or ``config["variants"]`` when it is 1)
        on consecutive seeds and pick the best by :func:`score_image`.

        Returns
        -------
        dict
            ``best`` (its result), ``best_index``, ``best_path``, ``variants`` (every
            result with its ``score``), ``count``, ``score_weights``, ``total_s``.
        """
        return await asyncio.to_thread(self.generate_variants, request)

    def generate_many(self, requests: Sequence[GenerationRequest]) -> list[dict[str, Any]]:
        """Blocking version of :meth:`generate_batch`."""
        return self._run([self._prepare(r) for r in requests])

    async def generate_batch(self, requests: list[GenerationRequest]) -> list[dict[str, Any]]:
        """Generate many stills; on the diffusers backend, requests with the same size,
        steps, guidance and negative prompt run together, ``batch_size`` prompts per
        GPU batch.  Results come back in request order."""
        return await asyncio.to_thread(self.generate_many, requests)

    def _upscale(self, image_path: Path, preset: str) -> dict[str, Any]:
        from engine.generation.upscale import upscale_file

        image_path = Path(image_path)
        destination = self.output_dir / "upscaled" / f"{image_path.stem}_{preset}.png"
        info = upscale_file(
            image_path,
            destination,
            preset,
            models_dir=self.models_dir,
            device=self.config.get("device", "auto"),
            context=self.context,
        )
        return {"success": True, "input_path": str(image_path), **info}

    async def upscale_image(self, image_path: Path, preset: str = "high_quality") -> dict[str, Any]:
        """Upscale a still with :mod:`engine.generation.upscale` (Real-ESRGAN, or its labelled
        classical fallback) into ``<output_dir>/upscaled/<name>_<preset>.png``.

        Returns
        -------
        dict
            The upscaler's info (``model``, ``backend``, ``scale``, ``preset``, ...) with
            ``output_path`` and ``input_path``.

        Raises
        ------
        ParameterError
            Unknown preset.
        MediaInputError
            The image cannot be read safely.
        """
        return await asyncio.to_thread(self._upscale, Path(image_path), preset)

    def check_quality(self, image_path: Path | str) -> dict[str, Any]:
        """Blocking version of :meth:`validate_image_quality`."""
        image_path = Path(image_path)
        image = read_image_safely(image_path)
        h, w = image.shape[:2]
        min_w = int(self.config.get("min_width", 1920))
        min_h = int(self.config.get("min_height", 1080))
        variance, sharp = sharpness(image)
        exp = exposure(image)
        luma = _luma(image.astype(np.float32))
        issues: list[str] = []
        if w < min_w or h < min_h:
            issues.append(
                f"resolution {w}x{h} is below {min_w}x{min_h}; upscale it (preset 'broadcast')"
            )
        if float(luma.std()) < 4.0:
            issues.append("the image is almost uniform (blank or failed generation)")
        elif sharp < 0.3:
            issues.append(f"soft image (Laplacian variance {variance:.0f}); regenerate or sharpen")
        if exp["clipped_highlights"] > 0.05:
            issues.append(f"{exp['clipped_highlights']:.0%} of pixels are clipped white")
        if exp["clipped_shadows"] > 0.10:
            issues.append(f"{exp['clipped_shadows']:.0%} of pixels are crushed black")
        aspect = w / h
        return {
            "path": str(image_path),
            "passed": not issues,
            "issues": issues,
            "width": w,
            "height": h,
            "aspect_ratio": round(aspect, 4),
            "is_16_9": abs(aspect - 16 / 9) < 0.01,
            "sharpness": round(sharp, 4),
            "laplacian_variance": round(variance, 2),
            "exposure": {k: round(v, 4) for k, v in exp.items()},
            "score": score_image(image)["total"],
        }

    async def validate_image_quality(self, image_path: Path) -> dict[str, Any]:
        """Check a still against delivery standards.

        Checks: resolution at least ``min_width`` x ``min_height`` (1920 x 1080 by
        default), not blank (luma standard deviation >= 4), sharp enough (normalised
        sharpness >= 0.3), at most 5 % clipped highlights and 10 % crushed shadows.

        Returns
        -------
        dict
            ``passed``, ``issues`` (what to do about each), ``width``, ``height``,
            ``aspect_ratio``, ``is_16_9``, ``sharpness``, ``laplacian_variance``,
            ``exposure`` (clipping, mean luma, score), ``score``.

        Raises
        ------
        MediaInputError
            The image cannot be read safely.
        """
        return await asyncio.to_thread(self.check_quality, image_path)
