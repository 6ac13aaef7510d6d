from __future__ import annotations

import threading
from collections.abc import Iterator

import numpy as np
import pytest

from engine.assembly.compose import StillCache, _ahead


def test_ahead_yields_everything_in_order() -> None:
    assert list(_ahead(iter(range(100)), depth=3)) == list(range(100))


def test_ahead_reraises_the_workers_error() -> None:
    def broken() -> Iterator[int]:
        yield 1
        raise ValueError("still vanished")

    with pytest.raises(ValueError, match="still vanished"):
        list(_ahead(broken()))


def test_ahead_stops_the_worker_when_the_consumer_stops() -> None:
    produced: list[int] = []

    def endless() -> Iterator[int]:
        n = 0
        while True:
            produced.append(n)
            yield n
            n += 1

    before = threading.active_count()
    for item in _ahead(endless(), depth=2):
        if item == 5:
            break
    assert threading.active_count() == before
    assert len(produced) <= 5 + 1 + 2 + 1  # consumed, the one in hand, the queue, one pending


def test_still_cache_keeps_only_a_few_decoded() -> None:
    loads: list[int] = []

    def load(i: int) -> np.ndarray:
        loads.append(i)
        return np.full((2, 2, 3), i, np.uint8)

    cache = StillCache(load, capacity=2)
    for i in (0, 0, 1, 0, 2, 1, 0):
        assert cache.get(i)[0, 0, 0] == i
    assert loads == [0, 1, 2, 1, 0]  # least recently used goes first
