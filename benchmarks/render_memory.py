"""Peak memory of a render against the song's length: a 2-minute and an 8-minute song.

Each render runs ``render_video`` in a fresh Python process (cold caches in a temporary
folder) and reports that process's peak resident set size (``VmHWM``), also broken down
by stage: the peak is read and reset (``/proc/self/clear_refs``) whenever the stage
changes, and the analysis stage is split into its steps (decoding, beats, sections, key,
spectral curves).  Resetting the peak also resets what ``ru_maxrss`` reports, so the
overall peak is the largest stage peak; "RSS entering" a stage shows what the stages
before it left behind.  The songs come from the synthesizer, sections repeated to reach
the length.  The target: the 8-minute peak within 10 % of the 2-minute one.

    .venv/bin/python benchmarks/render_memory.py                  # preset draft
    .venv/bin/python benchmarks/render_memory.py --presets draft,web
    .venv/bin/python benchmarks/render_memory.py --minutes 1,4    # quicker
"""

from __future__ import annotations

import argparse
import json
import logging
import subprocess
import sys
import tempfile
import time
import wave
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from engine.audio.synth import SongSpec

TARGET = 1.10
TEMPO = 120.0  # a 4/4 bar is 2 s


def song_spec(minutes: float) -> SongSpec:
    """Intro, then verse / pre-chorus / chorus repeated, then an outro: ``minutes`` long."""
    from engine.audio.synth import SectionSpec, SongSpec

    bars = max(8, round(minutes * 60.0 / (4 * 60.0 / TEMPO)))
    cycle = (("verse", 8, 0.55), ("pre-chorus", 4, 0.7), ("chorus", 8, 0.9))
    sections = [SectionSpec(label="intro", bars=4, energy=0.3)]
    used = 4 + 4  # intro and outro
    while used < bars:
        for label, most, energy in cycle:
            length = min(most, bars - used)
            if length > 0:
                sections.append(SectionSpec(label=label, bars=length, energy=energy))
                used += length
    sections.append(SectionSpec(label="outro", bars=4, energy=0.25))
    return SongSpec(tempo=TEMPO, sections=tuple(sections), seed=7)


def write_song(path: Path, minutes: float) -> float:
    from engine.audio.synth import synthesize_song

    song = synthesize_song(song_spec(minutes))
    pcm = (np.clip(song.audio, -1.0, 1.0) * 32767.0).round().astype("<i2")
    with wave.open(str(path), "wb") as handle:
        handle.setnchannels(pcm.shape[0])
        handle.setsampwidth(2)
        handle.setframerate(song.sample_rate)
        handle.writeframes(pcm.T.tobytes())
    return song.audio.shape[1] / song.sample_rate


# -- the child: one render, measured ------------------------------------------------------


def _status_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise KeyError(field)


