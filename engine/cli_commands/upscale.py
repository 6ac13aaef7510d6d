"""``apex-director upscale IMAGE -o OUT``: super-resolve a still with Real-ESRGAN.

The weights folder is ``--models-dir``, else ``paths.models_dir`` of the configuration
(default ``models``).  The default model, Real-ESRGAN x4plus, is converted there from the
installed ncnn weights on first use (see docs/upscaling.md).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

__all__ = ["register", "run"]


def register(subparsers: Any) -> None:
    """Add the ``upscale`` command."""
    parser = subparsers.add_parser(
        "upscale",
        help="upscale an image with Real-ESRGAN (web, high_quality or broadcast)",
        description="Upscale IMAGE with Real-ESRGAN x4plus (or --model) and write OUT. "
        "Presets: web = x2, at most 1920 px long side; high_quality = the model's full "
        "scale (x4); broadcast = exactly --size (default 1920x1080), centre-cropped to its "
        "aspect ratio.  Without torch/spandrel/weights a labelled classical resampler is used.",
    )
    parser.add_argument("image", type=Path, help="the image (PNG, JPEG, WebP, BMP, TIFF)")
    parser.add_argument(
        "-o", "--output", type=Path, required=True, help="output image (.png, .jpg, .webp, .tif)"
    )
    parser.add_argument(
        "--preset",
        choices=("web", "high_quality", "broadcast"),
        default="high_quality",
        help="web: x2 capped at 1920 px; high_quality: full x4 (default); "
        "broadcast: exact delivery size",
    )
    parser.add_argument(
        "--model",
        default=None,
        metavar="NAME|PATH",
        help="RealESRGAN_x4plus (default), RealESRGAN_x4plus_anime_6B, realesr-animevideov3, "
        "a file name in models/upscalers/, or a path to any spandrel-supported upscaler",
    )
    parser.add_argument(
        "--size",
        default="1920x1080",
        metavar="WxH",
        help="delivery size of the broadcast preset (default 1920x1080)",
    )
    parser.add_argument(
        "--device", default="auto", help="auto (CUDA, MPS, CPU), cuda, cuda:N, mps or cpu"
    )
    parser.add_argument(
        "--tile", type=int, default=None, help="tile side in pixels (default from free memory)"
    )
    parser.add_argument(
        "--models-dir",
        type=Path,
        default=None,
        metavar="DIR",
        help="the models folder (default: paths.models_dir of the configuration)",
    )
    parser.set_defaults(handler=run)


def _parse_size(text: str) -> tuple[int, int]:
    from engine.errors import ParameterError

    width, sep, height = text.lower().partition("x")
    if not sep or not width.isdigit() or not height.isdigit():
        raise ParameterError("--size", text, "WIDTHxHEIGHT, e.g. 1920x1080")
    return int(width), int(height)


def _models_dir(args: argparse.Namespace) -> Path:
    if args.models_dir is not None:
        return Path(args.models_dir).expanduser()
    from engine.cli import _load_config

    config = _load_config(args.config)
    return Path(str(config["paths"]["models_dir"])).expanduser()  # type: ignore[index]


def run(args: argparse.Namespace) -> int:
    """Upscale ``args.image`` into ``args.output``; print one summary line."""
    from engine.errors import ParameterError
    from engine.generation.upscale import upscale_file
    from engine.output_paths import check_output_path

    if args.tile is not None and args.tile < 0:
        raise ParameterError("--tile", args.tile, "0 (no tiling) or a positive tile side")
    check_output_path(
        args.output, what="image", extensions=(".png", ".jpg", ".jpeg", ".webp", ".tif", ".tiff")
    )
    info = upscale_file(
        args.image,
        args.output,
        args.preset,
        model=args.model,
        models_dir=_models_dir(args),
        device=args.device,
        tile=args.tile,
        delivery_size=_parse_size(args.size),
    )
    width, height = info["output_size"]
    if info["backend"] == "spandrel":
        how = f"{info['model']} x{info['model_scale']} on {info['device']}, {info['tiles']} tile(s)"
    elif info["backend"] == "classical":
        how = "classical resampling, NOT Real-ESRGAN (install the sd extra for the real model)"
    else:
        how = f"resize only ({info['note']})"
    print(
        f"wrote {info['output_path']}: {width}x{height} ({args.preset}; {how}) "
        f"in {info['time']:.1f} s"
    )
    return 0
