"""``APEXOrchestrator``: runs the project's job queue with one GPU worker and a CPU pool.

The queue lives in the project database (:mod:`engine.orchestrator.job_queue`), so a
crash or SIGKILL loses nothing: :meth:`APEXOrchestrator.initialize` puts the jobs the
dead process was running back in the queue (or quarantines a job that crashed its
worker twice), and :meth:`~APEXOrchestrator.start` carries on where it stopped.

Jobs are run by handlers registered by kind (:meth:`~APEXOrchestrator.register_handler`;
the built-in ones are in :mod:`engine.orchestrator.handlers`).  Jobs of a GPU kind
(``generate``, ``upscale``) run one at a time on one worker thread; the others in a
pool of CPU threads.  A handler gets a :class:`JobContext`: the job, a
:class:`~engine.context.StageContext` for progress and cancel checks, and
content-addressed artifact paths (the hash of the job's inputs), so a job whose output
exists is not redone.

Failures: :class:`~engine.errors.UserInputError` fails the job at once (running it again
would fail the same way); transient ones (:class:`~engine.errors.BackendError`,
:class:`~engine.errors.GenerationError`, ``OSError``, a locked database, a stage process
that died: :class:`~engine.orchestrator.stage_process.StageProcessError`) are retried with
exponential backoff and jitter.  A :class:`~engine.assets.errors.RateLimitError` is no
failure: the job goes back to the queue, due after the time the error names, its
attempt not counted (``rate_limits.deferred_jobs`` in the stats).  Every failed attempt counts in
``get_system_stats()["errors"]``, and so does each backend a generate job failed over
from (``BackendFailover``); an error is *recovered* when its job later succeeds.

Events (:mod:`engine.events`) go to every subscriber: queued, started, progress,
finished, failed, cancelled.  Subscribers are called from the engine's threads (the
event loop and the workers); a GUI marshals them to its own thread.

Examples
--------
>>> orchestrator = APEXOrchestrator(tmp / "my-video")
>>> await orchestrator.initialize()
True
>>> await orchestrator.start()
>>> job_id = await orchestrator.submit_job({"kind": "analyse",
...                                         "payload": {"audio_path": "song.wav"}})
>>> (await orchestrator.wait_for(job_id))["state"]
'succeeded'
>>> await orchestrator.stop()
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import os
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine.assets.errors import RateLimitError
from engine.assets.project import PROJECT_FILE, Project
from engine.assets.rate_limit import TokenBucket
from engine.config.sections import section_settings
from engine.context import StageContext
from engine.errors import (
    APEXDirectorError,
    BackendError,
    CancelledError,
    GenerationError,
    ParameterError,
    UserInputError,
)
from engine.events import (
    EventSink,
    JobCancelled,
    JobEvent,
    JobFailed,
    JobFinished,
    JobQueued,
    JobStarted,
)
from engine.orchestrator.job_queue import (
    CANCELLED,
    FAILED,
    JOB_STATES,
    QUARANTINED,
    QUEUED,
    RUNNING,
    SUCCEEDED,
    Job,
    JobQueue,
    RetryPolicy,
    worker_id,
)
from engine.orchestrator.stage_process import ISOLATION_MODES, StageProcessError, StageProcesses
from engine.security.api_keys import LOCAL, Permission, Principal, requires
from engine.storage import DatabaseLockedError, StorageError

__all__ = [
    "DEFAULT_ORCHESTRATOR_CONFIG",
    "GPU_KINDS",
    "JOB_KINDS",
    "APEXOrchestrator",
    "Handler",
    "JobContext",
]

log = logging.getLogger(__name__)

JOB_KINDS = ("analyse", "plan", "generate", "upscale", "assemble", "qa", "render")
GPU_KINDS = frozenset({"generate", "upscale"})
_FINISHED = (SUCCEEDED, FAILED, CANCELLED, QUARANTINED)

DEFAULT_ORCHESTRATOR_CONFIG: dict[str, Any] = {
    # CPU worker threads (analyse, plan, assemble, qa, render); GPU jobs get one.
    "cpu_workers": 2,
    # Attempts in all, and the backoff of retries (RetryPolicy).
    "max_attempts": 3,
    "retry_base_delay_s": 1.0,
    "retry_max_delay_s": 60.0,
    "retry_jitter": 0.25,
    # The API reference's limit: generation requests per minute, per backend.
    "generation_requests_per_minute": 100,
    # How often the dispatcher looks for ready jobs and for cancels from elsewhere.
    "poll_interval_s": 0.05,
    # Where render stages and analyses run: "thread" (a worker thread of this process)
    # or "process" (a child process per worker: the GUI's setting, see stage_process.py).
    "stage_isolation": "thread",
}

# Errors worth another attempt: the backend, the disk or the database may be fine later.
_TRANSIENT: tuple[type[BaseException], ...] = (
    BackendError,
    GenerationError,
    OSError,
    TimeoutError,
    DatabaseLockedError,
    StageProcessError,
)

Handler = Callable[["JobContext"], "dict[str, Any] | None"]
"""A job handler: runs in a worker thread, returns the job's (JSON) result."""


