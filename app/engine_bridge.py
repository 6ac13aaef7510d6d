"""The single bridge between the GUI and the engine.

One :class:`EngineBridge` per application.  It hosts an
:class:`~engine.api.EngineThread` (an asyncio loop in a background thread) on which the
engine's :class:`~engine.api.APEXDirector` facade and the current project's
:class:`~engine.api.APEXOrchestrator` live, and it turns the orchestrator's typed events
(``JobQueued`` ... ``JobCancelled``), which arrive on engine threads, into Qt signals
delivered on the GUI thread.

Widgets never create threads and never call the engine synchronously: they ask the
bridge (``bridge.call(work, on_done, on_error)``, in the spirit of Anki's ``QueryOp``)
and get the result back on the GUI thread.  An engine :class:`~engine.api.CancelledError`
is not an error: it is dropped silently.  Any other error reaches ``on_error`` or, when
there is none, the :attr:`EngineBridge.error_occurred` signal with the engine's one-line
explanation, which the main window shows in its non-blocking message bar.

Examples
--------
>>> bridge = EngineBridge(workspace=tmp / "projects")
>>> bridge.start()
>>> bridge.call(lambda: 6 * 7, on_done=print)     # prints 42 on the GUI thread
>>> bridge.new_project_from_audio(tmp / "song.wav")  # project_opened, then analysis_ready
>>> bridge.shutdown()
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import hashlib
import inspect
import logging
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject, Qt, Signal, Slot

from engine import api

__all__ = ["AUDIO_EXTENSIONS", "EngineBridge", "ProjectInfo", "one_line"]

log = logging.getLogger(__name__)

EDIT_FILE = "edit.timeline.json"  # the user's timeline edit, in the project folder
AUDIO_EXTENSIONS = frozenset({".wav", ".mp3", ".flac", ".ogg", ".m4a", ".aac", ".aif", ".aiff"})

OnDone = Callable[[Any], None]
OnError = Callable[[BaseException], None]


def one_line(err: BaseException) -> str:
    """The engine's explanation of ``err`` on one line (for the message bar)."""
    text = " ".join(str(err).split())
    return text or type(err).__name__


def _is_cancel(err: BaseException) -> bool:
    return isinstance(
        err, api.CancelledError | concurrent.futures.CancelledError | asyncio.CancelledError
    )


@dataclass(frozen=True)
class ProjectInfo:
    """What the GUI shows of the open project."""

    id: str
    name: str
    path: Path
    audio_path: Path | None
    settings: dict[str, Any]
    encrypted: bool = False
    """The project's assets are encrypted at rest (``encryption.json``)."""
    locked: bool = False
    """Encrypted and no key given in this session: its song cannot be read yet."""
    needs_passphrase: bool = False
    """Encrypted with a passphrase (not a key kept in the OS keyring)."""


class _Request:
    """One ``call``: its callbacks, kept until its result comes back."""

    __slots__ = ("on_done", "on_error", "started")

    def __init__(self, on_done: OnDone | None, on_error: OnError | None) -> None:
        self.on_done = on_done
        self.on_error = on_error
        self.started = time.monotonic()


