"""Runtime models of one S3 event record (private; import from `data_aggregator.schemas`).

The one rule that matters most here: a classic S3 notification carries the object key
form-URL-encoded, and `S3EventObject.original_key` is that key decoded **exactly once**
with `urllib.parse.unquote_plus`. Nothing else in the library decodes it again.

Cold start: the models are built lazily (``defer_build``): pydantic builds a model's
validator on its first ``model_validate``, about 10-30 ms of a Lambda's first invocation.
`S3EventNotificationRecord.from_aws` (what the processor calls) first tries `_fast_record`,
which builds the very same record with ``model_construct`` from a record of the shape AWS
sends, checked field by field with the same rules; anything else (a wrong type, an odd
time format, a key the rules refuse) goes through ``model_validate``, whose result or
error is the authority. ``tests/unit/test_schemas_fast_path.py`` pins that both agree.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime  # pydantic needs it at runtime; the fast path too
from enum import Enum
from typing import Annotated, Any
from urllib.parse import unquote_plus

import pydantic
from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator
from pydantic_core import PydanticCustomError, TzInfo
from typing_extensions import Self

from data_aggregator._sizes import MAX_OBJECT_SIZE
from data_aggregator.exceptions import ValidationError, ValidationErrorCode
from data_aggregator.security import MAX_KEY_BYTES, sanitize_s3_key

__all__ = [
    "KEY_ENCODING_CONTEXT",
    "KEY_ERROR_TYPE",
    "MAX_OBJECT_SIZE",
    "KeyEncoding",
    "S3EventBucket",
    "S3EventEntity",
    "S3EventIdentity",
    "S3EventNotificationRecord",
    "S3EventObject",
    "S3EventRequestParameters",
    "validation_error_from_pydantic",
]

#: Validation-context key selecting how ``s3.object.key`` is encoded (a `KeyEncoding`).
KEY_ENCODING_CONTEXT = "data_aggregator.key_encoding"
#: Pydantic error ``type`` of a key refused by decoding or `sanitize_s3_key`; its
#: ``ctx["error_code"]`` is the seed error code.
KEY_ERROR_TYPE = "s3_key_rejected"

# Bucket names: 3-63 lowercase characters today; legacy us-east-1 buckets allow up to 255
# characters with uppercase letters and underscores. Both start and end alphanumeric.
_BUCKET_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{1,253}[A-Za-z0-9]", re.ASCII)


#: An event's ``size``: S3 stores nothing larger than `MAX_OBJECT_SIZE` (5 TiB).
_ObjectSize = Annotated[int, Field(strict=True, ge=0, le=MAX_OBJECT_SIZE)]


class KeyEncoding(str, Enum):
    """How the ``key`` of an event's object is encoded."""

    #: Classic S3 notifications (SQS, SNS, Lambda): form-URL-encoded, decoded once.
    FORM_URLENCODED = "form_urlencoded"
    #: Already the exact key (built by the caller): used as it is.
    NONE = "none"
    #: Not documented (EventBridge): kept as received, with the form-decoded reading
    #: offered as a second candidate when it differs. See docs/schemas.md.
    UNKNOWN = "unknown"


_KEY_HINT_CHARS = 64

# Derived fields: computed from "key", never taken from the input.
_DERIVED_INPUTS = frozenset({"key", "original_key", "key_candidates"})


def _key_error(code: ValidationErrorCode, detail: str) -> PydanticCustomError:
    return PydanticCustomError(
        KEY_ERROR_TYPE,
        "{error_code}: s3.object.key {detail}",
        {"error_code": code.value, "detail": detail},
    )


