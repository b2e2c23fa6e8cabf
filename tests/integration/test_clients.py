"""S3Client against moto's server over HTTP: reads, listings, writes, typed errors."""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING, Any, cast

import pytest
from botocore.exceptions import (
    ConnectionClosedError,
    ConnectTimeoutError,
    EndpointConnectionError,
    ReadTimeoutError,
)
from urllib3.exceptions import ProtocolError
from urllib3.exceptions import ReadTimeoutError as Urllib3ReadTimeoutError

from data_aggregator.clients import ALLOWED_UPLOAD_ARGS, S3Client, connection_pool_size
from data_aggregator.config import AppConfig
from data_aggregator.exceptions import (
    S3AccessDeniedError,
    S3Error,
    S3ObjectNotFoundError,
    S3ObjectSupersededError,
    S3ServiceError,
    S3ThrottlingError,
    S3TimeoutError,
    TransientError,
    ValidationError,
)
from tests.integration._s3_hooks import (
    RequestLog,
    error_response,
    fake_response,
    inject,
    no_retry_client,
)
from tests.integration.conftest import seed_objects

if TYPE_CHECKING:
    from collections.abc import Callable

    from botocore.awsrequest import AWSPreparedRequest, AWSResponse
    from mypy_boto3_s3 import S3Client as Boto3S3Client

    from data_aggregator.testing.pytest_plugin import AwsBackend

pytestmark = pytest.mark.integration

OWNER = "123456789012"  # moto's default account
KMS_KEY = "arn:aws:kms:us-east-1:123456789012:key/11111111-2222-3333-4444-555555555555"
ODD_KEYS = [
    "red flower.jpg",
    "a+b.txt",
    "100%.csv",
    "%2B already-encoded.txt",
    "dir/sub dir/ünïcødé ✓.json",
    "日本語/ファイル.txt",
    "trailing space ",
    "q?x=1&y=2#frag",
]


@pytest.fixture
def boto(s3_endpoint: str) -> Boto3S3Client:
    """A raw boto3 client without retries (injected faults surface on the first attempt)."""
    return no_retry_client(s3_endpoint)


@pytest.fixture
def s3(boto: Boto3S3Client) -> S3Client:
    """The library's client over ``boto``."""
    return S3Client(boto)


def _put(boto: Boto3S3Client, bucket: str, key: str, body: bytes = b"payload") -> str:
    return boto.put_object(Bucket=bucket, Key=key, Body=body)["ETag"]


# --------------------------------------------------------------------------- reads


def test_open_object_by_key_returns_typed_object(
    s3: S3Client, boto: Boto3S3Client, make_bucket: Callable[..., str]
) -> None:
    """open_object returns the body plus length, unquoted ETag and last-modified."""
    bucket = make_bucket()
    etag = _put(boto, bucket, "k.txt", b"hello world")
    with s3.open_object(bucket, "k.txt") as obj:
        assert obj.body.read() == b"hello world"
        assert obj.body.bytes_read == 11
    assert obj.content_length == 11
    assert obj.etag == etag.strip('"')
    assert obj.last_modified is not None
    assert obj.body.closed


@pytest.mark.parametrize("key", ODD_KEYS)
def test_keys_with_special_characters_are_fetched_exactly(
    s3: S3Client, boto: Boto3S3Client, make_bucket: Callable[..., str], key: str
) -> None:
    """Keys with spaces, '+', '%', query characters and Unicode are fetched verbatim."""
    bucket = make_bucket()
    _put(boto, bucket, key, key.encode())
    with s3.open_object(bucket, key) as obj:
        assert obj.body.read() == key.encode()
    assert [entry.key for entry in s3.iter_objects(bucket)] == [key]


def test_open_object_by_version_reads_that_version(
    s3: S3Client, boto: Boto3S3Client, make_bucket: Callable[..., str]
) -> None:
    """A version id reads the announced version even after the key was overwritten."""
    bucket = make_bucket(versioned=True)
    first = boto.put_object(Bucket=bucket, Key="k", Body=b"v1")["VersionId"]
    boto.put_object(Bucket=bucket, Key="k", Body=b"v2")
    with s3.open_object(bucket, "k", version_id=first) as obj:
        assert obj.body.read() == b"v1"
        assert obj.version_id == first


