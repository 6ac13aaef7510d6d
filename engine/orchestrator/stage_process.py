"""Run a job's heavy stage in a child process (``stage_isolation = "process"``).

A render in a thread of the GUI's process holds the GIL for long stretches and stalls the
GUI thread; a render that crashes, or is killed for memory, takes the whole app with it.
With ``stage_isolation = "process"`` (the desktop app's setting) the orchestrator's render
stages and analyses run instead in a child process: one persistent child per worker
thread of the orchestrator, started lazily with the ``spawn`` start method (never
``fork``: the parent has threads and Qt), reused from job to job (imports, Stable
Diffusion pipelines and caches stay warm in it) and started afresh when it has died.

:meth:`StageProcesses.run` sends a module-level function and its (picklable) arguments to
the child of the calling thread.  While it runs, the child's :class:`~engine.events.JobEvent`
s reach the parent's :class:`~engine.context.StageContext` sink as they happen, its log
records go to the parent's ``logging`` (under their own logger names), and the parent's
cancel reaches the child's ``StageContext`` (a multiprocessing ``Event``), which raises
:class:`~engine.errors.CancelledError` at its next check.  The function's result comes
back; an exception comes back as its own type and message.  A child that dies mid-job
(SIGKILL, out of memory, a crash in native code) fails the job with
:class:`StageProcessError`, a transient error the orchestrator retries; the parent
carries on.

The child imports only engine modules: while it is started, the parent's ``__main__``
(the GUI's entry script) is hidden, so spawn does not import it there.
"""

from __future__ import annotations

import contextlib
import importlib
import logging
import logging.handlers
import multiprocessing
import multiprocessing.connection
import os
import pickle
import signal
import sys
import threading
import time
import traceback
import types
from pathlib import Path
from typing import TYPE_CHECKING, Any

from engine.errors import APEXDirectorError, CancelledError

if TYPE_CHECKING:
    from multiprocessing.context import SpawnProcess
    from multiprocessing.synchronize import Event as ProcessEvent

    from engine.context import StageContext

__all__ = [
    "ISOLATION_MODES",
    "StageProcessError",
    "StageProcesses",
    "analyse_audio",
    "probe",
    "render_stage",
]

log = logging.getLogger(__name__)

ISOLATION_MODES = ("thread", "process")
# After a cancel, how long the child may take to reach a cancel check before it is killed.
CANCEL_GRACE_S = 10.0
# How long stop() waits for an idle child to leave on its own.
STOP_TIMEOUT_S = 5.0
_POLL_S = 0.05

_start_lock = threading.Lock()


class StageProcessError(APEXDirectorError):
    """The child process running a job's stage stopped before it finished.

    Transient: the orchestrator retries the job (in a fresh child).

    Attributes
    ----------
    exitcode : int or None
        The child's exit code; ``-N`` when signal ``N`` killed it.
    """

    def __init__(self, exitcode: int | None, *, what: str = "render") -> None:
        self.exitcode = exitcode
        if exitcode is not None and exitcode < 0:
            number = -exitcode
            try:
                name = signal.Signals(number).name
            except ValueError:
                name = f"signal {number}"
            cause = f"signal {number}" if name.startswith("signal") else f"{name}, signal {number}"
            if number == getattr(signal, "SIGKILL", 9):  # (Windows has no SIGKILL)
                cause += " — out of memory?"
        elif exitcode is None:
            cause = "its pipe closed"
        else:
            cause = f"exit code {exitcode}"
        super().__init__(
            f"the {what} process stopped ({cause}); the job is retried while it has attempts left"
        )


# -- functions run in the child ---------------------------------------------------------


def render_stage(
    *,
    stage_context: StageContext,
    request: Any,
    config: dict[str, Any],
    until: str | None,
    audio_source: Any = None,
) -> dict[str, Any]:
    """One stage of :func:`~engine.orchestrator.render_pipeline.render_video` (in the child
    process, or in the worker thread itself in thread mode).

    Returns the render's result made JSON-ready (what the job stores).
    """
    import json

    from engine.orchestrator.render_pipeline import render_video

    if multiprocessing.parent_process() is not None:
        stage_context.logger.debug(
            "stage %s of job %s runs in the stage process (pid %d)",
            stage_context.stage,
            stage_context.job_id,
            os.getpid(),
        )
    result = render_video(
        request,
        config=config,
        context=stage_context,
        until=until,
        audio_source=audio_source,
    )
    return json.loads(json.dumps(result, default=str))


def analyse_audio(
    *,
    stage_context: StageContext,
    audio: Any,
    sensitivity: float,
    cache_dir: Path,
    target: Path,
) -> dict[str, Any]:
    """Analyse ``audio`` and write the analysis to ``target`` (JSON, atomically).

    Returns ``{"tempo": ...}``.
    """
    import json

    from engine.atomic_files import atomic_write_text
    from engine.audio.analyzer import AudioAnalyzer

    if multiprocessing.parent_process() is not None:
        stage_context.logger.debug(
            "analysis of job %s runs in the stage process (pid %d)",
            stage_context.job_id,
            os.getpid(),
        )
    analyzer = AudioAnalyzer(sensitivity=sensitivity, cache_dir=cache_dir)
    analysis = analyzer.analyze(audio, progress=stage_context.progress)
    text = json.dumps(analysis.to_dict(), indent=1, sort_keys=True, default=str) + "\n"
    atomic_write_text(target, text)
    return {"tempo": analysis.tempo}


