"""The character library: the project's characters as a grid of thumbnails.

Drop reference images of a character onto the library (or use *Add images…*), give it a
name and a description, and *Create*: the engine's
:class:`~engine.api.CharacterConsistencyManager` copies the images into the project
(``characters/<id>/``), caches their embeddings and records the profile in
``characters/characters.json``.  Each card shows the first reference image, the name and
the consistency of the generated shots of that character: the stills in
``<project>/images/`` whose sidecar names the character are checked against its
references (*Check shots*), and the card shows how many there are, their mean
confidence and how many fall below the threshold.

All engine work goes through the bridge; the widget never blocks the GUI thread.

Examples
--------
>>> library = CharacterLibrary(bridge)
>>> library.set_project_dir(project_folder)
>>> library.add_reference_images([Path("mara_front.png"), Path("mara_side.png")])
>>> library.create_character("Mara", "young woman, short red hair, green raincoat")
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from PySide6.QtCore import QSize, Qt, Signal
from PySide6.QtGui import QDragEnterEvent, QDragMoveEvent, QDropEvent, QIcon, QImage, QPixmap
from PySide6.QtWidgets import (
    QFileDialog,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from app.engine_bridge import one_line as _one_line
from app.widgets.panel_common import (
    IMAGE_EXTENSIONS,
    dropped_paths,
    mark_invalid,
    save_screenshot,
    thumbnail,
)
from engine import api

__all__ = ["CharacterCard", "CharacterLibrary", "shot_consistency"]

log = logging.getLogger(__name__)

THUMB = 112


class CharacterCard:
    """What a card of the grid shows (built on a worker thread, shown on the GUI thread)."""

    __slots__ = ("description", "id", "image", "name", "reference_count", "seed")

    def __init__(self, profile: Any, image: QImage) -> None:
        self.id: str = profile.id
        self.name: str = profile.name
        self.description: str = profile.description
        self.reference_count = len(profile.reference_images)
        self.seed: int = profile.seed
        self.image = image


def shot_consistency(manager: Any) -> dict[str, dict[str, Any]]:
    """Check every generated still of the project against its character.

    Reads the sidecars ``<project>/images/*.json`` the generator writes; those with a
    ``character_id`` of a known character are checked with
    :meth:`~engine.api.CharacterConsistencyManager.check_consistency`.  Blocking: run it
    through the bridge.

    Returns
    -------
    dict
        Per character id: ``shots`` (count), ``mean`` (mean confidence, None without
        shots), ``inconsistent`` (shots below the threshold), ``threshold``, ``method``,
        ``per_shot`` (``{image path: confidence}``), ``errors`` (unreadable stills) and
        ``lookalikes`` (other characters it may be confused with: ``name``, ``similarity``).
    """
    known = {p.id for p in manager.profiles()}
    out: dict[str, dict[str, Any]] = {
        cid: {
            "shots": 0,
            "mean": None,
            "inconsistent": 0,
            "threshold": None,
            "method": None,
            "per_shot": {},
            "errors": [],
        }
        for cid in known
    }
    folder = manager.project_dir / "images"
    sidecars = sorted(folder.glob("*.json")) if folder.is_dir() else []
    for sidecar in sidecars:
        try:
            result = json.loads(sidecar.read_text(encoding="utf-8"))
        except (OSError, ValueError) as err:
            log.warning("skipping unreadable sidecar %s: %s", sidecar, err)
            continue
        cid = result.get("character_id") if isinstance(result, dict) else None
        if cid not in known:
            continue
        image = Path(result.get("path") or sidecar.with_suffix(".png"))
        if not image.is_absolute():
            image = manager.project_dir / image
        entry = out[cid]
        try:
            report = manager.check_consistency(image, cid)
        except api.APEXDirectorError as err:
            entry["errors"].append(f"{image.name}: {' '.join(str(err).split())}")
            continue
        entry["per_shot"][str(image)] = report["confidence"]
        entry["threshold"], entry["method"] = report["threshold"], report["method"]
        entry["inconsistent"] += 0 if report["consistent"] else 1
    for cid, entry in out.items():
        # characters the check cannot tell apart: a warning, not an error
        entry["lookalikes"] = [
            {"name": other["name"], "similarity": other["similarity"]}
            for other in manager.similar_characters(cid)
            if other["similar"]
        ]
        scores = list(entry["per_shot"].values())
        entry["shots"] = len(scores)
        entry["mean"] = round(sum(scores) / len(scores), 4) if scores else None
    return out


class _DropList(QListWidget):
    """A list that takes image files dropped on it (and says so)."""

    files_dropped = Signal(list)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setAcceptDrops(True)
        self.setDragDropMode(QListWidget.DragDropMode.DropOnly)

    def _accept(self, event: QDragEnterEvent | QDragMoveEvent) -> None:
        if dropped_paths(event.mimeData(), IMAGE_EXTENSIONS):
            event.acceptProposedAction()
        else:
            event.ignore()

    def dragEnterEvent(self, event: QDragEnterEvent) -> None:  # noqa: N802 (Qt override)
        self._accept(event)

    def dragMoveEvent(self, event: QDragMoveEvent) -> None:  # noqa: N802 (Qt override)
        self._accept(event)

    def dropEvent(self, event: QDropEvent) -> None:  # noqa: N802 (Qt override)
        paths = dropped_paths(event.mimeData(), IMAGE_EXTENSIONS)
        if not paths:
            event.ignore()
            return
        event.acceptProposedAction()
        self.files_dropped.emit(paths)


class CharacterLibrary(QWidget):
    """The project's characters (see the module docs).

    Parameters
    ----------
    bridge : EngineBridge
        Every engine call goes through ``bridge.call``; the library follows
        ``project_opened`` / ``project_closed``.
    parent : QWidget, optional

    Signals
    -------
    character_created (str)
        The id of a new character.
    characters_changed (list)
        The character ids shown, after every refresh.
    scores_updated (dict)
        :func:`shot_consistency`'s result, after *Check shots*.
    """

    character_created = Signal(str)
    characters_changed = Signal(list)
    scores_updated = Signal(dict)

    def __init__(self, bridge: Any, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("characterLibrary")
        self.bridge = bridge
        self._project_dir: Path | None = None
        self._manager: Any = None
        self._pending: list[Path] = []
        self._cards: dict[str, CharacterCard] = {}
        self._scores: dict[str, dict[str, Any]] = {}
        self._busy = False
        self.setAcceptDrops(True)
        self._build()
        self._update_buttons()
        if hasattr(bridge, "project_opened"):
            bridge.project_opened.connect(lambda info: self.set_project_dir(info.path))
            bridge.project_closed.connect(lambda: self.set_project_dir(None))
            if getattr(bridge, "project", None) is not None:
                self.set_project_dir(bridge.project.path)

    # -- building ---------------------------------------------------------------------

    def _build(self) -> None:
        self.grid = _DropList(self)
        self.grid.setObjectName("characterGrid")
        self.grid.setViewMode(QListWidget.ViewMode.IconMode)
        self.grid.setIconSize(QSize(THUMB, THUMB))
        self.grid.setGridSize(QSize(THUMB + 48, THUMB + 62))
        self.grid.setResizeMode(QListWidget.ResizeMode.Adjust)
        self.grid.setMovement(QListWidget.Movement.Static)
        self.grid.setWordWrap(True)
        self.grid.setSpacing(6)

        self.pending_list = _DropList(self)
        self.pending_list.setObjectName("pendingReferences")
        self.pending_list.setViewMode(QListWidget.ViewMode.IconMode)
        self.pending_list.setIconSize(QSize(56, 56))
        self.pending_list.setMaximumHeight(84)
        self.pending_list.setToolTip("Drop reference images of the new character here")
        self.add_images_button = QPushButton("Add images…", self)
        self.clear_images_button = QPushButton("Clear", self)
        self.name_edit = QLineEdit(self)
        self.name_edit.setObjectName("characterName")
        self.name_edit.setPlaceholderText("Mara")
        self.description_edit = QLineEdit(self)
        self.description_edit.setObjectName("characterDescription")
        self.description_edit.setPlaceholderText("young woman, short red hair, green raincoat")
        self.create_button = QPushButton("Create character", self)
        self.create_button.setObjectName("createCharacter")
        self.check_button = QPushButton("Check shots", self)
        self.check_button.setObjectName("checkShots")
        self.check_button.setToolTip(
            "Compare every generated still of each character with its reference images"
        )
        self.error_label = QLabel("", self)
        self.error_label.setObjectName("errorLabel")
        self.error_label.setWordWrap(True)
        self.error_label.setStyleSheet("color: #d9534f;")
        self.error_label.setVisible(False)
        self.status_label = QLabel("", self)
        self.status_label.setObjectName("statusLabel")
        self.status_label.setWordWrap(True)
        self.status_label.setStyleSheet("color: #777777;")

        new_box = QGroupBox("New character", self)
        form = QFormLayout(new_box)
        form.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
        images = QVBoxLayout()
        images.addWidget(self.pending_list)
        image_buttons = QHBoxLayout()
        image_buttons.addWidget(self.add_images_button)
        image_buttons.addWidget(self.clear_images_button)
        image_buttons.addStretch(1)
        images.addLayout(image_buttons)
        form.addRow("Reference images", images)
        form.addRow("Name", self.name_edit)
        form.addRow("Description", self.description_edit)
        form.addRow("", self.create_button)

        header = QHBoxLayout()
        title = QLabel("Characters", self)
        title.setStyleSheet("font-weight: 600;")
        header.addWidget(title)
        header.addStretch(1)
        header.addWidget(self.check_button)
        layout = QVBoxLayout(self)
        layout.addLayout(header)
        layout.addWidget(self.grid, 1)
        layout.addWidget(new_box)
        layout.addWidget(self.error_label)
        layout.addWidget(self.status_label)

        self.grid.files_dropped.connect(self.add_reference_images)
        self.pending_list.files_dropped.connect(self.add_reference_images)
        self.add_images_button.clicked.connect(self._browse_images)
        self.clear_images_button.clicked.connect(self.clear_pending)
        self.name_edit.textChanged.connect(self._update_buttons)
        self.create_button.clicked.connect(self._create_clicked)
        self.name_edit.returnPressed.connect(self._create_clicked)
        self.description_edit.returnPressed.connect(self._create_clicked)
        self.check_button.clicked.connect(self.refresh_scores)

    # -- drops on the panel itself (around the lists) -----------------------------------

    def dragEnterEvent(self, event: QDragEnterEvent) -> None:  # noqa: N802 (Qt override)
        if dropped_paths(event.mimeData(), IMAGE_EXTENSIONS):
            event.acceptProposedAction()
        else:
            event.ignore()

    def dropEvent(self, event: QDropEvent) -> None:  # noqa: N802 (Qt override)
        paths = dropped_paths(event.mimeData(), IMAGE_EXTENSIONS)
        if paths:
            event.acceptProposedAction()
            self.add_reference_images(paths)
        else:
            event.ignore()

    # -- public API -------------------------------------------------------------------

    @property
    def project_dir(self) -> Path | None:
        return self._project_dir

    @property
    def pending_images(self) -> list[Path]:
        """Reference images waiting for *Create*."""
        return list(self._pending)

    def card(self, character_id: str) -> CharacterCard:
        return self._cards[character_id]

    def item_for(self, character_id: str) -> QListWidgetItem | None:
        """The grid item of a character (None when not shown)."""
        for row in range(self.grid.count()):
            item = self.grid.item(row)
            if item.data(Qt.ItemDataRole.UserRole) == character_id:
                return item
        return None

    def scores(self) -> dict[str, dict[str, Any]]:
        """The last consistency check (see :func:`shot_consistency`)."""
        return dict(self._scores)

    def error_text(self) -> str:
        return self.error_label.text() if self.error_label.isVisibleTo(self) else ""

    def set_project_dir(self, project_dir: Path | str | None) -> None:
        """Show the characters of ``project_dir`` (None: no project)."""
        self._project_dir = Path(project_dir) if project_dir is not None else None
        self._manager = None
        self._cards.clear()
        self._scores.clear()
        self.grid.clear()
        self._show_error("")
        if self._project_dir is None:
            self.status_label.setText("No project open: open or start one to add characters.")
            self._update_buttons()
            return
        folder = self._project_dir
        models = Path(str(self._config_value("paths", "models_dir", "models"))).expanduser()
        self.status_label.setText("Loading characters…")
        self._busy = True
        self._update_buttons()

        def load() -> tuple[Any, list[CharacterCard]]:
            manager = api.CharacterConsistencyManager(folder, models_dir=models)
            return manager, _cards(manager)

        def loaded(result: tuple[Any, list[CharacterCard]]) -> None:
            if folder != self._project_dir:
                return
            self._busy = False
            self._manager, cards = result
            self._show_cards(cards)

        def failed(err: BaseException) -> None:
            if folder != self._project_dir:
                return
            self._busy = False
            self._show_error(f"{_one_line(err)}")
            self.status_label.setText("")
            self._update_buttons()

        self.bridge.call(load, loaded, failed)

    def add_reference_images(self, paths: list[Path] | list[str]) -> None:
        """Queue reference images for a new character (dropped or chosen).

        The name field is filled from the first file's name when empty; a name and a
        description, then *Create*, make the character.
        """
        new = [Path(p) for p in paths if Path(p) not in self._pending]
        unsupported = [p.name for p in new if p.suffix.lower() not in IMAGE_EXTENSIONS]
        new = [p for p in new if p.suffix.lower() in IMAGE_EXTENSIONS]
        if unsupported:
            self._show_error(
                f"Not an image: {', '.join(unsupported)} (use PNG, JPEG, WebP, BMP or TIFF)"
            )
        if not new:
            return
        self._pending.extend(new)
        for path in new:
            item = QListWidgetItem(QIcon(QPixmap.fromImage(thumbnail(path, 56))), path.name)
            item.setToolTip(str(path))
            self.pending_list.addItem(item)
        if not self.name_edit.text().strip():
            self.name_edit.setText(_name_from(new[0]))
        if not unsupported:
            self._show_error("")
        self.status_label.setText(
            f"{len(self._pending)} reference image(s): name and describe the character, "
            "then Create."
        )
        self.name_edit.setFocus()
        self.name_edit.selectAll()
        self._update_buttons()

    def clear_pending(self) -> None:
        """Forget the images waiting for *Create*."""
        self._pending.clear()
        self.pending_list.clear()
        self._update_buttons()

    def create_character(self, name: str | None = None, description: str | None = None) -> None:
        """Create a character from the pending images (through the bridge)."""
        if name is not None:
            self.name_edit.setText(name)
        if description is not None:
            self.description_edit.setText(description)
        self._create_clicked()

    def refresh_scores(self) -> None:
        """Check the project's generated shots against each character (through the bridge)."""
        manager = self._manager
        if manager is None or self._busy:
            return
        self._busy = True
        self._update_buttons()
        self.status_label.setText("Checking the shots of each character…")

        def done(scores: dict[str, dict[str, Any]]) -> None:
            self._busy = False
            if manager is not self._manager:
                return
            self._scores = scores
            self._update_labels()
            checked = sum(s["shots"] for s in scores.values())
            errors = [e for s in scores.values() for e in s["errors"]]
            self.status_label.setText(f"Checked {checked} shot(s).")
            self._show_error("; ".join(errors))
            self._update_buttons()
            self.scores_updated.emit(scores)

        def failed(err: BaseException) -> None:
            self._busy = False
            self._show_error(_one_line(err))
            self._update_buttons()

        self.bridge.call(lambda: shot_consistency(manager), done, failed)

    def screenshot(self, path: Path | str) -> Path:
        """Save a PNG of the library (``grab()``); for docs/images/."""
        return save_screenshot(self, path)

    # -- internals --------------------------------------------------------------------

    def _config_value(self, section: str, key: str, default: Any) -> Any:
        config = getattr(self.bridge, "config", None) or {}
        return (config.get(section) or {}).get(key, default)

    def _update_buttons(self) -> None:
        has_project = self._manager is not None
        idle = not self._busy
        ready = has_project and idle and bool(self._pending) and bool(self.name_edit.text().strip())
        self.create_button.setEnabled(ready)
        self.check_button.setEnabled(has_project and idle and bool(self._cards))
        for widget in (
            self.add_images_button,
            self.clear_images_button,
            self.name_edit,
            self.description_edit,
        ):
            widget.setEnabled(self._project_dir is not None)

    def _browse_images(self) -> None:
        paths, _ = QFileDialog.getOpenFileNames(
            self,
            "Reference images of the character",
            str(self._project_dir or ""),
            "Images (" + " ".join(f"*{s}" for s in sorted(IMAGE_EXTENSIONS)) + ")",
        )
        if paths:
            self.add_reference_images([Path(p) for p in paths])

    def _create_clicked(self) -> None:
        manager = self._manager
        name = self.name_edit.text().strip()
        description = self.description_edit.text().strip()
        if manager is None or self._busy:
            return
        if not self._pending:
            self._show_error("Drop one or more reference images of the character first.")
            return
        if not name:
            mark_invalid(self.name_edit, True)
            self._show_error("Give the character a name.")
            return
        mark_invalid(self.name_edit, False)
        references = list(self._pending)
        self._busy = True
        self._update_buttons()
        self.status_label.setText(f"Creating {name}…")

        def work() -> tuple[str, list[CharacterCard]]:
            cid = manager.create_profile(name, references, description)
            return cid, _cards(manager)

        def done(result: tuple[str, list[CharacterCard]]) -> None:
            self._busy = False
            if manager is not self._manager:
                return
            cid, cards = result
            self.clear_pending()
            self.name_edit.clear()
            self.description_edit.clear()
            self._show_error("")
            self._show_cards(cards)
            self.status_label.setText(f"Created {self._cards[cid].name}.")
            item = self.item_for(cid)
            if item is not None:
                self.grid.setCurrentItem(item)
            self.character_created.emit(cid)

        def failed(err: BaseException) -> None:
            self._busy = False
            self._show_error(f"Not created: {_one_line(err)}")
            self.status_label.setText("")
            self._update_buttons()

        self.bridge.call(work, done, failed)

    def _show_cards(self, cards: list[CharacterCard]) -> None:
        self.grid.clear()
        self._cards = {card.id: card for card in cards}
        for card in cards:
            item = QListWidgetItem(QIcon(QPixmap.fromImage(card.image)), card.name)
            item.setData(Qt.ItemDataRole.UserRole, card.id)
            self.grid.addItem(item)
        self._update_labels()
        if not cards:
            self.status_label.setText(
                "No characters yet: drop reference images of one on this panel."
            )
        else:
            self.status_label.setText(f"{len(cards)} character(s).")
        self._update_buttons()
        self.characters_changed.emit([card.id for card in cards])

    def _update_labels(self) -> None:
        for cid, card in self._cards.items():
            item = self.item_for(cid)
            if item is None:
                continue
            score = self._scores.get(cid)
            text = card.name
            tip = [card.name, card.description or "(no description)"]
            tip.append(f"{card.reference_count} reference image(s), seed {card.seed}")
            if score is not None and score["shots"]:
                text += f"\n{score['mean']:.2f} · {score['shots']} shot(s)"
                if score["inconsistent"]:
                    text += f"\n{score['inconsistent']} off-model"
                tip.append(
                    f"mean consistency {score['mean']:.2f} over {score['shots']} shot(s), "
                    f"threshold {score['threshold']:.2f} ({score['method']}); "
                    f"{score['inconsistent']} below it"
                )
            elif score is not None:
                text += "\nno shots yet"
            if score is not None and score.get("lookalikes"):
                names = ", ".join(other["name"] for other in score["lookalikes"])
                text += f"\n⚠ looks like {names}"
                tip.append(
                    "may be confused with "
                    + ", ".join(f"{o['name']} ({o['similarity']:.2f})" for o in score["lookalikes"])
                )
            item.setText(text)
            item.setToolTip("\n".join(tip))

    def _show_error(self, message: str) -> None:
        self.error_label.setText(message)
        self.error_label.setVisible(bool(message))


def _cards(manager: Any) -> list[CharacterCard]:
    """Cards of every profile, thumbnails read here (a worker thread)."""
    cards = []
    for profile in manager.profiles():
        image = thumbnail(manager.project_dir / profile.reference_images[0], THUMB)
        cards.append(CharacterCard(profile, image))
    return cards


def _name_from(path: Path) -> str:
    words = path.stem.replace("_", " ").replace("-", " ").split()
    # "mara_front_01" → "Mara": file names often end in the view or a number
    keep = [w for w in words if not w.isdigit()][:1]
    return (keep[0] if keep else path.stem).capitalize()
