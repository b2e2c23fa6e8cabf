"""Structured exceptions for data_aggregator.

Every error the library raises derives from
[`DataAggregatorError`][data_aggregator.exceptions.DataAggregatorError]. Each carries

* ``error_code``: a stable, machine-readable string (safe to alarm on),
* ``retryable``: whether trying the same work again later may succeed,
* ``context``: a small mapping of facts about the failure (bucket, key, operation ...),
* ``correlation_id``: an optional request or message id,

and [`DataAggregatorError.to_dict`][data_aggregator.exceptions.DataAggregatorError.to_dict]
turns it into a JSON-ready mapping for structured logs. ``to_dict()`` never contains
credentials, tokens or object bodies, and its size is bounded whatever was put into ``context``.

The tree:

```text
DataAggregatorError
├── ConfigurationError
├── ValidationError               (seed codes: INVALID_S3_KEY_* / UNSAFE_S3_KEY_PATH)
│   └── EventParseError           (malformed or unknown event shapes)
├── TransientError                (retryable = True)
├── HookError                     (a processor hook raised or returned something unusable)
├── MapBatchFailedError           (a Step Functions Map item batch had failures; retryable)
│   └── MapBatchRefusedError      (... and every failure is permanent)
├── S3Error
│   ├── S3TimeoutError            (retryable)
│   ├── S3ThrottlingError         (retryable)
│   ├── S3ServiceError            (retryable: 5xx, connection errors)
│   ├── S3AccessDeniedError
│   ├── S3KmsKeyError             (the SSE-KMS key cannot be used)
│   ├── S3ObjectNotFoundError
│   ├── S3ObjectSupersededError
│   └── S3IntegrityError          (size / ETag mismatch)
├── BundleError
│   └── BundleUploadError         (retryable)
└── IdempotencyError
    ├── IdempotencyStoreError     (retryable)
    ├── IdempotencyConfigurationError
    │   └── IdempotencyKeySchemaError
    └── LeaseLostError
```

Retryable S3 and store errors also derive from
[`TransientError`][data_aggregator.exceptions.TransientError], so ``except TransientError``
catches every error worth retrying.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Any, ClassVar

__all__ = [
    "MAX_CONTEXT_ITEMS",
    "MAX_DEPTH",
    "MAX_MAP_FAILURES_LISTED",
    "MAX_MESSAGE_CHARS",
    "MAX_SEQUENCE_ITEMS",
    "MAX_STRING_CHARS",
    "REDACTED",
    "BundleError",
    "BundleUploadError",
    "ConfigurationError",
    "DataAggregatorError",
    "DeadlineExceededError",
    "ErrorCode",
    "EventParseError",
    "HookError",
    "IdempotencyConfigurationError",
    "IdempotencyError",
    "IdempotencyKeySchemaError",
    "IdempotencyStoreError",
    "LeaseLostError",
    "MapBatchFailedError",
    "MapBatchRefusedError",
    "MapItemFailure",
    "ObjectNotTextError",
    "S3AccessDeniedError",
    "S3Error",
    "S3IntegrityError",
    "S3KmsKeyError",
    "S3ObjectNotFoundError",
    "S3ObjectSupersededError",
    "S3ServiceError",
    "S3ThrottlingError",
    "S3TimeoutError",
    "TransientError",
    "ValidationError",
    "ValidationErrorCode",
]

# Bounds applied by ``to_dict()``: a log line must stay small whatever the caller stored.
MAX_MESSAGE_CHARS = 1024
MAX_STRING_CHARS = 256
MAX_CONTEXT_ITEMS = 32
MAX_SEQUENCE_ITEMS = 16
MAX_DEPTH = 3
REDACTED = "[REDACTED]"

# Context keys whose values must never reach a log: credentials and object contents.
_SENSITIVE_KEY = re.compile(
    r"(pass(word)?|secret|token|credential|authori[sz]ation|api[_-]?key|access[_-]?key"
    r"|private[_-]?key|session|cookie|signature|body|content|payload|data)",
    re.IGNORECASE,
)


class ErrorCode(str, Enum):
    """Every ``error_code`` the library sets: stable, machine-readable, safe to alarm on.

    A `str` enum, so a member equals its string (``ErrorCode.S3_THROTTLED == "S3_THROTTLED"``)
    and an error's ``error_code`` and ``to_dict()`` hold the plain string. Your own errors
    (a custom store's, say) may use codes of their own.
    """

    # Everywhere
    #: The root error, when nothing more precise applies.
    DATA_AGGREGATOR_ERROR = "DATA_AGGREGATOR_ERROR"
    #: A failure that may go away on its own: try again later.
    TRANSIENT_ERROR = "TRANSIENT_ERROR"
    #: A setting is missing or invalid (context["variables"] names them).
    CONFIGURATION_ERROR = "CONFIGURATION_ERROR"
    #: A processor hook raised or returned something unusable.
    HOOK_FAILED = "HOOK_FAILED"
    #: A direct (non-SQS) invocation had failures; raising makes Lambda retry it.
    BATCH_FAILED = "BATCH_FAILED"
    #: The invocation's time ran out before the call could be made or retried.
    DEADLINE_EXCEEDED = "DEADLINE_EXCEEDED"
    #: Items of a Step Functions Distributed Map batch were not bundled; some may be on a
    #: retry (the Map's Retry on MapBatchFailedError runs the batch again).
    MAP_BATCH_FAILED = "MAP_BATCH_FAILED"
    #: Items of a Map batch were refused for good (invalid item, unsafe key, access
    #: denied ...): retrying the batch will not bundle them.
    MAP_BATCH_REFUSED = "MAP_BATCH_REFUSED"

    # Validation (the seed's codes first): the same input fails the same way
    #: Input that can never be processed as it is.
    VALIDATION_ERROR = "VALIDATION_ERROR"
    #: The key is not a string.
    INVALID_S3_KEY_TYPE = "INVALID_S3_KEY_TYPE"
    #: The empty string, a whitespace-padded segment, or still percent-encoded after the
    #: decoding bound.
    INVALID_S3_KEY_FORMAT = "INVALID_S3_KEY_FORMAT"
    #: More than 1,024 UTF-8 bytes (or a segment longer than a file name may be).
    INVALID_S3_KEY_LENGTH = "INVALID_S3_KEY_LENGTH"
    #: Control, Unicode format or surrogate characters.
    INVALID_S3_KEY_CHARACTER = "INVALID_S3_KEY_CHARACTER"
    #: A non-empty key that resolves to nothing (., /, //, C:, %2F), a .. segment or a
    #: Windows device name.
    UNSAFE_S3_KEY_PATH = "UNSAFE_S3_KEY_PATH"
    #: A malformed event or message body.
    INVALID_EVENT = "INVALID_EVENT"
    #: A well-formed event of a kind the library does not handle.
    UNSUPPORTED_EVENT = "UNSUPPORTED_EVENT"
    #: The source bucket is outside the configured allowlist.
    BUCKET_NOT_ALLOWED = "BUCKET_NOT_ALLOWED"
    #: An upload pass-through argument outside the allowlist (the message lists the allowed ones).
    INVALID_UPLOAD_ARGUMENT = "INVALID_UPLOAD_ARGUMENT"

    # S3
    #: An S3 call failed (the base of the S3 codes).
    S3_ERROR = "S3_ERROR"
    #: An S3 call did not answer in time.
    S3_TIMEOUT = "S3_TIMEOUT"
    #: S3 throttled the call (SlowDown).
    S3_THROTTLED = "S3_THROTTLED"
    #: S3 answered 5xx after the client's retries.
    S3_SERVICE_ERROR = "S3_SERVICE_ERROR"
    #: The connection to S3 failed.
    S3_CONNECTION_ERROR = "S3_CONNECTION_ERROR"
    #: No usable AWS credentials.
    S3_CREDENTIALS_ERROR = "S3_CREDENTIALS_ERROR"
    #: A policy forbids the call.
    S3_ACCESS_DENIED = "S3_ACCESS_DENIED"
    #: The SSE-KMS key does not exist, is disabled or cannot be used.
    S3_KMS_KEY_UNUSABLE = "S3_KMS_KEY_UNUSABLE"
    #: The bucket does not exist.
    S3_NO_SUCH_BUCKET = "S3_NO_SUCH_BUCKET"
    #: The multipart upload no longer exists.
    S3_NO_SUCH_UPLOAD = "S3_NO_SUCH_UPLOAD"
    #: The object or version is gone.
    S3_OBJECT_NOT_FOUND = "S3_OBJECT_NOT_FOUND"
    #: The key was overwritten after the event (ETag precondition failed).
    S3_OBJECT_SUPERSEDED = "S3_OBJECT_SUPERSEDED"
    #: The object cannot be read in its storage class (archived).
    S3_INVALID_OBJECT_STATE = "S3_INVALID_OBJECT_STATE"
    #: S3 refused the request as invalid.
    S3_INVALID_REQUEST = "S3_INVALID_REQUEST"
    #: A multipart part is missing or out of order.
    S3_INVALID_PART = "S3_INVALID_PART"
    #: A multipart part is below S3's minimum size.
    S3_ENTITY_TOO_SMALL = "S3_ENTITY_TOO_SMALL"
    #: A part or object is above S3's maximum size.
    S3_ENTITY_TOO_LARGE = "S3_ENTITY_TOO_LARGE"
    #: Bytes read do not match the announced size or ETag.
    S3_INTEGRITY_ERROR = "S3_INTEGRITY_ERROR"
    #: S3 refused a body whose checksum did not match (BadDigest).
    S3_CHECKSUM_MISMATCH = "S3_CHECKSUM_MISMATCH"
    #: An object body ended before its announced size.
    S3_BODY_TRUNCATED = "S3_BODY_TRUNCATED"
    #: An object body is longer than its announced size.
    S3_BODY_TOO_LONG = "S3_BODY_TOO_LONG"
    #: Reading a source object's body failed.
    S3_READ_FAILED = "S3_READ_FAILED"
    #: The response stream broke while being read.
    S3_STREAM_ERROR = "S3_STREAM_ERROR"
    #: An upload would exceed S3's 5 TiB object limit.
    S3_OBJECT_TOO_LARGE = "S3_OBJECT_TOO_LARGE"
    #: An upload would need more than 10,000 parts.
    S3_TOO_MANY_PARTS = "S3_TOO_MANY_PARTS"
    #: Uploading a part or completing an upload failed.
    S3_UPLOAD_FAILED = "S3_UPLOAD_FAILED"
    #: The upload was aborted (nothing was committed).
    S3_UPLOAD_ABORTED = "S3_UPLOAD_ABORTED"

    # Bundles
    #: A bundle could not be written or finished.
    BUNDLE_ERROR = "BUNDLE_ERROR"
    #: A bundle read back does not verify (members, manifest, checksums).
    BUNDLE_INVALID = "BUNDLE_INVALID"
    #: A bundle's upload failed; its objects can be bundled on a retry.
    BUNDLE_UPLOAD_FAILED = "BUNDLE_UPLOAD_FAILED"
    #: A bundle was discarded because another member's body failed while written.
    BUNDLE_MEMBER_FAILED = "BUNDLE_MEMBER_FAILED"
    #: The step just before a bundle's commit failed (the processor's check of lease and
    #: deadline: context["cause_code"] is DEADLINE_EXCEEDED).
    BUNDLE_COMMIT_HOOK_FAILED = "BUNDLE_COMMIT_HOOK_FAILED"
    #: The bundle run was interrupted before the bundle was committed.
    BUNDLE_INTERRUPTED = "BUNDLE_INTERRUPTED"
    #: A source object is not UTF-8 text, which a ``concat`` bundle requires (the object
    #: fails alone; the rest of the bundle is kept).
    OBJECT_NOT_TEXT = "OBJECT_NOT_TEXT"
    #: An engine setting is out of range.
    INVALID_BUNDLE_SETTING = "INVALID_BUNDLE_SETTING"
    #: A bundle source is malformed (size, bucket, key).
    INVALID_BUNDLE_SOURCE = "INVALID_BUNDLE_SOURCE"
    #: An unknown bundle codec.
    INVALID_CODEC = "INVALID_CODEC"
    #: A compression level the codec does not accept.
    INVALID_COMPRESSION_LEVEL = "INVALID_COMPRESSION_LEVEL"
    #: A number of compression threads below 1.
    INVALID_COMPRESSION_THREADS = "INVALID_COMPRESSION_THREADS"
    #: The zstd codec needs the zstd extra.
    ZSTD_NOT_INSTALLED = "ZSTD_NOT_INSTALLED"
    #: ``gzip_library="zlib-ng"`` but the zlib-ng package (a dependency) is missing.
    ZLIB_NG_NOT_INSTALLED = "ZLIB_NG_NOT_INSTALLED"
    #: No unique member name could be found for an object.
    MEMBER_NAME_EXHAUSTED = "MEMBER_NAME_EXHAUSTED"
    #: Inspect --extract into a directory that is not empty.
    EXTRACT_DIR_NOT_EMPTY = "EXTRACT_DIR_NOT_EMPTY"

    # Idempotency stores
    #: An idempotency store failed (the base of the store codes).
    IDEMPOTENCY_ERROR = "IDEMPOTENCY_ERROR"
    #: The store could not be reached or failed; retry.
    IDEMPOTENCY_STORE_ERROR = "IDEMPOTENCY_STORE_ERROR"
    #: The store throttled the call; retry.
    IDEMPOTENCY_THROTTLED = "IDEMPOTENCY_THROTTLED"
    #: A policy forbids access to the idempotency table.
    IDEMPOTENCY_ACCESS_DENIED = "IDEMPOTENCY_ACCESS_DENIED"
    #: The store is misconfigured.
    IDEMPOTENCY_CONFIGURATION_ERROR = "IDEMPOTENCY_CONFIGURATION_ERROR"
    #: No idempotency table name was given.
    IDEMPOTENCY_TABLE_NOT_CONFIGURED = "IDEMPOTENCY_TABLE_NOT_CONFIGURED"
    #: The idempotency table does not exist (or is not active).
    IDEMPOTENCY_TABLE_NOT_FOUND = "IDEMPOTENCY_TABLE_NOT_FOUND"
    #: Create-table of a table that exists (without --exist-ok).
    IDEMPOTENCY_TABLE_EXISTS = "IDEMPOTENCY_TABLE_EXISTS"
    #: The table's key schema is not the store's.
    IDEMPOTENCY_KEY_SCHEMA_MISMATCH = "IDEMPOTENCY_KEY_SCHEMA_MISMATCH"
    #: No DynamoDB client could be created (region unset?).
    IDEMPOTENCY_CLIENT_UNAVAILABLE = "IDEMPOTENCY_CLIENT_UNAVAILABLE"
    #: A store call got an invalid argument (lease, key, owner, TTL).
    IDEMPOTENCY_INVALID_ARGUMENT = "IDEMPOTENCY_INVALID_ARGUMENT"
    #: DynamoDB refused one key's request as invalid.
    IDEMPOTENCY_INVALID_REQUEST = "IDEMPOTENCY_INVALID_REQUEST"
    #: Another invocation took over an expired lease.
    IDEMPOTENCY_LEASE_LOST = "IDEMPOTENCY_LEASE_LOST"
    #: The bundle locator cannot tell whether a pending bundle holds a record.
    IDEMPOTENCY_BUNDLE_UNVERIFIED = "IDEMPOTENCY_BUNDLE_UNVERIFIED"


def _truncate(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    return f"{text[: limit - 1]}…"


def _safe_value(value: Any, depth: int) -> Any:
    """Return a JSON-ready, size-bounded copy of ``value`` with binary content redacted."""
    if value is None or isinstance(value, bool | int | float):
        return value
    if isinstance(value, str):
        return _truncate(value, MAX_STRING_CHARS)
    if isinstance(value, bytes | bytearray | memoryview):
        return f"<{len(value)} bytes redacted>"
    if isinstance(value, Enum):
        return _safe_value(value.value, depth)
    if depth >= MAX_DEPTH:
        return "<nested value omitted>"
    if isinstance(value, Mapping):
        return _safe_mapping(value, depth + 1)
    if isinstance(value, list | tuple | set | frozenset):
        items = list(value)
        out = [_safe_value(item, depth + 1) for item in items[:MAX_SEQUENCE_ITEMS]]
        if len(items) > MAX_SEQUENCE_ITEMS:
            out.append(f"<{len(items) - MAX_SEQUENCE_ITEMS} more items omitted>")
        return out
    # Anything else (objects, exceptions, file handles): its type only, never its repr,
    # which could hold contents or secrets.
    return f"<{type(value).__name__}>"


def _safe_mapping(mapping: Mapping[Any, Any], depth: int = 0) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for index, (raw_key, value) in enumerate(mapping.items()):
        if index >= MAX_CONTEXT_ITEMS:
            out["_omitted_items"] = len(mapping) - MAX_CONTEXT_ITEMS
            break
        key = _truncate(str(raw_key), 64)
        out[key] = REDACTED if _SENSITIVE_KEY.search(key) else _safe_value(value, depth)
    return out


class DataAggregatorError(Exception):
    """Root of every error raised by data_aggregator.

    Args:
        message: A human-readable sentence. It goes to logs, so it must not contain secrets
            or object contents.
        error_code: A stable machine-readable code; defaults to the class's ``default_code``.
        context: Facts about the failure (bucket, key, operation ...). Stored as given;
            [`to_dict`][data_aggregator.exceptions.DataAggregatorError.to_dict] redacts and
            bounds it.
        correlation_id: A request or message id that ties the error to an invocation.
    """

    default_code: ClassVar[str] = ErrorCode.DATA_AGGREGATOR_ERROR
    #: Whether the same work may succeed if tried again later (throttling, timeouts ...).
    retryable: ClassVar[bool] = False

    def __init__(
        self,
        message: str,
        error_code: str | None = None,
        context: Mapping[str, Any] | None = None,
        correlation_id: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        code = error_code or self.default_code
        #: Always the plain string, also when an `ErrorCode` member was given.
        self.error_code: str = code.value if isinstance(code, Enum) else code
        self.context: dict[str, Any] = dict(context or {})
        self.correlation_id = correlation_id

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready mapping for structured logging.

        Context keys that look like credentials or contents (``password``, ``token``,
        ``body``, ``data`` ...) are replaced by ``"[REDACTED]"``; bytes are never included;
        strings, sequences, nesting and the number of keys are bounded.
        """
        return {
            "error_type": type(self).__name__,
            "error_code": self.error_code,
            "message": _truncate(self.message, MAX_MESSAGE_CHARS),
            "retryable": self.retryable,
            "correlation_id": self.correlation_id,
            "context": _safe_mapping(self.context),
        }

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.message!r}, error_code={self.error_code!r})"

    def __reduce__(self) -> tuple[Any, ...]:
        # Keep errors picklable across process pools even with keyword-only subclasses.
        return (_rebuild, (type(self), self.__dict__.copy()))


