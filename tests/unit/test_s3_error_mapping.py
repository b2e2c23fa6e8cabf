"""translate_s3_error, S3BodyStream and the upload-argument allowlist, without a server."""

from __future__ import annotations

import io
from typing import Any, cast

import pytest
from botocore.exceptions import (
    ClientError,
    ConnectionClosedError,
    ConnectTimeoutError,
    EndpointConnectionError,
    FlexibleChecksumError,
    IncompleteReadError,
    NoCredentialsError,
    ParamValidationError,
    ReadTimeoutError,
    ResponseStreamingError,
)
from botocore.response import StreamingBody
from urllib3.exceptions import ProtocolError

from data_aggregator import _deadline
from data_aggregator.clients import (
    ALLOWED_UPLOAD_ARGS,
    S3BodyStream,
    parse_tagging,
    translate_s3_error,
    validate_upload_args,
)
from data_aggregator.exceptions import (
    DataAggregatorError,
    DeadlineExceededError,
    S3AccessDeniedError,
    S3Error,
    S3IntegrityError,
    S3KmsKeyError,
    S3ObjectNotFoundError,
    S3ObjectSupersededError,
    S3ServiceError,
    S3ThrottlingError,
    S3TimeoutError,
    TransientError,
    ValidationError,
)


def client_error(
    code: str | None,
    status: int,
    *,
    headers: dict[str, str] | None = None,
    operation: str = "GetObject",
) -> ClientError:
    """A ClientError as botocore builds it from an S3 answer."""
    error: dict[str, str] = {"Message": "from S3"}
    if code is not None:
        error["Code"] = code
    response: dict[str, Any] = {
        "Error": error,
        "ResponseMetadata": {
            "HTTPStatusCode": status,
            "RequestId": "REQ123",
            "HTTPHeaders": headers or {},
        },
    }
    return ClientError(cast("Any", response), operation)


def translate(exc: BaseException, **kwargs: Any) -> S3Error | None:
    """translate_s3_error with a fixed bucket/key/operation."""
    return translate_s3_error(
        exc, operation="GetObject", bucket="b", key="k", read_timeout=30.0, **kwargs
    )


CLIENT_ERRORS: list[tuple[str | None, int, type[S3Error], str]] = [
    ("NoSuchKey", 404, S3ObjectNotFoundError, "S3_OBJECT_NOT_FOUND"),
    ("NoSuchVersion", 404, S3ObjectNotFoundError, "S3_OBJECT_NOT_FOUND"),
    ("404", 404, S3ObjectNotFoundError, "S3_OBJECT_NOT_FOUND"),
    (None, 404, S3ObjectNotFoundError, "S3_OBJECT_NOT_FOUND"),
    ("PreconditionFailed", 412, S3ObjectSupersededError, "S3_OBJECT_SUPERSEDED"),
    ("412", 412, S3ObjectSupersededError, "S3_OBJECT_SUPERSEDED"),
    ("AccessDenied", 403, S3AccessDeniedError, "S3_ACCESS_DENIED"),
    ("403", 403, S3AccessDeniedError, "S3_ACCESS_DENIED"),
    ("InvalidAccessKeyId", 403, S3AccessDeniedError, "S3_ACCESS_DENIED"),
    ("KMS.AccessDeniedException", 400, S3AccessDeniedError, "S3_ACCESS_DENIED"),
    ("SlowDown", 503, S3ThrottlingError, "S3_THROTTLED"),
    ("Throttling", 400, S3ThrottlingError, "S3_THROTTLED"),
    ("ThrottlingException", 400, S3ThrottlingError, "S3_THROTTLED"),
    ("KMS.ThrottlingException", 400, S3ThrottlingError, "S3_THROTTLED"),
    ("TooManyRequests", 429, S3ThrottlingError, "S3_THROTTLED"),
    ("503", 503, S3ThrottlingError, "S3_THROTTLED"),
    ("RequestTimeout", 400, S3TimeoutError, "S3_TIMEOUT"),
    ("InternalError", 500, S3ServiceError, "S3_SERVICE_ERROR"),
    ("502", 502, S3ServiceError, "S3_SERVICE_ERROR"),
    ("GatewayTimeout", 504, S3ServiceError, "S3_SERVICE_ERROR"),
    ("BadDigest", 400, S3IntegrityError, "S3_CHECKSUM_MISMATCH"),
    ("XAmzContentSHA256Mismatch", 400, S3IntegrityError, "S3_CHECKSUM_MISMATCH"),
    ("NoSuchBucket", 404, S3Error, "S3_NO_SUCH_BUCKET"),
    ("NoSuchUpload", 404, S3Error, "S3_NO_SUCH_UPLOAD"),
    ("InvalidObjectState", 403, S3Error, "S3_INVALID_OBJECT_STATE"),
    ("EntityTooSmall", 400, S3Error, "S3_ENTITY_TOO_SMALL"),
    ("InvalidArgument", 400, S3Error, "S3_ERROR"),
    # What S3 answers when the SSE-KMS key cannot be used (docs/clients.md).
    ("KMS.NotFoundException", 400, S3KmsKeyError, "S3_KMS_KEY_UNUSABLE"),
    ("KMS.DisabledException", 400, S3KmsKeyError, "S3_KMS_KEY_UNUSABLE"),
    ("KMS.KMSInvalidStateException", 400, S3KmsKeyError, "S3_KMS_KEY_UNUSABLE"),
    ("KMS.InvalidKeyUsageException", 400, S3KmsKeyError, "S3_KMS_KEY_UNUSABLE"),
    ("KMS.SomeFutureKeyException", 400, S3KmsKeyError, "S3_KMS_KEY_UNUSABLE"),
    ("KMS.KeyUnavailableException", 500, S3ServiceError, "S3_SERVICE_ERROR"),
    ("KMS.KMSInternalException", 400, S3ServiceError, "S3_SERVICE_ERROR"),
    ("KMS.DependencyTimeoutException", 503, S3ThrottlingError, "S3_THROTTLED"),
]


