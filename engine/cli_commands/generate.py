"""``apex-director generate PROMPT -o OUT.png``: make still images from a prompt.

With ``--backend diffusers --model PATH`` the image comes from a local Stable Diffusion
checkpoint (a ``.safetensors`` file or a diffusers folder); without ``--backend`` the
configuration's ``render.backend_order`` is tried in order (a backend that fails is
logged and the next one used).  ``procedural`` is a DRAFT painter, and says so.

``--variants N`` writes N images with seeds ``SEED``, ``SEED+1``, ...: ``OUT.png`` for one,
``OUT-1.png`` .. ``OUT-N.png`` for several, each scored with the generator's variant score
(:func:`engine.generation.generator.score_image`: sharpness and exposure) and the best
named.  ``--init-image IMG --strength S`` repaints
an existing picture (img2img; diffusers only).
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["register", "run", "variant_paths"]

log = logging.getLogger(__name__)


def register(subparsers: Any) -> None:
    """Add the ``generate`` command."""
    parser = subparsers.add_parser(
        "generate",
        help="generate still images from a text prompt (Stable Diffusion or procedural)",
        description="Generate one or more stills from PROMPT. See docs/image-generation.md.",
    )
    parser.add_argument("prompt", help="what to paint")
    parser.add_argument(
        "-o", "--output", type=Path, required=True, metavar="OUT.png", help="image to write"
    )
    parser.add_argument(
        "--backend",
        choices=("diffusers", "procedural"),
        default=None,
        help="image backend (default: try the configuration's render.backend_order)",
    )
    parser.add_argument(
        "--model",
        default=None,
        metavar="PATH",
        help="Stable Diffusion checkpoint (.safetensors) or diffusers folder, or a name "
        "under the models folder",
    )
    parser.add_argument(
        "--device",
        default=None,
        help="auto (CUDA, then MPS, then CPU), cuda, cuda:N, mps or cpu (default: config)",
    )
    parser.add_argument("--seed", type=int, default=None, help="seed (default: style.seed)")
    parser.add_argument("--steps", type=int, default=None, help="denoising steps (default 25)")
    parser.add_argument(
        "--guidance", type=float, default=None, help="guidance scale (default 7, 0 for Turbo/LCM)"
    )
    parser.add_argument("--scheduler", default=None, help="euler, euler_a, dpmpp_2m, ddim, lcm...")
    parser.add_argument("--negative", default="", help="negative prompt")
    parser.add_argument("--variants", type=int, default=1, help="how many images (1..16)")
    parser.add_argument("--width", type=int, default=512, help="width in pixels (default 512)")
    parser.add_argument("--height", type=int, default=512, help="height in pixels (default 512)")
    parser.add_argument(
        "--init-image", type=Path, default=None, metavar="IMG", help="repaint this image"
    )
    parser.add_argument(
        "--strength", type=float, default=0.6, help="img2img: how much to repaint, 0..1"
    )
    parser.add_argument(
        "--lora",
        action="append",
        default=[],
        metavar="PATH[:SCALE]",
        help="a LoRA .safetensors (repeatable), with an optional scale 0..2",
    )
    parser.add_argument(
        "--model-config",
        type=Path,
        default=None,
        metavar="DIR",
        help="pipeline config folder for a single-file checkpoint whose family cannot be told",
    )
    parser.set_defaults(handler=run)


def variant_paths(output: Path, count: int) -> list[Path]:
    """``OUT.png`` for one image; ``OUT-1.png`` .. ``OUT-N.png`` for several."""
    if count == 1:
        return [output]
    return [output.with_name(f"{output.stem}-{i}{output.suffix}") for i in range(1, count + 1)]


def _write_png(path: Path, image: np.ndarray) -> None:
    import cv2

    from engine.atomic_files import atomic_path
    from engine.errors import MediaInputError

    with atomic_path(path) as tmp:
        if not cv2.imwrite(str(tmp), cv2.cvtColor(image, cv2.COLOR_RGB2BGR)):
            raise MediaInputError(path, "could not write the image; check the folder and name")


def run(args: argparse.Namespace) -> int:
    """Generate and write the images; returns the exit code."""
    from engine.cli import _load_config
    from engine.context import StageContext
    from engine.errors import ParameterError
    from engine.generation.backends import create_backend, create_first_available
    from engine.generation.types import StillRequest
    from engine.output_paths import check_output_path

    config: dict[str, Any] = _load_config(getattr(args, "config", None))
    if not (1 <= args.variants <= 16):
        raise ParameterError("--variants", args.variants, "1..16")
    outputs = [
        check_output_path(p, what="image", extensions=(".png",))
        for p in variant_paths(args.output, args.variants)
    ]
    seed = int(config["style"]["seed"]) if args.seed is None else args.seed
    init = None
    if args.init_image is not None:
        from engine.generation.image_io import read_image_safely

        init = read_image_safely(args.init_image)
    options: dict[str, Any] = {
        "model": args.model or config["render"]["model"] or None,
        "device": args.device or config["render"]["device"],
    }
    models_dir = config.get("paths", {}).get("models_dir")
    if models_dir:
        options["models_dir"] = Path(models_dir)
    diffusers_options: dict[str, Any] = {}
    if args.scheduler:
        diffusers_options["scheduler"] = args.scheduler
    if args.lora:
        from engine.generation.lora import LoraSpec

        diffusers_options["loras"] = [LoraSpec.parse(text) for text in args.lora]
    if args.model_config is not None:
        diffusers_options["config_dir"] = args.model_config
    if args.backend is not None:
        order = [args.backend]
    else:
        order = list(config["render"]["backend_order"])
        if options["model"] and "diffusers" not in order:
            order.insert(0, "diffusers")
    if args.backend == "diffusers":
        # asked for by name: its errors are the answer, no fallback
        backend = create_backend("diffusers", **options, **diffusers_options)
    else:
        backend = create_first_available(order, **options, **diffusers_options)
    if init is not None and backend.name != "diffusers":
        raise ParameterError("--init-image", str(args.init_image), "only with --backend diffusers")
    seeds = [seed + i for i in range(args.variants)]
    if backend.name == "diffusers":
        from engine.generation.diffusers_backend import DiffusionRequest

        request = DiffusionRequest(
            prompts=(args.prompt,) * args.variants,
            seeds=tuple(seeds),
            negative_prompt=args.negative,
            width=args.width,
            height=args.height,
            steps=args.steps,
            guidance=args.guidance,
            scheduler=args.scheduler,
            init_image=init,
            strength=args.strength,
        )
        images = backend.diffuse(request, StageContext(stage="generate"))  # type: ignore[attr-defined]
    else:
        log.warning(
            "image backend %s is a DRAFT painter (not Stable Diffusion); pass --backend "
            "diffusers --model PATH for real generation",
            backend.name,
        )
        images = [
            backend.generate(
                StillRequest(prompt=args.prompt, seed=s, width=args.width, height=args.height)
            )
            for s in seeds
        ]
    label = " (procedural DRAFT)" if backend.is_draft else f" ({backend.name})"
    scores: list[float] = []
    if len(images) > 1:
        # the generator's documented variant score (sharpness and exposure)
        from engine.generation.generator import score_image

        scores = [score_image(image)["total"] for image in images]
    for index, (path, image, s) in enumerate(zip(outputs, images, seeds, strict=True)):
        _write_png(path, image)
        score = f", score {scores[index]:.3f}" if scores else ""
        print(f"wrote {path}: {image.shape[1]}x{image.shape[0]}, seed {s}{score}{label}")
    if scores:
        best = max(range(len(scores)), key=lambda i: (scores[i], -seeds[i]))
        print(f"best: {outputs[best]} (seed {seeds[best]}, score {scores[best]:.3f})")
    return 0
