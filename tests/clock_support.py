"""Clocks for tests whose records reach a real DynamoDB, and a fake clock that runs."""

from __future__ import annotations

import time

from data_aggregator.testing import FakeClock

#: DynamoDB Local deletes an item whose TTL ``expiration`` is in the (real) past within
#: about a second, so a fake clock in 2024 would see its records vanish. 2100-01-01 (UTC)
#: keeps every expiration ahead of real time; start ``FakeClock(FUTURE_START)``.
FUTURE_START = 4_102_444_800.0


class RunningClock(FakeClock):
    """A `FakeClock` that also runs with real (monotonic) time: for tests whose deadline
    must pass by itself (a Lambda context that really runs out), while ``advance`` still
    stands for the waits between deliveries (the visibility timeout)."""

    def __init__(self, start: float = FUTURE_START) -> None:
        super().__init__(start)
        self._origin = time.monotonic()

    def __call__(self) -> float:
        return super().__call__() + (time.monotonic() - self._origin)
