"""Speed of the audio analysis on a 3-minute song, cold and warm, beside librosa's stock pipeline.

    .venv/bin/python benchmarks/audio_speed.py [--repeats 3] [--minutes 3]

The song (122 BPM, intro, verses, pre-choruses, choruses, a bridge, an outro; the speed
song of ``benchmarks/audio_accuracy.py``) is synthesized and written as 16-bit WAV at
44.1 kHz.  Each pipeline is timed three ways:

* **first run**: a fresh interpreter whose numba on-disk cache is empty
  (``NUMBA_CACHE_DIR`` pointed at a new empty folder, so any numba kernel is compiled
  again, as on the first run after installing; librosa's cache files in site-packages are
  left alone, which matters while other processes use them);
* **cold**: a fresh interpreter with the JIT cache as it is after a first use;
* **warm**: in this process, after one untimed run (median of ``--repeats``).

"Seconds" run from the child's first import to its result; "wall" is the whole child
process, interpreter start included.  The child also reports whether numba was imported
at all.  Targets (issue 3): warm <= 3 s, cold <= 15 s including any JIT compilation.

Ours is ``AudioAnalyzer().analyze(path)``: decoding, beats, downbeats, sections, key and
spectral curves.  Stock is ``librosa.load(sr=22050)`` + ``librosa.onset.onset_strength`` +
``librosa.beat.beat_track``: beats only.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

WARM_TARGET = 3.0
COLD_TARGET = 15.0

_CHILD_OURS = """
import json, sys, time
started, cpu = time.perf_counter(), time.process_time()
from engine.audio.analyzer import AudioAnalyzer
AudioAnalyzer().analyze({path!r})
print(json.dumps({{"seconds": time.perf_counter() - started, "cpu": time.process_time() - cpu,
                  "numba": "numba" in sys.modules, "librosa": "librosa" in sys.modules}}))
"""
_CHILD_STOCK = """
import json, sys, time
started, cpu = time.perf_counter(), time.process_time()
import librosa
y, sr = librosa.load({path!r}, sr=22050, mono=True)
envelope = librosa.onset.onset_strength(y=y, sr=sr)
librosa.beat.beat_track(onset_envelope=envelope, sr=sr)
print(json.dumps({{"seconds": time.perf_counter() - started, "cpu": time.process_time() - cpu,
                  "numba": "numba" in sys.modules, "librosa": "librosa" in sys.modules}}))
