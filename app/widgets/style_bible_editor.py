"""The style-bible editor: the look of the whole video, validated as you type.

Every field of the project's :class:`~engine.api.StyleBible` has an editor: name, prompt
template, negative prompt, palette (typed as ``#rrggbb`` codes or picked with a click on
a reference image), director and genre presets (from ``resources/styles`` through
:func:`engine.api.load_presets`), camera and lighting presets (they add their words to
the prompt template), LUT, reference images, seed family and drift threshold.

Each edit is checked at once by the engine's own validation (the same
:class:`~engine.api.StylePersistenceManager` rules the CLI uses): a bad value frames its
field in red, the engine's message appears under the form, and nothing is saved.  A
valid form is saved to ``<project>/style_bible.json`` through the bridge a moment after
the last keystroke (:attr:`StyleBibleEditor.saved` says when).

Examples
--------
>>> editor = StyleBibleEditor(bridge)
>>> editor.set_project_dir(project_folder)       # loads style_bible.json if present
>>> editor.field("seed_family").setText("1234")  # saved a moment later
"""

from __future__ import annotations

import logging
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

from PySide6.QtCore import QPoint, QSize, Qt, QTimer, Signal
from PySide6.QtGui import (
    QColor,
    QDragEnterEvent,
    QDropEvent,
    QIcon,
    QImage,
    QMouseEvent,
    QPainter,
    QPaintEvent,
    QPixmap,
)
from PySide6.QtWidgets import (
    QComboBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QPlainTextEdit,
    QPushButton,
    QSizePolicy,
    QVBoxLayout,
    QWidget,
)

from app.engine_bridge import one_line as _one_line
from app.widgets.panel_common import (
    IMAGE_EXTENSIONS,
    ScaledImageLabel,
    dropped_paths,
    mark_invalid,
    save_screenshot,
    thumbnail,
)
from engine import api

__all__ = [
    "CAMERA_PRESETS",
    "LIGHTING_PRESETS",
    "StyleBibleEditor",
    "SwatchStrip",
    "copy_into",
]

log = logging.getLogger(__name__)

SAVE_DELAY_MS = 300
REFERENCES_FOLDER = "references"

# Camera and lighting presets: the words they add to the prompt template.  The style
# bible has no camera or lighting field of its own (a request's camera_settings and
# lighting_setup do that per shot); a look that should hold for every shot says it in
# the template, which is what these fill in.
CAMERA_PRESETS: dict[str, str] = {
    "Wide establishing (24 mm)": "24mm lens, wide shot, deep focus",
    "Anamorphic (40 mm)": "anamorphic 40mm lens, horizontal lens flares, oval bokeh",
    "Portrait (85 mm, f/1.8)": "85mm lens, f/1.8, shallow depth of field",
    "Handheld documentary": "handheld camera, 35mm lens, natural framing",
    "Telephoto compression (200 mm)": "200mm telephoto lens, compressed perspective",
}
LIGHTING_PRESETS: dict[str, str] = {
    "Golden hour": "golden hour light, warm low sun, long shadows",
    "Low-key noir": "low-key lighting, hard shadows, single key light",
    "Neon night": "neon lighting, coloured rim light, wet reflections",
    "Overcast soft": "soft overcast light, diffuse shadows",
    "High-key studio": "high-key lighting, bright even fill, clean white background",
}

_NONE = "(none)"


def _field_of(error_name: str) -> str:
    """The editor field an engine error names (``palette[2]`` → ``palette``)."""
    return error_name.split("[", 1)[0].strip()


