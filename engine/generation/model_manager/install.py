"""``models import``: put a model file where it belongs and record it in the manifest."""

from __future__ import annotations

import logging
import os
import shutil
from dataclasses import replace
from pathlib import Path

from engine.atomic_files import atomic_path
from engine.errors import ModelError
from engine.generation.model_manager.identify import ModelInfo, identify_model
from engine.generation.model_manager.manifest import (
    MANIFEST_NAME,
    Manifest,
    ManifestEntry,
    sha256_file,
)
from engine.generation.model_manager.registry import folder_for_kind
from engine.generation.model_manager.safe_load import PICKLE_SUFFIXES, SAFETENSORS_SUFFIXES

MODEL_SUFFIXES = SAFETENSORS_SUFFIXES + PICKLE_SUFFIXES

__all__ = ["DEFAULT_MIN_VRAM_GB", "import_model", "record_model"]

log = logging.getLogger(__name__)

# Smallest GPU memory each kind runs in with the memory strategy's lowest step (attention
# slicing, VAE tiling, CPU offload): the figure the manifest records unless told otherwise.
DEFAULT_MIN_VRAM_GB: dict[tuple[str, str], float] = {
    ("checkpoint", "sd15"): 4.0,
    ("checkpoint", "sd2"): 4.0,
    ("checkpoint", "sdxl"): 8.0,
    ("upscaler", ""): 1.0,
    ("ip_adapter", "sd15"): 0.5,
    ("ip_adapter", "sdxl"): 1.0,
    ("clip", ""): 1.0,
}


def record_model(
    manifest: Manifest,
    info: ModelInfo,
    rel_file: str,
    sha256: str,
    *,
    name: str | None = None,
    licence: str = "",
    min_vram_gb: float | None = None,
    repo_id: str = "",
    repo_file: str = "",
    revision: str = "",
) -> ManifestEntry:
    """Add (or refresh) the manifest entry of an identified file; the caller saves."""
    existing = manifest.find_file(rel_file)
    family = info.family or ""
    vram = (
        min_vram_gb
        if min_vram_gb is not None
        else DEFAULT_MIN_VRAM_GB.get((info.kind, family), 0.0)
    )
    if existing is not None and (name is None or name == existing.name):
        entry = replace(
            existing,
            kind=info.kind,
            family=family,
            sha256=sha256,
            licence=licence or existing.licence,
            min_vram_gb=vram if min_vram_gb is not None else existing.min_vram_gb or vram,
            repo_id=repo_id or existing.repo_id,
            repo_file=repo_file or existing.repo_file,
            revision=revision or existing.revision,
        )
    else:
        rel = Path(rel_file)
        stem = rel.stem if rel.suffix.lower() in MODEL_SUFFIXES else rel.name
        entry = ManifestEntry(
            name=name if name and name not in manifest else manifest.unique_name(name or stem),
            kind=info.kind,
            file=rel_file,
            sha256=sha256,
            licence=licence,
            min_vram_gb=vram,
            family=family,
            repo_id=repo_id,
            repo_file=repo_file,
            revision=revision,
        )
    manifest.put(entry)
    return entry


def import_model(
    source: Path | str,
    models_dir: Path | str,
    *,
    link: bool = False,
    name: str | None = None,
    licence: str = "",
    min_vram_gb: float | None = None,
    overwrite: bool = False,
) -> tuple[ManifestEntry, ModelInfo]:
    """Identify ``source``, copy (or link) it into the right folder, record it.

    Parameters
    ----------
    source : Path or str
        A model file, or a diffusers folder (always copied as a whole; ``link`` links it).
    models_dir : Path or str
        The models folder (ours, ComfyUI's or A1111's; the kind's folder in that layout).
    link : bool
        Make a symbolic link instead of a copy (saves disk space; the original must stay).
    name : str, optional
        Manifest name (default: from the file name).
    licence : str
        The weights' licence, recorded in the manifest.
    min_vram_gb : float, optional
        Override the default for the kind and family.
    overwrite : bool
        Replace a different file of the same name in the target folder.

    Returns
    -------
    (ManifestEntry, ModelInfo)

    Raises
    ------
    ModelError
        ``source`` cannot be identified (unknown family, truncated...), or the target
        exists and differs.
    """
    source = Path(source).expanduser()
    models_dir = Path(models_dir).expanduser()
    info = identify_model(source)  # raises before anything is copied
    folder = folder_for_kind(models_dir, info.kind)
    target = folder / source.name
    folder.mkdir(parents=True, exist_ok=True)
    if target.exists() or target.is_symlink():
        same = target.resolve() == source.resolve() or (
            source.is_file()
            and target.is_file()
            and target.stat().st_size == source.stat().st_size
            and sha256_file(target) == sha256_file(source)
        )
        if not same and not overwrite:
            raise ModelError(
                f"{target} already exists and differs from {source}; pass --overwrite or "
                "rename the file",
                path=target,
                error_code="exists",
            )
        if not same:
            _remove(target)
    if not target.exists():
        if link:
            os.symlink(source.resolve(), target, target_is_directory=source.is_dir())
        elif source.is_dir():
            tmp = target.with_name(f".{target.name}.tmp-import")
            shutil.rmtree(tmp, ignore_errors=True)
            shutil.copytree(source, tmp)
            os.replace(tmp, target)
        else:
            with atomic_path(target) as tmp:
                shutil.copyfile(source, tmp)
    digest = sha256_file(target) if target.is_file() else ""
    manifest = Manifest(models_dir / MANIFEST_NAME)
    rel = target.relative_to(models_dir).as_posix()
    entry = record_model(
        manifest, info, rel, digest, name=name, licence=licence, min_vram_gb=min_vram_gb
    )
    manifest.save()
    log.info("imported %s as %s (%s, %s)", source, rel, info.kind, info.family_name)
    return entry, info


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink()
