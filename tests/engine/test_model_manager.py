"""The model manager: identification from tensor names/shapes, safe loading, shipped configs
and tokenizers, manifest, folder scan, import, and pull against a local Hub-like server."""

from __future__ import annotations

import hashlib
import http.server
import json
import pickle
import re
import struct
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import ClassVar

import numpy as np
import pytest
from safetensors.numpy import save_file

from engine.errors import CorruptModelError, ModelError, ParameterError, UserInputError
from engine.generation.model_manager import (
    identify_checkpoint,
    identify_model,
    pipeline_config_dir,
    read_safetensors_header,
    tokenizer_dir,
)
from engine.generation.model_manager.install import import_model
from engine.generation.model_manager.manifest import (
    Manifest,
    ManifestEntry,
    sha256_file,
    verify_entries,
)
from engine.generation.model_manager.registry import detect_layout, scan_models

UNET = "model.diffusion_model."

# Tensor names as they appear in real original-layout (LDM) checkpoints; only the shapes that
# matter for identification carry real widths (the cross-attention input, label_emb, conv_in).
SD15_NAMES: dict[str, tuple[int, ...]] = {
    UNET + "input_blocks.0.0.weight": (8, 4, 3, 3),
    UNET + "input_blocks.1.1.transformer_blocks.0.attn2.to_k.weight": (8, 768),
    UNET + "output_blocks.11.0.skip_connection.weight": (8, 8, 1, 1),
    "first_stage_model.encoder.conv_in.weight": (8, 3, 3, 3),
    "cond_stage_model.transformer.text_model.embeddings.position_embedding.weight": (77, 8),
}
SD2_NAMES: dict[str, tuple[int, ...]] = {
    UNET + "input_blocks.0.0.weight": (8, 4, 3, 3),
    UNET + "input_blocks.2.1.transformer_blocks.0.attn2.to_k.weight": (8, 1024),
    "first_stage_model.encoder.conv_in.weight": (8, 3, 3, 3),
    "cond_stage_model.model.token_embedding.weight": (16, 8),
}
SDXL_NAMES: dict[str, tuple[int, ...]] = {
    UNET + "input_blocks.0.0.weight": (8, 4, 3, 3),
    UNET + "input_blocks.4.1.transformer_blocks.0.attn2.to_k.weight": (8, 2048),
    UNET + "label_emb.0.0.weight": (8, 2816),
    "first_stage_model.encoder.conv_in.weight": (8, 3, 3, 3),
    "conditioner.embedders.0.transformer.text_model.embeddings.position_embedding.weight": (77, 8),
    "conditioner.embedders.1.model.positional_embedding": (77, 8),
    "conditioner.embedders.1.model.transformer.resblocks.9.mlp.c_proj.bias": (8,),
}


def write_safetensors(
    path: Path, names: dict[str, tuple[int, ...]], metadata: dict[str, str] | None = None
) -> Path:
    rng = np.random.default_rng(0)
    tensors = {k: rng.standard_normal(shape).astype(np.float16) for k, shape in names.items()}
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(path), metadata=metadata)
    return path


SD15_ATTN2_K = "lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn2_to_k"
XL_ATTN2_K = "lora_unet_input_blocks_4_1_transformer_blocks_0_attn2_to_k"

# --- identification ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("names", "family", "components"),
    [
        (SD15_NAMES, "sd15", ("unet", "vae", "text_encoder")),
        (SD2_NAMES, "sd2", ("unet", "vae", "text_encoder")),
        (SDXL_NAMES, "sdxl", ("unet", "vae", "text_encoder", "text_encoder_2")),
    ],
)
def test_single_file_family_from_names_and_cross_attention_width(
    tmp_path: Path, names: dict[str, tuple[int, ...]], family: str, components: tuple[str, ...]
) -> None:
    path = write_safetensors(tmp_path / "model.safetensors", names)
    info = identify_checkpoint(path)
    assert (info.kind, info.family, info.format, info.storage) == (
        "checkpoint",
        family,
        "single_file",
        "safetensors",
    )
    assert info.components == components
    assert info.context_dim == {"sd15": 768, "sd2": 1024, "sdxl": 2048}[family]


def test_our_fixture_names_are_what_diffusers_recognises(tmp_path: Path) -> None:
    """diffusers' own single-file detection agrees with ours on the same names and shapes."""
    torch = pytest.importorskip("torch")
    single_file_utils = pytest.importorskip("diffusers.loaders.single_file_utils")
    expected = {"sd15": "v1", "sd2": "v2", "sdxl": "xl_base"}
    for family, names in (("sd15", SD15_NAMES), ("sd2", SD2_NAMES), ("sdxl", SDXL_NAMES)):
        checkpoint = {k: torch.zeros(shape) for k, shape in names.items()}
        assert single_file_utils.infer_diffusers_model_type(checkpoint) == expected[family]
        path = write_safetensors(tmp_path / f"{family}.safetensors", names)
        assert identify_checkpoint(path).family == family


def test_variants_from_name_metadata_and_input_channels(tmp_path: Path) -> None:
    turbo = write_safetensors(tmp_path / "sd_xl_turbo_1.0_fp16.safetensors", SDXL_NAMES)
    assert identify_checkpoint(turbo).variants == ("turbo",)
    assert identify_checkpoint(turbo).is_few_step
    lcm = write_safetensors(
        tmp_path / "dreamshaper.safetensors", SD15_NAMES, {"modelspec.title": "Dreamshaper LCM"}
    )
    assert identify_checkpoint(lcm).variants == ("lcm",)
    inpaint_names = dict(SD15_NAMES)
    inpaint_names[UNET + "input_blocks.0.0.weight"] = (8, 9, 3, 3)
    inpaint = write_safetensors(tmp_path / "inpaint.safetensors", inpaint_names)
    info = identify_checkpoint(inpaint)
    assert info.variants == ("inpainting",) and not info.is_few_step


