"""The main window: menus and shortcuts, dockable panels whose layout is remembered,
open/save/recent projects, a status bar (device, memory, queue), a non-blocking message
bar, drag and drop, and first-run guidance.

All engine work goes through the one :class:`~app.engine_bridge.EngineBridge`; the
window only paints and handles input.
"""

from __future__ import annotations

import importlib
import logging
import os
from pathlib import Path
from typing import Any

from PySide6.QtCore import QSettings, QStandardPaths, Qt, QTimer, Signal
from PySide6.QtGui import QAction, QCloseEvent, QKeySequence
from PySide6.QtWidgets import (
    QDockWidget,
    QFileDialog,
    QFrame,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QMainWindow,
    QMenu,
    QPushButton,
    QScrollArea,
    QSplitter,
    QStackedWidget,
    QVBoxLayout,
    QWidget,
)

from app.drag_drop import DropHandler
from app.engine_bridge import AUDIO_EXTENSIONS, EngineBridge, ProjectInfo, one_line
from app.viewmodels.timeline_model import analysis_document, waveform_job
from app.widgets.message_bar import MessageBar
from app.widgets.preview_player import PreviewPlayer
from app.widgets.render_queue import RenderQueueWidget
from app.widgets.timeline_view import TimelineView
from app.widgets.unlock_bar import UnlockBar
from engine import api

__all__ = ["MainWindow", "default_config_path", "default_workspace"]

log = logging.getLogger(__name__)

MAX_RECENT = 8
EDIT_FILE = "edit.timeline.json"  # the user's timeline edits, in the project folder
EDIT_SAVE_DELAY_MS = 800
STATE_VERSION = 1
STATS_INTERVAL_MS = 2000


def default_config_path() -> Path:
    """The engine's configuration file (the CLI reads the same one)."""
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "apex-director" / "config.toml"


def default_workspace() -> Path:
    """Where new projects go unless the settings say otherwise."""
    documents = QStandardPaths.writableLocation(QStandardPaths.StandardLocation.DocumentsLocation)
    return Path(documents or Path.home()) / "APEX Director"


def _load_config(path: Path) -> tuple[dict[str, Any], str]:
    """The engine configuration, and a problem to show when the file is broken."""
    manager = api.ConfigManager(path)
    try:
        return manager.load_config(), ""
    except api.ConfigurationError as err:
        return manager.config, f"{one_line(err)} (using the defaults until it is fixed)"


# Panels other helpers build: (module, class, dock title, object name).  Each is docked
# when its module is present; each takes the bridge as its first argument.
_PANELS = (
    ("app.widgets.style_bible_editor", "StyleBibleEditor", "Style bible", "styleBibleDock"),
    ("app.widgets.character_library", "CharacterLibrary", "Characters", "characterDock"),
    ("app.widgets.grading_panel", "GradingPanel", "Grading", "gradingDock"),
)


