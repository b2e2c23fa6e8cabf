"""Property tests of the idempotency layer: a stateful model of the in-memory store, and
random fault schedules followed by redelivery."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from data_aggregator.idempotency import InMemoryIdempotencyStore, make_idempotency_key
from data_aggregator.testing import FakeClock
from tests.idempotency_model import IdempotencyMachine
from tests.idempotency_support import (
    FakeBundleSink,
    Faults,
    SimulatedProcessor,
    deliver_until_done,
)
from tests.strategies import fault_plans

IdempotencyMachine.TestCase.settings = settings(
    max_examples=150, stateful_step_count=40, deadline=None
)
#: The in-memory store follows the model through random interleavings.
TestInMemoryStoreModel = IdempotencyMachine.TestCase


@settings(max_examples=150, deadline=None)
@given(
    plan=fault_plans,
    objects=st.integers(1, 12),
    duplicates=st.integers(0, 4),
    batch_size=st.integers(1, 6),
)
def test_random_faults_then_redelivery_bundle_each_record_once(
    plan: dict[int, set[str]], objects: int, duplicates: int, batch_size: int
) -> None:
    """Whatever faults hit whichever invocations, every record ends in exactly one bundle."""
    clock = FakeClock()
    sink = FakeBundleSink()
    store = InMemoryIdempotencyStore(clock=clock, bundle_locator=sink)
    keys = [make_idempotency_key(f"o/{i}", None, f"{i:04X}") for i in range(objects)]
    sent = [(f"m{i}", k) for i, k in enumerate(keys)]
    sent += [(f"d{i}", keys[i % objects]) for i in range(duplicates)]
    processor = SimulatedProcessor(store, sink, clock, faults=Faults(plan={**plan}))
    deliver_until_done(processor, sent, batch_size=batch_size)
    occurrences = sink.occurrences()
    assert set(occurrences) == set(keys)
    assert all(count == 1 for count in occurrences.values())
    for key in keys:
        record = store.get(key)
        assert record is not None
        assert record.bundle_key is not None
        assert key in sink.uploads[record.bundle_key]
