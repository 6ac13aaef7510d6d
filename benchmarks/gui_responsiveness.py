"""GUI responsiveness: event-loop stalls while a render runs, and timeline repaints.

1. Stalls: the real main window (offscreen) with its engine bridge; a synthesized song
   is opened as a project, analysed, and rendered (draft preset by default) while a
   zero-interval ``QTimer`` on the GUI thread records every turn of the event loop.  A
   *stall* is the gap between two turns: the longest one is the longest time the window
   could not have answered a click or repainted.  The render's events (progress bars,
   status bar polling, the timeline shown after the analysis and after the render) are
   all handled on the GUI thread during the measurement, as in use.
2. Repaint: :func:`app.widgets.timeline_view.benchmark_repaint` paints a timeline of
   1,000 clips (thumbnails, waveform, beat grid) fitted to a 1,600 px wide view.

Targets (issue 8): longest stall <= 50 ms; 1,000-clip repaint <= 16 ms.

    QT_QPA_PLATFORM=offscreen .venv/bin/python benchmarks/gui_responsiveness.py
    QT_QPA_PLATFORM=offscreen .venv/bin/python benchmarks/gui_responsiveness.py \\
        --seconds 60 --preset web --json out/gui.json
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")


def _song(path: Path, seconds: float) -> Path:
    from engine.audio.synth import SectionSpec, SongSpec, synthesize_song
    from tests.media import write_wav

    bars = max(2, round(seconds * 128 / 60 / 4 / 4))  # four sections at 128 BPM
    spec = SongSpec(
        tempo=128.0,
        sections=(
            SectionSpec(label="intro", bars=bars, energy=0.3),
            SectionSpec(label="verse", bars=bars, energy=0.55),
            SectionSpec(label="chorus", bars=bars, energy=0.9),
            SectionSpec(label="outro", bars=bars, energy=0.4),
        ),
        seed=11,
    )
    song = synthesize_song(spec)
    return write_wav(path, song.audio, song.sample_rate)


class _LoopWatch:
    """Records the gaps between turns of the GUI event loop."""

    def __init__(self) -> None:
        from PySide6.QtCore import QTimer

        self.gaps_ms: list[float] = []
        self.cpu_ms: list[float] = []  # the GUI thread's own CPU time in each gap
        self._last = time.perf_counter()
        self._last_cpu = time.thread_time()
        self.timer = QTimer()
        self.timer.setInterval(0)
        self.timer.timeout.connect(self._tick)

    def start(self) -> None:
        self._last = time.perf_counter()
        self._last_cpu = time.thread_time()
        self.timer.start()

    def stop(self) -> None:
        self.timer.stop()

    def _tick(self) -> None:
        now, cpu = time.perf_counter(), time.thread_time()
        self.gaps_ms.append((now - self._last) * 1000.0)
        self.cpu_ms.append((cpu - self._last_cpu) * 1000.0)
        self._last, self._last_cpu = now, cpu


class _StallSampler:
    """A thread that watches :class:`_LoopWatch` and, while the GUI thread has not turned
    for more than ``threshold_ms``, samples the stacks of the other threads (who runs
    Python, i.e. holds the GIL, while the GUI waits).  Every ``period_ms`` it takes one
    sample; each sample counts the innermost engine/app frame of every other thread.
    """

    def __init__(self, watch: _LoopWatch, threshold_ms: float = 20.0, period_ms: float = 2.0):
        import threading

        self.watch = watch
        self.threshold = threshold_ms / 1000.0
        self.period = period_ms / 1000.0
        self.samples: dict[str, int] = {}
        self.stalls: list[dict[str, Any]] = []
        self._stop = threading.Event()
        self._main = threading.main_thread().ident
        self._thread = threading.Thread(target=self._run, name="stall-sampler", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    @staticmethod
    def _where(frame: Any) -> str:
        import traceback

        stack = traceback.extract_stack(frame)
        ours = [f for f in stack if "/engine/" in f.filename or "/app/" in f.filename]
        inner = stack[-1]
        top = ours[-1] if ours else inner
        short = Path(top.filename).name
        return f"{short}:{top.lineno} {top.name} -> {Path(inner.filename).name}:{inner.name}"

    def _run(self) -> None:
        import threading

        names = {}
        current: dict[str, int] | None = None
        current_started = 0.0
        while not self._stop.wait(self.period):
            now = time.perf_counter()
            stalled = now - self.watch._last > self.threshold and self.watch.timer.isActive()
            if stalled:
                if current is None:
                    current, current_started = {}, self.watch._last
                names = {t.ident: t.name for t in threading.enumerate()}
                for ident, frame in sys._current_frames().items():
                    if ident in (self._main, threading.get_ident()):
                        continue
                    key = f"[{names.get(ident, ident)}] {self._where(frame)}"
                    current[key] = current.get(key, 0) + 1
                    self.samples[key] = self.samples.get(key, 0) + 1
            elif current is not None:
                self.stalls.append(
                    {
                        "ms": round((now - current_started) * 1000.0, 1),
                        "top": sorted(current.items(), key=lambda kv: -kv[1])[:4],
                    }
                )
                current = None

    def report(self, top: int = 8) -> dict[str, Any]:
        worst = sorted(self.stalls, key=lambda s: -s["ms"])[:5]
        common = sorted(self.samples.items(), key=lambda kv: -kv[1])[:top]
        return {"worst_stalls": worst, "most_sampled": common}


def _wait(app: Any, predicate: Any, timeout_s: float) -> None:
    deadline = time.perf_counter() + timeout_s
    while not predicate():
        if time.perf_counter() > deadline:
            raise TimeoutError(f"gave up after {timeout_s} s")
        app.processEvents()
        time.sleep(0.001)


def measure_stalls(
    seconds: float,
    preset: str,
    sample: bool = False,
    threshold_ms: float = 20.0,
    isolation: str = "process",
) -> dict[str, Any]:
    """Longest event-loop stalls while a project is analysed and rendered.

    ``isolation`` is the orchestrator's ``stage_isolation``: ``"process"`` (the app's
    setting: render stages in a child process) or ``"thread"`` (in this process).

    With ``sample`` a thread records what the other threads run during each stall over
    ``threshold_ms`` (see :class:`_StallSampler`); it costs the GUI some GIL time itself.
    """
    from PySide6.QtCore import QSettings
    from PySide6.QtWidgets import QApplication

    from app.engine_bridge import EngineBridge
    from app.main_window import MainWindow
    from app.widgets.render_queue import group_of
    from engine.api import ConfigManager

    app = QApplication.instance() or QApplication([])
    with tempfile.TemporaryDirectory(prefix="apex-gui-bench-") as folder:
        root = Path(folder)
        os.environ["XDG_CACHE_HOME"] = str(root / "cache")
        song = _song(root / "song.wav", seconds)
        settings = QSettings(str(root / "gui.ini"), QSettings.Format.IniFormat)
        config = ConfigManager().config
        config["orchestrator"] = {"stage_isolation": isolation}
        bridge = EngineBridge(root / "projects", config=config)
        window = MainWindow(
            bridge, settings=settings, config_path=root / "config.toml", probe_device=False
        )
        window.resize(1440, 900)
        window.show()
        app.processEvents()
        modules_before = set(sys.modules)
        watch = _LoopWatch()
        sampler = _StallSampler(watch, threshold_ms) if sample else None
        phases: dict[str, tuple[int, int]] = {}
        started = time.perf_counter()
        watch.start()
        if sampler is not None:
            sampler.start()
        first = len(watch.gaps_ms)
        shown: list[float] = []
        window.timeline_shown.connect(lambda: shown.append(time.perf_counter()))
        bridge.new_project_from_audio(song)
        _wait(app, lambda: bool(shown), 300)
        phases["analyse"] = (first, len(watch.gaps_ms))
        analysed = time.perf_counter() - started
        queued: list[str] = []
        bridge.render_queued.connect(queued.append)
        first = len(watch.gaps_ms)
        render_started = time.perf_counter()
        bridge.render(preset=preset)
        _wait(app, lambda: bool(queued), 60)
        key, _ = group_of(queued[0])
        rows = window.render_queue.rows
        _wait(app, lambda: key in rows and rows[key].state in ("succeeded", "failed"), 1800)
        _wait(app, lambda: len(shown) >= 2 or rows[key].state == "failed", 60)
        phases["render"] = (first, len(watch.gaps_ms))
        rendered = time.perf_counter() - render_started
        watch.stop()
        if sampler is not None:
            sampler.stop()
        state = rows[key].state
        window.close()
        app.processEvents()

    def summary(gaps: list[float], cpu: list[float]) -> dict[str, float]:
        ordered = sorted(gaps)
        worst = max(range(len(gaps)), key=gaps.__getitem__)
        return {
            "worst_gap_gui_cpu_ms": round(cpu[worst], 2),
            "max_gui_cpu_ms": round(max(cpu), 2),
            "turns": len(gaps),
            "max_ms": round(ordered[-1], 2),
            "p99_ms": round(ordered[int(0.99 * (len(ordered) - 1))], 2),
            "median_ms": round(statistics.median(ordered), 3),
            "over_50ms": sum(g > 50.0 for g in gaps),
            "over_16ms": sum(g > 16.0 for g in gaps),
        }

    out = {
        "song_seconds": round(seconds, 1),
        "preset": preset,
        "stage_isolation": isolation,
        "render_state": state,
        "analyse_and_plan_s": round(analysed, 2),
        "render_s": round(rendered, 2),
        "analyse": summary(
            watch.gaps_ms[slice(*phases["analyse"])], watch.cpu_ms[slice(*phases["analyse"])]
        ),
        "render": summary(
            watch.gaps_ms[slice(*phases["render"])], watch.cpu_ms[slice(*phases["render"])]
        ),
    }
    if sampler is not None:
        out["stall_samples"] = sampler.report()
        # extension modules first imported by the engine while the GUI ran: loading one
        # holds the GIL for its whole dlopen and init
        out["extension_modules_imported"] = sorted(
            name
            for name in set(sys.modules) - modules_before
            if str(getattr(sys.modules.get(name), "__file__", "") or "").endswith((".so", ".pyd"))
        )
    return out


def measure_repaint(clips: int) -> dict[str, float]:
    from PySide6.QtWidgets import QApplication

    from app.widgets.timeline_view import benchmark_repaint

    QApplication.instance() or QApplication([])
    return benchmark_repaint(clips)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=30.0, help="song length")
    parser.add_argument("--preset", default="draft", help="render preset")
    parser.add_argument("--clips", type=int, default=1000, help="clips on the timeline")
    parser.add_argument("--json", type=Path, help="write the figures here too")
    parser.add_argument(
        "--sample-stalls",
        action="store_true",
        help="record the other threads' stacks during long stalls",
    )
    parser.add_argument(
        "--stall-threshold-ms", type=float, default=20.0, help="what --sample-stalls samples"
    )
    parser.add_argument(
        "--switch-interval-ms",
        type=float,
        help="sys.setswitchinterval for the run (Python's default is 5 ms): how long a "
        "thread that wants the GIL waits for a busy one to hand it over",
    )
    parser.add_argument(
        "--busy",
        type=int,
        default=0,
        help="run this many CPU-spinning processes (other programs) for the whole run",
    )
    parser.add_argument(
        "--isolation",
        choices=("thread", "process"),
        default="process",
        help="where the render stages run: a child process (the app's default) or a "
        "thread of the GUI's process",
    )
    args = parser.parse_args(argv)
    spinners = [
        subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(args.busy)
    ]
    try:
        return _run(args)
    finally:
        for spinner in spinners:
            spinner.kill()
            spinner.wait()


def _run(args: argparse.Namespace) -> int:
    if args.switch_interval_ms is not None:
        sys.setswitchinterval(args.switch_interval_ms / 1000.0)
    logging.basicConfig(level=logging.WARNING)
    result = {
        "stalls": measure_stalls(
            args.seconds,
            args.preset,
            args.sample_stalls,
            args.stall_threshold_ms,
            args.isolation,
        ),
        "repaint": measure_repaint(args.clips),
        "cpu_count": os.cpu_count(),
        "switch_interval_ms": sys.getswitchinterval() * 1000.0,
        "load_average": os.getloadavg(),
        "busy_processes": args.busy,
    }
    stalls, repaint = result["stalls"], result["repaint"]
    result["targets"] = {
        "stall_max_ms<=50": stalls["render"]["max_ms"] <= 50.0,
        "repaint_median_ms<=16": repaint["median_ms"] <= 16.0,
    }
    text = json.dumps(result, indent=2)
    print(text)
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