class SwatchStrip(QWidget):
    """The palette as a row of colour swatches."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._colours: list[QColor] = []
        self.setMinimumHeight(22)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)

    def set_colours(self, colours: list[QColor]) -> None:
        self._colours = list(colours)
        self.update()

    def colours(self) -> list[QColor]:
        return list(self._colours)

    def paintEvent(self, event: QPaintEvent) -> None:  # noqa: N802 (Qt override)
        painter = QPainter(self)
        rect = self.rect().adjusted(0, 0, -1, -1)
        if not self._colours:
            painter.setPen(QColor("#888888"))
            painter.drawText(rect, Qt.AlignmentFlag.AlignVCenter, "no palette yet")
            return
        width = max(1, rect.width() // len(self._colours))
        for i, colour in enumerate(self._colours):
            painter.fillRect(i * width, 0, width - 2, rect.height(), colour)


class ReferencePicker(ScaledImageLabel):
    """Shows one reference image; a click picks the colour under the cursor."""

    colour_picked = Signal(QColor)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setMinimumSize(200, 112)
        self.setCursor(Qt.CursorShape.CrossCursor)
        self.setToolTip("Click the picture to add the colour under the cursor to the palette")
        self.setText("Add a reference image, then click it to pick palette colours")
        self.setStyleSheet("background: #202020; color: #aaaaaa;")

    def set_image(self, path: Path | None) -> None:
        self._image = QImage(str(path)) if path is not None else QImage()
        if self._image.isNull():
            self.clear()
            self.setText("Add a reference image, then click it to pick palette colours")
        else:
            self._refresh()

    def image_point(self, pos: QPoint) -> QPoint | None:
        """The image pixel under widget position ``pos`` (None outside the picture)."""
        if self._image.isNull():
            return None
        shown = self._image.size().scaled(self.size(), Qt.AspectRatioMode.KeepAspectRatio)
        left = (self.width() - shown.width()) / 2
        top = (self.height() - shown.height()) / 2
        x = (pos.x() - left) * self._image.width() / max(1, shown.width())
        y = (pos.y() - top) * self._image.height() / max(1, shown.height())
        if not (0 <= x < self._image.width() and 0 <= y < self._image.height()):
            return None
        return QPoint(int(x), int(y))

    def mousePressEvent(self, event: QMouseEvent) -> None:  # noqa: N802 (Qt override)
        point = self.image_point(event.position().toPoint())
        if point is None or event.button() != Qt.MouseButton.LeftButton:
            super().mousePressEvent(event)
            return
        self.colour_picked.emit(QColor(self._image.pixel(point)))


class _ReferenceList(QListWidget):
    """The reference images, as thumbnails; image files may be dropped on it."""

    files_dropped = Signal(list)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setViewMode(QListWidget.ViewMode.IconMode)
        self.setIconSize(QSize(72, 48))
        self.setMaximumHeight(92)
        self.setAcceptDrops(True)
        self.setDragDropMode(QListWidget.DragDropMode.DropOnly)
        self.setToolTip("Drop images here, or use Add…")

    def dragEnterEvent(self, event: QDragEnterEvent) -> None:  # noqa: N802 (Qt override)
        if dropped_paths(event.mimeData(), IMAGE_EXTENSIONS):
            event.acceptProposedAction()
        else:
            event.ignore()

    def dragMoveEvent(self, event: Any) -> None:  # noqa: N802 (Qt override)
        if dropped_paths(event.mimeData(), IMAGE_EXTENSIONS):
            event.acceptProposedAction()
        else:
            event.ignore()

    def dropEvent(self, event: QDropEvent) -> None:  # noqa: N802 (Qt override)
        paths = dropped_paths(event.mimeData(), IMAGE_EXTENSIONS)
        if paths:
            event.acceptProposedAction()
            self.files_dropped.emit(paths)
        else:
            event.ignore()


class StyleBibleEditor(QWidget):
    """Edits the open project's style bible (see the module docs).

    Parameters
    ----------
    bridge : EngineBridge
        The application's bridge: saving and loading go through ``bridge.call``, and the
        editor follows ``project_opened`` / ``project_closed``.
    parent : QWidget, optional

    Signals
    -------
    saved (object)
        The path of ``style_bible.json`` after a save.
    validity_changed (bool)
        Whether the form is valid, when that changes.
    style_changed (dict)
        The bible as the engine validated it (``StyleBible.to_dict()``), on every valid edit.
    """

    saved = Signal(object)
    validity_changed = Signal(bool)
    style_changed = Signal(dict)

    def __init__(self, bridge: Any, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("styleBibleEditor")
        self.bridge = bridge
        self._project_dir: Path | None = None
        self._manager: Any = None  # the project's StylePersistenceManager (bridge calls only)
        self._checker = api.StylePersistenceManager(None)  # validation only, in memory
        self._loading = False
        self._valid = True
        self._error_field = ""
        self._references: list[str] = []
        self._save_timer = QTimer(self)
        self._save_timer.setSingleShot(True)
        self._save_timer.setInterval(SAVE_DELAY_MS)
        self._save_timer.timeout.connect(self._save)
        self._build()
        self._set_enabled(False)
        if hasattr(bridge, "project_opened"):
            bridge.project_opened.connect(lambda info: self.set_project_dir(info.path))
            bridge.project_closed.connect(lambda: self.set_project_dir(None))
            if getattr(bridge, "project", None) is not None:
                self.set_project_dir(bridge.project.path)

    # -- building ---------------------------------------------------------------------

    def _build(self) -> None:
        self.name_edit = QLineEdit(self)
        self.name_edit.setObjectName("name")
        self.director_combo = self._preset_combo("directors", "director_style")
        self.genre_combo = self._preset_combo("genres", "genre")
        self.preset_summary = QLabel("", self)
        self.preset_summary.setObjectName("presetSummary")
        self.preset_summary.setWordWrap(True)
        self.preset_summary.setStyleSheet("color: #777777;")
        self.preset_summary.setVisible(False)
        self.camera_combo = self._words_combo(
            "cameraPreset", "Add a camera preset…", CAMERA_PRESETS
        )
        self.lighting_combo = self._words_combo(
            "lightingPreset", "Add a lighting preset…", LIGHTING_PRESETS
        )
        self.template_edit = QPlainTextEdit(self)
        self.template_edit.setObjectName("prompt_template")
        self.template_edit.setPlaceholderText("style words added to every prompt, comma-separated")
        self.template_edit.setMaximumHeight(64)
        self.negative_edit = QLineEdit(self)
        self.negative_edit.setObjectName("negative_prompt")
        self.negative_edit.setPlaceholderText("lowres, watermark")
        self.palette_edit = QLineEdit(self)
        self.palette_edit.setObjectName("palette")
        self.palette_edit.setPlaceholderText("#0b3d4f, #177f96, #f2a541")
        self.swatches = SwatchStrip(self)
        self.lut_edit = QLineEdit(self)
        self.lut_edit.setObjectName("lut_path")
        self.lut_edit.setPlaceholderText("a .cube file (relative to the project or absolute)")
        self.lut_browse = QPushButton("Browse…", self)
        self.reference_list = _ReferenceList(self)
        self.reference_list.setObjectName("reference_images")
        self.add_reference_button = QPushButton("Add…", self)
        self.remove_reference_button = QPushButton("Remove", self)
        self.picker = ReferencePicker(self)
        self.picker.setObjectName("referencePicker")
        self.seed_edit = QLineEdit("0", self)
        self.seed_edit.setObjectName("seed_family")
        self.threshold_edit = QLineEdit("0.5", self)
        self.threshold_edit.setObjectName("drift_threshold")
        self.error_label = QLabel("", self)
        self.error_label.setObjectName("errorLabel")
        self.error_label.setWordWrap(True)
        self.error_label.setStyleSheet("color: #d9534f;")
        self.error_label.setVisible(False)
        self.status_label = QLabel("No project open: open or start one to edit its look.", self)
        self.status_label.setObjectName("statusLabel")
        self.status_label.setStyleSheet("color: #777777;")

        self._fields: dict[str, QWidget] = {
            "name": self.name_edit,
            "director_style": self.director_combo,
            "genre": self.genre_combo,
            "prompt_template": self.template_edit,
            "negative_prompt": self.negative_edit,
            "palette": self.palette_edit,
            "lut_path": self.lut_edit,
            "reference_images": self.reference_list,
            "seed_family": self.seed_edit,
            "drift_threshold": self.threshold_edit,
        }

        form = QFormLayout()
        form.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
        form.addRow("Name", self.name_edit)
        form.addRow("Director", self.director_combo)
        form.addRow("Genre", self.genre_combo)
        form.addRow("", self.preset_summary)
        presets = QHBoxLayout()
        presets.addWidget(self.camera_combo, 1)
        presets.addWidget(self.lighting_combo, 1)
        form.addRow("Camera / light", presets)
        form.addRow("Prompt template", self.template_edit)
        form.addRow("Negative prompt", self.negative_edit)
        form.addRow("Palette", self.palette_edit)
        form.addRow("", self.swatches)
        lut_row = QHBoxLayout()
        lut_row.addWidget(self.lut_edit, 1)
        lut_row.addWidget(self.lut_browse)
        form.addRow("LUT", lut_row)
        refs = QVBoxLayout()
        refs.addWidget(self.reference_list)
        ref_buttons = QHBoxLayout()
        ref_buttons.addWidget(self.add_reference_button)
        ref_buttons.addWidget(self.remove_reference_button)
        ref_buttons.addStretch(1)
        refs.addLayout(ref_buttons)
        refs.addWidget(self.picker)
        hint = QLabel("Click the picture to add the colour under the cursor to the palette.", self)
        hint.setStyleSheet("color: #777777;")
        hint.setWordWrap(True)
        refs.addWidget(hint)
        form.addRow("Reference images", refs)
        numbers = QHBoxLayout()
        numbers.addWidget(self.seed_edit, 1)
        numbers.addWidget(QLabel("Drift threshold", self))
        numbers.addWidget(self.threshold_edit, 1)
        form.addRow("Seed family", numbers)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(self.error_label)
        layout.addWidget(self.status_label)
        layout.addStretch(1)

        for edit in (
            self.name_edit,
            self.negative_edit,
            self.palette_edit,
            self.lut_edit,
            self.seed_edit,
            self.threshold_edit,
        ):
            edit.textChanged.connect(self._edited)
        self.template_edit.textChanged.connect(self._edited)
        self.director_combo.currentIndexChanged.connect(self._preset_changed)
        self.genre_combo.currentIndexChanged.connect(self._preset_changed)
        self.camera_combo.activated.connect(lambda i: self._add_words(self.camera_combo, i))
        self.lighting_combo.activated.connect(lambda i: self._add_words(self.lighting_combo, i))
        self.lut_browse.clicked.connect(self._browse_lut)
        self.add_reference_button.clicked.connect(self._browse_references)
        self.remove_reference_button.clicked.connect(self._remove_reference)
        self.reference_list.files_dropped.connect(self.add_reference_images)
        self.reference_list.currentRowChanged.connect(self._show_reference)
        self.picker.colour_picked.connect(self.add_palette_colour)

    def _preset_combo(self, kind: str, name: str) -> QComboBox:
        combo = QComboBox(self)
        combo.setObjectName(name)
        combo.addItem(_NONE, "")
        try:
            presets = api.load_presets(kind)
        except api.APEXDirectorError as err:  # a broken preset file must not stop the GUI
            log.warning("presets of %s not loaded: %s", kind, err)
            presets = {}
        for preset_id, preset in presets.items():
            combo.addItem(preset.name, preset_id)
            combo.setItemData(combo.count() - 1, preset.summary, Qt.ItemDataRole.ToolTipRole)
        return combo

    def _words_combo(self, name: str, title: str, presets: dict[str, str]) -> QComboBox:
        combo = QComboBox(self)
        combo.setObjectName(name)
        combo.addItem(title, "")
        for label, words in presets.items():
            combo.addItem(label, words)
            combo.setItemData(combo.count() - 1, words, Qt.ItemDataRole.ToolTipRole)
        return combo

    # -- public API -------------------------------------------------------------------

    @property
    def project_dir(self) -> Path | None:
        return self._project_dir

    @property
    def is_valid(self) -> bool:
        """Whether the form passed the engine's validation at the last edit."""
        return self._valid

    def field(self, name: str) -> QWidget:
        """The editor of a style-bible field (``"palette"``, ``"seed_family"``...)."""
        return self._fields[name]

    def error_text(self) -> str:
        """The validation message shown under the form (``""`` when valid)."""
        return self.error_label.text() if self.error_label.isVisibleTo(self) else ""

    def set_project_dir(self, project_dir: Path | str | None) -> None:
        """Edit the bible of ``project_dir`` (loaded through the bridge); None: no project."""
        self._save_timer.stop()
        self._manager = None
        self._project_dir = Path(project_dir) if project_dir is not None else None
        if self._project_dir is None:
            self._populate({})
            self._set_enabled(False)
            self.status_label.setText("No project open: open or start one to edit its look.")
            return
        folder = self._project_dir
        self.status_label.setText("Loading the style bible…")

        def loaded(manager: Any) -> None:
            if folder != self._project_dir:
                return  # another project was opened meanwhile
            self._manager = manager
            bible = manager.style_bible
            self._populate(bible.to_dict() if bible is not None else {})
            self._set_enabled(True)
            self.status_label.setText(
                f"Saved in {manager.path}" if bible is not None else "New style bible"
            )

        def failed(err: BaseException) -> None:
            if folder != self._project_dir:
                return
            self._populate({})
            self._set_enabled(False)
            self._show_error(f"{_one_line(err)} — not editing it until it is fixed.", "")

        self.bridge.call(lambda: api.StylePersistenceManager(folder), loaded, failed)

    def style_data(self) -> dict[str, Any]:
        """The form as style-bible fields (paths as typed, numbers parsed where they can be)."""
        return {
            "name": self.name_edit.text(),
            "prompt_template": self.template_edit.toPlainText(),
            "negative_prompt": self.negative_edit.text(),
            "palette": self.palette_edit.text(),
            "lut_path": self.lut_edit.text().strip(),
            "reference_images": list(self._references),
            "seed_family": _number(self.seed_edit.text(), int),
            "drift_threshold": _number(self.threshold_edit.text(), float),
            "genre": self.genre_combo.currentData() or "",
            "director_style": self.director_combo.currentData() or "",
        }

    def add_reference_images(self, paths: list[Path] | list[str]) -> None:
        """Add images to the references.

        Images from outside the project are copied into ``<project>/references/`` first
        (through the bridge), as the character library does, so the look survives the
        originals moving; images inside the project are referred to where they are.
        """
        images = [Path(p) for p in paths]
        folder = self._project_dir
        outside = [p for p in images if folder is not None and not self._inside(p)]
        if not outside:
            self._add_references(images)
            return

        def copied(copies: list[Path]) -> None:
            if folder == self._project_dir:
                self._add_references([*(p for p in images if p not in outside), *copies])

        def failed(err: BaseException) -> None:
            self._show_error(f"Reference images not added: {_one_line(err)}", "reference_images")

        assert folder is not None
        self.bridge.call(lambda: copy_into(folder / REFERENCES_FOLDER, outside), copied, failed)

    def _inside(self, path: Path) -> bool:
        if self._project_dir is None:
            return False
        try:
            path.resolve().relative_to(self._project_dir.resolve())
        except ValueError:
            return False
        return True

    def _add_references(self, paths: list[Path]) -> None:
        added = False
        for path in paths:
            text = self._relative(path)
            if text not in self._references:
                self._references.append(text)
                added = True
        if added:
            self._refresh_references(select_last=True)
            self._edited()

    def add_palette_colour(self, colour: QColor) -> None:
        """Append ``colour`` to the palette field (validated and saved like a typed one)."""
        text = self.palette_edit.text().strip().rstrip(",")
        code = colour.name()  # "#rrggbb"
        self.palette_edit.setText(f"{text}, {code}" if text else code)

    def screenshot(self, path: Path | str) -> Path:
        """Save a PNG of the editor (``grab()``); for docs/images/."""
        return save_screenshot(self, path)

    # -- editing ----------------------------------------------------------------------

    def _set_enabled(self, enabled: bool) -> None:
        for widget in (*self._fields.values(), self.camera_combo, self.lighting_combo):
            widget.setEnabled(enabled)
        for widget in (
            self.lut_browse,
            self.add_reference_button,
            self.remove_reference_button,
            self.picker,
        ):
            widget.setEnabled(enabled)

    def _relative(self, path: Path) -> str:
        if self._project_dir is not None:
            try:
                return str(path.resolve().relative_to(self._project_dir.resolve()))
            except ValueError:
                pass
        return str(path)

    def _resolve(self, value: str) -> str:
        path = Path(value).expanduser()
        if not value or path.is_absolute() or self._project_dir is None:
            return value
        return str(self._project_dir / path)

    def _populate(self, data: dict[str, Any]) -> None:
        self._loading = True
        try:
            self.name_edit.setText(str(data.get("name", "")))
            self.template_edit.setPlainText(str(data.get("prompt_template", "")))
            self.negative_edit.setText(str(data.get("negative_prompt", "")))
            self.palette_edit.setText(", ".join(data.get("palette", [])))
            self.lut_edit.setText(str(data.get("lut_path", "")))
            self._references = [str(r) for r in data.get("reference_images", [])]
            self.seed_edit.setText(str(data.get("seed_family", 0)))
            self.threshold_edit.setText(str(data.get("drift_threshold", 0.5)))
            for combo, key in (
                (self.director_combo, "director_style"),
                (self.genre_combo, "genre"),
            ):
                index = combo.findData(data.get(key, "") or "")
                combo.setCurrentIndex(max(0, index))
            self._refresh_references(select_last=False)
        finally:
            self._loading = False
        self._validate()

    def _refresh_references(self, *, select_last: bool) -> None:
        self.reference_list.clear()
        for ref in self._references:
            path = Path(self._resolve(ref))
            item = QListWidgetItem(QIcon(QPixmap.fromImage(thumbnail(path, 72))), path.name)
            item.setToolTip(ref)
            self.reference_list.addItem(item)
        if self._references:
            self.reference_list.setCurrentRow(len(self._references) - 1 if select_last else 0)
        else:
            self.picker.set_image(None)

    def _show_reference(self, row: int) -> None:
        if 0 <= row < len(self._references):
            self.picker.set_image(Path(self._resolve(self._references[row])))
        else:
            self.picker.set_image(None)

    def _remove_reference(self) -> None:
        row = self.reference_list.currentRow()
        if 0 <= row < len(self._references):
            del self._references[row]
            self._refresh_references(select_last=False)
            self._edited()

    def _preset_changed(self) -> None:
        parts = []
        for combo in (self.director_combo, self.genre_combo):
            summary = combo.itemData(combo.currentIndex(), Qt.ItemDataRole.ToolTipRole)
            if summary:
                parts.append(f"{combo.currentText()}: {summary}")
        self.preset_summary.setText("\n".join(parts))
        self.preset_summary.setVisible(bool(parts))
        self._edited()

    def _add_words(self, combo: QComboBox, index: int) -> None:
        words = combo.itemData(index) or ""
        combo.setCurrentIndex(0)
        if not words:
            return
        current = self.template_edit.toPlainText().strip().rstrip(",")
        present = {w.strip().lower() for w in current.split(",") if w.strip()}
        new = [w.strip() for w in words.split(",") if w.strip().lower() not in present]
        if new:
            self.template_edit.setPlainText(", ".join(filter(None, [current, *new])))

    def _browse_lut(self) -> None:
        path, _ = QFileDialog.getOpenFileName(
            self, "Choose a LUT", str(self._project_dir or ""), "LUT (*.cube)"
        )
        if path:
            self.lut_edit.setText(self._relative(Path(path)))

    def _browse_references(self) -> None:
        paths, _ = QFileDialog.getOpenFileNames(
            self,
            "Add reference images",
            str(self._project_dir or ""),
            "Images (" + " ".join(f"*{s}" for s in sorted(IMAGE_EXTENSIONS)) + ")",
        )
        if paths:
            self.add_reference_images([Path(p) for p in paths])

    def _edited(self) -> None:
        if self._loading:
            return
        if self._validate() and self._manager is not None:
            self.status_label.setText("Saving…")
            self._save_timer.start()
        else:
            self._save_timer.stop()

    def _validate(self) -> bool:
        """Check the form with the engine's rules; mark the failing field. True if valid."""
        data = self.style_data()
        checked = dict(data)
        checked["lut_path"] = self._resolve(data["lut_path"])
        checked["reference_images"] = [self._resolve(r) for r in data["reference_images"]]
        try:
            self._checker.load_style_bible(checked)  # in memory: never writes
        except api.ParameterError as err:
            self._show_error(_one_line(err), _field_of(err.name))
            self._set_valid(False)
            if self._manager is not None:
                self.status_label.setText("Not saved until the field framed in red is fixed.")
            return False
        bible = self._checker.style_bible
        self._show_error("", "")
        self.swatches.set_colours([QColor(*rgb) for rgb in bible.palette])
        self._set_valid(True)
        return True

    def _show_error(self, message: str, field_name: str) -> None:
        for name, widget in self._fields.items():
            mark_invalid(widget, bool(message) and name == field_name)
        self._error_field = field_name
        self.error_label.setText(message)
        self.error_label.setVisible(bool(message))

    def _set_valid(self, valid: bool) -> None:
        if valid != self._valid:
            self._valid = valid
            self.validity_changed.emit(valid)

    def _save(self) -> None:
        manager = self._manager
        if manager is None or not self._validate():
            return
        data = self.style_data()
        folder = self._project_dir

        def work() -> tuple[Path, dict[str, Any]]:
            manager.load_style_bible(data)  # validated again against the project, saved
            return manager.path, manager.style_bible.to_dict()

        def done(result: tuple[Path, dict[str, Any]]) -> None:
            if folder != self._project_dir:
                return
            path, saved = result
            self.status_label.setText(f"Saved in {path}")
            self.style_changed.emit(saved)
            self.saved.emit(path)

        def failed(err: BaseException) -> None:
            field_name = _field_of(err.name) if isinstance(err, api.ParameterError) else ""
            self._show_error(f"Not saved: {_one_line(err)}", field_name)

        self.bridge.call(work, done, failed)


