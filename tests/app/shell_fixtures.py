"""Fixtures of the shell's tests (bridge, window, songs), imported by those test files.

Every fixture keeps its files under ``tmp_path``: the QSettings file, the engine
configuration, the projects folder.  The developer's own settings are never read.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from PySide6.QtCore import QMimeData, QPoint, QPointF, QSettings, Qt, QUrl
from PySide6.QtGui import QDragEnterEvent, QDropEvent
from PySide6.QtWidgets import QApplication, QWidget
from pytestqt.qtbot import QtBot

from app.engine_bridge import EngineBridge
from app.main_window import MainWindow
from engine.api import ConfigManager

SONG_SECONDS = 12.8


def make_song(path: Path) -> Path:
    """A 12.8 s synthesized song: a quiet verse, then a loud chorus (150 BPM, 4+4 bars)."""
    from engine.audio.synth import SectionSpec, SongSpec, synthesize_song
    from tests.media import write_wav

    spec = SongSpec(
        tempo=150.0,
        sections=(
            SectionSpec(label="verse", bars=4, energy=0.35),
            SectionSpec(label="chorus", bars=4, energy=0.95),
        ),
        seed=5,
    )
    song = synthesize_song(spec)
    return write_wav(path, song.audio, song.sample_rate)


@pytest.fixture(scope="session")
def song_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_song(tmp_path_factory.mktemp("songs") / "night drive.wav")


def engine_config(**assets: object) -> dict:
    config = ConfigManager().config
    if assets:
        config["assets"] = dict(assets)
    return config


@pytest.fixture
def gui_settings(tmp_path: Path) -> QSettings:
    return QSettings(str(tmp_path / "gui.ini"), QSettings.Format.IniFormat)


@pytest.fixture
def bridge(tmp_path: Path, qtbot: QtBot) -> Iterator[EngineBridge]:
    bridge = EngineBridge(tmp_path / "projects", config=engine_config(busy_timeout_s=0.3))
    bridge.start()
    yield bridge
    bridge.shutdown()


def drop_files(widget: QWidget, paths: list[Path], point: QPoint | None = None) -> QDropEvent:
    """Drag ``paths`` over ``widget`` and drop them at ``point`` (default: its middle),
    as the window system would."""
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(p)) for p in paths])
    if point is None:
        point = QPoint(widget.width() // 2, widget.height() // 2)
    buttons, modifiers = Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier
    enter = QDragEnterEvent(point, Qt.DropAction.CopyAction, mime, buttons, modifiers)
    QApplication.sendEvent(widget, enter)
    assert enter.isAccepted(), "the window refused the drag"
    drop = QDropEvent(QPointF(point), Qt.DropAction.CopyAction, mime, buttons, modifiers)
    QApplication.sendEvent(widget, drop)
    return drop


def make_window(
    tmp_path: Path,
    settings: QSettings,
    *,
    probe_device: bool = False,
    config_path: Path | None = None,
    qa: bool = True,
) -> MainWindow:
    config = engine_config(busy_timeout_s=0.3)
    config["qa"]["enabled"] = qa
    bridge = EngineBridge(tmp_path / "projects", config=config)
    return MainWindow(
        bridge,
        settings=settings,
        config_path=config_path or tmp_path / "config" / "config.toml",
        probe_device=probe_device,
    )


@pytest.fixture
def window(tmp_path: Path, gui_settings: QSettings, qtbot: QtBot) -> Iterator[MainWindow]:
    window = make_window(tmp_path, gui_settings)
    qtbot.addWidget(window)
    window.show()
    qtbot.waitExposed(window)
    yield window
    window.close()


@pytest.fixture
def fast_window(tmp_path: Path, gui_settings: QSettings, qtbot: QtBot) -> Iterator[MainWindow]:
    """A window whose renders skip the delivery QC (for tests about something else)."""
    window = make_window(tmp_path, gui_settings, qa=False)
    qtbot.addWidget(window)
    window.show()
    qtbot.waitExposed(window)
    yield window
    window.close()
