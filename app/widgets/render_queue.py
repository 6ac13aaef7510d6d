"""The render queue: the project's persistent job queue, with progress, ETA, cancel,
retry, open output and the QC verdict.

It reads the queue from the orchestrator (so jobs from before a restart appear) and
follows the bridge's job signals.  A render is a chain of six jobs
(``render-<id>-analyse`` ... ``render-<id>-render``); it is shown as one row whose
progress counts the stages done plus the running stage's own progress.  Any other job
(an ``analyse`` of a dropped song, say) is a row of its own.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PySide6.QtCore import QUrl, Signal
from PySide6.QtGui import QDesktopServices
from PySide6.QtWidgets import (
    QHBoxLayout,
    QHeaderView,
    QProgressBar,
    QPushButton,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

from app.engine_bridge import EngineBridge
from engine import api

__all__ = ["RENDER_STAGES", "QueueRow", "RenderQueueWidget"]

# The stages of a render, in order (engine.orchestrator.render_jobs names them so).
RENDER_STAGES = ("analyse", "plan", "generate", "assemble", "qa", "render")
_RENDER_JOB = re.compile(r"^(render-[0-9a-f]+(?:-\d+)?)-(" + "|".join(RENDER_STAGES) + r")$")
_FINISHED = frozenset({"succeeded", "failed", "cancelled", "quarantined"})
_COLUMNS = ("Job", "State", "Progress", "ETA", "QC", "Output")


def group_of(job_id: str) -> tuple[str, str | None]:
    """The row a job belongs to and its render stage (``None`` for a lone job)."""
    match = _RENDER_JOB.match(job_id)
    if match is None:
        return job_id, None
    return match.group(1), match.group(2)


@dataclass
class QueueRow:
    """What one row shows: a render chain or a lone job."""

    key: str
    kind: str
    states: dict[str, str] = field(default_factory=dict)  # job id -> state
    fractions: dict[str, float] = field(default_factory=dict)  # running job -> 0..1
    errors: dict[str, str] = field(default_factory=dict)
    message: str = ""
    title: str = ""  # "Render draft · song.wav", once the queue has been read
    started_at: float | None = None
    finished_at: float | None = None
    result: dict[str, Any] | None = None

    @property
    def is_render(self) -> bool:
        return self.kind == "render"

    def job_ids(self) -> list[str]:
        if self.is_render:
            return [f"{self.key}-{stage}" for stage in RENDER_STAGES]
        return [self.key]

    @property
    def state(self) -> str:
        states = [self.states.get(j, "queued") for j in self.job_ids()]
        for bad in ("failed", "quarantined", "cancelled"):
            if bad in states:
                return bad
        if all(s == "succeeded" for s in states):
            return "succeeded"
        if "running" in states or any(s == "succeeded" for s in states):
            return "running"
        return "queued"

    @property
    def progress(self) -> float:
        """0..1 over the whole chain."""
        ids = self.job_ids()
        done = 0.0
        for job_id in ids:
            state = self.states.get(job_id, "queued")
            if state == "succeeded":
                done += 1.0
            elif state == "running":
                done += min(max(self.fractions.get(job_id, 0.0), 0.0), 1.0)
        return done / len(ids)

    def eta_s(self, now: float) -> float | None:
        """Seconds left, from the rate so far (``None`` until there is one)."""
        if self.state != "running" or self.started_at is None:
            return None
        progress = self.progress
        if progress <= 0.02:
            return None
        elapsed = max(now - self.started_at, 0.0)
        return elapsed * (1.0 - progress) / progress

    @property
    def report(self) -> dict[str, Any]:
        if not self.result:
            return {}
        report = self.result.get("report", self.result)
        return report if isinstance(report, dict) else {}

    @property
    def qc(self) -> tuple[bool | None, str]:
        """``(passed, summary)`` of the render's delivery QC (``None``: not known)."""
        qc = self.report.get("qc")
        if not isinstance(qc, dict):
            return None, ""
        return bool(qc.get("passed")), str(qc.get("summary", ""))

    @property
    def output(self) -> Path | None:
        output = self.report.get("output")
        if isinstance(output, dict) and output.get("path"):
            return Path(str(output["path"]))
        return None

    def actionable(self, action: str) -> str | None:
        """The job to act on for ``cancel`` or ``retry`` (``None``: nothing to do)."""
        for job_id in self.job_ids():
            state = self.states.get(job_id, "queued")
            if action == "cancel" and state not in _FINISHED:
                return job_id
            if action == "retry" and state in ("failed", "cancelled", "quarantined"):
                return job_id
        return None


