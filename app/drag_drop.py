"""Drag and drop onto the main window: what a dropped file means.

* an audio file → a new project for that song, analysed at once;
* a project folder or its ``project.apex.json`` → open it;
* a ``.cube`` → the grading panel's LUT;
* images → the character library (or, dropped on a shot, that shot's still: the
  timeline handles drops on its own clips);
* anything else → a message in the window that says why, never a modal dialog.

Panels that take drops themselves (the character library, the grading panel, the
timeline) accept them before the window sees them; this handler covers the rest of the
window.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from PySide6.QtCore import QEvent, QMimeData, QObject, QPoint, Signal
from PySide6.QtGui import QDragEnterEvent, QDragMoveEvent, QDropEvent
from PySide6.QtWidgets import QWidget

from app.engine_bridge import AUDIO_EXTENSIONS

__all__ = ["IMAGE_EXTENSIONS", "DropHandler", "DropItem", "DropKind", "classify", "paths_of"]

IMAGE_EXTENSIONS = frozenset({".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff"})
PROJECT_FILE = "project.apex.json"


class DropKind(enum.Enum):
    AUDIO = "audio"
    PROJECT = "project"
    LUT = "lut"
    IMAGE = "image"
    UNSUPPORTED = "unsupported"


@dataclass(frozen=True)
class DropItem:
    """One dropped path, what it is, and (when unsupported) why."""

    path: Path
    kind: DropKind
    reason: str = ""


def classify(path: Path) -> DropItem:
    """What ``path`` is to the app."""
    suffix = path.suffix.lower()
    if path.is_dir():
        if (path / PROJECT_FILE).is_file():
            return DropItem(path, DropKind.PROJECT)
        return DropItem(
            path,
            DropKind.UNSUPPORTED,
            f"{path.name}/ is a folder without a {PROJECT_FILE}: drop a song to start a "
            "project, or a project folder to open it",
        )
    if path.name == PROJECT_FILE:
        return DropItem(path.parent, DropKind.PROJECT)
    if suffix in AUDIO_EXTENSIONS:
        return DropItem(path, DropKind.AUDIO)
    if suffix == ".cube":
        return DropItem(path, DropKind.LUT)
    if suffix in IMAGE_EXTENSIONS:
        return DropItem(path, DropKind.IMAGE)
    what = f"'{suffix}' files" if suffix else "files without an extension"
    return DropItem(
        path,
        DropKind.UNSUPPORTED,
        f"{path.name}: APEX Director does not open {what}. Drop a song "
        f"({', '.join(sorted(AUDIO_EXTENSIONS))}), a project folder, a .cube LUT or images",
    )


def paths_of(mime: QMimeData) -> list[Path]:
    """The local files of a drop (remote URLs are ignored)."""
    if not mime.hasUrls():
        return []
    return [Path(url.toLocalFile()) for url in mime.urls() if url.isLocalFile()]


class DropHandler(QObject):
    """Accepts file drops on ``target`` (an event filter) and says what they are.

    Signals
    -------
    audio_dropped (object)
        The song's :class:`~pathlib.Path` (the first, when several were dropped).
    project_dropped (object)
        The project folder's path.
    lut_dropped (object)
        The ``.cube`` file's path.
    images_dropped (list)
        The image paths.
    rejected (str)
        Why a drop (or part of it) was not used: one message per drop.
    """

    audio_dropped = Signal(object)
    project_dropped = Signal(object)
    lut_dropped = Signal(object)
    images_dropped = Signal(list)
    rejected = Signal(str)

    def __init__(self, target: QObject) -> None:
        super().__init__(target)
        # where the last drop landed, in global coordinates (images dropped on a shot
        # replace its still: the window looks up what is under this point)
        self.last_global_position: QPoint | None = None
        target.installEventFilter(self)
        if hasattr(target, "setAcceptDrops"):
            target.setAcceptDrops(True)

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:  # noqa: N802 - Qt's name
        kind = event.type()
        if kind in (QEvent.Type.DragEnter, QEvent.Type.DragMove):
            assert isinstance(event, QDragEnterEvent | QDragMoveEvent)
            if event.mimeData().hasUrls():
                event.acceptProposedAction()
                return True
            return False
        if kind == QEvent.Type.Drop:
            assert isinstance(event, QDropEvent)
            if not event.mimeData().hasUrls():
                return False
            event.acceptProposedAction()
            if isinstance(watched, QWidget):
                self.last_global_position = watched.mapToGlobal(event.position().toPoint())
            else:
                self.last_global_position = None
            self.handle(paths_of(event.mimeData()))
            return True
        return super().eventFilter(watched, event)

    def handle(self, paths: Iterable[Path]) -> list[DropItem]:
        """Dispatch dropped paths (what a drop does); returns how each was classified."""
        items = [classify(Path(p)) for p in paths]
        if not items:
            self.rejected.emit("Only files can be dropped here (the drop held no local file).")
            return items
        by_kind: dict[DropKind, list[DropItem]] = {}
        for item in items:
            by_kind.setdefault(item.kind, []).append(item)
        problems = [item.reason for item in by_kind.get(DropKind.UNSUPPORTED, [])]
        opens = by_kind.get(DropKind.PROJECT, []) + by_kind.get(DropKind.AUDIO, [])
        if len(opens) > 1:
            problems.append(
                f"{len(opens)} songs or projects were dropped at once; "
                f"opening {opens[0].path.name} only"
            )
        if opens:
            first = opens[0]
            if first.kind is DropKind.PROJECT:
                self.project_dropped.emit(first.path)
            else:
                self.audio_dropped.emit(first.path)
        for lut in by_kind.get(DropKind.LUT, [])[:1]:
            self.lut_dropped.emit(lut.path)
        images = [item.path for item in by_kind.get(DropKind.IMAGE, [])]
        if images:
            self.images_dropped.emit(images)
        if problems:
            # one message for the whole drop: no storm of dialogs for 50 bad files
            more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
            self.rejected.emit(problems[0] + more)
        return items