def _check_exact_key(key: str) -> None:
    """Raise unless ``key`` can be a real S3 key: non-empty, valid UTF-8, <= 1024 bytes."""
    if not key:
        raise _key_error(ValidationErrorCode.INVALID_S3_KEY_FORMAT, "is empty")
    try:
        size = len(key.encode("utf-8"))
    except UnicodeEncodeError:
        raise _key_error(
            ValidationErrorCode.INVALID_S3_KEY_CHARACTER, "is not valid Unicode (lone surrogate)"
        ) from None
    if size > MAX_KEY_BYTES:
        raise _key_error(
            ValidationErrorCode.INVALID_S3_KEY_LENGTH, f"is longer than {MAX_KEY_BYTES} bytes"
        )


def _form_decode(raw: str) -> str:
    """Decode a form-URL-encoded key once (``+`` is a space, ``%XX`` a UTF-8 byte)."""
    try:
        return unquote_plus(raw, encoding="utf-8", errors="strict")
    except UnicodeDecodeError:
        raise _key_error(
            ValidationErrorCode.INVALID_S3_KEY_CHARACTER,
            "has percent-escapes that do not decode to UTF-8",
        ) from None


def _sanitized(original_key: str) -> str:
    try:
        return sanitize_s3_key(original_key)
    except ValidationError as exc:
        code = ValidationErrorCode(exc.error_code)
        raise _key_error(code, f"refused by sanitize_s3_key: {exc.message}") from None


def _encoding_from(info: ValidationInfo) -> KeyEncoding:
    context = info.context
    if isinstance(context, Mapping) and KEY_ENCODING_CONTEXT in context:
        return KeyEncoding(context[KEY_ENCODING_CONTEXT])
    return KeyEncoding.FORM_URLENCODED


def _none_if_blank(value: object) -> object:
    return None if value == "" else value


class S3EventIdentity(BaseModel):
    """A principal (``userIdentity`` or ``bucket.ownerIdentity``)."""

    model_config = ConfigDict(
        frozen=True, extra="ignore", hide_input_in_errors=True, defer_build=True
    )

    principal_id: str | None = Field(default=None, alias="principalId")


class S3EventRequestParameters(BaseModel):
    """``requestParameters`` of a record."""

    model_config = ConfigDict(
        frozen=True, extra="ignore", hide_input_in_errors=True, defer_build=True
    )

    source_ip_address: str | None = Field(default=None, alias="sourceIPAddress")


class S3EventBucket(BaseModel):
    """``s3.bucket``: ``name`` is validated against S3's bucket naming rules."""

    model_config = ConfigDict(
        frozen=True, extra="ignore", hide_input_in_errors=True, defer_build=True
    )

    name: str
    arn: str | None = None
    owner_identity: S3EventIdentity | None = Field(default=None, alias="ownerIdentity")

    @field_validator("name")
    @classmethod
    def _valid_bucket_name(cls, value: str) -> str:
        if _BUCKET_NAME.fullmatch(value) is None:
            msg = "not a valid S3 bucket name"
            raise ValueError(msg)
        return value


