"""Settings: the models folder (ours, or an existing ComfyUI / A1111 one), the device and
the memory level Stable Diffusion starts at, the default output preset and image backends,
the render cache's size limit, and where new projects go.

Engine settings are validated by :class:`~engine.api.ConfigManager` as they are edited
(a bad value is named under its field, Save stays disabled) and saved to the engine's
TOML configuration file, the one the CLI reads too.  The projects folder is GUI-only
state and lives in ``QSettings``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from PySide6.QtCore import QSettings, Signal
from PySide6.QtWidgets import (
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from engine import api

__all__ = ["SettingsDialog"]

_DEVICES = ("auto", "cuda", "mps", "cpu")
# generation.memory_strategy: the engine schema's choices (a test keeps them in step), shown
# with what each level does.
_MEMORY_STRATEGIES = {
    "auto": "Automatic (fastest; leaner on out-of-memory)",
    "none": "Everything on the GPU",
    "attention_slicing": "Attention slicing",
    "vae_tiling": "Attention slicing + VAE tiling",
    "model_cpu_offload": "Model CPU offload (GPU only)",
    "sequential_cpu_offload": "Sequential CPU offload (GPU only; slowest)",
}
_BACKEND_ORDERS = {
    "Draft renderer only (procedural)": ["procedural"],
    "Stable Diffusion, then draft": ["diffusers", "procedural"],
    "My stills, then draft": ["stills", "procedural"],
}


class SettingsDialog(QDialog):
    """The settings dialog.

    Parameters
    ----------
    config_path : Path
        The engine's TOML configuration file (created on Save when missing).
    settings : QSettings
        The GUI's own settings (the projects folder).

    Signals
    -------
    saved (dict)
        The engine configuration as saved.
    """

    saved = Signal(dict)

    def __init__(
        self, config_path: Path, settings: QSettings, parent: QWidget | None = None
    ) -> None:
        super().__init__(parent)
        self.setWindowTitle("Settings")
        self.setObjectName("settingsDialog")
        self.config_path = Path(config_path)
        self.settings = settings
        self.manager = api.ConfigManager(self.config_path)
        self.load_error = ""
        try:
            self.manager.load_config()
        except api.ConfigurationError as err:
            # a broken file: start from the defaults and say so; Save rewrites it
            self.load_error = " ".join(str(err).split())

        self.models_dir = QLineEdit(str(self.manager.get("paths.models_dir")), self)
        self.models_dir.setObjectName("modelsDir")
        self.models_dir.setToolTip(
            "Our models folder, or an existing ComfyUI or A1111 'models' folder"
        )
        browse = QPushButton("Browse…", self)
        browse.clicked.connect(self._browse_models)
        models_row = QHBoxLayout()
        models_row.addWidget(self.models_dir, 1)
        models_row.addWidget(browse)

        self.device = QComboBox(self)
        self.device.setObjectName("device")
        self.device.addItems(list(_DEVICES))
        self.device.setCurrentText(str(self.manager.get("render.device")))
        self.memory = QComboBox(self)
        self.memory.setObjectName("memoryStrategy")
        self.memory.setToolTip(
            "The memory level Stable Diffusion starts at; on out-of-memory it still steps "
            "down to leaner levels"
        )
        for key, label in _MEMORY_STRATEGIES.items():
            self.memory.addItem(label, key)
        index = self.memory.findData(str(self.manager.get("generation.memory_strategy")))
        self.memory.setCurrentIndex(max(index, 0))
        self.cache_max_gb = QLineEdit(self._gb_text(self.manager.get("paths.cache_max_gb")), self)
        self.cache_max_gb.setObjectName("cacheMaxGb")
        self.cache_max_gb.setPlaceholderText("0 = no limit")
        self.cache_max_gb.setToolTip(
            "Size limit of the render cache (stills, segments, analyses) in GB; after each "
            "render the least recently used files are removed. 0 = no limit."
        )
        self.preset = QComboBox(self)
        self.preset.setObjectName("preset")
        self.preset.addItems(list(api.PRESET_NAMES))
        self.preset.setCurrentText(str(self.manager.get("render.preset")))
        self.backends = QComboBox(self)
        self.backends.setObjectName("backends")
        self.backends.addItems(list(_BACKEND_ORDERS))
        current = list(self.manager.get("render.backend_order") or [])
        for label, order in _BACKEND_ORDERS.items():
            if order == current:
                self.backends.setCurrentText(label)
        self.workspace = QLineEdit(str(settings.value("workspace", "") or ""), self)
        self.workspace.setObjectName("workspace")
        self.workspace.setPlaceholderText("where new projects are made")

        self.problem = QLabel(self.load_error, self)
        self.problem.setObjectName("settingsProblem")
        self.problem.setWordWrap(True)
        self.problem.setStyleSheet("color:#d9534f;")

        form = QFormLayout()
        form.addRow("Models folder", models_row)
        form.addRow("Device", self.device)
        form.addRow("Memory strategy", self.memory)
        form.addRow("Default output preset", self.preset)
        form.addRow("Image backends", self.backends)
        form.addRow("Render cache limit (GB)", self.cache_max_gb)
        form.addRow("Projects folder", self.workspace)
        self.buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Save | QDialogButtonBox.StandardButton.Cancel, self
        )
        self.buttons.accepted.connect(self.save)
        self.buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(self.problem)
        layout.addWidget(self.buttons)
        for edit in (self.models_dir, self.workspace, self.cache_max_gb):
            edit.textChanged.connect(self.validate)
        for combo in (self.device, self.memory, self.preset, self.backends):
            combo.currentTextChanged.connect(self.validate)
        self.validate()

    @staticmethod
    def _gb_text(value: Any) -> str:
        number = float(value or 0.0)
        return f"{number:g}"

    def _cache_gb(self) -> float | str:
        """The cache limit as typed: a float, or the text when it is not a number."""
        text = self.cache_max_gb.text().strip().replace(",", ".")
        if not text:
            return 0.0
        try:
            return float(text)
        except ValueError:
            return self.cache_max_gb.text()

    def _browse_models(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Models folder", self.models_dir.text())
        if folder:
            self.models_dir.setText(folder)

    def values(self) -> dict[str, Any]:
        """The engine settings as edited (dotted keys)."""
        return {
            "paths.models_dir": self.models_dir.text().strip(),
            "render.device": self.device.currentText(),
            "generation.memory_strategy": str(self.memory.currentData()),
            "paths.cache_max_gb": self._cache_gb(),
            "render.preset": self.preset.currentText(),
            "render.backend_order": list(_BACKEND_ORDERS[self.backends.currentText()]),
        }

    def validate(self) -> bool:
        """Check every field now (as the user types); returns whether Save may run."""
        problems = []
        for key, value in self.values().items():
            if key == "paths.cache_max_gb" and isinstance(value, str):
                problems.append(
                    f"Render cache limit: {value.strip()!r} is not a number of GB (0 = no limit)"
                )
                continue
            try:
                self.manager.set(key, value)
            except api.APEXDirectorError as err:
                problems.append(" ".join(str(err).split()))
        if not self.models_dir.text().strip():
            problems.append("Models folder: give a folder (it may be empty for now)")
        workspace = self.workspace.text().strip()
        if workspace and Path(workspace).expanduser().is_file():
            problems.append(f"Projects folder: {workspace} is a file; choose a folder")
        self.problem.setText("\n".join(problems) or self.load_error)
        ok = not problems
        self.buttons.button(QDialogButtonBox.StandardButton.Save).setEnabled(ok)
        return ok

    def save(self) -> None:
        """Write the engine configuration (atomically, by the engine) and close."""
        if not self.validate():
            return
        try:
            self.manager.save_config()
        except api.APEXDirectorError as err:
            self.problem.setText(" ".join(str(err).split()))
            return
        workspace = self.workspace.text().strip()
        if workspace:
            self.settings.setValue("workspace", str(Path(workspace).expanduser()))
        self.settings.sync()
        self.saved.emit(self.manager.config)
        self.accept()
