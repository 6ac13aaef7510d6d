"""Tell what a model file is from its tensor names and shapes.

Nothing big is loaded: a ``.safetensors`` file is identified from its header alone (see
:func:`~engine.generation.model_manager.safe_load.read_safetensors_header`); a pickled file
is opened with ``torch.load(weights_only=True, mmap=True)``.  Only an upscaler candidate, a
file that matches none of the diffusion layouts, is loaded, so that spandrel can name its
architecture.

How a family is recognised (the width of the UNet's cross-attention is the decisive shape;
it is the width of the text embedding the model was trained on):

================  ==========================================================================
family            evidence
================  ==========================================================================
``sd15``          original LDM names ``model.diffusion_model.*``; cross-attention 768 (CLIP ViT-L)
``sd2``           the same names; cross-attention 1024 (OpenCLIP ViT-H)
``sdxl``          cross-attention 2048 with an ``label_emb`` of 2816 inputs (pooled text + size
                  conditioning), text encoders under ``conditioner.embedders.0/1``
diffusers folder  ``model_index.json``'s ``_class_name`` and ``unet/config.json``
LoRA              kohya (``lora_unet_*``/``lora_te*``) or PEFT/diffusers (``*.lora_A``/``lora_B``)
                  names; the base from a cross-attention ``to_k`` input width (768/1024/2048)
IP-Adapter        ``image_proj.*`` and ``ip_adapter.*``; base from ``to_k_ip`` width
CLIP image        ``vision_model.*`` (transformers) or ``visual.*`` (open_clip)
upscaler          any architecture spandrel recognises (Real-ESRGAN, ESRGAN, SwinIR, ...)
================  ==========================================================================
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from engine.errors import ModelError
from engine.generation.model_manager.safe_load import (
    PICKLE_SUFFIXES,
    SAFETENSORS_SUFFIXES,
    load_state_dict,
    tensor_shapes,
)

__all__ = [
    "FAMILIES",
    "KINDS",
    "SUPPORTED_DESCRIPTION",
    "CheckpointInfo",
    "ModelInfo",
    "identify_checkpoint",
    "identify_model",
]

log = logging.getLogger(__name__)

Family = Literal["sd15", "sd2", "sdxl"]
Kind = Literal["checkpoint", "lora", "upscaler", "ip_adapter", "clip"]
FAMILIES: tuple[str, ...] = ("sd15", "sd2", "sdxl")
KINDS: tuple[str, ...] = ("checkpoint", "lora", "upscaler", "ip_adapter", "clip")
FAMILY_NAMES = {"sd15": "SD 1.5", "sd2": "SD 2.x", "sdxl": "SDXL"}
# Cross-attention width (text embedding width) -> family.
_CONTEXT_FAMILY: dict[int, Family] = {768: "sd15", 1024: "sd2", 2048: "sdxl"}
# Words in a file name or a model's metadata that mark a few-step distilled model.
_VARIANT_WORDS = ("turbo", "lcm", "lightning", "hyper")
SUPPORTED_DESCRIPTION = (
    "supported: Stable Diffusion 1.5, 2.x and SDXL checkpoints (single-file .safetensors in "
    "the original layout, or diffusers folders), LoRAs for those bases, IP-Adapters, CLIP "
    "image encoders, and upscalers spandrel knows (Real-ESRGAN, ESRGAN, SwinIR, ...)"
)
# Layouts we recognise but cannot run: a clearer message than "unknown".
_KNOWN_UNSUPPORTED: tuple[tuple[str, str], ...] = (
    ("double_blocks.", "a FLUX model"),
    ("joint_blocks.", "a Stable Diffusion 3 model"),
    ("clip_txt_mapper.", "a Stable Cascade model"),
    ("down_blocks.1.0.channelwise.", "a Stable Cascade model"),
    ("motion_modules.", "an AnimateDiff motion module"),
    ("control_model.", "a ControlNet"),
    ("controlnet_cond_embedding.", "a ControlNet"),
)


@dataclass(frozen=True, kw_only=True)
class ModelInfo:
    """What a model file or folder is.

    Attributes
    ----------
    path : Path
        The file or diffusers folder.
    kind : str
        ``"checkpoint"``, ``"lora"``, ``"upscaler"``, ``"ip_adapter"`` or ``"clip"``.
    family : str or None
        Base model family (``"sd15"``, ``"sd2"``, ``"sdxl"``) for checkpoints, LoRAs and
        IP-Adapters; ``None`` where it does not apply (upscalers, CLIP encoders) or cannot
        be told.
    format : str
        ``"single_file"`` (one weights file) or ``"diffusers"`` (a pipeline folder).
    storage : str
        ``"safetensors"``, ``"pickle"`` (loaded with ``weights_only=True``) or ``"folder"``.
    variants : tuple of str
        Hints: ``"turbo"``, ``"lcm"``, ``"lightning"``, ``"hyper"`` (few-step models, from
        the name or metadata), ``"inpainting"``, ``"instruct_pix2pix"`` (from the UNet's input
        channels), ``"plus"`` (IP-Adapter with a resampler)...
    components : tuple of str
        For checkpoints: which of ``unet``, ``vae``, ``text_encoder``, ``text_encoder_2``
        the file contains.
    context_dim : int or None
        The cross-attention width the family was told from.
    details : dict
        Kind-specific facts: a LoRA's ``rank`` and ``layout``, an upscaler's
        ``architecture`` and ``scale``, a CLIP encoder's ``hidden_size``.
    """

    path: Path
    kind: str
    family: str | None
    format: str
    storage: str
    variants: tuple[str, ...] = ()
    components: tuple[str, ...] = ()
    context_dim: int | None = None
    details: Mapping[str, Any] = field(default_factory=dict)

    @property
    def family_name(self) -> str:
        """Human name of the family (``"SD 1.5"``), or ``"-"``."""
        return FAMILY_NAMES.get(self.family or "", self.family or "-")

    @property
    def is_few_step(self) -> bool:
        """Whether the model is a distilled few-step one (Turbo, LCM, Lightning, Hyper)."""
        return any(v in _VARIANT_WORDS for v in self.variants)


#: The checkpoint view of :class:`ModelInfo` (``kind == "checkpoint"``).
CheckpointInfo = ModelInfo


def identify_model(path: Path | str) -> ModelInfo:
    """Identify a model file or diffusers folder.

    Parameters
    ----------
    path : Path or str
        A ``.safetensors`` / ``.ckpt`` / ``.pt`` / ``.pth`` / ``.bin`` file, or a diffusers
        pipeline folder (with ``model_index.json``).

    Returns
    -------
    ModelInfo

    Raises
    ------
    ModelError
        The file is missing, of an unknown or unsupported kind or family (the message names
        the file and lists what is supported), or a pickle that wants to run code.
    CorruptModelError
        A truncated or damaged file.
    """
    path = Path(path)
    if path.is_dir():
        return _identify_folder(path)
    if not path.exists():
        raise ModelError(f"{path}: model file not found", path=path, error_code="missing")
    suffix = path.suffix.lower()
    if suffix not in SAFETENSORS_SUFFIXES + PICKLE_SUFFIXES:
        raise ModelError(
            f"{path}: not a model file (expected .safetensors, .ckpt, .pt, .pth or .bin); "
            + SUPPORTED_DESCRIPTION,
            path=path,
            error_code="unknown_format",
        )
    storage = "safetensors" if suffix in SAFETENSORS_SUFFIXES else "pickle"
    shapes, metadata = tensor_shapes(path)
    info = _identify_tensors(path, shapes, metadata, storage)
    if info is not None:
        return info
    info = _identify_upscaler(path, storage)
    if info is not None:
        return info
    raise _unknown(path, shapes)


def identify_checkpoint(path: Path | str) -> ModelInfo:
    """Identify a Stable Diffusion checkpoint (single file or diffusers folder).

    Parameters
    ----------
    path : Path or str
        The checkpoint.

    Returns
    -------
    CheckpointInfo
        With ``family`` one of ``"sd15"``, ``"sd2"``, ``"sdxl"`` and ``format``
        ``"single_file"`` or ``"diffusers"``.

    Raises
    ------
    ModelError
        As :func:`identify_model`, or the file is a model of another kind (a LoRA given
        as a checkpoint, say).
    """
    info = identify_model(path)
    if info.kind != "checkpoint":
        raise ModelError(
            f"{info.path}: this is {_kind_phrase(info)}, not a Stable Diffusion checkpoint; "
            "put it in the matching models folder (see `apex-director models list`)",
            path=info.path,
            error_code="wrong_kind",
        )
    return info


def _kind_phrase(info: ModelInfo) -> str:
    base = f" for {info.family_name}" if info.family else ""
    return {
        "lora": f"a LoRA{base}",
        "upscaler": "an upscaler",
        "ip_adapter": f"an IP-Adapter{base}",
        "clip": "a CLIP image encoder",
    }.get(info.kind, f"a {info.kind}")


def _unknown(path: Path, shapes: Mapping[str, tuple[int, ...]]) -> ModelError:
    names = list(shapes)
    for marker, what in _KNOWN_UNSUPPORTED:
        if any(marker in name for name in names):
            return ModelError(
                f"{path}: looks like {what}, which APEX Director cannot use; "
                + SUPPORTED_DESCRIPTION,
                path=path,
                error_code="unsupported_family",
            )
    sample = ", ".join(names[:3]) or "no tensors"
    return ModelError(
        f"{path}: unknown model layout ({len(names)} tensors, e.g. {sample}); "
        + SUPPORTED_DESCRIPTION,
        path=path,
        error_code="unknown_family",
    )


def _name_variants(path: Path, metadata: Mapping[str, str]) -> list[str]:
    keys = ("modelspec.title", "modelspec.architecture")
    text = " ".join([path.stem.lower(), *(metadata.get(k, "").lower() for k in keys)])
    words = set(re.split(r"[^a-z0-9]+", text))
    return [v for v in _VARIANT_WORDS if v in words or f"{v}xl" in words or f"sdxl{v}" in words]


# --- checkpoints -------------------------------------------------------------------------

_UNET = "model.diffusion_model."


def _context_dim(shapes: Mapping[str, tuple[int, ...]], prefix: str) -> int | None:
    """Input width of the first cross-attention key projection under ``prefix``."""
    for name, shape in shapes.items():
        if name.startswith(prefix) and name.endswith("attn2.to_k.weight") and len(shape) == 2:
            return int(shape[1])
    return None


def _identify_tensors(
    path: Path, shapes: Mapping[str, tuple[int, ...]], metadata: Mapping[str, str], storage: str
) -> ModelInfo | None:
    names = shapes.keys()
    if any(n.startswith(_UNET) for n in names) and not any(
        marker in n for n in names for marker, _ in _KNOWN_UNSUPPORTED
    ):
        return _identify_ldm_checkpoint(path, shapes, metadata, storage)
    if _looks_like_lora(names):
        return _identify_lora(path, shapes, metadata, storage)
    if any(n.startswith("image_proj.") for n in names) and any(
        n.startswith("ip_adapter.") for n in names
    ):
        return _identify_ip_adapter(path, shapes, storage)
    clip = _identify_clip_vision(path, shapes, storage)
    if clip is not None:
        return clip
    return None


def _identify_ldm_checkpoint(
    path: Path, shapes: Mapping[str, tuple[int, ...]], metadata: Mapping[str, str], storage: str
) -> ModelInfo:
    context = _context_dim(shapes, _UNET)
    label_emb = shapes.get(_UNET + "label_emb.0.0.weight")
    adm_in = int(label_emb[1]) if label_emb and len(label_emb) == 2 else None
    names = list(shapes)
    has_sdxl_text = any(n.startswith("conditioner.embedders.1.") for n in names)
    family: Family | None
    if context == 2048 or (adm_in == 2816 and has_sdxl_text):
        family = "sdxl"
    elif context == 1280 and adm_in == 2560:
        raise ModelError(
            f"{path}: this is the SDXL refiner, which APEX Director does not use (use an SDXL "
            "base checkpoint); " + SUPPORTED_DESCRIPTION,
            path=path,
            error_code="unsupported_family",
        )
    elif context is not None and adm_in is None:
        family = _CONTEXT_FAMILY.get(context)
    else:
        family = None
    if family is None:
        raise ModelError(
            f"{path}: a Stable Diffusion-style UNet with cross-attention width {context} "
            f"and size conditioning {adm_in}: not a family APEX Director knows; "
            + SUPPORTED_DESCRIPTION,
            path=path,
            error_code="unknown_family",
        )
    variants = _name_variants(path, metadata)
    conv_in = shapes.get(_UNET + "input_blocks.0.0.weight")
    if conv_in is not None and len(conv_in) == 4:
        if conv_in[1] == 9:
            variants.append("inpainting")
        elif conv_in[1] == 8:
            variants.append("instruct_pix2pix")
    components = ["unet"]
    if any(n.startswith("first_stage_model.") for n in names):
        components.append("vae")
    if family == "sdxl":
        if any(n.startswith("conditioner.embedders.0.") for n in names):
            components.append("text_encoder")
        if has_sdxl_text:
            components.append("text_encoder_2")
    elif any(n.startswith("cond_stage_model.") for n in names):
        components.append("text_encoder")
    return ModelInfo(
        path=path,
        kind="checkpoint",
        family=family,
        format="single_file",
        storage=storage,
        variants=tuple(variants),
        components=tuple(components),
        context_dim=context,
    )


def _identify_folder(path: Path) -> ModelInfo:
    index_file = path / "model_index.json"
    if not index_file.is_file():
        raise ModelError(
            f"{path}: a folder without model_index.json is not a diffusers pipeline; "
            + SUPPORTED_DESCRIPTION,
            path=path,
            error_code="unknown_format",
        )
    try:
        index = json.loads(index_file.read_text(encoding="utf-8"))
        unet_file = path / "unet" / "config.json"
        unet = json.loads(unet_file.read_text(encoding="utf-8")) if unet_file.is_file() else {}
        sched_file = path / "scheduler" / "scheduler_config.json"
        sched = json.loads(sched_file.read_text(encoding="utf-8")) if sched_file.is_file() else {}
    except (OSError, ValueError) as err:
        raise ModelError(
            f"{path}: cannot read the pipeline's configuration ({err}); download it again",
            path=path,
            error_code="corrupt",
        ) from err
    class_name = str(index.get("_class_name", ""))
    context = unet.get("cross_attention_dim")
    context = int(context) if isinstance(context, int) else None
    family: Family | None
    if "XL" in class_name or unet.get("addition_embed_type") == "text_time":
        family = "sdxl" if context in (None, 2048) else None
        if "text_encoder" in index and index.get("text_encoder", [None])[0] is None:
            family = None  # the refiner has only the second text encoder
    elif class_name.startswith(("StableDiffusion", "LatentConsistencyModel")):
        family = _CONTEXT_FAMILY.get(context or 768)
    else:
        family = None
    if family is None or (family == "sdxl" and context == 1280):
        raise ModelError(
            f"{path}: a diffusers {class_name or 'pipeline'} (cross-attention {context}), "
            "not a family APEX Director knows; " + SUPPORTED_DESCRIPTION,
            path=path,
            error_code="unknown_family",
        )
    variants = _name_variants(path, {})
    if "LatentConsistency" in class_name or sched.get("_class_name") == "LCMScheduler":
        variants.append("lcm")
    if unet.get("time_cond_proj_dim") and "lcm" not in variants:
        variants.append("lcm")
    if "Inpaint" in class_name or unet.get("in_channels") == 9:
        variants.append("inpainting")
    components = tuple(
        c
        for c in ("unet", "vae", "text_encoder", "text_encoder_2")
        if isinstance(index.get(c), list) and index[c][0] is not None and (path / c).is_dir()
    )
    return ModelInfo(
        path=path,
        kind="checkpoint",
        family=family,
        format="diffusers",
        storage="folder",
        variants=tuple(dict.fromkeys(variants)),
        components=components,
        context_dim=context,
        details={"pipeline_class": class_name},
    )


# --- LoRA, IP-Adapter, CLIP ----------------------------------------------------------------

_LORA_MARKERS = (
    ".lora_down.",
    ".lora_up.",
    ".lora_A.",
    ".lora_B.",
    ".lora.down.",
    ".lora.up.",
    "_lora.down.",
    "_lora.up.",
    ".lora_linear_layer.",
    ".hada_w1_",
    ".lokr_w1",
)
_LORA_IN_SUFFIXES = (
    "lora_down.weight",
    "lora_A.weight",
    "lora.down.weight",
    "lora_linear_layer.down.weight",
    "hada_w1_b",
)


def _looks_like_lora(names: Any) -> bool:
    return any(any(m in n for m in _LORA_MARKERS) for n in names)


def _identify_lora(
    path: Path, shapes: Mapping[str, tuple[int, ...]], metadata: Mapping[str, str], storage: str
) -> ModelInfo:
    names = list(shapes)
    layout = (
        "kohya"
        if any(n.startswith(("lora_unet_", "lora_te")) for n in names)
        else "peft"
        if any(".lora_A." in n or ".lora_B." in n for n in names)
        else "diffusers"
    )
    context: int | None = None
    rank: int | None = None
    for name, shape in shapes.items():
        if not name.endswith(_LORA_IN_SUFFIXES) or len(shape) < 2:
            continue
        if rank is None and not name.endswith("hada_w1_b"):
            rank = int(shape[0])
        # kohya writes "..._attn2_to_k.lora_down", diffusers/PEFT "...attn2.to_k.lora_A"
        flat = name.replace(".", "_")
        if context is None and "attn2" in flat and "to_k" in flat:
            context = int(shape[1])
    family: str | None = _CONTEXT_FAMILY.get(context) if context else None
    if family is None and any(
        n.startswith(("lora_te2_", "lora_te1_", "text_encoder_2.", "te2.")) for n in names
    ):
        family = "sdxl"  # only SDXL has a second text encoder
    if family is None:
        family = _family_from_metadata(metadata)
    if family is None:
        log.warning("%s: a LoRA whose base model cannot be told from its tensors", path)
    return ModelInfo(
        path=path,
        kind="lora",
        family=family,
        format="single_file",
        storage=storage,
        variants=tuple(_name_variants(path, metadata)),
        context_dim=context,
        details={"layout": layout, "rank": rank, "tensors": len(names)},
    )


def _family_from_metadata(metadata: Mapping[str, str]) -> str | None:
    arch = metadata.get("modelspec.architecture", "").lower()
    base = metadata.get("ss_base_model_version", "").lower()
    if "xl" in arch or base.startswith("sdxl"):
        return "sdxl"
    if "v1" in arch or base.startswith("sd_v1"):
        return "sd15"
    if "v2" in arch or base.startswith("sd_v2"):
        return "sd2"
    return None


def _identify_ip_adapter(
    path: Path, shapes: Mapping[str, tuple[int, ...]], storage: str
) -> ModelInfo:
    context = None
    for name, shape in shapes.items():
        if name.startswith("ip_adapter.") and name.endswith("to_k_ip.weight") and len(shape) == 2:
            context = int(shape[1])
            break
    variants = []
    if any(n.startswith("image_proj.latents") or ".perceiver" in n for n in shapes):
        variants.append("plus")
    if any("faceid" in n.lower() for n in shapes) or "faceid" in path.stem.lower():
        variants.append("faceid")
    return ModelInfo(
        path=path,
        kind="ip_adapter",
        family=_CONTEXT_FAMILY.get(context) if context else None,
        format="single_file",
        storage=storage,
        variants=tuple(variants),
        context_dim=context,
    )


def _identify_clip_vision(
    path: Path, shapes: Mapping[str, tuple[int, ...]], storage: str
) -> ModelInfo | None:
    for key, layout in (
        ("vision_model.embeddings.patch_embedding.weight", "transformers"),
        ("visual.conv1.weight", "open_clip"),
    ):
        shape = shapes.get(key)
        if shape is not None and len(shape) == 4:
            layers = {
                int(m.group(1))
                for n in shapes
                if (m := re.search(r"(?:encoder\.layers|resblocks)\.(\d+)\.", n))
            }
            return ModelInfo(
                path=path,
                kind="clip",
                family=None,
                format="single_file",
                storage=storage,
                details={
                    "layout": layout,
                    "hidden_size": int(shape[0]),
                    "patch_size": int(shape[2]),
                    "layers": len(layers),
                },
            )
    return None


# --- upscalers ---------------------------------------------------------------------------

# Upscaler weights are small (Real-ESRGAN x4plus is 64 MB); never load a multi-GB file just
# to ask spandrel about it.
_MAX_UPSCALER_BYTES = 1024 * 1024 * 1024


def _identify_upscaler(path: Path, storage: str) -> ModelInfo | None:
    if path.stat().st_size > _MAX_UPSCALER_BYTES:
        return None
    try:
        import spandrel
    except ImportError:
        log.info("spandrel is not installed; cannot check whether %s is an upscaler", path)
        return None
    state_dict = load_state_dict(path)
    try:
        descriptor = spandrel.ModelLoader().load_from_state_dict(state_dict)
    except spandrel.UnsupportedModelError:
        return None
    except Exception as err:  # an architecture spandrel matched but could not build
        log.info("spandrel could not load %s: %s", path, err)
        return None
    arch = descriptor.architecture
    return ModelInfo(
        path=path,
        kind="upscaler",
        family=None,
        format="single_file",
        storage=storage,
        details={
            "architecture": getattr(arch, "name", str(arch)),
            "architecture_id": getattr(arch, "id", ""),
            "scale": int(descriptor.scale),
            "purpose": str(getattr(descriptor, "purpose", "")),
            "input_channels": int(getattr(descriptor, "input_channels", 3)),
        },
    )
