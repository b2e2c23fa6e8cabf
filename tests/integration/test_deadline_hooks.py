"""The clients' deadline hooks over real HTTP, through a FaultProxy in front of the servers.

Assertions are on outcomes (which error, its context) and on the proxy's counters (how
many requests reached it), never on elapsed time: a request refused before it is sent
never reaches the proxy, and a retry refused because its backoff would outlast the
deadline is never counted.
"""

from __future__ import annotations

import os
import threading
import time
from typing import TYPE_CHECKING, Any

import pytest
from botocore.exceptions import ReadTimeoutError

from data_aggregator import _deadline
from data_aggregator.clients import MultipartWriter, S3Client, add_deadline_hooks
from data_aggregator.exceptions import DeadlineExceededError, IdempotencyStoreError
from data_aggregator.idempotency import DynamoDBIdempotencyStore
from data_aggregator.testing.pytest_plugin import make_aws_client

if TYPE_CHECKING:
    from collections.abc import Callable

    from data_aggregator.testing import FaultProxy
    from data_aggregator.testing.pytest_plugin import AggregatorEnv, AwsBackend

pytestmark = pytest.mark.integration

MIB = 1024 * 1024
EXPIRED = _deadline.Deadline(lambda: -1.0)


def _client(service: str, endpoint: str, mode: str = "standard", **config: Any) -> Any:
    return make_aws_client(
        service, endpoint, retries={"mode": mode, "total_max_attempts": 5}, **config
    )


@pytest.fixture
def s3_proxy(aws_backend: AwsBackend, make_fault_proxy: Callable[..., FaultProxy]) -> FaultProxy:
    return make_fault_proxy(aws_backend.s3_endpoint_url)


@pytest.fixture
def ddb_proxy(aws_backend: AwsBackend, make_fault_proxy: Callable[..., FaultProxy]) -> FaultProxy:
    return make_fault_proxy(aws_backend.dynamodb_endpoint_url)


@pytest.fixture
def bucket(aggregator_env: AggregatorEnv) -> str:
    aggregator_env.s3.put_object(Bucket=aggregator_env.source_bucket, Key="k", Body=b"payload")
    return aggregator_env.source_bucket


@pytest.fixture
def default_s3(s3_proxy: FaultProxy, monkeypatch: pytest.MonkeyPatch) -> S3Client:
    """The library's default client (built by S3Client itself), pointed at the proxy."""
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3_proxy.endpoint_url)
    monkeypatch.delenv("AWS_ENDPOINT_URL_S3", raising=False)
    return S3Client()


# --------------------------------------------------------------------------- S3


@pytest.mark.parametrize("built", ["default client", "injected client"])
def test_nothing_is_sent_once_the_deadline_has_passed(
    built: str, s3_proxy: FaultProxy, default_s3: S3Client, bucket: str
) -> None:
    """Reads and writes fail with DeadlineExceededError, unwrapped, and reach no server."""
    s3 = default_s3 if built == "default client" else S3Client(_client("s3", s3_proxy.endpoint_url))
    calls: list[tuple[str, Callable[[], object]]] = [
        ("GetObject", lambda: s3.open_object(bucket, "k")),
        ("HeadObject", lambda: s3.head_object(bucket, "k")),
        ("PutObject", lambda: s3.put_object(bucket, "new", b"data")),
        ("ListObjectsV2", lambda: list(s3.iter_objects(bucket))),
    ]
    with _deadline.scope(EXPIRED):
        for operation, call in calls:
            with pytest.raises(DeadlineExceededError) as caught:
                call()
            assert caught.value.context["operation"] == operation
            assert caught.value.retryable
    assert s3_proxy.counts() == {}
    # Outside the deadline's scope, the same client works.
    assert s3.open_object(bucket, "k").body.read() == b"payload"
    assert s3_proxy.forwarded("s3", "GetObject") == 1


