"""PyInstaller entry point of both bundle executables.

``apex-director`` runs ``engine.cli:main`` and ``apex-director-gui`` runs ``app.main:main``;
they are one script (one PyInstaller analysis, half the build time) told apart by the
executable's name.
"""

import sys
from pathlib import Path


def _run() -> int:
    import multiprocessing

    # a frozen executable started as the GUI's stage process (spawn) runs that child here
    multiprocessing.freeze_support()
    name = Path(sys.executable if getattr(sys, "frozen", False) else sys.argv[0]).name
    if name.startswith("apex-director-gui"):
        from app.main import main as gui_main

        return gui_main()
    from engine.cli import main as cli_main

    return cli_main()


if __name__ == "__main__":
    sys.exit(_run())
