"""The SQLite job queue: priorities, dependencies, backoff, cancel, crash quarantine."""

from __future__ import annotations

import random
import subprocess
import sys
from pathlib import Path

import pytest

from engine.errors import ParameterError
from engine.orchestrator.job_queue import JobQueue, RetryPolicy
from engine.storage import open_database


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def queue(tmp_path: Path) -> JobQueue:
    db = open_database(tmp_path / "apex.db")
    return JobQueue(
        db,
        retry=RetryPolicy(max_attempts=3, base_delay_s=2.0, max_delay_s=60.0, jitter=0.25),
        clock=Clock(),
        rng=random.Random(5),
    )


def test_priority_then_first_come(queue: JobQueue) -> None:
    low = queue.submit("qa")
    high_1 = queue.submit("generate", {"shot": 1}, priority=5)
    high_2 = queue.submit("generate", {"shot": 2}, priority=5)
    order = [queue.claim("w").id for _ in range(3)]  # type: ignore[union-attr]
    assert order == [high_1, high_2, low]
    assert queue.claim("w") is None
    job = queue.get(high_1)
    assert job.state == "running" and job.attempts == 1 and job.payload == {"shot": 1}


def test_dependencies_hold_a_job_until_all_succeeded(queue: JobQueue) -> None:
    analyse, generate = queue.submit_batch([{"kind": "analyse"}, {"kind": "generate"}])
    render = queue.submit("render", priority=100, depends_on=[analyse, generate])
    first = queue.claim("w")
    assert first is not None and first.id == analyse  # render outranks it but is not ready
    queue.complete(analyse, {"tempo": 120})
    second = queue.claim("w")
    assert second is not None and second.id == generate
    assert queue.claim("w") is None  # generate still running
    queue.complete(generate)
    ready = queue.claim("w", kinds=["render"])
    assert ready is not None and ready.id == render and ready.depends_on == (analyse, generate)
    assert queue.get(analyse).result == {"tempo": 120}


def test_retries_back_off_exponentially_with_jitter_then_fail(queue: JobQueue) -> None:
    clock: Clock = queue._clock  # type: ignore[assignment]
    job_id = queue.submit("upscale")
    dependent = queue.submit("assemble", depends_on=[job_id])
    delays = []
    for attempt in (1, 2):
        assert queue.claim("w").id == job_id  # type: ignore[union-attr]
        failed = queue.fail(job_id, f"CUDA out of memory ({attempt})")
        assert failed.state == "queued" and failed.error.startswith("CUDA")  # type: ignore[union-attr]
        delay = failed.next_attempt_at - clock.now
        nominal = 2.0 * 2 ** (attempt - 1)
        assert nominal * 0.75 <= delay <= nominal * 1.25
        delays.append(delay)
        assert queue.claim("w") is None  # not due yet
        clock.now += delay
    assert delays[1] > delays[0]
    assert queue.claim("w").id == job_id  # type: ignore[union-attr]
    final = queue.fail(job_id, "still out of memory")
    assert final.state == "failed" and final.attempts == 3
    assert queue.get(dependent).state == "failed"
    assert "dependency" in (queue.get(dependent).error or "")
    assert queue.counts()["failed"] == 2


def test_retry_policy_delays_are_capped_and_spread() -> None:
    policy = RetryPolicy(base_delay_s=1.0, max_delay_s=10.0, jitter=0.5)
    rng = random.Random(1)
    samples = [policy.delay(3, rng) for _ in range(200)]
    assert all(2.0 <= s <= 6.0 for s in samples) and len({round(s, 3) for s in samples}) > 100
    assert all(policy.delay(20, rng) <= 15.0 for _ in range(50))
    with pytest.raises(ParameterError, match="jitter"):
        RetryPolicy(jitter=2.0)


def test_a_non_retryable_failure_fails_at_once(queue: JobQueue) -> None:
    job_id = queue.submit("analyse")
    queue.claim("w")
    assert queue.fail(job_id, "the song is not audio", retryable=False).state == "failed"