@pytest.mark.parametrize("mode", ["standard", "adaptive", "legacy"])
def test_no_retry_after_a_timeout_past_the_deadline(
    mode: str, s3_proxy: FaultProxy, bucket: str
) -> None:
    """A stalled GET times out after the deadline: botocore would retry, the hook refuses."""
    s3 = S3Client(_client("s3", s3_proxy.endpoint_url, mode, read_timeout=1.0))
    s3_proxy.add_fault("s3", "GetObject", kind="stall", stall_seconds=30)
    with (
        _deadline.scope(_deadline.Deadline.after(0.5)),
        pytest.raises(DeadlineExceededError) as caught,
    ):
        s3.open_object(bucket, "k")
    error = caught.value
    assert error.context["operation"] == "GetObject"
    assert error.context["attempts"] == 1
    assert error.context["last_error"] == "ReadTimeoutError"
    assert isinstance(error.__cause__, ReadTimeoutError)
    assert s3_proxy.received("s3", "GetObject") == 1  # the stalled attempt, no retry


def test_the_default_client_waits_for_an_answer_no_longer_than_the_time_left(
    s3_proxy: FaultProxy, default_s3: S3Client, bucket: str
) -> None:
    """The default client's read timeout is 60 s; a GET answered after 10 s (a stall,
    then forwarded) with 3 s left: the attempt's read timeout is cut to the time left, so
    it times out at the deadline instead of waiting for the answer, and its retry is
    refused."""
    s3_proxy.add_fault("s3", "GetObject", kind="stall", stall_seconds=10, after_stall="forward")
    with (
        _deadline.scope(_deadline.Deadline.after(3.0)),
        pytest.raises(DeadlineExceededError) as caught,
    ):
        default_s3.open_object(bucket, "k")  # without the cut: the object, after 10 s
    assert caught.value.context["operation"] == "GetObject"
    assert caught.value.context["last_error"] == "ReadTimeoutError"
    assert isinstance(caught.value.__cause__, ReadTimeoutError)
    assert s3_proxy.received("s3", "GetObject") == 1


@pytest.mark.parametrize("mode", ["standard", "adaptive"])
def test_no_retry_whose_backoff_would_end_past_the_deadline(
    mode: str, s3_proxy: FaultProxy, bucket: str
) -> None:
    """SlowDown with a 30 s retry-after (botocore then waits at least 5 s) and 4.5 s
    left (the answer's read timeout too): the retry is refused, not slept for."""
    s3 = S3Client(_client("s3", s3_proxy.endpoint_url, mode))
    s3_proxy.add_fault("s3", "GetObject", retry_after_ms=30_000)
    with (
        _deadline.scope(_deadline.Deadline.after(4.5)),
        pytest.raises(DeadlineExceededError) as caught,
    ):
        s3.open_object(bucket, "k")
    assert caught.value.context["last_error"] == "SlowDown"
    assert caught.value.context["retry_delay_seconds"] >= 5
    assert s3_proxy.received("s3", "GetObject") == 1


def test_retries_that_fit_go_ahead(s3_proxy: FaultProxy, bucket: str) -> None:
    """With time left, a throttled GET is retried as usual and succeeds."""
    s3 = S3Client(_client("s3", s3_proxy.endpoint_url))
    s3_proxy.add_fault("s3", "GetObject", max_faults=2)
    with _deadline.scope(_deadline.Deadline.after(600)):
        assert s3.open_object(bucket, "k").body.read() == b"payload"
    assert s3_proxy.counts()["s3", "GetObject"].faulted == 2
    assert s3_proxy.forwarded("s3", "GetObject") == 1


def test_hooks_are_added_once(s3_proxy: FaultProxy, bucket: str) -> None:
    """Wrapping a client twice (or adding the hooks again) changes nothing."""
    raw = _client("s3", s3_proxy.endpoint_url)
    S3Client(raw)
    add_deadline_hooks(raw)
    s3 = S3Client(raw)
    s3_proxy.add_fault("s3", "GetObject", max_faults=1)
    with _deadline.scope(_deadline.Deadline.after(600)):
        assert s3.open_object(bucket, "k").body.read() == b"payload"
    with _deadline.scope(EXPIRED), pytest.raises(DeadlineExceededError):
        s3.open_object(bucket, "k")
    assert s3_proxy.received("s3", "GetObject") == 2


