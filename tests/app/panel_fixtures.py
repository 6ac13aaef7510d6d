"""Fixtures and helpers of the panels' tests (style bible, characters, grading).

Images are made here (numpy → PNG through Qt); every file lives under ``tmp_path``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PySide6.QtCore import QMimeData, QPoint, QPointF, Qt, QUrl
from PySide6.QtGui import QDragEnterEvent, QDropEvent
from PySide6.QtWidgets import QApplication, QWidget
from pytestqt.qtbot import QtBot

from app.engine_bridge import EngineBridge
from app.widgets.panel_common import array_to_qimage
from engine.api import ConfigManager


@pytest.fixture
def bridge(tmp_path: Path, qtbot: QtBot) -> Iterator[EngineBridge]:
    bridge = EngineBridge(tmp_path / "projects", config=ConfigManager().config)
    bridge.start()
    yield bridge
    bridge.shutdown()


@pytest.fixture
def project_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "project"
    folder.mkdir()
    return folder


def write_png(path: Path, frame: np.ndarray) -> Path:
    """Save an ``(H, W, 3) uint8`` RGB array as a PNG."""
    path.parent.mkdir(parents=True, exist_ok=True)
    assert array_to_qimage(frame).save(str(path), "PNG"), path
    return path


def split_image(path: Path, left: tuple[int, int, int], right: tuple[int, int, int]) -> Path:
    """A 160x90 picture: the left half one colour, the right half another."""
    frame = np.zeros((90, 160, 3), np.uint8)
    frame[:, :80] = left
    frame[:, 80:] = right
    return write_png(path, frame)


def gradient_image(path: Path, width: int = 192, height: int = 108) -> Path:
    """A smooth colour ramp (every grade changes it visibly)."""
    x = np.linspace(0.0, 1.0, width)[None, :]
    y = np.linspace(0.0, 1.0, height)[:, None]
    frame = np.stack(
        [
            np.broadcast_to(40 + 160 * x, (height, width)),
            np.broadcast_to(60 + 120 * y, (height, width)),
            120 + 60 * x * y,
        ],
        axis=-1,
    )
    return write_png(path, np.round(frame).astype(np.uint8))


def figure_image(
    path: Path,
    *,
    coat: tuple[int, int, int],
    background: tuple[int, int, int] = (200, 210, 220),
    shift: int = 0,
) -> Path:
    """A standing figure (head and coat) on a plain background."""
    frame = np.empty((160, 120, 3), np.uint8)
    frame[:] = background
    cx = 60 + shift
    yy, xx = np.mgrid[0:160, 0:120]
    head = (xx - cx) ** 2 + (yy - 35) ** 2 <= 15**2
    frame[head] = (230, 190, 160)
    body = (np.abs(xx - cx) <= 24 - (yy - 55) // 8) & (yy >= 55) & (yy <= 145)
    frame[body] = coat
    return write_png(path, frame)


def drop_files(widget: QWidget, paths: list[Path], point: QPoint | None = None) -> QDropEvent:
    """Drag ``paths`` over ``widget`` and drop them, as the window system would."""
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(p)) for p in paths])
    point = point or QPoint(widget.width() // 2, widget.height() // 2)
    buttons, modifiers = Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier
    enter = QDragEnterEvent(point, Qt.DropAction.CopyAction, mime, buttons, modifiers)
    QApplication.sendEvent(widget, enter)
    drop = QDropEvent(QPointF(point), Qt.DropAction.CopyAction, mime, buttons, modifiers)
    if enter.isAccepted():
        QApplication.sendEvent(widget, drop)
    return drop
