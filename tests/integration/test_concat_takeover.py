"""A concat bundle recovered by a differently configured processor, with the default wiring.

The processors here are built as a Lambda builds them: ``ReusableProcessor(config)`` with
nothing injected but a clock, so the S3 client, the DynamoDB store and its crash-recovery
locator are the ones the processor makes from its configuration (the environment points
boto3 at the session's servers). One processor writes concat bundles with a
``SIDECAR_PREFIX`` and dies after a bundle is stored, before its records are completed;
once the leases end, a processor configured otherwise (tar, or concat with another
prefix) takes the records over. The bundle's own metadata says where its sidecar is, so
the taker verifies it and completes the records there: nothing is bundled twice.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest

import data_aggregator.idempotency
from data_aggregator import LocalContext, ReusableProcessor
from data_aggregator.bundle._concat import SIDECAR_SUFFIX, sidecar_key
from data_aggregator.config import AppConfig, BundleFormat
from data_aggregator.idempotency import DynamoDBIdempotencyStore
from data_aggregator.processor import Outcome, Reason
from data_aggregator.testing import FakeClock
from tests.clock_support import FUTURE_START
from tests.integration._processor_env import Crash, CrashOnComplete
from tests.processor_support import (
    SourceObject,
    assert_bundled_once,
    read_bundle,
    s3_body,
    sqs_batch,
)

if TYPE_CHECKING:
    from collections.abc import Iterator

    from data_aggregator.testing.pytest_plugin import AggregatorEnv
    from tests.processor_support import ReadBundle

pytestmark = pytest.mark.integration

WRITER = {"bundle_format": "concat", "sidecar_prefix": "manifests"}
LINES = [b'{"n":0}\n', b'{"n":1}', b'{"n":2}\n{"n":3}\n']


@pytest.fixture
def clock() -> FakeClock:
    """One fake clock for both processors, their stores and their contexts."""
    return FakeClock(FUTURE_START)


@pytest.fixture
def made() -> Iterator[list[ReusableProcessor]]:
    """Processors built by a test; their default stores are closed afterwards."""
    processors: list[ReusableProcessor] = []
    yield processors
    for processor in processors:
        if isinstance(processor.store, DynamoDBIdempotencyStore):
            processor.store.close()


def _processor(config: AppConfig, clock: FakeClock, made: list[ReusableProcessor]) -> Any:
    processor = ReusableProcessor(config, clock=clock)
    made.append(processor)
    return processor


def _put(env: AggregatorEnv, key: str, data: bytes) -> SourceObject:
    response = env.s3.put_object(Bucket=env.source_bucket, Key=key, Body=data)
    return SourceObject(env.source_bucket, key, data, response["ETag"].strip('"'))


def _bundles(env: AggregatorEnv, sidecar_prefix: str) -> list[ReadBundle]:
    """Every bundle of the destination bucket, verified against its sidecar."""
    listing = env.s3.list_objects_v2(Bucket=env.destination_bucket)
    keys = [entry["Key"] for entry in listing.get("Contents", [])]

    def read(key: str) -> bytes:
        return env.s3.get_object(Bucket=env.destination_bucket, Key=key)["Body"].read()

    return [
        read_bundle(key, read(key), read(sidecar_key(key, sidecar_prefix)))
        for key in keys
        if not key.endswith(SIDECAR_SUFFIX)
    ]


@pytest.mark.parametrize("aggregator_env", [WRITER], indirect=True)
@pytest.mark.parametrize(
    "taker",
    [
        {"bundle_format": "tar"},
        {"bundle_format": "concat"},
        {"bundle_format": "concat", "sidecar_prefix": "elsewhere/"},
    ],
    ids=["tar", "concat-next-to-bundle", "concat-other-prefix"],
)
def test_a_differently_configured_processor_recovers_a_crashed_concat_bundle(
    handler_env: AggregatorEnv,
    taker: dict[str, Any],
    clock: FakeClock,
    made: list[ReusableProcessor],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Killed after its concat bundle (sidecar under SIDECAR_PREFIX) is stored, before
    complete: a processor with another BUNDLE_FORMAT / SIDECAR_PREFIX, built with the
    default store and locator, finds the records in that bundle once the leases end
    (RECOVERED), acknowledges every message and writes no bundle of its own."""
    env = handler_env
    assert env.config.bundle_format is BundleFormat.CONCAT
    assert env.config.sidecar_prefix == "manifests/"
    with monkeypatch.context() as patch:  # the default store, made to die in complete
        patch.setattr(data_aggregator.idempotency, "DynamoDBIdempotencyStore", CrashOnComplete)
        writer = _processor(env.config, clock, made)
    assert isinstance(writer.store, CrashOnComplete)
    objects = [_put(env, f"app/{i}.json", data) for i, data in enumerate(LINES)]
    event = sqs_batch([s3_body(o.record()) for o in objects])
    with pytest.raises(Crash):
        writer.handle(event, LocalContext.from_timeout(60, clock=clock))
    (crashed,) = _bundles(env, "manifests/")
    assert_bundled_once([crashed], objects)

    other = AppConfig(
        distribution_bucket_name=env.destination_bucket,
        idempotency_table_name=env.table_name,
        **taker,
    )
    reader = _processor(other, clock, made)
    assert type(reader.store) is DynamoDBIdempotencyStore
    clock.advance(71)  # the deadline and the lease margin have passed
    response = reader.handle(event, LocalContext.from_timeout(60, clock=clock))

    assert response == {"batchItemFailures": []}
    result = reader.last_result
    assert result is not None
    assert {(r.outcome, r.reason) for r in result.records} == {
        (Outcome.DUPLICATE, Reason.RECOVERED)
    }
    assert {r.bundle_key for r in result.records} == {crashed.key}
    assert result.bundles == ()
    assert_bundled_once(_bundles(env, "manifests/"), objects)
