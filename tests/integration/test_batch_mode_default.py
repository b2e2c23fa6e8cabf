"""The default store's batch mode, through the real `ReusableProcessor` built from the
environment: ``auto`` on a test server, and a ``statements`` store whose role may not run
PartiQL (a `FaultProxy` in front of the DynamoDB server answers every
``BatchExecuteStatement`` ``AccessDeniedException``, as IAM does).

No PartiQL statement reaches the server in these tests, so they run on moto too.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import pytest

from data_aggregator import AppConfig, LocalContext, ReusableProcessor, get_config
from data_aggregator.idempotency import DynamoDBIdempotencyStore
from data_aggregator.testing import (
    s3_notification,
    s3_record,
    sqs_event,
    sqs_message,
    use_environment,
)
from tests.processor_support import read_bundle

if TYPE_CHECKING:
    from collections.abc import Callable

    from data_aggregator.schemas import S3EventRecord
    from data_aggregator.testing import FaultProxy
    from data_aggregator.testing.pytest_plugin import AggregatorEnv

BES = ("dynamodb", "BatchExecuteStatement")


def test_a_processor_from_the_environment_writes_hybrid_on_a_test_server(
    handler_env: AggregatorEnv,
) -> None:
    """``IDEMPOTENCY_BATCH_MODE`` unset (``auto``), the plugin's servers on 127.0.0.1: the
    default store resolves to ``hybrid``, which moto and DynamoDB Local both run."""
    config = get_config()
    assert config.idempotency_batch_mode == "auto"
    processor = ReusableProcessor(config)
    assert isinstance(processor.store, DynamoDBIdempotencyStore)
    assert processor.store.batch_mode == "hybrid"


def _put(env: AggregatorEnv, key: str) -> S3EventRecord:
    body = f"contents of {key}\n".encode()
    response = env.s3.put_object(Bucket=env.source_bucket, Key=key, Body=body)
    return s3_record(env.source_bucket, key, size=len(body), etag=response["ETag"].strip('"'))


def _bundled(env: AggregatorEnv) -> list[str]:
    """Every member bundled so far (manifests aside), over every bundle."""
    listing = env.s3.list_objects_v2(Bucket=env.destination_bucket)
    members: list[str] = []
    for entry in listing.get("Contents", []):
        body = env.s3.get_object(Bucket=env.destination_bucket, Key=entry["Key"])["Body"].read()
        members.extend(read_bundle(entry["Key"], body).members)
    return sorted(members)


@pytest.mark.parametrize(
    "aggregator_env", [{"idempotency_batch_mode": "statements"}], indirect=True
)
def test_a_role_without_partiql_falls_back_to_hybrid_in_the_same_call(
    aggregator_env: AggregatorEnv,
    make_fault_proxy: Callable[..., FaultProxy],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """``IDEMPOTENCY_BATCH_MODE=statements``, the role lacking ``dynamodb:PartiQLInsert``:
    the first claims' ``BatchExecuteStatement`` is refused, the store switches to
    ``hybrid`` and claims those records with ``PutItem`` in the same call; every object is
    bundled once, no message fails, one WARNING names the actions, and no later call
    tries PartiQL again."""
    env = aggregator_env
    proxy = make_fault_proxy(env.dynamodb_endpoint_url)
    proxy.add_fault(*BES, status=400, error_code="AccessDeniedException")
    caplog.set_level(logging.INFO, logger="data_aggregator")
    environ = {**env.environ, "AWS_ENDPOINT_URL_DYNAMODB": proxy.endpoint_url}
    with use_environment(environ):
        processor = ReusableProcessor(AppConfig.from_env())
    store = processor.store
    assert isinstance(store, DynamoDBIdempotencyStore)
    configured = store.batch_mode
    assert configured == "statements"

    first_keys = [f"first/{n:02d}.log" for n in range(30)]
    first = [_put(env, key) for key in first_keys]
    response = processor.handle(
        sqs_event(sqs_message(s3_notification([r])) for r in first),
        LocalContext.from_timeout(300),
    )

    assert response == {"batchItemFailures": []}
    assert store.batch_mode == "hybrid"
    refused = proxy.counts()[BES]
    assert refused.received == refused.faulted >= 1
    assert refused.forwarded == 0
    assert proxy.counts()[("dynamodb", "PutItem")].forwarded >= len(first_keys)
    assert proxy.counts()[("dynamodb", "TransactWriteItems")].forwarded >= 1
    assert _bundled(env) == first_keys

    second = [_put(env, f"second/{n:02d}.log") for n in range(5)]
    again = processor.handle(
        sqs_event(sqs_message(s3_notification([r])) for r in second),
        LocalContext.from_timeout(300),
    )

    assert again == {"batchItemFailures": []}
    assert proxy.counts()[BES].received == refused.received
    assert len(_bundled(env)) == len(first_keys) + len(second)
    library = [r for r in caplog.records if r.name.startswith("data_aggregator")]
    warnings = [r for r in library if r.levelno >= logging.WARNING]
    assert [(r.name, r.levelname) for r in warnings] == [("data_aggregator.idempotency", "WARNING")]
    message = warnings[0].getMessage()
    assert "dynamodb:PartiQLInsert" in message
    assert "dynamodb:PartiQLUpdate" in message
    assert warnings[0].__dict__["denied_action"] == "dynamodb:PartiQLInsert"
