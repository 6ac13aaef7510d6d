"""The engine thread: an asyncio loop in a background thread, called from sync code."""

from __future__ import annotations

import asyncio
import threading

import pytest

from engine.errors import APEXDirectorError, ParameterError
from engine.orchestrator.engine_thread import EngineThread


async def _where() -> str:
    await asyncio.sleep(0)
    return threading.current_thread().name


async def _fail() -> None:
    raise ParameterError("x", 1, "2")


def test_coroutines_run_on_the_engine_thread_and_return_their_result() -> None:
    with EngineThread(name="engine-under-test") as engine:
        assert engine.running
        assert engine.call(_where()) == "engine-under-test"
        futures = [engine.submit(asyncio.sleep(0.01, result=n)) for n in range(5)]
        assert [f.result(5) for f in futures] == list(range(5))
    assert not engine.running


def test_exceptions_reach_the_caller_typed() -> None:
    with EngineThread() as engine, pytest.raises(ParameterError):
        engine.call(_fail())


def test_a_call_that_takes_too_long_times_out_and_is_cancelled() -> None:
    with EngineThread() as engine:
        with pytest.raises(TimeoutError):
            engine.call(asyncio.sleep(5), timeout_s=0.05)
        assert engine.call(_where())  # the loop still answers


def test_calling_into_itself_is_refused_rather_than_deadlocking() -> None:
    async def nested(engine: EngineThread) -> None:
        engine.call(_where())

    with EngineThread() as engine, pytest.raises(APEXDirectorError, match="engine thread itself"):
        engine.call(nested(engine))


def test_not_started_says_so() -> None:
    with pytest.raises(APEXDirectorError, match="start"):
        EngineThread().call(_where())