def copy_into(folder: Path, images: list[Path]) -> list[Path]:
    """Copy ``images`` into ``folder`` (each written beside its name and renamed over it).

    A name already taken by a different file gets ``-2``, ``-3``...; the same file is not
    copied twice.  Blocking: run it through the bridge.

    Raises
    ------
    MediaInputError
        An image is missing or cannot be read or written.
    """
    folder.mkdir(parents=True, exist_ok=True)
    copies = []
    for source in images:
        if not source.is_file():
            raise api.MediaInputError(source, "is not there (moved or deleted?)")
        target, n = folder / source.name, 2
        while target.exists() and target.read_bytes() != source.read_bytes():
            target, n = folder / f"{source.stem}-{n}{source.suffix}", n + 1
        if not target.exists():
            partial = target.with_name(f".{target.name}.partial")
            try:
                shutil.copyfile(source, partial)
                os.replace(partial, target)
            except OSError as err:
                partial.unlink(missing_ok=True)
                raise api.MediaInputError(
                    source, f"could not be copied into the project ({err})"
                ) from err
        copies.append(target)
    return copies


def _number(text: str, kind: Callable[[str], Any]) -> Any:
    """``text`` as a number when it is one; else the text itself, for the engine to name."""
    try:
        return kind(text.strip())
    except ValueError:
        return text