@pytest.mark.parametrize(
    ("code", "status", "expected", "error_code"),
    CLIENT_ERRORS,
    ids=[f"{c}-{s}" for c, s, _, _ in CLIENT_ERRORS],
)
def test_client_errors_map_by_code_then_status(
    code: str | None, status: int, expected: type[S3Error], error_code: str
) -> None:
    """Each S3 error code / HTTP status maps to exactly one typed error and error_code."""
    mapped = translate(client_error(code, status))
    assert type(mapped) is expected
    assert mapped.error_code == error_code
    assert mapped.retryable is isinstance(mapped, TransientError)


def test_client_error_context_is_useful_and_bodiless() -> None:
    """Context carries bucket, key, version, operation, AWS code, status and request id."""
    mapped = translate(client_error("NoSuchKey", 404), version_id="v1")
    assert mapped is not None
    assert mapped.context == {
        "bucket": "b",
        "key": "k",
        "version_id": "v1",
        "operation": "GetObject",
        "exception_type": "ClientError",
        "aws_error_code": "NoSuchKey",
        "http_status": 404,
        "request_id": "REQ123",
    }
    assert "s3://b/k" in mapped.message
    assert mapped.operation == "GetObject"


def test_a_500_on_an_sse_kms_write_stays_retryable_but_names_the_key() -> None:
    """A 500 on a write that used a KMS key is retryable and its message names the key."""
    mapped = translate(client_error("InternalError", 500), context={"sse_kms_key_id": "alias/x"})
    assert type(mapped) is S3ServiceError
    assert mapped.retryable
    assert "SSE-KMS key 'alias/x'" in mapped.message
    assert mapped.context["sse_kms_key_id"] == "alias/x"
    plain = translate(client_error("InternalError", 500))
    assert plain is not None
    assert "KMS" not in plain.message


def test_delete_marker_405_is_not_found_but_other_405_is_not() -> None:
    """HTTP 405 with x-amz-delete-marker (a delete-marker version) means the object is gone."""
    marker = client_error("405", 405, headers={"x-amz-delete-marker": "true"})
    assert isinstance(translate(marker), S3ObjectNotFoundError)
    plain = translate(client_error("MethodNotAllowed", 405))
    assert type(plain) is S3Error


