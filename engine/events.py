"""Typed, immutable job events.  The CLI turns them into progress bars; the GUI's
single bridge object turns them into Qt signals on the GUI thread."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

__all__ = [
    "EventSink",
    "JobCancelled",
    "JobEvent",
    "JobFailed",
    "JobFinished",
    "JobProgress",
    "JobQueued",
    "JobStarted",
]


@dataclass(frozen=True, kw_only=True)
class JobEvent:
    job_id: str
    timestamp: float = field(default_factory=time.time)


@dataclass(frozen=True, kw_only=True)
class JobQueued(JobEvent):
    kind: str


@dataclass(frozen=True, kw_only=True)
class JobStarted(JobEvent):
    kind: str


@dataclass(frozen=True, kw_only=True)
class JobProgress(JobEvent):
    """``step`` of ``total`` done in ``stage``; ``preview_path`` may show the latest result."""

    stage: str
    step: int
    total: int
    message: str = ""
    preview_path: Path | None = None


@dataclass(frozen=True, kw_only=True)
class JobFinished(JobEvent):
    result: dict[str, object]


@dataclass(frozen=True, kw_only=True)
class JobFailed(JobEvent):
    error: str
    error_type: str


@dataclass(frozen=True, kw_only=True)
class JobCancelled(JobEvent):
    stage: str = ""


EventSink = Callable[[JobEvent], None]
