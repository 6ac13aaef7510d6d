"""The grading panel: the four stages of :class:`~engine.api.ColorGrader` with live preview.

Each stage has its own tab: **1 primary** (exposure, contrast, brightness, saturation,
lift/gamma/gain, temperature, tint), **2 secondary** (the HSL qualifier and what it does
to the selected colours), **3 look** (a shipped look or a dropped/chosen ``.cube``, its
strength and interpolation) and **4 finishing** (halation, bloom, vignette, grain,
letterbox).  Every control is a slider with a numeric field beside it; ranges are the
engine's (``docs/grading.md``).  *Reset* puts one stage back to neutral.

The preview shows the selected shot's still graded with the panel's settings, computed
through the bridge at preview size with the grader's exact float path (see
:func:`grade_preview`); a newer change while one is being graded is graded next, and
intermediate ones are skipped.  *Apply to shot / section / all* emits
:attr:`GradingPanel.grade_applied` for the timeline and, with a project open, stores the
grade in the project's settings (``grades``: ``global``, ``sections``, ``shots``).

Examples
--------
>>> panel = GradingPanel(bridge)
>>> panel.set_shot(Path("images/shot_03.png"), shot_id="clip-3", section="chorus")
>>> panel.control(1, "exposure").set_value(0.5)    # grade_changed, then a new preview
>>> panel.load_lut(Path("looks/teal.cube"))         # errors name the line of the file
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QDragEnterEvent, QDropEvent, QImage
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QSizePolicy,
    QSlider,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from app.engine_bridge import one_line as _one_line
from app.widgets.panel_common import (
    ScaledImageLabel,
    array_to_qimage,
    dropped_paths,
    load_rgb,
    save_screenshot,
)
from engine import api

__all__ = [
    "FINISHING_CONTROLS",
    "GradingPanel",
    "SliderField",
    "StageControl",
    "grade_preview",
]

log = logging.getLogger(__name__)

PREVIEW_SIDE = 480
_SLIDER_STEPS = 1000
_GRADING_PREVIEW = "Grading the preview…"


@dataclass(frozen=True)
class StageControl:
    """One numeric control: the engine key, its label, range, neutral value and decimals."""

    key: str
    label: str
    minimum: float
    maximum: float
    neutral: float
    decimals: int = 2


PRIMARY_CONTROLS = (
    StageControl("exposure", "Exposure (stops)", -2.0, 2.0, 0.0),
    StageControl("contrast", "Contrast", 0.0, 100.0, 50.0, 1),
    StageControl("brightness", "Brightness", 0.0, 100.0, 50.0, 1),
    StageControl("saturation", "Saturation", 0.0, 100.0, 50.0, 1),
    StageControl("lift", "Lift", -0.5, 0.5, 0.0, 3),
    StageControl("gamma", "Gamma", 0.2, 5.0, 1.0),
    StageControl("gain", "Gain", 0.0, 4.0, 1.0),
    StageControl("temperature", "Temperature", -100.0, 100.0, 0.0, 1),
    StageControl("tint", "Tint", -100.0, 100.0, 0.0, 1),
)
SECONDARY_CONTROLS = (
    StageControl("hue_center", "Hue centre (°)", 0.0, 360.0, 0.0, 1),
    StageControl("hue_width", "Hue width (°)", 0.0, 360.0, 360.0, 1),
    StageControl("hue_softness", "Hue softness (°)", 0.0, 180.0, 20.0, 1),
    StageControl("sat_low", "Saturation from", 0.0, 1.0, 0.0),
    StageControl("sat_high", "Saturation to", 0.0, 1.0, 1.0),
    StageControl("lum_low", "Lightness from", 0.0, 1.0, 0.0),
    StageControl("lum_high", "Lightness to", 0.0, 1.0, 1.0),
    StageControl("range_softness", "Range softness", 0.0, 0.5, 0.1),
    StageControl("hue_shift", "Hue shift (°)", -180.0, 180.0, 0.0, 1),
    StageControl("saturation_gain", "Saturation gain", 0.0, 4.0, 1.0),
    StageControl("lightness_offset", "Lightness offset", -0.5, 0.5, 0.0, 3),
)
# Finishing: the main parameter of each effect (the others keep the engine's defaults).
FINISHING_CONTROLS = (
    ("halation", StageControl("amount", "Halation", 0.0, 1.0, 0.25)),
    ("bloom", StageControl("amount", "Bloom", 0.0, 1.0, 0.25)),
    ("vignette", StageControl("amount", "Vignette", 0.0, 1.0, 0.3)),
    ("grain", StageControl("amount", "Grain", 0.0, 1.0, 0.25)),
    ("letterbox", StageControl("aspect", "Letterbox (w:h)", 1.0, 4.0, 2.39)),
)
SCOPES = ("shot", "section", "all")


class SliderField(QWidget):
    """A slider and a numeric field showing the same value.

    Signals
    -------
    value_changed (float)
        The value, whenever the user moves the slider or edits the field.
    """

    value_changed = Signal(float)

    def __init__(self, spec: StageControl, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.spec = spec
        self.slider = QSlider(Qt.Orientation.Horizontal, self)
        self.slider.setRange(0, _SLIDER_STEPS)
        self.slider.setPageStep(_SLIDER_STEPS // 20)
        self.spin = QDoubleSpinBox(self)
        self.spin.setRange(spec.minimum, spec.maximum)
        self.spin.setDecimals(spec.decimals)
        self.spin.setSingleStep(10.0 ** (1 - spec.decimals))
        self.spin.setKeyboardTracking(False)  # typing "1.5" is one change, not three
        self.spin.setMinimumWidth(76)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.slider, 1)
        layout.addWidget(self.spin)
        self.set_value(spec.neutral)
        self.slider.valueChanged.connect(self._slider_moved)
        self.spin.valueChanged.connect(self._spin_changed)

    def value(self) -> float:
        return float(self.spin.value())

    def set_value(self, value: float) -> None:
        """Show ``value`` without emitting :attr:`value_changed`."""
        self.spin.blockSignals(True)
        self.slider.blockSignals(True)
        self.spin.setValue(value)
        self.slider.setValue(self._to_slider(value))
        self.spin.blockSignals(False)
        self.slider.blockSignals(False)

    def _to_slider(self, value: float) -> int:
        spec = self.spec
        return round((value - spec.minimum) / (spec.maximum - spec.minimum) * _SLIDER_STEPS)

    def _slider_moved(self, position: int) -> None:
        spec = self.spec
        value = spec.minimum + (spec.maximum - spec.minimum) * position / _SLIDER_STEPS
        value = round(value, spec.decimals)
        self.spin.blockSignals(True)
        self.spin.setValue(value)
        self.spin.blockSignals(False)
        self.value_changed.emit(self.value())

    def _spin_changed(self, value: float) -> None:
        self.slider.blockSignals(True)
        self.slider.setValue(self._to_slider(value))
        self.slider.blockSignals(False)
        self.value_changed.emit(float(value))


class _Preview(ScaledImageLabel):
    """The graded still, scaled to the label."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setMinimumSize(240, 135)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.setStyleSheet("background: #151515; color: #999999;")
        self.setText("Select a shot on the timeline to preview its grade")

    def set_image(self, image: QImage) -> None:
        self.show_image(image)