@dataclass
class JobContext:
    """What a handler gets.

    Attributes
    ----------
    job : Job
        The job as claimed (``payload``, ``attempts``...).
    stage : StageContext
        ``stage.progress(step, total, message)`` emits :class:`~engine.events.JobProgress`
        and raises :class:`~engine.errors.CancelledError` once the job is cancelled or
        the orchestrator stops; call ``stage.check_cancelled()`` between units of work.
    orchestrator : APEXOrchestrator
    """

    job: Job
    stage: StageContext
    orchestrator: APEXOrchestrator
    notes: list[str] = field(default_factory=list)

    @property
    def payload(self) -> dict[str, Any]:
        return self.job.payload

    @property
    def project(self) -> Project:
        return self.orchestrator.project

    def artifact_key(self, inputs: Any = None, *, version: str = "1") -> str:
        """SHA-256 of the job's kind, ``version`` and inputs (its payload by default)."""
        text = json.dumps(
            {
                "kind": self.job.kind,
                "v": version,
                "inputs": self.payload if inputs is None else inputs,
            },
            sort_keys=True,
            default=str,
        )
        return hashlib.sha256(text.encode()).hexdigest()

    def artifact_path(self, extension: str, inputs: Any = None, *, version: str = "1") -> Path:
        """Where this job's output lives: ``cache/artifacts/KIND/ab/<hash>.EXT``.

        The name is the hash of the inputs, so the same inputs find the same file and a
        job whose artifact exists need not run again.
        """
        key = self.artifact_key(inputs, version=version)
        folder = self.project.cache_dir / "artifacts" / self.job.kind / key[:2]
        folder.mkdir(parents=True, exist_ok=True)
        return folder / f"{key}.{extension.lstrip('.')}"

    @contextlib.contextmanager
    def making(self, artifact: Path) -> Iterator[None]:
        """Hold while checking for ``artifact`` and making it: two jobs of this process
        with the same inputs then make it once (the second finds it made)."""
        lock = self.orchestrator._artifact_lock(artifact)
        with lock:
            yield

    def acquire_generation(self, backend: str) -> None:
        """Take one generation request of ``backend``'s rate limit (or raise RateLimitError)."""
        self.orchestrator.generation_bucket(backend).acquire()


@dataclass
class _Running:
    job: Job
    cancel_event: threading.Event
    started: float
    stopping: bool = False


def _rss_mb(pid: int | None = None) -> float:
    """The resident memory of this process (or of ``pid``) now, in MiB; 0 when unknown."""
    try:
        with open(f"/proc/{pid or 'self'}/statm", encoding="ascii") as handle:
            pages = int(handle.read().split()[1])
        return pages * os.sysconf("SC_PAGE_SIZE") / 2**20
    except (OSError, ValueError, IndexError):
        try:
            import psutil

            return float(psutil.Process(pid).memory_info().rss) / 2**20
        except Exception:  # neither /proc nor psutil, or the process has just ended
            return 0.0