class S3EventObject(BaseModel):
    """``s3.object`` with the key decoded once and sanitized.

    Validated from AWS's shape (``key``, ``size``, ``eTag``, ``versionId``, ``sequencer``).

    Attributes:
        original_key: The exact S3 key, for S3 calls (the event key decoded exactly once).
        key: ``sanitize_s3_key(original_key)``: the safe archive member name.
        key_candidates: Exact keys the object may have, most likely first. One entry for
            classic notifications; two when the encoding is unknown and both readings differ
            (EventBridge): confirm against S3 (size / ETag) and call
            [`confirm_key`][data_aggregator.schemas.S3EventNotificationRecord.confirm_key].
        size: Size in bytes (0 to 5 TiB); ``None`` when the event has none (deletes).
        e_tag: The ETag without surrounding quotes; ``None`` when absent or empty.
        version_id: The version id; ``None`` when the bucket is not versioned.
        sequencer: Hex string ordering events for one key; ``None`` when absent.
    """

    model_config = ConfigDict(
        frozen=True, extra="ignore", hide_input_in_errors=True, defer_build=True
    )

    original_key: str
    key: str
    key_candidates: tuple[str, ...]
    size: _ObjectSize | None = None
    e_tag: str | None = Field(default=None, alias="eTag")
    version_id: str | None = Field(default=None, alias="versionId")
    sequencer: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _decode_key(cls, data: Any, info: ValidationInfo) -> Any:
        if not isinstance(data, Mapping):
            return data  # pydantic reports the type error
        raw = data.get("key")
        if not isinstance(raw, str):
            raise _key_error(ValidationErrorCode.INVALID_S3_KEY_TYPE, "must be a string")
        encoding = _encoding_from(info)
        try:
            original = _form_decode(raw) if encoding is KeyEncoding.FORM_URLENCODED else raw
            _check_exact_key(original)
            safe = _sanitized(original)
        except PydanticCustomError as exc:
            # Name the key (bounded) so the failure can be traced to its object.
            context = {**(exc.context or {}), "key_hint": repr(raw[:_KEY_HINT_CHARS])}
            raise PydanticCustomError(exc.type, exc.message_template, context) from None
        candidates: tuple[str, ...] = (original,)
        if encoding is KeyEncoding.UNKNOWN:
            candidates += _alternative_readings(raw)
        out = {k: v for k, v in data.items() if k not in _DERIVED_INPUTS}
        out["original_key"] = original
        out["key"] = safe
        out["key_candidates"] = candidates
        return out

    @field_validator("e_tag", mode="before")
    @classmethod
    def _strip_etag_quotes(cls, value: object) -> object:
        if isinstance(value, str):
            value = value.strip('"')
        return _none_if_blank(value)

    @field_validator("version_id", "sequencer", mode="before")
    @classmethod
    def _blank_is_none(cls, value: object) -> object:
        return _none_if_blank(value)


def _alternative_readings(raw: str) -> tuple[str, ...]:
    """The form-decoded reading of ``raw`` when it differs and is a possible S3 key."""
    try:
        decoded = unquote_plus(raw, encoding="utf-8", errors="strict")
        if decoded == raw:
            return ()
        _check_exact_key(decoded)
    except (UnicodeDecodeError, PydanticCustomError):
        return ()
    return (decoded,)


class S3EventEntity(BaseModel):
    """``s3``: the bucket and the object of one record."""

    model_config = ConfigDict(
        frozen=True, extra="ignore", hide_input_in_errors=True, defer_build=True
    )

    s3_schema_version: str | None = Field(default=None, alias="s3SchemaVersion")
    configuration_id: str | None = Field(default=None, alias="configurationId")
    bucket: S3EventBucket
    object: S3EventObject