def _rebuild(cls: type[DataAggregatorError], state: dict[str, Any]) -> DataAggregatorError:
    error = cls.__new__(cls)
    Exception.__init__(error, state.get("message", ""))
    error.__dict__.update(state)
    return error


class TransientError(DataAggregatorError):
    """A failure that may go away on its own: try the same work again later."""

    default_code = ErrorCode.TRANSIENT_ERROR
    retryable = True


class DeadlineExceededError(TransientError):
    """The invocation's time ran out: a request was not sent (or not retried) because it
    could not finish before the deadline. ``context["operation"]`` names the call."""

    default_code = ErrorCode.DEADLINE_EXCEEDED


class ConfigurationError(DataAggregatorError):
    """A configuration value is missing or invalid. ``context["variable"]`` names it."""

    default_code = ErrorCode.CONFIGURATION_ERROR


class HookError(DataAggregatorError):
    """A hook of a [`ReusableProcessor`][data_aggregator.processor.ReusableProcessor]
    subclass raised or returned something unusable.

    Raised where the hook is called and recorded on the records it concerns (their reason
    is ``HOOK_FAILED``). ``hook`` names the hook (``accept``, ``member_name``,
    ``bundle_key`` ...) and ``detail`` says what went wrong (``"raised"``, ``"did not
    return a str"`` ...); both are also in ``context``, with ``cause`` (the type name of
    the exception the hook raised) and ``cause_code`` (its ``error_code``, if any).

    Args:
        hook: The hook's name.
        detail: What went wrong.
        cause: The exception the hook raised (or that refused its result), if any.
        correlation_id: A request or message id that ties the error to an invocation.
    """

    default_code = ErrorCode.HOOK_FAILED

    def __init__(
        self,
        hook: str,
        detail: str,
        *,
        cause: BaseException | None = None,
        correlation_id: str | None = None,
    ) -> None:
        context: dict[str, Any] = {"hook": hook, "detail": detail}
        if cause is not None:
            context["cause"] = type(cause).__name__
            context["cause_code"] = getattr(cause, "error_code", None)
        super().__init__(f"{hook}() failed: {detail}", None, context, correlation_id)
        self.hook = hook
        self.detail = detail


