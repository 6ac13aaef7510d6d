"""``apex-director-gui``: start the desktop application."""

from __future__ import annotations

import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any


def main(argv: Sequence[str] | None = None) -> int:
    """Start the GUI; a project folder or a song given on the command line is opened.

    ``--smoke-test`` opens the main window, processes events for a second and exits 0
    (exit 1 when the window did not show): the packaged bundle's check that Qt, its
    plugins and the GUI load (``packaging/smoke_test.sh``; run it with
    ``QT_QPA_PLATFORM=offscreen`` on a machine without a display).  ``--smoke-test SONG``
    also makes a project of the song and waits for its analysis, which the app runs in a
    stage process (a spawned child: in a frozen bundle, the executable started again).
    """
    import time

    from PySide6.QtWidgets import QApplication

    from app.main_window import MainWindow

    args = list(argv if argv is not None else sys.argv)
    smoke_test = "--smoke-test" in args[1:]
    if smoke_test:
        args = [a for a in args if a != "--smoke-test"]
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    app = QApplication.instance() or QApplication(args)
    app.setApplicationName("APEX Director")
    app.setOrganizationName("APEX Director")
    window = MainWindow()
    window.show()
    if smoke_test:
        deadline = time.monotonic() + 1.0
        while time.monotonic() < deadline:
            app.processEvents()
            time.sleep(0.01)
        shown = window.isVisible()
        log = logging.getLogger(__name__)
        log.info("smoke test: main window shown=%s", shown)
        analysed = True
        if len(args) > 1:
            analysed = _smoke_analyse(app, window, Path(args[1]).expanduser(), log)
        window.close()
        app.processEvents()
        return 0 if shown and analysed else 1
    if len(args) > 1:
        window.drop_handler.handle([Path(args[1]).expanduser()])
    return int(app.exec())


def _smoke_analyse(app: Any, window: Any, song: Path, log: logging.Logger) -> bool:
    """Drop ``song`` on the window and wait (120 s at most) for its analysis."""
    import time

    results: list[Any] = []
    errors: list[str] = []
    window.bridge.analysis_ready.connect(results.append)
    window.bridge.error_occurred.connect(errors.append)
    window.drop_handler.handle([song])
    deadline = time.monotonic() + 120.0
    while not results and not errors and time.monotonic() < deadline:
        app.processEvents()
        time.sleep(0.01)
    if not results:
        log.error("smoke test: the song was not analysed: %s", errors or "timed out")
        return False
    log.info("smoke test: analysed %s, tempo %.1f BPM", song.name, results[0].tempo)
    return True


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
