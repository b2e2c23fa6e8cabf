"""The invocation under a real deadline: a big batch, a short context, a slow server.

Issue 12's livelock, made small: every invocation has 4 s and a 2 s timeout guard, and
every request of the processor takes 10 ms more (client side, before it is sent). The
batch is far larger than one invocation can bundle. Each call must return before its
context runs out, bundle something, and the redeliveries must converge with every object
in exactly one bundle.

These tests read real time on purpose: "returns before its deadline" is the behaviour
under test, with two seconds of slack (the guard leaves 2 s, the work takes 2 s).
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import pytest

from data_aggregator import LocalContext
from data_aggregator.idempotency import DynamoDBIdempotencyStore
from data_aggregator.processor import Outcome
from data_aggregator.testing.pytest_plugin import selected_backend
from tests.clock_support import RunningClock
from tests.integration._processor_env import env_factory
from tests.processor_support import (
    assert_bundled_once,
    failed_ids,
    redeliver,
    s3_body,
    sqs_batch,
)

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from mypy_boto3_s3 import S3Client as Boto3S3Client

    from tests.integration._processor_env import ProcessorEnv

#: Visibility timeout between deliveries: past every lease (deadline + 10 s margin).
_VISIBILITY_SECONDS = 15.0


class _SingleWrites(DynamoDBIdempotencyStore):
    """One request per key for every write. On moto only: its ``TransactWriteItems``
    deep-copies the table once per item (half a second for 100 completions on a table of
    500 items), which no DynamoDB does; these tests are about deadlines, not moto."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **{**kwargs, "batch_mode": "single"})


def _store_class(request: pytest.FixtureRequest) -> type[DynamoDBIdempotencyStore]:
    moto = selected_backend(request.config) == "moto"
    return _SingleWrites if moto else DynamoDBIdempotencyStore


@pytest.fixture
def make_env(
    s3_endpoint: str,
    dynamodb_endpoint: str,
    s3_client: Boto3S3Client,
    make_bucket: Callable[..., str],
) -> Iterator[Callable[..., ProcessorEnv]]:
    """A factory of processors on fresh buckets and a fresh table."""
    yield from env_factory(s3_endpoint, dynamodb_endpoint, s3_client, make_bucket)


def _add_latency(client: Any, seconds: float) -> None:
    def sleep(**_: Any) -> None:
        time.sleep(seconds)

    client.meta.events.register("before-send", sleep)


def _deliver_until_done(
    env: ProcessorEnv, clock: RunningClock, event: dict[str, Any], rounds: int
) -> list[int]:
    """Deliver ``event``, then its failures, each with a fresh 4 s context; the number of
    objects each call bundled (asserting it returned before its deadline)."""
    failed = [record["messageId"] for record in event["Records"]]
    bundled: list[int] = []
    for _ in range(rounds):
        if not failed:
            break
        context = LocalContext.from_timeout(4.0, clock=clock)
        response = env.handle(redeliver(event, failed), context)
        assert context.get_remaining_time_in_millis() > 0, "returned after its deadline"
        bundled.append(env.last.count(Outcome.BUNDLED))
        failed = failed_ids(response)
        clock.advance(_VISIBILITY_SECONDS)
    assert failed == [], f"not converged after {rounds} deliveries: {bundled}"
    return bundled


@pytest.mark.slow
def test_big_batch_short_deadline_every_call_returns_in_time_and_converges(
    make_env: Callable[..., ProcessorEnv], request: pytest.FixtureRequest
) -> None:
    """500 one-object messages against 4 s contexts: each call returns before its
    deadline with objects bundled, and the batch converges, each object bundled once."""
    clock = RunningClock()
    env = make_env(
        clock=clock,
        store_class=_store_class(request),
        timeout_guard_threshold_seconds=2.0,
        fetch_concurrency=16,
    )
    _add_latency(env.processor_s3, 0.01)
    _add_latency(env.dynamodb, 0.01)
    objects = [env.put(f"live/{i:04d}.txt") for i in range(500)]
    event = sqs_batch([s3_body(o.record()) for o in objects])
    bundled = _deliver_until_done(env, clock, event, rounds=40)
    assert all(count > 0 for count in bundled), bundled  # progress on every call
    assert sum(bundled) == len(objects)
    assert_bundled_once(env.bundles(), objects)


def test_happy_path_makes_about_two_requests_per_object(
    make_env: Callable[..., ProcessorEnv],
) -> None:
    """One claim and one GET per object; completions batched; one upload: at most 2.1
    requests and exactly 2 table writes per bundled object (issue 12's target)."""
    env = make_env()
    requests: list[str] = []

    def count(event_name: str, **_: Any) -> None:
        requests.append(event_name.rsplit(".", 1)[-1])  # before-send.<service>.<operation>

    env.processor_s3.meta.events.register("before-send", count)
    env.dynamodb.meta.events.register("before-send", count)
    objects = [env.put(f"count/{i:03d}.txt") for i in range(150)]
    response = env.handle(sqs_batch([s3_body(o.record()) for o in objects]))
    assert response == {"batchItemFailures": []}
    assert env.last.count(Outcome.BUNDLED) == len(objects)
    per_operation = {name: requests.count(name) for name in set(requests)}
    assert per_operation["PutItem"] == len(objects)  # the claims (they announce the bundle)
    assert per_operation["GetObject"] == len(objects)
    assert per_operation["TransactWriteItems"] == 2  # 150 completions: 75 + 75
    assert "UpdateItem" not in per_operation  # no separate pending mark
    assert len(requests) / len(objects) <= 2.1, per_operation
    writes = per_operation["PutItem"] + len(objects)  # claims + completed items
    assert writes / len(objects) == 2
