"""Small helpers shared by the style-bible editor, character library and grading panel.

Images cross between Qt and the engine as ``(H, W, 3) uint8`` RGB arrays; Qt reads and
scales them (``QImage`` is reentrant, so workers of the bridge may use it), the engine
grades and compares them.  No OpenCV here: ``app/`` imports only ``engine.api``,
PySide6, numpy and the standard library.
"""

from __future__ import annotations

import ctypes
import logging
import os
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
from PySide6.QtCore import QMimeData, QObject, Qt, Signal
from PySide6.QtGui import QImage, QPixmap
from PySide6.QtWidgets import QLabel, QWidget

from engine import api

__all__ = [
    "IMAGE_EXTENSIONS",
    "array_to_qimage",
    "bool_refcount_leaks",
    "dropped_paths",
    "load_rgb",
    "mark_invalid",
    "protect_bools",
    "qimage_to_array",
    "save_screenshot",
    "thumbnail",
]

log = logging.getLogger(__name__)

IMAGE_EXTENSIONS = frozenset({".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff"})

# A field that fails validation gets this frame; the message goes next to it.
_INVALID_STYLE = "border: 2px solid #d9534f; border-radius: 3px;"


def dropped_paths(mime: QMimeData, suffixes: Iterable[str] | None = None) -> list[Path]:
    """Local files named by a drag's URLs, optionally only those with ``suffixes``."""
    if not mime.hasUrls():
        return []
    wanted = {s.lower() for s in suffixes} if suffixes is not None else None
    out = []
    for url in mime.urls():
        if not url.isLocalFile():
            continue
        path = Path(url.toLocalFile())
        if wanted is None or path.suffix.lower() in wanted:
            out.append(path)
    return out


def qimage_to_array(image: QImage) -> np.ndarray:
    """An ``(H, W, 3) uint8`` RGB copy of ``image``."""
    rgb = image.convertToFormat(QImage.Format.Format_RGB888)
    height, width, stride = rgb.height(), rgb.width(), rgb.bytesPerLine()
    buffer = np.frombuffer(rgb.constBits(), dtype=np.uint8, count=stride * height)
    return buffer.reshape(height, stride)[:, : width * 3].reshape(height, width, 3).copy()


def array_to_qimage(frame: np.ndarray) -> QImage:
    """A ``QImage`` holding its own copy of an ``(H, W, 3) uint8`` RGB frame."""
    if frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8:
        raise api.ParameterError("frame", getattr(frame, "shape", frame), "(H, W, 3) uint8 RGB")
    frame = np.ascontiguousarray(frame)
    height, width, _ = frame.shape
    image = QImage(frame.data, width, height, 3 * width, QImage.Format.Format_RGB888)
    return image.copy()  # detach from the numpy buffer


def load_rgb(path: Path | str, *, max_side: int | None = None) -> np.ndarray:
    """Read an image as RGB, scaled down so its longer side is at most ``max_side``.

    Raises
    ------
    MediaInputError
        The file is missing or not an image Qt can read.
    """
    path = Path(path)
    if not path.is_file():
        raise api.MediaInputError(path, "is not there (moved or deleted?)")
    image = QImage(str(path))
    if image.isNull():
        raise api.MediaInputError(path, "is not an image APEX Director can read (PNG, JPEG...)")
    if max_side is not None and max(image.width(), image.height()) > max_side:
        image = image.scaled(
            max_side,
            max_side,
            Qt.AspectRatioMode.KeepAspectRatio,
            Qt.TransformationMode.SmoothTransformation,
        )
    return qimage_to_array(image)


def thumbnail(path: Path | str, side: int = 96) -> QImage:
    """A thumbnail of an image file (a grey tile when it cannot be read)."""
    image = QImage(str(path))
    if image.isNull():
        image = QImage(side, side, QImage.Format.Format_RGB888)
        image.fill(Qt.GlobalColor.darkGray)
        return image
    return image.scaled(
        side,
        side,
        Qt.AspectRatioMode.KeepAspectRatio,
        Qt.TransformationMode.SmoothTransformation,
    )


