"""Tiny random-weight Stable Diffusion 1.5 pipelines for tests (never downloads anything).

The builders mirror diffusers' own ``get_dummy_components()``: a UNet with
``block_out_channels=(32, 64)``, a 5-layer CLIP text encoder of width 32, a two-block
VAE.  Three on-disk forms are produced:

* :func:`save_tiny_sd15_folder` — a diffusers folder (``save_pretrained``), loadable with
  ``StableDiffusionPipeline.from_pretrained(folder, local_files_only=True)``;
* :func:`save_tiny_sd15_single_file` — the same weights as ONE ``.safetensors`` file in the
  original LDM key names (``model.diffusion_model.*``, ``first_stage_model.*``,
  ``cond_stage_model.transformer.*``) as A1111/ComfyUI checkpoints are, plus
* a config folder (the diffusers folder without weights) that ``from_single_file(path,
  config=folder, local_files_only=True)`` reads the tiny sizes from.

The tokenizer is the shipped CLIP tokenizer (``resources/sd/sd15/tokenizer``) when the
models package provides it, otherwise a tiny byte-level CLIP tokenizer built here
(256 byte symbols, their end-of-word forms, no merges).

Every function imports torch/diffusers lazily; callers ``pytest.importorskip("torch")``.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Any

__all__ = [
    "TINY_SD15_SCHEDULER",
    "build_tiny_sd15_components",
    "build_tiny_sd15_pipeline",
    "diffusers_to_ldm_state_dict",
    "make_tiny_ip_adapter",
    "make_tiny_lora",
    "save_tiny_sd15_folder",
    "save_tiny_sd15_single_file",
    "tiny_clip_tokenizer",
]

ROOT = Path(__file__).resolve().parent.parent

# SD 1.5's own scheduler settings (PNDM, scaled-linear betas) so scheduler swaps behave as
# they do on the real checkpoint.
TINY_SD15_SCHEDULER: dict[str, Any] = {
    "beta_start": 0.00085,
    "beta_end": 0.012,
    "beta_schedule": "scaled_linear",
    "num_train_timesteps": 1000,
    "skip_prk_steps": True,
    "steps_offset": 1,
    "set_alpha_to_one": False,
}

UNET_LAYERS_PER_BLOCK = 2


def _bytes_to_unicode() -> dict[int, str]:
    # The GPT-2/CLIP reversible byte -> printable-character table.
    bs = (
        list(range(ord("!"), ord("~") + 1))
        + list(range(ord("¡"), ord("¬") + 1))
        + list(range(ord("®"), ord("ÿ") + 1))
    )
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, [chr(c) for c in cs], strict=True))


def tiny_clip_tokenizer() -> Any:
    """Return a CLIP tokenizer: the shipped SD 1.5 one when present, else a tiny byte-level one.

    Returns
    -------
    transformers.CLIPTokenizer
    """
    from transformers import CLIPTokenizer

    shipped = _shipped_tokenizer_dir()
    if shipped is not None:
        return CLIPTokenizer.from_pretrained(str(shipped), local_files_only=True)
    symbols = list(_bytes_to_unicode().values())
    vocab: dict[str, int] = {}
    for token in symbols + [s + "</w>" for s in symbols] + ["<|startoftext|>", "<|endoftext|>"]:
        vocab[token] = len(vocab)
    return CLIPTokenizer(vocab=vocab, merges=[], model_max_length=77)


def _shipped_tokenizer_dir() -> Path | None:
    try:
        from engine.generation.model_manager.configs import tokenizer_dir

        folder = Path(tokenizer_dir("sd15"))
    except Exception:  # the models package is optional here: fall back to the tiny tokenizer
        folder = ROOT / "resources" / "sd" / "sd15" / "tokenizer"
    if (folder / "vocab.json").is_file() or (folder / "tokenizer.json").is_file():
        return folder
    return None


def build_tiny_sd15_components(seed: int = 0) -> dict[str, Any]:
    """Build the tiny SD 1.5 components with deterministic random weights.

    Parameters
    ----------
    seed : int
        Seeds ``torch.manual_seed`` before each module is built.

    Returns
    -------
    dict
        Keyword arguments for ``StableDiffusionPipeline``.
    """
    import torch
    from diffusers import AutoencoderKL, PNDMScheduler, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    tokenizer = tiny_clip_tokenizer()
    torch.manual_seed(seed)
    unet = UNet2DConditionModel(
        block_out_channels=(32, 64),
        layers_per_block=UNET_LAYERS_PER_BLOCK,
        sample_size=32,
        in_channels=4,
        out_channels=4,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        cross_attention_dim=32,
        norm_num_groups=2,
    )
    torch.manual_seed(seed)
    vae = AutoencoderKL(
        block_out_channels=[32, 64],
        in_channels=3,
        out_channels=3,
        down_block_types=["DownEncoderBlock2D", "DownEncoderBlock2D"],
        up_block_types=["UpDecoderBlock2D", "UpDecoderBlock2D"],
        latent_channels=4,
        norm_num_groups=2,
        sample_size=64,
    )
    torch.manual_seed(seed)
    text_config = CLIPTextConfig(
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        hidden_size=32,
        intermediate_size=37,
        layer_norm_eps=1e-05,
        num_attention_heads=4,
        num_hidden_layers=5,
        vocab_size=max(len(tokenizer), 1000),
        max_position_embeddings=77,
    )
    text_encoder = CLIPTextModel(text_config)
    return {
        "unet": unet,
        "scheduler": PNDMScheduler(**TINY_SD15_SCHEDULER),
        "vae": vae,
        "text_encoder": text_encoder,
        "tokenizer": tokenizer,
        "safety_checker": None,
        "feature_extractor": None,
        "image_encoder": None,
        "requires_safety_checker": False,
    }


def build_tiny_sd15_pipeline(seed: int = 0) -> Any:
    """Return an in-memory tiny ``StableDiffusionPipeline`` on the CPU."""
    from diffusers import StableDiffusionPipeline

    pipe = StableDiffusionPipeline(**build_tiny_sd15_components(seed))
    pipe.set_progress_bar_config(disable=True)
    return pipe


def save_tiny_sd15_folder(folder: Path, seed: int = 0) -> Path:
    """Write a tiny SD 1.5 pipeline as a diffusers folder and return ``folder``."""
    pipe = build_tiny_sd15_pipeline(seed)
    pipe.save_pretrained(str(folder), safe_serialization=True)
    return folder


_RESNET_TO_LDM = (
    ("norm1", "in_layers.0"),
    ("conv1", "in_layers.2"),
    ("norm2", "out_layers.0"),
    ("conv2", "out_layers.3"),
    ("time_emb_proj", "emb_layers.1"),
    ("conv_shortcut", "skip_connection"),
)
_VAE_ATTN_TO_LDM = (
    ("group_norm.", "norm."),
    ("to_q.", "q."),
    ("to_k.", "k."),
    ("to_v.", "v."),
    ("to_out.0.", "proj_out."),
)


def _unet_key_to_ldm(key: str, up_has_attention: list[bool], per_block: int) -> str:
    from diffusers.loaders.single_file_utils import DIFFUSERS_TO_LDM_MAPPING

    top = DIFFUSERS_TO_LDM_MAPPING["unet"]["layers"]
    if key in top:
        return top[key]
    stride = per_block + 1

    def resnet(rest: str) -> str:
        for new, old in _RESNET_TO_LDM:
            if rest.startswith(new + "."):
                return old + rest[len(new) :]
        return rest

    patterns: list[tuple[str, Any]] = [
        (
            r"down_blocks\.(\d+)\.resnets\.(\d+)\.(.+)",
            lambda b, j, r: f"input_blocks.{b * stride + j + 1}.0.{resnet(r)}",
        ),
        (
            r"down_blocks\.(\d+)\.attentions\.(\d+)\.(.+)",
            lambda b, j, r: f"input_blocks.{b * stride + j + 1}.1.{r}",
        ),
        (
            r"down_blocks\.(\d+)\.downsamplers\.(0)\.conv\.(.+)",
            lambda b, j, r: f"input_blocks.{(b + 1) * stride}.0.op.{r}",
        ),
        (r"mid_block\.resnets\.(\d+)\.()(.+)", lambda j, _, r: f"middle_block.{2 * j}.{resnet(r)}"),
        (r"mid_block\.attentions\.(0)\.()(.+)", lambda j, _, r: f"middle_block.1.{r}"),
        (
            r"up_blocks\.(\d+)\.resnets\.(\d+)\.(.+)",
            lambda b, j, r: f"output_blocks.{b * stride + j}.0.{resnet(r)}",
        ),
        (
            r"up_blocks\.(\d+)\.attentions\.(\d+)\.(.+)",
            lambda b, j, r: f"output_blocks.{b * stride + j}.1.{r}",
        ),
        (
            r"up_blocks\.(\d+)\.upsamplers\.(0)\.conv\.(.+)",
            lambda b, j, r: (
                f"output_blocks.{b * stride + per_block}.{2 if up_has_attention[b] else 1}.conv.{r}"
            ),
        ),
    ]
    for pattern, build in patterns:
        match = re.fullmatch(pattern, key)
        if match:
            a, b, rest = match.groups()
            return build(int(a), int(b) if b else 0, rest)
    raise KeyError(f"no LDM name for UNet key {key}")


def _vae_key_to_ldm(key: str, num_up: int) -> tuple[str, bool]:
    """Return the LDM name and whether the tensor is a mid-block attention weight."""
    from diffusers.loaders.single_file_utils import DIFFUSERS_TO_LDM_MAPPING

    top = DIFFUSERS_TO_LDM_MAPPING["vae"]
    if key in top:
        return top[key], False
    match = re.fullmatch(r"(encoder|decoder)\.(.+)", key)
    if match is None:
        raise KeyError(f"no LDM name for VAE key {key}")
    side, rest = match.groups()
    rules: list[tuple[str, Any]] = [
        (r"down_blocks\.(\d+)\.resnets\.(\d+)\.(.+)", lambda i, j, r: f"down.{i}.block.{j}.{r}"),
        (
            r"down_blocks\.(\d+)\.downsamplers\.0\.()(.+)",
            lambda i, _, r: f"down.{i}.downsample.{r}",
        ),
        (
            r"up_blocks\.(\d+)\.resnets\.(\d+)\.(.+)",
            lambda i, j, r: f"up.{num_up - 1 - i}.block.{j}.{r}",
        ),
        (
            r"up_blocks\.(\d+)\.upsamplers\.0\.()(.+)",
            lambda i, _, r: f"up.{num_up - 1 - i}.upsample.{r}",
        ),
        (r"mid_block\.resnets\.(\d+)\.()(.+)", lambda i, _, r: f"mid.block_{i + 1}.{r}"),
    ]
    if rest.startswith("mid_block.attentions.0."):
        tail = rest[len("mid_block.attentions.0.") :]
        for new, old in _VAE_ATTN_TO_LDM:
            if tail.startswith(new):
                tail = old + tail[len(new) :]
                break
        return f"{side}.mid.attn_1.{tail}", True
    for pattern, build in rules:
        m = re.fullmatch(pattern, rest)
        if m:
            a, b, r = m.groups()
            ldm = build(int(a), int(b) if b else 0, r).replace("conv_shortcut", "nin_shortcut")
            return f"{side}.{ldm}", False
    raise KeyError(f"no LDM name for VAE key {key}")


def diffusers_to_ldm_state_dict(pipe: Any) -> dict[str, Any]:
    """Convert an SD 1.5 pipeline's weights to one state dict in original LDM key names.

    The inverse of diffusers' ``convert_ldm_unet_checkpoint`` / ``convert_ldm_vae_checkpoint``
    / ``convert_ldm_clip_checkpoint`` for the UNet/VAE layouts SD 1.5 uses (any number of
    blocks); VAE attention projections become 1x1 convolutions as in the original files.
    """
    out: dict[str, Any] = {}
    unet_config = pipe.unet.config
    up_has_attention = ["CrossAttn" in t for t in unet_config.up_block_types]
    for key, tensor in pipe.unet.state_dict().items():
        name = _unet_key_to_ldm(key, up_has_attention, unet_config.layers_per_block)
        out["model.diffusion_model." + name] = tensor.contiguous()
    num_up = len(pipe.vae.config.up_block_types)
    for key, tensor in pipe.vae.state_dict().items():
        name, is_attention = _vae_key_to_ldm(key, num_up)
        as_conv = tensor[:, :, None, None] if is_attention and tensor.ndim == 2 else tensor
        out["first_stage_model." + name] = as_conv.contiguous()
    for key, tensor in pipe.text_encoder.state_dict().items():
        # Original checkpoints name the CLIP weights ``text_model.*`` (transformers 5 drops it).
        name = key if key.startswith("text_model.") else "text_model." + key
        out["cond_stage_model.transformer." + name] = tensor.contiguous()
    return out


def save_tiny_sd15_single_file(
    path: Path, config_dir: Path, seed: int = 0, *, metadata: dict[str, str] | None = None
) -> tuple[Path, Path]:
    """Write the tiny pipeline as one LDM-named ``.safetensors`` plus a weight-less config folder.

    Parameters
    ----------
    path : Path
        The ``.safetensors`` file to write.
    config_dir : Path
        Receives ``model_index.json``, the component configs, scheduler and tokenizer (no
        weights), for ``from_single_file(path, config=config_dir)``.
    seed : int
        Weight seed (same seed as :func:`save_tiny_sd15_folder` gives the same weights).
    metadata : dict, optional
        ``__metadata__`` strings stored in the file header.

    Returns
    -------
    (Path, Path)
        ``path`` and ``config_dir``.
    """
    from safetensors.torch import save_file

    pipe = build_tiny_sd15_pipeline(seed)
    save_file(diffusers_to_ldm_state_dict(pipe), str(path), metadata=metadata)
    staging = config_dir.with_name(config_dir.name + ".full")
    pipe.save_pretrained(str(staging), safe_serialization=True)
    if config_dir.exists():
        shutil.rmtree(config_dir)
    config_dir.mkdir(parents=True)
    for item in staging.iterdir():
        if item.is_file():
            shutil.copy2(item, config_dir / item.name)
            continue
        (config_dir / item.name).mkdir()
        for part in item.iterdir():
            if part.suffix not in (".safetensors", ".bin"):
                shutil.copy2(part, config_dir / item.name / part.name)
    shutil.rmtree(staging)
    return path, config_dir


def make_tiny_lora(
    path: Path, pipe: Any, *, rank: int = 4, seed: int = 1, scale: float = 1.0
) -> Path:
    """Write a LoRA for ``pipe``'s UNet attention projections in the kohya/diffusers PEFT format.

    The LoRA's B matrices are random (not zero), so applying it changes the output.
    Keys are ``unet.<module>.lora_A.weight`` / ``lora_B.weight`` which
    ``load_lora_weights`` reads directly.
    """
    import torch
    from safetensors.torch import save_file

    gen = torch.Generator().manual_seed(seed)
    tensors: dict[str, torch.Tensor] = {}
    for name, module in pipe.unet.named_modules():
        if not isinstance(module, torch.nn.Linear):
            continue
        if not re.search(r"attn[12]\.(to_q|to_k|to_v|to_out\.0)$", name):
            continue
        down = torch.randn(rank, module.in_features, generator=gen) * scale
        up = torch.randn(module.out_features, rank, generator=gen) * scale
        tensors[f"unet.{name}.lora_A.weight"] = down.contiguous()
        tensors[f"unet.{name}.lora_B.weight"] = up.contiguous()
    save_file(tensors, str(path))
    return path


def make_tiny_ip_adapter(
    path: Path,
    pipe: Any,
    *,
    image_embed_dim: int = 16,
    cross_attention_dim: int | None = None,
    seed: int = 2,
) -> Path:
    """Write a basic IP-Adapter for ``pipe``'s UNet as one ``.safetensors`` file.

    The layout is the one diffusers' ``load_ip_adapter`` reads (and the original
    ``ip-adapter_sd15`` files have): ``image_proj.proj.weight`` ``(4 * ctx, embed)``,
    ``image_proj.proj.bias``, ``image_proj.norm.{weight,bias}`` ``(ctx,)`` (4 image tokens),
    and for each cross-attention processor of the UNet, in ``attn_processors`` order,
    ``ip_adapter.{k}.to_k_ip.weight`` / ``to_v_ip.weight`` ``(hidden, ctx)`` with
    ``k = 1, 3, 5, ...``.  ``image_embed_dim`` must be the CLIP encoder's projection
    width (16 for :func:`tests.clip_fixtures.save_tiny_clip_encoder`);
    ``cross_attention_dim`` defaults to the UNet's (give 2048 for an "SDXL" adapter).
    Weights are random (std 0.5 for the key/value projections) so the adapter visibly
    changes the output.
    """
    import torch
    from safetensors.torch import save_file

    config = pipe.unet.config
    ctx = int(cross_attention_dim or config.cross_attention_dim)
    blocks = list(config.block_out_channels)
    gen = torch.Generator().manual_seed(seed)
    tensors: dict[str, torch.Tensor] = {
        "image_proj.proj.weight": torch.randn(4 * ctx, image_embed_dim, generator=gen) * 0.5,
        "image_proj.proj.bias": torch.zeros(4 * ctx),
        "image_proj.norm.weight": torch.ones(ctx),
        "image_proj.norm.bias": torch.zeros(ctx),
    }
    key_id = 1
    for name in pipe.unet.attn_processors:
        if name.endswith("attn1.processor"):
            continue
        if name.startswith("mid_block"):
            hidden = blocks[-1]
        elif name.startswith("up_blocks"):
            hidden = list(reversed(blocks))[int(name[len("up_blocks.")])]
        else:
            hidden = blocks[int(name[len("down_blocks.")])]
        for proj in ("to_k_ip", "to_v_ip"):
            tensors[f"ip_adapter.{key_id}.{proj}.weight"] = (
                torch.randn(hidden, ctx, generator=gen) * 0.5
            )
        key_id += 2
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in tensors.items()}, str(path))
    return path


def write_json(path: Path, data: dict[str, Any]) -> None:
    """Small helper for tests that hand-write configs."""
    path.write_text(json.dumps(data, indent=2), encoding="utf-8")


def one_torch_thread() -> Any:
    """Context manager: run torch on one CPU thread, restoring the previous count after.

    The tiny models are all per-operator overhead; on a busy machine two threads per
    process make them 5-20x slower (measured), one thread keeps the tests quick.
    """
    import contextlib

    import torch

    @contextlib.contextmanager
    def manager() -> Any:
        before = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            yield
        finally:
            torch.set_num_threads(before)

    return manager()