# --------------------------------------------------------------------------- Map batches

#: Failed items named one by one in a `MapBatchFailedError`'s message; beyond, a count.
MAX_MAP_FAILURES_LISTED = 10


@dataclass(frozen=True, slots=True)
class MapItemFailure:
    """One item of a Distributed Map batch that was not bundled.

    Attributes:
        item: ``item-<index>``: its position in the batch's ``Items``.
        reason: Why (a processor ``Reason`` value: ``fetch_failed``, ``timeout`` ...).
        error_code: The error's code, when there is an error.
        bucket: The item's bucket, when the item parsed.
        key: The item's exact key, when the item parsed.
        retryable: Whether running the batch again may bundle it.
    """

    item: str
    reason: str
    error_code: str | None = None
    bucket: str | None = None
    key: str | None = None
    retryable: bool = True

    def line(self) -> str:
        """``item-3 s3://bucket/key: fetch_failed (S3_THROTTLED)``."""
        where = f" s3://{self.bucket}/{self.key}" if self.key is not None else ""
        code = f" ({self.error_code})" if self.error_code else ""
        return f"{self.item}{where}: {self.reason}{code}"


class MapBatchFailedError(DataAggregatorError):
    """Raised by ``ReusableProcessor.handle`` when items of a Step Functions Distributed
    Map item batch were not bundled and one at least may be on a retry.

    Step Functions names the failure after this class: a ``Retry`` with ``ErrorEquals:
    ["MapBatchFailedError"]`` runs the batch again, and once retries are exhausted the batch
    counts against the Map's ``ToleratedFailurePercentage``. Every item that could be
    bundled was bundled and completed before the raise, so the retry finds those items
    already done (duplicates) and works only on the rest. The message names the failed
    items (the first `MAX_MAP_FAILURES_LISTED`), which Step Functions shows as the
    ``Cause``.

    Args:
        failures: The items not bundled.
        items: How many items the batch had.
        correlation_id: The invocation's request id.

    Attributes:
        failures: The items not bundled, in batch order.
        items: How many items the batch had.
    """

    default_code = ErrorCode.MAP_BATCH_FAILED
    retryable = True

    def __init__(
        self,
        failures: Sequence[MapItemFailure],
        items: int,
        *,
        correlation_id: str | None = None,
    ) -> None:
        self.failures = tuple(failures)
        self.items = items
        shown = [failure.line() for failure in self.failures[:MAX_MAP_FAILURES_LISTED]]
        more = len(self.failures) - len(shown)
        if more:
            shown.append(f"and {more} more")
        message = (
            f"{len(self.failures)} of {items} items of the Map batch not bundled: "
            + "; ".join(shown)
        )
        context = {
            "items": items,
            "failed_items": len(self.failures),
            "failures": [
                {"item": f.item, "reason": f.reason, "error_code": f.error_code, "key": f.key}
                for f in self.failures[:MAX_MAP_FAILURES_LISTED]
            ],
        }
        super().__init__(message, None, context, correlation_id)


