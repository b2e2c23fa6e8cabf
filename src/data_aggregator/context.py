"""Invocation contexts: what the processor needs to know about the time it has left.

The processor accepts anything with ``get_remaining_time_in_millis()`` (and, optionally,
``aws_request_id``): the ``context`` AWS Lambda passes to a handler, a Powertools
``LambdaContext``, or [`LocalContext`][data_aggregator.context.LocalContext] for runs outside
Lambda (ECS, Batch, a CLI, tests).
"""

from __future__ import annotations

import time
import uuid
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Protocol, runtime_checkable

if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = ["InvocationContext", "LocalContext", "request_id_of"]


@runtime_checkable
class InvocationContext(Protocol):
    """The part of a Lambda context the library uses."""

    def get_remaining_time_in_millis(self) -> int:
        """Milliseconds left before the invocation is stopped."""
        ...


class LocalContext:
    """A context for runs outside Lambda, with a deadline and an injectable clock.

    Args:
        deadline: When the run must be finished: a ``datetime`` (naive values are taken as
            UTC) or seconds since the epoch as returned by ``clock``. ``None`` means no
            deadline (a very large remaining time).
        clock: Returns the current time in seconds since the epoch; tests pass a fake.
        aws_request_id: The id used in bundle keys and logs; a random UUID by default.

    >>> ctx = LocalContext.from_timeout(60)
    >>> 0 < ctx.get_remaining_time_in_millis() <= 60_000
    True
    """

    #: Reported when there is no deadline: about 24 days, the largest 31-bit millisecond count.
    UNBOUNDED_MS = 2**31 - 1

    def __init__(
        self,
        deadline: float | datetime | None = None,
        *,
        clock: Callable[[], float] = time.time,
        aws_request_id: str | None = None,
    ) -> None:
        if isinstance(deadline, datetime):
            deadline = _epoch_seconds(deadline)
        self.deadline: float | None = deadline
        self._clock = clock
        self.aws_request_id = aws_request_id or str(uuid.uuid4())

    @classmethod
    def from_timeout(
        cls,
        seconds: float,
        *,
        clock: Callable[[], float] = time.time,
        aws_request_id: str | None = None,
    ) -> LocalContext:
        """A context whose deadline is ``seconds`` from now (as told by ``clock``)."""
        return cls(clock() + seconds, clock=clock, aws_request_id=aws_request_id)

    def get_remaining_time_in_millis(self) -> int:
        """Milliseconds until the deadline, never negative."""
        if self.deadline is None:
            return self.UNBOUNDED_MS
        remaining = (self.deadline - self._clock()) * 1000
        return max(0, min(self.UNBOUNDED_MS, int(remaining)))

    def __repr__(self) -> str:
        return (
            f"LocalContext(remaining_ms={self.get_remaining_time_in_millis()}, "
            f"aws_request_id={self.aws_request_id!r})"
        )


def _epoch_seconds(moment: datetime) -> float:
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.timestamp()


def request_id_of(context: object) -> str | None:
    """The context's ``aws_request_id`` when it has a non-empty string one, else ``None``."""
    value = getattr(context, "aws_request_id", None)
    return value if isinstance(value, str) and value else None
