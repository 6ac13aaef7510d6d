"""The message bar: errors stay until dismissed, notices go, repeats are counted."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QWidget
from pytestqt.qtbot import QtBot

from app.widgets.message_bar import MessageBar


def test_messages_stack_repeat_and_are_dismissed_with_a_click(qtbot: QtBot) -> None:
    window = QWidget()
    bar = MessageBar(window)
    qtbot.addWidget(window)
    window.show()
    assert not bar.isVisible()  # nothing to say yet
    bar.show_error("the project is locked")
    bar.show_warning("notes.docx: not a song")
    bar.show_error("the project is locked")
    assert bar.messages() == [
        ("warning", "notes.docx: not a song"),
        ("error", "the project is locked"),
    ]
    error = bar._messages[1]
    assert error.label.text().endswith("(×2)")
    for _ in range(10):
        bar.show_error(f"error {_}")
    assert len(bar.messages()) == MessageBar.max_messages  # no storm
    newest = bar._messages[0]
    qtbot.mouseClick(newest.close_button, Qt.MouseButton.LeftButton)
    assert ("error", "error 9") not in bar.messages()
    bar.clear()
    assert bar.messages() == [] and not bar.isVisible()


def test_notices_hide_themselves(qtbot: QtBot) -> None:
    bar = MessageBar()
    bar.notice_timeout_ms = 100
    qtbot.addWidget(bar)
    bar.show()
    bar.show_info("Render queued")
    bar.show_error("kept")
    qtbot.waitUntil(lambda: bar.messages() == [("error", "kept")], timeout=3000)
