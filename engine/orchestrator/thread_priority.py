"""Lower the CPU priority of the engine's worker threads, so a busy render never starves
the GUI thread of a CPU.

On Linux the nice value is a property of each thread, and threads a thread starts (the
x264 encoder's, PyAV's, numpy's) inherit it.  A worker that renders at nice 5 gets about a
third of the CPU share of the GUI thread at nice 0 when both want a core, and all of it
when the GUI is idle, so a render is no slower unless the user is actually working.

Elsewhere (macOS, Windows) ``setpriority`` on a thread id is not available and the call
does nothing; Qt's own thread priorities are not used because the engine has no Qt.
"""

from __future__ import annotations

import logging
import os
import sys
import threading

__all__ = ["current_thread_nice", "lower_current_thread_priority"]

log = logging.getLogger(__name__)


def lower_current_thread_priority(nice: int) -> bool:
    """Make the calling thread's nice value at least ``nice`` (Linux only).

    Parameters
    ----------
    nice : int
        The nice value to reach, 0..19; 0 leaves the thread as it is.  A thread that is
        already nicer is left alone (raising priority back would need privileges).

    Returns
    -------
    bool
        True when the thread now runs at ``nice`` or nicer.
    """
    if nice <= 0 or not sys.platform.startswith("linux"):
        return False
    tid = threading.get_native_id()
    try:
        current = os.getpriority(os.PRIO_PROCESS, tid)
        if current < nice:
            os.setpriority(os.PRIO_PROCESS, tid, nice)
    except OSError as err:  # a sandbox that forbids it: run at normal priority
        log.debug("could not lower the priority of thread %d: %s", tid, err)
        return False
    return True


def current_thread_nice() -> int | None:
    """The calling thread's nice value on Linux; None elsewhere."""
    if not sys.platform.startswith("linux"):
        return None
    return os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