class MapBatchRefusedError(MapBatchFailedError):
    """A `MapBatchFailedError` whose every failure is permanent (an invalid item, a key the
    sanitizer refuses, access denied ...): running the batch again would fail the same way.

    Leave it out of the ``Retry``'s ``ErrorEquals``: the batch counts as failed at once
    (``ToleratedFailurePercentage``, the ``ResultWriter``'s failed results) and its Cause
    names the items to fix.
    """

    default_code = ErrorCode.MAP_BATCH_REFUSED
    retryable = False


# --------------------------------------------------------------------------- validation


class ValidationErrorCode(str, Enum):
    """Stable codes carried by [`ValidationError`][data_aggregator.exceptions.ValidationError]."""

    INVALID_S3_KEY_TYPE = ErrorCode.INVALID_S3_KEY_TYPE.value
    INVALID_S3_KEY_FORMAT = ErrorCode.INVALID_S3_KEY_FORMAT.value
    INVALID_S3_KEY_LENGTH = ErrorCode.INVALID_S3_KEY_LENGTH.value
    INVALID_S3_KEY_CHARACTER = ErrorCode.INVALID_S3_KEY_CHARACTER.value
    UNSAFE_S3_KEY_PATH = ErrorCode.UNSAFE_S3_KEY_PATH.value
    INVALID_EVENT = ErrorCode.INVALID_EVENT.value
    UNSUPPORTED_EVENT = ErrorCode.UNSUPPORTED_EVENT.value
    BUCKET_NOT_ALLOWED = ErrorCode.BUCKET_NOT_ALLOWED.value
    INVALID_UPLOAD_ARGUMENT = ErrorCode.INVALID_UPLOAD_ARGUMENT.value