class WelcomePage(QWidget):
    """What a fresh install shows: what to do next, the models and the device found."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("welcome")
        title = QLabel("APEX Director", self)
        title.setObjectName("title")
        title.setAlignment(Qt.AlignmentFlag.AlignCenter)
        title.setStyleSheet("font-size: 28px; font-weight: 600;")
        self.next_step = QLabel(
            "Drop a song (WAV, MP3, FLAC…) anywhere on this window to start a project:\n"
            "it is analysed at once and its sections appear on the timeline.",
            self,
        )
        self.next_step.setObjectName("nextStep")
        self.next_step.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.new_button = QPushButton("New project from a song…", self)
        self.new_button.setObjectName("newProject")
        self.open_button = QPushButton("Open a project…", self)
        self.open_button.setObjectName("openProject")
        buttons = QHBoxLayout()
        buttons.addStretch(1)
        buttons.addWidget(self.new_button)
        buttons.addWidget(self.open_button)
        buttons.addStretch(1)
        self.models = QLabel("Looking for models…", self)
        self.models.setObjectName("modelsStatus")
        self.device = QLabel("Checking the graphics card…", self)
        self.device.setObjectName("deviceStatus")
        self.config_problem = QLabel("", self)
        self.config_problem.setObjectName("configProblem")
        for label in (self.models, self.device, self.config_problem):
            label.setWordWrap(True)
            label.setAlignment(Qt.AlignmentFlag.AlignCenter)
            label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.config_problem.setVisible(False)
        self.recent = QListWidget(self)
        self.recent.setObjectName("recentProjects")
        self.recent.setMaximumHeight(140)
        self.recent_title = QLabel("Recent projects", self)
        layout = QVBoxLayout(self)
        layout.addStretch(1)
        layout.addWidget(title)
        layout.addWidget(self.next_step)
        layout.addLayout(buttons)
        layout.addSpacing(16)
        layout.addWidget(self.models)
        layout.addWidget(self.device)
        layout.addWidget(self.config_problem)
        layout.addSpacing(16)
        layout.addWidget(self.recent_title, 0, Qt.AlignmentFlag.AlignHCenter)
        layout.addWidget(self.recent, 0, Qt.AlignmentFlag.AlignHCenter)
        layout.addStretch(2)

    def set_recent(self, paths: list[str]) -> None:
        self.recent.clear()
        for path in paths:
            item = QListWidgetItem(Path(path).name)
            item.setToolTip(path)
            item.setData(Qt.ItemDataRole.UserRole, path)
            self.recent.addItem(item)
        self.recent.setVisible(bool(paths))
        self.recent_title.setVisible(bool(paths))


class ProjectPage(QWidget):
    """The open project: a summary of its song and the timeline of its edit."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("projectPage")
        self.header = QLabel("", self)
        self.header.setObjectName("projectHeader")
        self.header.setStyleSheet("font-size: 16px; font-weight: 600;")
        self.summary = QLabel("", self)
        self.summary.setObjectName("analysisSummary")
        self.summary.setWordWrap(True)
        self.sections = QLabel("", self)
        self.sections.setObjectName("sectionList")
        self.sections.setWordWrap(True)
        self.timeline = TimelineView(parent=self)
        self.timeline.setObjectName("timeline")
        # an editor's layout: the picture above, the timeline below it
        self.splitter = QSplitter(Qt.Orientation.Vertical, self)
        self.splitter.setChildrenCollapsible(False)
        self.splitter.addWidget(self.timeline)
        layout = QVBoxLayout(self)
        layout.addWidget(self.header)
        layout.addWidget(self.summary)
        layout.addWidget(self.sections)
        layout.addWidget(self.splitter, 1)

    def set_preview(self, preview: QWidget) -> None:
        """Put the preview player above the timeline."""
        self.splitter.insertWidget(0, preview)
        self.splitter.setStretchFactor(0, 1)
        self.splitter.setStretchFactor(1, 0)

    def show_project(self, info: ProjectInfo) -> None:
        self.header.setText(info.name)
        song = str(info.settings.get("song_name") or "") or (
            info.audio_path.name if info.audio_path else "no song yet"
        )
        state = "locked (encrypted)" if info.locked else "analysing…"
        self.summary.setText(f"{info.path.name}/  ·  {song}  ·  {state}")
        self.summary.setToolTip(str(info.path))
        self.sections.setText("")

    def show_analysis(self, analysis: Any) -> None:
        text = self.summary.text().replace("  ·  analysing…", "")
        self.summary.setText(
            f"{text}  ·  {analysis.duration:.1f} s, {analysis.tempo:.0f} BPM, "
            f"{len(analysis.sections)} sections"
        )
        self.sections.setText(
            "   ".join(f"{s.label} {s.start:.1f}–{s.end:.1f} s" for s in analysis.sections)
        )


