"""The store's bounded wait for its worker threads reads the time left once the tasks are
submitted, and starts none past the deadline (issue 12: ``handle()`` returning seconds
after its deadline on a starved host)."""

from __future__ import annotations

import threading
from concurrent.futures import wait
from typing import TYPE_CHECKING, Any

from data_aggregator import _deadline
from data_aggregator.idempotency import InMemoryIdempotencyStore
from data_aggregator.idempotency import _base as store_base
from data_aggregator.testing import FakeClock

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable
    from concurrent.futures import Future

    import pytest


def test_the_wait_ends_at_the_deadline_as_it_stands_after_submitting(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Submitting each task takes a (fake) second, as starting a worker thread can on a
    loaded host: the deadline passes after two, so the third is never submitted, the wait
    is not bounded by the two seconds that were left before, and the unfinished tasks are
    abandoned at once."""
    clock = FakeClock(0.0)
    store = InMemoryIdempotencyStore(max_workers=4, clock=clock)
    executor = store._get_executor()
    submit = executor.submit

    submitted: list[object] = []

    def slow_submit(fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        submitted.append(fn)
        clock.advance(1.0)
        return submit(fn, *args, **kwargs)

    waits: list[float | None] = []

    def recorded_wait(futures: Iterable[Future[Any]], timeout: float | None = None) -> Any:
        waits.append(timeout)
        return wait(futures, timeout=timeout)

    monkeypatch.setattr(executor, "submit", slow_submit)
    monkeypatch.setattr(store_base, "wait", recorded_wait)
    blocked = threading.Event()

    def task(item: int) -> int:
        blocked.wait()
        return item

    try:
        with _deadline.scope(_deadline.Deadline.after(2.0, clock=clock)):
            results = store._run_all([1, 2, 3], task, late=lambda item: -item)
    finally:
        blocked.set()
        store.close()
    assert len(submitted) == 2  # the deadline passed while submitting the second
    assert waits == [0.0]  # read after submitting: the deadline had passed
    assert results == [-1, -2, -3]
