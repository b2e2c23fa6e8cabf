"""Fault injection at every step, then SQS-style redelivery: each record ends up completed
exactly once and in exactly one bundle.

The processor and bundle engine are simulated (``tests/idempotency_support.py``): bundles
are lists of keys in a dictionary. The stores are real: in-memory and DynamoDB over HTTP
(in both batch modes).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from data_aggregator.idempotency import (
    ClaimStatus,
    IdempotencyStore,
    InMemoryIdempotencyStore,
    RecordStatus,
    UpdateStatus,
    make_idempotency_key,
)
from tests.idempotency_support import (
    FAULT_POINTS,
    FUTURE_START,
    FakeBundleSink,
    FakeClock,
    Faults,
    SimulatedProcessor,
    deliver_until_done,
)
from tests.integration._dynamodb_support import (
    atomic_endpoint,  # noqa: F401 - fixture
    store_factory,
)

if TYPE_CHECKING:
    from collections.abc import Callable

    from data_aggregator.idempotency import BatchMode


class World:
    """A store, a fake bundle sink that is also the locator, and a fake clock."""

    def __init__(self, factory: Callable[..., IdempotencyStore]) -> None:
        self.clock = FakeClock(FUTURE_START)
        self.sink = FakeBundleSink()
        self.store = factory(bundle_locator=self.sink, clock=self.clock, ttl_seconds=86_400)


@pytest.fixture(params=["memory", "dynamodb", "dynamodb-transact"])
def world(request: pytest.FixtureRequest) -> World:
    """A fresh world over each store kind (DynamoDB in both batch modes)."""
    if request.param == "memory":
        return World(InMemoryIdempotencyStore)
    mode: BatchMode = "transact" if request.param == "dynamodb-transact" else "single"
    return World(store_factory(request.getfixturevalue("atomic_endpoint"), mode))


def messages(objects: int = 12, duplicates: int = 3) -> list[tuple[str, str]]:
    keys = [make_idempotency_key(f"in/{i}.log", None, f"{i:08X}") for i in range(objects)]
    sent = [(f"m{i}", key) for i, key in enumerate(keys)]
    # S3 and SQS deliver some notifications twice, in other batches.
    sent += [(f"dup{i}", keys[i * 4]) for i in range(duplicates)]
    return sent


def assert_exactly_once(world: World, sent: list[tuple[str, str]]) -> None:
    keys = {key for _, key in sent}
    occurrences = world.sink.occurrences()
    assert set(occurrences) == keys, "every record is bundled"
    assert all(count == 1 for count in occurrences.values()), occurrences
    for key in keys:
        record = world.store.get(key)
        assert record is not None
        assert record.status is RecordStatus.COMPLETED
        assert record.bundle_key is not None
        assert key in world.sink.uploads[record.bundle_key]


@pytest.mark.parametrize("point", FAULT_POINTS)
def test_fault_then_redelivery_bundles_every_record_once(world: World, point: str) -> None:
    """A fault at any step in the first two invocations loses nothing and duplicates nothing."""
    faults = Faults(plan={1: {point}, 2: {point}})
    processor = SimulatedProcessor(world.store, world.sink, world.clock, faults=faults)
    sent = messages()
    statuses = deliver_until_done(processor, sent, batch_size=5)
    assert_exactly_once(world, sent)
    if point in {"after_upload", "during_complete"}:
        assert statuses[ClaimStatus.RECOVERED.value] > 0, "the dead invocation's bundle is used"


def test_every_fault_at_once_across_invocations(world: World) -> None:
    """Faults at every step in successive invocations still give exactly-once bundles."""
    plan = {i + 1: {point} for i, point in enumerate(FAULT_POINTS)}
    processor = SimulatedProcessor(world.store, world.sink, world.clock, faults=Faults(plan))
    sent = messages(20, 5)
    deliver_until_done(processor, sent, batch_size=3)
    assert_exactly_once(world, sent)


def test_concurrent_duplicate_waits_for_the_live_lease(world: World) -> None:
    """A duplicate delivered while the first invocation runs is failed, then acknowledged."""
    sent = messages(4, 0)
    duplicate = [("again", sent[0][1])]
    seen: list[set[str]] = []
    faults = Faults()
    processor = SimulatedProcessor(world.store, world.sink, world.clock, faults=faults)
    faults.hooks[(1, "after_claim")] = lambda: seen.append(processor.invoke(duplicate).failed)
    first = processor.invoke(sent)
    assert seen == [{"again"}], "the duplicate met a live lease and was failed"
    assert first.failed == set()
    world.clock.advance(360)
    retried = processor.invoke(duplicate)
    assert retried.failed == set()
    assert retried.statuses[ClaimStatus.ALREADY_COMPLETED.value] == 1
    assert_exactly_once(world, sent)


def test_upload_after_the_lease_ended_is_the_duplicate_window(world: World) -> None:
    """An upload that completes after its lease ended and was taken over can duplicate;
    the late holder's complete then says LEASE_LOST, so the duplicate is detected."""
    key = make_idempotency_key("late.log", None, "01")
    a = world.store.claim([key], owner="a", lease_expires_at=world.clock() + 70)
    assert a[key].status is ClaimStatus.CLAIMED
    world.store.mark_pending([key], owner="a", bundle_key="bundle-a")
    world.clock.advance(70)  # "a" stalls past its lease (not possible on Lambda)
    b = world.store.claim([key], owner="b", lease_expires_at=world.clock() + 70)
    assert b[key].status is ClaimStatus.CLAIMED  # bundle-a is not there yet
    world.sink.upload("bundle-b", [key])
    assert world.store.complete([key], owner="b", bundle_key="bundle-b")[key].ok
    world.sink.upload("bundle-a", [key])  # the stalled upload lands anyway
    late = world.store.complete([key], owner="a", bundle_key="bundle-a")[key]
    assert late.status is UpdateStatus.LEASE_LOST
    assert world.sink.occurrences()[key] == 2
