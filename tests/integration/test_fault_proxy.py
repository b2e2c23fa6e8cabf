"""FaultProxy over real HTTP, in front of the session's S3 and DynamoDB servers.

boto3 talks to the proxy exactly as to the server; the assertions are on what boto3 and
the library see (errors, bodies) and on the proxy's counters, never on elapsed time.
"""

from __future__ import annotations

import hashlib
import io
import os
import time
import uuid
from typing import TYPE_CHECKING, Any

import pytest
from boto3.s3.transfer import TransferConfig
from botocore.exceptions import ClientError, ConnectionClosedError, ReadTimeoutError

from data_aggregator.clients import S3Client
from data_aggregator.exceptions import S3ThrottlingError
from data_aggregator.idempotency import DynamoDBIdempotencyStore
from data_aggregator.testing.pytest_plugin import make_aws_client

if TYPE_CHECKING:
    from collections.abc import Callable

    from data_aggregator.testing import FaultProxy
    from data_aggregator.testing.pytest_plugin import AggregatorEnv, AwsBackend

pytestmark = pytest.mark.integration

MIB = 1024 * 1024


def _no_retry(service: str, endpoint: str, **config: Any) -> Any:
    return make_aws_client(
        service, endpoint, retries={"mode": "standard", "total_max_attempts": 1}, **config
    )


@pytest.fixture
def s3_proxy(aws_backend: AwsBackend, make_fault_proxy: Callable[..., FaultProxy]) -> FaultProxy:
    return make_fault_proxy(aws_backend.s3_endpoint_url, seed=7)


@pytest.fixture
def bucket(aggregator_env: AggregatorEnv) -> str:
    return aggregator_env.source_bucket


def test_large_bodies_stream_through_intact(s3_proxy: FaultProxy, bucket: str) -> None:
    """A 20 MiB PutObject, a multipart upload and their GETs keep every byte; HEAD works."""
    s3 = _no_retry("s3", s3_proxy.endpoint_url)
    data = os.urandom(20 * MIB)
    digest = hashlib.sha256(data).hexdigest()
    s3.put_object(Bucket=bucket, Key="single", Body=data)
    s3.upload_fileobj(
        io.BytesIO(data),
        bucket,
        "multi",
        Config=TransferConfig(multipart_threshold=8 * MIB, multipart_chunksize=8 * MIB),
    )
    for key in ("single", "multi"):
        body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
        assert hashlib.sha256(body).hexdigest() == digest
        assert s3.head_object(Bucket=bucket, Key=key)["ContentLength"] == len(data)
    counts = s3_proxy.counts()
    assert counts["s3", "PutObject"].forwarded == 1
    assert counts["s3", "UploadPart"].forwarded == 3
    assert counts["s3", "CompleteMultipartUpload"].forwarded == 1
    assert counts["s3", "GetObject"].forwarded == 2
    assert counts["s3", "HeadObject"].forwarded == 2
    assert s3_proxy.faulted("s3") == 0


def test_a_fraction_of_gets_is_answered_slowdown(s3_proxy: FaultProxy, bucket: str) -> None:
    """20% of GetObject fail as 503 SlowDown; boto3 sees each fault, the counters add up."""
    s3 = _no_retry("s3", s3_proxy.endpoint_url)
    s3.put_object(Bucket=bucket, Key="k", Body=b"payload")
    s3.put_object(Bucket=bucket, Key="other", Body=b"x")
    s3_proxy.add_fault("s3", "GetObject", fraction=0.2, key_prefix="k")
    seen: list[ClientError] = []
    for _ in range(200):
        try:
            assert s3.get_object(Bucket=bucket, Key="k")["Body"].read() == b"payload"
        except ClientError as exc:
            seen.append(exc)
    assert s3.get_object(Bucket=bucket, Key="other")["Body"].read() == b"x"  # not matched
    assert s3.head_object(Bucket=bucket, Key="k")["ContentLength"] == 7  # not matched

    faulted = s3_proxy.faulted("s3", "GetObject")
    assert len(seen) == faulted
    assert 20 <= faulted <= 60  # Binomial(200, 0.2): 40 +- 3.5 standard deviations
    assert {e.response["Error"]["Code"] for e in seen} == {"SlowDown"}
    assert {e.response["ResponseMetadata"]["HTTPStatusCode"] for e in seen} == {503}
    counts = s3_proxy.counts()["s3", "GetObject"]
    assert counts.received == 201
    assert counts.forwarded == 201 - faulted


def test_the_library_sees_a_slowdown_as_throttling(s3_proxy: FaultProxy, bucket: str) -> None:
    s3 = S3Client(_no_retry("s3", s3_proxy.endpoint_url))
    s3.put_object(bucket, "k", b"payload")
    s3_proxy.add_fault("s3", "GetObject")
    with pytest.raises(S3ThrottlingError) as caught:
        s3.open_object(bucket, "k")
    assert caught.value.context["aws_error_code"] == "SlowDown"


