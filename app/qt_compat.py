"""Work around a reference-count bug of PySide6 6.12 on Python 3.11.

PySide6 6.12.0's bindings return ``None`` from every void method (``QPainter.fillRect``,
``QWidget.update``, ``QTimer.setInterval``...) without taking a reference to it, so each
such call drops ``None``'s reference count by one.  On Python 3.12 and later ``None`` is
immortal (PEP 683) and nothing happens; on 3.11 the count starts near a few thousand
and the interpreter aborts with ``Fatal Python error: none_dealloc`` after that many
calls, which a timeline repaint reaches in seconds.  Reproduce with::

    import sys
    from PySide6.QtCore import QObject
    o = QObject(); before = sys.getrefcount(None)
    for _ in range(1000): o.setObjectName("x")
    print(sys.getrefcount(None) - before)   # -1000 with the bug, 0 without

:func:`protect_none` gives ``None`` a reference count so large that no session can
drain it, which is what Python 3.12 does for every immortal object.  It is applied when
the ``app`` package is imported, only on Python < 3.12 and only when the bug is there.
Remove this module once PySide6 is pinned to a release without the bug.
"""

from __future__ import annotations

import ctypes
import logging
import sys

__all__ = ["none_refcount_leaks", "protect_none"]

log = logging.getLogger(__name__)

# 2**40 references: at a million leaked references a second, twelve days of work.
_RESERVE = 1 << 40


def none_refcount_leaks() -> bool:
    """True when a PySide6 void call takes a reference away from ``None``."""
    if sys.version_info >= (3, 12):
        return False
    from PySide6.QtCore import QObject

    probe = QObject()
    before = sys.getrefcount(None)
    for _ in range(10):
        probe.setObjectName("probe")
    return sys.getrefcount(None) < before


def protect_none() -> bool:
    """Make ``None`` effectively immortal where PySide6 leaks its references.

    Returns
    -------
    bool
        True when the reserve was added (Python < 3.12 with the bug present).
    """
    if not none_refcount_leaks():
        return False
    refcount = ctypes.c_ssize_t.from_address(id(None))
    if refcount.value < _RESERVE:
        refcount.value += _RESERVE
        log.info("PySide6 drops references to None; gave None a reserve of 2**40")
    return True
