"""Find model files in a models folder: ours, ComfyUI's or A1111's.

``paths.models_dir`` may point at our own ``models/`` folder or at an existing ComfyUI or
AUTOMATIC1111 ``models`` folder; the sub-folders differ:

=============  ===================  ==================  ================================
kind           APEX Director        ComfyUI             A1111 / Forge
=============  ===================  ==================  ================================
checkpoint     ``checkpoints/``     ``checkpoints/``    ``Stable-diffusion/``
lora           ``loras/``           ``loras/``          ``Lora/`` (and ``LyCORIS/``)
upscaler       ``upscalers/``       ``upscale_models/`` ``ESRGAN/``, ``RealESRGAN/``
ip_adapter     ``ip_adapters/``     ``ipadapter/``      (none)
clip           ``clip/``            ``clip_vision/``    (none)
=============  ===================  ==================  ================================

(ComfyUI's own ``clip/`` holds *text* encoders, so it is not scanned for a ComfyUI layout.)
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from engine.errors import ModelError
from engine.generation.model_manager.identify import ModelInfo, identify_model
from engine.generation.model_manager.safe_load import PICKLE_SUFFIXES, SAFETENSORS_SUFFIXES

__all__ = [
    "LAYOUTS",
    "FoundModel",
    "detect_layout",
    "folder_for_kind",
    "scan_models",
]

log = logging.getLogger(__name__)

LAYOUTS: dict[str, dict[str, tuple[str, ...]]] = {
    "apex": {
        "checkpoint": ("checkpoints",),
        "lora": ("loras",),
        "upscaler": ("upscalers",),
        "ip_adapter": ("ip_adapters",),
        "clip": ("clip",),
    },
    "comfyui": {
        "checkpoint": ("checkpoints", "diffusers"),
        "lora": ("loras",),
        "upscaler": ("upscale_models",),
        "ip_adapter": ("ipadapter",),
        "clip": ("clip_vision",),
    },
    "a1111": {
        "checkpoint": ("Stable-diffusion",),
        "lora": ("Lora", "LyCORIS"),
        "upscaler": ("ESRGAN", "RealESRGAN"),
        "ip_adapter": ("ipadapter",),
        "clip": ("clip_vision",),
    },
}
_MODEL_SUFFIXES = SAFETENSORS_SUFFIXES + PICKLE_SUFFIXES
_MAX_DEPTH = 4  # ComfyUI users nest folders (checkpoints/sdxl/anime/...); no deeper


@dataclass(frozen=True, slots=True)
class FoundModel:
    """A model file found in the models folder.

    Attributes
    ----------
    path : Path
        The file (or diffusers folder).
    folder_kind : str
        The kind its folder is for.
    size_bytes : int
        Size on disk (a diffusers folder: the sum of its files).
    info : ModelInfo or None
        What identification found; ``None`` when it failed.
    problem : str
        Why identification failed (empty when it did not).
    """

    path: Path
    folder_kind: str
    size_bytes: int
    info: ModelInfo | None
    problem: str = ""


def detect_layout(models_dir: Path | str) -> str:
    """``"comfyui"``, ``"a1111"`` or ``"apex"``, from the sub-folders present.

    An A1111 install is recognised by ``Stable-diffusion/``; ComfyUI by ``upscale_models/``,
    ``clip_vision/`` or ``diffusion_models/``; anything else is our own layout.
    """
    root = Path(models_dir)
    if (root / "Stable-diffusion").is_dir():
        return "a1111"
    if any((root / d).is_dir() for d in ("upscale_models", "clip_vision", "diffusion_models")):
        return "comfyui"
    return "apex"


def folder_for_kind(models_dir: Path | str, kind: str) -> Path:
    """The folder a model of ``kind`` goes into, in the layout ``models_dir`` uses.

    Raises
    ------
    ModelError
        ``kind`` has no folder in that layout.
    """
    layout = detect_layout(models_dir)
    folders = LAYOUTS[layout].get(kind)
    if not folders:
        raise ModelError(f"a {layout} models folder has no place for {kind} files", path=models_dir)
    return Path(models_dir) / folders[0]


def _walk(folder: Path, depth: int = 0) -> Iterator[Path]:
    try:
        entries = sorted(folder.iterdir())
    except OSError as err:
        log.warning("cannot read %s: %s", folder, err)
        return
    for entry in entries:
        if entry.name.startswith("."):
            continue
        if entry.is_dir():
            if (entry / "model_index.json").is_file():
                yield entry
            elif depth < _MAX_DEPTH:
                yield from _walk(entry, depth + 1)
        elif entry.suffix.lower() in _MODEL_SUFFIXES:
            yield entry


def _size(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def scan_models(
    models_dir: Path | str, *, kinds: tuple[str, ...] | None = None
) -> list[FoundModel]:
    """Find and identify every model file in the folders of ``models_dir``'s layout.

    Parameters
    ----------
    models_dir : Path or str
        Our ``models/`` folder or a ComfyUI / A1111 ``models`` folder.
    kinds : tuple of str, optional
        Only these kinds' folders.

    Returns
    -------
    list of FoundModel
        Sorted by kind then path.  Files that cannot be identified are listed with the
        reason (a truncated download, an unknown family), never raised: one bad file must
        not hide the others.
    """
    root = Path(models_dir).expanduser()
    if not root.is_dir():
        raise ModelError(
            f"{root}: models folder not found; create it or set paths.models_dir in the "
            "configuration",
            path=root,
            error_code="missing",
        )
    layout = LAYOUTS[detect_layout(root)]
    found: list[FoundModel] = []
    seen: set[Path] = set()
    for kind, folders in layout.items():
        if kinds is not None and kind not in kinds:
            continue
        for name in folders:
            folder = root / name
            if not folder.is_dir():
                continue
            for path in _walk(folder):
                real = Path(os.path.realpath(path))
                if real in seen:
                    continue
                seen.add(real)
                try:
                    info: ModelInfo | None = identify_model(path)
                    problem = ""
                except ModelError as err:
                    info, problem = None, str(err)
                found.append(FoundModel(path, kind, _size(path), info, problem))
    return found