class APEXOrchestrator:
    """Runs the jobs of one project (see the module docstring).

    Parameters
    ----------
    project : Project, Path or str
        An open project, or a folder: the project in it is opened, or created when the
        folder holds none (the API reference's ``base_dir``).
    config : dict, optional
        :data:`DEFAULT_ORCHESTRATOR_CONFIG` keys, or the engine configuration whose
        ``orchestrator`` table holds them.
    handlers : dict, optional
        Extra or replacement handlers by kind (the built-in ones are registered first).
    clock : callable
        Wall-clock seconds for the queue (tests pass a fake one).
    """

    def __init__(
        self,
        project: Project | Path | str,
        *,
        config: dict[str, Any] | None = None,
        handlers: dict[str, Handler] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.config = self._validated_config(config or {})
        if isinstance(project, Project):
            self.project = project
            self._owns_project = False
        else:
            folder = Path(project).expanduser().absolute()
            if (folder / PROJECT_FILE).exists():
                self.project = Project.open(folder)
            else:
                self.project = Project.create(folder)
            self._owns_project = True
        self.queue = JobQueue(
            self.project.database,
            retry=RetryPolicy(
                max_attempts=int(self.config["max_attempts"]),
                base_delay_s=float(self.config["retry_base_delay_s"]),
                max_delay_s=float(self.config["retry_max_delay_s"]),
                jitter=float(self.config["retry_jitter"]),
            ),
            clock=clock,
        )
        self.worker = worker_id()
        self._handlers: dict[str, Handler] = {}
        # Who calls (engine/security/api_keys.py): jobs need "execute".
        self.principal: Principal = LOCAL
        from engine.orchestrator.handlers import builtin_handlers

        for kind, handler in builtin_handlers().items():
            self.register_handler(kind, handler)
        for kind, handler in (handlers or {}).items():
            self.register_handler(kind, handler)
        self._subscribers: list[EventSink] = []
        self._subscribers_lock = threading.Lock()
        self._buckets: dict[str, TokenBucket] = {}
        self._buckets_lock = threading.Lock()
        self._artifact_locks: dict[str, threading.Lock] = {}
        self._running: dict[str, _Running] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        # the child processes of stage_isolation = "process" (None: stages run in threads)
        self.stage_processes: StageProcesses | None = (
            StageProcesses() if self.config["stage_isolation"] == "process" else None
        )
        self._gpu_pool: ThreadPoolExecutor | None = None
        self._cpu_pool: ThreadPoolExecutor | None = None
        self._dispatcher: asyncio.Task[None] | None = None
        self._wake: asyncio.Event | None = None
        self._finished_cond: asyncio.Condition | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._initialized = False
        self._stopping = False
        self._started_at: float | None = None
        self._exceptions: dict[str, BaseException] = {}
        # statistics of this session
        self._errors_total = 0
        self._rate_limited = 0
        self._errors_by_type: Counter[str] = Counter()
        self._errored_jobs: Counter[str] = Counter()
        self._recovered = 0
        self._finished = 0
        self._latencies_s: list[float] = []
        self._run_times_s: list[float] = []
        self._stats_lock = threading.Lock()

    @staticmethod
    def _validated_config(config: dict[str, Any]) -> dict[str, Any]:
        merged = section_settings(config, "orchestrator", DEFAULT_ORCHESTRATOR_CONFIG)
        workers = merged["cpu_workers"]
        if not isinstance(workers, int) or isinstance(workers, bool) or not 1 <= workers <= 64:
            raise ParameterError("cpu_workers", workers, "an integer 1..64")
        limit = merged["generation_requests_per_minute"]
        if limit is not None and (not isinstance(limit, int | float) or limit <= 0):
            raise ParameterError("generation_requests_per_minute", limit, "a number > 0 or None")
        if float(merged["poll_interval_s"]) <= 0:
            raise ParameterError("poll_interval_s", merged["poll_interval_s"], "a number > 0")
        if merged["stage_isolation"] not in ISOLATION_MODES:
            raise ParameterError(
                "stage_isolation", merged["stage_isolation"], " or ".join(ISOLATION_MODES)
            )
        return merged

    # -- extension points -------------------------------------------------------------

    def register_handler(self, kind: str, handler: Handler) -> None:
        """Run jobs of ``kind`` with ``handler`` (replacing any earlier one)."""
        if not isinstance(kind, str) or not kind.strip():
            raise ParameterError("kind", kind, "a non-empty job kind")
        self._handlers[kind] = handler

    @property
    def kinds(self) -> list[str]:
        """The job kinds this orchestrator can run."""
        return sorted(self._handlers)

    def subscribe(self, sink: EventSink) -> Callable[[], None]:
        """Deliver every event to ``sink``; returns a function that unsubscribes it."""
        with self._subscribers_lock:
            self._subscribers.append(sink)

        def unsubscribe() -> None:
            with self._subscribers_lock, contextlib.suppress(ValueError):
                self._subscribers.remove(sink)

        return unsubscribe

    def _emit(self, event: JobEvent) -> None:
        with self._subscribers_lock:
            sinks = list(self._subscribers)
        for sink in sinks:
            try:
                sink(event)
            except CancelledError:
                raise
            except Exception:  # a subscriber's bug must not stop the engine
                log.exception("event subscriber %r failed on %r", sink, event)

    def _artifact_lock(self, artifact: Path) -> threading.Lock:
        with self._buckets_lock:
            return self._artifact_locks.setdefault(str(artifact), threading.Lock())

    def generation_bucket(self, backend: str) -> TokenBucket:
        """The token bucket that limits ``backend``'s generation requests."""
        with self._buckets_lock:
            bucket = self._buckets.get(backend)
            if bucket is None:
                bucket = TokenBucket(
                    f"generation requests of backend {backend}",
                    self.config["generation_requests_per_minute"],
                )
                self._buckets[backend] = bucket
            return bucket

    # -- life cycle -----------------------------------------------------------------

    async def initialize(self) -> bool:
        """Recover the jobs a crashed process left running; returns ``True``.

        A job whose worker died is queued again, or quarantined after its second crash.
        """
        recovered = await asyncio.to_thread(self.queue.recover_interrupted)
        for job in recovered:
            log.warning("job %s (%s) found interrupted: now %s", job.id, job.kind, job.state)
        self._initialized = True
        return True

    async def start(self) -> None:
        """Start the workers; jobs run until :meth:`stop`."""
        if not self._initialized:
            await self.initialize()
        if self._dispatcher is not None and not self._dispatcher.done():
            return
        self._loop = asyncio.get_running_loop()
        self._stopping = False
        self._wake = asyncio.Event()
        self._finished_cond = asyncio.Condition()
        self._gpu_pool = ThreadPoolExecutor(1, thread_name_prefix="apex-gpu")
        self._cpu_pool = ThreadPoolExecutor(
            int(self.config["cpu_workers"]), thread_name_prefix="apex-cpu"
        )
        self._started_at = time.monotonic()
        self._dispatcher = asyncio.create_task(self._dispatch(), name="apex-dispatcher")

    async def stop(self, *, timeout_s: float | None = None) -> None:
        """Stop gracefully: running jobs stop at their next cancel check and are queued
        again (their attempt not counted); jobs that finish first keep their result.

        Parameters
        ----------
        timeout_s : float, optional
            Give up waiting after this long (the jobs still running then are left to
            the next :meth:`initialize` to recover).
        """
        self._stopping = True
        for running in list(self._running.values()):
            running.stopping = True
            running.cancel_event.set()
        if self._wake is not None:
            self._wake.set()
        if self._dispatcher is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._dispatcher
            self._dispatcher = None
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=timeout_s)
        for pool in (self._gpu_pool, self._cpu_pool):
            if pool is not None:
                pool.shutdown(wait=not self._tasks)
        self._gpu_pool = self._cpu_pool = None
        if self.stage_processes is not None:
            await asyncio.to_thread(self.stage_processes.close)

    async def close(self) -> None:
        """Stop, and close the project when this orchestrator opened it."""
        await self.stop()
        if self._owns_project:
            self.project.close()

    # -- submitting and reading -----------------------------------------------------

    async def submit_job(self, job_request: dict[str, Any]) -> str:
        """Queue one job: ``{"kind", "payload", "priority", "depends_on", "max_attempts",
        "id"}`` (``kind`` required); returns its id."""
        return (await self.submit_batch([job_request]))[0]

    @requires(Permission.EXECUTE, "submit_job")
    async def submit_batch(self, job_requests: list[dict[str, Any]]) -> list[str]:
        """Queue several jobs in one transaction (all or none); returns their ids.

        ``depends_on`` may name jobs of the same batch.

        Raises
        ------
        ParameterError
            A kind no handler runs, or a bad request (see :meth:`JobQueue.submit_batch`).
        """
        requests = [dict(r) for r in job_requests]
        for number, request in enumerate(requests):
            kind = request.get("kind")
            if kind not in self._handlers:
                raise ParameterError(f"job request {number}: kind", kind, f"one of {self.kinds}")
        ids = await asyncio.to_thread(self.queue.submit_batch, requests)
        for job_id, request in zip(ids, requests, strict=True):
            self._emit(JobQueued(job_id=job_id, kind=str(request["kind"])))
        if self._wake is not None:
            self._wake.set()
        return ids

    async def get_job_status(self, job_id: str) -> dict[str, Any]:
        """The job's row as a dictionary (state, attempts, result, error...)."""
        job = await asyncio.to_thread(self.queue.get, job_id)
        return job.to_dict()

    @requires(Permission.EXECUTE, "cancel_job")
    async def cancel_job(self, job_id: str) -> bool:
        """Cancel a queued or running job (and its dependents); ``False`` if it had finished.

        A running job stops at its next cancel check.
        """
        dependents = await asyncio.to_thread(self.queue.dependents, job_id)
        before = await asyncio.to_thread(self.queue.states, [job_id, *dependents])
        if not await asyncio.to_thread(self.queue.cancel, job_id):
            return False
        await asyncio.to_thread(self._audit, "job.cancel", job_id)
        running = self._running.get(job_id)
        if running is not None:
            running.cancel_event.set()
        else:
            self._emit(JobCancelled(job_id=job_id))
        for dependent in dependents:
            if before.get(dependent) == QUEUED:
                self._emit(JobCancelled(job_id=dependent))
        await self._notify_finished()
        return True

    @requires(Permission.EXECUTE, "retry_job")
    async def retry_job(self, job_id: str) -> dict[str, Any]:
        """Queue a failed, cancelled or quarantined job again (with its dependents)."""
        job = await asyncio.to_thread(self.queue.retry_job, job_id)
        await asyncio.to_thread(self._audit, "job.retry", job_id)
        self._emit(JobQueued(job_id=job.id, kind=job.kind))
        if self._wake is not None:
            self._wake.set()
        return job.to_dict()

    async def wait_for(self, job_id: str, *, timeout_s: float | None = None) -> dict[str, Any]:
        """Wait until the job has finished (succeeded, failed, cancelled or quarantined);
        for a job this orchestrator ran, until its events were delivered too.

        Raises
        ------
        TimeoutError
            It had not finished after ``timeout_s``.
        """
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        poll = max(0.05, float(self.config["poll_interval_s"]))
        while True:
            status = await self.get_job_status(job_id)
            # a job of this orchestrator is done once its events went out, too
            if status["state"] in _FINISHED and job_id not in self._running:
                return status
            wait = poll * 4
            if deadline is not None:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"job {job_id} still {status['state']} after {timeout_s} s")
                wait = min(wait, left)
            if self._finished_cond is None:
                await asyncio.sleep(wait)
                continue
            async with self._finished_cond:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._finished_cond.wait(), wait)

    def exception_of(self, job_id: str) -> BaseException | None:
        """The exception that last failed ``job_id`` in this process, if any."""
        return self._exceptions.get(job_id)

    # -- checkpoints ----------------------------------------------------------------

    def _audit(self, action: str, target: str, details: dict[str, Any] | None = None) -> None:
        with self.project.database.write():
            self.queue.models.AuditLog.create(
                timestamp=time.time(), action=action, target=target, details=details or {}
            )

    @requires(Permission.EXECUTE, "create_checkpoint")
    async def create_checkpoint(
        self, name: str, description: str = "", jobs: list[dict[str, Any]] | None = None
    ) -> str:
        """Save the state of the jobs (all of them, or the ``jobs`` given); returns its id."""
        if not isinstance(name, str) or not name.strip():
            raise ParameterError("name", name, "a non-empty checkpoint name")

        def save() -> str:
            snapshot = jobs if jobs is not None else [j.to_dict() for j in self.queue.jobs()]
            for entry in snapshot:
                if not isinstance(entry, dict) or "id" not in entry or "state" not in entry:
                    raise ParameterError("jobs", entry, "job dictionaries with id and state")
            checkpoint_id = uuid.uuid4().hex
            m = self.queue.models
            with self.project.database.write():
                m.Checkpoint.create(
                    id=checkpoint_id,
                    name=name,
                    description=description,
                    created_at=time.time(),
                    data={"jobs": snapshot},
                )
                m.AuditLog.create(
                    timestamp=time.time(),
                    action="checkpoint.create",
                    target=checkpoint_id,
                    details={"name": name, "jobs": len(snapshot)},
                )
            return checkpoint_id

        return await asyncio.to_thread(save)

    @requires(Permission.EXECUTE, "restore_from_checkpoint")
    async def restore_from_checkpoint(self, checkpoint_id: str) -> bool:
        """Put every job of the checkpoint back in the state it had then.

        A job that was running then is queued; a job submitted after the checkpoint and
        not finished is cancelled.  Refused while jobs of this orchestrator run.

        Raises
        ------
        ParameterError
            An unknown checkpoint, or jobs are running.
        """
        if self._running:
            raise ParameterError(
                "restore_from_checkpoint", checkpoint_id, "no running jobs (stop() first)"
            )

        def restore() -> bool:
            m = self.queue.models
            row = m.Checkpoint.get_or_none(m.Checkpoint.id == checkpoint_id)
            if row is None:
                raise ParameterError("checkpoint_id", checkpoint_id, "the id of a checkpoint")
            saved = {entry["id"]: entry for entry in row.data.get("jobs", [])}
            now = time.time()
            fields = (
                "kind",
                "priority",
                "payload",
                "depends_on",
                "attempts",
                "max_attempts",
                "crash_count",
                "quarantined",
                "created_at",
                "started_at",
                "finished_at",
                "result",
                "error",
            )
            with self.project.database.write():
                for job_id, entry in saved.items():
                    state = QUEUED if entry["state"] == RUNNING else entry["state"]
                    values = {key: entry[key] for key in fields if key in entry}
                    values.update(state=state, worker=None, updated_at=now, next_attempt_at=0.0)
                    if m.Job.get_or_none(m.Job.id == job_id) is None:
                        values.setdefault("kind", "unknown")
                        values.setdefault("created_at", now)
                        m.Job.create(id=job_id, **values)
                    else:
                        m.Job.update(**values).where(m.Job.id == job_id).execute()
                m.Job.update(state=CANCELLED, finished_at=now, updated_at=now).where(
                    m.Job.id.not_in(list(saved) or [""]) & m.Job.state.in_([QUEUED, RUNNING])
                ).execute()
                m.AuditLog.create(
                    timestamp=now,
                    action="checkpoint.restore",
                    target=checkpoint_id,
                    details={"jobs": len(saved)},
                )
            return True

        ok = await asyncio.to_thread(restore)
        if self._wake is not None:
            self._wake.set()
        return ok

    # -- statistics -----------------------------------------------------------------

    async def get_system_stats(self, *, probe_device: bool = False) -> dict[str, Any]:
        """Queue counts, errors (``total``, ``recovered``, ``recovery_rate``, ``by_type``),
        workers and the generation device.

        Parameters
        ----------
        probe_device : bool
            Ask torch which device generation would use (imports torch when not yet
            loaded); otherwise the device is reported only once torch is loaded.
        """
        counts = await asyncio.to_thread(self.queue.counts)
        with self._stats_lock:
            total = self._errors_total
            recovered = self._recovered
            by_type = dict(self._errors_by_type)
        return {
            "project": {"id": self.project.id, "path": str(self.project.path)},
            "running": self._dispatcher is not None and not self._dispatcher.done(),
            "queue": {**counts, "total": sum(counts.values())},
            "workers": {
                "gpu": 1,
                "cpu": int(self.config["cpu_workers"]),
                "busy": len(self._running),
                "id": self.worker,
            },
            "errors": {
                "total": total,
                "recovered": recovered,
                "recovery_rate": (recovered / total) if total else 1.0,
                "by_type": by_type,
            },
            "rate_limits": {
                "deferred_jobs": self._rate_limited,
                "buckets": {
                    name: {"per_minute": bucket.per_minute, "remaining": bucket.remaining}
                    for name, bucket in sorted(self._buckets.items())
                },
            },
            "device": self._device(probe_device),
        }

    @staticmethod
    def _device(probe: bool) -> dict[str, Any]:
        if not probe and "torch" not in sys.modules:
            return {"kind": "not probed", "detail": "torch is not loaded yet"}
        try:
            from engine.generation.device import select_device

            return dict(select_device().as_stats())
        except APEXDirectorError as err:
            return {"kind": "unavailable", "detail": str(err)}

    def get_performance_metrics(self) -> dict[str, Any]:
        """Throughput (jobs finished a second since :meth:`start`), latency (queued to
        finished, and run time) and this process's current memory."""
        with self._stats_lock:
            finished = self._finished
            latencies = list(self._latencies_s)
            runs = list(self._run_times_s)
        elapsed = 0.0 if self._started_at is None else time.monotonic() - self._started_at
        return {
            "throughput": {
                "jobs_finished": finished,
                "elapsed_s": elapsed,
                "jobs_per_second": finished / elapsed if elapsed > 0 else 0.0,
            },
            "latency": {
                "average_ms": 1000 * sum(latencies) / len(latencies) if latencies else 0.0,
                "max_ms": 1000 * max(latencies) if latencies else 0.0,
                "average_run_ms": 1000 * sum(runs) / len(runs) if runs else 0.0,
            },
            "memory": self._memory(),
        }

    def _memory(self) -> dict[str, float]:
        """Resident memory now: this process, its stage processes, and both together."""
        own = _rss_mb()
        pids = self.stage_processes.pids() if self.stage_processes is not None else []
        children = sum(_rss_mb(pid) for pid in pids)
        return {"current_mb": own + children, "process_mb": own, "stage_processes_mb": children}

    # -- the workers ----------------------------------------------------------------

    async def _notify_finished(self) -> None:
        if self._finished_cond is not None:
            async with self._finished_cond:
                self._finished_cond.notify_all()

    async def _dispatch(self) -> None:
        assert self._wake is not None
        poll = float(self.config["poll_interval_s"])
        cpu_slots = int(self.config["cpu_workers"])
        while not self._stopping:
            self._wake.clear()
            try:
                claimed = await self._claim_ready(cpu_slots)
            except StorageError as err:  # locked by another process, disk full: try again
                log.warning("the dispatcher could not read the queue: %s", err)
                claimed = False
                await asyncio.sleep(max(poll, 1.0))
            if claimed:
                continue
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), poll)

    async def _claim_ready(self, cpu_slots: int) -> bool:
        """Claim and launch a job for each free slot; whether any was claimed."""
        await self._check_cancels()
        gpu_busy = any(r.job.kind in GPU_KINDS for r in self._running.values())
        cpu_busy = sum(r.job.kind not in GPU_KINDS for r in self._running.values())
        claimed = False
        if not gpu_busy:
            gpu_kinds = tuple(k for k in self._handlers if k in GPU_KINDS)
            if gpu_kinds:
                job = await asyncio.to_thread(self.queue.claim, self.worker, kinds=gpu_kinds)
                if job is not None:
                    self._launch(job, gpu=True)
                    claimed = True
        if cpu_busy < cpu_slots:
            cpu_kinds = tuple(k for k in self._handlers if k not in GPU_KINDS)
            if cpu_kinds:
                job = await asyncio.to_thread(self.queue.claim, self.worker, kinds=cpu_kinds)
                if job is not None:
                    self._launch(job, gpu=False)
                    claimed = True
        return claimed

    async def _check_cancels(self) -> None:
        """Jobs cancelled by another process (``apex-director jobs cancel``) stop too."""
        if not self._running:
            return
        states = await asyncio.to_thread(self.queue.states, list(self._running))
        for job_id, state in states.items():
            running = self._running.get(job_id)
            if running is not None and state != RUNNING:
                running.cancel_event.set()

    def _launch(self, job: Job, *, gpu: bool) -> None:
        running = _Running(job=job, cancel_event=threading.Event(), started=time.time())
        self._running[job.id] = running
        self._emit(JobStarted(job_id=job.id, kind=job.kind))
        task = asyncio.create_task(self._run(running, gpu=gpu), name=f"job-{job.id}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run(self, running: _Running, *, gpu: bool) -> None:
        job = running.job
        pool = self._gpu_pool if gpu else self._cpu_pool
        loop = asyncio.get_running_loop()
        try:
            try:
                result = await loop.run_in_executor(pool, self._call_handler, running)
            except BaseException as err:
                await self._record(self._record_failure, running, err)
            else:
                await self._record(self._record_success, running, result)
        finally:
            self._running.pop(job.id, None)
            if self._wake is not None:
                self._wake.set()
            await self._notify_finished()

    async def _record(self, record: Callable[..., None], *args: Any) -> None:
        """Write a job's outcome, waiting out a database another process holds locked."""
        for attempt in range(1, 7):
            try:
                await asyncio.to_thread(record, *args)
                return
            except DatabaseLockedError as err:
                log.warning("cannot record a job's outcome (attempt %d): %s", attempt, err)
                await asyncio.sleep(min(30.0, 2.0**attempt))
        log.error(
            "the outcome of job %s could not be written; it stays 'running' until this "
            "process ends, and the next start recovers it",
            args[0].job.id,
        )

    def _call_handler(self, running: _Running) -> dict[str, Any] | None:
        job = running.job
        stage = StageContext(
            job_id=job.id,
            sink=self._emit,
            cancel_event=running.cancel_event,
            logger=logging.getLogger(f"engine.jobs.{job.kind}"),
            stage=job.kind,
        )
        context = JobContext(job=job, stage=stage, orchestrator=self)
        stage.check_cancelled()
        result = self._handlers[job.kind](context)
        if result is not None:
            json.dumps(result)  # a handler bug shows here, not as a broken row
        return result

    def _count_error(self, job_id: str, err: BaseException) -> None:
        """Count one error of ``job_id`` (a failed attempt, or a backend failed over)."""
        with self._stats_lock:
            self._errors_total += 1
            self._errors_by_type[type(err).__name__] += 1
            self._errored_jobs[job_id] += 1

    def _record_success(self, running: _Running, result: dict[str, Any] | None) -> None:
        job = running.job
        try:
            done = self.queue.complete(job.id, result)
        except ParameterError:  # cancelled while it finished: the cancel wins
            self._emit(JobCancelled(job_id=job.id, stage=job.kind))
            return
        self._exceptions.pop(job.id, None)
        # backends failed over within the attempt (a generate job's "skipped"): errors
        # this job recovered from
        skipped = (result or {}).get("skipped") or []
        with self._stats_lock:
            if isinstance(skipped, list) and skipped:
                self._errors_total += len(skipped)
                self._errors_by_type["BackendFailover"] += len(skipped)
                self._errored_jobs[job.id] += len(skipped)
            self._finished += 1
            self._latencies_s.append(max(0.0, (done.finished_at or 0) - done.created_at))
            self._run_times_s.append(time.time() - running.started)
            if self._errored_jobs[job.id]:
                self._recovered += self._errored_jobs.pop(job.id)
        self._emit(JobFinished(job_id=job.id, result=dict(result or {})))

    def _record_failure(self, running: _Running, err: BaseException) -> None:
        job = running.job
        if isinstance(err, CancelledError | asyncio.CancelledError):
            state = self.queue.states([job.id]).get(job.id)
            if running.stopping and state == RUNNING:
                self.queue.release(job.id)
                log.info("job %s (%s) stopped at a safe point; queued again", job.id, job.kind)
                return
            if state == RUNNING:  # the handler cancelled itself: count as cancelled
                self.queue.cancel(job.id)
            self._emit(JobCancelled(job_id=job.id, stage=job.kind))
            return
        if isinstance(err, KeyboardInterrupt | SystemExit):
            self.queue.release(job.id)
            raise err
        if isinstance(err, RateLimitError):  # not a failure: due again when the limit allows
            with self._stats_lock:
                self._rate_limited += 1
            try:
                self.queue.release(job.id, delay_s=err.retry_after_s)
            except ParameterError:
                return
            log.info("job %s (%s) rate-limited: %s", job.id, job.kind, err)
            return
        retryable = isinstance(err, _TRANSIENT) and not isinstance(err, UserInputError)
        message = f"{type(err).__name__}: {err}"
        self._count_error(job.id, err)
        self._exceptions[job.id] = err
        if not retryable and not isinstance(err, APEXDirectorError):
            log.error("job %s (%s) hit an internal error", job.id, job.kind, exc_info=err)
        try:
            after = self.queue.fail(job.id, message, retryable=retryable)
        except ParameterError:  # cancelled meanwhile
            self._emit(JobCancelled(job_id=job.id, stage=job.kind))
            return
        if after.state == FAILED:
            self._emit(JobFailed(job_id=job.id, error=message, error_type=type(err).__name__))
            for dependent in self.queue.dependents(job.id):
                self._emit(
                    JobFailed(
                        job_id=dependent,
                        error=f"dependency {job.id} failed: {message}",
                        error_type="DependencyFailed",
                    )
                )

    # -- helpers for callers --------------------------------------------------------

    async def jobs(self, *, state: str | None = None, limit: int | None = None) -> list[dict]:
        """Jobs, newest first (optionally of one state)."""
        if state is not None and state not in JOB_STATES:
            raise ParameterError("state", state, f"one of {', '.join(JOB_STATES)}")
        rows = await asyncio.to_thread(self.queue.jobs, state=state, limit=limit)
        return [row.to_dict() for row in rows]

    async def drain(self, job_ids: Iterable[str], *, timeout_s: float | None = None) -> list[dict]:
        """Wait for every one of ``job_ids`` to finish; returns their final status."""
        return [await self.wait_for(job_id, timeout_s=timeout_s) for job_id in job_ids]
