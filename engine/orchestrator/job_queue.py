"""The job queue: jobs in the project database, so a crash or SIGKILL loses none.

A job has a kind (``analyse``, ``plan``, ``generate``, ``upscale``, ``assemble``, ``qa``,
``render``...), a JSON payload, a priority (higher first, then first come first served)
and the ids of the jobs it depends on; it is claimed only when all of them succeeded.

States::

    queued ──claim──► running ──complete──► succeeded
      ▲                  │ fail: attempts left ──► queued (not before next_attempt_at:
      │                  │                          exponential backoff with jitter)
      │                  │ fail: no attempts left ──► failed (dependents fail too)
      │                  │ the worker died (found by recover_interrupted):
      │                  │     first time ──► queued;  second time ──► quarantined
      └──── retry ◄──────┴── cancel ──► cancelled (dependents cancelled too)

Quarantine keeps a job that crashed the worker twice (a model that segfaults, an input
that exhausts memory) from crashing it a third time; ``retry`` puts it back on request.
Every change is one ``BEGIN IMMEDIATE`` transaction, so several worker processes can
share one queue.  :class:`~engine.orchestrator.orchestrator.APEXOrchestrator` runs
workers over this queue.
"""

from __future__ import annotations

import json
import logging
import os
import random
import socket
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from engine.errors import ParameterError
from engine.storage import Models, ProjectDatabase, bind_models

__all__ = [
    "CANCELLED",
    "FAILED",
    "JOB_STATES",
    "QUARANTINED",
    "QUEUED",
    "RUNNING",
    "SUCCEEDED",
    "Job",
    "JobQueue",
    "RetryPolicy",
    "worker_id",
]

log = logging.getLogger(__name__)

QUEUED, RUNNING, SUCCEEDED, FAILED, CANCELLED, QUARANTINED = (
    "queued",
    "running",
    "succeeded",
    "failed",
    "cancelled",
    "quarantined",
)
JOB_STATES = (QUEUED, RUNNING, SUCCEEDED, FAILED, CANCELLED, QUARANTINED)
_FINISHED = (SUCCEEDED, FAILED, CANCELLED, QUARANTINED)


def worker_id() -> str:
    """An id for this process as a worker: ``host:pid:random``."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def _pid_alive(worker: str) -> bool:
    """Whether the process behind a worker id of this host still runs."""
    host, _, rest = worker.partition(":")
    pid_text = rest.split(":", 1)[0]
    if host != socket.gethostname() or not pid_text.isdigit():
        return True  # another machine's worker: not ours to judge
    try:
        os.kill(int(pid_text), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@dataclass(frozen=True, kw_only=True)
class RetryPolicy:
    """Retries with exponential backoff and jitter.

    The n-th retry waits ``min(max_delay_s, base_delay_s * 2 ** (n - 1))``, scaled by a
    random factor in ``[1 - jitter, 1 + jitter]`` so that jobs that failed together do
    not all come back at the same moment.

    Parameters
    ----------
    max_attempts : int
        Attempts in all (1: no retry).
    base_delay_s, max_delay_s : float
        The first delay, and the cap.
    jitter : float
        0..1.
    """

    max_attempts: int = 3
    base_delay_s: float = 1.0
    max_delay_s: float = 60.0
    jitter: float = 0.25

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ParameterError("max_attempts", self.max_attempts, "an integer >= 1")
        if self.base_delay_s < 0 or self.max_delay_s < self.base_delay_s:
            raise ParameterError(
                "base_delay_s/max_delay_s",
                (self.base_delay_s, self.max_delay_s),
                "0 <= base_delay_s <= max_delay_s",
            )
        if not 0.0 <= self.jitter <= 1.0:
            raise ParameterError("jitter", self.jitter, "a number from 0 to 1")

    def delay(self, retry: int, rng: random.Random) -> float:
        """Seconds to wait before retry number ``retry`` (1 for the first retry)."""
        nominal = min(self.max_delay_s, self.base_delay_s * 2 ** max(0, retry - 1))
        return nominal * (1.0 - self.jitter + 2.0 * self.jitter * rng.random())


@dataclass(frozen=True, kw_only=True)
class Job:
    """A snapshot of one job's row."""

    id: str
    kind: str
    state: str
    priority: int
    payload: dict[str, Any]
    depends_on: tuple[str, ...]
    attempts: int
    max_attempts: int
    crash_count: int
    quarantined: bool
    worker: str | None
    created_at: float
    updated_at: float
    started_at: float | None
    finished_at: float | None
    next_attempt_at: float
    result: Any
    error: str | None

    def to_dict(self) -> dict[str, Any]:
        """As a JSON-ready dictionary (``depends_on`` as a list)."""
        data = dict(self.__dict__)
        data["depends_on"] = list(self.depends_on)
        return data


