"""The invocation's deadline, visible to every request it makes (private).

A `Deadline` answers "how many seconds are left?" from a callable (a Lambda context's
remaining time, or a monotonic clock), so that tests with a fake clock see the same
deadline as the processor. `scope` makes a deadline current for the code it wraps;
`submit` carries the current one into a worker thread (``contextvars`` are not inherited
by pool threads). The clients' botocore hooks (`data_aggregator.clients`) read `current`
before sending each request and before each retry, so no request or backoff sleep starts
that cannot end in time.
"""

from __future__ import annotations

import contextvars
import time
from contextlib import contextmanager
from typing import TYPE_CHECKING, ParamSpec, TypeVar

from data_aggregator.exceptions import DeadlineExceededError

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from concurrent.futures import Executor, Future

    from data_aggregator.context import InvocationContext

__all__ = ["Deadline", "current", "remaining", "scope", "submit", "wait_timeout"]

_P = ParamSpec("_P")
_R = TypeVar("_R")


class Deadline:
    """A point in time by which work must be over.

    Args:
        remaining: Seconds left now (may turn negative once the deadline has passed).
    """

    __slots__ = ("_remaining",)

    def __init__(self, remaining: Callable[[], float]) -> None:
        self._remaining = remaining

    @classmethod
    def after(cls, seconds: float, *, clock: Callable[[], float] = time.monotonic) -> Deadline:
        """A deadline ``seconds`` from now on ``clock``."""
        end = clock() + seconds
        return cls(lambda: end - clock())

    @classmethod
    def from_context(cls, context: InvocationContext, *, reserve: float = 0.0) -> Deadline:
        """The context's end, ``reserve`` seconds early."""
        return cls(lambda: context.get_remaining_time_in_millis() / 1000.0 - reserve)

    def earlier(self, seconds: float) -> Deadline:
        """This deadline moved ``seconds`` earlier."""
        return Deadline(lambda: self.remaining() - seconds)

    def remaining(self) -> float:
        """Seconds left (negative once passed)."""
        return self._remaining()

    def expired(self) -> bool:
        """Whether the deadline has passed."""
        return self._remaining() <= 0

    def check(self, operation: str) -> float:
        """Raise unless there is time left; return the seconds left (read once).

        Raises:
            DeadlineExceededError: the deadline has passed.
        """
        left = self._remaining()
        if left <= 0:
            raise DeadlineExceededError(
                "the invocation's deadline has passed",
                context={"operation": operation, "overdue_seconds": round(-left, 3)},
            )
        return left


_current: contextvars.ContextVar[Deadline | None] = contextvars.ContextVar(
    "data_aggregator_deadline", default=None
)


def current() -> Deadline | None:
    """The deadline of the code running now, if any."""
    return _current.get()


def remaining(default: float) -> float:
    """Seconds left before the current deadline; ``default`` when there is none."""
    deadline = _current.get()
    return default if deadline is None else deadline.remaining()


def wait_timeout() -> float | None:
    """How long a wait may last: the seconds left before the current deadline (never
    negative), or ``None`` (no bound) when there is no deadline."""
    deadline = _current.get()
    return None if deadline is None else max(0.0, deadline.remaining())


@contextmanager
def scope(deadline: Deadline | None) -> Iterator[None]:
    """Make ``deadline`` current inside the ``with`` block (``None``: no deadline)."""
    token = _current.set(deadline)
    try:
        yield
    finally:
        _current.reset(token)


def submit(
    pool: Executor, fn: Callable[_P, _R], /, *args: _P.args, **kwargs: _P.kwargs
) -> Future[_R]:
    """``pool.submit(fn, ...)`` with the caller's deadline current in the worker."""
    context = contextvars.copy_context()

    def run() -> _R:
        return context.run(fn, *args, **kwargs)

    return pool.submit(run)
