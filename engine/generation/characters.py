"""Characters that stay the same person from shot to shot.

A character profile (id, name, description, reference images, a fixed seed) lives in
the project: ``characters/characters.json`` (written atomically) and one folder per
character, ``characters/<id>/``, with copies of the reference images and a cache of
their embeddings (``embeddings.npz``, one array per embedding method).

Embeddings
----------
CLIP image embeddings when a CLIP image encoder is in ``models/clip/`` (and torch and
transformers are installed); otherwise the classical descriptor of
:func:`engine.generation.embeddings.classical_embedding` (foreground hue-saturation
histogram + HOG shape descriptor).  The report of every call names the method used.

Consistency
-----------
:meth:`CharacterConsistencyManager.validate_consistency` gives the highest cosine
similarity between the image's embedding and those of the character's references
(an image needs to match one reference view, not all of them) as the confidence, and
calls it consistent at or above the method's threshold: 0.6 for the classical
descriptor (same synthetic figure under shifts, ±10 % scale, ±15 % brightness and
other backgrounds: >= 0.85; a different figure: <= 0.3), 0.75 for CLIP (a common
operating point for "same subject" with CLIP ViT image embeddings).

Conditioning generation on a character
---------------------------------------
:meth:`CharacterConsistencyManager.conditioning_for` returns what the generator passes
to the backend, always with the character's fixed ``seed`` (its seed family):

* ``method="ip_adapter"`` when IP-Adapter weights are in ``models/ip_adapters/`` *and* a
  CLIP image encoder for them is found (an ``image_encoder/`` folder next to the weights,
  else ``models/clip/``; see :mod:`engine.generation.ip_adapter`): the first reference
  image is the IP-Adapter image at ``ip_adapter_scale`` (0.6 by default) and the shot is
  generated from text at the character's seed;
* ``method="img2img"`` otherwise: reference img2img, the first reference image as
  ``init_image`` at ``strength`` 0.55 by default.  ``fallback_reason`` says why the
  IP-Adapter was not used (no weights, or weights without an image encoder).
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import json
import logging
import re
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from engine.atomic_files import atomic_write_bytes, atomic_write_text
from engine.errors import BackendError, MediaInputError, ParameterError
from engine.generation.embeddings import (
    ClipImageEncoder,
    classical_embedding,
    find_clip_encoder,
)
from engine.generation.image_io import read_image_safely
from engine.generation.ip_adapter import (
    DEFAULT_IP_ADAPTER_SCALE,
    find_image_encoder,
    find_ip_adapter,
)

__all__ = [
    "CLASSICAL_THRESHOLD",
    "CLIP_THRESHOLD",
    "CharacterConsistencyManager",
    "CharacterProfile",
]

log = logging.getLogger(__name__)

SCHEMA_VERSION = 1
CLASSICAL_THRESHOLD = 0.6
CLIP_THRESHOLD = 0.75
DEFAULT_STRENGTH = 0.55


@dataclass(frozen=True, kw_only=True)
class CharacterProfile:
    """One character of the project.

    Attributes
    ----------
    id : str
        Stable identifier (a slug of the name, made unique).
    name, description : str
    reference_images : tuple of str
        Copies in the project, relative to the project folder.
    seed : int
        The character's fixed seed (the seed family of its shots).
    created : float
        UNIX time of creation.
    """

    id: str
    name: str
    description: str
    reference_images: tuple[str, ...]
    seed: int
    created: float

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["reference_images"] = list(self.reference_images)
        return data


def _slug(name: str) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")
    return slug[:40] or "character"


def _method_key(method: str) -> str:
    return re.sub(r"[^A-Za-z0-9_]+", "_", method)


class CharacterConsistencyManager:
    """Character profiles of a project, their embeddings, checks and conditioning.

    Parameters
    ----------
    project_dir : Path
        The project folder; profiles live in ``project_dir/characters/``.
    models_dir : Path, optional
        The weights folder: ``clip/`` (image encoder) and ``ip_adapters/`` are looked
        up there.  ``None``: classical descriptor, img2img conditioning.
    clip_model : str, optional
        Which folder of ``models_dir/clip/`` to use (default: the first).
    threshold : float, optional
        Consistency threshold; default by method (0.6 classical, 0.75 CLIP).
    strength : float
        img2img strength of the conditioning (0 < strength <= 1).
    ip_adapter_scale : float
        IP-Adapter strength of the conditioning when its weights are present (0..2).

    Examples
    --------
    >>> characters = CharacterConsistencyManager(project)  # doctest: +SKIP
    >>> mara = await characters.create_character_profile(
    ...     "Mara", [Path("mara_front.png")], "young woman, short red hair, green raincoat")
    >>> await characters.validate_consistency(Path("shot_03.png"), mara)  # doctest: +SKIP
    (True, 0.91)
    """

    def __init__(
        self,
        project_dir: Path | str,
        *,
        models_dir: Path | str | None = None,
        clip_model: str | None = None,
        threshold: float | None = None,
        strength: float = DEFAULT_STRENGTH,
        ip_adapter_scale: float = DEFAULT_IP_ADAPTER_SCALE,
    ) -> None:
        self.project_dir = Path(project_dir)
        self.models_dir = Path(models_dir) if models_dir is not None else None
        self.clip_model = clip_model
        if threshold is not None and not 0.0 < threshold <= 1.0:
            raise ParameterError("threshold", threshold, "a number in (0, 1]")
        if not 0.0 < strength <= 1.0:
            raise ParameterError("strength", strength, "0 < strength <= 1")
        if not 0.0 <= ip_adapter_scale <= 2.0:
            raise ParameterError("ip_adapter_scale", ip_adapter_scale, "0.0..2.0")
        self.threshold = threshold
        self.strength = strength
        self.ip_adapter_scale = ip_adapter_scale
        self._profiles: dict[str, CharacterProfile] = {}
        self._memory: dict[tuple[str, str], np.ndarray] = {}
        if self.index_path.is_file():
            self._load()

    # ------------------------------------------------------------------ storage

    @property
    def folder(self) -> Path:
        return self.project_dir / "characters"

    @property
    def index_path(self) -> Path:
        return self.folder / "characters.json"

    def _load(self) -> None:
        try:
            document = json.loads(self.index_path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as err:
            raise MediaInputError(
                self.index_path, f"is not a readable character index ({err}); fix or delete it"
            ) from err
        version = document.get("schema_version") if isinstance(document, dict) else None
        if version != SCHEMA_VERSION:
            raise MediaInputError(
                self.index_path,
                f"has schema_version {version!r}; this version reads {SCHEMA_VERSION}. "
                "Update APEX Director",
            )
        for cid, data in document.get("characters", {}).items():
            self._profiles[cid] = CharacterProfile(
                id=cid,
                name=str(data["name"]),
                description=str(data.get("description", "")),
                reference_images=tuple(data["reference_images"]),
                seed=int(data["seed"]),
                created=float(data.get("created", 0.0)),
            )

    def _save(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        document = {
            "schema_version": SCHEMA_VERSION,
            "characters": {cid: p.to_dict() for cid, p in sorted(self._profiles.items())},
        }
        atomic_write_text(self.index_path, json.dumps(document, indent=2, sort_keys=True) + "\n")

    # ------------------------------------------------------------------ profiles

    def profiles(self) -> list[CharacterProfile]:
        """Every profile, oldest first."""
        return sorted(self._profiles.values(), key=lambda p: (p.created, p.id))

    def get_profile(self, character: str) -> CharacterProfile:
        """A profile by id or (case-insensitive) name.

        Raises
        ------
        ParameterError
            No such character; the message lists the ids there are.
        """
        if character in self._profiles:
            return self._profiles[character]
        for profile in self._profiles.values():
            if profile.name.lower() == character.strip().lower():
                return profile
        raise ParameterError(
            "character_id",
            character,
            f"one of {', '.join(self._profiles) or '(no characters yet)'}",
        )

    def create_profile(
        self,
        name: str,
        reference_images: Sequence[Path | str],
        description: str,
        *,
        seed: int | None = None,
    ) -> str:
        """Blocking version of :meth:`create_character_profile`."""
        if not isinstance(name, str) or not name.strip():
            raise ParameterError("name", name, "a non-empty character name")
        if isinstance(reference_images, str | Path) or not reference_images:
            raise ParameterError("reference_images", reference_images, "a list of 1+ image paths")
        if seed is not None and not 0 <= seed < 2**32:
            raise ParameterError("seed", seed, "an integer in 0..4294967295")
        images = []
        for path in reference_images:
            images.append((Path(path), read_image_safely(path)))  # MediaInputError if bad
        base = _slug(name)
        cid, n = base, 2
        while cid in self._profiles or (self.folder / cid).exists():
            cid, n = f"{base}-{n}", n + 1
        target = self.folder / cid
        target.mkdir(parents=True)
        copies = []
        for i, (source, _) in enumerate(images):
            suffix = source.suffix.lower() or ".png"
            copy = target / f"ref_{i:02d}{suffix}"
            atomic_write_bytes(copy, source.read_bytes())
            copies.append(str(copy.relative_to(self.project_dir)))
        digest = hashlib.sha256(cid.encode()).digest()
        profile = CharacterProfile(
            id=cid,
            name=" ".join(name.split()),
            description=" ".join(description.split()),
            reference_images=tuple(copies),
            seed=int.from_bytes(digest[:4], "big") if seed is None else seed,
            created=time.time(),
        )
        self._profiles[cid] = profile
        self._save()
        self._reference_embeddings(profile, [img for _, img in images])  # fill the cache
        log.info("character %s (%s) created with %d reference(s)", cid, profile.name, len(copies))
        return cid

    async def create_character_profile(
        self, name: str, reference_images: list[Path], description: str
    ) -> str:
        """Create a profile: copies the references into the project and caches embeddings.

        Parameters
        ----------
        name : str
            Display name; the id is a slug of it (made unique).
        reference_images : list of Path
            One or more images of the character (read through the decompression-bomb
            guard).
        description : str
            Words that describe the character; added to prompts (character priority).

        Returns
        -------
        str
            The character id.

        Raises
        ------
        ParameterError
            Empty name or no reference images.
        MediaInputError
            A reference image cannot be read safely.
        """
        return await asyncio.to_thread(self.create_profile, name, reference_images, description)

    # ------------------------------------------------------------------ embeddings

    def embedding_method(self) -> tuple[str, ClipImageEncoder | None]:
        """The embedding method: ``("clip:<folder>", encoder)`` or ``("classical", None)``."""
        folder = find_clip_encoder(self.models_dir, self.clip_model)
        if folder is not None:
            try:
                encoder = ClipImageEncoder.load(folder)
                return encoder.key, encoder
            except BackendError as err:
                log.warning("CLIP encoder not usable, using the classical descriptor: %s", err)
        return "classical", None

    def _embed(self, images: Sequence[np.ndarray]) -> tuple[str, np.ndarray]:
        method, encoder = self.embedding_method()
        if encoder is not None:
            return method, encoder.embed(images)
        return method, np.stack([classical_embedding(img) for img in images])

    def _reference_embeddings(
        self, profile: CharacterProfile, images: Sequence[np.ndarray] | None = None
    ) -> tuple[str, np.ndarray]:
        """The references' embeddings with the current method (memory, disk, or computed)."""
        method, _ = self.embedding_method()
        key = (profile.id, method)
        if key in self._memory:
            return method, self._memory[key]
        cache = self.folder / profile.id / "embeddings.npz"
        stored: dict[str, np.ndarray] = {}
        if cache.is_file():
            try:
                with np.load(cache) as data:
                    stored = {name: data[name] for name in data.files}
            except (OSError, ValueError) as err:
                log.warning("ignoring unreadable embedding cache %s: %s", cache, err)
        name = _method_key(method)
        if name in stored and len(stored[name]) == len(profile.reference_images):
            embeddings = stored[name]
        else:
            if images is None:
                images = [read_image_safely(self.project_dir / p) for p in profile.reference_images]
            method, embeddings = self._embed(images)
            stored[_method_key(method)] = embeddings
            buffer = io.BytesIO()
            np.savez(buffer, **stored)
            atomic_write_bytes(cache, buffer.getvalue())
        self._memory[(profile.id, method)] = embeddings
        return method, embeddings

    def threshold_for(self, method: str) -> float:
        """The consistency threshold used with ``method``."""
        if self.threshold is not None:
            return self.threshold
        return CLIP_THRESHOLD if method.startswith("clip") else CLASSICAL_THRESHOLD

    # ------------------------------------------------------------------ checks

    def check_consistency(self, image_path: Path | str, character_id: str) -> dict[str, Any]:
        """Blocking, detailed version of :meth:`validate_consistency`.

        Returns
        -------
        dict
            ``consistent``, ``confidence`` (0..1), ``threshold``, ``method``,
            ``per_reference`` (similarity to each reference), ``character_id``.
        """
        profile = self.get_profile(character_id)
        image = read_image_safely(image_path)
        method, references = self._reference_embeddings(profile)
        _, embedding = self._embed([image])
        sims = np.clip(references @ embedding[0], 0.0, 1.0)
        confidence = float(sims.max())
        threshold = self.threshold_for(method)
        return {
            "character_id": profile.id,
            "consistent": confidence >= threshold,
            "confidence": round(confidence, 4),
            "threshold": threshold,
            "method": method,
            "per_reference": [round(float(s), 4) for s in sims],
        }

    async def validate_consistency(self, image_path: Path, character_id: str) -> tuple[bool, float]:
        """Whether ``image_path`` shows the character, and how confidently (0..1).

        Raises
        ------
        ParameterError
            Unknown character.
        MediaInputError
            The image cannot be read safely.
        """
        report = await asyncio.to_thread(self.check_consistency, image_path, character_id)
        return bool(report["consistent"]), float(report["confidence"])

    def similar_characters(self, character_id: str) -> list[dict[str, Any]]:
        """Blocking version of :meth:`find_similar_characters`."""
        profile = self.get_profile(character_id)
        method, mine = self._reference_embeddings(profile)
        threshold = self.threshold_for(method)
        out = []
        for other in self.profiles():
            if other.id == profile.id:
                continue
            _, theirs = self._reference_embeddings(other)
            # each of my references against its best match among theirs, averaged
            similarity = float(np.clip(mine @ theirs.T, 0.0, 1.0).max(axis=1).mean())
            out.append(
                {
                    "character_id": other.id,
                    "name": other.name,
                    "similarity": round(similarity, 4),
                    "similar": similarity >= threshold,
                    "method": method,
                }
            )
        out.sort(key=lambda item: -item["similarity"])
        return out

    async def find_similar_characters(self, character_id: str) -> list[dict[str, Any]]:
        """The other characters, most similar first, with their similarity (0..1).

        Each item: ``character_id``, ``name``, ``similarity`` (the mean over this
        character's references of the best cosine similarity to the other's
        references), ``similar`` (at or above the threshold) and ``method``.  Useful to
        warn that two characters may be confused.
        """
        return await asyncio.to_thread(self.similar_characters, character_id)

    # ------------------------------------------------------------------ generation

    def ip_adapter_weights(self) -> Path | None:
        """The first IP-Adapter weights file in ``models_dir/ip_adapters/``, or None."""
        return find_ip_adapter(self.models_dir)

    def conditioning_for(self, character_id: str) -> dict[str, Any]:
        """How to condition generation on the character (see the module docs).

        Returns
        -------
        dict
            ``method`` (``"ip_adapter"`` when its weights and an image encoder exist,
            else ``"img2img"``), ``init_image`` (Path of the first reference; the
            IP-Adapter image or the img2img init image), ``strength`` (img2img),
            ``ip_adapter`` (Path or None), ``image_encoder`` (Path or None),
            ``ip_adapter_scale``, ``fallback_reason`` (None, or why img2img is used),
            ``seed``, ``reference_images`` (all, as Paths), ``description``,
            ``character_id``.
        """
        profile = self.get_profile(character_id)
        references = [self.project_dir / p for p in profile.reference_images]
        ip_adapter = self.ip_adapter_weights()
        encoder = find_image_encoder(ip_adapter, self.models_dir) if ip_adapter else None
        if ip_adapter is None:
            reason: str | None = "no IP-Adapter weights in models/ip_adapters/"
        elif encoder is None:
            reason = (
                f"IP-Adapter {ip_adapter.name} has no CLIP image encoder (no image_encoder/ "
                "folder next to it and none in models/clip/)"
            )
        else:
            reason = None
        return {
            "character_id": profile.id,
            "method": "img2img" if reason else "ip_adapter",
            "init_image": references[0],
            "strength": self.strength,
            "seed": profile.seed,
            "reference_images": references,
            "ip_adapter": ip_adapter,
            "image_encoder": encoder,
            "ip_adapter_scale": self.ip_adapter_scale,
            "fallback_reason": reason,
            "description": profile.description,
        }
