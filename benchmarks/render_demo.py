"""Render the demo song and report the time of each stage.

Baseline in the same run: encoding the same number of frames of one still with the
same encoder settings and the same audio ("bare encode"), so the assemble stage is
reported as a ratio to the cost of encoding alone; the whole render is reported as
a multiple of real time (song length / render time).  Ratios, not absolute times,
because these machines are shared and noisy.

    .venv/bin/python benchmarks/render_demo.py [--preset web] [--song resources/demo/demo_song.mp3]
"""

from __future__ import annotations

import argparse
import logging
import tempfile
import time
from pathlib import Path

import numpy as np

from engine.assembly.encoder import EncodeSettings, H264Writer
from engine.config import ConfigManager
from engine.orchestrator.render_pipeline import RenderRequest, render_video

ROOT = Path(__file__).resolve().parent.parent


def bare_encode(song: Path, out: Path, preset: dict, frames: int) -> float:
    settings = EncodeSettings(
        width=preset["width"],
        height=preset["height"],
        fps=preset["fps"],
        crf=preset["crf"],
        speed=preset["encoder_speed"],
        audio_bitrate=preset["audio_bitrate"],
    )
    rng = np.random.default_rng(0)
    still = rng.integers(0, 255, (preset["height"], preset["width"], 3), dtype=np.uint8)
    still = np.ascontiguousarray(np.sort(still, axis=1))  # smooth-ish, like a real still
    started = time.perf_counter()
    with H264Writer(out, settings, audio_path=song) as writer:
        for _ in range(frames):
            writer.write(still)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="web", choices=("draft", "web", "high"))
    parser.add_argument("--song", type=Path, default=ROOT / "resources/demo/demo_song.mp3")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    config = ConfigManager().config
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "demo.mp4"
        cold = render_video(
            RenderRequest(
                audio_path=args.song,
                output_path=out,
                preset=args.preset,
                cache_dir=Path(tmp) / "cache",
            ),
            config=config,
        )
        warm = render_video(
            RenderRequest(
                audio_path=args.song,
                output_path=out,
                preset=args.preset,
                cache_dir=Path(tmp) / "cache",
            ),
            config=config,
        )
        frames = cold["output"]["frames"]
        bare = bare_encode(
            args.song, Path(tmp) / "bare.mp4", config["presets"][args.preset], frames
        )
    duration = cold["analysis"]["duration"]
    print(
        f"song: {args.song.name}, {duration:.1f} s, preset {args.preset} "
        f"({cold['output']['width']}x{cold['output']['height']} {cold['output']['fps']} fps, "
        f"{frames} frames, {len(cold['shots'])} shots)"
    )
    print(f"{'stage':<10}{'first run s':>12}{'re-run s':>10}")
    for stage in ("analyse", "plan", "generate", "assemble", "total"):
        print(f"{stage:<10}{cold['timings'][stage]:>12.2f}{warm['timings'][stage]:>10.2f}")
    print(f"bare encode of the same frames and audio (baseline): {bare:.2f} s")
    print(f"assemble / bare encode: {cold['timings']['assemble'] / bare:.2f}x")
    print(
        f"render speed: {duration / cold['timings']['total']:.2f}x real time "
        f"(first run), {duration / warm['timings']['total']:.2f}x (stills cached)"
    )


if __name__ == "__main__":
    main()