TRANSPORT_ERRORS: list[tuple[Exception, type[S3Error], str]] = [
    (ReadTimeoutError(endpoint_url="https://s3"), S3TimeoutError, "S3_TIMEOUT"),
    (ConnectTimeoutError(endpoint_url="https://s3"), S3TimeoutError, "S3_TIMEOUT"),
    (TimeoutError("socket"), S3TimeoutError, "S3_TIMEOUT"),
    (EndpointConnectionError(endpoint_url="https://s3"), S3ServiceError, "S3_CONNECTION_ERROR"),
    (ConnectionClosedError(endpoint_url="https://s3"), S3ServiceError, "S3_CONNECTION_ERROR"),
    (ConnectionResetError(104, "reset"), S3ServiceError, "S3_CONNECTION_ERROR"),
    (BrokenPipeError(32, "pipe"), S3ServiceError, "S3_CONNECTION_ERROR"),
    (IncompleteReadError(actual_bytes=1, expected_bytes=2), S3ServiceError, "S3_STREAM_ERROR"),
    (ResponseStreamingError(error="x"), S3ServiceError, "S3_STREAM_ERROR"),
    (ProtocolError("Connection broken"), S3ServiceError, "S3_STREAM_ERROR"),
    (FlexibleChecksumError(error_msg="x"), S3IntegrityError, "S3_CHECKSUM_MISMATCH"),
    (NoCredentialsError(), S3Error, "S3_CREDENTIALS_ERROR"),
    (ParamValidationError(report="bad"), S3Error, "S3_INVALID_REQUEST"),
]


@pytest.mark.parametrize(
    ("exc", "expected", "error_code"),
    TRANSPORT_ERRORS,
    ids=[type(e).__name__ for e, _, _ in TRANSPORT_ERRORS],
)
def test_transport_errors_map_to_typed_errors(
    exc: Exception, expected: type[S3Error], error_code: str
) -> None:
    """Timeouts, resets, broken streams and checksum failures become typed errors."""
    mapped = translate(exc)
    assert type(mapped) is expected
    assert mapped.error_code == error_code
    assert mapped.context["exception_type"] == type(exc).__name__


def test_timeouts_report_the_matching_timeout() -> None:
    """A connect timeout reports connect_timeout; a read timeout reports read_timeout."""
    connect = translate_s3_error(
        ConnectTimeoutError(endpoint_url="u"),
        operation="HeadObject",
        connect_timeout=2.0,
        read_timeout=9.0,
    )
    read = translate_s3_error(
        ReadTimeoutError(endpoint_url="u"),
        operation="HeadObject",
        connect_timeout=2.0,
        read_timeout=9.0,
    )
    assert isinstance(connect, S3TimeoutError)
    assert isinstance(read, S3TimeoutError)
    assert (connect.timeout_seconds, read.timeout_seconds) == (2.0, 9.0)


@pytest.mark.parametrize("exc", [ValueError("bug"), KeyError("k"), OSError(28, "disk full")])
def test_unrelated_exceptions_are_not_translated(exc: Exception) -> None:
    """Bugs and local I/O errors are left alone (None): the caller re-raises them."""
    assert translate(exc) is None


# --------------------------------------------------------------------------- body stream


def body_stream(data: bytes, content_length: int | None = None) -> S3BodyStream:
    """An S3BodyStream over a botocore StreamingBody of ``data``."""
    length = len(data) if content_length is None else content_length
    return S3BodyStream(
        StreamingBody(io.BytesIO(data), length), operation="GetObject", bucket="b", key="k"
    )


def test_body_stream_reads_and_counts() -> None:
    """read(n), readinto and read() return the body in order and count the bytes."""
    body = body_stream(b"abcdefgh")
    assert body.readable()
    assert body.read(3) == b"abc"
    buffer = bytearray(2)
    assert body.readinto(buffer) == 2
    assert buffer == b"de"
    assert body.read() == b"fgh"
    assert body.read(5) == b""
    assert body.bytes_read == 8
    body.close()
    assert body.closed
    with pytest.raises(ValueError, match="closed"):
        body.read(1)