def test_table_writes_are_answered_provisioned_throughput_exceeded(
    aws_backend: AwsBackend,
    make_fault_proxy: Callable[..., FaultProxy],
    aggregator_env: AggregatorEnv,
) -> None:
    """The first two PutItem fail as ProvisionedThroughputExceededException (with the
    retry-after header asked for), then the rule is spent."""
    proxy = make_fault_proxy(aws_backend.dynamodb_endpoint_url)
    dynamodb = _no_retry("dynamodb", proxy.endpoint_url)
    table = aggregator_env.table_name
    proxy.add_fault("dynamodb", "PutItem", max_faults=2, retry_after_ms=250)
    item = {"object_key": {"S": f"k-{uuid.uuid4().hex}"}}
    codes, retry_after = [], []
    for _ in range(3):
        try:
            dynamodb.put_item(TableName=table, Item=item)
        except ClientError as exc:
            codes.append(exc.response["Error"]["Code"])
            retry_after.append(exc.response["ResponseMetadata"]["HTTPHeaders"]["x-amz-retry-after"])
    dynamodb.update_item(
        TableName=table,
        Key=item,
        UpdateExpression="SET #n = :v",
        ExpressionAttributeNames={"#n": "note"},
        ExpressionAttributeValues={":v": {"S": "x"}},
    )
    assert codes == ["ProvisionedThroughputExceededException"] * 2
    assert retry_after == ["250"] * 2
    assert proxy.counts()["dynamodb", "PutItem"].faulted == 2
    assert proxy.forwarded("dynamodb", "PutItem") == 1
    assert proxy.forwarded("dynamodb", "UpdateItem") == 1
    assert proxy.faulted("dynamodb", "UpdateItem") == 0


def test_a_throttled_store_reports_the_keys_throttled(
    aws_backend: AwsBackend,
    make_fault_proxy: Callable[..., FaultProxy],
    aggregator_env: AggregatorEnv,
) -> None:
    """Every claim throttled: the store retries, then fails those keys as throttled."""
    proxy = make_fault_proxy(aws_backend.dynamodb_endpoint_url)
    proxy.add_fault("dynamodb", "PutItem")
    proxy.add_fault("dynamodb", "UpdateItem")
    store = DynamoDBIdempotencyStore(
        aggregator_env.table_name,
        client=_no_retry("dynamodb", proxy.endpoint_url),
        max_retries=2,
        sleep=lambda _: None,
    )
    results = store.claim(["a", "b"], owner="o", lease_expires_at=time.time() + 60)
    assert [r.error.error_code if r.error else None for r in results.values()] == [
        "IDEMPOTENCY_THROTTLED"
    ] * 2
    assert proxy.forwarded("dynamodb") == 0
    assert proxy.faulted("dynamodb") == 2 * 3  # two keys, three attempts each


def test_latency_and_stalls_hold_requests(s3_proxy: FaultProxy, bucket: str) -> None:
    """Latency or a stall longer than the read timeout times the client out; a stall that
    closes drops the connection; a short stall that forwards answers normally."""
    s3 = _no_retry("s3", s3_proxy.endpoint_url)
    s3.put_object(Bucket=bucket, Key="k", Body=b"payload")
    impatient = _no_retry("s3", s3_proxy.endpoint_url, read_timeout=0.3)
    assert impatient.get_object(Bucket=bucket, Key="k")["Body"].read() == b"payload"

    s3_proxy.latency = 3.0
    with pytest.raises(ReadTimeoutError):
        impatient.get_object(Bucket=bucket, Key="k")
    s3_proxy.latency = 0.0

    rule = s3_proxy.add_fault("s3", "GetObject", kind="stall", stall_seconds=3.0)
    with pytest.raises(ReadTimeoutError):
        impatient.get_object(Bucket=bucket, Key="k")
    s3_proxy.remove_fault(rule)

    rule = s3_proxy.add_fault("s3", "GetObject", kind="stall", after_stall="close")
    with pytest.raises(ConnectionClosedError):
        s3.get_object(Bucket=bucket, Key="k")
    s3_proxy.remove_fault(rule)

    s3_proxy.add_fault("s3", "GetObject", kind="stall", stall_seconds=0.05, after_stall="forward")
    assert s3.get_object(Bucket=bucket, Key="k")["Body"].read() == b"payload"
    counts = s3_proxy.counts()["s3", "GetObject"]
    # The request held by latency is forwarded once its 3 s are over, whenever that is.
    assert (counts.received, counts.faulted) == (5, 3)


def test_stop_ends_a_stalled_request(s3_proxy: FaultProxy, bucket: str) -> None:
    """stop() does not wait for a stall to end: the client's connection is closed."""
    import threading

    s3 = _no_retry("s3", s3_proxy.endpoint_url)
    s3.put_object(Bucket=bucket, Key="k", Body=b"payload")
    s3_proxy.add_fault("s3", "GetObject", kind="stall", stall_seconds=600)
    errors: list[BaseException] = []

    def get() -> None:
        try:
            s3.get_object(Bucket=bucket, Key="k")
        except Exception as exc:  # noqa: BLE001 - recorded for the assertion
            errors.append(exc)

    worker = threading.Thread(target=get)
    worker.start()
    while s3_proxy.received("s3", "GetObject") == 0:
        worker.join(0.01)
    s3_proxy.stop()
    worker.join(30)
    assert not worker.is_alive()
    assert len(errors) == 1
    assert isinstance(errors[0], ConnectionClosedError)
