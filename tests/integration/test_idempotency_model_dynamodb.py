"""The stateful store model, run against DynamoDB over HTTP in each batch mode (fewer
examples: each is real requests), so every store is checked against the same rules."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest
from hypothesis import settings
from hypothesis.stateful import run_state_machine_as_test

from tests.idempotency_model import TTL, IdempotencyMachine
from tests.integration._dynamodb_support import (
    BATCH_MODES,
    atomic_endpoint,  # noqa: F401 - fixture
    store_factory,
)

if TYPE_CHECKING:
    from data_aggregator.idempotency import BatchMode, IdempotencyStore


@pytest.mark.parametrize("batch_mode", BATCH_MODES)
def test_dynamodb_store_follows_the_model(
    atomic_endpoint: str,  # noqa: F811 - fixture use
    batch_mode: BatchMode,
) -> None:
    """Random interleavings of every operation give the model's results in DynamoDB too,
    in each batch mode."""
    factory = store_factory(atomic_endpoint, batch_mode)

    class DynamoDBMachine(IdempotencyMachine):
        def make_store(self) -> IdempotencyStore:
            return factory(clock=self.clock, bundle_locator=self.locator, ttl_seconds=TTL)

    run_state_machine_as_test(
        DynamoDBMachine,
        settings=settings(max_examples=12, stateful_step_count=25, deadline=None),
    )