def test_body_stream_works_under_buffered_reader() -> None:
    """io.BufferedReader can wrap the stream (readline, peek)."""
    reader = io.BufferedReader(body_stream(b"line1\nline2\n"))
    assert reader.readline() == b"line1\n"
    assert reader.peek(1).startswith(b"l")
    assert reader.read() == b"line2\n"


def test_truncated_body_raises_a_retryable_stream_error() -> None:
    """A body shorter than Content-Length raises S3ServiceError(S3_STREAM_ERROR) at its end."""
    body = body_stream(b"short", content_length=10)
    assert body.read(5) == b"short"
    with pytest.raises(S3ServiceError) as caught:
        body.read(5)
    assert caught.value.error_code == "S3_STREAM_ERROR"
    assert caught.value.retryable
    assert caught.value.context["bytes_read"] == 5
    assert caught.value.context["key"] == "k"


class _StalledBody(io.RawIOBase):
    """A body whose next read times out (urllib3's error, as a socket read would raise)."""

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        raise ReadTimeoutError(endpoint_url="https://s3")


@pytest.mark.parametrize(
    ("deadline", "expected"),
    [
        (None, S3TimeoutError),
        (_deadline.Deadline(lambda: 5.0), S3TimeoutError),
        (_deadline.Deadline(lambda: -0.1), DeadlineExceededError),
    ],
    ids=["no-deadline", "time-left", "deadline-passed"],
)
def test_a_body_read_timing_out_at_the_deadline_is_out_of_time(
    deadline: _deadline.Deadline | None, expected: type[DataAggregatorError]
) -> None:
    """A read timeout while reading the body is S3's slowness (S3TimeoutError) unless the
    invocation's deadline has passed: the deadline hooks cut each read timeout to the
    time left, so the wait ended there (DeadlineExceededError, the key in its context)."""
    body = S3BodyStream(
        StreamingBody(cast("Any", _StalledBody()), 10), operation="GetObject", bucket="b", key="k"
    )
    with _deadline.scope(deadline), pytest.raises(expected) as caught:
        body.read(5)
    assert caught.value.context["operation"] == "GetObject"
    assert caught.value.context["key"] == "k"
    assert caught.value.context["phase"] == "read_body"
    assert caught.value.retryable
    # The client's timeout is not what ended the wait past the deadline: not reported.
    assert ("timeout_seconds" in caught.value.context) is (expected is S3TimeoutError)


# --------------------------------------------------------------------------- allowlist


def test_allowed_upload_args_pass_through() -> None:
    """Every allowlisted argument is accepted and copied."""
    args = dict.fromkeys(ALLOWED_UPLOAD_ARGS, "x") | {"Metadata": {"a": "b"}}
    assert validate_upload_args(args) == args
    assert validate_upload_args(None) == {}


@pytest.mark.parametrize(
    "name",
    ["ACL", "GrantRead", "ServerSideEncryption", "SSEKMSKeyId", "ExpectedBucketOwner", "Body"],
)
def test_disallowed_upload_args_are_rejected_with_the_allowed_list(name: str) -> None:
    """Arguments the client controls, or that grant access, raise ValidationError."""
    with pytest.raises(ValidationError) as caught:
        validate_upload_args({name: "x"})
    assert caught.value.error_code == "INVALID_UPLOAD_ARGUMENT"
    assert caught.value.context["argument"] == name
    message = str(caught.value)
    assert f"{name!r}" in message
    assert ", ".join(sorted(ALLOWED_UPLOAD_ARGS)) in message


def test_reserved_sha256_metadata_and_tag_are_rejected() -> None:
    """The content-sha256 metadata key and tag belong to the client."""
    with pytest.raises(ValidationError, match="reserved"):
        validate_upload_args({"Metadata": {"Content-SHA256": "x"}})
    with pytest.raises(ValidationError, match="reserved"):
        validate_upload_args({"Tagging": "a=1&content-sha256=x"})


def test_parse_tagging_decodes_the_header_form() -> None:
    """Tagging values are URL-decoded; empty values are kept."""
    assert parse_tagging("a=1&b=x%20y&c=") == {"a": "1", "b": "x y", "c": ""}
    assert parse_tagging(None) == {}
