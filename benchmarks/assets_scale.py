"""Asset store at scale: store 10,000 assets in one project, then time searches.

Every asset goes through ``AssetManager.store_asset`` one by one, as an import would:
an atomic, fsynced file under ``assets/ab/`` and one committed transaction
(``synchronous=FULL``).  Nine in ten are 1-4 KiB binary blobs, one in ten a small PNG
(so the perceptual hash is computed too).  Names, descriptions, prompts and tags are
drawn from a 400-word vocabulary with a Zipf-like law, so common words match thousands
of assets and rare ones a handful.  Then 600 searches of six kinds are timed (one word,
two words, a prefix, a word + category, a word + tag, a tag only), with ``limit=50``
as the CLI and GUI ask, plus the same one-word queries without a limit.  The target:
search p95 <= 20 ms.  Then 1,000 jobs are queued in one batch (priorities, chains of
ten linked by dependencies) and drained by one worker (claim + complete): jobs per second.

    .venv/bin/python benchmarks/assets_scale.py                   # 10,000 assets
    .venv/bin/python benchmarks/assets_scale.py --assets 1000     # quicker
    .venv/bin/python benchmarks/assets_scale.py --assets 0        # only the job queue
    .venv/bin/python benchmarks/assets_scale.py --json out/assets_scale.json
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

TARGET_P95_MS = 20.0
CATEGORIES = ("image", "still", "audio", "video", "mask", "render")


def _vocabulary(rng: random.Random, size: int = 400) -> list[str]:
    syllables = ["ka", "lo", "mi", "ne", "su", "ta", "ri", "vo", "da", "pe", "zu", "xi", "an", "or"]
    words: set[str] = set()
    while len(words) < size:
        words.add("".join(rng.choice(syllables) for _ in range(rng.randint(2, 4))))
    return sorted(words)


def _zipf_pick(rng: random.Random, words: list[str], count: int) -> list[str]:
    weights = [1.0 / (rank + 1) for rank in range(len(words))]
    return rng.choices(words, weights=weights, k=count)


def _png(rng: random.Random) -> bytes:
    import cv2
    import numpy as np

    image = np.zeros((64, 64, 3), np.uint8)
    for _ in range(4):
        colour = tuple(rng.randrange(256) for _ in range(3))
        cv2.circle(image, (rng.randrange(64), rng.randrange(64)), rng.randrange(4, 24), colour, -1)
    ok, data = cv2.imencode(".png", image)
    assert ok
    return data.tobytes()


def _percentiles(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    pick = lambda q: ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]  # noqa: E731
    return {
        "n": len(ordered),
        "p50_ms": round(pick(0.50) * 1000, 3),
        "p95_ms": round(pick(0.95) * 1000, 3),
        "max_ms": round(ordered[-1] * 1000, 3),
        "mean_ms": round(statistics.fmean(ordered) * 1000, 3),
    }


def run(*, assets: int, searches: int, folder: Path, seed: int) -> dict[str, Any]:
    from engine.assets.asset_manager import AssetManager

    rng = random.Random(seed)
    words = _vocabulary(rng)
    tags = [f"tag{i:02d}" for i in range(50)]
    manager = AssetManager(folder, {"asset_operations_per_minute": None})
    manager.create_project("scale")
    store_times: list[float] = []
    started = time.perf_counter()
    for index in range(assets):
        is_png = index % 10 == 0
        data = _png(rng) if is_png else os.urandom(rng.randint(1024, 4096))
        asset = {
            "content": data,
            "name": " ".join(_zipf_pick(rng, words, 3)),
            "description": " ".join(_zipf_pick(rng, words, 8)),
            "prompt": " ".join(_zipf_pick(rng, words, 12)),
            "category": "image" if is_png else rng.choice(CATEGORIES),
            "tags": rng.sample(tags, rng.randint(1, 4)),
            "metadata": {"seed": index, "model": rng.choice(["sd15", "sdxl", "procedural"])},
            "extension": "png" if is_png else "bin",
        }
        t0 = time.perf_counter()
        manager.store_asset(asset)
        store_times.append(time.perf_counter() - t0)
        if (index + 1) % 1000 == 0:
            logging.info("stored %d assets", index + 1)
    store_total = time.perf_counter() - started

    kinds: dict[str, list[float]] = {}
    hits: dict[str, list[int]] = {}

    def timed(kind: str, *args: Any, **kwargs: Any) -> None:
        t0 = time.perf_counter()
        found = manager.search_assets(*args, **kwargs)
        kinds.setdefault(kind, []).append(time.perf_counter() - t0)
        hits.setdefault(kind, []).append(len(found))

    per_kind = max(1, searches // 6)
    for _ in range(per_kind):
        timed("one word", rng.choice(words), limit=50)
        timed("two words", " ".join(_zipf_pick(rng, words, 2)), limit=50)
        timed("prefix", rng.choice(words)[:3], limit=50)
        timed("word + category", rng.choice(words), category=rng.choice(CATEGORIES), limit=50)
        timed("word + tag", rng.choice(words), tags=[rng.choice(tags)], limit=50)
        timed("tag only", tags=[rng.choice(tags)], limit=50)
    for _ in range(per_kind):
        timed("one word, no limit", rng.choice(words))
    limited = [t for kind, values in kinds.items() if "no limit" not in kind for t in values]

    t0 = time.perf_counter()
    groups = manager.find_duplicates()
    dupes_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    stats = manager.get_storage_statistics()
    stats_s = time.perf_counter() - t0
    manager.close()
    overall = _percentiles(limited)
    return {
        "assets": assets,
        "store": {
            "total_s": round(store_total, 2),
            "assets_per_s": round(assets / store_total, 1),
            **_percentiles(store_times),
        },
        "search_limit_50": overall,
        "search_by_kind": {
            kind: {**_percentiles(values), "mean_hits": round(statistics.fmean(hits[kind]), 1)}
            for kind, values in kinds.items()
        },
        "find_duplicates_s": round(dupes_s, 3),
        "duplicate_groups": len(groups),
        "storage_statistics_s": round(stats_s, 3),
        "database_bytes": stats["projects"][0]["database_bytes"],
        "asset_bytes": stats["total_bytes"],
        "target_p95_ms": TARGET_P95_MS,
        "target_met": overall["p95_ms"] <= TARGET_P95_MS,
    }


def run_jobs(*, jobs: int, folder: Path, seed: int) -> dict[str, Any]:
    """Queue ``jobs`` jobs (one batch, chains of ten by dependency), then drain them.

    One worker claims and completes each job: two write transactions per job, as a real
    worker does, each committed at ``synchronous=FULL``.
    """
    from engine.assets.project import Project
    from engine.orchestrator.job_queue import JobQueue

    rng = random.Random(seed)
    project = Project.create(folder / "jobs")
    queue = JobQueue(project.database)
    requests: list[dict[str, Any]] = []
    for index in range(jobs):
        request: dict[str, Any] = {
            "id": f"job{index:05d}",
            "kind": rng.choice(["analyse", "plan", "generate", "upscale", "assemble", "qa"]),
            "priority": rng.randint(0, 9),
            "payload": {"shot": index},
        }
        if index % 10:
            request["depends_on"] = [f"job{index - 1:05d}"]
        requests.append(request)
    t0 = time.perf_counter()
    queue.submit_batch(requests)
    submit_s = time.perf_counter() - t0
    claim_times: list[float] = []
    t0 = time.perf_counter()
    while True:
        t1 = time.perf_counter()
        job = queue.claim("bench")
        claim_times.append(time.perf_counter() - t1)
        if job is None:
            break
        queue.complete(job.id, {"ok": True})
    drain_s = time.perf_counter() - t0
    counts = queue.counts()
    project.close()
    return {
        "jobs": jobs,
        "submit_batch_s": round(submit_s, 3),
        "drain_s": round(drain_s, 2),
        "jobs_per_s": round(jobs / drain_s, 1),
        "claim": _percentiles(claim_times),
        "succeeded": counts["succeeded"],
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--assets", type=int, default=10_000)
    parser.add_argument("--searches", type=int, default=600)
    parser.add_argument("--jobs", type=int, default=1000, help="jobs to queue and drain (0: skip)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--dir", type=Path, default=None, help="where to make the project")
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    logging.getLogger("engine").setLevel(logging.WARNING)
    result: dict[str, Any] = {}
    if args.assets > 0:
        with tempfile.TemporaryDirectory(dir=args.dir) as folder:
            result = run(
                assets=args.assets, searches=args.searches, folder=Path(folder), seed=args.seed
            )
    if args.jobs > 0:
        with tempfile.TemporaryDirectory(dir=args.dir) as folder:
            result["job_queue"] = run_jobs(jobs=args.jobs, folder=Path(folder), seed=args.seed)
    result["machine"] = {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "sqlite": __import__("sqlite3").sqlite_version,
    }
    text = json.dumps(result, indent=2)
    print(text)
    if args.json is not None:
        from engine.atomic_files import atomic_write_text

        args.json.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(args.json, text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
