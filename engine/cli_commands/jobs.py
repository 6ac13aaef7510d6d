"""``apex-director jobs list|show|cancel|retry``: the job queue of a project.

The queue is in the project database, so these work while another process runs the
jobs: a cancel is seen by its orchestrator at its next poll, and the running job stops
at its next cancel check (docs/orchestrator.md).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
from pathlib import Path
from typing import Any

__all__ = ["register", "run"]

_STATES = ("queued", "running", "succeeded", "failed", "cancelled", "quarantined")


def register(subparsers: Any) -> None:
    """Add the ``jobs`` command and its sub-commands."""
    parser = subparsers.add_parser(
        "jobs",
        help="list, show, cancel or retry the jobs of a project",
        description="The jobs of a project's queue (renders run as jobs: analyse, plan, "
        "generate, assemble, qa, render).  See docs/orchestrator.md.",
    )
    sub = parser.add_subparsers(dest="jobs_command", metavar="ACTION", required=True)
    listing = sub.add_parser("list", help="list jobs, newest first")
    listing.add_argument("--state", choices=_STATES, default=None, help="only jobs in this state")
    listing.add_argument("--limit", type=int, default=50, help="at most this many (default 50)")
    listing.add_argument("--json", action="store_true", help="print JSON")
    show = sub.add_parser("show", help="everything about one job")
    show.add_argument("job", help="job id (or a unique start of one)")
    cancel = sub.add_parser("cancel", help="cancel a queued or running job and its dependents")
    cancel.add_argument("job", help="job id (or a unique start of one)")
    retry = sub.add_parser(
        "retry", help="queue a failed, cancelled or quarantined job (and its dependents) again"
    )
    retry.add_argument("job", help="job id (or a unique start of one)")
    for action in (listing, show, cancel, retry):
        action.add_argument(
            "--project",
            type=Path,
            default=Path("."),
            metavar="DIR",
            help="the project folder (default: here)",
        )
    parser.set_defaults(handler=run)


def _time(value: float | None) -> str:
    if value is None:
        return "-"
    return dt.datetime.fromtimestamp(value).strftime("%Y-%m-%d %H:%M:%S")


def _resolve(queue: Any, text: str) -> str:
    from engine.errors import ParameterError

    rows = queue.database.execute_sql(
        "SELECT id FROM job WHERE id = ? OR id LIKE ? ESCAPE '\\' LIMIT 3",
        (text, text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"),
    ).fetchall()
    ids = [row[0] for row in rows]
    if text in ids:
        return text
    if len(ids) == 1:
        return str(ids[0])
    if not ids:
        raise ParameterError("job", text, "the id of a job of this project (see `jobs list`)")
    raise ParameterError("job", text, f"a unique start of a job id (it matches {', '.join(ids)})")


def run(args: argparse.Namespace) -> int:
    """Run ``jobs ACTION``; returns the exit code."""
    from engine.assets.project import Project
    from engine.orchestrator.job_queue import JobQueue

    with Project.open(args.project) as project:
        queue = JobQueue(project.database)
        if args.jobs_command == "list":
            jobs = queue.jobs(state=args.state, limit=max(1, args.limit))
            if args.json:
                print(json.dumps([job.to_dict() for job in jobs], indent=2, default=str))
                return 0
            counts = queue.counts()
            print(", ".join(f"{count} {state}" for state, count in counts.items() if count))
            for job in jobs:
                print(
                    f"{job.id:<40} {job.kind:<9} {job.state:<11} "
                    f"attempt {job.attempts}/{job.max_attempts}  {_time(job.updated_at)}"
                )
            return 0
        job_id = _resolve(queue, args.job)
        if args.jobs_command == "show":
            print(json.dumps(queue.get(job_id).to_dict(), indent=2, default=str))
            return 0
        if args.jobs_command == "cancel":
            if queue.cancel(job_id):
                print(f"cancelled {job_id} (and the jobs that depend on it)")
                return 0
            print(f"{job_id} had already finished ({queue.get(job_id).state}); nothing to cancel")
            return 1
        job = queue.retry_job(job_id)
        print(f"queued {job.id} again; a running orchestrator picks it up")
        return 0