class ValidationError(DataAggregatorError):
    """Input that can never be processed as it is (a bad key, a malformed event ...).

    Not retryable: the same input fails the same way. ``error_code`` is one of
    [`ValidationErrorCode`][data_aggregator.exceptions.ValidationErrorCode]'s values.
    """

    default_code = ErrorCode.VALIDATION_ERROR

    def __init__(
        self,
        message: str,
        error_code: str | ValidationErrorCode | None = None,
        context: Mapping[str, Any] | None = None,
        correlation_id: str | None = None,
    ) -> None:
        super().__init__(message, error_code, context, correlation_id)


class EventParseError(ValidationError):
    """An event or SQS message body that is malformed or of an unknown shape."""

    default_code = ErrorCode.INVALID_EVENT


# --------------------------------------------------------------------------- S3


class S3Error(DataAggregatorError):
    """A failed S3 operation. ``operation`` names the API call (``GetObject`` ...)."""

    default_code = ErrorCode.S3_ERROR

    def __init__(
        self,
        message: str,
        error_code: str | None = None,
        context: Mapping[str, Any] | None = None,
        correlation_id: str | None = None,
        *,
        operation: str | None = None,
    ) -> None:
        merged = dict(context or {})
        if operation is not None:
            merged.setdefault("operation", operation)
        super().__init__(message, error_code, merged, correlation_id)
        self.operation = operation