def _reset_peak() -> bool:
    """Reset VmHWM to the current RSS (Linux 4.0+); False where that is not allowed."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True


class _StagePeaks:
    """Progress sink that records the peak RSS of each stage (and analysis step)."""

    def __init__(self) -> None:
        self.peaks: dict[str, int] = {}
        self.entering: dict[str, int] = {"start": _status_kib("VmRSS")}
        self.label = "start"
        self.resets = _reset_peak()

    def close_label(self) -> None:
        peak = _status_kib("VmHWM")
        self.peaks[self.label] = max(self.peaks.get(self.label, 0), peak)
        if self.resets:
            _reset_peak()

    def __call__(self, event: object) -> None:
        stage = getattr(event, "stage", "")
        message = getattr(event, "message", "")
        label = f"analyse: {message}" if stage == "analyse" and message else stage
        if stage == "analyse" and message.endswith("…"):
            label = "analyse: start"
        if label != self.label:
            self.close_label()
            self.label = label
            self.entering.setdefault(label, _status_kib("VmRSS"))


def child(song: Path, out_dir: Path, preset: str, style_seed: int | None) -> None:
    from engine.config import ConfigManager
    from engine.context import StageContext
    from engine.orchestrator.render_pipeline import RenderRequest, render_video

    logging.basicConfig(level=logging.WARNING)
    config = ConfigManager().config  # defaults only: no user file is read
    if style_seed is not None:
        config["style"]["seed"] = style_seed
    baseline = _status_kib("VmRSS")
    sink = _StagePeaks()
    started = time.perf_counter()
    report = render_video(
        RenderRequest(
            audio_path=song,
            output_path=out_dir / "video.mp4",
            preset=preset,
            cache_dir=out_dir / "cache",
        ),
        config=config,
        context=StageContext(sink=sink),
    )
    seconds = time.perf_counter() - started
    sink.close_label()
    result = {
        # Resetting VmHWM also resets what ru_maxrss reports, so the peak is the stages' max.
        "peak_kib": max(sink.peaks.values()) if sink.resets else _status_kib("VmHWM"),
        "start_kib": baseline,
        "stages_kib": sink.peaks,
        "entering_kib": sink.entering,
        "seconds": seconds,
        "frames": report["output"]["frames"],
        "shots": len(report["shots"]),
        "duration": report["analysis"]["duration"],
    }
    print(json.dumps(result))


# -- the parent -----------------------------------------------------------------------------


def measure(song: Path, work: Path, preset: str, style_seed: int | None) -> dict[str, Any]:
    out = work / f"out-{song.stem}-{preset}"
    out.mkdir()
    seed = [] if style_seed is None else ["--style-seed", str(style_seed)]
    return json.loads(_run("--child", str(song), str(out), preset, *seed))


def _run(*args: str) -> str:
    """Run this script in a fresh interpreter; its last line of output."""
    command = [sys.executable, __file__, *args]
    done = subprocess.run(command, check=False, capture_output=True, text=True)
    if done.returncode != 0:
        sys.stderr.write(done.stderr[-4000:])
        raise SystemExit(f"{' '.join(args)}: exit status {done.returncode}")
    return done.stdout.strip().splitlines()[-1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--presets", default="draft", help="comma-separated (draft)")
    parser.add_argument("--minutes", default="2,8", help="short,long song minutes (2,8)")
    parser.add_argument(
        "--child", nargs=3, metavar=("SONG", "OUT", "PRESET"), help=argparse.SUPPRESS
    )
    parser.add_argument(
        "--style-seed", type=int, default=None, help="style.seed for the renders (default: 0)"
    )
    parser.add_argument("--write-song", nargs=2, metavar=("PATH", "MIN"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        song, out, preset = args.child
        child(Path(song), Path(out), preset, args.style_seed)
        return
    if args.write_song:
        print(write_song(Path(args.write_song[0]), float(args.write_song[1])))
        return
    short, long = (float(m) for m in args.minutes.split(","))
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="apex-memory-") as tmp:
        work = Path(tmp)
        songs = {}
        for minutes in (short, long):
            path = work / f"song_{minutes:g}min.wav"
            # In a child too: on Linux a process's ru_maxrss starts from its parent's.
            seconds = float(_run("--write-song", str(path), str(minutes)))
            songs[minutes] = path
            print(f"song {path.name}: {seconds:.1f} s")
        for preset in args.presets.split(","):
            results = {m: measure(songs[m], work, preset, args.style_seed) for m in (short, long)}
            _print(preset, results[short], results[long], short, long)
    print(f"benchmark wall time {time.perf_counter() - started:.0f} s")


def _print(
    preset: str, short: dict[str, Any], long: dict[str, Any], m_short: float, m_long: float
) -> None:
    def mib(result: dict[str, Any], key: str) -> float:
        return result[key] / 1024.0

    rows: list[tuple[str, float, float, str]] = [
        ("song seconds", short["duration"], long["duration"], ".1f"),
        ("shots", short["shots"], long["shots"], "d"),
        ("frames", short["frames"], long["frames"], "d"),
        ("render seconds", short["seconds"], long["seconds"], ".1f"),
        ("RSS after imports, MiB", mib(short, "start_kib"), mib(long, "start_kib"), ".0f"),
        ("peak RSS (VmHWM), MiB", mib(short, "peak_kib"), mib(long, "peak_kib"), ".0f"),
    ]  # fmt: skip
    for stage in dict.fromkeys([*short["stages_kib"], *long["stages_kib"]]):
        a = short["stages_kib"].get(stage, 0) / 1024.0
        b = long["stages_kib"].get(stage, 0) / 1024.0
        rows.append((f"  peak in {stage}", a, b, ".0f"))
    for stage in dict.fromkeys([*short["entering_kib"], *long["entering_kib"]]):
        a = short["entering_kib"].get(stage, 0) / 1024.0
        b = long["entering_kib"].get(stage, 0) / 1024.0
        rows.append((f"  RSS entering {stage}", a, b, ".0f"))
    print(f"preset {preset}")
    print(f"  {'':<40}{f'{m_short:g} min':>10}{f'{m_long:g} min':>10}{'ratio':>8}")
    for name, a, b, fmt in rows:
        ratio = f"{b / a:8.2f}" if a else ""
        print(f"  {name:<40}{a:>10{fmt}}{b:>10{fmt}}{ratio}")
    ratio = long["peak_kib"] / short["peak_kib"]
    verdict = "meets" if ratio <= TARGET else "misses"
    print(
        f"  peak RSS {m_long:g} min / {m_short:g} min = {ratio:.2f}: "
        f"{verdict} the target of <= {TARGET:.2f}"
    )
    # The delivery QC (qa stage) runs after the file is written; the render engine's own
    # peak is the largest of the stages before it (resetting VmHWM per stage keeps them apart).
    if "qa" in short["stages_kib"] and "qa" in long["stages_kib"]:
        before = [
            max(v for k, v in r["stages_kib"].items() if k != "qa") / 1024.0 for r in (short, long)
        ]
        print(
            f"  peak RSS without the qa stage: {before[0]:.0f} -> {before[1]:.0f} MiB = "
            f"{before[1] / before[0]:.2f}; qa stage alone: "
            f"{short['stages_kib']['qa'] / 1024.0:.0f} -> "
            f"{long['stages_kib']['qa'] / 1024.0:.0f} MiB"
        )


if __name__ == "__main__":
    main()