@pytest.mark.parametrize("quoted", [True, False])
def test_if_match_with_current_etag_succeeds(
    s3: S3Client, boto: Boto3S3Client, make_bucket: Callable[..., str], quoted: bool
) -> None:
    """if_match accepts the ETag quoted (as S3 returns it) or bare (as events carry it)."""
    bucket = make_bucket()
    etag = _put(boto, bucket, "k")
    with s3.open_object(bucket, "k", if_match=etag if quoted else etag.strip('"')) as obj:
        assert obj.body.read() == b"payload"


def test_if_match_mismatch_raises_superseded(
    s3: S3Client, boto: Boto3S3Client, make_bucket: Callable[..., str]
) -> None:
    """An object overwritten since the event (ETag differs) raises S3ObjectSupersededError."""
    bucket = make_bucket()
    old = _put(boto, bucket, "k", b"old")
    _put(boto, bucket, "k", b"new")
    with pytest.raises(S3ObjectSupersededError) as caught:
        s3.open_object(bucket, "k", if_match=old)
    assert caught.value.context["http_status"] == 412
    with pytest.raises(S3ObjectSupersededError):
        s3.head_object(bucket, "k", if_match=old)


def test_deleted_object_raises_not_found(
    s3: S3Client, boto: Boto3S3Client, make_bucket: Callable[..., str]
) -> None:
    """A deleted key raises S3ObjectNotFoundError (GET and HEAD) with bucket/key/operation."""
    bucket = make_bucket()
    _put(boto, bucket, "gone")
    boto.delete_object(Bucket=bucket, Key="gone")
    with pytest.raises(S3ObjectNotFoundError) as caught:
        s3.open_object(bucket, "gone")
    assert (
        caught.value.context.items()
        >= {
            "bucket": bucket,
            "key": "gone",
            "operation": "GetObject",
        }.items()
    )
    assert not caught.value.retryable
    with pytest.raises(S3ObjectNotFoundError):
        s3.head_object(bucket, "gone")


def test_delete_marker_version_raises_not_found(
    s3: S3Client, boto: Boto3S3Client, make_bucket: Callable[..., str]
) -> None:
    """A version id naming a delete marker (HTTP 405) or a missing version is not found."""
    bucket = make_bucket(versioned=True)
    _put(boto, bucket, "k")
    marker = boto.delete_object(Bucket=bucket, Key="k")["VersionId"]
    with pytest.raises(S3ObjectNotFoundError):
        s3.head_object(bucket, "k", version_id=marker)
    with pytest.raises(S3ObjectNotFoundError):
        s3.open_object(bucket, "k", version_id=marker)
    with pytest.raises(S3ObjectNotFoundError):
        s3.open_object(bucket, "k", version_id="no-such-version")


def test_missing_bucket_is_not_mistaken_for_a_deleted_object(s3: S3Client) -> None:
    """NoSuchBucket is a plain S3Error (a configuration problem), not object-not-found."""
    with pytest.raises(S3Error) as caught:
        s3.open_object("no-such-bucket-for-this-test", "k")
    assert not isinstance(caught.value, S3ObjectNotFoundError)
    assert caught.value.error_code == "S3_NO_SUCH_BUCKET"


def test_head_object_describes_the_object(
    s3: S3Client, boto: Boto3S3Client, make_bucket: Callable[..., str]
) -> None:
    """head_object reports length, ETag, content type, metadata and (on request) checksum."""
    bucket = make_bucket()
    boto.put_object(
        Bucket=bucket,
        Key="k",
        Body=b"abc",
        ContentType="text/plain",
        Metadata={"a": "1"},
        ChecksumAlgorithm="SHA256",
    )
    info = s3.head_object(bucket, "k", checksum_mode=True)
    assert (info.content_length, info.content_type, dict(info.metadata)) == (
        3,
        "text/plain",
        {"a": "1"},
    )
    assert info.etag == hashlib.md5(b"abc").hexdigest()  # noqa: S324 - S3's ETag is an MD5
    assert info.checksum_sha256 is not None


