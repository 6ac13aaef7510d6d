"""Choose and build an image backend by name."""

from __future__ import annotations

from pathlib import Path

from engine.errors import BackendError, ParameterError
from engine.generation.types import ImageBackend

__all__ = ["BACKEND_NAMES", "create_backend"]

BACKEND_NAMES = ("procedural", "stills")


def create_backend(name: str, *, images_dir: Path | None = None) -> ImageBackend:
    """Build the backend called ``name``.

    Raises
    ------
    ParameterError
        Unknown name, or ``stills`` without an images folder.
    MediaInputError
        The images folder is missing or has no usable image.
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
        raise BackendError(
            "the diffusers (Stable Diffusion) backend is not available in this version; "
            "use --backend procedural or --backend stills",
            backend_name="diffusers",
        )
    raise ParameterError("backend", name, f"one of {', '.join(BACKEND_NAMES)}")
