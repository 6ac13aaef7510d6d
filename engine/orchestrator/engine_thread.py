"""The engine thread: an asyncio event loop in a background thread.

The orchestrator's coroutines run on this loop; synchronous code (the CLI, the GUI's
thread) calls them through :meth:`EngineThread.call` (wait for the result) or
:meth:`EngineThread.submit` (a :class:`concurrent.futures.Future`), both built on
:func:`asyncio.run_coroutine_threadsafe`.

Examples
--------
>>> with EngineThread() as engine:
...     orchestrator = APEXOrchestrator(tmp / "project")
...     engine.call(orchestrator.start())
...     job_id = engine.call(orchestrator.submit_job({"kind": "qa", ...}))
...     engine.call(orchestrator.wait_for(job_id))["state"]
...     engine.call(orchestrator.stop())
'succeeded'
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

from engine.errors import APEXDirectorError

__all__ = ["EngineThread"]

log = logging.getLogger(__name__)

T = TypeVar("T")


class EngineThread:
    """An event loop running in a daemon thread until :meth:`stop`.

    Parameters
    ----------
    name : str
        The thread's name.
    """

    def __init__(self, name: str = "apex-engine") -> None:
        self.name = name
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        """The running loop (after :meth:`start`)."""
        if self._loop is None:
            raise APEXDirectorError("the engine thread is not running; call start() first")
        return self._loop

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> EngineThread:
        """Start the thread and its loop (returns when the loop runs)."""
        if self.running:
            return self
        self._ready.clear()
        self._thread = threading.Thread(target=self._main, name=self.name, daemon=True)
        self._thread.start()
        self._ready.wait()
        return self

    def _main(self) -> None:
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        self._loop = loop
        loop.call_soon(self._ready.set)
        try:
            loop.run_forever()
        finally:
            pending = [t for t in asyncio.all_tasks(loop) if not t.done()]
            for task in pending:
                task.cancel()
            if pending:
                loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
            loop.run_until_complete(loop.shutdown_default_executor())
            loop.close()
            self._loop = None

    def submit(self, coroutine: Coroutine[Any, Any, T]) -> concurrent.futures.Future[T]:
        """Schedule ``coroutine`` on the engine loop from any thread."""
        if threading.current_thread() is self._thread:
            coroutine.close()
            raise APEXDirectorError(
                "EngineThread.submit() was called on the engine thread itself; await the "
                "coroutine there instead"
            )
        if self._loop is None:
            coroutine.close()
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop)

    def call(self, coroutine: Coroutine[Any, Any, T], timeout_s: float | None = None) -> T:
        """Run ``coroutine`` on the engine loop and wait for its result (or exception).

        Raises
        ------
        TimeoutError
            No result after ``timeout_s`` (the coroutine is cancelled).
        """
        future = self.submit(coroutine)
        try:
            return future.result(timeout_s)
        except concurrent.futures.TimeoutError:
            future.cancel()
            raise TimeoutError(f"the engine did not answer in {timeout_s} s") from None

    def stop(self, timeout_s: float = 10.0) -> None:
        """Stop the loop (tasks still pending are cancelled) and join the thread."""
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout_s)
        if thread.is_alive():  # pragma: no cover - a handler that never returns
            log.warning("the engine thread did not stop within %.1f s", timeout_s)
        self._thread = None

    def __enter__(self) -> EngineThread:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