class S3TimeoutError(S3Error, TransientError):
    """An S3 call did not answer in time (the seed's signature):

    ```python
    raise S3TimeoutError(operation="GetObject", timeout_seconds=30.0,
                         context={"bucket": "landing-bucket", "key": "file.txt"})
    ```
    """

    default_code = ErrorCode.S3_TIMEOUT
    retryable = True

    def __init__(
        self,
        *,
        operation: str,
        timeout_seconds: float,
        context: Mapping[str, Any] | None = None,
        message: str | None = None,
        correlation_id: str | None = None,
    ) -> None:
        merged = {**(context or {}), "timeout_seconds": timeout_seconds}
        super().__init__(
            message or f"S3 {operation} timed out after {timeout_seconds:g} seconds",
            None,
            merged,
            correlation_id,
            operation=operation,
        )
        self.timeout_seconds = timeout_seconds


class S3ThrottlingError(S3Error, TransientError):
    """S3 asked us to slow down (``SlowDown``, ``Throttling``, HTTP 503 with throttling)."""

    default_code = ErrorCode.S3_THROTTLED
    retryable = True


class S3ServiceError(S3Error, TransientError):
    """A server-side or connection failure (5xx, reset connection) after client retries."""

    default_code = ErrorCode.S3_SERVICE_ERROR
    retryable = True


