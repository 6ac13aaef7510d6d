"""Jobs a second through ``APEXOrchestrator``, and recovery from a flaky backend.

1. Drain: N no-op jobs (random priorities, chains of ten linked by dependencies) are
   queued with one ``submit_batch``, then the orchestrator, hosted by the engine thread,
   runs them (claim, handler in the CPU pool, complete, events to a subscriber).
   Reported: jobs a second from ``start`` to the last one finished, the orchestrator's own
   ``get_performance_metrics`` (throughput, average latency queued→finished, RSS).
2. Recovery: M ``generate`` jobs (64x48 procedural stills) through a registered backend
   that fails a share of its calls at random with a BackendError; the queue retries them
   with backoff (base 10 ms for the benchmark).  Reported: errors.total, recovery_rate,
   jobs that still failed after their attempts, time.

    .venv/bin/python benchmarks/orchestrator_drain.py
    .venv/bin/python benchmarks/orchestrator_drain.py --jobs 200 --generate 20
"""

from __future__ import annotations

import argparse
import json
import logging
import random
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np

from engine.errors import BackendError
from engine.orchestrator.engine_thread import EngineThread
from engine.orchestrator.handlers import register_backend
from engine.orchestrator.orchestrator import APEXOrchestrator


class _Unreliable:
    name = "unreliable"
    is_draft = True

    def __init__(self, rng: random.Random, failure_rate: float) -> None:
        self.rng = rng
        self.failure_rate = failure_rate

    def generate(self, request: Any) -> np.ndarray:
        if self.rng.random() < self.failure_rate:
            raise BackendError("simulated backend outage", backend_name=self.name)
        return np.full((request.height, request.width, 3), 80, np.uint8)


def drain(engine: EngineThread, folder: Path, jobs: int, workers: int) -> dict[str, Any]:
    rng = random.Random(1)
    orchestrator = APEXOrchestrator(
        folder,
        config={"cpu_workers": workers, "poll_interval_s": 0.01},
        handlers={"noop": lambda context: {"n": context.payload["n"]}},
    )
    events = {"count": 0}
    orchestrator.subscribe(lambda event: events.__setitem__("count", events["count"] + 1))
    requests = []
    for n in range(jobs):
        request: dict[str, Any] = {
            "id": f"job-{n:05d}",
            "kind": "noop",
            "payload": {"n": n},
            "priority": rng.randint(0, 9),
        }
        if n % 10:
            request["depends_on"] = [f"job-{n - 1:05d}"]
        requests.append(request)
    started = time.perf_counter()
    ids = engine.call(orchestrator.submit_batch(requests))
    submitted = time.perf_counter() - started
    engine.call(orchestrator.initialize())
    started = time.perf_counter()
    engine.call(orchestrator.start())
    results = engine.call(orchestrator.drain(ids))
    elapsed = time.perf_counter() - started
    metrics = orchestrator.get_performance_metrics()
    engine.call(orchestrator.close())
    return {
        "jobs": jobs,
        "cpu_workers": workers,
        "submit_s": round(submitted, 3),
        "drain_s": round(elapsed, 3),
        "jobs_per_second": round(jobs / elapsed, 1),
        "succeeded": sum(r["state"] == "succeeded" for r in results),
        "events": events["count"],
        "metrics": metrics,
    }


def recovery(engine: EngineThread, folder: Path, jobs: int, failure_rate: float) -> dict[str, Any]:
    rng = random.Random(2)
    register_backend("unreliable", lambda **_: _Unreliable(rng, failure_rate))
    orchestrator = APEXOrchestrator(
        folder,
        config={
            "retry_base_delay_s": 0.01,
            "retry_max_delay_s": 0.1,
            "max_attempts": 3,
            "poll_interval_s": 0.01,
        },
    )
    engine.call(orchestrator.initialize())
    engine.call(orchestrator.start())
    started = time.perf_counter()
    ids = engine.call(
        orchestrator.submit_batch(
            [
                {
                    "kind": "generate",
                    "payload": {
                        "prompt": "benchmark",
                        "seed": n,
                        "width": 64,
                        "height": 48,
                        "backend_order": ["unreliable"],
                    },
                }
                for n in range(jobs)
            ]
        )
    )
    results = engine.call(orchestrator.drain(ids))
    elapsed = time.perf_counter() - started
    stats = engine.call(orchestrator.get_system_stats())
    engine.call(orchestrator.close())
    return {
        "jobs": jobs,
        "failure_rate": failure_rate,
        "seconds": round(elapsed, 3),
        "succeeded": sum(r["state"] == "succeeded" for r in results),
        "failed": sum(r["state"] == "failed" for r in results),
        "errors": stats["errors"],
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=1000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--generate", type=int, default=100)
    parser.add_argument("--failure-rate", type=float, default=0.3)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)
    with tempfile.TemporaryDirectory() as tmp, EngineThread() as engine:
        result = {
            "drain": drain(engine, Path(tmp) / "drain", args.jobs, args.workers),
            "recovery": recovery(engine, Path(tmp) / "recovery", args.generate, args.failure_rate),
        }
    text = json.dumps(result, indent=2)
    print(text)
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