def _format_eta(seconds: float | None) -> str:
    if seconds is None:
        return ""
    seconds = round(seconds)
    return f"{seconds // 60}:{seconds % 60:02d}" if seconds >= 60 else f"{seconds} s"


class RenderQueueWidget(QWidget):
    """The render queue panel.

    Parameters
    ----------
    bridge : EngineBridge
        The application's engine bridge.

    Signals
    -------
    row_changed (str)
        The key of a row that changed (for tests and the status bar).
    output_opened (object)
        The :class:`~pathlib.Path` of an output the user opened.
    """

    row_changed = Signal(str)
    output_opened = Signal(object)

    def __init__(self, bridge: EngineBridge, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("renderQueue")
        self.bridge = bridge
        self.rows: dict[str, QueueRow] = {}
        # job id -> (time, state) of the newest event: a queue read that started before
        # an event arrived must not put the job back to the state it had then
        self._seen: dict[str, tuple[float, str]] = {}
        self._items: dict[str, QTreeWidgetItem] = {}
        self._bars: dict[str, QProgressBar] = {}
        self.open_externally = True  # tests turn it off: no desktop viewer starts

        self.tree = QTreeWidget(self)
        self.tree.setObjectName("renderQueueTree")
        self.tree.setColumnCount(len(_COLUMNS))
        self.tree.setHeaderLabels(list(_COLUMNS))
        self.tree.setRootIsDecorated(False)
        self.tree.setUniformRowHeights(True)
        header = self.tree.header()
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        for column in range(1, len(_COLUMNS)):
            header.setSectionResizeMode(column, QHeaderView.ResizeMode.ResizeToContents)
        self.tree.itemSelectionChanged.connect(self._update_buttons)
        self.tree.itemDoubleClicked.connect(lambda *_: self.open_output())

        self.render_button = QPushButton("Render draft", self)
        self.render_button.setObjectName("renderDraft")
        self.render_button.setToolTip("Queue a draft render of the project (Ctrl+R)")
        self.render_button.clicked.connect(lambda: self.bridge.render(preset="draft"))
        self.cancel_button = QPushButton("Cancel", self)
        self.cancel_button.setObjectName("cancelJob")
        self.cancel_button.clicked.connect(self.cancel_selected)
        self.retry_button = QPushButton("Retry", self)
        self.retry_button.setObjectName("retryJob")
        self.retry_button.clicked.connect(self.retry_selected)
        self.open_button = QPushButton("Open output", self)
        self.open_button.setObjectName("openOutput")
        self.open_button.clicked.connect(self.open_output)

        buttons = QHBoxLayout()
        for button in (self.render_button, self.cancel_button, self.retry_button):
            buttons.addWidget(button)
        buttons.addStretch(1)
        buttons.addWidget(self.open_button)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addLayout(buttons)
        layout.addWidget(self.tree)

        bridge.job_queued.connect(self._on_queued)
        bridge.job_started.connect(self._on_started)
        bridge.job_progress.connect(self._on_progress)
        bridge.job_finished.connect(self._on_finished)
        bridge.job_failed.connect(self._on_failed)
        bridge.job_cancelled.connect(self._on_cancelled)
        bridge.project_opened.connect(self._on_project_opened)
        bridge.project_closed.connect(self.clear)
        # a new render's row gets its title (preset, song) from the queue
        bridge.render_queued.connect(lambda _job_id: self.refresh())
        self._update_buttons()

    # -- the public API ---------------------------------------------------------------

    def refresh(self) -> None:
        """Reload the persistent queue from the project."""
        self.bridge.list_jobs(self._load)

    def _on_project_opened(self, _info: object) -> None:
        self.refresh()
        self._update_buttons()

    def clear(self) -> None:
        self._seen.clear()
        self._clear_rows()

    def _clear_rows(self) -> None:
        self.rows.clear()
        self._items.clear()
        self._bars.clear()
        self.tree.clear()
        self._update_buttons()

    def select(self, key: str) -> None:
        item = self._items.get(key)
        if item is not None:
            self.tree.setCurrentItem(item)

    def selected_row(self) -> QueueRow | None:
        item = self.tree.currentItem()
        if item is None:
            return None
        return self.rows.get(item.data(0, 0x0100))  # Qt.UserRole

    def cancel_selected(self) -> None:
        row = self.selected_row()
        job_id = row.actionable("cancel") if row else None
        if job_id is not None:
            self.bridge.cancel_job(job_id)

    def retry_selected(self) -> None:
        row = self.selected_row()
        job_id = row.actionable("retry") if row else None
        if job_id is not None:
            if row is not None:
                row.errors.clear()
                row.started_at = None
            # the engine queues the job's dependents again too: reload the rows
            self.bridge.retry_job(job_id, lambda _job: self.refresh())

    def open_output(self) -> None:
        row = self.selected_row()
        path = row.output if row else None
        if path is None:
            return
        if not path.exists():
            self.bridge.error_occurred.emit(f"{path} is not there any more (moved or deleted?)")
            return
        self.output_opened.emit(path)
        if self.open_externally:
            QDesktopServices.openUrl(QUrl.fromLocalFile(str(path)))

    # -- loading and events -----------------------------------------------------------

    def _row(self, job_id: str, kind: str) -> tuple[QueueRow, str | None]:
        key, stage = group_of(job_id)
        row = self.rows.get(key)
        if row is None:
            row = QueueRow(key=key, kind="render" if stage is not None else kind)
            self.rows[key] = row
        return row, stage

    def _load(self, jobs: list[dict[str, Any]]) -> None:
        selected = self.selected_row()
        previous = dict(self.rows)
        self._clear_rows()
        for job in sorted(jobs, key=lambda j: j["created_at"]):
            row, stage = self._row(job["id"], job["kind"])
            seen = self._seen.get(job["id"])
            newer = seen is not None and seen[0] > float(job.get("updated_at") or 0.0)
            row.states[job["id"]] = seen[1] if newer else job["state"]
            old = previous.get(row.key)
            if old is not None and job["id"] in old.fractions:
                row.fractions[job["id"]] = old.fractions[job["id"]]
                row.message = old.message
            if job.get("error"):
                row.errors[job["id"]] = str(job["error"])
            spec = (job.get("payload") or {}).get("render")
            if isinstance(spec, dict) and not row.title:
                output = Path(str(spec.get("output_path", ""))).name
                row.title = f"Render {spec.get('preset', '')} · {output}"
            if job.get("started_at") and (row.started_at is None):
                row.started_at = float(job["started_at"])
            if stage in (None, "render") and job.get("result"):
                row.result = job["result"]
            if job.get("finished_at"):
                row.finished_at = float(job["finished_at"])
        for key in self.rows:
            self._paint(key)
        if selected is not None:
            self.select(selected.key)

    def _note(self, event: api.JobEvent, state: str) -> None:
        self._seen[event.job_id] = (event.timestamp, state)

    def _on_queued(self, event: api.JobQueued) -> None:
        self._note(event, "queued")
        row, _ = self._row(event.job_id, event.kind)
        row.states[event.job_id] = "queued"
        row.fractions.pop(event.job_id, None)
        row.errors.pop(event.job_id, None)
        self._paint(row.key)

    def _on_started(self, event: api.JobStarted) -> None:
        self._note(event, "running")
        row, _ = self._row(event.job_id, event.kind)
        row.states[event.job_id] = "running"
        if row.started_at is None:
            row.started_at = event.timestamp
        self._paint(row.key)

    def _on_progress(self, event: api.JobProgress) -> None:
        row, stage = self._row(event.job_id, "job")
        # A render's stage job replays the earlier stages from their caches (their own
        # progress restarts at 0): only its own stage counts, and it never goes back.
        if event.total > 0 and stage in (None, event.stage):
            fraction = event.step / event.total
            row.fractions[event.job_id] = max(row.fractions.get(event.job_id, 0.0), fraction)
        row.message = f"{event.stage}: {event.message}" if event.message else event.stage
        if row.states.get(event.job_id, "queued") == "queued":
            row.states[event.job_id] = "running"
            self._note(event, "running")
        self._paint(row.key)

    def _on_finished(self, event: api.JobFinished) -> None:
        self._note(event, "succeeded")
        row, stage = self._row(event.job_id, "job")
        row.states[event.job_id] = "succeeded"
        row.fractions.pop(event.job_id, None)
        if stage in (None, "render"):
            row.result = dict(event.result)
            row.finished_at = event.timestamp
        self._paint(row.key)

    def _on_failed(self, event: api.JobFailed) -> None:
        self._note(event, "failed")
        row, _ = self._row(event.job_id, "job")
        row.states[event.job_id] = "failed"
        row.errors[event.job_id] = event.error
        self._paint(row.key)

    def _on_cancelled(self, event: api.JobCancelled) -> None:
        self._note(event, "cancelled")
        row, _ = self._row(event.job_id, "job")
        row.states[event.job_id] = "cancelled"
        self._paint(row.key)

    # -- painting ---------------------------------------------------------------------

    def _paint(self, key: str) -> None:
        row = self.rows[key]
        item = self._items.get(key)
        if item is None:
            item = QTreeWidgetItem()
            item.setData(0, 0x0100, key)
            self.tree.insertTopLevelItem(0, item)
            bar = QProgressBar(self.tree)
            bar.setRange(0, 1000)
            bar.setMaximumHeight(16)
            bar.setMinimumWidth(120)
            self.tree.setItemWidget(item, 2, bar)
            self._items[key] = item
            self._bars[key] = bar
        state = row.state
        title = row.title or (
            f"Render {key.removeprefix('render-')[:8]}" if row.is_render else row.kind
        )
        item.setText(0, title)
        item.setToolTip(0, key)
        error = next(iter(row.errors.values()), "")
        item.setText(1, state if state != "running" or not row.message else row.message[:40])
        item.setToolTip(1, error or row.message)
        bar = self._bars[key]
        bar.setValue(round(row.progress * 1000))
        bar.setFormat(f"{row.progress * 100:.0f} %")
        item.setText(3, _format_eta(row.eta_s(time.time())))
        passed, summary = row.qc
        item.setText(4, "" if passed is None else ("passed" if passed else "FAILED"))
        item.setToolTip(4, summary)
        output = row.output
        item.setText(5, output.name if output else (error[:60] if error else ""))
        item.setToolTip(5, str(output) if output else error)
        self._update_buttons()
        self.row_changed.emit(key)

    def _update_buttons(self) -> None:
        row = self.selected_row()
        self.cancel_button.setEnabled(bool(row and row.actionable("cancel")))
        self.retry_button.setEnabled(bool(row and row.actionable("retry")))
        self.open_button.setEnabled(bool(row and row.output))
        self.render_button.setEnabled(self.bridge.project is not None)

    def active_count(self) -> int:
        """Rows queued or running (the status bar shows it)."""
        return sum(row.state in ("queued", "running") for row in self.rows.values())
