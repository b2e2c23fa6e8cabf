"""Turn botocore / urllib3 failures into the library's typed S3 errors.

Public names are re-exported by `data_aggregator.clients`. botocore and urllib3 are
imported inside the functions (they are already loaded by the time an S3 call fails), so
importing this module costs nothing on a cold start.
"""

from __future__ import annotations

import io
import math
from typing import TYPE_CHECKING, Any, Final, cast

from data_aggregator import _deadline
from data_aggregator.exceptions import (
    DataAggregatorError,
    DeadlineExceededError,
    ErrorCode,
    S3AccessDeniedError,
    S3Error,
    S3IntegrityError,
    S3KmsKeyError,
    S3ObjectNotFoundError,
    S3ObjectSupersededError,
    S3ServiceError,
    S3ThrottlingError,
    S3TimeoutError,
)

if TYPE_CHECKING:
    from collections.abc import Mapping

    from botocore.exceptions import ClientError
    from botocore.response import StreamingBody

__all__ = ["S3BodyStream", "translate_s3_error"]

_NOT_FOUND_CODES: Final = frozenset({"NoSuchKey", "NoSuchVersion", "NotFound", "404"})
_PRECONDITION_CODES: Final = frozenset({"PreconditionFailed", "412"})
_THROTTLING_CODES: Final = frozenset(
    {
        "SlowDown",
        "Throttling",
        "ThrottlingException",
        "ThrottledException",
        "RequestThrottled",
        "RequestThrottledException",
        "TooManyRequestsException",
        "RequestLimitExceeded",
        "BandwidthLimitExceeded",
        "KMS.ThrottlingException",
        "429",
        "503",
    }
)
_TIMEOUT_CODES: Final = frozenset({"RequestTimeout", "RequestTimeoutException", "408"})
_ACCESS_DENIED_CODES: Final = frozenset(
    {
        "AccessDenied",
        "AllAccessDisabled",
        "AccountProblem",
        "InvalidAccessKeyId",
        "SignatureDoesNotMatch",
        "ExpiredToken",
        "InvalidToken",
        "KMS.AccessDeniedException",
        "403",
    }
)
_INTEGRITY_CODES: Final = frozenset(
    {"BadDigest", "InvalidDigest", "XAmzContentSHA256Mismatch", "InvalidChecksum"}
)
_SERVICE_CODES: Final = frozenset({"InternalError", "ServiceUnavailable", "500", "502", "504"})
# The KMS key named for SSE-KMS cannot be used: S3 answers 400 with the KMS error's name
# (KMS.NotFoundException for a key that does not exist, KMS.DisabledException,
# KMS.KMSInvalidStateException for one pending deletion ...). Retrying cannot help.
_KMS_KEY_CODES: Final = frozenset(
    {
        "KMS.NotFoundException",
        "KMS.DisabledException",
        "KMS.KMSInvalidStateException",
        "KMS.InvalidKeyUsageException",
        "KMS.InvalidArnException",
        "KMS.IncorrectKeyException",
    }
)
# KMS failures that are the service's, not the key's: retryable like any 5xx.
_KMS_TRANSIENT_CODES: Final = frozenset(
    {"KMS.KMSInternalException", "KMS.KeyUnavailableException", "KMS.DependencyTimeoutException"}
)
# Codes that name a distinct, non-retryable condition: kept as their own error_code.
_NAMED_CODES: Final = {
    "NoSuchBucket": ErrorCode.S3_NO_SUCH_BUCKET,
    "NoSuchUpload": ErrorCode.S3_NO_SUCH_UPLOAD,
    "InvalidObjectState": ErrorCode.S3_INVALID_OBJECT_STATE,
    "EntityTooSmall": ErrorCode.S3_ENTITY_TOO_SMALL,
    "EntityTooLarge": ErrorCode.S3_ENTITY_TOO_LARGE,
    "InvalidPart": ErrorCode.S3_INVALID_PART,
    "InvalidPartOrder": ErrorCode.S3_INVALID_PART,
}


