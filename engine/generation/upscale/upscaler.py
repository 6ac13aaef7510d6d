"""Upscale stills with Real-ESRGAN (or any spandrel architecture), tiled, with presets.

:func:`upscale_image` is the one entry point: it takes a path or an RGB array, a preset
(``web``, ``high_quality``, ``broadcast``) and optionally a model (a built-in name such as
``RealESRGAN_x4plus``, a file in ``models/upscalers/``, or a path), and returns the image
and a dict describing what was done.

Presets (``w x h`` is the input size, ``s`` the model's scale, 4 for the default):

``web``
    Twice the input size, capped so the long side is at most 1920 px.  The model runs at
    its own scale and the result is area-downsampled to that size.  An input whose long
    side is already 1920 px or more is returned unchanged (the dict says so).
``high_quality``
    The model's full scale: ``w*s x h*s`` (x4 with the default model).
``broadcast``
    Exactly the delivery size (``delivery_size``, default 1920x1080): the input is first
    centre-cropped to the delivery aspect ratio (nothing is stretched), then upscaled by
    the model when the crop is smaller than the delivery size, then resized to it exactly
    (area filter when shrinking, Lanczos when still growing).  A crop already at least as
    large as the delivery size is only area-downsampled (no model run).

Large images run in tiles: each tile is processed with ``tile_pad`` pixels of real
context on every side, and only its centre is kept, so tiles meet without seams (a test
checks tiled output equals untiled output within 1/255).  The tile size follows the free
memory of the device.  On CUDA the model runs in fp16 with channels-last tensors.

When torch/spandrel or every weight is missing, a classical fallback (OpenCV Lanczos
plus a mild unsharp mask) produces the same sizes; the result dict says
``backend="classical"`` and the log warns "classical resampling, not Real-ESRGAN".
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from engine.errors import (
    APEXDirectorError,
    BackendError,
    MediaInputError,
    ModelError,
    ParameterError,
)

__all__ = [
    "CLASSICAL_NOTE",
    "DEFAULT_DELIVERY_SIZE",
    "DEFAULT_MODEL",
    "PRESETS",
    "UpscaleTarget",
    "auto_tile_size",
    "ensure_default_upscaler",
    "list_upscalers",
    "load_upscaler",
    "release_upscaler",
    "resolve_upscaler",
    "run_tiled",
    "target_for_preset",
    "upscale_file",
    "upscale_image",
]

log = logging.getLogger(__name__)

DEFAULT_MODEL = "RealESRGAN_x4plus"
DEFAULT_DELIVERY_SIZE = (1920, 1080)
WEB_LONG_SIDE = 1920
CLASSICAL_NOTE = "classical resampling, not Real-ESRGAN"
#: What each preset does, for help texts and error messages.
PRESETS: dict[str, str] = {
    "web": "x2, capped at 1920 px on the long side",
    "high_quality": "the model's full scale (x4 with the default Real-ESRGAN x4plus)",
    "broadcast": "exactly the delivery size (default 1920x1080), centre-cropped to its aspect",
}
#: Output images larger than this are refused (a 16K x 16K result is 800 MB of RGB).
MAX_OUTPUT_PIXELS = 300_000_000
_WEIGHT_SUFFIXES = (".safetensors", ".sft", ".pth", ".pt", ".ckpt", ".bin")


@dataclass(frozen=True)
class UpscaleTarget:
    """Where a preset takes an image.

    Attributes
    ----------
    crop : tuple of int
        ``(x, y, width, height)`` of the input region used (the whole image except for
        ``broadcast``).
    size : tuple of int
        Final ``(width, height)``.
    run_model : bool
        Whether the super-resolution network is needed (the crop is smaller than ``size``).
    note : str
        Why the model is skipped, when it is.
    """

    crop: tuple[int, int, int, int]
    size: tuple[int, int]
    run_model: bool
    note: str = ""


def target_for_preset(
    width: int,
    height: int,
    preset: str,
    *,
    model_scale: int = 4,
    delivery_size: tuple[int, int] = DEFAULT_DELIVERY_SIZE,
) -> UpscaleTarget:
    """Compute the crop and output size of ``preset`` for a ``width x height`` input.

    Raises
    ------
    ParameterError
        Unknown preset (the message lists them) or a bad delivery size.
    """
    if preset not in PRESETS:
        raise ParameterError("preset", preset, f"one of {', '.join(PRESETS)}")
    whole = (0, 0, width, height)
    if preset == "high_quality":
        return UpscaleTarget(whole, (width * model_scale, height * model_scale), True)
    if preset == "web":
        factor = min(2.0, WEB_LONG_SIDE / max(width, height))
        if factor <= 1.0:
            return UpscaleTarget(
                whole, (width, height), False, f"already {max(width, height)} px: unchanged"
            )
        return UpscaleTarget(whole, (round(width * factor), round(height * factor)), True)
    out_w, out_h = delivery_size
    if out_w < 16 or out_h < 16 or out_w > 16384 or out_h > 16384:
        raise ParameterError("delivery_size", delivery_size, "16..16384 pixels per side")
    # Centre crop to the delivery aspect ratio (compare w/h with out_w/out_h exactly).
    if width * out_h > height * out_w:
        crop_w, crop_h = max(1, round(height * out_w / out_h)), height
    else:
        crop_w, crop_h = width, max(1, round(width * out_h / out_w))
    crop = ((width - crop_w) // 2, (height - crop_h) // 2, crop_w, crop_h)
    if crop_w >= out_w and crop_h >= out_h:
        return UpscaleTarget(crop, (out_w, out_h), False, "crop already at delivery size")
    return UpscaleTarget(crop, (out_w, out_h), True)


# ---------------------------------------------------------------------------- models


def _upscalers_dir(models_dir: Path | str | None) -> Path:
    """Where converted upscalers go: ``upscalers/`` (``upscale_models/`` in a ComfyUI
    folder, ``ESRGAN/`` in an A1111 one)."""
    from engine.generation.model_manager.registry import folder_for_kind

    return folder_for_kind(
        Path("models" if models_dir is None else models_dir).expanduser(), "upscaler"
    )


_verified: dict[tuple[str, int, int], bool] = {}
_convert_lock = threading.Lock()


def _sidecar_ok(path: Path) -> bool:
    """True when ``path`` matches the SHA-256 written beside it (checked once per process)."""
    from engine.generation.upscale.ncnn_convert import sha256_file

    sidecar = path.with_name(path.name + ".sha256")
    if not sidecar.is_file():
        return False
    stat = path.stat()
    key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
    if key not in _verified:
        recorded = sidecar.read_text(encoding="ascii", errors="replace").split()[:1]
        _verified[key] = bool(recorded) and recorded[0] == sha256_file(path)
    return _verified[key]


def ensure_default_upscaler(models_dir: Path | str | None, name: str = DEFAULT_MODEL) -> Path:
    """Return ``models_dir/upscalers/NAME.safetensors``, converting it from ncnn if needed.

    The conversion (see :mod:`engine.generation.upscale.ncnn_convert`) runs once; later
    calls check the file against its recorded SHA-256 (once per process) and convert
    again only when it is missing or damaged.

    Parameters
    ----------
    models_dir : Path, str or None
        The weights folder (``paths.models_dir``); ``None`` is ``./models``.
    name : str
        A built-in model name or alias (``RealESRGAN_x4plus``, ``x4plus_anime``,
        ``animevideov3``...).

    Raises
    ------
    ParameterError
        Unknown built-in name.
    UpscalerConversionError
        The weights package is missing or damaged.
    """
    from engine.generation.upscale.ncnn_convert import builtin_model, convert_builtin

    model = builtin_model(name)
    folder = _upscalers_dir(models_dir)
    target = folder / f"{model.name}.safetensors"
    with _convert_lock:
        if target.is_file():
            if _sidecar_ok(target):
                return target
            if not target.with_name(target.name + ".sha256").is_file():
                log.info("using %s as found (no recorded checksum: not converted by us)", target)
                return target
            log.warning("%s does not match its recorded SHA-256; converting it again", target)
        log.info("converting the built-in %s weights into %s (once)", model.name, folder)
        converted = convert_builtin(model.name, folder)
        _record_in_manifest(converted, model.name, models_dir)
        return converted


def _record_in_manifest(path: Path, name: str, models_dir: Path | str | None) -> None:
    """Add the converted file to ``models_dir/manifest.toml`` so ``models verify`` checks it.

    The ``.sha256`` file beside the weights is the record this module relies on; a manifest
    that cannot be updated (invalid, read-only) only costs a warning.
    """
    from engine.generation.model_manager.manifest import MANIFEST_NAME, Manifest, ManifestEntry
    from engine.generation.upscale.ncnn_convert import LICENCE

    root = Path("models" if models_dir is None else models_dir).expanduser()
    sidecar = path.with_name(path.name + ".sha256")
    try:
        manifest = Manifest(root / MANIFEST_NAME)
        manifest.put(
            ManifestEntry(
                name=name,
                kind="upscaler",
                file=path.relative_to(root).as_posix(),
                sha256=sidecar.read_text(encoding="ascii").split()[0],
                licence="BSD-3-Clause",
            )
        )
        manifest.save()
    except (APEXDirectorError, OSError, ValueError, ImportError) as err:
        log.warning("converted %s but could not record it in the manifest: %s", path, err)
    else:
        log.debug("recorded %s in %s (%s)", name, manifest.path, LICENCE)


def list_upscalers(models_dir: Path | str | None) -> list[Path]:
    """Weight files in the upscaler folders of ``models_dir`` (any of our, ComfyUI's or
    A1111's folder names), sorted by name."""
    from engine.generation.model_manager.registry import LAYOUTS

    root = Path("models" if models_dir is None else models_dir).expanduser()
    names = {name for layout in LAYOUTS.values() for name in layout.get("upscaler", ())}
    found = [
        path
        for name in sorted(names)
        if (root / name).is_dir()
        for path in (root / name).iterdir()
        if path.suffix.lower() in _WEIGHT_SUFFIXES
    ]
    return sorted(found, key=lambda path: path.name)


def resolve_upscaler(model: str | Path | None, models_dir: Path | str | None) -> Path:
    """Turn a model argument into a weights file.

    ``None`` is the default (Real-ESRGAN x4plus, converted on first use); a built-in name
    or alias is converted on first use; an existing path is used as is; a bare name is
    looked up in ``models_dir/upscalers/`` by file stem.

    Raises
    ------
    ParameterError
        When nothing matches (the message lists the built-in names and the files found).
    """
    from engine.generation.upscale.ncnn_convert import ALIASES, BUILTIN_MODELS

    if model is None:
        return ensure_default_upscaler(models_dir)
    text = str(model)
    if text in BUILTIN_MODELS or text in ALIASES:
        return ensure_default_upscaler(models_dir, text)
    path = Path(text).expanduser()
    if path.is_file():
        return path
    for candidate in list_upscalers(models_dir):
        if text in (candidate.stem, candidate.name):
            return candidate
    found = [p.name for p in list_upscalers(models_dir)]
    allowed = ", ".join([*BUILTIN_MODELS, *found])
    raise ParameterError(
        "model", text, f"a weights file path, or one of {allowed} (files in models/upscalers/)"
    )


@dataclass
class _Loaded:
    key: tuple[str, int, str, str]
    descriptor: Any
    name: str
    architecture: str
    scale: int
    device: str
    dtype: str


class _ResidentSlot:
    """Holds the one upscaler kept in memory between calls."""

    def __init__(self) -> None:
        self.loaded: _Loaded | None = None
        self.lock = threading.Lock()


_slot = _ResidentSlot()


def release_upscaler() -> None:
    """Drop the resident upscaler (and free its GPU memory) so another stage can use it."""
    with _slot.lock:
        if _slot.loaded is not None:
            log.debug("releasing upscaler %s", _slot.loaded.name)
        _slot.loaded = None
    try:
        import torch
    except ImportError:  # pragma: no cover - torch-less install
        return
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def load_upscaler(path: Path | str, *, device: str = "auto", precision: str = "auto") -> _Loaded:
    """Load an upscaler file with spandrel (one model resident at a time).

    ``.safetensors`` files, or pickled files through ``torch.load(weights_only=True)``
    (no code in them ever runs).  Returns the cached model when the same file (same size
    and modification time) is already resident on the same device.

    Raises
    ------
    ModelError
        The file is not an image-to-image model spandrel knows (or is damaged).
    BackendError
        torch or spandrel is missing.
    """
    from engine.generation.device import select_device
    from engine.generation.model_manager.safe_load import load_state_dict

    try:
        import torch
        from spandrel import (
            ImageModelDescriptor,
            ModelLoader,
            UnsupportedModelError,
            canonicalize_state_dict,
        )
    except ImportError as err:
        raise BackendError(
            f"the upscaler needs torch and spandrel ({err}); "
            "install them with pip install 'apex-director[sd]'",
            backend_name="realesrgan",
        ) from err
    path = Path(path)
    info = select_device(device, "auto" if precision == "auto" else precision)  # type: ignore[arg-type]
    stat = path.stat()
    key = (str(path.resolve()), stat.st_mtime_ns, info.torch_device, info.dtype_name)
    with _slot.lock:
        if _slot.loaded is not None and _slot.loaded.key == key:
            return _slot.loaded
        _slot.loaded = None
        # One model resident at a time across stages: a Stable Diffusion pipeline left
        # by the generate stage is unloaded before the upscaler takes the device.
        diffusers_backend = sys.modules.get("engine.generation.diffusers_backend")
        if diffusers_backend is not None:
            diffusers_backend.release_resident_pipeline()
        state = load_state_dict(path)
        try:
            descriptor = ModelLoader().load_from_state_dict(canonicalize_state_dict(state))
        except UnsupportedModelError as err:
            raise ModelError(
                f"{path}: not an upscaler architecture spandrel knows ({err}); use a "
                "Real-ESRGAN, ESRGAN, SwinIR, HAT, ... weights file",
                path=path,
                error_code="unknown_family",
            ) from err
        except (KeyError, RuntimeError, ValueError) as err:
            raise ModelError(
                f"{path}: the weights do not fit their detected architecture ({err})",
                path=path,
                error_code="corrupt",
            ) from err
        if not isinstance(descriptor, ImageModelDescriptor) or descriptor.purpose != "SR":
            raise ModelError(
                f"{path}: a {descriptor.architecture.name} {descriptor.purpose} model, "
                "not a super-resolution upscaler",
                path=path,
                error_code="wrong_kind",
            )
        dtype_name = info.dtype_name
        if dtype_name == "float16" and not descriptor.supports_half:
            dtype_name = "float32"
        if dtype_name == "bfloat16" and not descriptor.supports_bfloat16:
            dtype_name = "float32"
        descriptor.to(torch.device(info.torch_device)).to(getattr(torch, dtype_name)).eval()
        if info.kind == "cuda":
            descriptor.model.to(memory_format=torch.channels_last)
        loaded = _Loaded(
            key=key,
            descriptor=descriptor,
            name=path.stem,
            architecture=str(descriptor.architecture.name),
            scale=int(descriptor.scale),
            device=info.torch_device,
            dtype=dtype_name,
        )
        log.info(
            "loaded upscaler %s (%s x%d) on %s in %s",
            path.name,
            loaded.architecture,
            loaded.scale,
            info.torch_device,
            dtype_name,
        )
        _slot.loaded = loaded
        return loaded


# ---------------------------------------------------------------------------- tiling


def auto_tile_size(device: str, *, scale: int = 4, dtype_bytes: int = 4) -> int:
    """A tile side (input pixels) that fits the free memory of ``device``.

    The estimate is dominated by the high-resolution features (64 channels at ``scale``
    squared times the pixels, about four live at once); half of the free memory is used.
    The result is a multiple of 32 between 64 and 1024 (512 on the CPU, where larger tiles
    gain nothing).
    """
    per_pixel = 64 * scale * scale * dtype_bytes * 4 + 4096
    cap = 512
    if device.startswith("cuda"):
        import torch

        free, _total = torch.cuda.mem_get_info(torch.device(device))
        cap = 1024
    else:
        try:
            import os

            free = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        except (ValueError, OSError, AttributeError):  # pragma: no cover - non-POSIX
            free = 4 << 30
    side = int((0.5 * free / per_pixel) ** 0.5)
    return max(64, min(cap, side // 32 * 32))


def run_tiled(
    image: np.ndarray,
    model: Any,
    *,
    scale: int,
    tile: int,
    tile_pad: int,
    context: Any = None,
    as_uint8: bool = False,
) -> tuple[np.ndarray, int]:
    """Run an image-to-image model over ``image`` in overlapping tiles.

    Parameters
    ----------
    image : numpy.ndarray
        ``(H, W, 3)`` float32 RGB in 0..1.
    model : callable
        Takes and returns ``(1, 3, h, w)`` tensors (a spandrel descriptor); its device,
        dtype and memory format are read from its parameters.
    scale : int
        The model's scale.
    tile : int
        Tile side in input pixels; ``0`` or a tile not smaller than the image runs once.
    tile_pad : int
        Context pixels added on each side of a tile (cut off again after the model).
    context : StageContext, optional
        Progress per tile and cancellation between tiles.
    as_uint8 : bool
        Return 0..255 uint8, rounded on the model's device (``round(x * 255)``, as the
        float path followed by ``np.clip(x * 255 + 0.5, 0, 255).astype(np.uint8)``), so a
        GPU hands back a quarter of the bytes and the CPU does no float pass.

    Returns
    -------
    output : numpy.ndarray
        ``(H*scale, W*scale, 3)`` float32 in 0..1 (uint8 0..255 with ``as_uint8``).
    tiles : int
        How many tiles ran.
    """
    import torch

    param = next(model.model.parameters())
    channels_last = param.is_cuda
    height, width = image.shape[:2]
    if tile <= 0 or (height <= tile and width <= tile):
        tile_rows = tile_cols = 1
        tile_h, tile_w = height, width
    else:
        tile_h = tile_w = tile
        tile_rows = -(-height // tile)
        tile_cols = -(-width // tile)
    output = np.empty(
        (height * scale, width * scale, 3), dtype=np.uint8 if as_uint8 else np.float32
    )
    total = tile_rows * tile_cols
    done = 0
    for row in range(tile_rows):
        for col in range(tile_cols):
            if context is not None:
                context.check_cancelled()
            y0, x0 = row * tile_h, col * tile_w
            y1, x1 = min(y0 + tile_h, height), min(x0 + tile_w, width)
            py0, px0 = max(0, y0 - tile_pad), max(0, x0 - tile_pad)
            py1, px1 = min(height, y1 + tile_pad), min(width, x1 + tile_pad)
            piece = np.ascontiguousarray(image[py0:py1, px0:px1].transpose(2, 0, 1))
            tensor = torch.from_numpy(piece)[None].to(device=param.device, dtype=param.dtype)
            if channels_last:
                tensor = tensor.contiguous(memory_format=torch.channels_last)
            with torch.inference_mode():  # spandrel clamps the output to 0..1
                result = model(tensor)[0].float().permute(1, 2, 0)
                if as_uint8:
                    result = (result * 255.0 + 0.5).clamp_(0, 255).to(torch.uint8)
                result = result.cpu().numpy()
            oy, ox = (y0 - py0) * scale, (x0 - px0) * scale
            output[y0 * scale : y1 * scale, x0 * scale : x1 * scale] = result[
                oy : oy + (y1 - y0) * scale, ox : ox + (x1 - x0) * scale
            ]
            done += 1
            if context is not None:
                context.progress(done, total, f"upscaling tile {done}/{total}")
    return output, total


# ---------------------------------------------------------------------------- pipeline


def _as_rgb_uint8(image: np.ndarray | Path | str) -> tuple[np.ndarray, str]:
    if isinstance(image, (str, Path)):
        from engine.generation.image_io import read_image_safely

        return read_image_safely(image), str(image)
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8:
        raise ParameterError(
            "image", type(image).__name__, "a path or an (H, W, 3) uint8 RGB numpy array"
        )
    if image.ndim == 2:
        image = np.repeat(image[:, :, None], 3, axis=2)
    if image.ndim != 3 or image.shape[2] not in (3, 4) or min(image.shape[:2]) < 1:
        raise ParameterError("image", image.shape, "an (H, W, 3) uint8 RGB array")
    return np.ascontiguousarray(image[:, :, :3]), "array"


def _resize(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    import cv2

    if (image.shape[1], image.shape[0]) == size:
        return image
    shrinking = size[0] <= image.shape[1] and size[1] <= image.shape[0]
    return cv2.resize(
        image, size, interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_LANCZOS4
    )


def _classical(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Lanczos resampling plus a mild unsharp mask (amount 0.5, sigma 1 output pixel)."""
    import cv2

    resized = _resize(image, size).astype(np.float32)
    blurred = cv2.GaussianBlur(resized, (0, 0), 1.0)
    return np.clip(resized * 1.5 - blurred * 0.5 + 0.5, 0, 255).astype(np.uint8)


def upscale_image(
    image: np.ndarray | Path | str,
    preset: str = "high_quality",
    *,
    model: str | Path | None = None,
    models_dir: Path | str | None = None,
    device: str = "auto",
    tile: int | None = None,
    tile_pad: int = 64,
    delivery_size: tuple[int, int] = DEFAULT_DELIVERY_SIZE,
    allow_fallback: bool = True,
    context: Any = None,
) -> tuple[np.ndarray, dict[str, Any]]:
    """Upscale an image with Real-ESRGAN (or another spandrel model) using a preset.

    Parameters
    ----------
    image : numpy.ndarray, Path or str
        An ``(H, W, 3)`` uint8 RGB array, or an image file (read through the
        decompression-bomb guard of :func:`engine.generation.image_io.read_image_safely`).
    preset : {"web", "high_quality", "broadcast"}
        See the module docstring for the exact sizes.
    model : str, Path or None
        ``None`` for the embedded default (Real-ESRGAN x4plus, converted from the ncnn
        weights on first use), a built-in name (``RealESRGAN_x4plus_anime_6B``,
        ``realesr-animevideov3``), a file name in ``models_dir/upscalers/``, or a path.
    models_dir : Path, str or None
        The weights folder (``paths.models_dir``); ``None`` is ``./models``.
    device : str
        ``"auto"`` (CUDA, MPS, CPU), ``"cuda"``, ``"cuda:N"``, ``"mps"`` or ``"cpu"``.
    tile : int or None
        Tile side in input pixels; ``None`` picks it from free memory, ``0`` disables tiling.
    tile_pad : int
        Context pixels around each tile.  64 makes the tiled output of the 23-block RRDB
        match the untiled one within 1/255 (measured; 48 left 4/255 on a thin strip: the
        network sees far).  The compact model needs only 18.
    delivery_size : tuple of int
        ``(width, height)`` of the ``broadcast`` preset.
    allow_fallback : bool
        With the default model only: use the labelled classical resampler when torch,
        spandrel or the weights are missing (``False`` raises instead).  An explicitly
        named model never falls back.
    context : StageContext, optional
        Progress and cancellation.

    Returns
    -------
    image : numpy.ndarray
        ``(height, width, 3)`` uint8 RGB.
    info : dict
        ``model``, ``architecture``, ``model_scale``, ``scale`` (output/used input
        width), ``preset``, ``backend`` (``"spandrel"``, ``"classical"`` or ``"resize"``
        when no network was needed), ``device``, ``dtype``, ``tiles``, ``tile_size``,
        ``input_size``, ``crop``, ``output_size``, ``time`` (seconds), ``note``.

    Raises
    ------
    ParameterError
        Unknown preset, model name or bad image array.
    MediaInputError
        Unreadable or too-large input file.
    ModelError
        A model file spandrel cannot load.
    BackendError
        torch/spandrel/weights missing and no fallback allowed.
    CancelledError
        ``context`` was cancelled between tiles.
    """
    start = time.perf_counter()
    if preset not in PRESETS:
        raise ParameterError("preset", preset, f"one of {', '.join(PRESETS)}")
    rgb, source = _as_rgb_uint8(image)
    height, width = rgb.shape[:2]
    info: dict[str, Any] = {
        "preset": preset,
        "source": source,
        "input_size": (width, height),
        "model": None,
        "architecture": None,
        "model_scale": None,
        "backend": None,
        "device": "cpu",
        "dtype": None,
        "tiles": 0,
        "tile_size": None,
        "note": "",
    }
    loaded: _Loaded | None = None
    fallback_reason = ""
    # Whether the network is needed does not depend on its scale (only high_quality's size
    # does, and it always needs the network), so a plain resize never loads a model.
    target = target_for_preset(width, height, preset, delivery_size=delivery_size)
    if target.run_model:
        try:
            weights = resolve_upscaler(model, models_dir)
            loaded = load_upscaler(weights, device=device)
        except (BackendError, ModelError) as err:
            if model is not None or not allow_fallback:
                raise
            fallback_reason = str(err)
        if loaded is not None and loaded.scale != 4:
            target = target_for_preset(
                width, height, preset, model_scale=loaded.scale, delivery_size=delivery_size
            )
    if target.size[0] * target.size[1] > MAX_OUTPUT_PIXELS:
        raise ParameterError(
            "image",
            f"{width}x{height}",
            f"an input whose {preset} result stays under {MAX_OUTPUT_PIXELS // 1_000_000} MP "
            f"(it would be {target.size[0]}x{target.size[1]}); use the web or broadcast preset",
        )
    x, y, crop_w, crop_h = target.crop
    cropped = rgb[y : y + crop_h, x : x + crop_w]
    info["crop"] = target.crop
    if not target.run_model:
        result = _resize(cropped, target.size)
        info.update(backend="resize", note=target.note)
    elif loaded is None:
        log.warning("%s: %s (%s)", source, CLASSICAL_NOTE, fallback_reason)
        result = _classical(cropped, target.size)
        info.update(
            backend="classical",
            model="lanczos+unsharp",
            note=f"{CLASSICAL_NOTE}: {fallback_reason}",
        )
    else:
        dtype_bytes = 2 if loaded.dtype in ("float16", "bfloat16") else 4
        tile_size = (
            auto_tile_size(loaded.device, scale=loaded.scale, dtype_bytes=dtype_bytes)
            if tile is None
            else tile
        )
        floats = cropped.astype(np.float32) / 255.0
        upscaled, tiles = run_tiled(
            floats,
            loaded.descriptor,
            scale=loaded.scale,
            tile=tile_size,
            tile_pad=tile_pad,
            context=context,
            as_uint8=True,
        )
        result = _resize(upscaled, target.size)
        info.update(
            backend="spandrel",
            model=loaded.name,
            architecture=loaded.architecture,
            model_scale=loaded.scale,
            device=loaded.device,
            dtype=loaded.dtype,
            tiles=tiles,
            tile_size=tile_size,
        )
    info["output_size"] = (int(result.shape[1]), int(result.shape[0]))
    info["scale"] = result.shape[1] / crop_w
    info["time"] = time.perf_counter() - start
    log.info(
        "upscaled %s %dx%d -> %dx%d (%s, %s%s) in %.2f s",
        source,
        width,
        height,
        result.shape[1],
        result.shape[0],
        preset,
        info["backend"],
        f" {info['model']}" if info["model"] else "",
        info["time"],
    )
    return result, info


def upscale_file(
    source: Path | str, destination: Path | str, preset: str = "high_quality", **options: Any
) -> dict[str, Any]:
    """Upscale an image file into ``destination`` (PNG, JPEG or WebP), written atomically.

    ``options`` are those of :func:`upscale_image`.  Returns its info dict with
    ``output_path`` added.

    Raises
    ------
    ParameterError
        ``destination`` has an extension OpenCV cannot write.
    MediaInputError
        The image could not be written.
    """
    import cv2

    from engine.atomic_files import atomic_path

    destination = Path(destination)
    if destination.suffix.lower() not in (".png", ".jpg", ".jpeg", ".webp", ".tif", ".tiff"):
        raise ParameterError("output", str(destination), "a .png, .jpg, .webp or .tif file")
    image, info = upscale_image(source, preset, **options)
    destination.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(destination) as tmp:
        if not cv2.imwrite(str(tmp), cv2.cvtColor(image, cv2.COLOR_RGB2BGR)):
            raise MediaInputError(destination, "could not be written; check the folder")
    info["output_path"] = str(destination)
    return info
