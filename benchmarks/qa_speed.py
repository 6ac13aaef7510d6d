"""Speed of the full delivery QC of a 20 s 1080p clip, beside ffmpeg's signalstats alone.

    .venv/bin/python benchmarks/qa_speed.py [--seconds 20] [--repeat 3] [--keep DIR] [--json FILE]

The clip is made once (H.264 High, CRF 20, 1920x1080, 25 fps, BT.709 limited range, a
moving textured picture with fades, and AAC stereo at about -23 LUFS).  Then, in the same
run and on the same file, alternating so machine load hits both alike:

- **ours**: ``QualityValidator().validate_video(clip)`` in full mode (levels on every
  frame, flashes, black and frozen frames, format, timing, GOP, A/V, loudness, LRA and
  true peak), the median of ``--repeat`` runs, after one warm-up run (imports);
- **ours, sampled**: the same with levels on 4 frames per second;
- **ffmpeg signalstats**: ``ffmpeg -i clip -vf signalstats -an -f null -`` alone (luma and
  chroma statistics only, no audio), the median of ``--repeat`` runs.

Printed: wall seconds, the ratio to the clip's duration (target: ours <= 0.6x), ours
relative to signalstats, CPU seconds, and the load average (``uptime``) before and after,
since the machine may be shared.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from engine.qa import QualityValidator, VideoOptions

WIDTH, HEIGHT, FPS = 1920, 1080, 25


def make_clip(path: Path, seconds: float) -> Path:
    """A realistic-to-encode 1080p clip with audio (takes a while; reused with --keep)."""
    import av
    import cv2
    from av.video.reformatter import ColorRange, Colorspace

    rng = np.random.default_rng(1)
    base = cv2.resize(
        rng.integers(16, 236, (HEIGHT // 8, WIDTH // 8, 3), dtype=np.uint8),
        (WIDTH + 256, HEIGHT + 144),
        interpolation=cv2.INTER_CUBIC,
    )
    for _ in range(40):
        colour = tuple(int(v) for v in rng.integers(20, 235, 3))
        x, y = int(rng.integers(0, WIDTH)), int(rng.integers(0, HEIGHT))
        cv2.circle(base, (x, y), int(rng.integers(20, 200)), colour, -1, lineType=cv2.LINE_AA)
    frames = round(seconds * FPS)
    rate = 48000
    t = np.arange(round(seconds * rate)) / rate
    music = 0.05 * np.stack([np.sin(2 * np.pi * 220 * t), np.sin(2 * np.pi * 330 * t)])
    music += 0.02 * rng.standard_normal(music.shape) * ((t % 0.5) < 0.1)
    with av.open(str(path), "w", format="mp4") as out:
        video = out.add_stream("libx264", rate=FPS)
        video.width, video.height, video.pix_fmt = WIDTH, HEIGHT, "yuv420p"
        video.time_base = Fraction(1, FPS)
        cc = video.codec_context
        cc.color_primaries = cc.color_trc = cc.colorspace = 1
        cc.color_range = 1
        cc.gop_size = 2 * FPS
        video.options = {"crf": "20", "preset": "veryfast", "profile": "high"}
        audio = out.add_stream("aac", rate=rate)
        audio.codec_context.layout = "stereo"
        audio.time_base = Fraction(1, rate)
        for i in range(frames):
            dx, dy = (i * 3) % 256, (i * 2) % 144
            rgb = base[dy : dy + HEIGHT, dx : dx + WIDTH]
            fade = min(1.0, i / FPS, (frames - 1 - i) / FPS)
            frame = av.VideoFrame.from_ndarray(
                np.ascontiguousarray((rgb * fade).astype(np.uint8)), format="rgb24"
            )
            yuv = frame.reformat(
                format="yuv420p",
                src_colorspace=Colorspace.ITU709,
                dst_colorspace=Colorspace.ITU709,
                src_color_range=ColorRange.JPEG,
                dst_color_range=ColorRange.MPEG,
            )
            yuv.pts = i
            yuv.time_base = Fraction(1, FPS)
            for packet in video.encode(yuv):
                out.mux(packet)
        for packet in video.encode(None):
            out.mux(packet)
        samples = music.astype(np.float32)
        for start in range(0, samples.shape[1], 1024):
            block = np.ascontiguousarray(samples[:, start : start + 1024])
            af = av.AudioFrame.from_ndarray(block, format="fltp", layout="stereo")
            af.sample_rate, af.pts, af.time_base = rate, start, Fraction(1, rate)
            for packet in audio.encode(af):
                out.mux(packet)
        for packet in audio.encode(None):
            out.mux(packet)
    return path


def _uptime() -> str:
    try:
        return subprocess.run(
            ["uptime"], capture_output=True, text=True, check=False
        ).stdout.strip()
    except OSError:
        return "load average: " + ", ".join(f"{x:.2f}" for x in os.getloadavg())


def _time_ours(clip: Path, mode: str) -> tuple[float, float, dict[str, Any]]:
    cpu0 = resource.getrusage(resource.RUSAGE_SELF)
    started = time.perf_counter()
    report = QualityValidator(VideoOptions(mode=mode)).validate_video(clip)
    wall = time.perf_counter() - started
    cpu1 = resource.getrusage(resource.RUSAGE_SELF)
    cpu = (cpu1.ru_utime - cpu0.ru_utime) + (cpu1.ru_stime - cpu0.ru_stime)
    return wall, cpu, report.to_dict()


def _time_signalstats(clip: Path) -> tuple[float, float]:
    cpu0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    subprocess.run(
        ["ffmpeg", "-v", "error", "-nostats", "-i", str(clip), "-vf", "signalstats", "-an",
         "-f", "null", "-"],
        check=True,
    )  # fmt: skip
    wall = time.perf_counter() - started
    cpu1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (cpu1.ru_utime - cpu0.ru_utime) + (cpu1.ru_stime - cpu0.ru_stime)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--keep", type=Path, default=None, help="make/reuse the clip here")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    if shutil.which("ffmpeg") is None:
        print("ffmpeg not found: the signalstats comparison needs the ffmpeg CLI")
        return 2
    folder = args.keep or Path(tempfile.mkdtemp(prefix="qa_speed_"))
    folder.mkdir(parents=True, exist_ok=True)
    clip = folder / f"clip_{int(args.seconds)}s_1080p.mp4"
    if not clip.exists():
        started = time.perf_counter()
        make_clip(clip, args.seconds)
        print(f"made {clip} in {time.perf_counter() - started:.1f} s")
    load_before = _uptime()
    _time_ours(clip, "full")  # warm-up: imports (scipy, cv2, av) and the page cache
    runs: dict[str, list[tuple[float, float]]] = {"full": [], "sampled": [], "signalstats": []}
    report: dict[str, Any] = {}
    for _ in range(args.repeat):
        wall, cpu, report = _time_ours(clip, "full")
        runs["full"].append((wall, cpu))
        runs["signalstats"].append(_time_signalstats(clip))
        wall, cpu, _ = _time_ours(clip, "sampled")
        runs["sampled"].append((wall, cpu))
    load_after = _uptime()
    duration = args.seconds
    result: dict[str, Any] = {"clip": str(clip), "duration": duration, "repeat": args.repeat}
    print(f"clip: {WIDTH}x{HEIGHT} {FPS} fps, {duration:g} s, H.264 High + AAC")
    print(f"load before: {load_before}")
    print(f"{'':28s}{'wall s':>8s}{'x clip':>8s}{'CPU s':>8s}   (median of {args.repeat})")
    medians = {}
    for name, label in (
        ("full", "ours, full QC"),
        ("sampled", "ours, sampled levels"),
        ("signalstats", "ffmpeg signalstats alone"),
    ):
        wall = statistics.median(w for w, _ in runs[name])
        cpu = statistics.median(c for _, c in runs[name])
        medians[name] = wall
        result[name] = {"wall": wall, "ratio": wall / duration, "cpu": cpu, "runs": runs[name]}
        print(f"{label:28s}{wall:8.2f}{wall / duration:8.2f}{cpu:8.2f}")
    print(f"ours (full) / signalstats: {medians['full'] / medians['signalstats']:.2f}")
    target = "met" if medians["full"] <= 0.6 * duration else "NOT met"
    print(f"target full QC <= 0.6x the clip's duration: {target}")
    print(f"load after: {load_after}")
    print(f"QC verdict on the clip: {report.get('summary')}")
    result.update(load_before=load_before, load_after=load_after, verdict=report.get("summary"))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
