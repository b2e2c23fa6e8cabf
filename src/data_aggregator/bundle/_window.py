"""The prefetch window of a bundle run: bodies fetched ahead of the writer (private).

Used by `data_aggregator.bundle._runner`. The writer's thread is the only caller; a pool
of ``fetch_concurrency`` workers only opens, reads and hashes object bodies.

Fetches are dispatched in input order, as far ahead as three bounds allow: only sources
the run's `Admission` has admitted (the window stops at the first one still pending and
skips withdrawn ones), at most
``4 * fetch_concurrency`` items (16 at least), and the sizes of prefetched-but-unwritten
bodies summing to at most ``in_flight_bytes`` (the writer gives budget back chunk by chunk
as it writes). Because budget is only ever taken in input order, the item the writer
waits for always has its budget: no deadlock. A streamed item (larger than the budget, or
of unknown size) takes a place in the window but is never fetched ahead: the writer opens
it when its turn comes.

The window never waits without a bound: `result` gives up when the caller's
``should_continue`` says stop, and `close` does not wait for fetches still running
(their workers see the cancellation at the next chunk and close their connections).
"""

from __future__ import annotations

import threading
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from typing import TYPE_CHECKING, Any

from data_aggregator import _deadline
from data_aggregator.bundle._admission import AdmissionState
from data_aggregator.bundle._fetch import Budget, Fetched, Rejected, prefetch
from data_aggregator.bundle._plan import Item

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from data_aggregator.bundle._admission import Admission
    from data_aggregator.bundle._types import ObjectSource

__all__ = ["Item", "PrefetchWindow"]

#: How often a wait re-checks ``should_continue`` (seconds).
POLL_SECONDS = 0.05


class PrefetchWindow:
    """Fetches the bodies of ``items`` ahead of the writer, in input order.

    Args:
        source: Opens the objects (called from the worker threads).
        items: What the run will try to write, in input order.
        fetch_concurrency: Worker threads.
        in_flight_bytes: Budget for prefetched-but-unwritten bodies.
        chunk_size: Read size for bodies.
        admission: Which items may be fetched; ``None``: all of them.
    """

    def __init__(
        self,
        source: ObjectSource,
        items: Sequence[Item],
        *,
        fetch_concurrency: int,
        in_flight_bytes: int,
        chunk_size: int,
        admission: Admission | None = None,
    ) -> None:
        self._source = source
        self._admission = admission
        self._items = items
        self._chunk_size = chunk_size
        self._waiting: deque[tuple[Item, Future[Fetched | Rejected] | None]] = deque()
        self._dispatched = 0
        self._budget = Budget(in_flight_bytes)
        self._charges: dict[int, int] = {}
        self._progressive: threading.Event | None = None
        self._max_ahead = max(4 * fetch_concurrency, 16)
        self._cancelled = threading.Event()
        workers = max(1, min(fetch_concurrency, len(items)))
        self._pool = ThreadPoolExecutor(workers, thread_name_prefix="bundle-fetch")

    def top_up(self) -> None:
        """Dispatch fetches in input order while the window and the byte budget allow."""
        while self._dispatched < len(self._items) and len(self._waiting) < self._max_ahead:
            item = self._items[self._dispatched]
            if self._admission is not None:
                state = self._admission.state(item.index)
                if state is AdmissionState.PENDING:
                    return
                if state is AdmissionState.WITHDRAWN:
                    self._dispatched += 1
                    continue
            if item.streamed:
                self._waiting.append((item, None))
                self._dispatched += 1
                continue
            if self._progressive is not None and not self._progressive.is_set():
                return  # the progressive item must hold its whole size before the next
            charge = item.source.size or 0
            progressive: dict[str, Any] = {}
            if self._budget.try_take(charge):
                self._charges[item.index] = charge
            else:
                # Not enough budget free now: the worker takes it chunk by chunk as the
                # writer frees it. Only this item does so, and every earlier one holds its
                # whole charge, so the writer always gets to free what it waits for.
                self._progressive = threading.Event()
                progressive = {"budget": self._budget, "taken_all": self._progressive}
            future = _deadline.submit(
                self._pool,
                prefetch,
                self._source,
                item.source,
                self._chunk_size,
                self._cancelled,
                **progressive,
            )
            self._waiting.append((item, future))
            self._dispatched += 1

    def is_empty(self) -> bool:
        """Whether no item is waiting for the writer (after a `top_up`)."""
        return not self._waiting

    def exhausted(self) -> bool:
        """Whether every item has been handed to the writer or skipped."""
        return not self._waiting and self._dispatched >= len(self._items)

    def wait_for_admission(self, should_continue: Callable[[], bool]) -> bool:
        """Wait until the next item is admitted or withdrawn; ``False`` if told to stop."""
        admission = self._admission
        if admission is None or self._dispatched >= len(self._items):
            return True
        index = self._items[self._dispatched].index
        while admission.wait(index, POLL_SECONDS) is AdmissionState.PENDING:
            if not should_continue():
                return False
        return True

    def pop(self) -> tuple[Item, Future[Fetched | Rejected] | None]:
        """The next item in input order and its fetch (``None`` for a streamed item)."""
        return self._waiting.popleft()

    def result(
        self,
        item: Item,
        future: Future[Fetched | Rejected],
        should_continue: Callable[[], bool],
    ) -> Fetched | Rejected | None:
        """Wait for ``item``'s fetch; a rejected item's budget is given back at once.

        ``None`` when ``should_continue`` said stop before the fetch ended (the fetch is
        abandoned: `close` cancels it).
        """
        while True:
            try:
                result = future.result(timeout=POLL_SECONDS)
                break
            except FutureTimeout:
                if not should_continue():
                    self.release(item.index)
                    return None
        if isinstance(result, Fetched) and result.charge:
            self._charges[item.index] = result.charge
        if isinstance(result, Rejected):
            self.release(item.index)
        return result

    def release(self, index: int, amount: int | None = None) -> None:
        """Give back ``amount`` bytes of item ``index``'s budget (all of it by default)."""
        left = self._charges.get(index, 0)
        give = left if amount is None else min(amount, left)
        self._charges[index] = left - give
        self._budget.give(give)

    def close(self) -> None:
        """Cancel what is queued and abandon what is running, without waiting: each
        running fetch stops at its next chunk and closes its connection."""
        self._cancelled.set()
        self._pool.shutdown(wait=False, cancel_futures=True)
