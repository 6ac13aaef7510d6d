"""The scripts in examples/ run (README habit 11: CI runs them)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_render_song_example(tiny_song: Path, tmp_path: Path) -> None:
    out = tmp_path / "example.mp4"
    result = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "render_song.py"), str(tiny_song), str(out)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "stages: analyse -> plan -> generate -> assemble" in result.stdout
    assert "ocean waves at dawn" in result.stdout
    assert out.stat().st_size > 10_000