def test_unet_only_file_lists_its_components(tmp_path: Path) -> None:
    names = {k: v for k, v in SD15_NAMES.items() if k.startswith(UNET)}
    info = identify_checkpoint(write_safetensors(tmp_path / "unet.safetensors", names))
    assert info.components == ("unet",)


def test_diffusers_folder_from_model_index(tmp_path: Path) -> None:
    for family in ("sd15", "sdxl"):
        folder = tmp_path / family
        shipped = pipeline_config_dir(family)
        for part in ("unet", "vae", "text_encoder", "text_encoder_2", "scheduler"):
            if (shipped / part).is_dir():
                (folder / part).mkdir(parents=True)
                for f in (shipped / part).iterdir():
                    (folder / part / f.name).write_bytes(f.read_bytes())
        (folder / "model_index.json").write_bytes((shipped / "model_index.json").read_bytes())
        info = identify_checkpoint(folder)
        assert (info.family, info.format, info.storage) == (family, "diffusers", "folder")
        assert "unet" in info.components
    lcm = tmp_path / "lcm"
    (lcm / "unet").mkdir(parents=True)
    (lcm / "model_index.json").write_text(
        json.dumps({"_class_name": "LatentConsistencyModelPipeline", "unet": ["d", "U"]})
    )
    (lcm / "unet" / "config.json").write_text(
        json.dumps({"cross_attention_dim": 768, "time_cond_proj_dim": 256})
    )
    assert identify_checkpoint(lcm).variants == ("lcm",)
    assert identify_checkpoint(lcm).family == "sd15"


def test_folder_without_model_index_is_a_typed_error(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match=r"model_index.json"):
        identify_model(tmp_path)


@pytest.mark.parametrize(
    ("names", "family", "layout"),
    [
        (
            {
                SD15_ATTN2_K + ".lora_down.weight": (
                    4,
                    768,
                ),
                SD15_ATTN2_K + ".lora_up.weight": (
                    320,
                    4,
                ),
                SD15_ATTN2_K + ".alpha": (),
            },
            "sd15",
            "kohya",
        ),
        (
            {
                XL_ATTN2_K + ".lora_down.weight": (
                    8,
                    2048,
                ),
                XL_ATTN2_K + ".lora_up.weight": (
                    640,
                    8,
                ),
                "lora_te1_text_model_encoder_layers_0_self_attn_q_proj.lora_down.weight": (8, 768),
            },
            "sdxl",
            "kohya",
        ),
        (
            {
                "unet.down_blocks.1.attentions.0.transformer_blocks.0.attn2.to_k.lora_A.weight": (
                    4,
                    1024,
                ),
                "unet.down_blocks.1.attentions.0.transformer_blocks.0.attn2.to_k.lora_B.weight": (
                    640,
                    4,
                ),
            },
            "sd2",
            "peft",
        ),
        (
            # no cross-attention layer: only the second text encoder tells SDXL
            {
                "lora_te2_text_model_encoder_layers_0_self_attn_q_proj.lora_down.weight": (4, 1280),
                "lora_te2_text_model_encoder_layers_0_self_attn_q_proj.lora_up.weight": (1280, 4),
            },
            "sdxl",
            "kohya",
        ),
    ],
)
def test_lora_base_from_cross_attention_width(
    tmp_path: Path, names: dict[str, tuple[int, ...]], family: str, layout: str
) -> None:
    info = identify_model(write_safetensors(tmp_path / "style.safetensors", names))
    assert (info.kind, info.family, info.details["layout"]) == ("lora", family, layout)
    with pytest.raises(ModelError, match=r"a LoRA for .*not a Stable Diffusion checkpoint"):
        identify_checkpoint(info.path)


def test_ip_adapter_and_clip_image_encoder(tmp_path: Path) -> None:
    ip = write_safetensors(
        tmp_path / "ip-adapter_sd15.safetensors",
        {
            "image_proj.proj.weight": (16, 8),
            "image_proj.norm.weight": (8,),
            "ip_adapter.1.to_k_ip.weight": (8, 768),
            "ip_adapter.1.to_v_ip.weight": (8, 768),
        },
    )
    info = identify_model(ip)
    assert (info.kind, info.family) == ("ip_adapter", "sd15")
    clip = write_safetensors(
        tmp_path / "image_encoder.safetensors",
        {
            "vision_model.embeddings.patch_embedding.weight": (16, 3, 2, 2),
            "vision_model.encoder.layers.0.self_attn.k_proj.weight": (16, 16),
            "vision_model.encoder.layers.1.self_attn.k_proj.weight": (16, 16),
        },
    )
    info = identify_model(clip)
    assert (info.kind, info.family) == ("clip", None)
    assert info.details["hidden_size"] == 16 and info.details["layers"] == 2


