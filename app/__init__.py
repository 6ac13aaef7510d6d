"""APEX Director's desktop GUI: a thin PySide6 shell over :mod:`engine.api`."""

from app.qt_compat import protect_none as _protect_none

# PySide6 6.12 on Python 3.11 leaks references to None from every void call (see
# app/qt_compat.py); without this the GUI aborts after a few thousand Qt calls.
_protect_none()