def test_list_prefix_paginates_past_one_thousand_keys(
    s3: S3Client, boto: Boto3S3Client, make_bucket: Callable[..., str], aws_backend: AwsBackend
) -> None:
    """iter_objects follows continuation tokens: 1,005 keys arrive in order, nothing else."""
    bucket = make_bucket()
    keys = [f"in/{i:05d}" for i in range(1005)]
    seed_objects(aws_backend, boto, bucket, dict.fromkeys(keys, b""))
    _put(boto, bucket, "out/x")
    log = RequestLog().attach(boto)
    entries = list(s3.iter_objects(bucket, "in/"))
    assert [e.key for e in entries] == keys
    assert all(e.size == 0 and e.etag and e.last_modified for e in entries)
    assert log.operations() == ["ListObjectsV2", "ListObjectsV2"]


def test_list_with_small_pages_and_start_after(
    s3: S3Client, boto: Boto3S3Client, make_bucket: Callable[..., str]
) -> None:
    """page_size and start_after are honoured; the iterator is lazy across pages."""
    bucket = make_bucket()
    for i in range(7):
        _put(boto, bucket, f"p/{i}", b"x" * i)
    log = RequestLog().attach(boto)
    entries = s3.iter_objects(bucket, "p/", start_after="p/1", page_size=2)
    first = next(entries)
    assert first.key == "p/2"
    assert first.size == 2
    assert len(log.sent) == 1
    assert [e.key for e in entries] == ["p/3", "p/4", "p/5", "p/6"]
    assert len(log.sent) == 3


# --------------------------------------------------------------------------- error mapping


def _raiser(exc: Exception) -> Callable[[AWSPreparedRequest], AWSResponse | None]:
    def _fault(request: AWSPreparedRequest) -> AWSResponse | None:
        raise exc

    return _fault


def _answer(
    status: int, code: str | None = None
) -> Callable[[AWSPreparedRequest], AWSResponse | None]:
    return lambda request: error_response(request, status, code)


FAULTS: list[tuple[str, Callable[[AWSPreparedRequest], AWSResponse | None], type[S3Error]]] = [
    ("slowdown-503", _answer(503, "SlowDown"), S3ThrottlingError),
    ("throttling-400", _answer(400, "Throttling"), S3ThrottlingError),
    ("bare-503", _answer(503), S3ThrottlingError),
    ("internal-500", _answer(500, "InternalError"), S3ServiceError),
    ("bad-gateway-502", _answer(502), S3ServiceError),
    ("request-timeout-400", _answer(400, "RequestTimeout"), S3TimeoutError),
    ("access-denied-403", _answer(403, "AccessDenied"), S3AccessDeniedError),
    ("read-timeout", _raiser(ReadTimeoutError(endpoint_url="http://s3")), S3TimeoutError),
    ("connect-timeout", _raiser(ConnectTimeoutError(endpoint_url="http://s3")), S3TimeoutError),
    (
        "endpoint-connection",
        _raiser(EndpointConnectionError(endpoint_url="http://s3")),
        S3ServiceError,
    ),
    (
        "connection-reset",
        _raiser(ConnectionClosedError(endpoint_url="http://s3")),
        S3ServiceError,
    ),
    ("socket-reset", _raiser(ConnectionResetError(104, "reset")), S3ServiceError),
]


# Every fault on GetObject; a throttling, a 5xx and a timeout on HEAD and LIST.
FAULT_CASES = [
    pytest.param(("GetObject", fault, expected), id=f"GetObject-{name}")
    for name, fault, expected in FAULTS
] + [
    pytest.param((operation, fault, expected), id=f"{operation}-{name}")
    for operation in ("HeadObject", "ListObjectsV2")
    for name, fault, expected in FAULTS
    if name in {"slowdown-503", "internal-500", "read-timeout"}
]


@pytest.mark.parametrize("case", FAULT_CASES)
def test_injected_faults_map_to_typed_errors(
    s3: S3Client,
    boto: Boto3S3Client,
    make_bucket: Callable[..., str],
    case: tuple[str, Callable[[AWSPreparedRequest], AWSResponse | None], type[S3Error]],
) -> None:
    """Each throttling / 5xx / timeout / connection / denial maps to its typed error."""
    operation, fault, expected = case
    bucket = make_bucket()
    _put(boto, bucket, "k")
    inject(boto, operation, fault)
    calls: dict[str, Callable[[], Any]] = {
        "GetObject": lambda: s3.open_object(bucket, "k"),
        "HeadObject": lambda: s3.head_object(bucket, "k"),
        "ListObjectsV2": lambda: list(s3.iter_objects(bucket, "k")),
    }
    with pytest.raises(expected) as caught:
        calls[operation]()
    error = caught.value
    assert type(error) is expected
    assert error.context["bucket"] == bucket
    assert error.context["operation"] == operation
    assert error.retryable is (expected is not S3AccessDeniedError)
    assert isinstance(error, TransientError) is error.retryable
    assert "body" not in error.to_dict()["context"]