def test_pickled_ip_adapter_bin_with_nested_dicts(tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    path = tmp_path / "ip-adapter_sdxl.bin"
    torch.save(
        {
            "image_proj": {"proj.weight": torch.zeros(16, 8), "norm.weight": torch.zeros(8)},
            "ip_adapter": {"1.to_k_ip.weight": torch.zeros(8, 2048)},
        },
        path,
    )
    info = identify_model(path)
    assert (info.kind, info.family, info.storage) == ("ip_adapter", "sdxl", "pickle")


def _tiny_upscaler(path: Path) -> Path:
    torch = pytest.importorskip("torch")
    pytest.importorskip("spandrel")
    from safetensors.torch import save_file as save_torch
    from spandrel.architectures.Compact.__arch.SRVGG import SRVGGNetCompact

    torch.manual_seed(0)
    net = SRVGGNetCompact(num_in_ch=3, num_out_ch=3, num_feat=8, num_conv=2, upscale=2)
    save_torch({k: v.contiguous() for k, v in net.state_dict().items()}, str(path))
    return path


def test_upscaler_identified_by_spandrel(tmp_path: Path) -> None:
    info = identify_model(_tiny_upscaler(tmp_path / "tiny-x2.safetensors"))
    assert info.kind == "upscaler"
    assert info.details["scale"] == 2
    assert "Compact" in info.details["architecture"] or "SRVGG" in info.details["architecture"]


def test_unknown_layout_names_file_and_lists_what_is_supported(tmp_path: Path) -> None:
    path = write_safetensors(tmp_path / "mystery.safetensors", {"encoder.w": (4, 4), "b": (4,)})
    with pytest.raises(ModelError, match=r"mystery\.safetensors: unknown model layout") as err:
        identify_model(path)
    assert "supported: Stable Diffusion 1.5, 2.x and SDXL" in str(err.value)
    assert err.value.error_code == "unknown_family"
    assert isinstance(err.value, UserInputError)
    flux = write_safetensors(
        tmp_path / "flux.safetensors", {"double_blocks.0.img_attn.norm.key_norm.scale": (8,)}
    )
    with pytest.raises(ModelError, match="FLUX model"):
        identify_model(flux)


def test_unknown_cross_attention_width_is_an_unknown_family(tmp_path: Path) -> None:
    names = {k: v for k, v in SD15_NAMES.items() if k.startswith(UNET)}
    names[UNET + "input_blocks.1.1.transformer_blocks.0.attn2.to_k.weight"] = (8, 4096)
    path = write_safetensors(tmp_path / "odd.safetensors", names)
    with pytest.raises(ModelError, match=r"cross-attention width 4096.*supported:"):
        identify_checkpoint(path)


# --- truncated and damaged files ---------------------------------------------------------


def test_truncated_safetensors_is_a_typed_error_naming_the_file(tmp_path: Path) -> None:
    path = write_safetensors(tmp_path / "cut.safetensors", SD15_NAMES)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) - 100])  # tensor data cut short
    with pytest.raises(CorruptModelError, match=r"cut\.safetensors: truncated.*models verify"):
        identify_model(path)
    header_only = tmp_path / "header-cut.safetensors"
    header_only.write_bytes(data[:40])  # header length now runs past the end
    with pytest.raises(CorruptModelError, match=r"header says .* bytes, the file has 40"):
        read_safetensors_header(header_only)
    tiny = tmp_path / "tiny.safetensors"
    tiny.write_bytes(b"\x01\x02")
    with pytest.raises(CorruptModelError, match="too short"):
        identify_model(tiny)
    garbage = tmp_path / "garbage.safetensors"
    garbage.write_bytes(struct.pack("<Q", 4) + b"{{{{")
    with pytest.raises(CorruptModelError, match="damaged safetensors header"):
        identify_model(garbage)


def test_truncated_file_refused_before_loading(tmp_path: Path) -> None:
    pytest.importorskip("torch")
    from engine.generation.model_manager.safe_load import load_state_dict

    path = write_safetensors(tmp_path / "cut.safetensors", SD15_NAMES)
    path.write_bytes(path.read_bytes()[:-1])
    with pytest.raises(CorruptModelError, match="truncated"):
        load_state_dict(path)


# --- pickles -----------------------------------------------------------------------------