class S3AccessDeniedError(S3Error):
    """Access denied: fixing it needs a policy change, not a retry."""

    default_code = ErrorCode.S3_ACCESS_DENIED


class S3ObjectNotFoundError(S3Error):
    """The object (or the requested version) does not exist: deleted before we fetched it."""

    default_code = ErrorCode.S3_OBJECT_NOT_FOUND


class S3ObjectSupersededError(S3Error):
    """The object was overwritten after the event (ETag precondition failed, HTTP 412)."""

    default_code = ErrorCode.S3_OBJECT_SUPERSEDED


class S3KmsKeyError(S3Error):
    """The SSE-KMS key cannot be used (missing, disabled, pending deletion, wrong kind):
    fixing it needs a key or policy change, not a retry."""

    default_code = ErrorCode.S3_KMS_KEY_UNUSABLE


class S3IntegrityError(S3Error):
    """Bytes read do not match what the event announced (size or ETag)."""

    default_code = ErrorCode.S3_INTEGRITY_ERROR


# --------------------------------------------------------------------------- bundles


class BundleError(DataAggregatorError):
    """A bundle could not be written, finished or uploaded."""

    default_code = ErrorCode.BUNDLE_ERROR


class BundleUploadError(BundleError, TransientError):
    """A bundle's upload failed or was discarded; its objects may be bundled on a retry.

    Codes: ``BUNDLE_UPLOAD_FAILED`` (opening, writing or committing the upload failed),
    ``BUNDLE_MEMBER_FAILED`` (a streamed member broke mid-way and spoiled the bundle),
    ``BUNDLE_COMMIT_HOOK_FAILED`` (the caller's ``before_commit`` refused),
    ``BUNDLE_INTERRUPTED`` (the run was interrupted).
    """

    default_code = ErrorCode.BUNDLE_UPLOAD_FAILED
    retryable = True


