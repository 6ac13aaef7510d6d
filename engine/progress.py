"""Terminal progress for the CLI: a bar per stage on a terminal, plain lines otherwise."""

from __future__ import annotations

import logging
import sys
import time
from typing import TextIO

from engine.events import JobEvent, JobProgress

__all__ = ["ProgressPrinter"]

log = logging.getLogger("engine.progress")


class ProgressPrinter:
    """An :data:`~engine.events.EventSink` that draws progress.

    On a terminal each stage gets one bar that redraws in place; elsewhere (CI,
    pipes, log files) a line is logged when a stage starts, every quarter, and
    when it ends.
    """

    def __init__(self, stream: TextIO | None = None, *, width: int = 28) -> None:
        self.stream = stream or sys.stderr
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.width = width
        self._stage = ""
        self._last_quarter = -1
        self._last_draw = 0.0

    def __call__(self, event: JobEvent) -> None:
        if not isinstance(event, JobProgress):
            return
        if event.stage != self._stage:
            self.finish()
            self._stage = event.stage
            self._last_quarter = -1
        fraction = 0.0 if event.total <= 0 else min(1.0, event.step / event.total)
        if self.tty:
            now = time.monotonic()
            if fraction < 1.0 and now - self._last_draw < 0.1:
                return
            self._last_draw = now
            filled = round(fraction * self.width)
            bar = "█" * filled + "░" * (self.width - filled)
            text = f"\r{event.stage:<9} {bar} {fraction * 100:5.1f}%  {event.message[:40]:<40}"
            self.stream.write(text)
            self.stream.flush()
        else:
            quarter = int(fraction * 4)
            if quarter != self._last_quarter:
                self._last_quarter = quarter
                log.info("%s: %3.0f%% %s", event.stage, fraction * 100, event.message)

    def finish(self) -> None:
        if self.tty and self._stage:
            self.stream.write("\n")
            self.stream.flush()
        self._stage = ""
