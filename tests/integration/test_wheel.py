"""The wheel installs with pip into a fresh virtual environment and its console scripts work.

Slow (``--run-slow``): it builds the wheel from this checkout, creates a venv, installs the
wheel with its dependencies (from the configured index; the ``sd`` extra, torch, is not
asked for) and runs ``apex-director --help``, ``--version`` and ``analyze`` of the shipped
demo song from outside the checkout, so the resources must come from the wheel's
``share/apex-director/`` data files, not from the source tree.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from engine import __version__

ROOT = Path(__file__).resolve().parents[2]


def _run(cmd: list[str], cwd: Path, env: dict[str, str], timeout: int) -> str:
    proc = subprocess.run(
        cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )
    assert proc.returncode == 0, f"{cmd} exited {proc.returncode}:\n{proc.stderr[-3000:]}"
    return proc.stdout + proc.stderr


@pytest.mark.slow
def test_wheel_installs_and_its_console_scripts_work(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env["HOME"] = str(tmp_path / "home")
    env.pop("APEX_DIRECTOR_DATA", None)
    wheels = tmp_path / "wheels"
    _run(
        [sys.executable, "-m", "pip", "wheel", str(ROOT), "-w", str(wheels), "--no-deps", "-q"],
        tmp_path,
        env,
        300,
    )
    (wheel,) = wheels.glob("apex_director-*.whl")
    venv = tmp_path / "venv"
    _run([sys.executable, "-m", "venv", str(venv)], tmp_path, env, 120)
    _run([str(venv / "bin" / "pip"), "install", "-q", str(wheel)], tmp_path, env, 600)
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    cli = str(venv / "bin" / "apex-director")
    assert "render" in _run([cli, "--help"], outside, env, 60)
    assert __version__ in _run([cli, "--version"], outside, env, 60)
    demo = venv / "share" / "apex-director" / "resources" / "demo" / "demo_song.mp3"
    assert demo.is_file(), "the wheel did not install resources/ under share/apex-director"
    out = _run([cli, "analyze", str(demo), "--cache-dir", str(tmp_path / "c")], outside, env, 300)
    assert "123.8 BPM" in out
    assert "A minor" in out
    # The engine in the venv finds its data in the venv, not in this checkout.
    probe = _run(
        [
            str(venv / "bin" / "python"),
            "-c",
            "from engine.resources import data_root; from engine.grading.grader import "
            "shipped_looks; print(data_root()); print(len(shipped_looks()))",
        ],
        outside,
        env,
        60,
    ).split()
    assert Path(probe[0]) == venv / "share" / "apex-director"
    assert int(probe[1]) >= 4
    assert (venv / "bin" / "apex-director-gui").is_file()
    assert not list((venv / "lib").glob("python3*/site-packages/torch"))
