"""``apex-director-gui``: start the desktop application."""

from __future__ import annotations

import logging
import sys
from collections.abc import Sequence


def main(argv: Sequence[str] | None = None) -> int:
    """Start the GUI; a project folder or a song given on the command line is opened.

    ``--smoke-test`` opens the main window, processes events for a second and exits 0
    (exit 1 when the window did not show): the packaged bundle's check that Qt, its
    plugins and the GUI load (``packaging/smoke_test.sh``; run it with
    ``QT_QPA_PLATFORM=offscreen`` on a machine without a display).
    """
    import time
    from pathlib import Path

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
        logging.getLogger(__name__).info("smoke test: main window shown=%s", shown)
        window.close()
        app.processEvents()
        return 0 if shown else 1
    if len(args) > 1:
        window.drop_handler.handle([Path(args[1]).expanduser()])
    return int(app.exec())


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