def probe(*, stage_context: StageContext) -> dict[str, Any]:
    """Where the child runs: its pid and whether a GUI toolkit was imported there."""
    del stage_context
    return {
        "pid": os.getpid(),
        "gui_imported": any(m.split(".")[0] in ("PySide6", "app") for m in sys.modules),
    }


# -- the child's side ---------------------------------------------------------------------


class _PipeQueue:
    """What :class:`logging.handlers.QueueHandler` puts records into: the pipe."""

    def __init__(self, send: Any) -> None:
        self._send = send

    def put_nowait(self, record: logging.LogRecord) -> None:
        self._send(("log", record))


def _resolve(ref: str) -> Any:
    module, _, name = ref.partition(":")
    target: Any = importlib.import_module(module)
    for part in name.split("."):
        target = getattr(target, part)
    return target


def _error_payload(err: BaseException) -> dict[str, Any]:
    """What the parent needs to raise ``err`` again: its class, args and attributes."""
    cls = type(err)
    payload: dict[str, Any] = {
        "module": cls.__module__,
        "qualname": cls.__qualname__,
        "message": f"{cls.__name__}: {err}",
        "traceback": "".join(traceback.format_exception(err)),
    }
    try:
        state = pickle.dumps((err.args, dict(getattr(err, "__dict__", {}))))
        pickle.loads(state)
        payload["state"] = state
    except Exception:  # an attribute that does not pickle: the message will do
        payload["state"] = None
    return payload


def _exit_with_parent(interval_s: float = 1.0) -> None:
    """End this child when its parent is gone (killed mid-job: no orphan keeps rendering)."""
    parent = os.getppid()

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(interval_s)
        os._exit(1)

    threading.Thread(target=watch, name="apex-stage-parent-watch", daemon=True).start()


def _child_main(
    connection: multiprocessing.connection.Connection,
    cancel: ProcessEvent,
    log_level: int,
) -> None:
    """The child's loop: run each job sent, until told to stop or the pipe closes."""
    from engine.context import StageContext

    send_lock = threading.Lock()

    def send(message: Any) -> None:
        with send_lock:
            connection.send(message)

    _exit_with_parent()
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
    root.addHandler(logging.handlers.QueueHandler(_PipeQueue(send)))  # type: ignore[arg-type]
    root.setLevel(log_level)
    while True:
        try:
            message = connection.recv()
        except (EOFError, OSError):
            return
        if message[0] == "stop":
            return
        _, ref, kwargs, context_fields = message
        context = StageContext(
            job_id=context_fields["job_id"],
            sink=lambda event: send(("event", event)),
            cancel_event=cancel,
            logger=logging.getLogger(context_fields["logger"]),
            stage=context_fields["stage"],
        )
        root.setLevel(context_fields["level"])
        try:
            result = _resolve(ref)(stage_context=context, **kwargs)
        except BaseException as err:
            reply: tuple[str, Any] = ("error", _error_payload(err))
        else:
            reply = ("result", result)
        try:
            send(reply)
        except Exception as err:  # the result does not pickle: say so
            send(("error", _error_payload(APEXDirectorError(f"cannot send the result: {err}"))))


# -- the parent's side --------------------------------------------------------------------


def _rebuild_error(payload: dict[str, Any]) -> BaseException:
    """The child's exception as its own type (without calling its ``__init__``)."""
    try:
        cls = _resolve(f"{payload['module']}:{payload['qualname']}")
        if not (isinstance(cls, type) and issubclass(cls, BaseException)):
            raise TypeError(payload["qualname"])
        if payload["state"] is None:
            raise ValueError("no state")
        args, attributes = pickle.loads(payload["state"])
        err = cls.__new__(cls)
        BaseException.__init__(err, *args)
        err.__dict__.update(attributes)
        str(err)  # a __str__ that needs what is missing fails here, not later
        return err
    except Exception:
        return APEXDirectorError(payload["message"].splitlines()[0])


@contextlib.contextmanager
def _hidden_main() -> Any:
    """Hide ``__main__`` while a child is spawned, so spawn does not import it there."""
    main = sys.modules.get("__main__")
    sys.modules["__main__"] = types.ModuleType("__main__")
    try:
        yield
    finally:
        if main is not None:
            sys.modules["__main__"] = main


