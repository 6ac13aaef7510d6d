"""``apex-director-gui``: start the desktop application."""

from __future__ import annotations

import logging
import sys
from collections.abc import Sequence


def main(argv: Sequence[str] | None = None) -> int:
    """Start the GUI; a project folder or a song given on the command line is opened."""
    from pathlib import Path

    from PySide6.QtWidgets import QApplication

    from app.main_window import MainWindow

    args = list(argv if argv is not None else sys.argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    app = QApplication.instance() or QApplication(args)
    app.setApplicationName("APEX Director")
    app.setOrganizationName("APEX Director")
    window = MainWindow()
    window.show()
    if len(args) > 1:
        window.drop_handler.handle([Path(args[1]).expanduser()])
    return int(app.exec())


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
