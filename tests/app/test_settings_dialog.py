"""The settings dialog: validated as you type, saved to the engine's TOML file."""

from __future__ import annotations

import tomllib
from pathlib import Path

from PySide6.QtCore import QSettings, Qt
from PySide6.QtWidgets import QDialogButtonBox
from pytestqt.qtbot import QtBot

from app.widgets.settings_dialog import SettingsDialog


def _dialog(qtbot: QtBot, tmp_path: Path) -> SettingsDialog:
    settings = QSettings(str(tmp_path / "gui.ini"), QSettings.Format.IniFormat)
    dialog = SettingsDialog(tmp_path / "config" / "config.toml", settings)
    qtbot.addWidget(dialog)
    dialog.show()
    return dialog


def test_edits_are_saved_to_the_engine_config_and_qsettings(qtbot: QtBot, tmp_path: Path) -> None:
    dialog = _dialog(qtbot, tmp_path)
    comfy = tmp_path / "ComfyUI" / "models"
    dialog.models_dir.clear()
    qtbot.keyClicks(dialog.models_dir, str(comfy))
    dialog.device.setCurrentText("cpu")
    dialog.preset.setCurrentText("draft")
    dialog.backends.setCurrentText("Stable Diffusion, then draft")
    qtbot.keyClicks(dialog.workspace, str(tmp_path / "videos"))
    save = dialog.buttons.button(QDialogButtonBox.StandardButton.Save)
    assert save.isEnabled()
    with qtbot.waitSignal(dialog.saved, timeout=5000) as saved:
        qtbot.mouseClick(save, Qt.MouseButton.LeftButton)
    written = tomllib.loads((tmp_path / "config" / "config.toml").read_text())
    assert written["paths"]["models_dir"] == str(comfy)
    assert written["render"]["device"] == "cpu"
    assert written["render"]["preset"] == "draft"
    assert written["render"]["backend_order"] == ["diffusers", "procedural"]
    assert saved.args[0]["render"]["preset"] == "draft"
    assert dialog.settings.value("workspace") == str(tmp_path / "videos")
    # opened again, it shows what was saved
    again = _dialog(qtbot, tmp_path)
    assert again.models_dir.text() == str(comfy)
    assert again.device.currentText() == "cpu"
    assert again.backends.currentText() == "Stable Diffusion, then draft"


def test_a_bad_value_is_named_as_you_type_and_save_is_disabled(
    qtbot: QtBot, tmp_path: Path
) -> None:
    dialog = _dialog(qtbot, tmp_path)
    save = dialog.buttons.button(QDialogButtonBox.StandardButton.Save)
    dialog.models_dir.selectAll()
    qtbot.keyClick(dialog.models_dir, Qt.Key.Key_Delete)
    assert not save.isEnabled()
    assert "Models folder" in dialog.problem.text()
    a_file = tmp_path / "a-file.txt"
    a_file.write_text("x")
    qtbot.keyClicks(dialog.models_dir, "models")
    qtbot.keyClicks(dialog.workspace, str(a_file))
    assert not save.isEnabled()
    assert "is a file" in dialog.problem.text()
    dialog.workspace.clear()
    assert save.isEnabled() and dialog.problem.text() == ""


def test_a_broken_config_file_is_shown_and_rewritten_on_save(qtbot: QtBot, tmp_path: Path) -> None:
    path = tmp_path / "config" / "config.toml"
    path.parent.mkdir()
    path.write_text("render = [broken")
    dialog = _dialog(qtbot, tmp_path)
    assert "not valid TOML" in dialog.problem.text()
    with qtbot.waitSignal(dialog.saved, timeout=5000):
        qtbot.mouseClick(
            dialog.buttons.button(QDialogButtonBox.StandardButton.Save), Qt.MouseButton.LeftButton
        )
    assert tomllib.loads(path.read_text())["render"]["preset"] == "web"


def test_memory_strategy_and_cache_limit_are_validated_and_saved(
    qtbot: QtBot, tmp_path: Path
) -> None:
    from app.widgets.settings_dialog import _MEMORY_STRATEGIES
    from engine.config.schema import MEMORY_STRATEGIES

    assert tuple(_MEMORY_STRATEGIES) == MEMORY_STRATEGIES  # the GUI offers the engine's choices
    dialog = _dialog(qtbot, tmp_path)
    save = dialog.buttons.button(QDialogButtonBox.StandardButton.Save)
    assert dialog.memory.currentData() == "auto"
    assert dialog.cache_max_gb.text() == "0"
    dialog.memory.setCurrentIndex(dialog.memory.findData("vae_tiling"))
    dialog.cache_max_gb.selectAll()
    qtbot.keyClicks(dialog.cache_max_gb, "2.5x")
    assert not save.isEnabled()
    assert "Render cache limit" in dialog.problem.text()
    qtbot.keyClick(dialog.cache_max_gb, Qt.Key.Key_Backspace)
    assert save.isEnabled(), dialog.problem.text()
    dialog.cache_max_gb.setText("-1")
    assert not save.isEnabled()
    assert "paths.cache_max_gb" in dialog.problem.text()
    dialog.cache_max_gb.setText("2.5")
    assert save.isEnabled()
    with qtbot.waitSignal(dialog.saved, timeout=5000):
        qtbot.mouseClick(save, Qt.MouseButton.LeftButton)
    written = tomllib.loads((tmp_path / "config" / "config.toml").read_text())
    assert written["generation"]["memory_strategy"] == "vae_tiling"
    assert written["paths"]["cache_max_gb"] == 2.5
    again = _dialog(qtbot, tmp_path)
    assert again.memory.currentData() == "vae_tiling"
    assert again.cache_max_gb.text() == "2.5"