def translate_s3_error(
    exc: BaseException,
    *,
    operation: str,
    bucket: str | None = None,
    key: str | None = None,
    version_id: str | None = None,
    connect_timeout: float | None = None,
    read_timeout: float | None = None,
    context: Mapping[str, Any] | None = None,
) -> S3Error | None:
    """Return the typed [`S3Error`][data_aggregator.exceptions.S3Error] for ``exc``.

    ``exc`` may be a botocore ``ClientError``, a botocore transport error, an urllib3 error
    or a socket-level ``OSError`` raised while calling S3 or reading a response body.
    Returns ``None`` for anything else (a bug, a ``KeyboardInterrupt`` ...), which the
    caller re-raises unchanged; so are the library's own errors, such as the
    [`DeadlineExceededError`][data_aggregator.exceptions.DeadlineExceededError] a client
    raises when the invocation's deadline leaves no time to send or retry a request. The
    returned error's ``context`` carries ``bucket``, ``key``, ``version_id``,
    ``operation`` and, for service errors, ``aws_error_code``, ``http_status`` and
    ``request_id``; never a request or response body.
    """
    if isinstance(exc, DataAggregatorError):
        return None  # already typed (a deadline reached in a botocore hook ...): kept as is
    from botocore import exceptions as bce  # noqa: PLC0415 - loaded lazily, see module doc
    from urllib3 import exceptions as u3e  # noqa: PLC0415

    ctx: dict[str, Any] = {"bucket": bucket, "key": key}
    if version_id is not None:
        ctx["version_id"] = version_id
    ctx.update(context or {})
    ctx["exception_type"] = type(exc).__name__
    where = _describe(operation, bucket, key)

    if isinstance(exc, bce.ClientError):
        return _translate_client_error(exc, operation, where, ctx, read_timeout)
    if isinstance(exc, bce.FlexibleChecksumError):
        return S3IntegrityError(
            f"{where}: the response body does not match its S3 checksum",
            ErrorCode.S3_CHECKSUM_MISMATCH,
            ctx,
            operation=operation,
        )
    # Timeouts first: botocore's timeout classes also derive from its connection errors.
    if isinstance(exc, bce.ConnectTimeoutError | u3e.ConnectTimeoutError):
        return _timeout(operation, where, ctx, connect_timeout, "connecting")
    if isinstance(exc, bce.ReadTimeoutError | u3e.TimeoutError | TimeoutError):
        return _timeout(operation, where, ctx, read_timeout, "reading")
    if isinstance(exc, bce.IncompleteReadError | bce.ResponseStreamingError | u3e.ProtocolError):
        return S3ServiceError(
            f"{where}: the response stream broke off before its end",
            ErrorCode.S3_STREAM_ERROR,
            ctx,
            operation=operation,
        )
    if isinstance(
        exc,
        bce.EndpointConnectionError
        | bce.ConnectionError
        | bce.HTTPClientError
        | u3e.HTTPError
        | ConnectionError,
    ):
        return S3ServiceError(
            f"{where}: the connection to S3 failed",
            ErrorCode.S3_CONNECTION_ERROR,
            ctx,
            operation=operation,
        )
    if isinstance(
        exc, bce.NoCredentialsError | bce.PartialCredentialsError | bce.CredentialRetrievalError
    ):
        return S3Error(
            f"{where}: no usable AWS credentials",
            ErrorCode.S3_CREDENTIALS_ERROR,
            ctx,
            operation=operation,
        )
    if isinstance(exc, bce.ParamValidationError):
        return S3Error(
            f"{where}: the request parameters are invalid",
            ErrorCode.S3_INVALID_REQUEST,
            ctx,
            operation=operation,
        )
    if isinstance(exc, bce.BotoCoreError):
        return S3Error(f"{where}: {type(exc).__name__}", None, ctx, operation=operation)
    return None


def _describe(operation: str, bucket: str | None, key: str | None) -> str:
    if bucket is None:
        return f"S3 {operation}"
    if key is None:
        return f"S3 {operation} on bucket {bucket!r}"
    return f"S3 {operation} of s3://{bucket}/{key}"


def _timeout(
    operation: str, where: str, ctx: dict[str, Any], seconds: float | None, phase: str
) -> S3TimeoutError:
    return S3TimeoutError(
        operation=operation,
        timeout_seconds=float(seconds or 0.0),
        context=ctx,
        message=f"{where}: timed out while {phase}",
    )


def _translate_client_error(
    exc: ClientError,
    operation: str,
    where: str,
    ctx: dict[str, Any],
    read_timeout: float | None,
) -> S3Error:
    response: Mapping[str, Any] = exc.response
    error: Mapping[str, Any] = response.get("Error") or {}
    metadata: Mapping[str, Any] = response.get("ResponseMetadata") or {}
    headers: Mapping[str, Any] = metadata.get("HTTPHeaders") or {}
    code = str(error.get("Code") or "")
    status = metadata.get("HTTPStatusCode")
    ctx["aws_error_code"] = code or None
    ctx["http_status"] = status
    ctx["request_id"] = metadata.get("RequestId") or headers.get("x-amz-request-id")
    aws_message = str(error.get("Message") or code or "no error message")
    text = f"{where} failed: {code or status} ({aws_message})"

    if code in _NOT_FOUND_CODES:
        return S3ObjectNotFoundError(text, None, ctx, operation=operation)
    if code in _NAMED_CODES:
        return S3Error(text, _NAMED_CODES[code], ctx, operation=operation)
    if code in _PRECONDITION_CODES or status == 412:
        return S3ObjectSupersededError(text, None, ctx, operation=operation)
    if status == 405 and str(headers.get("x-amz-delete-marker", "")).lower() == "true":
        # GET/HEAD of a version that is a delete marker: the object was deleted.
        return S3ObjectNotFoundError(text, None, ctx, operation=operation)
    if code in _THROTTLING_CODES or "Throttl" in code or status in (429, 503):
        return S3ThrottlingError(text, None, ctx, operation=operation)
    if code in _TIMEOUT_CODES or status == 408:
        return S3TimeoutError(
            operation=operation,
            timeout_seconds=float(read_timeout or 0.0),
            context=ctx,
            message=text,
        )
    if code in _ACCESS_DENIED_CODES or status == 403:
        return S3AccessDeniedError(text, None, ctx, operation=operation)
    if code in _KMS_TRANSIENT_CODES:
        return S3ServiceError(text, None, ctx, operation=operation)
    if code in _KMS_KEY_CODES or (
        code.startswith("KMS.") and isinstance(status, int) and 400 <= status < 500
    ):
        return S3KmsKeyError(
            f"{text}: the KMS key for SSE-KMS cannot be used (missing, disabled, pending "
            "deletion or of the wrong kind); retrying will not help",
            None,
            ctx,
            operation=operation,
        )
    if code in _INTEGRITY_CODES:
        return S3IntegrityError(text, ErrorCode.S3_CHECKSUM_MISMATCH, ctx, operation=operation)
    if code in _SERVICE_CODES or (isinstance(status, int) and status >= 500):
        if ctx.get("sse_kms_key_id"):
            # Still retryable: a 500 says nothing certain. But S3-compatible stores answer
            # a KMS key they cannot use this way (SeaweedFS: 500 InternalError), so say so.
            text += (
                f"; the request used SSE-KMS key {ctx['sse_kms_key_id']!r}: if this persists, "
                "check that the key exists and is usable"
            )
        return S3ServiceError(text, None, ctx, operation=operation)
    if status == 404:
        return S3ObjectNotFoundError(text, None, ctx, operation=operation)
    return S3Error(text, None, ctx, operation=operation)


