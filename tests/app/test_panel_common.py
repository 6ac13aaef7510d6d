"""Helpers shared by the panels: image conversions, drops, and the PySide6 True leak."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from PySide6.QtCore import QMimeData, QUrl

from app.widgets.panel_common import (
    array_to_qimage,
    dropped_paths,
    load_rgb,
    qimage_to_array,
)
from engine.api import MediaInputError, ParameterError


def test_frames_cross_to_qimage_and_back_unchanged(tmp_path: Path) -> None:
    frame = np.random.default_rng(3).integers(0, 256, (37, 53, 3), dtype=np.uint8)
    assert np.array_equal(qimage_to_array(array_to_qimage(frame)), frame)  # odd width
    path = tmp_path / "f.png"
    assert array_to_qimage(frame).save(str(path))
    assert np.array_equal(load_rgb(path), frame)
    assert load_rgb(path, max_side=20).shape[1:] == (20, 3)
    with pytest.raises(ParameterError, match="frame"):
        array_to_qimage(frame[..., 0])


def test_unreadable_images_are_typed_errors(tmp_path: Path) -> None:
    with pytest.raises(MediaInputError, match="not there"):
        load_rgb(tmp_path / "missing.png")
    (tmp_path / "bad.png").write_bytes(b"nope")
    with pytest.raises(MediaInputError, match="not an image"):
        load_rgb(tmp_path / "bad.png")


def test_dropped_paths_keeps_local_files_of_the_wanted_kinds(tmp_path: Path) -> None:
    mime = QMimeData()
    mime.setUrls(
        [
            QUrl.fromLocalFile(str(tmp_path / "a.PNG")),
            QUrl.fromLocalFile(str(tmp_path / "b.cube")),
            QUrl("https://example.com/c.png"),
        ]
    )
    assert dropped_paths(mime, {".png"}) == [tmp_path / "a.PNG"]
    assert len(dropped_paths(mime)) == 2


def test_many_signal_emits_do_not_abort_the_interpreter() -> None:
    # PySide6 6.12 on Python 3.11 drops a reference to True on every emit(); without the
    # reserve this child process dies with "bool_dealloc" after about 600 emits.
    code = textwrap.dedent(
        """
        import app.widgets.panel_common
        from PySide6.QtCore import QObject, Signal
        class O(QObject):
            s = Signal(int)
        o = O()
        for i in range(20000):
            o.s.emit(i)
        print("done")
        """
    )
    root = Path(__file__).resolve().parents[2]
    result = subprocess.run(
        [sys.executable, "-c", code],
        check=False,
        cwd=root,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == "done"
