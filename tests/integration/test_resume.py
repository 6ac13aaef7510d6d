"""A render killed with SIGKILL and started again resumes from its finished segments
and gives a file equal, frame for frame, to an uninterrupted render."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from engine.cli import main


def _frame_hashes(path: Path) -> list[str]:
    import av

    with av.open(str(path)) as container:
        return [
            hashlib.sha256(frame.to_ndarray().tobytes()).hexdigest()
            for frame in container.decode(video=0)
        ]


@pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL is POSIX")
def test_killed_render_resumes_and_matches_an_uninterrupted_one(
    tiny_song: Path, tmp_path: Path
) -> None:
    out = tmp_path / "video.mp4"
    cache = tmp_path / "cache"
    command = [
        sys.executable,
        "-m",
        "engine.cli",
        "--quiet",
        "render",
        str(tiny_song),
        "-o",
        str(out),
        "--preset",
        "draft",
        "--cache-dir",
        str(cache),
    ]
    process = subprocess.Popen(
        command, env={**os.environ}, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    deadline = time.monotonic() + 120
    try:
        while not list(cache.glob("segments/*/segment_00001.mp4")):
            assert process.poll() is None, process.stderr.read().decode()  # type: ignore[union-attr]
            assert time.monotonic() < deadline, "the render never wrote two segments"
            time.sleep(0.02)
        process.send_signal(signal.SIGKILL)
    finally:
        process.wait(timeout=30)
    assert process.returncode == -signal.SIGKILL
    assert not out.exists()  # nothing half-written where the user looks
    finished = sorted(p.name for p in cache.glob("segments/*/segment_*.mp4"))
    assert finished[:2] == ["segment_00000.mp4", "segment_00001.mp4"]

    report_path = tmp_path / "report.json"
    assert (
        main(
            [
                "render",
                str(tiny_song),
                "-o",
                str(out),
                "--preset",
                "draft",
                "--cache-dir",
                str(cache),
                "--json-report",
                str(report_path),
            ]
        )
        == 0
    )
    report = json.loads(report_path.read_text())
    assert report["output"]["segments_reused"] >= 2
    assert report["output"]["segments"] > report["output"]["segments_reused"]
    assert not list(cache.glob("segments/*"))  # cleaned up after the join

    clean = tmp_path / "clean.mp4"
    assert (
        main(
            [
                "render",
                str(tiny_song),
                "-o",
                str(clean),
                "--preset",
                "draft",
                "--cache-dir",
                str(tmp_path / "other-cache"),
            ]
        )
        == 0
    )
    resumed_frames, clean_frames = _frame_hashes(out), _frame_hashes(clean)
    assert len(resumed_frames) == report["output"]["frames"]
    assert resumed_frames == clean_frames