class GradingPanel(QWidget):
    """Edits a grade stage by stage and previews it on the selected shot.

    Parameters
    ----------
    bridge : EngineBridge
        Grading the preview, reading stills and parsing LUTs go through ``bridge.call``.
    parent : QWidget, optional

    Signals
    -------
    grade_changed (dict)
        The grade (``ColorGrader.to_dict()``) after every change.
    preview_updated ()
        A new preview frame is shown (:attr:`preview_frame`).
    grade_applied (str, str, dict)
        Scope (``"shot"``, ``"section"`` or ``"all"``), target (shot id, section label,
        or ``""``) and the grade.
    lut_loaded (str)
        The path of a LUT now in stage 3.
    lut_failed (str)
        Why a LUT was refused (the engine's message, naming the line of the file).
    """

    grade_changed = Signal(dict)
    preview_updated = Signal()
    grade_applied = Signal(str, str, dict)
    lut_loaded = Signal(str)
    lut_failed = Signal(str)

    def __init__(self, bridge: Any, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("gradingPanel")
        self.bridge = bridge
        self._grader = api.ColorGrader()
        self._source: np.ndarray | None = None
        self._preview: np.ndarray | None = None
        self._shot_id = ""
        self._section = ""
        self._in_flight = False
        self._dirty = False
        self._reading = False  # a shot's still is being read (set_shot)
        self._generation = 0  # bumped when the shot changes: late results are dropped
        self._controls: dict[tuple[int, str], SliderField] = {}
        self._effect_boxes: dict[str, QCheckBox] = {}
        self._grades: dict[str, Any] = {}
        self._grades_of = ""  # the project id self._grades belongs to
        self.setAcceptDrops(True)
        self._build()
        self._sync_controls()

    # -- building ---------------------------------------------------------------------

    def _build(self) -> None:
        self.preview = _Preview(self)
        self.preview.setObjectName("gradePreview")
        self.before_box = QCheckBox("Show before", self)
        self.before_box.setToolTip("Show the shot without the grade")
        self.shot_label = QLabel("No shot selected", self)
        self.shot_label.setStyleSheet("color: #777777;")
        self.apply_buttons = {
            "shot": QPushButton("Apply to shot", self),
            "section": QPushButton("Apply to section", self),
            "all": QPushButton("Apply to all", self),
        }
        self.status_label = QLabel("", self)
        self.status_label.setObjectName("statusLabel")
        self.status_label.setStyleSheet("color: #777777;")
        self.status_label.setWordWrap(True)

        self.tabs = QTabWidget(self)
        self.reset_buttons: dict[int, QPushButton] = {}
        self.tabs.addTab(self._stage_tab(1, PRIMARY_CONTROLS), "1 Primary")
        self.tabs.addTab(self._stage_tab(2, SECONDARY_CONTROLS), "2 Secondary")
        self.tabs.addTab(self._look_tab(), "3 Look")
        self.tabs.addTab(self._finishing_tab(), "4 Finishing")

        header = QHBoxLayout()
        header.addWidget(self.shot_label, 1)
        header.addWidget(self.before_box)
        scopes = QHBoxLayout()
        for button in self.apply_buttons.values():
            scopes.addWidget(button)
        layout = QVBoxLayout(self)
        # the controls keep their height; the preview takes what is left (up to a point)
        self.preview.setMaximumHeight(360)
        layout.addWidget(self.preview, 1)
        layout.addLayout(header)
        layout.addWidget(self.tabs, 0)
        layout.addLayout(scopes)
        layout.addWidget(self.status_label)

        self.before_box.toggled.connect(self._show_preview)
        for scope, button in self.apply_buttons.items():
            button.clicked.connect(lambda _=False, s=scope: self.apply_to(s))
        self._update_apply_buttons()

    def _stage_page(self, stage: int) -> tuple[QWidget, QFormLayout]:
        page = QWidget(self)
        outer = QVBoxLayout(page)
        form = QFormLayout()
        form.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
        outer.addLayout(form)
        reset = QPushButton(f"Reset {api.STAGES[stage]}", page)
        reset.setObjectName(f"reset{stage}")
        reset.clicked.connect(lambda _=False, s=stage: self.reset_stage(s))
        self.reset_buttons[stage] = reset
        row = QHBoxLayout()
        row.addStretch(1)
        row.addWidget(reset)
        outer.addLayout(row)
        outer.addStretch(1)
        return page, form

    def _stage_tab(self, stage: int, specs: tuple[StageControl, ...]) -> QWidget:
        page, form = self._stage_page(stage)
        for spec in specs:
            field = SliderField(spec, page)
            field.setObjectName(f"{api.STAGES[stage]}.{spec.key}")
            field.value_changed.connect(lambda value, s=stage, k=spec.key: self._set(s, {k: value}))
            self._controls[(stage, spec.key)] = field
            form.addRow(spec.label, field)
        return page

    def _look_tab(self) -> QWidget:
        page, form = self._stage_page(3)
        self.look_combo = QComboBox(page)
        self.look_combo.setObjectName("lookCombo")
        self.look_combo.addItem("(no look)", "")
        for name, path in api.shipped_looks().items():
            self.look_combo.addItem(name, str(path))
        self.look_combo.activated.connect(self._look_chosen)
        self.lut_button = QPushButton("Load .cube…", page)
        self.lut_button.clicked.connect(self._browse_lut)
        row = QHBoxLayout()
        row.addWidget(self.look_combo, 1)
        row.addWidget(self.lut_button)
        form.addRow("Look", row)
        self.lut_label = QLabel("Drop a .cube file on this panel to use it", page)
        self.lut_label.setObjectName("lutLabel")
        self.lut_label.setWordWrap(True)
        self.lut_label.setStyleSheet("color: #777777;")
        form.addRow("", self.lut_label)
        self.lut_error = QLabel("", page)
        self.lut_error.setObjectName("lutError")
        self.lut_error.setWordWrap(True)
        self.lut_error.setStyleSheet("color: #d9534f;")
        self.lut_error.setVisible(False)
        form.addRow("", self.lut_error)
        strength = SliderField(StageControl("strength", "Strength", 0.0, 1.0, 1.0), page)
        strength.setObjectName("look.strength")
        strength.value_changed.connect(self._strength_changed)
        self._controls[(3, "strength")] = strength
        form.addRow("Strength", strength)
        self.interpolation_combo = QComboBox(page)
        self.interpolation_combo.addItems(["trilinear", "tetrahedral"])
        self.interpolation_combo.activated.connect(self._interpolation_changed)
        form.addRow("Interpolation", self.interpolation_combo)
        return page

    def _finishing_tab(self) -> QWidget:
        page, form = self._stage_page(4)
        grid = QGridLayout()
        for row, (effect, spec) in enumerate(FINISHING_CONTROLS):
            box = QCheckBox(spec.label, page)
            box.setObjectName(f"finishing.{effect}")
            field = SliderField(spec, page)
            field.setObjectName(f"finishing.{effect}.{spec.key}")
            box.toggled.connect(lambda on, e=effect: self._effect_toggled(e, on))
            field.value_changed.connect(
                lambda value, e=effect, k=spec.key: self._effect_value(e, k, value)
            )
            self._effect_boxes[effect] = box
            self._controls[(4, effect)] = field
            grid.addWidget(box, row, 0)
            grid.addWidget(field, row, 1)
        form.addRow(grid)
        return page

    # -- public API -------------------------------------------------------------------

    @property
    def grader(self) -> Any:
        """A copy of the panel's grade as a :class:`~engine.api.ColorGrader`."""
        return api.ColorGrader.from_dict(self._grader.to_dict())

    def grade(self) -> dict[str, Any]:
        """The grade as ``ColorGrader.to_dict()``."""
        return self._grader.to_dict()

    @property
    def preview_frame(self) -> np.ndarray | None:
        """The last graded preview (RGB uint8), or None before a shot is shown."""
        return self._preview

    @property
    def source_frame(self) -> np.ndarray | None:
        """The selected shot's still at preview size, ungraded."""
        return self._source

    def control(self, stage: int, key: str) -> SliderField:
        """The control of stage ``stage``'s ``key`` (stage 4: the effect's name)."""
        return self._controls[(stage, key)]

    def effect_box(self, effect: str) -> QCheckBox:
        return self._effect_boxes[effect]

    def set_grade(self, grade: dict[str, Any] | Any) -> None:
        """Show a grade (a ``to_dict()`` dict or a ColorGrader); errors go to the status line."""
        try:
            grader = (
                grade if isinstance(grade, api.ColorGrader) else api.ColorGrader.from_dict(grade)
            )
        except api.APEXDirectorError as err:
            self.status_label.setText(f"Grade not loaded: {_one_line(err)}")
            return
        self._grader = api.ColorGrader.from_dict(grader.to_dict())
        self._sync_controls()
        self._changed()

    def set_frame(self, frame: np.ndarray, *, shot_id: str = "", section: str = "") -> None:
        """Preview the grade on ``frame`` (RGB uint8), the still of ``shot_id``."""
        self._generation += 1
        self._source = np.ascontiguousarray(frame)
        self._shot_id, self._section = shot_id, section
        self.shot_label.setText(
            f"Shot {shot_id}" + (f" · {section}" if section else "") if shot_id else "Frame"
        )
        self._update_apply_buttons()
        self._request_preview()

    def set_shot(self, image_path: Path | str, *, shot_id: str = "", section: str = "") -> None:
        """Preview the grade on the still of the selected shot (read through the bridge)."""
        path = Path(image_path)
        self._generation += 1
        generation = self._generation
        self._reading = True  # no preview of the previous still meanwhile
        self.status_label.setText(f"Reading {path.name}…")

        def done(frame: np.ndarray) -> None:
            if generation == self._generation:
                self._reading = False
                self.set_frame(frame, shot_id=shot_id or path.stem, section=section)

        def failed(err: BaseException) -> None:
            if generation == self._generation:
                self._reading = False
                self.status_label.setText(f"No preview: {_one_line(err)}")

        self.bridge.call(lambda: load_rgb(path, max_side=PREVIEW_SIDE), done, failed)

    def show_clip(self, clip: Any, *, base_dir: Path | str | None = None) -> None:
        """Preview on a timeline :class:`~engine.api.Clip` (its first picture).

        The grade the project stores for the shot or its section (*Apply to shot /
        section*), else the clip's own grade, is loaded into the panel (the order in which
        a render applies them); otherwise the panel
        keeps its settings, so one grade can be applied to shot after shot.
        Relative picture paths are resolved against ``base_dir`` (the project folder).
        """
        source = clip.source
        if source.kind not in ("still", "image_sequence") or not source.paths:
            self.status_label.setText(f"Clip {clip.clip_id} has no picture to preview.")
            return
        path = Path(source.paths[0])
        if not path.is_absolute() and base_dir is not None:
            path = Path(base_dir) / path
        section = str(clip.metadata.get("section", "")) if clip.metadata else ""
        # the render's order (engine.api.apply_grades): the project's grade for the shot,
        # else for its section, else the clip's own grade in the edit
        grade = self.stored_grade(clip.clip_id, section)
        if grade is None and clip.grade is not None:
            grade = dict(clip.grade)
        if grade is not None:
            self.set_grade(grade)
        self.set_shot(path, shot_id=clip.clip_id, section=section)

    def stored_grade(self, shot_id: str, section: str) -> dict[str, Any] | None:
        """The grade the open project stores for the shot, else for its section, or None."""
        project = getattr(self.bridge, "project", None)
        if project is None:
            return None
        if self._grades_of != project.id:
            self._grades, self._grades_of = _copy_grades(project.settings.get("grades")), project.id
        return self._grades["shots"].get(shot_id) or self._grades["sections"].get(section)

    def reset_stage(self, stage: int) -> None:
        """Put one stage (1..4) back to neutral."""
        self._grader.reset_stage(stage)
        if stage == 3:
            self._show_lut_error("")
        self._sync_controls()
        self._changed()

    def load_lut(self, path: Path | str) -> None:
        """Use a ``.cube`` file as the look (parsed through the bridge).

        A malformed file is refused with the engine's message, which names the line;
        the message shows under the look and :attr:`lut_failed` is emitted.
        """
        path = Path(path).expanduser().absolute()
        self.tabs.setCurrentIndex(2)
        self.lut_label.setText(f"Reading {path.name}…")
        look = self._grader.look
        strength = look.strength if look is not None else 1.0
        interpolation = self.interpolation_combo.currentText()

        def parse() -> str:
            probe = api.ColorGrader()  # parsing fills the engine's table cache
            probe.apply_lut(path, strength, interpolation=interpolation)
            return str(path)

        def done(loaded: str) -> None:
            try:
                self._grader.apply_lut(loaded, strength, interpolation=interpolation)
            except api.APEXDirectorError as err:  # changed on disk since it was parsed
                failed(err)
                return
            self._show_lut_error("")
            self._sync_controls()
            self._changed()
            self.lut_loaded.emit(loaded)

        def failed(err: BaseException) -> None:
            message = _one_line(err)
            self._show_lut_error(message)
            self._sync_controls()
            self.lut_failed.emit(message)

        self.bridge.call(parse, done, failed)

    def apply_to(self, scope: str) -> None:
        """Apply the grade to the shot, its section or the whole video (see the module docs)."""
        if scope not in SCOPES:
            raise api.ParameterError("scope", scope, "shot, section or all")
        target = {"shot": self._shot_id, "section": self._section, "all": ""}[scope]
        if scope != "all" and not target:
            self.status_label.setText(f"No {scope} selected: select a shot on the timeline.")
            return
        grade = self._grader.to_dict()
        self.grade_applied.emit(scope, target, grade)
        where = {"shot": f"shot {target}", "section": f"section {target}", "all": "every shot"}
        project = getattr(self.bridge, "project", None)
        if project is None:
            self.status_label.setText(f"Applied to {where[scope]}.")
            return
        # kept here between saves so two quick applies cannot undo each other
        if self._grades_of != project.id:
            self._grades, self._grades_of = _copy_grades(project.settings.get("grades")), project.id
        grades = self._grades
        if scope == "all":
            grades["global"] = grade
        else:
            grades["sections" if scope == "section" else "shots"][target] = grade
        self.bridge.update_project(
            {"grades": _copy_grades(grades)},
            lambda _info: self.status_label.setText(
                f"Applied to {where[scope]} and saved in the project."
            ),
        )

    def screenshot(self, path: Path | str) -> Path:
        """Save a PNG of the panel (``grab()``); for docs/images/."""
        return save_screenshot(self, path)

    # -- drops ------------------------------------------------------------------------

    def dragEnterEvent(self, event: QDragEnterEvent) -> None:  # noqa: N802 (Qt override)
        if dropped_paths(event.mimeData(), {".cube"}):
            event.acceptProposedAction()
        else:
            event.ignore()

    def dropEvent(self, event: QDropEvent) -> None:  # noqa: N802 (Qt override)
        paths = dropped_paths(event.mimeData(), {".cube"})
        if not paths:
            event.ignore()
            return
        event.acceptProposedAction()
        self.load_lut(paths[0])

    # -- internals --------------------------------------------------------------------

    def _set(self, stage: int, corrections: dict[str, Any]) -> None:
        try:
            self._grader.apply_stage(stage, corrections)
        except api.APEXDirectorError as err:  # e.g. saturation range from above its top
            self.status_label.setText(_one_line(err))
            self._sync_controls()
            return
        self._changed()

    def _effect_toggled(self, effect: str, on: bool) -> None:
        spec = dict(FINISHING_CONTROLS)[effect]
        value = self._controls[(4, effect)].value()
        self._set(4, {effect: {spec.key: value} if on else None})

    def _effect_value(self, effect: str, key: str, value: float) -> None:
        box = self._effect_boxes[effect]
        if not box.isChecked():
            box.blockSignals(True)
            box.setChecked(True)  # moving an effect's slider turns it on
            box.blockSignals(False)
        self._set(4, {effect: {key: value}})

    def _look_chosen(self, index: int) -> None:
        path = self.look_combo.itemData(index)
        if path:
            self.load_lut(path)
        else:
            self._set(3, {"lut": None})
            self._sync_controls()

    def _strength_changed(self, value: float) -> None:
        if self._grader.look is None:
            return
        self._set(3, {"strength": value})

    def _interpolation_changed(self, _index: int) -> None:
        if self._grader.look is not None:
            self._set(3, {"interpolation": self.interpolation_combo.currentText()})

    def _browse_lut(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Choose a LUT", "", "LUT (*.cube)")
        if path:
            self.load_lut(path)

    def _show_lut_error(self, message: str) -> None:
        self.lut_error.setText(message)
        self.lut_error.setVisible(bool(message))

    def _sync_controls(self) -> None:
        """Show the grader's settings in every control (no signals)."""
        primary = self._grader.primary.to_dict()
        for spec in PRIMARY_CONTROLS:
            value = primary.get(spec.key, spec.neutral)
            if isinstance(value, list | tuple):
                value = sum(value) / len(value)  # per-channel: the master shows the mean
            self._controls[(1, spec.key)].set_value(float(value))
        secondary = self._grader.secondary.to_dict()
        for spec in SECONDARY_CONTROLS:
            self._controls[(2, spec.key)].set_value(float(secondary.get(spec.key, spec.neutral)))
        look = self._grader.look
        self._controls[(3, "strength")].set_value(look.strength if look is not None else 1.0)
        self.look_combo.blockSignals(True)
        if look is None:
            self.look_combo.setCurrentIndex(0)
            self.lut_label.setText("Drop a .cube file on this panel to use it")
        else:
            index = self.look_combo.findText(look.lut)
            if index < 0:
                index = self.look_combo.findData(str(look.path))
            if index < 0:
                self.look_combo.addItem(Path(look.lut).name, str(look.path))
                index = self.look_combo.count() - 1
            self.look_combo.setCurrentIndex(index)
            self.lut_label.setText(f"Look: {look.path}")
            self.interpolation_combo.setCurrentText(look.interpolation)
        self.look_combo.blockSignals(False)
        finishing = self._grader.finishing
        for effect, spec in FINISHING_CONTROLS:
            settings = getattr(finishing, effect)
            box = self._effect_boxes[effect]
            box.blockSignals(True)
            box.setChecked(settings is not None)
            box.blockSignals(False)
            value = getattr(settings, spec.key) if settings is not None else spec.neutral
            self._controls[(4, effect)].set_value(float(value))

    def _changed(self) -> None:
        self.grade_changed.emit(self._grader.to_dict())
        self._request_preview()

    def _update_apply_buttons(self) -> None:
        self.apply_buttons["shot"].setEnabled(bool(self._shot_id))
        self.apply_buttons["section"].setEnabled(bool(self._section))

    def _request_preview(self) -> None:
        if self._source is None or self._reading:
            return  # set_frame() asks again once the new still is there
        if self._in_flight:
            self._dirty = True  # graded when the one in flight comes back
            return
        self._in_flight, self._dirty = True, False
        settings, frame, generation = self._grader.to_dict(), self._source, self._generation
        self.status_label.setText(_GRADING_PREVIEW)

        def work() -> np.ndarray:
            return grade_preview(api.ColorGrader.from_dict(settings), frame)

        def done(graded: np.ndarray) -> None:
            self._in_flight = False
            if generation == self._generation:
                self._preview = graded
                self._show_preview()
                if self.status_label.text() == _GRADING_PREVIEW:  # keep a newer message
                    self.status_label.setText("")
                self.preview_updated.emit()
            if self._dirty or generation != self._generation:
                self._request_preview()

        def failed(err: BaseException) -> None:
            self._in_flight = False
            self.status_label.setText(f"Preview failed: {_one_line(err)}")
            if self._dirty:
                self._request_preview()

        self.bridge.call(work, done, failed)

    def _show_preview(self) -> None:
        frame = self._source if self.before_box.isChecked() else self._preview
        if frame is not None:
            self.preview.set_image(array_to_qimage(frame))


def grade_preview(grader: Any, frame: np.ndarray) -> np.ndarray:
    """Grade a preview-size frame with the exact float path of the grader.

    ``ColorGrader.grade`` first compiles a 64 MiB table whenever a secondary, a look or
    saturation is set: 0.4 to 2.5 s for each new setting, which is every step of a slider
    drag.  On a 480x270 preview the exact path takes 10 to 300 ms, and the render's
    compiled result stays within 1.5 levels of it (``docs/grading.md``).
    """
    if grader.is_identity:
        return frame
    graded = grader.grade_float(frame)
    return np.round(graded * 255.0).astype(np.uint8)


def _copy_grades(grades: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"global": None, "sections": {}, "shots": {}}
    if isinstance(grades, dict):
        out["global"] = grades.get("global")
        out["sections"] = dict(grades.get("sections") or {})
        out["shots"] = dict(grades.get("shots") or {})
    return out