def mark_invalid(widget: QWidget, invalid: bool) -> None:
    """Frame ``widget`` in red (and set its ``invalid`` property) while ``invalid``."""
    if bool(widget.property("invalid")) == invalid:
        return
    widget.setProperty("invalid", invalid)
    widget.setStyleSheet(_INVALID_STYLE if invalid else "")


def save_screenshot(widget: QWidget, path: Path | str) -> Path:
    """Save ``widget.grab()`` as a PNG (for docs/images/); returns the path.

    Raises
    ------
    MediaInputError
        The PNG could not be written.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    pixmap: QPixmap = widget.grab()
    # written beside the target and renamed over it, so a crash never leaves half a PNG
    partial = path.with_name(f".{path.name}.partial")
    if not pixmap.save(str(partial), "PNG"):
        partial.unlink(missing_ok=True)
        raise api.MediaInputError(path, "could not be written; check the folder's permissions")
    os.replace(partial, path)
    return path


# -- PySide6 6.12 on Python 3.11: signal emit() drops a reference to True ---------------
#
# The sibling of the None bug that app/qt_compat.py works around: ``Signal.emit()`` (and
# ``disconnect()``) return ``True``/``False`` without taking a reference, so every emit
# from Python takes one reference away from ``True``.  ``True`` starts with a few hundred
# references, and the interpreter aborts with ``Fatal Python error: bool_dealloc`` after
# about 600 emits (a slider drag on the grading panel emits dozens).  Reproduce with::
#
#     class O(QObject): s = Signal()
#     o = O(); before = sys.getrefcount(True)
#     for _ in range(100): o.s.emit()
#     print(sys.getrefcount(True) - before)   # -100 with the bug, 0 without
#
# pyproject.toml keeps PySide6 below 6.12 (docs/decisions/0012), where emit() does not
# leak; like protect_none(), this guard is for a 6.12 installed by hand, and does nothing
# when the leak is not there.  The same remedy as for None: a reserve no session can
# drain.  It belongs beside protect_none() in app/qt_compat.py; it is applied here, on
# import of the panels, until it moves there.

_BOOL_RESERVE = 1 << 40


class _Probe(QObject):
    ping = Signal()


def bool_refcount_leaks() -> bool:
    """True when emitting a PySide6 signal takes a reference away from ``True``."""
    if sys.version_info >= (3, 12):
        return False  # True and False are immortal (PEP 683)
    probe = _Probe()
    before = sys.getrefcount(True)
    for _ in range(10):
        probe.ping.emit()
    leaked = sys.getrefcount(True) < before
    probe.deleteLater()
    return leaked


def protect_bools() -> bool:
    """Make ``True`` and ``False`` effectively immortal where PySide6 leaks them.

    Returns
    -------
    bool
        True when the reserve is in place (Python < 3.12 with the bug present).
    """
    if not bool_refcount_leaks():
        return False
    for value in (True, False):
        refcount = ctypes.c_ssize_t.from_address(id(value))
        if refcount.value < _BOOL_RESERVE:
            refcount.value += _BOOL_RESERVE
    log.info("PySide6 signal emits drop references to True; gave True and False a reserve")
    return True


protect_bools()


class ScaledImageLabel(QLabel):
    """A label that shows one image scaled to its size (aspect kept), re-scaled on resize.

    Subclasses set their placeholder text and style; :meth:`show_image` swaps the image.
    """

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._image = QImage()
        self.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.setWordWrap(True)

    def show_image(self, image: QImage) -> None:
        self._image = image
        self._refresh()

    def image(self) -> QImage:
        return self._image

    def resizeEvent(self, event: Any) -> None:  # noqa: N802 (Qt override)
        super().resizeEvent(event)
        self._refresh()

    def _refresh(self) -> None:
        if self._image.isNull():
            return
        self.setPixmap(
            QPixmap.fromImage(self._image).scaled(
                self.size(),
                Qt.AspectRatioMode.KeepAspectRatio,
                Qt.TransformationMode.SmoothTransformation,
            )
        )