class S3EventNotificationRecord(BaseModel):
    """One S3 event record, validated, immutable, with the key decoded once and sanitized.

    Build it from the raw AWS record with ``S3EventNotificationRecord.model_validate(raw)``
    (a pydantic ``ValidationError`` on bad input, whose message carries the seed code for
    key problems) or [`from_aws`][data_aggregator.schemas.S3EventNotificationRecord.from_aws]
    (our [`ValidationError`][data_aggregator.exceptions.ValidationError]).

    Two records are equal, and hash alike, when their
    [`identity`][data_aggregator.schemas.S3EventNotificationRecord.identity] is equal:
    ``(bucket, original key, version id, sequencer)``.
    """

    model_config = ConfigDict(
        frozen=True, extra="ignore", hide_input_in_errors=True, defer_build=True
    )

    event_version: str | None = Field(default=None, alias="eventVersion")
    event_source: str | None = Field(default=None, alias="eventSource")
    aws_region: str | None = Field(default=None, alias="awsRegion")
    event_time: datetime = Field(alias="eventTime")
    event_name: str = Field(alias="eventName", min_length=1)
    user_identity: S3EventIdentity | None = Field(default=None, alias="userIdentity")
    request_parameters: S3EventRequestParameters | None = Field(
        default=None, alias="requestParameters"
    )
    response_elements: dict[str, str] | None = Field(default=None, alias="responseElements")
    s3: S3EventEntity

    @field_validator("event_name")
    @classmethod
    def _without_s3_prefix(cls, value: str) -> str:
        # Classic notifications say "ObjectCreated:Put"; S3-compatible stores and
        # configuration documents say "s3:ObjectCreated:Put". Keep one spelling.
        name = value.removeprefix("s3:")
        if not name:
            msg = "event name is empty"
            raise ValueError(msg)
        return name

    # ------------------------------------------------------------------ conveniences

    @property
    def bucket_name(self) -> str:
        """The (validated) bucket name."""
        return self.s3.bucket.name

    @property
    def version_id(self) -> str | None:
        """The object's version id, ``None`` for unversioned buckets."""
        return self.s3.object.version_id

    @property
    def sequencer(self) -> str | None:
        """The event sequencer (hex), ``None`` when the event has none."""
        return self.s3.object.sequencer

    @property
    def e_tag(self) -> str | None:
        """The object's ETag without quotes, ``None`` when absent."""
        return self.s3.object.e_tag

    @property
    def identity(self) -> tuple[str, str, str | None, str | None]:
        """``(bucket, original key, version id, sequencer)``: what equality and hash use."""
        obj = self.s3.object
        return (self.s3.bucket.name, obj.original_key, obj.version_id, obj.sequencer)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, S3EventNotificationRecord):
            return NotImplemented
        return self.identity == other.identity

    def __hash__(self) -> int:
        return hash(self.identity)

    # ------------------------------------------------------------------ constructors

    @classmethod
    def from_aws(
        cls,
        raw: Mapping[str, Any],
        *,
        key_encoding: KeyEncoding = KeyEncoding.FORM_URLENCODED,
    ) -> Self:
        """Validate one raw AWS record.

        Args:
            raw: The record as AWS sends it (camelCase keys).
            key_encoding: How ``s3.object.key`` is encoded; classic notifications use the
                default, `KeyEncoding.NONE` takes the key as the exact key.

        Raises:
            ValidationError: ``error_code`` is the seed code when the key is refused,
                ``INVALID_EVENT`` for any other problem.
        """
        fast = _fast_record(raw, KeyEncoding(key_encoding))
        if fast is not None and type(fast) is cls:
            return fast
        try:
            return cls.model_validate(raw, context={KEY_ENCODING_CONTEXT: key_encoding})
        except pydantic.ValidationError as exc:
            raise validation_error_from_pydantic(exc) from None

    def confirm_key(self, candidate: str) -> Self:
        """Return a copy whose exact key is ``candidate``, one of `key_candidates`.

        Used once S3 confirmed which reading of an ambiguously encoded key exists (by size
        and ETag); the archive name is recomputed from it.

        Raises:
            ValidationError: ``INVALID_EVENT`` when ``candidate`` is not a candidate; the
                seed code when [`sanitize_s3_key`][data_aggregator.security.sanitize_s3_key]
                refuses it.
        """
        obj = self.s3.object
        if candidate not in obj.key_candidates:
            msg = "confirm_key() accepts only one of s3.object.key_candidates"
            raise ValidationError(msg, ValidationErrorCode.INVALID_EVENT)
        if candidate == obj.original_key and len(obj.key_candidates) == 1:
            return self
        safe = sanitize_s3_key(candidate)
        new_object = obj.model_copy(
            update={"original_key": candidate, "key": safe, "key_candidates": (candidate,)}
        )
        new_s3 = self.s3.model_copy(update={"object": new_object})
        return self.model_copy(update={"s3": new_s3})


# ----------------------------------------------------------------------- the fast path
# What `model_validate` makes of a record of AWS's usual shape, made without building the
# models' validators. Each helper raises `_NotFastError` for anything outside that shape (the
# caller then validates with pydantic); none of them ever accepts what pydantic refuses.


class _NotFastError(Exception):
    """The input is not of the shape the fast path handles."""


