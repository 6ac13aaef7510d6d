"""IP-Adapter: condition Stable Diffusion on a reference image (a character's look).

An IP-Adapter (``ip-adapter_sd15.safetensors`` and the like) adds image cross-attention
to the UNet: the reference image goes through a CLIP image encoder, is projected to a few
extra context tokens, and every cross-attention layer attends to them with a weight
(``scale``; 0 = no effect).  This module finds the weights and their encoder, refuses an
adapter made for another base family *before* anything is loaded, and loads / unloads it
on a diffusers pipeline with diffusers' own ``load_ip_adapter`` (``local_files_only``;
nothing is downloaded).

Files
    ``models/ip_adapters/`` holds the adapters: single ``.safetensors`` files with
    ``image_proj.*`` / ``ip_adapter.*`` tensors (the layout diffusers reads), or the
    original ``.bin`` files (read with ``torch.load(weights_only=True)``; pickled code is
    never executed).  The CLIP image encoder is, in this order: an ``image_encoder/``
    folder next to the adapter (or in a folder above it, up to ``ip_adapters/``), then the
    first encoder of ``models/clip/`` (see :func:`engine.generation.embeddings.find_clip_encoder`).
    An encoder is a transformers ``CLIPVisionModelWithProjection`` folder (``config.json``
    and weights, optionally ``preprocessor_config.json``).

Attention slicing and offload
    IP-Adapter attention is not sliced: a pipeline in attention slicing (a memory level)
    gets plain attention while an adapter is loaded (logged), and slicing back when it is
    unloaded.  The image encoder sits on the pipeline's execution device (the GPU, also
    under CPU offload, where the UNet and VAE still move on and off it).

Families
    The adapter's context width (``to_k_ip`` input width: 768 SD 1.5, 1024 SD 2.x,
    2048 SDXL) must equal the UNet's ``cross_attention_dim``; otherwise
    :class:`IPAdapterBaseMismatchError` is raised before loading.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine.errors import BackendError, ModelError, ParameterError

__all__ = [
    "DEFAULT_IP_ADAPTER_SCALE",
    "IP_ADAPTER_SUFFIXES",
    "IPAdapterBaseMismatchError",
    "IPAdapterSpec",
    "check_ip_adapter_base",
    "find_image_encoder",
    "find_ip_adapter",
    "load_ip_adapter",
    "unload_ip_adapter",
]

log = logging.getLogger(__name__)

#: IP-Adapter strength used when a caller gives none (0.6: the reference guides the
#: look while the prompt still sets the scene; 1.0 follows the reference closely).
DEFAULT_IP_ADAPTER_SCALE = 0.6
IP_ADAPTER_SUFFIXES = (".safetensors", ".bin")
_FAMILY_BY_CONTEXT = {768: "SD 1.5", 1024: "SD 2.x", 2048: "SDXL"}


class IPAdapterBaseMismatchError(ModelError):
    """An IP-Adapter made for one base model family was given with a model of another.

    Attributes
    ----------
    adapter_context, model_context : int
        The adapter's and the UNet's cross-attention widths.
    """

    def __init__(
        self, message: str, *, path: Path, adapter_context: int, model_context: int
    ) -> None:
        self.adapter_context = adapter_context
        self.model_context = model_context
        super().__init__(message, path=path, error_code="wrong_base")


@dataclass(frozen=True, kw_only=True)
class IPAdapterSpec:
    """Which IP-Adapter to apply.

    Attributes
    ----------
    path : Path
        The adapter weights (``.safetensors`` or ``.bin``).
    image_encoder : Path or None
        The CLIP image-encoder folder; ``None``: found by :func:`find_image_encoder`.
    """

    path: Path
    image_encoder: Path | None = None


def find_ip_adapter(models_dir: Path | str | None) -> Path | None:
    """The first IP-Adapter weights file under ``models_dir/ip_adapters/`` (sorted), or None.

    Files inside an ``image_encoder`` folder are skipped (they are the encoder's).
    """
    if models_dir is None:
        return None
    folder = Path(models_dir).expanduser() / "ip_adapters"
    if not folder.is_dir():
        return None
    files = sorted(
        p
        for p in folder.rglob("*")
        if p.is_file()
        and p.suffix.lower() in IP_ADAPTER_SUFFIXES
        and "image_encoder" not in p.relative_to(folder).parts
    )
    return files[0] if files else None


def find_image_encoder(adapter: Path, models_dir: Path | str | None = None) -> Path | None:
    """The CLIP image encoder for ``adapter`` (see the module docs), or None."""
    adapter = Path(adapter)
    stop = Path(models_dir).expanduser() / "ip_adapters" if models_dir is not None else None
    folder = adapter.parent
    while True:
        candidate = folder / "image_encoder"
        if (candidate / "config.json").is_file():
            return candidate
        if stop is None or folder in (stop, folder.parent) or stop not in folder.parents:
            break
        folder = folder.parent
    from engine.generation.embeddings import find_clip_encoder

    return find_clip_encoder(models_dir)


def check_ip_adapter_base(path: Path, cross_attention_dim: int) -> int:
    """Refuse an adapter whose context width is not the UNet's; return that width.

    Raises
    ------
    ModelError
        The file is not an IP-Adapter (or cannot be read).
    IPAdapterBaseMismatchError
        Made for another family (an SDXL adapter on SD 1.5, ...).
    """
    from engine.generation.model_manager.identify import identify_model

    info = identify_model(path)
    if info.kind != "ip_adapter" or info.context_dim is None:
        raise ModelError(
            f"{path.name} is not an IP-Adapter (found {info.kind}); put IP-Adapter weights "
            "(image_proj.* and ip_adapter.* tensors) in models/ip_adapters/",
            path=path,
            error_code="not_ip_adapter",
        )
    if info.context_dim != cross_attention_dim:
        theirs = _FAMILY_BY_CONTEXT.get(info.context_dim, f"context {info.context_dim}")
        ours = _FAMILY_BY_CONTEXT.get(cross_attention_dim, f"context {cross_attention_dim}")
        raise IPAdapterBaseMismatchError(
            f"{path.name} is an IP-Adapter for {theirs} but the model is {ours}; use an "
            f"IP-Adapter made for {ours} (or a {theirs} checkpoint)",
            path=path,
            adapter_context=int(info.context_dim),
            model_context=int(cross_attention_dim),
        )
    return int(info.context_dim)


def _state_dict(path: Path) -> dict[str, dict[str, Any]]:
    """``{"image_proj": {...}, "ip_adapter": {...}}`` from a ``.bin`` without running pickles."""
    import torch

    try:
        data = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as err:
        raise ModelError(
            f"cannot read {path.name} as safe tensors-only pickle ({type(err).__name__}: {err}); "
            "convert it to .safetensors",
            path=path,
            error_code="unreadable",
        ) from err
    if isinstance(data, dict) and "image_proj" in data and "ip_adapter" in data:
        return {"image_proj": dict(data["image_proj"]), "ip_adapter": dict(data["ip_adapter"])}
    if isinstance(data, dict):
        out: dict[str, dict[str, Any]] = {"image_proj": {}, "ip_adapter": {}}
        for key, value in data.items():
            head, _, rest = str(key).partition(".")
            if head in out and rest:
                out[head][rest] = value
        if out["image_proj"] and out["ip_adapter"]:
            return out
    raise ModelError(
        f"{path.name} has no image_proj / ip_adapter weights; it is not an IP-Adapter",
        path=path,
        error_code="not_ip_adapter",
    )


def _image_processor(encoder_dir: Path, image_size: int) -> Any:
    from transformers import CLIPImageProcessor

    if (encoder_dir / "preprocessor_config.json").is_file():
        return CLIPImageProcessor.from_pretrained(str(encoder_dir), local_files_only=True)
    return CLIPImageProcessor(
        size={"shortest_edge": image_size}, crop_size={"height": image_size, "width": image_size}
    )


def _unslice_attention(pipe: Any) -> bool:
    """Replace sliced attention processors by plain ones; return whether any were sliced.

    diffusers' ``load_ip_adapter`` re-creates every self-attention processor with no
    arguments, which ``SlicedAttnProcessor`` (``slice_size``) does not allow.
    """
    processors = dict(pipe.unet.attn_processors)
    sliced = {n for n, p in processors.items() if "Sliced" in type(p).__name__}
    if not sliced:
        return False
    from diffusers.models.attention_processor import AttnProcessor2_0

    pipe.unet.set_attn_processor(
        {n: AttnProcessor2_0() if n in sliced else p for n, p in processors.items()}
    )
    return True


def load_ip_adapter(
    pipe: Any, spec: IPAdapterSpec, *, models_dir: Path | str | None = None
) -> dict[str, Any]:
    """Load ``spec`` onto ``pipe`` (a diffusers SD/SDXL pipeline) with its image encoder.

    Parameters
    ----------
    pipe : diffusers pipeline
        Has ``load_ip_adapter`` (``IPAdapterMixin``).
    spec : IPAdapterSpec
    models_dir : Path, optional
        Where ``clip/`` is looked up when the adapter has no ``image_encoder/`` folder.

    Returns
    -------
    dict
        What to restore on unload: the pipeline's previous ``feature_extractor``; plus
        ``image_encoder`` (Path) and ``context_dim``.

    Raises
    ------
    IPAdapterBaseMismatchError
        Adapter for another family (checked before any weights are read).
    ModelError
        Not an IP-Adapter, or unreadable.
    BackendError
        No CLIP image encoder, or diffusers/transformers cannot load it.
    """
    path = Path(spec.path)
    if not path.is_file():
        raise ParameterError("ip_adapter", str(path), "an existing IP-Adapter weights file")
    if not hasattr(pipe, "load_ip_adapter"):
        raise BackendError(
            f"{type(pipe).__name__} cannot take an IP-Adapter", backend_name="diffusers"
        )
    context = check_ip_adapter_base(path, int(pipe.unet.config.cross_attention_dim))
    encoder_dir = spec.image_encoder or find_image_encoder(path, models_dir)
    if encoder_dir is None:
        raise BackendError(
            f"the IP-Adapter {path.name} needs a CLIP image encoder: put its image_encoder/ "
            "folder next to it or a CLIP vision model in models/clip/",
            backend_name="diffusers",
        )
    from transformers import CLIPVisionModelWithProjection

    dtype = pipe.unet.dtype
    device = getattr(pipe, "_execution_device", None) or pipe.unet.device
    try:
        encoder = CLIPVisionModelWithProjection.from_pretrained(
            str(encoder_dir), local_files_only=True, dtype=dtype
        ).to(device)
    except (OSError, ValueError, RuntimeError, TypeError) as err:
        raise BackendError(
            f"cannot load the CLIP image encoder {encoder_dir} ({type(err).__name__}: {err})",
            backend_name="diffusers",
        ) from err
    encoder.eval()
    previous = {
        "feature_extractor": getattr(pipe, "feature_extractor", None),
        "attention_slicing": _unslice_attention(pipe),
    }
    if previous["attention_slicing"]:
        log.info("attention slicing is off while the IP-Adapter is loaded (it does not slice)")
    pipe.register_modules(
        image_encoder=encoder,
        feature_extractor=_image_processor(encoder_dir, int(encoder.config.image_size)),
    )
    try:
        if path.suffix.lower() == ".safetensors":
            pipe.load_ip_adapter(
                str(path.parent),
                subfolder="",
                weight_name=path.name,
                image_encoder_folder=None,
                local_files_only=True,
            )
        else:
            pipe.load_ip_adapter(
                _state_dict(path), subfolder="", weight_name="", image_encoder_folder=None
            )
    except (OSError, ValueError, RuntimeError, KeyError, TypeError) as err:
        _restore(pipe, previous)
        raise BackendError(
            f"cannot load the IP-Adapter {path.name} ({type(err).__name__}: {err}); check it "
            "with `apex-director models verify`",
            backend_name="diffusers",
        ) from err
    log.info("IP-Adapter %s loaded (encoder %s)", path.name, encoder_dir)
    return {**previous, "image_encoder": encoder_dir, "context_dim": context}


def _restore(pipe: Any, previous: dict[str, Any]) -> None:
    # a memory step-down may have sliced attention meanwhile: unload needs plain processors
    sliced = _unslice_attention(pipe)
    if getattr(pipe.unet, "encoder_hid_proj", None) is not None:
        pipe.unload_ip_adapter()
    pipe.register_modules(image_encoder=None, feature_extractor=previous.get("feature_extractor"))
    if previous.get("attention_slicing") or sliced:
        pipe.enable_attention_slicing()


def unload_ip_adapter(pipe: Any, previous: dict[str, Any]) -> None:
    """Remove the adapter, its encoder and processor; restore the previous feature extractor."""
    _restore(pipe, previous)
    log.info("IP-Adapter unloaded")
