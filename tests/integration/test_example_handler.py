"""The example Lambda in ``examples/`` against moto's server, set up by the shipped plugin."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from data_aggregator import LocalContext
from data_aggregator.testing import (
    import_handler,
    s3_notification,
    s3_record,
    sqs_event,
    sqs_message,
)

if TYPE_CHECKING:
    from types import ModuleType

    from data_aggregator.schemas import S3EventRecord
    from data_aggregator.testing.pytest_plugin import AggregatorEnv

HANDLER_PATH = Path(__file__).resolve().parents[2] / "examples" / "handler.py"


@pytest.fixture
def example_handler(handler_env: AggregatorEnv) -> ModuleType:
    """``examples/handler.py``, imported fresh with its environment pointing at moto."""
    return import_handler(HANDLER_PATH)


def _put(env: AggregatorEnv, key: str, body: bytes) -> S3EventRecord:
    response = env.s3.put_object(Bucket=env.source_bucket, Key=key, Body=body)
    return s3_record(
        env.source_bucket,
        key,
        size=len(body),
        etag=response["ETag"].strip('"'),
        version_id=response.get("VersionId"),
    )


def _bundles(env: AggregatorEnv) -> dict[str, list[str]]:
    listing = env.s3.list_objects_v2(Bucket=env.destination_bucket)
    bundles = {}
    for item in listing.get("Contents", []):
        body = env.s3.get_object(Bucket=env.destination_bucket, Key=item["Key"])["Body"].read()
        with tarfile.open(fileobj=io.BytesIO(body), mode="r:gz") as tar:
            bundles[item["Key"]] = tar.getnames()
    return bundles


@pytest.mark.parametrize("aggregator_env", [{"versioned_source": True}], indirect=True)
def test_example_handler_bundles_a_batch(
    handler_env: AggregatorEnv, example_handler: ModuleType
) -> None:
    """An SQS batch of S3 notifications becomes one bundle and no failed message."""
    records = [_put(handler_env, f"logs/{n} a+b.log", b"line %d\n" % n) for n in range(3)]
    event = sqs_event(sqs_message(s3_notification([record])) for record in records)

    response = example_handler.handler(event, LocalContext.from_timeout(300))

    assert response == {"batchItemFailures": []}
    (names,) = _bundles(handler_env).values()
    assert names == ["logs/0 a+b.log", "logs/1 a+b.log", "logs/2 a+b.log", "manifest.json"]


def test_example_handler_skips_folder_markers(
    handler_env: AggregatorEnv, example_handler: ModuleType
) -> None:
    """The example's ``accept`` hook acknowledges a "folder" marker without bundling it."""
    folder = _put(handler_env, "logs/", b"")
    event = sqs_event([sqs_message(s3_notification([folder]))])

    response = example_handler.handler(event, LocalContext.from_timeout(300))

    assert response == {"batchItemFailures": []}
    assert _bundles(handler_env) == {}


def test_aggregator_env_resources_exist(aggregator_env: AggregatorEnv) -> None:
    """The plugin's ``aggregator_env`` creates both buckets, the table and a matching config."""
    s3, dynamodb = aggregator_env.s3, aggregator_env.dynamodb
    s3.head_bucket(Bucket=aggregator_env.source_bucket)
    s3.head_bucket(Bucket=aggregator_env.destination_bucket)
    versioning = s3.get_bucket_versioning(Bucket=aggregator_env.source_bucket)
    assert versioning.get("Status") is None
    table = dynamodb.describe_table(TableName=aggregator_env.table_name)["Table"]
    assert table.get("KeySchema") == [{"AttributeName": "object_key", "KeyType": "HASH"}]
    ttl = dynamodb.describe_time_to_live(TableName=aggregator_env.table_name)
    assert ttl["TimeToLiveDescription"].get("AttributeName") == "expiration"
    assert aggregator_env.config.distribution_bucket_name == aggregator_env.destination_bucket
    assert aggregator_env.config.idempotency_table_name == aggregator_env.table_name
    environ = aggregator_env.environ
    assert environ["AWS_ENDPOINT_URL_S3"] == aggregator_env.s3_endpoint_url
    dynamodb_url = aggregator_env.dynamodb_endpoint_url or aggregator_env.endpoint_url
    assert environ["AWS_ENDPOINT_URL_DYNAMODB"] == dynamodb_url
    shared = dynamodb_url == aggregator_env.endpoint_url
    assert environ.get("AWS_ENDPOINT_URL") == (aggregator_env.endpoint_url if shared else None)


@pytest.mark.parametrize("aggregator_env", [{"versioned_source": True}], indirect=True)
def test_aggregator_env_versioned_source(aggregator_env: AggregatorEnv) -> None:
    """``versioned_source=True`` turns on versioning on the source bucket."""
    versioning = aggregator_env.s3.get_bucket_versioning(Bucket=aggregator_env.source_bucket)
    assert versioning.get("Status") == "Enabled"