"""


def _child(script: str, path: Path, *, empty_jit_cache: bool) -> tuple[float, float, bool, float]:
    """(seconds from the child's first import, child wall time, numba imported, CPU seconds)."""
    env = dict(os.environ)
    with tempfile.TemporaryDirectory(prefix="apex-numba-cache-") as cache:
        if empty_jit_cache:
            env["NUMBA_CACHE_DIR"] = cache
        started = time.perf_counter()
        done = subprocess.run(
            [sys.executable, "-c", script.format(path=str(path))],
            capture_output=True,
            text=True,
            env=env,
            cwd=ROOT,
            check=False,
        )
        wall = time.perf_counter() - started
    if done.returncode != 0:
        sys.stderr.write(done.stderr[-4000:])
        raise SystemExit(f"benchmark child failed with exit status {done.returncode}")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    return float(result["seconds"]), wall, bool(result["numba"]), float(result["cpu"])


def _warm(call: Callable[[], Any], repeats: int) -> tuple[float, float]:
    """Median (wall seconds, CPU seconds) of ``repeats`` calls after an untimed one."""
    call()
    times, cpu_times = [], []
    for _ in range(repeats):
        started, cpu = time.perf_counter(), time.process_time()
        call()
        times.append(time.perf_counter() - started)
        cpu_times.append(time.process_time() - cpu)
    return statistics.median(times), statistics.median(cpu_times)


def _stock(path: Path) -> None:
    import librosa

    y, sr = librosa.load(str(path), sr=22050, mono=True)
    envelope = librosa.onset.onset_strength(y=y, sr=sr)
    librosa.beat.beat_track(onset_envelope=envelope, sr=sr)


def _steps(path: Path) -> dict[str, float]:
    """Seconds per analysis step of one warm run of ours."""
    from engine.audio.analyzer import AudioAnalyzer

    marks: list[tuple[str, float]] = []
    AudioAnalyzer().analyze(path, progress=lambda _s, _t, m: marks.append((m, time.perf_counter())))
    return {a[0]: b[1] - a[1] for a, b in itertools.pairwise(marks)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3, help="warm repeats (median)")
    parser.add_argument("--minutes", type=float, default=3.0, help="song length (about 3)")
    args = parser.parse_args(argv)

    import dataclasses

    from audio_accuracy import speed_song, write_audio

    from engine.audio.analyzer import AudioAnalyzer
    from engine.audio.synth import synthesize_song

    spec = speed_song()
    if args.minutes != 3.0:
        scale = args.minutes / 3.0
        sections = tuple(
            dataclasses.replace(s, bars=max(1, round(s.bars * scale))) for s in spec.sections
        )
        spec = dataclasses.replace(spec, sections=sections)
    song = synthesize_song(spec)
    load = os.getloadavg()
    print(
        f"# Audio analysis speed: a {song.duration:.0f} s song ({spec.tempo:g} BPM, 16-bit WAV, "
        f"{song.sample_rate} Hz), {os.cpu_count()} CPUs, load average {load[0]:.1f} "
        f"at the start ({time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())})\n"
    )
    rows = []
    with tempfile.TemporaryDirectory(prefix="apex-speed-") as folder:
        path = write_audio(Path(folder) / "song.wav", song.audio, song.sample_rate)
        pipelines: tuple[tuple[str, str, Callable[[], Any]], ...] = (
            ("ours: AudioAnalyzer().analyze()", _CHILD_OURS, lambda: AudioAnalyzer().analyze(path)),
            ("stock: load+onset_strength+beat_track", _CHILD_STOCK, lambda: _stock(path)),
        )
        for name, script, call in pipelines:
            first = _child(script, path, empty_jit_cache=True)
            cold = _child(script, path, empty_jit_cache=False)
            warm = _warm(call, args.repeats)
            rows.append((name, first, cold, warm))
        steps = _steps(path)
    head = (
        f"{'pipeline':<40} {'first run (empty JIT cache)':>28} {'cold':>16} "
        f"{'warm (median)':>14} {'numba?':>7}"
    )
    print(head)
    print("-" * len(head))
    for name, first, cold, warm in rows:
        print(
            f"{name:<40} {first[0]:10.2f} s ({first[1]:5.2f} wall) "
            f"{cold[0]:6.2f} s ({cold[1]:5.2f}) {warm[0]:11.2f} s {'yes' if first[2] else 'no':>7}"
        )
    print("CPU seconds (less sensitive to other jobs on the machine):")
    for name, first, cold, warm in rows:
        print(f"{name:<40} {first[3]:10.2f} s {'':12} {cold[3]:6.2f} s {'':8}{warm[1]:11.2f} s")
    print(
        "\nours, warm, per step: "
        + ", ".join(f"{step} {seconds:.2f} s" for step, seconds in steps.items())
    )
    name, first, cold, warm = rows[0]
    ok_warm, ok_cold = warm[0] <= WARM_TARGET, max(first[0], cold[0]) <= COLD_TARGET
    print(
        f"TARGET warm <= {WARM_TARGET:g} s: {warm[0]:.2f} s {'MET' if ok_warm else 'NOT MET'}; "
        f"cold incl. any JIT compilation <= {COLD_TARGET:g} s: first run {first[0]:.2f} s "
        f"(wall {first[1]:.2f} s) {'MET' if ok_cold else 'NOT MET'}; stock first run "
        f"{rows[1][1][0]:.2f} s, warm {rows[1][3][0]:.2f} s"
        f"\nload average at the end {os.getloadavg()[0]:.1f}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