class JobQueue:
    """The project's job queue (see the module docstring for states and rules).

    Parameters
    ----------
    database : ProjectDatabase
        The project database (``Project.database``).
    retry : RetryPolicy
        Default retry policy; a job may set its own ``max_attempts``.
    crash_limit : int
        Worker crashes after which a job is quarantined (2).
    clock : callable
        Wall-clock seconds (tests pass a fake one).
    rng : random.Random
        For the jitter.
    """

    def __init__(
        self,
        database: ProjectDatabase,
        *,
        retry: RetryPolicy | None = None,
        crash_limit: int = 2,
        clock: Callable[[], float] = time.time,
        rng: random.Random | None = None,
    ) -> None:
        if crash_limit < 1:
            raise ParameterError("crash_limit", crash_limit, "an integer >= 1")
        self.database = database
        self.models: Models = bind_models(database)
        self.retry = retry or RetryPolicy()
        self.crash_limit = crash_limit
        self._clock = clock
        self._rng = rng or random.Random()

    # -- submitting -----------------------------------------------------------------

    def submit(
        self,
        kind: str,
        payload: dict[str, Any] | None = None,
        *,
        priority: int = 0,
        depends_on: Sequence[str] = (),
        max_attempts: int | None = None,
        job_id: str | None = None,
    ) -> str:
        """Queue one job; returns its id.

        Raises
        ------
        ParameterError
            An empty kind, a payload that is not JSON, an unknown dependency, a job id
            already used.
        """
        return self.submit_batch(
            [
                {
                    "kind": kind,
                    "payload": payload,
                    "priority": priority,
                    "depends_on": list(depends_on),
                    "max_attempts": max_attempts,
                    "id": job_id,
                }
            ]
        )[0]

    def submit_batch(self, requests: Iterable[dict[str, Any]]) -> list[str]:
        """Queue several jobs in one transaction (all or none); returns their ids.

        Each request is a dict with ``kind`` and optional ``payload``, ``priority``,
        ``depends_on`` (ids of existing jobs or of earlier requests of the batch),
        ``max_attempts`` and ``id``.
        """
        m = self.models
        now = self._clock()
        ids: list[str] = []
        with self.database.write():
            for number, request in enumerate(requests):
                unknown = set(request) - {
                    "kind",
                    "payload",
                    "priority",
                    "depends_on",
                    "max_attempts",
                    "id",
                }
                if unknown:
                    raise ParameterError(f"job request {number}", sorted(unknown), "known keys")
                kind = request.get("kind")
                if not isinstance(kind, str) or not kind.strip():
                    raise ParameterError(f"job request {number}: kind", kind, "a non-empty string")
                payload = request.get("payload") or {}
                try:
                    json.dumps(payload)
                except (TypeError, ValueError) as err:
                    raise ParameterError(
                        f"job request {number}: payload", payload, "JSON-serialisable"
                    ) from err
                priority = request.get("priority") or 0
                if not isinstance(priority, int) or isinstance(priority, bool):
                    raise ParameterError(f"job request {number}: priority", priority, "an integer")
                depends = [str(d) for d in request.get("depends_on") or ()]
                for dependency in depends:
                    if dependency not in ids and m.Job.get_or_none(m.Job.id == dependency) is None:
                        raise ParameterError(
                            f"job request {number}: depends_on", dependency, "an existing job id"
                        )
                attempts = request.get("max_attempts") or self.retry.max_attempts
                if not isinstance(attempts, int) or attempts < 1:
                    raise ParameterError(
                        f"job request {number}: max_attempts", attempts, "an integer >= 1"
                    )
                new_id = str(request.get("id") or uuid.uuid4().hex)
                if new_id in ids or m.Job.get_or_none(m.Job.id == new_id) is not None:
                    raise ParameterError(f"job request {number}: id", new_id, "an unused job id")
                m.Job.create(
                    id=new_id,
                    kind=kind,
                    state=QUEUED,
                    priority=priority,
                    payload=payload,
                    depends_on=depends,
                    max_attempts=attempts,
                    created_at=now,
                    updated_at=now,
                    next_attempt_at=0.0,
                )
                ids.append(new_id)
            if ids:
                m.AuditLog.create(
                    timestamp=now, action="job.submit", target=ids[0], details={"count": len(ids)}
                )
        return ids

    # -- working --------------------------------------------------------------------

    def claim(self, worker: str, *, kinds: Sequence[str] | None = None) -> Job | None:
        """Take the next ready job for ``worker``: queued, due, every dependency succeeded.

        Highest priority first, then oldest.  The job becomes ``running`` and its
        ``attempts`` grows by one.  Returns ``None`` when nothing is ready.
        """
        now = self._clock()
        where_kind = ""
        params: list[Any] = [QUEUED, now, SUCCEEDED]
        if kinds:
            where_kind = f" AND j.kind IN ({', '.join('?' * len(kinds))})"
            params.extend(kinds)
        with self.database.write():
            row = self.database.execute_sql(
                "SELECT j.id FROM job j WHERE j.state = ? AND j.next_attempt_at <= ? "
                "AND NOT EXISTS (SELECT 1 FROM json_each(j.depends_on) d "
                "JOIN job dep ON dep.id = d.value WHERE dep.state != ?)"
                f"{where_kind} ORDER BY j.priority DESC, j.created_at, j.rowid LIMIT 1",
                params,
            ).fetchone()
            if row is None:
                return None
            m = self.models
            m.Job.update(
                state=RUNNING,
                worker=worker,
                attempts=m.Job.attempts + 1,
                started_at=now,
                updated_at=now,
                error=None,
            ).where(m.Job.id == row[0]).execute()
            return self._snapshot(m.Job.get_by_id(row[0]))

    def complete(self, job_id: str, result: Any = None) -> Job:
        """Mark a running job succeeded with its (JSON) result."""
        now = self._clock()
        m = self.models
        with self.database.write():
            job = self._running(job_id)
            m.Job.update(
                state=SUCCEEDED, result=result, finished_at=now, updated_at=now, worker=None
            ).where(m.Job.id == job.id).execute()
            return self._snapshot(m.Job.get_by_id(job.id))

    def fail(
        self,
        job_id: str,
        error: str,
        *,
        retryable: bool = True,
        retry_after_s: float | None = None,
    ) -> Job:
        """Record a failed attempt: back to the queue after a backoff, or failed for good.

        A job with attempts left (and ``retryable``) is queued again, due after
        :meth:`RetryPolicy.delay` (or after ``retry_after_s`` when the error said how
        long to wait, as a rate limit does); otherwise it is ``failed`` and so is every
        job that depends on it, directly or not.
        """
        now = self._clock()
        m = self.models
        with self.database.write():
            job = self._running(job_id)
            if retryable and job.attempts < job.max_attempts:
                delay = (
                    self.retry.delay(job.attempts, self._rng)
                    if retry_after_s is None
                    else max(0.0, float(retry_after_s))
                )
                m.Job.update(
                    state=QUEUED,
                    error=error,
                    worker=None,
                    next_attempt_at=now + delay,
                    updated_at=now,
                ).where(m.Job.id == job.id).execute()
                log.info("job %s (%s) failed, retry in %.2f s: %s", job.id, job.kind, delay, error)
            else:
                m.Job.update(
                    state=FAILED, error=error, worker=None, finished_at=now, updated_at=now
                ).where(m.Job.id == job.id).execute()
                self._finish_dependents(job.id, FAILED, f"dependency {job.id} failed", now)
                log.warning("job %s (%s) failed: %s", job.id, job.kind, error)
            return self._snapshot(m.Job.get_by_id(job.id))

    def release(self, job_id: str, *, delay_s: float = 0.0) -> Job:
        """Put a running job back in the queue, its attempt not counted.

        For a graceful stop (the worker stopped it at a safe point on purpose) and a
        rate limit (due again after ``delay_s``): neither is a failure.  A job that is
        no longer running (cancelled meanwhile) is left as it is.
        """
        now = self._clock()
        m = self.models
        with self.database.write():
            row = self._get(job_id)
            if row.state == RUNNING:
                m.Job.update(
                    state=QUEUED,
                    worker=None,
                    attempts=m.Job.attempts - 1,
                    next_attempt_at=now + max(0.0, float(delay_s)) if delay_s else 0.0,
                    updated_at=now,
                ).where(m.Job.id == row.id).execute()
            return self._snapshot(m.Job.get_by_id(row.id))

    def states(self, job_ids: Sequence[str]) -> dict[str, str]:
        """The state of each of ``job_ids`` that exists (one query)."""
        if not job_ids:
            return {}
        m = self.models
        rows = m.Job.select(m.Job.id, m.Job.state).where(m.Job.id.in_(list(job_ids)))
        return {row.id: row.state for row in rows}

    def cancel(self, job_id: str) -> bool:
        """Cancel a queued or running job and the jobs that depend on it.

        Returns ``False`` when the job had already finished.  A running job's worker
        sees the state at its next check and stops; its late ``complete``/``fail`` is
        refused.
        """
        now = self._clock()
        m = self.models
        with self.database.write():
            job = self._get(job_id)
            if job.state in _FINISHED:
                return False
            m.Job.update(state=CANCELLED, finished_at=now, updated_at=now, worker=None).where(
                m.Job.id == job.id
            ).execute()
            self._finish_dependents(job.id, CANCELLED, f"dependency {job.id} was cancelled", now)
        return True

    def recover_interrupted(self, *, is_alive: Callable[[str], bool] = _pid_alive) -> list[Job]:
        """After a crash: requeue running jobs whose worker is gone, or quarantine them.

        A job whose worker died counts a crash; at ``crash_limit`` crashes (2) it is
        quarantined instead of being run again.

        Returns
        -------
        list of Job
            The jobs found interrupted, in their new state.
        """
        now = self._clock()
        m = self.models
        changed: list[Job] = []
        with self.database.write():
            for job in m.Job.select().where(m.Job.state == RUNNING):
                if job.worker and is_alive(job.worker):
                    continue
                crashes = job.crash_count + 1
                if crashes >= self.crash_limit:
                    fields = {"state": QUARANTINED, "quarantined": True, "finished_at": now}
                    log.warning(
                        "job %s (%s) crashed its worker %d times: quarantined",
                        job.id,
                        job.kind,
                        crashes,
                    )
                else:
                    fields = {"state": QUEUED, "next_attempt_at": 0.0}
                    log.warning(
                        "job %s (%s) was interrupted by a crash: queued again", job.id, job.kind
                    )
                m.Job.update(
                    crash_count=crashes,
                    worker=None,
                    updated_at=now,
                    error=f"the worker {job.worker} died while running it",
                    **fields,
                ).where(m.Job.id == job.id).execute()
                if crashes >= self.crash_limit:
                    self._finish_dependents(
                        job.id, FAILED, f"dependency {job.id} was quarantined", now
                    )
                changed.append(self._snapshot(m.Job.get_by_id(job.id)))
        return changed

    def retry_job(self, job_id: str) -> Job:
        """Queue a failed, cancelled or quarantined job again, with fresh attempts.

        Its dependents that failed or were cancelled because of it are queued again too.
        """
        now = self._clock()
        m = self.models
        with self.database.write():
            job = self._get(job_id)
            if job.state not in (FAILED, CANCELLED, QUARANTINED):
                raise ParameterError("job state", job.state, "failed, cancelled or quarantined")
            for target in [job.id, *self._dependents(job.id)]:
                m.Job.update(
                    state=QUEUED,
                    attempts=0,
                    crash_count=0,
                    quarantined=False,
                    next_attempt_at=0.0,
                    finished_at=None,
                    error=None,
                    worker=None,
                    updated_at=now,
                ).where((m.Job.id == target) & (m.Job.state != SUCCEEDED)).execute()
            return self._snapshot(m.Job.get_by_id(job.id))

    # -- reading --------------------------------------------------------------------

    def get(self, job_id: str) -> Job:
        """One job.  Raises ParameterError for an unknown id."""
        return self._snapshot(self._get(job_id))

    def jobs(self, *, state: str | None = None, limit: int | None = None) -> list[Job]:
        """Jobs, newest first, optionally of one state."""
        m = self.models
        query = m.Job.select().order_by(m.Job.created_at.desc(), m.Job.id)
        if state is not None:
            if state not in JOB_STATES:
                raise ParameterError("state", state, f"one of {', '.join(JOB_STATES)}")
            query = query.where(m.Job.state == state)
        if limit is not None:
            query = query.limit(limit)
        return [self._snapshot(row) for row in query]

    def counts(self) -> dict[str, int]:
        """How many jobs are in each state (every state listed)."""
        counts = dict.fromkeys(JOB_STATES, 0)
        for state, count in self.database.execute_sql(
            "SELECT state, count(*) FROM job GROUP BY state"
        ).fetchall():
            counts[state] = int(count)
        return counts

    # -- helpers --------------------------------------------------------------------

    def _get(self, job_id: str) -> Any:
        row = self.models.Job.get_or_none(self.models.Job.id == job_id)
        if row is None:
            raise ParameterError("job_id", job_id, "the id of a job of this project")
        return row

    def _running(self, job_id: str) -> Any:
        row = self._get(job_id)
        if row.state != RUNNING:
            raise ParameterError(
                f"job {job_id} state", row.state, "running (it was cancelled or finished)"
            )
        return row

    def dependents(self, job_id: str) -> list[str]:
        """Every job that depends on ``job_id``, directly or through others."""
        return self._dependents(job_id)

    def _dependents(self, job_id: str) -> list[str]:
        """Every job that depends on ``job_id``, directly or through others."""
        rows = self.database.execute_sql(
            "WITH RECURSIVE dependents(id) AS ("
            " SELECT j.id FROM job j, json_each(j.depends_on) d WHERE d.value = ?"
            " UNION SELECT j.id FROM job j, json_each(j.depends_on) d"
            " JOIN dependents ON d.value = dependents.id"
            ") SELECT id FROM dependents",
            (job_id,),
        ).fetchall()
        return [row[0] for row in rows]

    def _finish_dependents(self, job_id: str, state: str, error: str, now: float) -> None:
        m = self.models
        dependents = self._dependents(job_id)
        if dependents:
            m.Job.update(state=state, error=error, finished_at=now, updated_at=now).where(
                m.Job.id.in_(dependents) & m.Job.state.in_([QUEUED])
            ).execute()

    @staticmethod
    def _snapshot(row: Any) -> Job:
        return Job(
            id=row.id,
            kind=row.kind,
            state=row.state,
            priority=row.priority,
            payload=row.payload,
            depends_on=tuple(row.depends_on),
            attempts=row.attempts,
            max_attempts=row.max_attempts,
            crash_count=row.crash_count,
            quarantined=bool(row.quarantined),
            worker=row.worker,
            created_at=row.created_at,
            updated_at=row.updated_at,
            started_at=row.started_at,
            finished_at=row.finished_at,
            next_attempt_at=row.next_attempt_at,
            result=row.result,
            error=row.error,
        )
