"""Stable Diffusion speed: stock diffusers fp16 vs APEX Director's fast path, offline.

Builds the REAL SD 1.5 and SDXL architectures from the configurations shipped in
``resources/sd/`` with random weights (no download, no internet: speed does not depend on
the weights' values), then times:

* **stock** — the pipeline in fp16 on the device as diffusers sets it up, one prompt per
  call (N calls for N images);
* **ours** — :func:`engine.generation.diffusers_backend.apply_speed_optimisations`
  (channels_last, fused QKV projections, ``torch.compile`` of the UNet; attention is
  PyTorch SDPA in both) and the N prompts batched in one call.

It prints it/s (denoising steps per second of one call) and s/image for each, and the
ratio stock/ours of s/image (> 1: ours is faster).  With ``--upscale`` it adds Real-ESRGAN
x4plus 512→2048 from ``benchmarks/upscale_speed.py: measure_upscale`` when that exists.

Usage::

    python benchmarks/gpu_generation.py  # CUDA: 512² SD 1.5, 1024² SDXL, 25 steps
    python benchmarks/gpu_generation.py --device cpu --tiny  # proof that it runs

``--tiny`` shrinks every model to a few channels (like the tests' tiny pipeline) and the
images to 64 px: figures from it say nothing about real speed.
"""

from __future__ import annotations

import argparse
import json
import logging
import platform
import statistics
import sys
import time
import warnings
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

log = logging.getLogger("gpu_generation")

_TINY_UNET = {
    "block_out_channels": [32, 64],
    "layers_per_block": 1,
    "attention_head_dim": 4,
    "norm_num_groups": 8,
}
_TINY_TEXT = {
    "hidden_size": 32,
    "intermediate_size": 64,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
}
_TINY_VAE = {
    "block_out_channels": [32, 64],
    "down_block_types": ["DownEncoderBlock2D", "DownEncoderBlock2D"],
    "up_block_types": ["UpDecoderBlock2D", "UpDecoderBlock2D"],
    "norm_num_groups": 8,
    "layers_per_block": 1,
}


def _tiny_unet_config(config: dict[str, Any], family: str) -> dict[str, Any]:
    out = dict(config)
    out.update(_TINY_UNET)
    if family == "sdxl":
        out["down_block_types"] = ["DownBlock2D", "CrossAttnDownBlock2D"]
        out["up_block_types"] = ["CrossAttnUpBlock2D", "UpBlock2D"]
        out["transformer_layers_per_block"] = 1
        out["cross_attention_dim"] = 64  # two text encoders of width 32
        out["addition_time_embed_dim"] = 8
        out["projection_class_embeddings_input_dim"] = 8 * 6 + 32
    else:
        out["down_block_types"] = ["CrossAttnDownBlock2D", "DownBlock2D"]
        out["up_block_types"] = ["UpBlock2D", "CrossAttnUpBlock2D"]
        out["cross_attention_dim"] = 32
    return out


