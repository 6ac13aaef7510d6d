"""A token bucket: at most N requests a minute, with short bursts up to N.

The API reference's limits (generation requests per backend, asset operations, system
queries) are each one bucket.  An empty bucket raises :class:`RateLimitError`, which
says how long to wait.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from engine.assets.errors import RateLimitError
from engine.errors import ParameterError

__all__ = ["TokenBucket"]


class TokenBucket:
    """``per_minute`` requests a minute, refilled continuously.

    Parameters
    ----------
    kind : str
        What is limited, named in the error (``"asset_operations"``).
    per_minute : float or None
        The limit; ``None`` means unlimited.
    clock : callable
        Seconds, monotonic (tests pass a fake one).
    """

    def __init__(
        self,
        kind: str,
        per_minute: float | None,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if per_minute is not None and per_minute <= 0:
            raise ParameterError(f"{kind} per minute", per_minute, "a number > 0, or None")
        self.kind = kind
        self.per_minute = per_minute
        self._clock = clock
        self._tokens = float(per_minute or 0.0)
        self._updated = clock()
        self._lock = threading.Lock()

    def _refill(self) -> None:
        now = self._clock()
        if self.per_minute is not None:
            rate = self.per_minute / 60.0
            self._tokens = min(self.per_minute, self._tokens + (now - self._updated) * rate)
        self._updated = now

    def acquire(self, count: int = 1) -> None:
        """Take ``count`` tokens, or raise :class:`RateLimitError` (taking none)."""
        if self.per_minute is None:
            return
        with self._lock:
            self._refill()
            if self._tokens >= count:
                self._tokens -= count
                return
            wait = (count - self._tokens) / (self.per_minute / 60.0)
        raise RateLimitError(self.kind, retry_after_s=wait, limit_per_minute=self.per_minute)

    @property
    def remaining(self) -> int | None:
        """Requests that would be accepted right now (``None``: unlimited)."""
        if self.per_minute is None:
            return None
        with self._lock:
            self._refill()
            return int(self._tokens)