def test_timeout_error_reports_the_configured_timeout(
    s3_endpoint: str, make_bucket: Callable[..., str]
) -> None:
    """S3TimeoutError carries the client's read timeout in seconds."""
    boto = no_retry_client(s3_endpoint, read_timeout=7)
    s3 = S3Client(boto)
    bucket = make_bucket()
    inject(boto, "HeadObject", _raiser(ReadTimeoutError(endpoint_url="http://s3")))
    with pytest.raises(S3TimeoutError) as caught:
        s3.head_object(bucket, "k")
    assert caught.value.timeout_seconds == 7.0
    assert caught.value.context["key"] == "k"


class _BrokenRaw:
    """A response body whose socket fails after the first chunk."""

    def __init__(self, error: Exception) -> None:
        self._error = error
        self._sent = False

    def stream(self, **_: Any) -> Any:  # pragma: no cover - streaming bodies use read()
        raise self._error

    def read(self, amt: int | None = None) -> bytes:
        if not self._sent:
            self._sent = True
            return b"partial"
        raise self._error

    def readinto(self, buffer: Any) -> int:
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def close(self) -> None:
        pass


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (ProtocolError("Connection broken", ConnectionResetError(104, "reset")), S3ServiceError),
        (Urllib3ReadTimeoutError(cast("Any", None), "http://s3", "timed out"), S3TimeoutError),
    ],
    ids=["protocol-error", "read-timeout"],
)
def test_errors_while_reading_the_body_are_typed_and_retryable(
    s3: S3Client,
    boto: Boto3S3Client,
    make_bucket: Callable[..., str],
    error: Exception,
    expected: type[S3Error],
) -> None:
    """A connection dying mid-body raises a retryable typed error from body.read()."""
    bucket = make_bucket()

    def _fault(request: AWSPreparedRequest) -> AWSResponse:
        headers = {"content-length": "1000", "etag": '"abc"'}
        return fake_response(request, 200, headers, _BrokenRaw(error))

    inject(boto, "GetObject", _fault)
    with s3.open_object(bucket, "k") as obj:
        assert obj.body.read(7) == b"partial"
        with pytest.raises(expected) as caught:
            obj.body.read(100)
    assert caught.value.retryable
    assert caught.value.context["phase"] == "read_body"
    assert caught.value.context["bytes_read"] == 7


def test_truncated_body_raises_retryable_error(
    s3: S3Client, boto: Boto3S3Client, make_bucket: Callable[..., str]
) -> None:
    """A body shorter than its Content-Length (IncompleteReadError) is a retryable error."""
    import io

    bucket = make_bucket()

    def _fault(request: AWSPreparedRequest) -> AWSResponse:
        return fake_response(request, 200, {"content-length": "10"}, io.BytesIO(b"short"))

    inject(boto, "GetObject", _fault)
    with s3.open_object(bucket, "k") as obj, pytest.raises(S3ServiceError) as caught:
        obj.body.read()
    assert caught.value.error_code == "S3_STREAM_ERROR"


# --------------------------------------------------------------------------- owner, KMS, args


