"""Sphinx configuration for the APEX Director documentation (``make docs``).

The pages are Markdown (MyST); the API reference is generated from the numpydoc
docstrings of everything in ``engine.api.__all__``.  Builds offline; ``make docs``
runs it with ``-W`` so any warning fails the build.
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from engine import __version__  # noqa: E402

project = "APEX Director"
author = "APEX Director contributors"
release = __version__
version = __version__

extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
]
source_suffix = {".md": "markdown"}
root_doc = "index"
exclude_patterns = ["_build", "images/*.py"]

myst_heading_anchors = 3
myst_enable_extensions = ["colon_fence"]

napoleon_google_docstring = False
napoleon_numpy_docstring = True
napoleon_use_rtype = False

autodoc_member_order = "bysource"
autodoc_typehints = "description"
autodoc_default_options = {"members": True, "show-inheritance": True}

html_theme = "alabaster"
html_title = f"APEX Director {__version__}"

# Pages other work adds when it lands (docs/security.md) join the index's developer table
# of contents if they exist, so the build neither warns about a missing page nor about a
# page in no toctree.
OPTIONAL_PAGES = ("security",)


def _add_optional_pages(app: object, docname: str, source: list[str]) -> None:
    if docname != "index":
        return
    present = [name for name in OPTIONAL_PAGES if (ROOT / "docs" / f"{name}.md").is_file()]
    if present:
        source[0] = source[0].replace("\npackaging\n", "\npackaging\n" + "\n".join(present) + "\n")


def setup(app: object) -> None:
    app.connect("source-read", _add_optional_pages)  # type: ignore[attr-defined]
