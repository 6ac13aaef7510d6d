from __future__ import annotations

from pytestqt.qtbot import QtBot

from app.main_window import MainWindow


def test_main_window_opens_with_title(qtbot: QtBot) -> None:
    window = MainWindow()
    qtbot.addWidget(window)
    window.show()
    qtbot.waitExposed(window)
    assert window.windowTitle().startswith("APEX Director")
    assert window.statusBar().currentMessage() == "Ready"