class S3BodyStream(io.RawIOBase):
    """A readable binary stream over a ``GetObject`` body that raises typed errors.

    Wraps botocore's ``StreamingBody``: a read timeout, a connection reset, a truncated
    body (``IncompleteReadError``) or a broken chunked stream become retryable
    [`S3TimeoutError`][data_aggregator.exceptions.S3TimeoutError] /
    [`S3ServiceError`][data_aggregator.exceptions.S3ServiceError]; a checksum mismatch detected by
    botocore becomes [`S3IntegrityError`][data_aggregator.exceptions.S3IntegrityError]. Wrap it in
    `io.BufferedReader` if you need ``peek`` or small reads; ``read(n)`` goes
    straight to the socket.
    """

    def __init__(
        self,
        body: StreamingBody,
        *,
        operation: str,
        bucket: str,
        key: str,
        version_id: str | None = None,
        connect_timeout: float | None = None,
        read_timeout: float | None = None,
    ) -> None:
        super().__init__()
        self._body = body
        self._where: dict[str, Any] = {
            "operation": operation,
            "bucket": bucket,
            "key": key,
            "version_id": version_id,
            "connect_timeout": connect_timeout,
            "read_timeout": read_timeout,
        }
        self._bytes_read = 0

    @property
    def bytes_read(self) -> int:
        """How many bytes have been read so far."""
        return self._bytes_read

    def readable(self) -> bool:
        """Return ``True``: this stream is readable (until closed)."""
        self._check_not_closed()
        return True

    def readinto(self, buffer: Any) -> int:
        """Read up to ``len(buffer)`` bytes into ``buffer``; return how many (0 at the end)."""
        self._check_not_closed()
        view = memoryview(buffer).cast("B")
        if not view.nbytes:
            return 0
        try:
            count = int(self._body.readinto(cast("Any", view)))
        except Exception as exc:
            self._raise_translated(exc)
            raise
        self._bytes_read += count
        return count

    def read(self, size: int | None = -1) -> bytes:
        """Read up to ``size`` bytes (all remaining bytes when ``size`` is negative/None)."""
        self._check_not_closed()
        amount = None if size is None or size < 0 else size
        try:
            data: bytes = self._body.read(amount)
        except Exception as exc:
            self._raise_translated(exc)
            raise
        self._bytes_read += len(data)
        return data

    def readall(self) -> bytes:
        """Read every remaining byte."""
        return self.read(-1)

    def close(self) -> None:
        """Release the HTTP connection (a partly read body is discarded)."""
        if not self.closed:
            try:
                self._body.close()
            finally:
                super().close()

    def _check_not_closed(self) -> None:
        if self.closed:
            msg = "I/O operation on closed S3 body stream"
            raise ValueError(msg)

    def _raise_translated(self, exc: Exception) -> None:
        where = self._where
        mapped = translate_s3_error(
            exc,
            operation=where["operation"],
            bucket=where["bucket"],
            key=where["key"],
            version_id=where["version_id"],
            connect_timeout=where["connect_timeout"],
            read_timeout=where["read_timeout"],
            context={"phase": "read_body", "bytes_read": self._bytes_read},
        )
        if isinstance(mapped, S3TimeoutError) and _deadline.remaining(math.inf) <= 0:
            # The wait ended at the deadline (the deadline hooks cut each attempt's read
            # timeout to the time left): out of time, not a slow S3.
            facts = {k: v for k, v in mapped.context.items() if k != "timeout_seconds"}
            raise DeadlineExceededError(
                "the invocation's deadline passed while reading the object's body",
                context={**facts, "operation": where["operation"]},
            ) from exc
        if mapped is not None:
            raise mapped from exc
