"""A thread-safe fake clock for the idempotency and processor tests.

The fault-injection tests drive the real processor instead of a simulation: see
``tests/faults.py`` and ``tests/redelivery.py``.
"""

from __future__ import annotations

import threading


class FakeClock:
    """A settable ``time.time`` replacement (thread-safe)."""

    def __init__(self, start: float = 1_700_000_000.0) -> None:
        self._now = start
        self._lock = threading.Lock()

    def __call__(self) -> float:
        with self._lock:
            return self._now

    def advance(self, seconds: float) -> None:
        """Move time forward."""
        with self._lock:
            self._now += seconds
