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

import engine.api  # noqa: E402
from engine import __version__  # noqa: E402

# engine.api imports its project/asset classes lazily (PEP 562 ``__getattr__``) so that
# ``import engine.api`` stays light; autodoc finds members with ``dir()``, so load every
# name of ``__all__`` here (in the docs build only) for the reference to include them all.
for _name in engine.api.__all__:
    setattr(engine.api, _name, getattr(engine.api, _name))

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


def _drop_builtin_docstrings(  # noqa: PLR0917 (Sphinx passes these positionally)
    app: object, what: str, name: str, obj: object, options: object, lines: list[str]
) -> None:
    # A constant (a str, tuple or dict) has its type's docstring ("str(object='') -> str
    # ..."); api.md describes each constant itself.
    if what == "data" and getattr(obj, "__doc__", None) == getattr(type(obj), "__doc__", None):
        lines.clear()


def setup(app: object) -> None:
    app.connect("source-read", _add_optional_pages)  # type: ignore[attr-defined]
    app.connect("autodoc-process-docstring", _drop_builtin_docstrings)  # type: ignore[attr-defined]
