"""Where the shipped data files (``resources/``, ``models/manifest.toml``) live.

The engine finds them in the same way whether it runs from a source checkout, from an
installed wheel, or from the PyInstaller bundle (``packaging/``):

1. ``APEX_DIRECTOR_DATA`` in the environment: a folder holding ``resources/`` (an override
   for packagers and tests);
2. frozen by PyInstaller: the bundle's data folder (``sys._MEIPASS``), where
   ``packaging/apex_director.spec`` puts ``resources/`` and ``models/manifest.toml``;
3. a source checkout or an editable install: the repository root, one level above ``engine/``;
4. an installed wheel: ``<prefix>/share/apex-director/``, where ``pyproject.toml``'s
   ``[tool.setuptools.data-files]`` installs them.

Nothing here is imported eagerly elsewhere and nothing here does work at import time.
"""

from __future__ import annotations

import os
import sys
from functools import lru_cache
from pathlib import Path

from engine.errors import AssetError

__all__ = ["DATA_ENV", "check_data_root", "data_root", "models_catalogue_dir", "resources_dir"]

#: Environment variable naming a folder that holds ``resources/`` (overrides the search).
DATA_ENV = "APEX_DIRECTOR_DATA"


def _candidates() -> list[Path]:
    """Folders that may hold ``resources/``, most specific first."""
    found: list[Path] = []
    override = os.environ.get(DATA_ENV)
    if override:
        found.append(Path(override).expanduser())
    meipass = getattr(sys, "_MEIPASS", None)
    if getattr(sys, "frozen", False) and meipass:
        found.append(Path(meipass))
    found.append(Path(__file__).resolve().parents[1])
    for prefix in dict.fromkeys((sys.prefix, sys.base_prefix)):
        found.append(Path(prefix) / "share" / "apex-director")
    return found


@lru_cache(maxsize=1)
def data_root() -> Path:
    """The folder that holds ``resources/`` (and ``models/manifest.toml``).

    Module-level constants (``LOOKS_DIR``, ``STYLES_DIR``, ``SD_RESOURCES``) are computed
    from it at import time, so it never raises: with no candidate holding ``resources/``
    it returns the source-checkout location, and the code that reads a missing file there
    raises its own typed error.  :func:`check_data_root` says what is wrong.

    Returns
    -------
    Path
        The first of the candidates described in the module docstring that has a
        ``resources/`` folder.
    """
    candidates = _candidates()
    for root in candidates:
        if (root / "resources").is_dir():
            return root
    return Path(__file__).resolve().parents[1]


def check_data_root() -> Path:
    """:func:`data_root`, refusing an installation without ``resources/``.

    Raises
    ------
    AssetError
        When no candidate folder has ``resources/``: the installation is incomplete.
    """
    candidates = _candidates()
    for root in candidates:
        if (root / "resources").is_dir():
            return root
    tried = ", ".join(str(c) for c in candidates)
    raise AssetError(
        f"the shipped resources/ folder was not found (looked in {tried}); reinstall "
        f"APEX Director or set {DATA_ENV} to the folder that holds resources/",
        asset_path=candidates[0] / "resources",
        operation="locate",
    )


def resources_dir(*parts: str) -> Path:
    """``resources/`` or a path inside it, e.g. ``resources_dir("looks")``.

    Parameters
    ----------
    *parts : str
        Path components below ``resources/``.

    Returns
    -------
    Path
        The path (not checked for existence beyond ``resources/`` itself).
    """
    return data_root().joinpath("resources", *parts)


def models_catalogue_dir() -> Path:
    """The folder with the shipped ``manifest.toml`` (``models/`` next to ``resources/``)."""
    return data_root() / "models"
