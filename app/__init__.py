"""APEX Director's desktop GUI: a thin PySide6 shell over :mod:`engine.api`."""
