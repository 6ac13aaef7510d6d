"""How long the grading panel takes from a control change to the new preview frame.

Runs the real panel and bridge offscreen on a 480x270 still (the panel's preview size)
and times, for a few kinds of grade, the span between setting a control and
``preview_updated``; each is repeated with a new value so nothing is reused from a cache.

    QT_QPA_PLATFORM=offscreen .venv/bin/python benchmarks/grading_preview.py [--repeats N]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np
from PySide6.QtWidgets import QApplication

import app
from app.engine_bridge import EngineBridge
from app.widgets.grading_panel import GradingPanel


def wait_for(panel: GradingPanel, application: QApplication, change: object) -> float:
    done: list[float] = []
    panel.preview_updated.connect(lambda: done.append(time.perf_counter()))
    started = time.perf_counter()
    change()  # type: ignore[operator]
    while not done:
        application.processEvents()
        time.sleep(0.001)
    panel.preview_updated.disconnect()
    return (done[0] - started) * 1000.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    application = QApplication.instance() or QApplication(sys.argv)
    with tempfile.TemporaryDirectory() as folder:
        bridge = EngineBridge(Path(folder) / "projects")
        bridge.start()
        panel = GradingPanel(bridge)
        rng = np.random.default_rng(1)
        frame = rng.integers(0, 256, (270, 480, 3), dtype=np.uint8)
        wait_for(panel, application, lambda: panel.set_frame(frame, shot_id="s"))
        cases = {
            "1 exposure": lambda i: panel.control(1, "exposure").spin.setValue(0.1 + 0.05 * i),
            "1 saturation": lambda i: panel.control(1, "saturation").spin.setValue(55 + i),
            "2 hue shift": lambda i: panel.control(2, "hue_shift").spin.setValue(10 + 5 * i),
            "3 look strength (teal-orange)": lambda i: panel.control(3, "strength").spin.setValue(
                0.5 + 0.05 * i
            ),
            "4 grain amount": lambda i: panel.control(4, "grain").spin.setValue(0.1 + 0.05 * i),
        }
        print(f"{'change':32} median ms   max ms   (n={args.repeats}, 480x270)")
        for name, change in cases.items():
            if name.startswith("3"):
                panel.reset_stage(1)
                panel.reset_stage(2)
                panel.load_lut(Path(app.__file__).parents[1] / "resources/looks/teal-orange.cube")
                while panel.grade().get("look") is None:
                    application.processEvents()
                    time.sleep(0.005)
            times = [
                wait_for(panel, application, lambda i=i, c=change: c(i))
                for i in range(args.repeats)
            ]
            print(f"{name:32} {statistics.median(times):9.1f} {max(times):8.1f}")
        bridge.shutdown()


if __name__ == "__main__":
    main()