# The time format S3 writes ("2024-06-01T12:00:00.000Z"); pydantic reads more formats.
_EVENT_TIME = re.compile(
    r"([0-9]{4})-([0-9]{2})-([0-9]{2})T([0-9]{2}):([0-9]{2}):([0-9]{2})(?:\.([0-9]{1,6}))?Z",
    re.ASCII,
)
_UTC = TzInfo(0)  # what pydantic attaches to a time ending in "Z"


def _dict(value: object) -> dict[str, Any]:
    if type(value) is not dict:
        raise _NotFastError
    return value


def _optional_str(data: dict[str, Any], alias: str) -> str | None:
    value = data.get(alias)
    if value is None or type(value) is str:
        return value
    raise _NotFastError


def _blank_none_str(data: dict[str, Any], alias: str) -> str | None:
    """``version_id`` / ``sequencer``: blank is ``None``, else a string."""
    value = _optional_str(data, alias)
    return None if value == "" else value


def _present(data: dict[str, Any], aliases: dict[str, str]) -> set[str]:
    """The fields set by ``data``: those whose alias is a key (as pydantic counts them)."""
    return {field for field, alias in aliases.items() if alias in data}


def _identity(value: object) -> S3EventIdentity | None:
    if value is None:
        return None
    data = _dict(value)
    fields = {"principal_id": "principalId"}
    return S3EventIdentity.model_construct(
        _present(data, fields), principal_id=_optional_str(data, "principalId")
    )


def _event_time(value: object) -> datetime:
    if type(value) is not str:
        raise _NotFastError
    match = _EVENT_TIME.fullmatch(value)
    if match is None:
        raise _NotFastError
    year, month, day, hour, minute, second, fraction = match.groups()
    try:
        return datetime(
            int(year),
            int(month),
            int(day),
            int(hour),
            int(minute),
            int(second),
            int((fraction or "0").ljust(6, "0")),
            tzinfo=_UTC,
        )
    except ValueError:
        raise _NotFastError from None


def _object(value: object, encoding: KeyEncoding) -> S3EventObject:
    data = _dict(value)
    raw = data.get("key")
    if type(raw) is not str:
        raise _NotFastError
    try:
        original = _form_decode(raw) if encoding is KeyEncoding.FORM_URLENCODED else raw
        _check_exact_key(original)
        safe = _sanitized(original)
    except PydanticCustomError:
        raise _NotFastError from None
    candidates: tuple[str, ...] = (original,)
    if encoding is KeyEncoding.UNKNOWN:
        candidates += _alternative_readings(raw)
    size = data.get("size")
    if size is not None and not (type(size) is int and 0 <= size <= MAX_OBJECT_SIZE):
        raise _NotFastError
    e_tag = data.get("eTag")
    if isinstance(e_tag, str):
        e_tag = e_tag.strip('"')
    if e_tag == "":
        e_tag = None
    if e_tag is not None and type(e_tag) is not str:
        raise _NotFastError
    fields = {"size": "size", "e_tag": "eTag", "version_id": "versionId"}
    fields["sequencer"] = "sequencer"
    return S3EventObject.model_construct(
        {"original_key", "key", "key_candidates"} | _present(data, fields),
        original_key=original,
        key=safe,
        key_candidates=candidates,
        size=size,
        e_tag=e_tag,
        version_id=_blank_none_str(data, "versionId"),
        sequencer=_blank_none_str(data, "sequencer"),
    )


