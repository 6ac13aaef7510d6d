"""The main window.  For now it shows the product's name and what is coming;
the timeline, style-bible editor and render queue arrive with their issue."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QLabel, QMainWindow, QVBoxLayout, QWidget

from engine.api import __version__


class MainWindow(QMainWindow):
    def __init__(self) -> None:
        super().__init__()
        self.setWindowTitle(f"APEX Director {__version__}")
        self.resize(1280, 800)
        central = QWidget(self)
        layout = QVBoxLayout(central)
        title = QLabel("APEX Director", central)
        title.setObjectName("title")
        title.setAlignment(Qt.AlignmentFlag.AlignCenter)
        title.setStyleSheet("font-size: 28px; font-weight: 600;")
        hint = QLabel(
            "Render from the command line for now:\napex-director render song.mp3 -o video.mp4",
            central,
        )
        hint.setObjectName("hint")
        hint.setAlignment(Qt.AlignmentFlag.AlignCenter)
        layout.addStretch(1)
        layout.addWidget(title)
        layout.addWidget(hint)
        layout.addStretch(1)
        self.setCentralWidget(central)
        self.statusBar().showMessage("Ready")