class ObjectNotTextError(BundleError):
    """A source object is not valid UTF-8 text, so it cannot go into a line-oriented
    (``BUNDLE_FORMAT=concat``) bundle. Not retryable: the same bytes fail again (the
    message reaches the dead-letter queue). ``context`` has the object's ``bucket``,
    ``key``, ``version_id`` and the byte ``offset`` of the first invalid sequence."""

    default_code = ErrorCode.OBJECT_NOT_TEXT


# --------------------------------------------------------------------------- idempotency


class IdempotencyError(DataAggregatorError):
    """Base of idempotency-store failures."""

    default_code = ErrorCode.IDEMPOTENCY_ERROR


class IdempotencyStoreError(IdempotencyError, TransientError):
    """The store could not be reached or throttled us; the records concerned are retried."""

    default_code = ErrorCode.IDEMPOTENCY_STORE_ERROR
    retryable = True


class IdempotencyConfigurationError(IdempotencyError, ConfigurationError):
    """The store is misconfigured: the table is missing or its key schema is wrong."""

    default_code = ErrorCode.IDEMPOTENCY_CONFIGURATION_ERROR


class IdempotencyKeySchemaError(IdempotencyConfigurationError):
    """The table's key schema is not the store's (a string partition key, no sort key)."""

    default_code = ErrorCode.IDEMPOTENCY_KEY_SCHEMA_MISMATCH


class LeaseLostError(IdempotencyError):
    """A record's lease is no longer ours (expired and taken over by another invocation)."""

    default_code = ErrorCode.IDEMPOTENCY_LEASE_LOST
