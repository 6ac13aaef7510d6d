"""The unlock bar: asks, inside the window, for the passphrase of an encrypted project.

An encrypted project opens locked (``docs/security.md``, "Encryption at rest"): its song
cannot be analysed, previewed or rendered until the project's key is given.  The bar
sits under the message bar, never as a modal dialog: a password field (its text is
never shown), *Unlock* and *Cancel*.  Enter unlocks, Esc cancels; a wrong passphrase
says so under the field and leaves it ready for another try.

The bar never keeps the passphrase: the field is emptied as soon as it is handed to
:attr:`UnlockBar.unlock_requested`, and nothing of it is logged or saved.
"""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QKeyEvent
from PySide6.QtWidgets import (
    QFrame,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

__all__ = ["UnlockBar"]

_STYLE = "QFrame#unlockBar { background:#2b2f3a; border:1px solid #5b6b8c; border-radius:4px; }"


class UnlockBar(QFrame):
    """A password field that unlocks the open encrypted project.

    Signals
    -------
    unlock_requested (str)
        The passphrase typed (Enter or *Unlock*); the field is already empty again.
    cancelled ()
        Esc or *Cancel*: the project stays open and locked.
    """

    unlock_requested = Signal(str)
    cancelled = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("unlockBar")
        self.setStyleSheet(_STYLE)
        self.prompt = QLabel("", self)
        self.prompt.setObjectName("unlockPrompt")
        self.prompt.setWordWrap(True)
        self.field = QLineEdit(self)
        self.field.setObjectName("passphrase")
        self.field.setEchoMode(QLineEdit.EchoMode.Password)
        self.field.setPlaceholderText("Passphrase")
        self.field.setMinimumWidth(220)
        self.field.returnPressed.connect(self.submit)
        self.unlock_button = QPushButton("Unlock", self)
        self.unlock_button.setObjectName("unlockButton")
        self.unlock_button.clicked.connect(self.submit)
        self.cancel_button = QPushButton("Cancel", self)
        self.cancel_button.setObjectName("unlockCancel")
        self.cancel_button.clicked.connect(self.cancel)
        self.problem = QLabel("", self)
        self.problem.setObjectName("unlockProblem")
        self.problem.setWordWrap(True)
        self.problem.setStyleSheet("color:#ffb3b8;")
        self.problem.setVisible(False)
        row = QHBoxLayout()
        row.addWidget(self.prompt, 1)
        row.addWidget(self.field)
        row.addWidget(self.unlock_button)
        row.addWidget(self.cancel_button)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(8, 6, 8, 6)
        layout.addLayout(row)
        layout.addWidget(self.problem)
        self.setVisible(False)

    def ask(self, project_name: str) -> None:
        """Show the bar for ``project_name``, with an empty field that has the focus."""
        self.prompt.setText(
            f"“{project_name}” is encrypted. Type its passphrase to analyse, preview and "
            "render its song."
        )
        self.field.clear()
        self.problem.setVisible(False)
        self.set_busy(False)
        self.setVisible(True)
        self.field.setFocus(Qt.FocusReason.OtherFocusReason)

    def set_busy(self, busy: bool) -> None:
        """Disable the field and buttons while the passphrase is being checked."""
        for widget in (self.field, self.unlock_button):
            widget.setEnabled(not busy)

    def show_problem(self, text: str) -> None:
        """Say why the last try failed; the field is empty and ready for another."""
        self.problem.setText(text)
        self.problem.setVisible(True)
        self.set_busy(False)
        self.field.clear()
        self.field.setFocus(Qt.FocusReason.OtherFocusReason)

    def submit(self) -> None:
        """Hand the typed passphrase over (an empty field only says what to do)."""
        if not self.field.isEnabled():
            return
        passphrase = self.field.text()
        self.field.clear()
        if not passphrase:
            self.show_problem("Type the project's passphrase, then press Enter.")
            return
        self.set_busy(True)
        self.unlock_requested.emit(passphrase)

    def cancel(self) -> None:
        """Hide the bar, leaving the project locked."""
        self.field.clear()
        self.setVisible(False)
        self.cancelled.emit()

    def keyPressEvent(self, event: QKeyEvent) -> None:  # noqa: N802 - Qt's name
        if event.key() == Qt.Key.Key_Escape:
            self.cancel()
            return
        super().keyPressEvent(event)
