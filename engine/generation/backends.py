"""Choose and build an image backend by name, and fail over along a configured order."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from engine.errors import BackendError, ModelError, ParameterError
from engine.generation.types import ImageBackend

__all__ = [
    "BACKEND_NAMES",
    "SD_INSTALL_HINT",
    "create_backend",
    "create_first_available",
    "resolve_model_path",
]

log = logging.getLogger(__name__)

BACKEND_NAMES = ("procedural", "stills", "diffusers")
SD_INSTALL_HINT = "install the sd extra: pip install 'apex-director[sd]'"


def _check_sd_installed() -> None:
    try:
        import diffusers  # noqa: F401
        import torch  # noqa: F401
    except ImportError as err:
        raise BackendError(
            f"the diffusers backend needs {err.name or 'torch and diffusers'}; {SD_INSTALL_HINT}",
            backend_name="diffusers",
        ) from err


def resolve_model_path(model: str | Path, models_dir: Path | None = None) -> Path:
    """A model given as a path, or as a name under ``models_dir``.

    A name is looked up in ``models_dir``, its ``checkpoints/`` and ``diffusers/`` folders
    (with or without ``.safetensors``), then in the checkpoint folders of a ComfyUI or A1111
    layout through the models registry.  A name that matches nothing is returned as a path
    unchanged; loading then says it is missing.
    """
    path = Path(model).expanduser()
    if path.exists() or models_dir is None:
        return path
    base = Path(models_dir).expanduser()
    for folder in (base, base / "checkpoints", base / "diffusers"):
        for candidate in (folder / str(model), folder / f"{model}.safetensors"):
            if candidate.exists():
                return candidate
    # ComfyUI / A1111 layouts: ask the registry (it knows their checkpoint folders)
    try:
        from engine.generation.model_manager.registry import scan_models

        found = scan_models(base, kinds=("checkpoint",))
    except (ImportError, ModelError) as err:
        log.debug("no registry lookup for %s: %s", model, err)
        return path
    for entry in found:
        if str(model) in (entry.path.name, entry.path.stem):
            return entry.path
    return path


def create_backend(
    name: str,
    *,
    images_dir: Path | None = None,
    model: str | Path | None = None,
    device: str = "auto",
    models_dir: Path | None = None,
    **diffusers_options: Any,
) -> ImageBackend:
    """Build the backend called ``name``.

    Parameters
    ----------
    name : {"procedural", "stills", "diffusers"}
    images_dir : Path, optional
        The folder the ``stills`` backend reads.
    model : str or Path, optional
        For ``diffusers``: a checkpoint file, a diffusers folder, or a name under
        ``models_dir``.
    device : str
        For ``diffusers``: ``"auto"``, ``"cuda"``, ``"mps"`` or ``"cpu"``.
    models_dir : Path, optional
        Where model names are looked up.
    **diffusers_options
        Passed to :class:`~engine.generation.diffusers_backend.DiffusersBackend`
        (``scheduler``, ``loras``, ``precision``, ``config_dir``, ...).

    Raises
    ------
    ParameterError
        Unknown name, or ``stills`` without an images folder.
    MediaInputError
        The images folder is missing or has no usable image.
    BackendError
        ``diffusers`` without torch/diffusers installed, or without a model.
    """
    if name == "procedural":
        from engine.generation.procedural import ProceduralBackend

        return ProceduralBackend()
    if name == "stills":
        if images_dir is None:
            raise ParameterError("images_dir", None, "a folder of images for the stills backend")
        from engine.generation.stills import StillsBackend

        return StillsBackend(images_dir)
    if name == "diffusers":
        _check_sd_installed()
        if model is None or not str(model).strip():
            raise BackendError(
                "the diffusers backend needs a model: pass --model PATH (a .safetensors "
                "checkpoint or a diffusers folder); see `apex-director models list`",
                backend_name="diffusers",
            )
        from engine.generation.diffusers_backend import DiffusersBackend

        return DiffusersBackend(
            resolve_model_path(model, models_dir), device=device, **diffusers_options
        )
    raise ParameterError("backend", name, f"one of {', '.join(BACKEND_NAMES)}")


def create_first_available(
    order: Sequence[str],
    *,
    load: bool = True,
    **kwargs: Any,
) -> ImageBackend:
    """Try the backends in ``order``; return the first that can be built (and loaded).

    Parameters
    ----------
    order : sequence of str
        Backend names, best first (the configuration's ``render.backend_order``).
    load : bool
        Load a model-based backend now (``backend.load()``), so that a missing or broken
        model fails over here rather than in the middle of a render.
    **kwargs
        Passed to :func:`create_backend`.

    Returns
    -------
    ImageBackend
        The first backend that worked.  Each one skipped is logged as a WARNING.

    Raises
    ------
    BackendError
        Every backend failed; the message names each one and why.
    ParameterError
        ``order`` is empty or names an unknown backend.
    """
    if not order:
        raise ParameterError("backend_order", list(order), f"one or more of {BACKEND_NAMES}")
    failures: list[str] = []
    for position, name in enumerate(order):
        try:
            backend = create_backend(name, **kwargs)
            if load and hasattr(backend, "load"):
                backend.load()
        except BackendError as err:
            failures.append(f"{name}: {err}")
            rest = list(order[position + 1 :])
            log.warning(
                "image backend %s unavailable (%s)%s",
                name,
                err,
                f"; trying {rest[0]}" if rest else "",
            )
            continue
        if failures:
            log.warning("using image backend %s%s", name, " (DRAFT)" if backend.is_draft else "")
        return backend
    raise BackendError(
        "no image backend could be used: " + "; ".join(failures),
        backend_name=",".join(order),
    )
