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
├── S3Error
│   ├── S3TimeoutError            (retryable)
│   ├── S3ThrottlingError         (retryable)
│   ├── S3ServiceError            (retryable: 5xx, connection errors)
│   ├── S3AccessDeniedError
│   ├── S3ObjectNotFoundError
│   ├── S3ObjectSupersededError
│   └── S3IntegrityError          (size / ETag mismatch)
├── BundleError
│   └── BundleUploadError         (retryable)
└── IdempotencyError
    ├── IdempotencyStoreError     (retryable)
    ├── IdempotencyConfigurationError
    └── LeaseLostError
```

Retryable S3 and store errors also derive from
[`TransientError`][data_aggregator.exceptions.TransientError], so ``except TransientError``
catches every error worth retrying.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from enum import Enum
from typing import Any, ClassVar

__all__ = [
    "MAX_CONTEXT_ITEMS",
    "MAX_DEPTH",
    "MAX_MESSAGE_CHARS",
    "MAX_SEQUENCE_ITEMS",
    "MAX_STRING_CHARS",
    "REDACTED",
    "BundleError",
    "BundleUploadError",
    "ConfigurationError",
    "DataAggregatorError",
    "EventParseError",
    "HookError",
    "IdempotencyConfigurationError",
    "IdempotencyError",
    "IdempotencyStoreError",
    "LeaseLostError",
    "S3AccessDeniedError",
    "S3Error",
    "S3IntegrityError",
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

    default_code: ClassVar[str] = "DATA_AGGREGATOR_ERROR"
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
        self.error_code: str = error_code or self.default_code
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

    default_code = "TRANSIENT_ERROR"
    retryable = True


class ConfigurationError(DataAggregatorError):
    """A configuration value is missing or invalid. ``context["variable"]`` names it."""

    default_code = "CONFIGURATION_ERROR"


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

    default_code = "HOOK_FAILED"

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


# --------------------------------------------------------------------------- validation


class ValidationErrorCode(str, Enum):
    """Stable codes carried by [`ValidationError`][data_aggregator.exceptions.ValidationError]."""

    INVALID_S3_KEY_TYPE = "INVALID_S3_KEY_TYPE"
    INVALID_S3_KEY_FORMAT = "INVALID_S3_KEY_FORMAT"
    INVALID_S3_KEY_LENGTH = "INVALID_S3_KEY_LENGTH"
    INVALID_S3_KEY_CHARACTER = "INVALID_S3_KEY_CHARACTER"
    UNSAFE_S3_KEY_PATH = "UNSAFE_S3_KEY_PATH"
    INVALID_EVENT = "INVALID_EVENT"
    UNSUPPORTED_EVENT = "UNSUPPORTED_EVENT"
    BUCKET_NOT_ALLOWED = "BUCKET_NOT_ALLOWED"
    INVALID_UPLOAD_ARGUMENT = "INVALID_UPLOAD_ARGUMENT"


class ValidationError(DataAggregatorError):
    """Input that can never be processed as it is (a bad key, a malformed event ...).

    Not retryable: the same input fails the same way. ``error_code`` is one of
    [`ValidationErrorCode`][data_aggregator.exceptions.ValidationErrorCode]'s values.
    """

    default_code = "VALIDATION_ERROR"

    def __init__(
        self,
        message: str,
        error_code: str | ValidationErrorCode | None = None,
        context: Mapping[str, Any] | None = None,
        correlation_id: str | None = None,
    ) -> None:
        code = error_code.value if isinstance(error_code, ValidationErrorCode) else error_code
        super().__init__(message, code, context, correlation_id)


class EventParseError(ValidationError):
    """An event or SQS message body that is malformed or of an unknown shape."""

    default_code = ValidationErrorCode.INVALID_EVENT.value


# --------------------------------------------------------------------------- S3


class S3Error(DataAggregatorError):
    """A failed S3 operation. ``operation`` names the API call (``GetObject`` ...)."""

    default_code = "S3_ERROR"

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

    default_code = "S3_TIMEOUT"
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

    default_code = "S3_THROTTLED"
    retryable = True


class S3ServiceError(S3Error, TransientError):
    """A server-side or connection failure (5xx, reset connection) after client retries."""

    default_code = "S3_SERVICE_ERROR"
    retryable = True


class S3AccessDeniedError(S3Error):
    """Access denied: fixing it needs a policy change, not a retry."""

    default_code = "S3_ACCESS_DENIED"


class S3ObjectNotFoundError(S3Error):
    """The object (or the requested version) does not exist: deleted before we fetched it."""

    default_code = "S3_OBJECT_NOT_FOUND"


class S3ObjectSupersededError(S3Error):
    """The object was overwritten after the event (ETag precondition failed, HTTP 412)."""

    default_code = "S3_OBJECT_SUPERSEDED"


class S3IntegrityError(S3Error):
    """Bytes read do not match what the event announced (size or ETag)."""

    default_code = "S3_INTEGRITY_ERROR"


# --------------------------------------------------------------------------- bundles


class BundleError(DataAggregatorError):
    """A bundle could not be written, finished or uploaded."""

    default_code = "BUNDLE_ERROR"


class BundleUploadError(BundleError, TransientError):
    """A bundle's upload failed or was discarded; its objects may be bundled on a retry.

    Codes: ``BUNDLE_UPLOAD_FAILED`` (opening, writing or committing the upload failed),
    ``BUNDLE_MEMBER_FAILED`` (a streamed member broke mid-way and spoiled the bundle),
    ``BUNDLE_COMMIT_HOOK_FAILED`` (the caller's ``before_commit`` refused),
    ``BUNDLE_INTERRUPTED`` (the run was interrupted).
    """

    default_code = "BUNDLE_UPLOAD_FAILED"
    retryable = True


# --------------------------------------------------------------------------- idempotency


class IdempotencyError(DataAggregatorError):
    """Base of idempotency-store failures."""

    default_code = "IDEMPOTENCY_ERROR"


class IdempotencyStoreError(IdempotencyError, TransientError):
    """The store could not be reached or throttled us; the records concerned are retried."""

    default_code = "IDEMPOTENCY_STORE_ERROR"
    retryable = True


class IdempotencyConfigurationError(IdempotencyError, ConfigurationError):
    """The store is misconfigured: the table is missing or its key schema is wrong."""

    default_code = "IDEMPOTENCY_CONFIGURATION_ERROR"


class LeaseLostError(IdempotencyError):
    """A record's lease is no longer ours (expired and taken over by another invocation)."""

    default_code = "IDEMPOTENCY_LEASE_LOST"