class _Child:
    """One child process, its pipe and its cancel event."""

    def __init__(self) -> None:
        context = multiprocessing.get_context("spawn")
        self.cancel: ProcessEvent = context.Event()
        self.connection, child_end = context.Pipe(duplex=True)
        self.process: SpawnProcess = context.Process(
            target=_child_main,
            args=(child_end, self.cancel, logging.getLogger().getEffectiveLevel()),
            name="apex-stage",
            daemon=True,
        )
        with _start_lock:
            if getattr(sys, "frozen", False):
                self.process.start()
            else:
                with _hidden_main():
                    self.process.start()
        child_end.close()
        log.info("started a stage process (pid %s)", self.process.pid)

    @property
    def alive(self) -> bool:
        return self.process.is_alive()

    def stop(self, timeout_s: float = STOP_TIMEOUT_S) -> None:
        with contextlib.suppress(OSError, ValueError, BrokenPipeError):
            self.connection.send(("stop",))
        self.process.join(timeout_s)
        if self.process.is_alive():
            self.process.kill()
            self.process.join(timeout_s)
        with contextlib.suppress(OSError):
            self.connection.close()


class StageProcesses:
    """The stage processes of one orchestrator: one per worker thread, made on first use.

    Parameters
    ----------
    what : str
        What the children run, for messages ("render").
    """

    def __init__(self, what: str = "render") -> None:
        self.what = what
        self._children: dict[int, _Child] = {}
        self._lock = threading.Lock()

    def pids(self) -> list[int]:
        """The pids of the children alive now."""
        with self._lock:
            children = list(self._children.values())
        return [c.process.pid for c in children if c.alive and c.process.pid is not None]

    def _child(self) -> _Child:
        key = threading.get_ident()
        with self._lock:
            child = self._children.get(key)
        if child is not None and child.alive:
            return child
        if child is not None:
            log.warning(
                "the stage process (pid %s) has stopped; starting a new one", child.process.pid
            )
            child.stop(0.1)
        child = _Child()
        with self._lock:
            self._children[key] = child
        return child

    def run(self, ref: str, kwargs: dict[str, Any], stage_context: StageContext) -> Any:
        """Run ``ref`` (``"module:function"``) in this thread's child.

        The function is called as ``function(stage_context=CHILD_CONTEXT, **kwargs)``.

        Returns
        -------
        Any
            What the function returned.

        Raises
        ------
        StageProcessError
            The child died before it answered (the next call starts a fresh one).
        CancelledError
            The job was cancelled (raised by the child at its next cancel check; a child
            that does not get there within :data:`CANCEL_GRACE_S` is killed).
        BaseException
            What the function raised, as its own type and message.
        """
        child = self._child()
        child.cancel.clear()
        fields = {
            "job_id": stage_context.job_id,
            "stage": stage_context.stage,
            "logger": stage_context.logger.name,
            # the child sends what this process would log (the engine's loggers, others)
            "level": min(
                logging.getLogger().getEffectiveLevel(),
                logging.getLogger("engine").getEffectiveLevel(),
            ),
        }
        try:
            child.connection.send(("run", ref, kwargs, fields))
        except (OSError, ValueError) as err:
            child.stop(0.1)
            raise StageProcessError(child.process.exitcode, what=self.what) from err
        answered = False
        try:
            outcome, value = self._wait(child, stage_context)
            answered = True
        except (StageProcessError, CancelledError):
            answered = True  # the child is gone, or was killed after a cancel
            raise
        finally:
            if not answered:  # the parent gave up mid-job: that child's state is unknown
                child.stop(0.0)
        if outcome == "raise":
            raise value
        return value

    def _wait(self, child: _Child, stage_context: StageContext) -> tuple[str, Any]:
        """Relay the child's events and logs until it answers: ``("return", result)`` or
        ``("raise", exception)``."""
        cancelled_at: float | None = None
        held: BaseException | None = None  # a sink's exception, raised once the child answers
        while True:
            if cancelled_at is None and stage_context.cancel_event.is_set():
                child.cancel.set()
                cancelled_at = time.monotonic()
            if cancelled_at is not None and time.monotonic() - cancelled_at > CANCEL_GRACE_S:
                log.warning("the stage process did not stop on cancel; killing it")
                child.stop(0.0)
                raise CancelledError(f"cancelled during {stage_context.stage or 'the job'}")
            try:
                ready = child.connection.poll(_POLL_S)
                message = child.connection.recv() if ready else None
            except (EOFError, OSError):
                child.process.join(1.0)
                raise StageProcessError(child.process.exitcode, what=self.what) from None
            if message is None:
                if not child.alive:
                    raise StageProcessError(child.process.exitcode, what=self.what)
                continue
            kind, body = message
            if kind == "event":
                if held is None:
                    try:
                        stage_context.sink(body)
                    except BaseException as err:
                        held = err
                        child.cancel.set()
                        cancelled_at = cancelled_at or time.monotonic()
            elif kind == "log":
                logger = logging.getLogger(body.name)
                if logger.isEnabledFor(body.levelno):
                    logger.handle(body)
            elif kind == "result":
                return ("raise", held) if held is not None else ("return", body)
            elif kind == "error":
                if held is not None:
                    return "raise", held
                log.debug("the stage process raised:\n%s", body["traceback"])
                return "raise", _rebuild_error(body)

    def close(self) -> None:
        """Stop every child (each finishes or is killed; called by ``orchestrator.stop()``)."""
        with self._lock:
            children = list(self._children.values())
            self._children.clear()
        for child in children:
            child.cancel.set()
            child.stop()