class _Payload:
    """A pickle that, if unpickled unsafely, writes a marker file."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[str, str]]:
        return (open, (str(self.marker), "w"))


@pytest.mark.parametrize("suffix", [".ckpt", ".pt", ".pth"])
def test_malicious_pickle_is_refused_and_never_executed(tmp_path: Path, suffix: str) -> None:
    torch = pytest.importorskip("torch")
    from engine.generation.model_manager.safe_load import load_state_dict

    marker = tmp_path / "PWNED"
    evil = tmp_path / f"evil{suffix}"
    torch.save({"state_dict": {"w": torch.zeros(2)}, "x": _Payload(marker)}, evil)
    # Plain pickle would run it: prove the payload is live, then remove the marker.
    with evil.open("rb"):
        pass
    legacy = tmp_path / "legacy.pkl"
    legacy.write_bytes(pickle.dumps(_Payload(marker)))
    pickle.loads(legacy.read_bytes())
    assert marker.exists()
    marker.unlink()
    with pytest.raises(ModelError, match=r"refused: .*never executed") as err:
        load_state_dict(evil)
    assert err.value.error_code == "unsafe"
    with pytest.raises(ModelError, match="refused"):
        identify_model(evil)
    assert not marker.exists()


def test_plain_pickled_checkpoint_loads_with_weights_only(tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    from engine.generation.model_manager.safe_load import load_state_dict

    path = tmp_path / "old.ckpt"
    state = {k: torch.zeros(shape) for k, shape in SD15_NAMES.items()}
    torch.save({"state_dict": state, "global_step": 840000}, path)
    loaded = load_state_dict(path)
    assert set(loaded) == set(state)
    info = identify_checkpoint(path)
    assert (info.family, info.storage) == ("sd15", "pickle")
    broken = tmp_path / "broken.ckpt"
    broken.write_bytes(path.read_bytes()[:200])
    with pytest.raises(CorruptModelError, match=r"broken\.ckpt"):
        load_state_dict(broken)


# --- shipped configs and tokenizers ------------------------------------------------------


def test_shipped_tokenizers_give_clip_ids() -> None:
    transformers = pytest.importorskip("transformers")
    for folder in (
        tokenizer_dir("sd15"),
        tokenizer_dir("sdxl"),
        tokenizer_dir("sdxl", second=True),
    ):
        tok = transformers.CLIPTokenizer.from_pretrained(str(folder), local_files_only=True)
        assert len(tok) == 49408
        assert tok("a photo of a cat").input_ids == [49406, 320, 1125, 539, 320, 2368, 49407]
        assert tok.model_max_length == 77
    second = transformers.CLIPTokenizer.from_pretrained(
        str(tokenizer_dir("sdxl", second=True)), local_files_only=True
    )
    assert second.pad_token == "!" and second.pad_token_id == 0
    with pytest.raises(ParameterError):
        tokenizer_dir("sd15", second=True)
    with pytest.raises(ParameterError):
        pipeline_config_dir("flux")


def test_make_tokenizer_rebuilds_the_shipped_vocabulary(tmp_path: Path) -> None:
    """The script reproduces the shipped files from CLIP's gzipped merges list."""
    import gzip
    import importlib.util

    root = Path(__file__).resolve().parents[2]
    spec = importlib.util.spec_from_file_location(
        "make_tok", root / "resources/sd/make_tokenizer.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    shipped = tokenizer_dir("sd15")
    merges = (shipped / "merges.txt").read_text(encoding="utf-8").splitlines()[1:]
    assert len(merges) == 48894
    # CLIP's file: a version line, the merges, and more lines CLIP never uses.
    gz = tmp_path / "bpe.txt.gz"
    with gzip.open(gz, "wt", encoding="utf-8") as handle:
        handle.write("\n".join(['"bpe_simple_vocab_16e6.txt#version: 0.2', *merges, "x y"]))
    vocab, rebuilt = module.build(gz)
    assert rebuilt == merges
    assert vocab == json.loads((shipped / "vocab.json").read_text(encoding="utf-8"))
    assert vocab["<|startoftext|>"] == 49406 and vocab["<|endoftext|>"] == 49407
    assert vocab["a</w>"] == 320 and vocab["cat</w>"] == 2368


def _count(module: object) -> int:
    return sum(p.numel() for p in module.parameters())  # type: ignore[attr-defined]


def test_shipped_sd15_config_builds_the_published_architecture() -> None:
    torch = pytest.importorskip("torch")
    diffusers = pytest.importorskip("diffusers")
    transformers = pytest.importorskip("transformers")
    folder = pipeline_config_dir("sd15")
    with torch.device("meta"):
        unet = diffusers.UNet2DConditionModel.from_config(
            diffusers.UNet2DConditionModel.load_config(folder / "unet")
        )
        text = transformers.CLIPTextModel(
            transformers.CLIPTextConfig.from_pretrained(folder / "text_encoder")
        )
        vae = diffusers.AutoencoderKL.from_config(
            diffusers.AutoencoderKL.load_config(folder / "vae")
        )
    assert _count(unet) == 859_520_964
    assert _count(text) == 123_060_480
    assert _count(vae) == 83_653_863
    index = json.loads((folder / "model_index.json").read_text())
    assert index["_class_name"] == "StableDiffusionPipeline"
    scheduler = diffusers.PNDMScheduler.from_pretrained(folder, subfolder="scheduler")
    assert scheduler.config.steps_offset == 1


def test_shipped_sdxl_config_builds_the_published_architecture() -> None:
    torch = pytest.importorskip("torch")
    diffusers = pytest.importorskip("diffusers")
    transformers = pytest.importorskip("transformers")
    folder = pipeline_config_dir("sdxl")
    with torch.device("meta"):
        unet = diffusers.UNet2DConditionModel.from_config(
            diffusers.UNet2DConditionModel.load_config(folder / "unet")
        )
        text = transformers.CLIPTextModel(
            transformers.CLIPTextConfig.from_pretrained(folder / "text_encoder")
        )
    assert _count(unet) == 2_567_463_684
    assert _count(text) == 123_060_480
    config2 = transformers.CLIPTextConfig.from_pretrained(folder / "text_encoder_2")
    assert (config2.hidden_size, config2.num_hidden_layers, config2.projection_dim) == (
        1280,
        32,
        1280,
    )
    scheduler = diffusers.EulerDiscreteScheduler.from_pretrained(folder, subfolder="scheduler")
    assert scheduler.config.timestep_spacing == "leading"


# --- manifest, verify, scan, import ------------------------------------------------------


def test_manifest_round_trip_and_validation(tmp_path: Path) -> None:
    manifest = Manifest(tmp_path / "manifest.toml")
    assert len(manifest) == 0
    entry = ManifestEntry(
        name="sd15",
        kind="checkpoint",
        file="checkpoints/a.safetensors",
        sha256="0" * 64,
        licence="CreativeML OpenRAIL-M",
        min_vram_gb=4.0,
        family="sd15",
    )
    manifest.put(entry)
    manifest.save()
    again = Manifest(tmp_path / "manifest.toml")
    assert again.get("sd15") == entry
    with pytest.raises(ParameterError, match="kind"):
        ManifestEntry(name="x", kind="vae", file="a")
    with pytest.raises(ParameterError, match="file"):
        ManifestEntry(name="x", kind="lora", file="../outside.safetensors")
    (tmp_path / "bad.toml").write_text(
        'schema_version = 1\n[models.x]\nkind = "lora"\nfile = "a"\nsize = 3\n'
    )
    with pytest.raises(ModelError, match=r"models\.x has unknown keys \['size'\]"):
        Manifest(tmp_path / "bad.toml")


def test_shipped_catalogue_is_valid() -> None:
    from engine.generation.model_manager.manifest import catalogue_path

    catalogue = Manifest(catalogue_path())
    assert len(catalogue) >= 3
    for entry in catalogue:
        assert entry.repo_id and entry.repo_file and entry.licence, entry.name


def test_verify_reports_ok_mismatch_missing(tmp_path: Path) -> None:
    good = write_safetensors(
        tmp_path / "loras" / "good.safetensors", {"a.lora_down.weight": (2, 2)}
    )
    bad = write_safetensors(tmp_path / "loras" / "bad.safetensors", {"b.lora_down.weight": (2, 2)})
    manifest = Manifest(tmp_path / "manifest.toml")
    manifest.put(
        ManifestEntry(
            name="good", kind="lora", file="loras/good.safetensors", sha256=sha256_file(good)
        )
    )
    manifest.put(
        ManifestEntry(name="bad", kind="lora", file="loras/bad.safetensors", sha256="1" * 64)
    )
    manifest.put(
        ManifestEntry(name="gone", kind="lora", file="loras/gone.safetensors", sha256="2" * 64)
    )
    manifest.put(ManifestEntry(name="new", kind="lora", file="loras/bad.safetensors"))
    statuses = {r.entry.name: r.status for r in verify_entries(manifest, tmp_path)}
    assert statuses == {"good": "OK", "bad": "MISMATCH", "gone": "MISSING", "new": "UNCHECKED"}
    assert sha256_file(bad) == hashlib.sha256(bad.read_bytes()).hexdigest()
    with pytest.raises(ModelError, match=r"not in .*nope"):
        verify_entries(manifest, tmp_path, names=["nope"])


@pytest.mark.parametrize(
    ("layout", "folders"),
    [
        ("apex", {"checkpoint": "checkpoints", "lora": "loras"}),
        ("comfyui", {"checkpoint": "checkpoints", "lora": "loras", "marker": "upscale_models"}),
        ("a1111", {"checkpoint": "Stable-diffusion", "lora": "Lora", "marker": "ESRGAN"}),
    ],
)
def test_scan_finds_models_in_our_comfyui_and_a1111_layouts(
    tmp_path: Path, layout: str, folders: dict[str, str]
) -> None:
    if "marker" in folders:
        (tmp_path / folders["marker"]).mkdir()
    write_safetensors(tmp_path / folders["checkpoint"] / "sub" / "xl.safetensors", SDXL_NAMES)
    write_safetensors(
        tmp_path / folders["lora"] / "l.safetensors",
        {"lora_unet_x_attn2_to_k.lora_down.weight": (4, 768)},
    )
    cut = write_safetensors(tmp_path / folders["checkpoint"] / "cut.safetensors", SD15_NAMES)
    cut.write_bytes(cut.read_bytes()[:-8])
    (tmp_path / folders["checkpoint"] / "notes.txt").write_text("ignored")
    assert detect_layout(tmp_path) == layout
    found = {f.path.name: f for f in scan_models(tmp_path)}
    assert set(found) == {"xl.safetensors", "l.safetensors", "cut.safetensors"}
    assert found["xl.safetensors"].info is not None
    assert found["xl.safetensors"].info.family == "sdxl"
    assert found["l.safetensors"].info is not None
    assert found["l.safetensors"].info.family == "sd15"
    assert found["cut.safetensors"].info is None
    assert "truncated" in found["cut.safetensors"].problem


def test_import_copies_into_the_kind_folder_and_records_it(tmp_path: Path) -> None:
    src = write_safetensors(tmp_path / "in" / "myxl.safetensors", SDXL_NAMES)
    models = tmp_path / "models"
    models.mkdir()
    entry, info = import_model(src, models, licence="CreativeML OpenRAIL++-M")
    assert info.family == "sdxl"
    assert (models / "checkpoints" / "myxl.safetensors").read_bytes() == src.read_bytes()
    assert entry.file == "checkpoints/myxl.safetensors"
    assert entry.sha256 == sha256_file(src) and entry.min_vram_gb == 8.0
    recorded = Manifest(models / "manifest.toml").get("myxl")
    assert recorded is not None and recorded.licence == "CreativeML OpenRAIL++-M"
    # importing the same file again is a no-op; a different file of the same name is refused
    assert import_model(src, models)[0].name == "myxl"
    other = write_safetensors(tmp_path / "other" / "myxl.safetensors", SD15_NAMES)
    with pytest.raises(ModelError, match="already exists and differs"):
        import_model(other, models)
    # link mode, into a ComfyUI folder
    comfy = tmp_path / "comfy"
    (comfy / "upscale_models").mkdir(parents=True)
    lora = write_safetensors(
        tmp_path / "in" / "l.safetensors", {"lora_unet_a_attn2_to_k.lora_down.weight": (4, 2048)}
    )
    entry, info = import_model(lora, comfy, link=True)
    assert (comfy / "loras" / "l.safetensors").is_symlink()
    assert (entry.kind, entry.family) == ("lora", "sdxl")
    # nothing is copied when identification fails
    bad = write_safetensors(tmp_path / "in" / "bad.safetensors", {"x": (2,)})
    with pytest.raises(ModelError, match="unknown model layout"):
        import_model(bad, models)
    assert not (models / "checkpoints" / "bad.safetensors").exists()


def test_import_a_diffusers_folder(tmp_path: Path) -> None:
    src = tmp_path / "in" / "my-sd15"
    shipped = pipeline_config_dir("sd15")
    for part in ("unet", "vae", "text_encoder", "scheduler", "tokenizer"):
        (src / part).mkdir(parents=True)
        for f in (shipped / part).iterdir():
            (src / part / f.name).write_bytes(f.read_bytes())
    (src / "model_index.json").write_bytes((shipped / "model_index.json").read_bytes())
    models = tmp_path / "models"
    models.mkdir()
    entry, info = import_model(src, models)
    assert (info.format, info.family) == ("diffusers", "sd15")
    assert (models / "checkpoints" / "my-sd15" / "unet" / "config.json").is_file()
    assert (entry.name, entry.file, entry.sha256) == ("my-sd15", "checkpoints/my-sd15", "")
    assert [r.status for r in verify_entries(Manifest(models / "manifest.toml"), models)] == [
        "UNCHECKED"
    ]


# --- pull against a local Hub-like server ------------------------------------------------


class _HubHandler(http.server.BaseHTTPRequestHandler):
    """The endpoints ``hf_hub_download`` uses: HEAD and GET /{repo}/resolve/{rev}/{file}."""

    files: ClassVar[dict[tuple[str, str], bytes]] = {}
    gated: ClassVar[set[str]] = set()
    get_actions: ClassVar[list[str]] = []  # consumed one per GET: "drop", "503"
    log: ClassVar[list[tuple[str, str, str]]] = []
    commit = "a" * 40

    def log_message(self, *args: object) -> None:  # keep test output quiet
        pass

    def _route(self) -> tuple[str, str, bytes] | None:
        match = re.match(r"^/(.+?/.+?)/resolve/([^/]+)/(.+)$", self.path.split("?")[0])
        if match is None:
            self.send_error(404)
            return None
        repo, _rev, name = match.groups()
        if repo in self.gated:
            self.send_response(401)
            self.send_header("X-Error-Code", "GatedRepo")
            self.send_header("X-Error-Message", "Access to model is restricted.")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return None
        data = self.files.get((repo, name))
        if data is None:
            self.send_response(404)
            self.send_header("X-Error-Code", "EntryNotFound")
            self.send_header("X-Repo-Commit", self.commit)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return None
        return repo, name, data

    def _headers(self, data: bytes, status: int = 200, start: int = 0) -> None:
        sha = hashlib.sha256(data).hexdigest()
        self.send_response(status)
        self.send_header("X-Repo-Commit", self.commit)
        self.send_header("ETag", f'"{sha}"')
        self.send_header("X-Linked-Etag", f'"{sha}"')
        self.send_header("X-Linked-Size", str(len(data)))
        self.send_header("Accept-Ranges", "bytes")
        self.send_header("Content-Length", str(len(data) - start))
        if status == 206:
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        self.end_headers()

    def do_HEAD(self) -> None:
        routed = self._route()
        self.log.append(("HEAD", self.path, ""))
        if routed is not None:
            self._headers(routed[2])

    def do_GET(self) -> None:
        routed = self._route()
        rng = self.headers.get("Range", "")
        self.log.append(("GET", self.path, rng))
        if routed is None:
            return
        _repo, _name, data = routed
        start = int(re.match(r"bytes=(\d+)-", rng).group(1)) if rng else 0  # type: ignore[union-attr]
        action = self.get_actions.pop(0) if self.get_actions else ""
        if action == "503":
            self.send_response(503)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        self._headers(data, 206 if start else 200, start)
        if action == "drop":
            half = (len(data) - start) // 2
            self.wfile.write(data[start : start + half])
            self.wfile.flush()
            self.close_connection = True
            self.connection.shutdown(2)  # drop the connection midway
            return
        self.wfile.write(data[start:])


@pytest.fixture()
def hub(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[str, type[_HubHandler]]]:
    pytest.importorskip("huggingface_hub")
    handler = type(
        "Hub", (_HubHandler,), {"files": {}, "gated": set(), "get_actions": [], "log": []}
    )
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    monkeypatch.setenv("HF_HUB_DISABLE_TELEMETRY", "1")
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setenv("HF_TOKEN", "")  # never the developer's token
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", handler
    finally:
        server.shutdown()
        server.server_close()


def test_pull_downloads_verifies_places_and_records(
    tmp_path: Path, hub: tuple[str, type[_HubHandler]]
) -> None:
    from engine.generation.model_manager.pull import pull_model

    endpoint, handler = hub
    src = write_safetensors(tmp_path / "src.safetensors", SDXL_NAMES)
    handler.files[("acme/xl", "xl-base.safetensors")] = src.read_bytes()
    models = tmp_path / "models"
    result = pull_model("acme/xl:xl-base.safetensors", models, endpoint=endpoint, licence="MIT")
    assert result.path == models / "checkpoints" / "xl-base.safetensors"
    assert result.path.read_bytes() == src.read_bytes()
    assert result.sha256_source == "hub"
    entry = Manifest(models / "manifest.toml").get("xl-base")
    assert entry is not None
    assert (entry.repo_id, entry.repo_file, entry.sha256, entry.family) == (
        "acme/xl",
        "xl-base.safetensors",
        sha256_file(src),
        "sdxl",
    )
    assert verify_entries(Manifest(models / "manifest.toml"), models)[0].status == "OK"


def test_pull_resumes_after_the_connection_drops_midway(
    tmp_path: Path, hub: tuple[str, type[_HubHandler]], monkeypatch: pytest.MonkeyPatch
) -> None:
    from huggingface_hub import constants

    from engine.generation.model_manager.pull import pull_model

    # huggingface_hub writes in 10 MB chunks; with smaller ones a test file of 150 kB is
    # partly on disk when the connection drops, as a multi-GB checkpoint would be.
    monkeypatch.setattr(constants, "DOWNLOAD_CHUNK_SIZE", 8192)
    endpoint, handler = hub
    src = write_safetensors(tmp_path / "src.safetensors", {**SD15_NAMES, "pad": (64, 1024)})
    data = src.read_bytes()
    handler.files[("acme/sd", "big.safetensors")] = data
    handler.get_actions.append("drop")
    result = pull_model("acme/sd:big.safetensors", tmp_path / "models", endpoint=endpoint)
    assert result.path.read_bytes() == data
    gets = [(p, r) for m, p, r in handler.log if m == "GET"]
    assert len(gets) == 2
    assert gets[0][1] == "" and re.fullmatch(r"bytes=\d+-", gets[1][1])
    resumed_from = int(gets[1][1][6:-1])
    assert 0 < resumed_from < len(data)  # the second request did not start over


def test_pull_resumes_on_the_next_run_from_the_incomplete_file(
    tmp_path: Path, hub: tuple[str, type[_HubHandler]], monkeypatch: pytest.MonkeyPatch
) -> None:
    from huggingface_hub import constants

    from engine.generation.model_manager.pull import pull_model

    monkeypatch.setattr(constants, "DOWNLOAD_CHUNK_SIZE", 8192)
    endpoint, handler = hub
    src = write_safetensors(tmp_path / "src.safetensors", {**SD15_NAMES, "pad": (64, 1024)})
    data = src.read_bytes()
    handler.files[("acme/sd", "big.safetensors")] = data
    # first run: the connection drops midway, then the server fails the retry
    handler.get_actions.extend(["drop", "503"])
    models = tmp_path / "models"
    with pytest.raises(ModelError, match="try again later"):
        pull_model("acme/sd:big.safetensors", models, endpoint=endpoint)
    assert not (models / "checkpoints" / "big.safetensors").exists()
    # second run: picks up where the first stopped
    result = pull_model("acme/sd:big.safetensors", models, endpoint=endpoint)
    assert result.path.read_bytes() == data
    ranges = [r for m, _p, r in handler.log if m == "GET"]
    assert len(ranges) == 3 and ranges[0] == ""
    assert ranges[1] == ranges[2] and 0 < int(ranges[2][6:-1]) < len(data)


def test_pull_checksum_mismatch_against_manifest_deletes_the_file(
    tmp_path: Path, hub: tuple[str, type[_HubHandler]]
) -> None:
    from engine.generation.model_manager.pull import pull_model

    endpoint, handler = hub
    src = write_safetensors(tmp_path / "src.safetensors", SD15_NAMES)
    handler.files[("acme/sd", "sd.safetensors")] = src.read_bytes()
    catalogue = Manifest(tmp_path / "catalogue.toml")
    catalogue.put(
        ManifestEntry(
            name="acme-sd",
            kind="checkpoint",
            file="checkpoints/sd.safetensors",
            sha256="f" * 64,
            family="sd15",
            repo_id="acme/sd",
            repo_file="sd.safetensors",
        )
    )
    catalogue.save()
    models = tmp_path / "models"
    with pytest.raises(ModelError, match="does not match the manifest's") as err:
        pull_model("acme-sd", models, endpoint=endpoint, catalogue=catalogue.path)
    assert err.value.error_code == "checksum"
    assert not list((models).rglob("sd.safetensors"))
    # with the right hash the catalogue entry is installed under its own name
    catalogue.update("acme-sd", sha256=sha256_file(src))
    catalogue.save()
    result = pull_model("acme-sd", models, endpoint=endpoint, catalogue=catalogue.path)
    assert result.sha256_source == "manifest" and result.entry.name == "acme-sd"
    assert result.entry.file == "checkpoints/sd.safetensors"


def test_pull_gated_missing_and_offline_are_clear(
    tmp_path: Path, hub: tuple[str, type[_HubHandler]]
) -> None:
    from engine.generation.model_manager.pull import pull_model

    endpoint, handler = hub
    handler.gated.add("corp/gated")
    models = tmp_path / "models"
    with pytest.raises(ModelError, match=r"gated: accept its licence .*HF_TOKEN") as err:
        pull_model("corp/gated:model.safetensors", models, endpoint=endpoint)
    assert err.value.error_code == "gated"
    with pytest.raises(ModelError, match="not in acme/none"):
        handler.files[("acme/none", "x.safetensors")] = b""
        del handler.files[("acme/none", "x.safetensors")]
        pull_model("acme/none:y.safetensors", models, endpoint=endpoint)
    with pytest.raises(ModelError, match="cannot reach the Hugging Face Hub") as err:
        pull_model("acme/x:y.safetensors", models, endpoint="http://127.0.0.1:9")
    assert err.value.error_code == "offline"
    with pytest.raises(ModelError, match="name the file"):
        pull_model("acme/x", models, endpoint=endpoint)
    with pytest.raises(ModelError, match="neither a known model name"):
        pull_model("no such thing", models, endpoint=endpoint)


# --- the shipped SD 1.5 config against a full-size single file (slow: writes 2.1 GB) ------


def _write_constant_safetensors(
    path: Path, tensors: dict[str, tuple[tuple[int, ...], float]]
) -> None:
    """Stream a safetensors file whose every tensor is one fp16 constant (low memory)."""
    header: dict[str, object] = {}
    offset = 0
    for name, (shape, _value) in tensors.items():
        size = int(np.prod(shape)) * 2
        header[name] = {
            "dtype": "F16",
            "shape": list(shape),
            "data_offsets": [offset, offset + size],
        }
        offset += size
    raw = json.dumps(header).encode()
    raw += b" " * (-len(raw) % 8)
    with path.open("wb") as handle:
        handle.write(struct.pack("<Q", len(raw)) + raw)
        for shape, value in tensors.values():
            handle.write(np.full(int(np.prod(shape)), value, dtype=np.float16).tobytes())


@pytest.fixture()
def request_cleanup() -> Iterator[Callable[[Path], None]]:
    """Delete the given (multi-GB) files when the test ends, passed or failed."""
    paths: list[Path] = []
    yield paths.append
    for path in paths:
        path.unlink(missing_ok=True)


@pytest.mark.slow
def test_shipped_sd15_config_loads_a_full_size_original_single_file(
    tmp_path: Path, request_cleanup: Callable[[Path], None]
) -> None:
    """Every tensor of an original-layout SD 1.5 file lands where the shipped config puts it."""
    import types

    torch = pytest.importorskip("torch")
    diffusers = pytest.importorskip("diffusers")
    transformers = pytest.importorskip("transformers")
    from tests.generation_fixtures import diffusers_to_ldm_state_dict

    folder = pipeline_config_dir("sd15")
    with torch.device("meta"):
        parts = {
            "unet": diffusers.UNet2DConditionModel.from_config(
                diffusers.UNet2DConditionModel.load_config(folder / "unet")
            ),
            "vae": diffusers.AutoencoderKL.from_config(
                diffusers.AutoencoderKL.load_config(folder / "vae")
            ),
            "text_encoder": transformers.CLIPTextModel(
                transformers.CLIPTextConfig.from_pretrained(folder / "text_encoder")
            ),
        }
    ldm = diffusers_to_ldm_state_dict(types.SimpleNamespace(**parts))
    keys = [(part, key) for part, module in parts.items() for key in module.state_dict()]
    assert len(keys) == len(ldm)  # the converter keeps the order: part by part, key by key
    values = [((i % 1000) + 1) / 1024 for i in range(len(keys))]  # exact in fp16
    path = tmp_path / "sd15-full.safetensors"
    request_cleanup(path)
    _write_constant_safetensors(
        path, {n: (tuple(t.shape), v) for (n, t), v in zip(ldm.items(), values, strict=True)}
    )
    assert identify_checkpoint(path).family == "sd15"
    pipe = diffusers.StableDiffusionPipeline.from_single_file(
        str(path), config=str(folder), local_files_only=True, torch_dtype=torch.float16
    )
    wrong = []
    for (part, key), value in zip(keys, values, strict=True):
        tensor = getattr(pipe, part).state_dict()[key]
        if float(tensor.min()) != value or float(tensor.max()) != value:
            wrong.append(f"{part}.{key}")
    assert wrong == []
    assert _count(pipe.unet) == 859_520_964


def _sdxl_text_encoder_2_to_ldm(key: str) -> tuple[str, bool]:
    """OpenCLIP ViT-bigG name of a transformers key; True for a q/k/v part of ``in_proj``."""
    prefix = "conditioner.embedders.1.model."
    short = key.removeprefix("text_model.")
    top = {
        "embeddings.position_embedding.weight": "positional_embedding",
        "embeddings.token_embedding.weight": "token_embedding.weight",
        "final_layer_norm.weight": "ln_final.weight",
        "final_layer_norm.bias": "ln_final.bias",
        "text_projection.weight": "text_projection",
    }
    if short in top:
        return prefix + top[short], False
    match = re.fullmatch(r"encoder\.layers\.(\d+)\.(.+)", short)
    assert match is not None, key
    layer, rest = match.groups()
    qkv = re.fullmatch(r"self_attn\.[qkv]_proj\.(weight|bias)", rest)
    if qkv:
        return f"{prefix}transformer.resblocks.{layer}.attn.in_proj_{qkv.group(1)}", True
    for new, old in (
        ("self_attn.out_proj", "attn.out_proj"),
        ("layer_norm1", "ln_1"),
        ("layer_norm2", "ln_2"),
        ("mlp.fc1", "mlp.c_fc"),
        ("mlp.fc2", "mlp.c_proj"),
    ):
        rest = rest.replace(new, old)
    return f"{prefix}transformer.resblocks.{layer}.{rest}", False


@pytest.mark.slow
def test_shipped_sdxl_config_loads_a_full_size_original_single_file(
    tmp_path: Path, request_cleanup: Callable[[Path], None]
) -> None:
    """The same for SDXL (writes 6.9 GB): UNet, VAE, CLIP-L and OpenCLIP bigG in SGM names."""
    torch = pytest.importorskip("torch")
    diffusers = pytest.importorskip("diffusers")
    transformers = pytest.importorskip("transformers")
    from diffusers.loaders.single_file_utils import DIFFUSERS_TO_LDM_MAPPING

    from tests.generation_fixtures import _unet_key_to_ldm, _vae_key_to_ldm

    folder = pipeline_config_dir("sdxl")
    with torch.device("meta"):
        unet = diffusers.UNet2DConditionModel.from_config(
            diffusers.UNet2DConditionModel.load_config(folder / "unet")
        )
        vae = diffusers.AutoencoderKL.from_config(
            diffusers.AutoencoderKL.load_config(folder / "vae")
        )
        te1 = transformers.CLIPTextModel(
            transformers.CLIPTextConfig.from_pretrained(folder / "text_encoder")
        )
        te2 = transformers.CLIPTextModelWithProjection(
            transformers.CLIPTextConfig.from_pretrained(folder / "text_encoder_2")
        )
    tensors: dict[str, tuple[tuple[int, ...], float]] = {}
    expected: dict[tuple[str, str], float] = {}

    def put(part: str, key: str, name: str, shape: tuple[int, ...]) -> None:
        if name not in tensors:
            tensors[name] = (shape, ((len(tensors) % 1000) + 1) / 1024)
        expected[(part, key)] = tensors[name][1]

    add = DIFFUSERS_TO_LDM_MAPPING["unet"]["addition_embed_type"]
    up_attn = ["CrossAttn" in t for t in unet.config.up_block_types]
    for key, t in unet.state_dict().items():
        name = add.get(key) or _unet_key_to_ldm(key, up_attn, unet.config.layers_per_block)
        put("unet", key, "model.diffusion_model." + name, tuple(t.shape))
    for key, t in vae.state_dict().items():
        name, is_attention = _vae_key_to_ldm(key, len(vae.config.up_block_types))
        shape = tuple(t.shape) + ((1, 1) if is_attention and t.ndim == 2 else ())
        put("vae", key, "first_stage_model." + name, shape)
    for key, t in te1.state_dict().items():
        name = key if key.startswith("text_model.") else "text_model." + key
        put("text_encoder", key, "conditioner.embedders.0.transformer." + name, tuple(t.shape))
    for key, t in te2.state_dict().items():
        name, is_qkv = _sdxl_text_encoder_2_to_ldm(key)
        shape = (3 * t.shape[0], *t.shape[1:]) if is_qkv else tuple(t.shape)
        put("text_encoder_2", key, name, shape)
    path = tmp_path / "sdxl-full.safetensors"
    request_cleanup(path)
    _write_constant_safetensors(path, tensors)
    assert identify_checkpoint(path).family == "sdxl"
    pipe = diffusers.StableDiffusionXLPipeline.from_single_file(
        str(path), config=str(folder), local_files_only=True, torch_dtype=torch.float16
    )
    states = {
        part: getattr(pipe, part).state_dict()
        for part in ("unet", "vae", "text_encoder", "text_encoder_2")
    }
    wrong = [
        f"{part}.{key}"
        for (part, key), value in expected.items()
        if float(states[part][key].min()) != value or float(states[part][key].max()) != value
    ]
    assert wrong == []
    assert _count(pipe.unet) == 2_567_463_684