def test_part_uploads_see_the_writers_deadline(s3_proxy: FaultProxy, bucket: str) -> None:
    """The deadline goes with each part into the upload pool: a deadline that has passed
    for the pool's threads only (alive in this one) stops every UploadPart there."""
    this_thread = threading.current_thread()
    alive_here_only = _deadline.Deadline(
        lambda: 600.0 if threading.current_thread() is this_thread else -1.0
    )
    s3 = S3Client(_client("s3", s3_proxy.endpoint_url))
    writer = MultipartWriter(s3, bucket, "big", part_size=5 * MIB, max_concurrency=2)
    with (
        _deadline.scope(alive_here_only),
        pytest.raises(DeadlineExceededError) as caught,
        writer,
    ):
        writer.write(os.urandom(12 * MIB))
    assert caught.value.context["operation"] == "UploadPart"
    counts = s3_proxy.counts()
    assert counts["s3", "CreateMultipartUpload"].forwarded == 1
    assert ("s3", "UploadPart") not in counts
    assert counts["s3", "AbortMultipartUpload"].forwarded == 1


# --------------------------------------------------------------------------- DynamoDB


def _store(aggregator_env: AggregatorEnv, proxy: FaultProxy, **options: Any) -> Any:
    # One worker: the keys are written in this thread, under its deadline (the store's
    # pool does not carry the deadline into its threads yet).
    client = options.pop("client", None) or _client("dynamodb", proxy.endpoint_url)
    return DynamoDBIdempotencyStore(
        aggregator_env.table_name, client=client, max_workers=1, **options
    )


def test_the_store_fails_each_key_once_the_deadline_has_passed(
    aggregator_env: AggregatorEnv, ddb_proxy: FaultProxy
) -> None:
    """Past the deadline, every key's claim is a retryable DEADLINE_EXCEEDED store error
    and no request reaches DynamoDB; a read raises the same error."""
    store = _store(aggregator_env, ddb_proxy)
    with _deadline.scope(EXPIRED):
        results = store.claim(["a", "b", "c"], owner="o", lease_expires_at=time.time() + 60)
        with pytest.raises(IdempotencyStoreError) as caught:
            store.get("a")
    for result in results.values():
        assert isinstance(result.error, IdempotencyStoreError)
        assert result.error.error_code == "DEADLINE_EXCEEDED"
        assert result.error.retryable
        assert isinstance(result.error.__cause__, DeadlineExceededError)
    assert caught.value.error_code == "DEADLINE_EXCEEDED"
    assert ddb_proxy.counts() == {}


def test_the_store_does_not_retry_past_the_deadline(
    aggregator_env: AggregatorEnv, ddb_proxy: FaultProxy
) -> None:
    """A write throttled with a 30 s retry-after and 4.5 s left (the answer's read
    timeout too): botocore's retry is refused, the key fails DEADLINE_EXCEEDED, the store
    does not try again either."""
    store = _store(aggregator_env, ddb_proxy)
    ddb_proxy.add_fault("dynamodb", "PutItem", retry_after_ms=30_000)
    ddb_proxy.add_fault("dynamodb", "UpdateItem", retry_after_ms=30_000)
    with _deadline.scope(_deadline.Deadline.after(4.5)):
        results = store.claim(["a"], owner="o", lease_expires_at=time.time() + 60)
    error = results["a"].error
    assert isinstance(error, IdempotencyStoreError)
    assert error.error_code == "DEADLINE_EXCEEDED"
    assert error.context["last_error"] == "ProvisionedThroughputExceededException"
    assert ddb_proxy.received("dynamodb") == 1


def test_the_stores_own_backoff_stops_at_the_deadline(
    aggregator_env: AggregatorEnv, ddb_proxy: FaultProxy
) -> None:
    """The store's own retry loop (botocore retries off): the first read is sent in time,
    then the deadline has passed before its backoff: no second request."""
    no_botocore_retries = make_aws_client(
        "dynamodb",
        ddb_proxy.endpoint_url,
        retries={"mode": "standard", "total_max_attempts": 1},
    )
    store = _store(aggregator_env, ddb_proxy, client=no_botocore_retries, max_retries=4)
    ddb_proxy.add_fault("dynamodb", "GetItem")
    left = iter([60.0])  # the first look (before sending) finds time; every later one none
    deadline = _deadline.Deadline(lambda: next(left, 0.0))
    with _deadline.scope(deadline), pytest.raises(IdempotencyStoreError) as caught:
        store.get("a")
    assert caught.value.error_code == "DEADLINE_EXCEEDED"
    assert caught.value.context["last_error"] == "ProvisionedThroughputExceededException"
    assert ddb_proxy.received("dynamodb", "GetItem") == 1