def test_cancel_reaches_dependents_and_refuses_late_results(queue: JobQueue) -> None:
    generate = queue.submit("generate")
    upscale = queue.submit("upscale", depends_on=[generate])
    assemble = queue.submit("assemble", depends_on=[upscale])
    other = queue.submit("qa")
    queue.claim("w")
    assert queue.cancel(generate)
    assert [queue.get(j).state for j in (generate, upscale, assemble, other)] == [
        "cancelled",
        "cancelled",
        "cancelled",
        "queued",
    ]
    with pytest.raises(ParameterError, match="cancelled or finished"):
        queue.complete(generate, {"late": True})
    assert not queue.cancel(generate)
    queue.retry_job(generate)
    assert [queue.get(j).state for j in (generate, upscale, assemble)] == ["queued"] * 3


def test_bad_submissions_change_nothing(queue: JobQueue) -> None:
    with pytest.raises(ParameterError, match="existing job id"):
        queue.submit_batch([{"kind": "analyse"}, {"kind": "plan", "depends_on": ["nope"]}])
    with pytest.raises(ParameterError, match="JSON"):
        queue.submit("plan", {"when": object()})
    with pytest.raises(ParameterError, match="kind"):
        queue.submit("")
    assert sum(queue.counts().values()) == 0
    # Dependencies may point at earlier requests of the same batch.
    first, second = queue.submit_batch(
        [{"kind": "analyse", "id": "a1"}, {"kind": "plan", "depends_on": ["a1"]}]
    )
    assert first == "a1" and queue.get(second).depends_on == ("a1",)
    with pytest.raises(ParameterError, match="unused job id"):
        queue.submit("analyse", job_id="a1")


_CRASHING_WORKER = """
import os, signal, sys
from engine.orchestrator.job_queue import JobQueue, worker_id
from engine.storage import open_database
queue = JobQueue(open_database(sys.argv[1]))
job = queue.claim(worker_id(), kinds=["generate"])
print(job.id, flush=True)
os.kill(os.getpid(), signal.SIGKILL)  # the model segfaults, say
"""


def _crash_a_worker(db_path: Path) -> str:
    done = subprocess.run(
        [sys.executable, "-c", _CRASHING_WORKER, str(db_path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == -9, done.stderr
    return done.stdout.strip()


def test_a_job_that_crashed_the_worker_twice_is_quarantined(tmp_path: Path) -> None:
    db_path = tmp_path / "apex.db"
    queue = JobQueue(open_database(db_path))
    poison = queue.submit("generate", {"prompt": "the one that crashes"}, priority=9)
    after = queue.submit("assemble", depends_on=[poison])
    fine = queue.submit("qa")

    assert _crash_a_worker(db_path) == poison
    assert queue.get(poison).state == "running"
    recovered = queue.recover_interrupted()
    assert [(j.id, j.state, j.crash_count) for j in recovered] == [(poison, "queued", 1)]

    assert _crash_a_worker(db_path) == poison
    recovered = queue.recover_interrupted()
    assert [(j.id, j.state, j.crash_count) for j in recovered] == [(poison, "quarantined", 2)]
    job = queue.get(poison)
    assert job.quarantined and "died" in (job.error or "")
    assert queue.get(after).state == "failed"
    # The quarantined job is not handed out again; other work goes on.
    claimed = queue.claim("w")
    assert claimed is not None and claimed.id == fine
    assert queue.claim("w") is None
    # A running job whose worker is alive is left alone.
    assert queue.recover_interrupted() == []
    # On request, it gets another chance.
    again = queue.retry_job(poison)
    assert again.state == "queued" and again.crash_count == 0 and not again.quarantined
    assert queue.get(after).state == "queued"


def test_the_queue_survives_reopening(tmp_path: Path) -> None:
    db = open_database(tmp_path / "apex.db")
    ids = JobQueue(db).submit_batch([{"kind": "analyse"}, {"kind": "plan", "priority": 3}])
    db.close()
    queue = JobQueue(open_database(tmp_path / "apex.db"))
    assert {job.id for job in queue.jobs(state="queued")} == set(ids)
    assert queue.claim("w").id == ids[1]  # type: ignore[union-attr]
    with pytest.raises(ParameterError, match="state"):
        queue.jobs(state="sleeping")
