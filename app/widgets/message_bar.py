"""A non-blocking message bar: errors and notices inside the window, never a modal storm.

Messages stack (newest on top, at most :attr:`MessageBar.max_messages`); the same text
again bumps a counter instead of adding a row.  Errors stay until dismissed; notices
hide themselves after a few seconds.
"""

from __future__ import annotations

from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtWidgets import QFrame, QHBoxLayout, QLabel, QToolButton, QVBoxLayout, QWidget

__all__ = ["MessageBar"]

_STYLES = {
    "error": "background:#5c1f24; color:#ffe9ea; border:1px solid #a8414b;",
    "warning": "background:#5a4712; color:#fff6d8; border:1px solid #a88b2c;",
    "info": "background:#1d3b57; color:#e6f2ff; border:1px solid #3f76a8;",
}


class _Message(QFrame):
    closed = Signal(object)

    def __init__(self, text: str, level: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.text = text
        self.level = level
        self.count = 1
        self.setObjectName(f"message-{level}")
        self.setStyleSheet(f"QFrame#{self.objectName()} {{{_STYLES[level]} border-radius:4px;}}")
        layout = QHBoxLayout(self)
        layout.setContentsMargins(8, 4, 4, 4)
        self.label = QLabel(text, self)
        self.label.setWordWrap(True)
        self.label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.label.setStyleSheet("background:transparent; border:none;")
        layout.addWidget(self.label, 1)
        self.close_button = QToolButton(self)
        self.close_button.setText("✕")
        self.close_button.setToolTip("Dismiss")
        self.close_button.setAutoRaise(True)
        self.close_button.clicked.connect(lambda: self.closed.emit(self))
        layout.addWidget(self.close_button)

    def bump(self) -> None:
        self.count += 1
        self.label.setText(f"{self.text}  (×{self.count})")


class MessageBar(QWidget):
    """Messages shown inside the window.

    Signals
    -------
    message_shown (str, str)
        ``(level, text)`` of each message shown.
    """

    message_shown = Signal(str, str)
    max_messages = 4
    notice_timeout_ms = 6000

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("messageBar")
        self._layout = QVBoxLayout(self)
        self._layout.setContentsMargins(6, 4, 6, 0)
        self._layout.setSpacing(3)
        self._messages: list[_Message] = []
        self.setVisible(False)

    def show_error(self, text: str) -> None:
        """An error: stays until dismissed."""
        self._show("error", text)

    def show_warning(self, text: str) -> None:
        """A warning: stays until dismissed."""
        self._show("warning", text)

    def show_info(self, text: str) -> None:
        """A notice: hides itself after :attr:`notice_timeout_ms`."""
        self._show("info", text)

    def messages(self) -> list[tuple[str, str]]:
        """``(level, text)`` of the messages on show, newest first."""
        return [(m.level, m.text) for m in self._messages]

    def clear(self) -> None:
        """Dismiss every message."""
        for message in list(self._messages):
            self._dismiss(message)

    def _show(self, level: str, text: str) -> None:
        for message in self._messages:
            if message.text == text and message.level == level:
                message.bump()
                self.message_shown.emit(level, text)
                return
        message = _Message(text, level, self)
        message.closed.connect(self._dismiss)
        self._messages.insert(0, message)
        self._layout.insertWidget(0, message)
        while len(self._messages) > self.max_messages:
            self._dismiss(self._messages[-1])
        if level == "info":
            QTimer.singleShot(self.notice_timeout_ms, self, lambda: self._dismiss(message))
        self.setVisible(True)
        self.message_shown.emit(level, text)

    def _dismiss(self, message: _Message) -> None:
        if message not in self._messages:
            return
        self._messages.remove(message)
        self._layout.removeWidget(message)
        message.deleteLater()
        if not self._messages:
            self.setVisible(False)
