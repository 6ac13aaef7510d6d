"""Render the demo song and report the time of each stage, beside baselines run in the
same process.

Baselines:
- *encode only*: the same number of frames, already composed (60 frames of a moving
  still, cycled), through the same encoder settings with the same audio;
- *compose only*: the same timeline, motion and crossfades, with no encoder.
The assemble stage overlaps the two, so the figure to watch is assemble / encode only
(1.0 would mean compositing is free).  The whole render is also given as a multiple of
real time (song length / render time).  Ratios, not absolute times: these machines are
shared and noisy.

    .venv/bin/python benchmarks/render_demo.py [--preset web] [--song resources/demo/demo_song.mp3]
"""

from __future__ import annotations

import argparse
import logging
import tempfile
import time
from collections import deque
from pathlib import Path

import cv2

from engine.assembly.compose import StillCache, _frames
from engine.assembly.encoder import (
    EncodeSettings,
    VideoWriter,
    encode_audio_track,
    join_segments,
)
from engine.assembly.motion import apply_motion
from engine.assembly.timeline import Timeline
from engine.audio.analyzer import AudioAnalyzer
from engine.config import ConfigManager
from engine.config.schema import frame_rate
from engine.orchestrator.render_pipeline import RenderRequest, render_video
from engine.planning.shots import plan_shots

ROOT = Path(__file__).resolve().parent.parent


def _still(path: Path):  # type: ignore[no-untyped-def]
    return cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)


def encode_only(song: Path, work: Path, preset: dict, frames: int, still_path: Path) -> float:
    """Encode already-composed frames, the audio track, and join: the floor for assemble."""
    settings = EncodeSettings(
        width=preset["width"],
        height=preset["height"],
        fps=frame_rate(preset["fps"]),
        crf=preset["crf"],
        speed=preset["encoder_speed"],
        audio_bitrate=preset["audio_bitrate"],
    )
    still = _still(still_path)
    loop = [apply_motion(still, "zoom_in", i / 60, amount=0.08) for i in range(60)]
    started = time.perf_counter()
    with VideoWriter(work / "video.mp4", settings) as writer:
        for i in range(frames):
            writer.write(loop[i % len(loop)])
    encode_audio_track(song, work / "audio.m4a", bitrate=settings.audio_bitrate)
    join_segments([work / "video.mp4"], work / "audio.m4a", work / "bare.mp4", fps=settings.fps)
    return time.perf_counter() - started


def compose_only(song: Path, config: dict, preset_name: str, stills: list[Path]) -> float:
    preset = config["presets"][preset_name]
    analysis = AudioAnalyzer(fps=preset["fps"]).analyze(song)
    shots = plan_shots(analysis)
    timeline = Timeline(
        shots, fps=preset["fps"], crossfade_seconds=config["render"]["crossfade_seconds"]
    )
    cache = StillCache(lambda i: _still(stills[i]))
    started = time.perf_counter()
    # Render every frame and discard it: the compositing cost alone.
    deque(_frames(shots, timeline, cache, config["render"]["motion_amount"]), maxlen=0)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--preset", default="web", choices=("draft", "web", "high", "broadcast", "cinema")
    )
    parser.add_argument("--song", type=Path, default=ROOT / "resources/demo/demo_song.mp3")
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)
    config = ConfigManager().config
    with tempfile.TemporaryDirectory() as tmp:
        cache_dir = Path(tmp) / "cache"
        request = RenderRequest(
            audio_path=args.song,
            output_path=Path(tmp) / "demo.mp4",
            preset=args.preset,
            cache_dir=cache_dir,
        )
        cold = render_video(request, config=config)
        warm = render_video(request, config=config)
        frames = cold["output"]["frames"]
        stills = sorted((cache_dir / "stills").glob("*.png"), key=lambda p: p.stat().st_mtime)
        encode = encode_only(
            args.song, Path(tmp), config["presets"][args.preset], frames, stills[0]
        )
        compose = compose_only(args.song, config, args.preset, stills)
    duration = cold["analysis"]["duration"]
    out = cold["output"]
    print(
        f"song: {args.song.name}, {duration:.1f} s, preset {args.preset} "
        f"({out['width']}x{out['height']} {out['fps']} fps, {frames} frames, "
        f"{len(cold['shots'])} shots)"
    )
    print(f"{'stage':<10}{'first run s':>12}{'re-run s':>10}")
    for stage in ("analyse", "plan", "generate", "assemble", "total"):
        print(f"{stage:<10}{cold['timings'][stage]:>12.2f}{warm['timings'][stage]:>10.2f}")
    print(f"baseline encode only: {encode:.2f} s; compose only: {compose:.2f} s")
    print(
        f"assemble / encode only: {cold['timings']['assemble'] / encode:.2f}x "
        f"(serial would be {(encode + compose) / encode:.2f}x)"
    )
    print(
        f"render speed: {duration / cold['timings']['total']:.2f}x real time "
        f"(first run), {duration / warm['timings']['total']:.2f}x (stills and analysis cached)"
    )


if __name__ == "__main__":
    main()
