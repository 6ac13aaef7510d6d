# ruff: noqa: F401, F811 - pytest fixtures imported from tests.app.shell_fixtures
"""An encrypted project in the window: the unlock bar asks for the passphrase, a wrong
one is refused and may be tried again, the right one analyses the song; the waveform and
the preview's sound come from the sealed song opened in memory, a draft render runs, and
no clear copy of the song is left on disk.  Cancelled, the project stays open and locked.
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PySide6.QtCore import QSettings, Qt
from PySide6.QtMultimedia import QMediaPlayer
from PySide6.QtWidgets import QLineEdit
from pytestqt.qtbot import QtBot

from app.engine_bridge import EngineBridge
from app.main_window import MainWindow
from app.widgets.render_queue import group_of
from app.widgets.timeline_view import TimelineView
from engine.api import AssetManager
from tests.app.shell_fixtures import (
    drop_files,
    engine_config,
    fast_window,
    gui_settings,
    song_file,
)
from tests.keyrings import keyring_module, memory_keyring, using_keyring
from tests.media import read_video_frames

pytest.importorskip("cryptography")

PASSPHRASE = "correct horse battery staple"
MAGIC = b"APXENC1\n"  # a sealed file's header (engine/security/crypto.py)


def encrypted_project(workspace: Path, song: Path, passphrase: str | None = PASSPHRASE) -> Path:
    """A project whose song is a sealed asset, as the window makes one from a dropped
    song, then encrypted (``None``: the key goes to the OS keyring)."""
    workspace.mkdir(parents=True, exist_ok=True)
    with AssetManager(workspace) as assets:
        project = assets.create_project("secret video")
        stored = assets.store_asset(
            {"source_path": song, "name": song.name, "category": "audio", "tags": ["song"]}
        )
        project.update(settings={"audio_path": str(stored), "song_name": song.name})
        project.save()
        assets.encrypt_project(passphrase)
        folder = project.path
    assert stored.read_bytes().startswith(MAGIC)  # sealed in place
    return Path(folder)


def clear_slices(song: Path) -> list[bytes]:
    """Four 4 KiB slices of the clear file's sample data, spread over the song."""
    data = song.read_bytes()
    slices = [data[at : at + 4096] for at in (1000, *(len(data) * k // 4 for k in (1, 2, 3)))]
    assert all(len(set(s)) > 64 for s in slices)  # music, not silence: distinctive
    return slices


def files_holding(folder: Path, slices: list[bytes]) -> list[str]:
    return [
        str(p)
        for p in folder.rglob("*")
        if p.is_file() and any(s in p.read_bytes() for s in slices)
    ]


@pytest.fixture
def private_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Anything written to "the temporary folder" lands under ``tmp_path``."""
    folder = tmp_path / "tmp"
    folder.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(folder))
    monkeypatch.setenv("TMPDIR", str(folder))
    return folder


def _field(window: MainWindow) -> QLineEdit:
    field = window.unlock_bar.findChild(QLineEdit, "passphrase")
    assert field is not None
    return field


def test_dropped_encrypted_project_asks_unlocks_analyses_previews_and_renders(
    fast_window: MainWindow,
    qtbot: QtBot,
    song_file: Path,
    tmp_path: Path,
    private_tmp: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    window = fast_window
    bridge = window.bridge
    folder = encrypted_project(tmp_path / "projects", song_file)
    failed: list[Any] = []
    bridge.job_failed.connect(failed.append)

    # dropping the project folder opens it locked: the unlock bar asks, nothing is analysed
    with qtbot.waitSignal(bridge.project_opened, timeout=30000) as opened:
        drop_files(window, [folder])
    assert opened.args[0].encrypted and opened.args[0].locked
    bar = window.unlock_bar
    field = _field(window)
    qtbot.waitUntil(bar.isVisible, timeout=5000)
    assert field.echoMode() == QLineEdit.EchoMode.Password
    assert "secret video" in bar.prompt.text()
    window.activateWindow()
    qtbot.waitUntil(field.hasFocus, timeout=5000)
    assert window.unlock_action.isEnabled()
    assert "locked" in window.project_page.summary.text()

    # a wrong passphrase: said so under the field, still locked, the field ready again
    qtbot.keyClicks(field, "a wrong guess")
    qtbot.keyClick(field, Qt.Key.Key_Return)
    qtbot.waitUntil(bar.problem.isVisible, timeout=30000)
    assert "Wrong passphrase" in bar.problem.text()
    assert bar.isVisible() and field.isEnabled() and field.text() == ""
    assert bridge.project is not None and bridge.project.locked
    assert bridge.analysis is None and failed == []

    # the right one: unlocked, the song analysed and shown on the timeline
    with qtbot.waitSignal(window.timeline_shown, timeout=60000):
        qtbot.keyClicks(field, PASSPHRASE)
        qtbot.keyClick(field, Qt.Key.Key_Return)
    assert not bar.isVisible() and not window.unlock_action.isEnabled()
    assert field.text() == ""  # the passphrase is not kept
    assert not bridge.project.locked
    analysis = bridge.analysis
    assert analysis.tempo == pytest.approx(150.0, rel=0.02)
    model = window.timeline.model
    assert [band.label for band in model.sections] == [s.label for s in analysis.sections]
    # the waveform was decoded from the sealed song in memory: loud where the song is
    wave = model.waveform
    assert wave is not None and float(np.abs(wave.maxima).max()) > 0.2
    assert len(wave.maxima) / wave.buckets_per_second == pytest.approx(analysis.duration, abs=0.1)

    # the preview plays the song from memory: a QBuffer holding the clear bytes
    preview = window.preview
    qtbot.waitUntil(lambda: preview.audio_device is not None, timeout=30000)
    device = preview.audio_device
    assert bytes(device.data()) == song_file.read_bytes()
    media = preview._media
    qtbot.waitUntil(
        lambda: media.mediaStatus() == QMediaPlayer.MediaStatus.LoadedMedia, timeout=20000
    )
    assert media.duration() / 1000 == pytest.approx(analysis.duration, abs=0.2)

    # a draft render from the window (Ctrl+R) reads the sealed song in memory too
    qtbot.waitUntil(window.isActiveWindow, timeout=5000)
    with qtbot.waitSignal(bridge.render_queued, timeout=20000) as queued:
        qtbot.keyClick(window, Qt.Key.Key_R, Qt.KeyboardModifier.ControlModifier)
    key, _ = group_of(queued.args[0])
    queue = window.render_queue
    with qtbot.waitSignal(preview.frame_shown, timeout=180000):
        qtbot.waitUntil(lambda: queue.rows[key].state == "succeeded", timeout=180000)
    frames, _fps = read_video_frames(queue.rows[key].output)
    assert len(frames) > 100
    assert not preview.current_image().isNull()
    qtbot.waitUntil(lambda: preview.audio_device is not None, timeout=30000)
    assert failed == []
    assert all(level != "error" for level, _ in window.message_bar.messages())

    # the passphrases tried are neither remembered nor logged
    window.save_layout()  # writes the window's QSettings file
    settings_file = Path(window.settings.fileName())
    assert settings_file.is_file()
    for secret in (PASSPHRASE, "a wrong guess"):
        assert secret not in settings_file.read_text(encoding="utf-8", errors="replace")
        assert secret not in caplog.text
    assert caplog.text  # the engine did log (at debug level): the check looked at it

    # no clear copy of the song anywhere in the project, the workspace or the temp folder
    assert files_holding(tmp_path, clear_slices(song_file)) == []
    assert files_holding(private_tmp, clear_slices(song_file)) == []


def test_cancelled_unlock_leaves_the_project_open_and_locked(
    fast_window: MainWindow, qtbot: QtBot, song_file: Path, tmp_path: Path
) -> None:
    window = fast_window
    bridge = window.bridge
    folder = encrypted_project(tmp_path / "projects", song_file)
    with qtbot.waitSignal(bridge.project_opened, timeout=30000):
        window.open_project(folder)
    bar = window.unlock_bar
    field = _field(window)
    qtbot.waitUntil(bar.isVisible, timeout=5000)
    window.activateWindow()
    qtbot.waitUntil(field.hasFocus, timeout=5000)

    with qtbot.waitSignal(window.message_bar.message_shown, timeout=5000) as shown:
        qtbot.keyClick(field, Qt.Key.Key_Escape)
    level, text = shown.args
    assert level == "warning" and "stays locked" in text and "Unlock project" in text
    assert not bar.isVisible()
    assert window.pages.currentWidget() is window.project_page
    assert bridge.project is not None and bridge.project.locked and bridge.analysis is None

    # a render of the locked project fails with the unlock message, not a crash
    window.render_draft_action.trigger()
    qtbot.waitUntil(
        lambda: any(lvl == "error" and "locked" in t for lvl, t in window.message_bar.messages()),
        timeout=60000,
    )
    assert window.isVisible() and bridge.project.locked

    # File ▸ Unlock project… asks again; the right passphrase unlocks it there
    window.unlock_action.trigger()
    assert bar.isVisible()
    with qtbot.waitSignal(window.timeline_shown, timeout=60000):
        qtbot.keyClicks(field, PASSPHRASE)
        qtbot.mouseClick(bar.unlock_button, Qt.MouseButton.LeftButton)
    assert not bridge.project.locked and not bar.isVisible()
    assert window.timeline.model.waveform is not None

    # a TimelineView given the bridge's opener draws the sealed song's waveform too (a
    # sealed .wav is no WAV on disk: it is opened with the key and decoded in memory)
    view = TimelineView()
    qtbot.addWidget(view)
    song = bridge.project.audio_path
    assert song is not None and song.suffix == ".wav"
    with qtbot.waitSignal(view.model.waveform_changed, timeout=30000):
        view.load_waveform(song, bridge, opener=bridge.audio_source)
    wave = view.model.waveform
    assert wave is not None and float(np.abs(wave.maxima).max()) > 0.2


def test_a_keyring_project_unlocks_by_itself_or_says_why_it_cannot(
    fast_window: MainWindow, qtbot: QtBot, song_file: Path, tmp_path: Path
) -> None:
    keyring = keyring_module()
    with_key = memory_keyring()
    with using_keyring(with_key):
        folder = encrypted_project(tmp_path / "projects", song_file, passphrase=None)
        # a keyring without the project's key: locked, said why, no passphrase asked
        keyring.set_keyring(memory_keyring())
        with qtbot.waitSignal(fast_window.message_bar.message_shown, timeout=30000) as shown:
            fast_window.open_project(folder)
        level, text = shown.args
        assert level == "error" and "OS keyring" in text and "stays locked" in text
        info = fast_window.bridge.project
        assert info is not None and info.locked and not info.needs_passphrase
        assert not fast_window.unlock_bar.isVisible()
        with qtbot.waitSignal(fast_window.bridge.project_closed, timeout=20000):
            fast_window.close_action.trigger()
        keyring.set_keyring(with_key)
        with qtbot.waitSignal(fast_window.timeline_shown, timeout=60000):
            fast_window.open_project(folder)
        info = fast_window.bridge.project
        assert info is not None and info.encrypted and not info.locked
        assert not info.needs_passphrase
        assert not fast_window.unlock_bar.isVisible()
        assert not fast_window.unlock_action.isEnabled()
