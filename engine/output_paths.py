"""Checks on the paths the user asks us to write, done before any work starts."""

from __future__ import annotations

import os
from pathlib import Path

from engine.errors import MediaInputError

__all__ = ["check_output_path"]


def check_output_path(path: Path | str, *, what: str, extensions: tuple[str, ...]) -> Path:
    """Check that ``path`` can be written: right extension, existing writable folder.

    Raises
    ------
    MediaInputError
        With a message naming the problem and what to do.
    """
    path = Path(path)
    if path.suffix.lower() not in extensions:
        raise MediaInputError(
            path, f"{what} must end in {' or '.join(extensions)} (got {path.suffix or 'none'!r})"
        )
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.exists():
        raise MediaInputError(
            path, f"the folder {parent} does not exist; create it or choose another {what} path"
        )
    if not parent.is_dir():
        raise MediaInputError(path, f"{parent} is not a folder")
    if path.is_dir():
        raise MediaInputError(path, f"is a folder; give a file name for the {what}")
    if not os.access(parent, os.W_OK):
        raise MediaInputError(path, f"the folder {parent} is not writable")
    return path