def _entity(value: object, encoding: KeyEncoding) -> S3EventEntity:
    data = _dict(value)
    bucket = _dict(data.get("bucket"))
    name = bucket.get("name")
    if type(name) is not str or _BUCKET_NAME.fullmatch(name) is None:
        raise _NotFastError
    bucket_fields = {"name": "name", "arn": "arn", "owner_identity": "ownerIdentity"}
    made_bucket = S3EventBucket.model_construct(
        _present(bucket, bucket_fields),
        name=name,
        arn=_optional_str(bucket, "arn"),
        owner_identity=_identity(bucket.get("ownerIdentity")),
    )
    fields = {
        "s3_schema_version": "s3SchemaVersion",
        "configuration_id": "configurationId",
        "bucket": "bucket",
        "object": "object",
    }
    return S3EventEntity.model_construct(
        _present(data, fields),
        s3_schema_version=_optional_str(data, "s3SchemaVersion"),
        configuration_id=_optional_str(data, "configurationId"),
        bucket=made_bucket,
        object=_object(data.get("object"), encoding),
    )


_RECORD_FIELDS = {
    "event_version": "eventVersion",
    "event_source": "eventSource",
    "aws_region": "awsRegion",
    "event_time": "eventTime",
    "event_name": "eventName",
    "user_identity": "userIdentity",
    "request_parameters": "requestParameters",
    "response_elements": "responseElements",
    "s3": "s3",
}


def _fast_record(raw: object, encoding: KeyEncoding) -> S3EventNotificationRecord | None:
    """The record ``model_validate`` would make of ``raw``, or ``None`` when ``raw`` is not
    of the usual shape (pydantic then decides, and reports what is wrong)."""
    try:
        data = _dict(raw)
        name = data.get("eventName")
        if type(name) is not str or not name.removeprefix("s3:"):
            raise _NotFastError
        parameters = data.get("requestParameters")
        made_parameters = None
        if parameters is not None:
            parameters = _dict(parameters)
            made_parameters = S3EventRequestParameters.model_construct(
                _present(parameters, {"source_ip_address": "sourceIPAddress"}),
                source_ip_address=_optional_str(parameters, "sourceIPAddress"),
            )
        elements = data.get("responseElements")
        if elements is not None:
            elements = _dict(elements)
            if not all(type(k) is str and type(v) is str for k, v in elements.items()):
                raise _NotFastError
            elements = dict(elements)
        return S3EventNotificationRecord.model_construct(
            _present(data, _RECORD_FIELDS),
            event_version=_optional_str(data, "eventVersion"),
            event_source=_optional_str(data, "eventSource"),
            aws_region=_optional_str(data, "awsRegion"),
            event_time=_event_time(data.get("eventTime")),
            event_name=name.removeprefix("s3:"),
            user_identity=_identity(data.get("userIdentity")),
            request_parameters=made_parameters,
            response_elements=elements,
            s3=_entity(data.get("s3"), encoding),
        )
    except _NotFastError:
        return None


def validation_error_from_pydantic(
    exc: pydantic.ValidationError,
    *,
    message: str = "invalid S3 event record",
    context: Mapping[str, Any] | None = None,
) -> ValidationError:
    """Convert a pydantic error into our
    [`ValidationError`][data_aggregator.exceptions.ValidationError].

    ``error_code`` is the seed code of the first refused key if any, else ``INVALID_EVENT``.
    ``context["errors"]`` lists each problem's location, type and message (never the input);
    for a refused key, ``context["key_hint"]`` is the repr of its first 64 characters.
    """
    errors = exc.errors(include_url=False, include_input=False)
    code = ValidationErrorCode.INVALID_EVENT.value
    extra: dict[str, Any] = {}
    for error in errors:
        if error["type"] == KEY_ERROR_TYPE:
            error_context = error.get("ctx", {})
            code = str(error_context.get("error_code", code))
            if "key_hint" in error_context:
                extra["key_hint"] = error_context["key_hint"]
            break
    details = [
        {
            "loc": ".".join(str(part) for part in error["loc"]),
            "type": error["type"],
            "msg": error["msg"],
        }
        for error in errors
    ]
    summary = "; ".join(f"{item['loc'] or '<record>'}: {item['msg']}" for item in details)
    return ValidationError(
        f"{message}: {summary}",
        code,
        {**(context or {}), **extra, "errors": details},
    )