def build_random_pipeline(family: str, *, device: str, dtype: Any, tiny: bool) -> Any:
    """The family's real architecture (or a tiny one) with random weights, on ``device``."""
    import diffusers
    import torch
    import transformers

    from engine.generation.model_manager.configs import pipeline_config_dir

    folder = pipeline_config_dir(family)
    index = json.loads((folder / "model_index.json").read_text(encoding="utf-8"))
    components: dict[str, Any] = {}
    # Build on the device directly: initialising 2.6 B parameters on the CPU takes minutes.
    with torch.device(device):
        unet_config = diffusers.UNet2DConditionModel.load_config(folder / "unet")
        if tiny:
            unet_config = _tiny_unet_config(unet_config, family)
        components["unet"] = diffusers.UNet2DConditionModel.from_config(unet_config)
        vae_config = diffusers.AutoencoderKL.load_config(folder / "vae")
        if tiny:
            vae_config = {**vae_config, **_TINY_VAE}
        components["vae"] = diffusers.AutoencoderKL.from_config(vae_config)
        for name in ("text_encoder", "text_encoder_2"):
            if name not in index:
                continue
            cls = getattr(transformers, index[name][1])
            config = transformers.CLIPTextConfig.from_pretrained(folder / name)
            if tiny:
                for key, value in _TINY_TEXT.items():
                    setattr(config, key, value)
                if hasattr(config, "projection_dim"):
                    config.projection_dim = 32
            components[name] = cls(config)
    for name in ("tokenizer", "tokenizer_2"):
        if name in index:
            components[name] = transformers.CLIPTokenizer.from_pretrained(folder / name)
    scheduler_cls = getattr(diffusers, index["scheduler"][1])
    components["scheduler"] = scheduler_cls.from_pretrained(folder / "scheduler")
    pipeline_cls = getattr(diffusers, index["_class_name"])
    if family == "sd15":
        components.update(
            safety_checker=None, feature_extractor=None, requires_safety_checker=False
        )
    pipe = pipeline_cls(**components)
    pipe.to(device, dtype)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def _sync(device: str) -> None:
    import torch

    if device.startswith("cuda"):
        torch.cuda.synchronize()


def _timed_call(pipe: Any, prompts: list[str], *, size: int, steps: int, device: str) -> float:
    import torch

    gen_device = device if device.startswith("cuda") else "cpu"
    generators = [torch.Generator(gen_device).manual_seed(i) for i in range(len(prompts))]
    _sync(device)
    started = time.perf_counter()
    with torch.inference_mode():
        pipe(
            prompt=prompts,
            width=size,
            height=size,
            num_inference_steps=steps,
            guidance_scale=7.0,
            generator=generators,
            output_type="np",
        )
    _sync(device)
    return time.perf_counter() - started


def measure(
    family: str,
    *,
    device: str,
    dtype: Any,
    tiny: bool,
    size: int,
    steps: int,
    images: int,
    repeats: int,
    compile_unet: bool,
) -> dict[str, Any]:
    """Time stock vs ours for one family; returns the figures."""
    import torch

    from engine.generation.diffusers_backend import apply_speed_optimisations

    prompts = [f"a cinematic still of a lighthouse at dusk, shot {i}" for i in range(images)]
    started = time.perf_counter()
    pipe = build_random_pipeline(family, device=device, dtype=dtype, tiny=tiny)
    build_s = time.perf_counter() - started
    params = sum(p.numel() for p in pipe.unet.parameters())
    # stock: one prompt per call
    _timed_call(pipe, prompts[:1], size=size, steps=2, device=device)  # warm-up
    stock_calls = []
    for _ in range(repeats):
        stock_calls.append(
            sum(_timed_call(pipe, [p], size=size, steps=steps, device=device) for p in prompts)
        )
    stock_total = statistics.median(stock_calls)
    # ours: optimised pipeline, prompts batched in one call
    applied = apply_speed_optimisations(pipe, compile_unet=compile_unet)
    started = time.perf_counter()
    _timed_call(pipe, prompts, size=size, steps=steps, device=device)  # warm-up / compile
    warmup_s = time.perf_counter() - started
    ours_total = statistics.median(
        _timed_call(pipe, prompts, size=size, steps=steps, device=device) for _ in range(repeats)
    )
    del pipe
    if device.startswith("cuda"):
        torch.cuda.empty_cache()
    stock_per_image = stock_total / images
    ours_per_image = ours_total / images
    return {
        "family": family,
        "unet_parameters": params,
        "size": size,
        "steps": steps,
        "images": images,
        "build_seconds": round(build_s, 2),
        "stock": {
            "it_per_s": round(steps / stock_per_image, 3),
            "s_per_image": round(stock_per_image, 4),
        },
        "ours": {
            "optimisations": [*applied, f"batch of {images} prompts"],
            "it_per_s": round(steps / ours_total, 3),  # steps of the batched call per second
            "s_per_image": round(ours_per_image, 4),
            "first_call_seconds": round(warmup_s, 2),
        },
        "ratio_stock_over_ours": round(stock_per_image / ours_per_image, 3),
    }


