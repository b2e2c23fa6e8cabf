"""Property tests of the idempotency layer: a stateful model of the in-memory store, and
the real processor under random fault schedules followed by redelivery."""

from __future__ import annotations

from typing import TYPE_CHECKING

from hypothesis import given, settings
from hypothesis import strategies as st

from tests.idempotency_model import IdempotencyMachine
from tests.redelivery import assert_exactly_once, deliver_until_done, in_process_world, messages_for
from tests.strategies import fault_plans

if TYPE_CHECKING:
    from tests.faults import Rule

IdempotencyMachine.TestCase.settings = settings(
    max_examples=150, stateful_step_count=40, deadline=None
)
#: The in-memory store follows the model through random interleavings.
TestInMemoryStoreModel = IdempotencyMachine.TestCase


@settings(max_examples=150, deadline=None)
@given(
    rules=fault_plans,
    objects=st.integers(1, 12),
    duplicates=st.integers(0, 4),
    batch_size=st.integers(1, 6),
)
def test_random_faults_then_redelivery_bundle_each_object_once(
    rules: list[Rule], objects: int, duplicates: int, batch_size: int
) -> None:
    """Whatever faults hit whichever calls of the real processor, once SQS has
    redelivered everything, every object is in exactly one bundle and completed there."""
    world = in_process_world()
    sources = world.objects(objects)
    function = world.function(*rules)
    sent = messages_for(sources, duplicates)
    deliver_until_done([function], sent, world.shelf, world.store, batch_size=batch_size)
    assert_exactly_once(world.shelf, sources, world.store)
