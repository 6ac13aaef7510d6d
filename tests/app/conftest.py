"""Fixtures of the app tests: a virtual audio device for the tests that ask for one.

A test that takes the ``audio_device`` fixture gets a private PulseAudio daemon with a
null sink (``tests/app/audio_device.py``).  Qt connects to the sound server only once per
process and never forgets a sink, so when such tests are collected the daemon starts
right after collection (before any Qt Multimedia call), with no sink, and those tests
move to the end of the run; the sink is loaded when the first of them runs.
"""

from __future__ import annotations

import os
import time

import pytest

from tests.app.audio_device import INSTALL_HINT, SINK_NAME, PulseDaemon, missing_tools

_DAEMON = pytest.StashKey[PulseDaemon]()
_FAILED = pytest.StashKey[str]()
_SAVED_ENV = pytest.StashKey[dict[str, str | None]]()
_ENV_KEYS = ("PULSE_SERVER", "QT_AUDIO_BACKEND")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    wanting = [item for item in items if "audio_device" in getattr(item, "fixturenames", ())]
    if not wanting or missing_tools():
        return
    others = [item for item in items if "audio_device" not in getattr(item, "fixturenames", ())]
    items[:] = others + wanting
    daemon = PulseDaemon()
    try:
        daemon.start()
    except RuntimeError as err:  # the tests that need it fail with this; the others run
        config.stash[_FAILED] = str(err)
        return
    config.stash[_DAEMON] = daemon
    config.stash[_SAVED_ENV] = {key: os.environ.get(key) for key in _ENV_KEYS}
    # every Qt audio client of this process (there is one connection) uses the daemon,
    # through PulseAudio, Qt 6.11's default backend on Linux
    os.environ["PULSE_SERVER"] = daemon.server
    os.environ.pop("QT_AUDIO_BACKEND", None)


def pytest_unconfigure(config: pytest.Config) -> None:
    daemon = config.stash.get(_DAEMON, None)
    if daemon is None:
        return
    daemon.stop()
    for key, value in config.stash[_SAVED_ENV].items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


@pytest.fixture
def audio_device(request: pytest.FixtureRequest, qapp: object) -> PulseDaemon:
    """The private daemon with its null sink loaded and seen by Qt as an audio output."""
    from PySide6.QtMultimedia import QMediaDevices
    from PySide6.QtWidgets import QApplication

    missing = missing_tools()
    if missing:
        pytest.skip(f"{INSTALL_HINT}; missing: {', '.join(missing)}")
    daemon = request.config.stash.get(_DAEMON, None)
    if daemon is None:
        pytest.fail(request.config.stash.get(_FAILED, "the audio daemon did not start"))
    daemon.load_null_sink()
    deadline = time.monotonic() + 5.0
    while time.monotonic() < deadline:
        if any(bytes(d.id().data()) == SINK_NAME.encode() for d in QMediaDevices.audioOutputs()):
            return daemon
        QApplication.processEvents()
        time.sleep(0.01)
    raise AssertionError(
        f"Qt does not see the null sink {SINK_NAME!r}: outputs "
        f"{[d.description() for d in QMediaDevices.audioOutputs()]}, daemon sinks "
        f"{daemon.sinks()}; was Qt Multimedia used before the daemon started?"
    )
