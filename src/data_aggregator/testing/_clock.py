"""A clock tests move by hand, and a `LocalContext` that reads it."""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING

from data_aggregator.context import LocalContext

if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = ["FakeClock", "local_context"]


class FakeClock:
    """A clock that stands still until [`advance`][data_aggregator.testing.FakeClock.advance]
    moves it.

    Call it for the current time in seconds since the epoch, like ``time.time``; pass it
    wherever the library takes a ``clock``. Thread-safe: the processor's fetch and upload
    threads, a store's workers and the test may read it and move it at once.

    >>> clock = FakeClock(100.0)
    >>> clock.advance(2.5)
    >>> clock()
    102.5
    """

    def __init__(self, start: float = 1_714_564_800.0) -> None:
        self._now = float(start)
        self._lock = threading.Lock()

    def __call__(self) -> float:
        """The current fake time."""
        with self._lock:
            return self._now

    @property
    def now(self) -> float:
        """The current fake time (read-only: [`advance`][data_aggregator.testing.FakeClock.advance]
        moves it)."""
        return self()

    def advance(self, seconds: float) -> None:
        """Move the clock ``seconds`` forward.

        Raises:
            ValueError: ``seconds`` is negative (time does not go back).
        """
        if seconds < 0:
            msg = f"a clock only moves forward, got {seconds} seconds"
            raise ValueError(msg)
        with self._lock:
            self._now += seconds

    def __repr__(self) -> str:
        return f"FakeClock({self()!r})"


def local_context(
    timeout_seconds: float = 900.0,
    clock: Callable[[], float] | None = None,
    *,
    aws_request_id: str | None = None,
) -> LocalContext:
    """A context whose deadline is ``timeout_seconds`` after ``clock``'s present time.

    ``clock`` defaults to ``time.time``; pass a [`FakeClock`][data_aggregator.testing.FakeClock]
    to decide how much time is left by advancing it.
    """
    return LocalContext.from_timeout(
        timeout_seconds,
        clock=clock if clock is not None else time.time,
        aws_request_id=aws_request_id,
    )