def test_expected_owner_and_kms_are_sent_on_every_call(
    boto: Boto3S3Client, make_bucket: Callable[..., str], kms_key_id: str
) -> None:
    """ExpectedBucketOwner goes on every request; SSE-KMS headers on the upload, stored."""
    s3 = S3Client(boto, expected_bucket_owner=OWNER, kms_key_id=kms_key_id)
    bucket = make_bucket()
    log = RequestLog().attach(boto)
    s3.put_object(bucket, "k", b"data", extra_args={"ContentType": "text/plain"})
    s3.head_object(bucket, "k")
    with s3.open_object(bucket, "k") as obj:
        obj.body.read()
    list(s3.iter_objects(bucket))
    s3.get_object_tags(bucket, "k")
    assert {s.operation for s in log.sent} == {
        "PutObject",
        "HeadObject",
        "GetObject",
        "ListObjectsV2",
        "GetObjectTagging",
    }
    assert all(s.headers.get("x-amz-expected-bucket-owner") == OWNER for s in log.sent)
    (put,) = log.of("PutObject")
    assert put.headers["x-amz-server-side-encryption"] == "aws:kms"
    assert put.headers["x-amz-server-side-encryption-aws-kms-key-id"] == kms_key_id
    assert put.headers["content-type"] == "text/plain"
    assert all("x-amz-server-side-encryption" not in s.headers for s in log.sent[1:])
    assert boto.head_object(Bucket=bucket, Key="k")["ServerSideEncryption"] == "aws:kms"


def test_no_owner_or_kms_headers_unless_configured(
    s3: S3Client, boto: Boto3S3Client, make_bucket: Callable[..., str]
) -> None:
    """Without configuration, neither owner nor KMS headers are sent."""
    bucket = make_bucket()
    log = RequestLog().attach(boto)
    s3.put_object(bucket, "k", b"data")
    s3.head_object(bucket, "k")
    for sent in log.sent:
        assert "x-amz-expected-bucket-owner" not in sent.headers
        assert "x-amz-server-side-encryption" not in sent.headers


def test_put_object_carries_sha256_metadata_and_checksum(
    s3: S3Client, boto: Boto3S3Client, make_bucket: Callable[..., str]
) -> None:
    """put_object stores metadata content-sha256 and an S3 SHA-256 checksum."""
    bucket = make_bucket()
    body = b"some bytes"
    result = s3.put_object(bucket, "k", body)
    digest = hashlib.sha256(body)
    assert result.sha256 == digest.hexdigest()
    assert (result.size, result.parts, result.multipart) == (len(body), 1, False)
    info = s3.head_object(bucket, "k", checksum_mode=True)
    assert info.metadata["content-sha256"] == digest.hexdigest()
    assert info.checksum_sha256 == result.checksum_sha256
    assert s3.get_content_sha256(bucket, "k") == digest.hexdigest()


def test_disallowed_upload_argument_lists_the_allowed_ones(
    s3: S3Client, make_bucket: Callable[..., str]
) -> None:
    """An argument outside the allowlist raises ValidationError naming every allowed one."""
    with pytest.raises(ValidationError) as caught:
        s3.put_object(make_bucket(), "k", b"x", extra_args={"ACL": "public-read"})
    message = str(caught.value)
    assert "'ACL'" in message
    assert all(name in message for name in ALLOWED_UPLOAD_ARGS)
    assert caught.value.error_code == "INVALID_UPLOAD_ARGUMENT"


def test_default_client_honours_aws_endpoint_url(
    s3_endpoint: str,
    boto: Boto3S3Client,
    make_bucket: Callable[..., str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Without an injected client, boto3's AWS_ENDPOINT_URL and standard retries are used."""
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3_endpoint)
    bucket = make_bucket()
    _put(boto, bucket, "k")
    s3 = S3Client(max_pool_connections=13)
    assert [e.key for e in s3.iter_objects(bucket)] == ["k"]
    config = s3.client.meta.config
    assert getattr(config, "retries", {})["mode"] == "standard"
    assert getattr(config, "max_pool_connections", 0) == 13


def test_from_config_takes_owner_kms_and_pool_size(
    boto: Boto3S3Client, s3_endpoint: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """from_config copies owner and KMS key, and pools a connection per thread plus four."""
    config = AppConfig(
        distribution_bucket_name="dest-bucket",
        expected_bucket_owner=OWNER,
        kms_key_id=KMS_KEY,
        fetch_concurrency=10,
        upload_concurrency=6,
    )
    s3 = S3Client.from_config(config, boto)
    assert (s3.expected_bucket_owner, s3.kms_key_id) == (OWNER, KMS_KEY)
    assert s3.client is boto
    assert connection_pool_size(config) == 20
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3_endpoint)
    built = S3Client.from_config(config).client.meta.config
    assert getattr(built, "max_pool_connections", 0) == 20
