from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from engine.atomic_files import atomic_path, atomic_write_text


def test_atomic_write_replaces_whole_file(tmp_path: Path) -> None:
    target = tmp_path / "a.json"
    target.write_text("old")
    atomic_write_text(target, "new")
    assert target.read_text() == "new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.json"]


def test_failed_write_keeps_the_old_file_and_leaves_no_temp(tmp_path: Path) -> None:
    target = tmp_path / "video.mp4"
    target.write_text("precious")
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        assert tmp.suffix == ".mp4" and tmp.parent == tmp_path
        tmp.write_text("half")
        raise RuntimeError("encoder died")
    assert target.read_text() == "precious"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["video.mp4"]


def test_importing_the_engine_is_light() -> None:
    """`import engine.api` and the CLI must not pull in torch, librosa, av or Qt."""
    code = (
        "import sys, engine.api, engine.cli\n"
        "heavy = [m for m in ('torch', 'diffusers', 'librosa', 'av', 'cv2', 'PySide6', 'peewee')"
        " if m in sys.modules]\n"
        "print(','.join(heavy))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_cli_help_runs() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "engine.cli", "render", "--help"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert "--preset" in out.stdout and "--json-report" in out.stdout


def test_new_files_get_the_usual_permissions(tmp_path: Path) -> None:
    import os

    target = tmp_path / "out.json"
    atomic_write_text(target, "{}")
    umask = os.umask(0)
    os.umask(umask)
    assert target.stat().st_mode & 0o777 == 0o666 & ~umask
    target.chmod(0o640)
    atomic_write_text(target, "{}")
    assert target.stat().st_mode & 0o777 == 0o640