class EngineBridge(QObject):
    """Hosts the engine thread and the open project; engine events → Qt signals.

    Parameters
    ----------
    workspace : Path
        The folder where new projects are made (one sub-folder each).
    config : dict, optional
        The engine configuration; default: the defaults of :class:`~engine.api.ConfigManager`.
        Its ``orchestrator.stage_isolation`` defaults to ``"process"`` here: renders and
        analyses run in a child process, so they never stall the GUI thread and a crashed
        render does not take the app down (engine/orchestrator/stage_process.py).
    parent : QObject, optional
        Qt parent.

    Signals
    -------
    job_queued, job_started, job_progress, job_finished, job_failed, job_cancelled (object)
        The engine's events, on the GUI thread.
    project_opened (object)
        A :class:`ProjectInfo`: a project was created or opened.
    project_closed ()
        The project was closed.
    project_unlocked (object)
        A :class:`ProjectInfo`: the open encrypted project was unlocked (its song is
        analysed next).
    analysis_ready (object)
        The :class:`~engine.api.AudioAnalysis` of the project's song.
    render_queued (str)
        The id of a render's last job.
    error_occurred (str)
        A one-line explanation of an error no caller handled.
    busy_changed (bool)
        Whether a bridge call is in flight.
    """

    job_queued = Signal(object)
    job_started = Signal(object)
    job_progress = Signal(object)
    job_finished = Signal(object)
    job_failed = Signal(object)
    job_cancelled = Signal(object)
    project_opened = Signal(object)
    project_closed = Signal()
    project_unlocked = Signal(object)
    analysis_ready = Signal(object)
    render_queued = Signal(str)
    error_occurred = Signal(str)
    busy_changed = Signal(bool)

    # internal: results and events cross from engine threads to the GUI thread
    _result_ready = Signal(object, object, object)
    _event_ready = Signal(object)

    def __init__(
        self,
        workspace: Path | str,
        *,
        config: dict[str, Any] | None = None,
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent)
        self.workspace = Path(workspace).expanduser().absolute()
        self.config: dict[str, Any] = (
            dict(config) if config is not None else api.ConfigManager().config
        )
        # the GUI runs the heavy stages in a child process (unless the config says otherwise)
        orchestrator = dict(self.config.get("orchestrator") or {})
        orchestrator.setdefault("stage_isolation", "process")
        self.config["orchestrator"] = orchestrator
        self._engine: api.EngineThread | None = None
        self._director: Any = None
        self._orchestrator: Any = None
        self._unsubscribe: Callable[[], None] | None = None
        self._project: ProjectInfo | None = None
        self._analysis: Any = None
        # whether the open encrypted project was given its key in this session
        self._unlocked = False
        self._keyring_problem: str | None = None
        self._pending: set[_Request] = set()
        # The edit a render shows: a callable giving the user's current TimelineDocument
        # (the main window's timeline), or None for the freshly planned edit.  Without
        # one, the project's saved edit (EDIT_FILE) is rendered when there is one.
        self.edit_provider: Callable[[], Any] | None = None
        # Queued even from the GUI thread: a future that is already done runs its done
        # callback inside call(), and a widget must never get its answer before call()
        # has returned.
        self._result_ready.connect(self._deliver_result, Qt.ConnectionType.QueuedConnection)
        self._event_ready.connect(self._deliver_event)

    # -- life cycle -------------------------------------------------------------------

    def start(self) -> EngineBridge:
        """Start the engine thread (idempotent)."""
        if self._engine is None or not self._engine.running:
            self._engine = api.EngineThread(name="apex-gui-engine").start()
        return self

    @property
    def running(self) -> bool:
        return self._engine is not None and self._engine.running

    def shutdown(self, timeout_s: float = 30.0) -> None:
        """Stop the open project's orchestrator, close the project and stop the thread.

        Blocks (it is called when the window closes, after the event loop is done).
        """
        if self._engine is None:
            return
        if self._engine.running:
            with contextlib.suppress(Exception):
                self._engine.call(self._close_project(), timeout_s=timeout_s)
        self._engine.stop()
        self._engine = None

    # -- the generic call -------------------------------------------------------------

    def call(
        self,
        work: Coroutine[Any, Any, Any] | Callable[[], Any],
        on_done: OnDone | None = None,
        on_error: OnError | None = None,
    ) -> concurrent.futures.Future[Any]:
        """Run ``work`` off the GUI thread; its result comes back on the GUI thread.

        Parameters
        ----------
        work : coroutine or callable
            A coroutine runs on the engine loop; a plain callable runs in a worker thread
            of that loop (a callable returning an awaitable has it awaited on the loop).
        on_done : callable, optional
            Called with the result, on the GUI thread.
        on_error : callable, optional
            Called with the exception, on the GUI thread; without it the error goes to
            :attr:`error_occurred`.  A cancellation reaches neither.

        Returns
        -------
        concurrent.futures.Future
            For tests and shutdown code; widgets use the callbacks.
        """
        self.start()
        assert self._engine is not None
        if inspect.iscoroutine(work):
            coroutine = work
        elif callable(work):
            coroutine = self._in_thread(work)
        else:
            raise api.ParameterError("work", work, "a coroutine or a callable")
        request = _Request(on_done, on_error)
        self._pending.add(request)
        if len(self._pending) == 1:
            self.busy_changed.emit(True)
        future = self._engine.submit(coroutine)
        future.add_done_callback(lambda f: self._result_ready.emit(request, f, None))
        return future

    @staticmethod
    async def _in_thread(work: Callable[[], Any]) -> Any:
        result = await asyncio.to_thread(work)
        if inspect.isawaitable(result):
            result = await result
        return result

    @Slot(object, object, object)
    def _deliver_result(self, request: _Request, future: Any, _unused: object) -> None:
        self._pending.discard(request)
        if not self._pending:
            self.busy_changed.emit(False)
        try:
            result = future.result()
        except BaseException as err:
            if _is_cancel(err):
                log.info("cancelled: %s", one_line(err))
                return
            log.info("engine call failed: %s", one_line(err))
            log.debug("the failed engine call's traceback", exc_info=err)
            if request.on_error is not None:
                request.on_error(err)
            else:
                self.error_occurred.emit(one_line(err))
            return
        if request.on_done is not None:
            try:
                request.on_done(result)
            except Exception as err:  # a widget's bug shows as a message, not a crash
                log.exception("a GUI callback failed")
                self.error_occurred.emit(f"Internal error in the window: {one_line(err)}")

    # -- engine events → signals ------------------------------------------------------

    def _on_engine_event(self, event: api.JobEvent) -> None:
        """Called on engine threads: hand the event over to the GUI thread."""
        self._event_ready.emit(event)

    @Slot(object)
    def _deliver_event(self, event: api.JobEvent) -> None:
        if isinstance(event, api.JobProgress):
            self.job_progress.emit(event)
        elif isinstance(event, api.JobStarted):
            self.job_started.emit(event)
        elif isinstance(event, api.JobQueued):
            self.job_queued.emit(event)
        elif isinstance(event, api.JobFinished):
            self.job_finished.emit(event)
        elif isinstance(event, api.JobFailed):
            self.job_failed.emit(event)
        elif isinstance(event, api.JobCancelled):
            self.job_cancelled.emit(event)

    # -- the project ------------------------------------------------------------------

    @property
    def project(self) -> ProjectInfo | None:
        """The open project (``None`` before one is opened)."""
        return self._project

    @property
    def analysis(self) -> Any:
        """The open project's :class:`~engine.api.AudioAnalysis`, once analysed."""
        return self._analysis

    @property
    def orchestrator(self) -> Any:
        """The open project's orchestrator (use it only through :meth:`call`)."""
        return self._orchestrator

    def _info(self) -> ProjectInfo:
        project = self._orchestrator.project
        settings = dict(project.settings)
        audio = settings.get("audio_path")
        kind = api.project_key_kind(Path(project.path))
        return ProjectInfo(
            id=project.id,
            name=project.name,
            path=Path(project.path),
            audio_path=Path(audio) if audio else None,
            settings=settings,
            encrypted=kind is not None,
            locked=kind is not None and not self._unlocked,
            needs_passphrase=kind is not None and kind != "keyring",
        )

    async def _close_project(self) -> None:
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
        orchestrator, director = self._orchestrator, self._director
        self._orchestrator = self._director = None
        self._unlocked = False
        if orchestrator is not None:
            await orchestrator.stop(timeout_s=10)
        if director is not None:
            await asyncio.to_thread(director.close)

    async def _adopt(self, director: Any, project_id: str | None) -> ProjectInfo:
        """Make ``director``'s project the open one and start its orchestrator."""
        try:
            orchestrator = director.get_orchestrator(project_id)
            self._unsubscribe = orchestrator.subscribe(self._on_engine_event)
            await orchestrator.initialize()
            await orchestrator.start()
        except BaseException:
            if self._unsubscribe is not None:
                self._unsubscribe()
                self._unsubscribe = None
            await asyncio.to_thread(director.close)
            raise
        self._director, self._orchestrator = director, orchestrator
        return self._info()

    async def _open(self, folder: Path) -> ProjectInfo:
        await self._close_project()

        def make() -> Any:
            if not (folder / "project.apex.json").is_file():
                raise api.UserInputError(
                    f"{folder} holds no APEX Director project (no project.apex.json); "
                    "drop a song to start a new one"
                )
            # AssetManager(project folder) opens it; a locked or broken project raises here
            director = api.APEXDirector(folder, config=self.config)
            try:
                director.get_asset_manager()
            except BaseException:
                director.close()
                raise
            return director

        director = await asyncio.to_thread(make)
        if not director.get_asset_manager().projects:
            director.close()
            raise api.UserInputError(
                f"{folder} holds no APEX Director project (no project.apex.json); "
                "drop a song to start a new one"
            )
        if api.project_key_kind(folder) == "keyring":
            # a key kept in the OS keyring unlocks the project by itself; without it the
            # project opens locked and the window says why
            try:
                await asyncio.to_thread(director.get_asset_manager().unlock_project, None)
                self._unlocked = True
            except api.APEXDirectorError as err:
                log.warning("%s stays locked: %s", folder, one_line(err))
                self._keyring_problem = one_line(err)
        return await self._adopt(director, None)

    async def _create(self, audio: Path, name: str) -> ProjectInfo:
        await self._close_project()

        def make() -> tuple[Any, str]:
            director = api.APEXDirector(self.workspace, config=self.config)
            try:
                assets = director.get_asset_manager()
                project = assets.create_project(name)
                # the song is copied into the project (content-addressed), so moving or
                # deleting the original loses nothing
                stored = assets.store_asset(
                    {
                        "source_path": audio,
                        "name": audio.name,
                        "category": "audio",
                        "tags": ["song"],
                    },
                    project.id,
                )
                project.update(
                    settings={
                        "audio_path": str(stored),
                        "audio_source": str(audio),
                        "song_name": audio.name,
                    }
                )
                project.save()
            except BaseException:
                director.close()
                raise
            return director, project.id

        director, project_id = await asyncio.to_thread(make)
        return await self._adopt(director, project_id)

    def open_project(self, path: Path | str, on_done: OnDone | None = None) -> None:
        """Open a project folder (or its ``project.apex.json``); then analyse its song.

        Emits :attr:`project_opened`, then :attr:`analysis_ready` when the project has a
        song; errors (missing, locked, broken project) go to :attr:`error_occurred`.
        """
        folder = Path(path).expanduser().absolute()
        if folder.name == "project.apex.json":
            folder = folder.parent

        def opened(info: ProjectInfo) -> None:
            self._project = info
            self._analysis = None
            self.project_opened.emit(info)
            problem, self._keyring_problem = self._keyring_problem, None
            if problem:
                self.error_occurred.emit(
                    f"{info.name} is encrypted with a key kept in the OS keyring, and it "
                    f"could not be read, so the project stays locked: {problem}"
                )
            if info.audio_path is not None and not info.locked:
                self.analyse()  # a locked project is analysed once it is unlocked
            if on_done is not None:
                on_done(info)

        self._keyring_problem = None
        self.call(self._open(folder), opened)

    def new_project_from_audio(self, audio_path: Path | str, on_done: OnDone | None = None) -> None:
        """Make a project for a song in :attr:`workspace`, open it and analyse the song.

        The audio file is checked first (exists, readable, a known audio type), so a
        bad drop never leaves an empty project behind.
        """
        audio = Path(audio_path).expanduser().absolute()
        try:
            self._check_audio(audio)
        except api.APEXDirectorError as err:
            self.error_occurred.emit(one_line(err))
            return

        def created(info: ProjectInfo) -> None:
            self._project = info
            self._analysis = None
            self.project_opened.emit(info)
            self.analyse()
            if on_done is not None:
                on_done(info)

        self.call(self._create(audio, audio.stem or "song"), created)

    @staticmethod
    def _check_audio(audio: Path) -> None:
        if audio.suffix.lower() not in AUDIO_EXTENSIONS:
            raise api.MediaInputError(
                audio, f"is not a song APEX Director reads ({', '.join(sorted(AUDIO_EXTENSIONS))})"
            )
        try:
            with audio.open("rb") as handle:
                if not handle.read(64):
                    raise api.MediaInputError(audio, "is empty; choose the song file itself")
        except FileNotFoundError as err:
            raise api.MediaInputError(audio, "is not there (moved or deleted?)") from err
        except IsADirectoryError as err:
            raise api.MediaInputError(audio, "is a folder, not a song") from err
        except PermissionError as err:
            raise api.MediaInputError(
                audio, "cannot be read (permission denied); check the file's permissions"
            ) from err

    def unlock_project(
        self,
        passphrase: str | None,
        on_done: OnDone | None = None,
        on_error: OnError | None = None,
    ) -> None:
        """Give the open encrypted project's key for this session, then analyse its song.

        ``passphrase`` ``None`` takes the key from the OS keyring.  The jobs then read the
        sealed song in memory (docs/security.md).  On success :attr:`project_unlocked`
        is emitted with the updated :class:`ProjectInfo` (``locked`` False) and the song
        is analysed.  A wrong passphrase raises :class:`~engine.api.DecryptionError`,
        given to ``on_error`` (else :attr:`error_occurred`); nothing is read or written.
        The passphrase is not kept: it lives only until the engine has checked it.
        """
        orchestrator = self._require_project()
        director = self._director
        if orchestrator is None or director is None:
            return

        def unlocked(_: object) -> None:
            if self._director is not director or self._project is None:
                return  # the project was closed meanwhile
            self._unlocked = True
            self._project = replace(self._project, locked=False)
            self.project_unlocked.emit(self._project)
            if self._project.audio_path is not None:
                self.analyse()
            if on_done is not None:
                on_done(self._project)

        self.call(
            lambda: director.get_asset_manager().unlock_project(passphrase), unlocked, on_error
        )

    def audio_source(self, path: Path | str) -> Any:
        """The open project's song ready to decode: its path, or, for an encrypted
        project's sealed song, its clear bytes in memory (``AudioBytes``), never a file.

        Blocking (it decrypts): call it inside work given to :meth:`call`, never on the
        GUI thread.

        Raises
        ------
        UserInputError
            No project is open (it was closed meanwhile).
        ProjectLockedError
            The song is sealed and the project was not unlocked in this session.
        DecryptionError
            The file was altered, or is another project's sealed asset.
        """
        orchestrator = self._orchestrator
        if orchestrator is None:
            raise api.UserInputError(f"{Path(path).name}: no project is open to read it from")
        return api.project_audio_source(orchestrator.project, path)

    def close_project(self) -> None:
        """Close the open project (stopping its jobs gracefully)."""

        def closed(_: object) -> None:
            self._project = None
            self._analysis = None
            self.project_closed.emit()

        self.call(self._close_project(), closed)

    def save_project(self, on_done: OnDone | None = None) -> None:
        """Save the open project's file (atomically, by the engine)."""
        orchestrator = self._require_project()
        if orchestrator is None:
            return
        self.call(orchestrator.project.save, on_done)

    def update_project(self, settings: dict[str, Any], on_done: OnDone | None = None) -> None:
        """Merge ``settings`` into the open project's settings and save it."""
        orchestrator = self._require_project()
        if orchestrator is None:
            return

        def work() -> ProjectInfo:
            orchestrator.project.update(settings=settings)
            orchestrator.project.save()
            return self._info()

        def done(info: ProjectInfo) -> None:
            self._project = info
            if on_done is not None:
                on_done(info)

        self.call(work, done)

    def _require_project(self) -> Any:
        if self._orchestrator is None:
            self.error_occurred.emit("No project is open: drop a song on the window to start one.")
            return None
        return self._orchestrator

    # -- analysis and renders ----------------------------------------------------------

    def analyse(self, on_done: OnDone | None = None) -> None:
        """Analyse the project's song as an ``analyse`` job; emits :attr:`analysis_ready`."""
        orchestrator = self._require_project()
        if orchestrator is None or self._project is None or self._project.audio_path is None:
            return
        audio = self._project.audio_path

        async def work() -> Any:
            job_id = await orchestrator.submit_job(
                {"kind": "analyse", "payload": {"audio_path": str(audio)}}
            )
            status = await orchestrator.wait_for(job_id)
            if status["state"] != "succeeded":
                # the job's JobFailed / JobCancelled event already told the window why
                return None
            # the job filled the analyser's cache: this returns the full analysis at once
            # (keyed by the song's content; an encrypted project's sealed song is opened
            # in memory with its key, as the job did)
            analyzer = api.AudioAnalyzer(cache_dir=orchestrator.project.cache_dir / "analysis")
            project = orchestrator.project
            return await asyncio.to_thread(
                lambda: analyzer.analyze(api.project_audio_source(project, audio))
            )

        def done(analysis: Any) -> None:
            if analysis is None:
                return
            self._analysis = analysis
            self.analysis_ready.emit(analysis)
            if on_done is not None:
                on_done(analysis)

        self.call(work(), done)

    def render(
        self,
        *,
        preset: str = "draft",
        output_path: Path | None = None,
        on_done: OnDone | None = None,
    ) -> None:
        """Queue a render of the project's song (six jobs); emits :attr:`render_queued`.

        The video goes to the project's ``renders/`` folder unless ``output_path`` says
        otherwise.  Progress arrives through the job signals.

        The render shows the user's edit when there is one (:attr:`edit_provider`, else
        the project's saved ``edit.timeline.json``), frozen at the moment of the call
        into ``cache/edits/<hash>.timeline.json`` so later edits cannot change a queued
        render; otherwise the planner's edit.  The grades the grading panel applied
        (``settings.grades``) are put over the edit either way
        (``docs/decisions/0013-gui-shell-projects-and-edits.md``).
        """
        orchestrator = self._require_project()
        if orchestrator is None or self._project is None:
            return
        if self._project.audio_path is None:
            self.error_occurred.emit("This project has no song: drop an audio file on the window.")
            return
        audio = self._project.audio_path
        project_path = self._project.path
        try:
            song = Path(str(self._project.settings.get("song_name") or audio.name)).stem
            output = output_path or project_path / "renders" / f"{song}-{preset}.mp4"
            # the image backends, model and device as configured (as the CLI does)
            render_cfg = dict(self.config.get("render", {}))
            order = tuple(render_cfg.get("backend_order") or ("procedural",))
            edit = self._edit_snapshot(project_path)
            grades = _grades_of(self._project.settings.get("grades"))
            request = api.RenderRequest(
                audio_path=audio,
                output_path=output,
                preset=preset,
                backend=order[0],
                backend_order=order if len(order) > 1 else (),
                model=str(render_cfg.get("model") or "") or None,
                device=str(render_cfg.get("device") or "auto"),
                cache_dir=project_path / "cache",
                # the rendered edit, with its stills, for the timeline to show
                timeline_json=output.with_suffix(".timeline.json"),
                timeline_path=edit,
                grades=grades,
            )
        except api.APEXDirectorError as err:
            self.error_occurred.emit(one_line(err))
            return

        def done(job_id: str) -> None:
            self.render_queued.emit(job_id)
            if on_done is not None:
                on_done(job_id)

        self.call(api.prepare_render(orchestrator, request, self.config), done)

    def _edit_snapshot(self, project_path: Path) -> Path | None:
        """The edit to render, written as ``cache/edits/<hash>.timeline.json``, or None."""
        document = self.edit_provider() if self.edit_provider is not None else None
        if document is None and self.edit_provider is None:
            saved = project_path / EDIT_FILE
            if saved.is_file():
                document = api.load_timeline(saved)
        if document is None or not document.video_clips:
            return None  # nothing edited, or only the analysed song: plan the edit
        text = document.to_json()
        digest = hashlib.sha256(text.encode()).hexdigest()[:24]
        path = project_path / "cache" / "edits" / f"{digest}.timeline.json"
        if not path.is_file():
            path.parent.mkdir(parents=True, exist_ok=True)
            api.save_timeline(path, document)
        return path

    def cancel_job(self, job_id: str, on_done: OnDone | None = None) -> None:
        """Cancel a job (and the jobs that depend on it)."""
        orchestrator = self._require_project()
        if orchestrator is not None:
            self.call(orchestrator.cancel_job(job_id), on_done)

    def retry_job(self, job_id: str, on_done: OnDone | None = None) -> None:
        """Queue a failed or cancelled job again (with its dependents)."""
        orchestrator = self._require_project()
        if orchestrator is not None:
            self.call(orchestrator.retry_job(job_id), on_done)

    def list_jobs(self, on_done: OnDone, *, limit: int | None = 500) -> None:
        """The project's persistent job queue, newest first (dicts), to ``on_done``."""
        if self._orchestrator is None:
            on_done([])
            return
        self.call(self._orchestrator.jobs(limit=limit), on_done)

    def system_stats(self, on_done: OnDone) -> None:
        """Queue counts, device and memory, to ``on_done`` (``{}`` without a project)."""
        orchestrator = self._orchestrator

        async def work() -> dict[str, Any]:
            if orchestrator is None:
                return {}
            stats = await orchestrator.get_system_stats()
            stats["performance"] = orchestrator.get_performance_metrics()
            return stats

        self.call(work(), on_done)

    def probe_device(self, on_done: OnDone) -> None:
        """Which device generation would use (imports torch in a worker thread)."""

        def work() -> dict[str, Any]:
            try:
                return dict(api.select_device().as_stats())
            except api.APEXDirectorError as err:
                return {"device": "unavailable", "device_name": one_line(err)}

        self.call(work, on_done, lambda err: on_done({"device": "unavailable"}))


def _grades_of(grades: Any) -> dict[str, Any] | None:
    """The project's ``settings.grades`` for a render, or None when none is set."""
    if not isinstance(grades, dict):
        return None
    out = {
        "global": grades.get("global"),
        "sections": dict(grades.get("sections") or {}),
        "shots": dict(grades.get("shots") or {}),
    }
    return out if out["global"] is not None or out["sections"] or out["shots"] else None