def measure_upscaler(device: str, tiny: bool) -> dict[str, Any] | str:
    """Real-ESRGAN x4plus 512→2048 via the upscale helper's benchmark, when it exists."""
    try:
        from benchmarks.upscale_speed import measure_upscale  # type: ignore[import-not-found]
    except ImportError as err:
        return f"skipped: benchmarks/upscale_speed.py not available ({err})"
    try:
        return measure_upscale(device=device, size=64 if tiny else 512)
    except TypeError:
        return measure_upscale(device)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cuda", help="cuda (default), cuda:N, mps or cpu")
    parser.add_argument("--tiny", action="store_true", help="tiny models and 64 px (CPU proof)")
    parser.add_argument("--families", default="sd15,sdxl", help="comma list: sd15,sdxl")
    parser.add_argument("--steps", type=int, default=None, help="default 25 (2 with --tiny)")
    parser.add_argument("--images", type=int, default=4, help="images per measurement")
    parser.add_argument("--repeats", type=int, default=3, help="timed repeats (median)")
    parser.add_argument(
        "--compile",
        choices=("auto", "on", "off"),
        default="auto",
        help="torch.compile the UNet in 'ours' (auto: on CUDA only)",
    )
    parser.add_argument("--upscale", action="store_true", help="also time Real-ESRGAN x4plus")
    parser.add_argument("--json", type=Path, default=None, help="write the figures as JSON")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    warnings.filterwarnings("ignore")

    import diffusers
    import torch

    diffusers.utils.logging.set_verbosity_error()
    device = args.device
    if args.tiny and device == "cpu":
        # Tiny models are all per-operator overhead: one thread avoids thread contention.
        torch.set_num_threads(1)
    dtype = torch.float32 if device == "cpu" else torch.float16
    compile_unet = args.compile == "on" or (args.compile == "auto" and device.startswith("cuda"))
    steps = args.steps or (2 if args.tiny else 25)
    results: dict[str, Any] = {
        "device": device,
        "device_name": torch.cuda.get_device_name(device)
        if device.startswith("cuda")
        else platform.processor() or platform.machine(),
        "dtype": str(dtype).replace("torch.", ""),
        "torch": torch.__version__,
        "tiny": args.tiny,
        "runs": [],
    }
    print(
        f"device {results['device_name']} ({device}, {results['dtype']}), torch "
        f"{torch.__version__}{', TINY models (not a speed figure)' if args.tiny else ''}"
    )
    for family in [f.strip() for f in args.families.split(",") if f.strip()]:
        size = 64 if args.tiny else (1024 if family == "sdxl" else 512)
        run = measure(
            family,
            device=device,
            dtype=dtype,
            tiny=args.tiny,
            size=size,
            steps=steps,
            images=args.images,
            repeats=args.repeats,
            compile_unet=compile_unet,
        )
        results["runs"].append(run)
        print(
            f"{family} {size}x{size} {steps} steps, {run['unet_parameters'] / 1e6:.1f} M UNet "
            f"params: stock {run['stock']['it_per_s']} it/s {run['stock']['s_per_image']} s/image"
            f" | ours {run['ours']['it_per_s']} it/s (batch) {run['ours']['s_per_image']} "
            f"s/image [{', '.join(run['ours']['optimisations'])}; first call "
            f"{run['ours']['first_call_seconds']} s] | stock/ours {run['ratio_stock_over_ours']}"
        )
    if args.upscale:
        results["upscale"] = measure_upscaler(device, args.tiny)
        print(f"upscale: {results['upscale']}")
    if args.json is not None:
        args.json.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
