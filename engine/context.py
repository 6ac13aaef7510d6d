"""The context object every pipeline stage receives: progress, cancellation, logger."""

from __future__ import annotations

import logging
import threading
import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from engine.errors import CancelledError
from engine.events import EventSink, JobEvent, JobProgress

if TYPE_CHECKING:
    from multiprocessing.synchronize import Event as ProcessEvent

__all__ = ["StageContext"]


def _discard(event: JobEvent) -> None:
    del event


@dataclass
class StageContext:
    """Passed to each stage instead of globals.

    Attributes
    ----------
    job_id : str
    sink : EventSink
        Receives every event (progress bars, the GUI bridge, tests).
    cancel_event : threading.Event or multiprocessing.Event
        Set it from any thread to cancel; stages call :meth:`check_cancelled`
        between units of work.  In a stage process (engine/orchestrator/stage_process.py)
        it is a multiprocessing ``Event`` the parent sets.
    logger : logging.Logger
    """

    job_id: str = field(default_factory=lambda: uuid.uuid4().hex[:12])
    sink: EventSink = _discard
    cancel_event: threading.Event | ProcessEvent = field(default_factory=threading.Event)
    logger: logging.Logger = field(default_factory=lambda: logging.getLogger("engine"))
    stage: str = ""

    def emit(self, event: JobEvent) -> None:
        self.sink(event)

    def progress(self, step: int, total: int, message: str = "", **extra: object) -> None:
        self.check_cancelled()
        self.sink(
            JobProgress(
                job_id=self.job_id,
                stage=self.stage,
                step=step,
                total=total,
                message=message,
                **extra,  # type: ignore[arg-type]
            )
        )

    def check_cancelled(self) -> None:
        """Raise :class:`CancelledError` if the user asked to stop."""
        if self.cancel_event.is_set():
            raise CancelledError(f"cancelled during {self.stage or 'the job'}")
