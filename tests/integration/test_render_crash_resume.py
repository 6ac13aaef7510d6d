"""``apex-director render`` runs as jobs in a project; SIGKILLed again and again at points
spread over the whole render, each next run resumes, and the final video equals an
uninterrupted render frame for frame, with no artifact lost or made twice and the job
table consistent."""

from __future__ import annotations

import hashlib
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from engine.cli import main

REPO = Path(__file__).resolve().parents[2]
STAGES = ("analyse", "plan", "generate", "assemble", "qa", "render")


def _frame_hashes(path: Path) -> list[str]:
    import av

    with av.open(str(path)) as container:
        return [
            hashlib.sha256(frame.to_ndarray().tobytes()).hexdigest()
            for frame in container.decode(video=0)
        ]


def _progress(project: Path, cache: Path) -> tuple[int, int, int]:
    """How far the render got: jobs succeeded, stills made, segments encoded."""
    succeeded = 0
    if (project / "apex.db").exists():
        try:
            with sqlite3.connect(f"file:{project / 'apex.db'}?mode=ro", uri=True) as db:
                succeeded = db.execute(
                    "SELECT count(*) FROM job WHERE state = 'succeeded'"
                ).fetchone()[0]
        except sqlite3.Error:  # the schema is being created
            succeeded = 0
    # finished files only (not the temporary files of writes under way)
    stills = len([p for p in cache.glob("stills/*.png") if not p.name.startswith(".")])
    segments = len(
        [p for p in cache.glob("segments/*/segment_*.mp4") if not p.name.startswith(".")]
    )
    return int(succeeded), stills, segments


def _render_args(song: Path, out: Path, project: Path, cache: Path) -> list[str]:
    return [
        "render",
        str(song),
        "-o",
        str(out),
        "--preset",
        "draft",
        "--project",
        str(project),
        "--cache-dir",
        str(cache),
    ]


@pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL is POSIX")
def test_render_killed_at_ten_points_resumes_to_the_same_video(
    tiny_song: Path, tmp_path: Path
) -> None:
    reference = tmp_path / "reference.mp4"
    ref_cache = tmp_path / "ref-cache"
    assert main(_render_args(tiny_song, reference, tmp_path / "ref-project", ref_cache)) == 0
    ref_stills = sorted(p.name for p in ref_cache.glob("stills/*.png"))

    out = tmp_path / "video.mp4"
    project, cache = tmp_path / "project", tmp_path / "cache"
    command = [
        sys.executable,
        "-m",
        "engine.cli",
        "--quiet",
        *_render_args(tiny_song, out, project, cache),
    ]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    rng = random.Random(6)
    kills: list[tuple[int, int, int]] = []
    deadline = time.monotonic() + 240
    while True:
        assert time.monotonic() < deadline, f"no finished render after {len(kills)} kills"
        # The furthest point reached so far (a run that must redo work, as after a kill
        # between the join and the job's record, which removed the segments, is killed
        # only once past it: one kill per point of the render).
        start = max([_progress(project, cache), *kills])
        process = subprocess.Popen(
            command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        # Kill at a random moment soon after the render made progress (a stage job
        # finished, a still or a segment was written): one kill per step of the render.
        delay = rng.uniform(0.0, 0.08) if len(kills) % 2 else 0.0
        reached = start
        while process.poll() is None and reached <= start:
            time.sleep(0.005)
            reached = _progress(project, cache)
        if process.poll() is None:
            time.sleep(delay)
            process.send_signal(signal.SIGKILL)
        process.wait(60)
        if process.returncode == -signal.SIGKILL:
            kills.append(reached)  # the point that triggered this kill
            if out.exists():  # only ever the whole video: it is renamed into place
                assert len(_frame_hashes(out)) > 0
            continue
        assert process.returncode == 0, process.stderr.read().decode()[-3000:]  # type: ignore[union-attr]
        break

    print(f"{len(kills)} kills at (jobs done, stills, segments): {kills}")
    # at least ten kills, spread from the first stage to the last ones
    assert len(kills) >= 10, kills
    assert kills[0][0] <= 1 and kills[-1][0] >= 3, kills
    assert kills == sorted(set(kills))  # each kill past the one before

    assert _frame_hashes(out) == _frame_hashes(reference)
    stills = sorted(p.name for p in cache.glob("stills/*.png"))  # temporary ones too
    assert stills == ref_stills, (set(stills) ^ set(ref_stills), kills)  # none lost or extra
    # the temporary files of writes a kill interrupted are removed by the run that finished
    places = [*cache.rglob("*"), *project.rglob("*"), *tmp_path.glob("*")]
    assert [p for p in places if ".tmp-" in p.name] == []
    with sqlite3.connect(project / "apex.db") as db:
        rows = db.execute(
            "SELECT id, kind, state, worker FROM job ORDER BY created_at, rowid"
        ).fetchall()
    assert [row[1] for row in rows] == list(STAGES)  # one job per stage, none duplicated
    assert {row[2] for row in rows} == {"succeeded"}
    assert all(row[3] is None for row in rows)

    # run again: nothing to do, nothing rendered twice
    started = time.monotonic()
    assert main(_render_args(tiny_song, out, project, cache)) == 0
    assert time.monotonic() - started < 5
    with sqlite3.connect(project / "apex.db") as db:
        assert db.execute("SELECT count(*) FROM job").fetchone()[0] == len(STAGES)