class MainWindow(QMainWindow):
    """The application window.

    Parameters
    ----------
    bridge : EngineBridge, optional
        The engine bridge (made here, with the engine configuration, when not given).
    settings : QSettings, optional
        Where the layout, recent projects and projects folder are remembered (tests
        pass one under ``tmp_path``).
    config_path : Path, optional
        The engine's configuration file (default: the CLI's).
    probe_device : bool
        Ask the engine which device it would use (loads torch in a worker thread).

    Signals
    -------
    guidance_changed ()
        The first-run guidance was updated (models or device found).
    timeline_shown ()
        The timeline shows the project's edit (or, before any render, the analysed song).
    """

    guidance_changed = Signal()
    timeline_shown = Signal()

    def __init__(
        self,
        bridge: EngineBridge | None = None,
        *,
        settings: QSettings | None = None,
        config_path: Path | None = None,
        probe_device: bool = True,
    ) -> None:
        super().__init__()
        self.settings = settings or QSettings()
        self.config_path = config_path or default_config_path()
        config, config_problem = _load_config(self.config_path)
        if bridge is None:
            workspace = self.settings.value("workspace", "") or str(default_workspace())
            bridge = EngineBridge(workspace, config=config, parent=self)
        self.bridge = bridge.start()
        self.setWindowTitle(f"APEX Director {api.__version__}")
        self.setObjectName("mainWindow")
        self.resize(1280, 800)
        self.setDockNestingEnabled(True)

        self.message_bar = MessageBar(self)
        self.unlock_bar = UnlockBar(self)  # asks for an encrypted project's passphrase
        self.welcome = WelcomePage(self)
        self.project_page = ProjectPage(self)
        self.pages = QStackedWidget(self)
        self.pages.addWidget(self.welcome)
        self.pages.addWidget(self.project_page)
        central = QWidget(self)
        central_layout = QVBoxLayout(central)
        central_layout.setContentsMargins(0, 0, 0, 0)
        central_layout.addWidget(self.message_bar)
        central_layout.addWidget(self.unlock_bar)
        central_layout.addWidget(self.pages, 1)
        self.setCentralWidget(central)

        self.timeline = self.project_page.timeline
        self.render_queue = RenderQueueWidget(self.bridge, self)
        self.preview = PreviewPlayer(self.bridge, self)
        self.preview.setObjectName("preview")
        self.preview.connect_timeline(self.timeline)
        # an encrypted project's sealed song plays from memory (docs/security.md)
        self.preview.audio_opener = self.bridge.audio_source
        self.project_page.set_preview(self.preview)
        self.docks: dict[str, QDockWidget] = {}
        self.panels: dict[str, QWidget] = {}
        self._add_dock("Render queue", "renderQueueDock", self.render_queue, bottom=True)
        self._add_optional_panels()
        grading = self.panels.get("gradingDock")
        if grading is not None and hasattr(grading, "show_clip"):
            self.timeline.selection_changed.connect(self._clip_selected)
        self.resizeDocks([self.docks["renderQueueDock"]], [170], Qt.Orientation.Vertical)

        self.drop_handler = DropHandler(self)
        self.drop_handler.audio_dropped.connect(self.bridge.new_project_from_audio)
        self.drop_handler.project_dropped.connect(self.bridge.open_project)
        self.drop_handler.lut_dropped.connect(self._lut_dropped)
        self.drop_handler.images_dropped.connect(self._images_dropped)
        self.drop_handler.rejected.connect(self.message_bar.show_warning)

        self._build_menus()
        self._build_status_bar()
        self.bridge.error_occurred.connect(self.message_bar.show_error)
        self.bridge.job_failed.connect(self._job_failed)
        self.bridge.project_opened.connect(self._project_opened)
        self.bridge.project_closed.connect(self._project_closed)
        self.bridge.analysis_ready.connect(self._analysis_ready)
        self.bridge.project_unlocked.connect(self._project_unlocked)
        self.unlock_bar.unlock_requested.connect(self._unlock)
        self.unlock_bar.cancelled.connect(self._unlock_cancelled)
        self._edit_timer = QTimer(self)
        self._edit_timer.setSingleShot(True)
        self._edit_timer.setInterval(EDIT_SAVE_DELAY_MS)
        self._edit_timer.timeout.connect(self._save_edit)
        self.timeline.model.undo_stack.indexChanged.connect(self._edit_changed)
        # renders show the user's edit (docs/decisions/0013-gui-shell-projects-and-edits.md)
        self.bridge.edit_provider = self._current_edit
        self.bridge.job_finished.connect(self._job_finished)
        self.bridge.render_queued.connect(
            lambda _job: self.message_bar.show_info("Render queued: see the render queue.")
        )
        self.welcome.new_button.clicked.connect(self.new_project_dialog)
        self.welcome.open_button.clicked.connect(self.open_project_dialog)
        self.welcome.recent.itemActivated.connect(
            lambda item: self.open_project(item.data(Qt.ItemDataRole.UserRole))
        )
        if config_problem:
            self.welcome.config_problem.setText(config_problem)
            self.welcome.config_problem.setVisible(True)
            self.message_bar.show_warning(config_problem)

        self._restore_layout()
        self._refresh_recent()
        self._stats_timer = QTimer(self)
        self._stats_timer.setInterval(STATS_INTERVAL_MS)
        self._stats_timer.timeout.connect(self._poll_stats)
        self._stats_timer.start()
        self._check_models(config)
        if probe_device:
            self.bridge.probe_device(self._device_found)
        else:
            self.welcome.device.setText("Device: not checked yet.")
        self.statusBar().showMessage("Ready")

    # -- docks ------------------------------------------------------------------------

    def _add_dock(self, title: str, name: str, widget: QWidget, *, bottom: bool) -> QDockWidget:
        dock = QDockWidget(title, self)
        dock.setObjectName(name)  # saveState() needs it to remember the layout
        if bottom:
            dock.setWidget(widget)
        else:
            # side panels scroll rather than force a window taller than a laptop screen
            scroller = QScrollArea(dock)
            scroller.setWidgetResizable(True)
            scroller.setFrameShape(QFrame.Shape.NoFrame)
            scroller.setWidget(widget)
            dock.setWidget(scroller)
        area = (
            Qt.DockWidgetArea.BottomDockWidgetArea
            if bottom
            else Qt.DockWidgetArea.RightDockWidgetArea
        )
        self.addDockWidget(area, dock)
        self.docks[name] = dock
        return dock

    def _add_optional_panels(self) -> None:
        tabbed: QDockWidget | None = None
        for module_name, class_name, title, name in _PANELS:
            try:
                module = importlib.import_module(module_name)
            except ModuleNotFoundError as err:
                if err.name != module_name:
                    raise
                continue
            panel = getattr(module, class_name)(self.bridge, self)
            self.panels[name] = panel
            dock = self._add_dock(title, name, panel, bottom=False)
            if tabbed is not None:
                self.tabifyDockWidget(tabbed, dock)
            tabbed = tabbed or dock

    # -- menus and status bar ---------------------------------------------------------

    def _action(
        self, menu: QMenu, text: str, slot: Any, shortcut: QKeySequence | str | None = None
    ) -> QAction:
        action = QAction(text, self)
        if shortcut is not None:
            action.setShortcut(QKeySequence(shortcut))
        action.triggered.connect(slot)
        menu.addAction(action)
        return action

    def _build_menus(self) -> None:
        bar = self.menuBar()
        file_menu = bar.addMenu("&File")
        self.new_action = self._action(
            file_menu,
            "&New project from a song…",
            self.new_project_dialog,
            QKeySequence.StandardKey.New,
        )
        self.open_action = self._action(
            file_menu, "&Open project…", self.open_project_dialog, QKeySequence.StandardKey.Open
        )
        self.recent_menu = file_menu.addMenu("Open &recent")
        self.save_action = self._action(
            file_menu, "&Save", self.save_project, QKeySequence.StandardKey.Save
        )
        self.close_action = self._action(
            file_menu, "&Close project", self.close_project, QKeySequence.StandardKey.Close
        )
        self.unlock_action = self._action(file_menu, "&Unlock project…", self.ask_passphrase)
        self.unlock_action.setEnabled(False)
        file_menu.addSeparator()
        self.settings_action = self._action(
            file_menu, "Se&ttings…", self.open_settings, QKeySequence.StandardKey.Preferences
        )
        file_menu.addSeparator()
        self._action(file_menu, "&Quit", self.close, QKeySequence.StandardKey.Quit)

        render_menu = bar.addMenu("&Render")
        self.render_draft_action = self._action(
            render_menu, "Render &draft", lambda: self.bridge.render(preset="draft"), "Ctrl+R"
        )
        self.render_web_action = self._action(
            render_menu,
            "Render for the &web",
            lambda: self.bridge.render(preset="web"),
            "Ctrl+Shift+R",
        )
        self._action(render_menu, "&Analyse the song again", self.bridge.analyse)

        view_menu = bar.addMenu("&View")
        for dock in self.docks.values():
            view_menu.addAction(dock.toggleViewAction())
        view_menu.addSeparator()
        self._action(view_menu, "Reset &layout", self.reset_layout)

        help_menu = bar.addMenu("&Help")
        self._action(help_menu, "&Getting started", self._show_getting_started, "F1")
        self._set_project_actions(False)

    def _set_project_actions(self, enabled: bool) -> None:
        for action in (
            self.save_action,
            self.close_action,
            self.render_draft_action,
            self.render_web_action,
        ):
            action.setEnabled(enabled)

    def _build_status_bar(self) -> None:
        self.device_label = QLabel("device: —", self)
        self.device_label.setObjectName("deviceLabel")
        self.memory_label = QLabel("memory: —", self)
        self.memory_label.setObjectName("memoryLabel")
        self.queue_label = QLabel("queue: no project", self)
        self.queue_label.setObjectName("queueLabel")
        for label in (self.device_label, self.memory_label, self.queue_label):
            label.setFrameShape(QFrame.Shape.NoFrame)
            self.statusBar().addPermanentWidget(label)

    def _poll_stats(self) -> None:
        if self.bridge.project is None:
            return
        self.bridge.system_stats(self._show_stats)

    def _show_stats(self, stats: dict[str, Any]) -> None:
        if not stats:
            return
        queue = stats.get("queue", {})
        self.queue_label.setText(
            f"queue: {queue.get('running', 0)} running, {queue.get('queued', 0)} waiting, "
            f"{queue.get('failed', 0)} failed"
        )
        memory = stats.get("performance", {}).get("memory", {})
        if memory.get("current_mb"):
            # the app and its stage processes (where renders and analyses run)
            self.memory_label.setText(f"memory: {memory['current_mb']:.0f} MB")
            self.memory_label.setToolTip(
                f"this window {memory.get('process_mb', 0):.0f} MB + render processes "
                f"{memory.get('stage_processes_mb', 0):.0f} MB"
            )

    def _device_found(self, device: dict[str, Any]) -> None:
        kind = str(device.get("device", "unavailable"))
        name = str(device.get("device_name", ""))
        self.device_label.setText(f"device: {kind.upper() if kind != 'unavailable' else kind}")
        self.device_label.setToolTip(name)
        if kind.startswith("cuda") or kind == "mps":
            text = f"Graphics card: {name}. Stable Diffusion renders run on it."
        else:
            text = (
                "No GPU found: everything runs on the CPU. Draft renders (the procedural "
                "renderer) are quick; Stable Diffusion stills will be slow."
            )
        self.welcome.device.setText(text)
        self.guidance_changed.emit()

    def _check_models(self, config: dict[str, Any]) -> None:
        folder = Path(str(config.get("paths", {}).get("models_dir", "models"))).expanduser()
        folder = folder.absolute()

        def found(models: list[Any]) -> None:
            checkpoints = [
                m for m in models if m.folder_kind == "checkpoint" and m.info is not None
            ]
            if checkpoints:
                self.welcome.models.setText(
                    f"{len(checkpoints)} Stable Diffusion checkpoint(s) in {folder}."
                )
            else:
                self._no_models(folder, "has no Stable Diffusion checkpoint")
            self.guidance_changed.emit()

        def missing(err: BaseException) -> None:
            self._no_models(
                folder, "is not there" if isinstance(err, api.ModelError) else one_line(err)
            )
            self.guidance_changed.emit()

        # only the checkpoint folders: identifying upscalers loads torch (seconds)
        self.bridge.call(lambda: api.scan_models(folder, kinds=("checkpoint",)), found, missing)

    def _no_models(self, folder: Path, why: str) -> None:
        self.welcome.models.setText(
            f"No models yet: {folder} {why}. Renders use the procedural DRAFT renderer "
            "until you add one: put a .safetensors checkpoint in its checkpoints/ folder, "
            "run 'apex-director models pull', or point File ▸ Settings at a ComfyUI or "
            "A1111 models folder."
        )

    # -- projects ---------------------------------------------------------------------

    def new_project_dialog(self) -> None:
        patterns = " ".join(f"*{ext}" for ext in sorted(AUDIO_EXTENSIONS))
        path, _ = QFileDialog.getOpenFileName(
            self, "New project from a song", "", f"Songs ({patterns})"
        )
        if path:
            self.bridge.new_project_from_audio(Path(path))

    def open_project_dialog(self) -> None:
        path = QFileDialog.getExistingDirectory(self, "Open a project folder")
        if path:
            self.open_project(path)

    def open_project(self, path: str | Path) -> None:
        self.bridge.open_project(Path(path))

    def close_project(self) -> None:
        """Save a pending timeline edit, then close the project."""
        if self._edit_timer.isActive():
            self._save_edit()
        self.bridge.close_project()

    def save_project(self) -> None:
        """Save the project file and the timeline edit."""
        if self.timeline.model.undo_stack.count():
            self._save_edit()
        self.bridge.save_project(
            lambda revision: self.statusBar().showMessage(f"Saved (revision {revision})", 4000)
        )

    def _project_opened(self, info: ProjectInfo) -> None:
        self.setWindowTitle(f"{info.name} — APEX Director {api.__version__}")
        self.project_page.show_project(info)
        self.pages.setCurrentWidget(self.project_page)
        self._set_project_actions(True)
        self._remember_recent(info.path)
        self.queue_label.setText("queue: idle")
        self.statusBar().showMessage(f"Opened {info.path}", 4000)
        self.unlock_action.setEnabled(info.locked and info.needs_passphrase)
        self.unlock_bar.setVisible(False)
        if info.locked and info.needs_passphrase:
            self.ask_passphrase()

    # -- encrypted projects (docs/security.md, "Encryption at rest") -------------------

    def ask_passphrase(self) -> None:
        """Show the unlock bar for the open, locked, encrypted project."""
        info = self.bridge.project
        if info is not None and info.locked:
            self.unlock_bar.ask(info.name)

    def _unlock(self, passphrase: str) -> None:
        self.bridge.unlock_project(passphrase, on_error=self._unlock_failed)

    def _unlock_failed(self, err: BaseException) -> None:
        if isinstance(err, api.DecryptionError) and not isinstance(err, api.ProjectLockedError):
            self.unlock_bar.show_problem(
                "Wrong passphrase: the project stays locked and nothing was read. Try again."
            )
        else:
            self.unlock_bar.show_problem(one_line(err))

    def _project_unlocked(self, info: ProjectInfo) -> None:
        self.unlock_bar.setVisible(False)
        self.unlock_action.setEnabled(False)
        self.project_page.show_project(info)
        self.message_bar.show_info(f"{info.name} is unlocked for this session.")

    def _unlock_cancelled(self) -> None:
        info = self.bridge.project
        if info is None:
            return
        self.message_bar.show_warning(
            f"{info.name} stays locked: its song cannot be analysed, previewed or rendered "
            "until you give its passphrase (File ▸ Unlock project…)."
        )

    def _project_closed(self) -> None:
        self.setWindowTitle(f"APEX Director {api.__version__}")
        self.unlock_bar.setVisible(False)
        self.unlock_action.setEnabled(False)
        self.pages.setCurrentWidget(self.welcome)
        self._set_project_actions(False)
        self.queue_label.setText("queue: no project")

    def _analysis_ready(self, analysis: Any) -> None:
        """Show the project's edit: the user's own (saved), else the newest render's,
        else the analysed song alone (sections, beats; shots come with the first render)."""
        self.project_page.show_analysis(analysis)
        info = self.bridge.project
        if info is None:
            return
        audio = info.audio_path

        def document() -> Any:
            edit = info.path / EDIT_FILE
            if edit.is_file():
                try:
                    return api.load_timeline(edit)
                except api.APEXDirectorError as err:
                    log.warning("the saved edit %s is unreadable: %s", edit, one_line(err))
            rendered = sorted(
                (info.path / "renders").glob("*.timeline.json"), key=lambda p: p.stat().st_mtime
            )
            for path in reversed(rendered):
                try:
                    return api.load_timeline(path)
                except api.APEXDirectorError as err:
                    log.warning("the render's edit %s is unreadable: %s", path, one_line(err))
            return analysis_document(analysis, audio_path=audio)

        self.bridge.call(document, self._show_timeline)

    def _edit_changed(self, _index: int) -> None:
        if self.timeline.model.undo_stack.count() and self.bridge.project is not None:
            self._edit_timer.start()

    def _current_edit(self) -> Any:
        """The edit a render should show: the timeline's document once the user has edited
        it (or a saved edit was opened), else None (the render plans its own edit)."""
        info, document = self.bridge.project, self.timeline.model.document
        if info is None or document is None:
            return None
        if self.timeline.model.undo_stack.count() or (info.path / EDIT_FILE).exists():
            return document
        return None

    def _save_edit(self) -> Any:
        """Write the timeline's document into the project (atomically, by the engine)."""
        self._edit_timer.stop()
        info, document = self.bridge.project, self.timeline.model.document
        if info is None or document is None:
            return None
        path = info.path / EDIT_FILE
        return self.bridge.call(
            lambda: api.save_timeline(path, document),
            lambda _path: self.statusBar().showMessage("Edit saved", 2000),
        )

    def _show_timeline(self, document: Any) -> None:
        audio = self.bridge.project.audio_path if self.bridge.project else None

        def waveform() -> Any:
            if audio is None:
                return None  # the timeline draws without one
            # an encrypted project's sealed song is decoded from memory, with its key
            return waveform_job(self.bridge.audio_source(audio))()

        def show(wave: Any) -> None:
            self.timeline.set_document(document, waveform=wave)
            self.timeline_shown.emit()

        def without(err: BaseException) -> None:
            log.info("no waveform for %s: %s", audio, one_line(err))
            show(None)

        self.bridge.call(waveform, show, without)

    def _clip_selected(self, clip_id: str) -> None:
        """The grading panel previews the shot selected on the timeline."""
        clip = self.timeline.model.clip(clip_id) if clip_id else None
        if clip is None or self.bridge.project is None:
            return
        self.panels["gradingDock"].show_clip(clip, base_dir=self.bridge.project.path)

    def _job_finished(self, event: api.JobFinished) -> None:
        """A finished render's edit (with its stills) replaces the one shown, unless edited."""
        report = event.result.get("report")
        output = report.get("output", {}) if isinstance(report, dict) else {}
        timeline = output.get("timeline") if isinstance(output, dict) else None
        if not timeline or not event.job_id.endswith("-render"):
            return
        if self.timeline.model.undo_stack.count() or (
            self.bridge.project is not None and (self.bridge.project.path / EDIT_FILE).exists()
        ):
            # the render showed the user's edit: the timeline (and its undo history) stays
            self.message_bar.show_info("Render finished: it shows your edited timeline.")
            return
        self.bridge.call(lambda: api.load_timeline(Path(str(timeline))), self._show_timeline)

    def _job_failed(self, event: api.JobFailed) -> None:
        if event.error_type == "DependencyFailed":
            return  # the job it depended on already said why
        text = event.error
        info = self.bridge.project
        if info is not None and info.audio_path is not None and info.settings.get("audio_source"):
            # name the song as the user knows it, not by its copy inside the project
            text = text.replace(str(info.audio_path), str(info.settings["audio_source"]))
        prefix = f"{event.error_type}: "
        self.message_bar.show_error(one_line(Exception(text.removeprefix(prefix))))

    def _lut_dropped(self, path: Path) -> None:
        panel = self.panels.get("gradingDock")
        loader = getattr(panel, "load_lut", None)
        if loader is None:
            self.message_bar.show_warning(f"{path.name}: the grading panel is not available.")
            return
        self.docks["gradingDock"].raise_()
        loader(path)

    def _clip_under(self, global_position: Any) -> Any:
        """The timeline clip under a point of the screen, if any."""
        if global_position is None or self.timeline.model.document is None:
            return None
        port = self.timeline.viewport()
        local = port.mapFromGlobal(global_position)
        if not port.isVisible() or not port.rect().contains(local):
            return None
        for clip in self.timeline.model.clips:
            if self.timeline.clip_view_rect(clip.clip_id).contains(local.toPointF()):
                return clip
        return None

    def _images_dropped(self, paths: list[Path]) -> None:
        clip = self._clip_under(self.drop_handler.last_global_position)
        if clip is not None:
            # an image dropped on a shot becomes its still (undoable like any edit)
            self.timeline.model.set_still(clip.clip_id, paths[0])
            self.timeline.model.select(clip.clip_id)
            self.statusBar().showMessage(
                f"{paths[0].name} is now the still of {clip.clip_id}", 4000
            )
            return
        panel = self.panels.get("characterDock")
        adder = getattr(panel, "add_reference_images", None)
        if adder is None:
            self.message_bar.show_warning(
                f"{len(paths)} image(s): the character library is not available."
            )
            return
        self.docks["characterDock"].raise_()
        adder(paths)

    def _remember_recent(self, path: Path) -> None:
        recent = [p for p in self._recent() if p != str(path)]
        recent.insert(0, str(path))
        self.settings.setValue("recentProjects", recent[:MAX_RECENT])
        self._refresh_recent()

    def _recent(self) -> list[str]:
        value = self.settings.value("recentProjects", [])
        if isinstance(value, str):
            return [value]
        return [str(v) for v in (value or [])]

    def _refresh_recent(self) -> None:
        recent = self._recent()
        self.recent_menu.clear()
        for path in recent:
            action = self.recent_menu.addAction(path)
            action.triggered.connect(lambda _=False, p=path: self.open_project(p))
        self.recent_menu.setEnabled(bool(recent))
        self.welcome.set_recent(recent)

    # -- settings, layout, help -------------------------------------------------------

    def open_settings(self) -> None:
        from app.widgets.settings_dialog import SettingsDialog

        dialog = SettingsDialog(self.config_path, self.settings, self)
        dialog.saved.connect(self._settings_saved)
        dialog.open()

    def _settings_saved(self, config: dict[str, Any]) -> None:
        self.bridge.config = config
        workspace = self.settings.value("workspace", "")
        if workspace:
            self.bridge.workspace = Path(str(workspace))
        self._check_models(config)
        self.message_bar.show_info("Settings saved; they apply to the next render.")

    def _restore_layout(self) -> None:
        self._default_state = self.saveState(STATE_VERSION)
        geometry = self.settings.value("geometry")
        if geometry is not None:
            self.restoreGeometry(geometry)
        state = self.settings.value("windowState")
        if state is not None:
            self.restoreState(state, STATE_VERSION)

    def save_layout(self) -> None:
        self.settings.setValue("geometry", self.saveGeometry())
        self.settings.setValue("windowState", self.saveState(STATE_VERSION))
        self.settings.sync()

    def reset_layout(self) -> None:
        self.restoreState(self._default_state, STATE_VERSION)
        for dock in self.docks.values():
            dock.show()

    def _show_getting_started(self) -> None:
        self.message_bar.show_info(
            "Drop a song on the window to start a project; Ctrl+R queues a draft render; "
            "the render queue shows progress, QC verdict and the output."
        )

    def closeEvent(self, event: QCloseEvent) -> None:  # noqa: N802 - Qt's name
        self._stats_timer.stop()
        if self._edit_timer.isActive():  # an edit not saved yet: save it before leaving
            pending = self._save_edit()
            if pending is not None:
                try:
                    pending.result(timeout=10)
                except Exception as err:
                    log.error("could not save the timeline edit: %s", one_line(err))
        self.save_layout()
        self.bridge.shutdown()
        super().closeEvent(event)
