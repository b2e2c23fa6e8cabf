"""Unwrap Lambda events into S3 records (private; import from `data_aggregator.schemas`).

`parse_event` never raises for one bad SQS message: the message comes back with
``error`` set and the rest of the batch parses. Only a top-level event it cannot read at
all (so that no message could even be named) raises `EventParseError`.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum
from typing import Any, Final

from data_aggregator.exceptions import EventParseError, ValidationError, ValidationErrorCode
from data_aggregator.schemas._eventbridge import record_from_eventbridge
from data_aggregator.schemas._map import is_map_batch, map_item_records
from data_aggregator.schemas._records import S3EventNotificationRecord

__all__ = [
    "Envelope",
    "ParsedMessage",
    "parse_event",
    "parse_sqs_message",
]

_S3_SOURCE: Final = "aws:s3"
_SQS_SOURCE: Final = "aws:sqs"
_SNS_SOURCE: Final = "aws:sns"
_TEST_EVENT: Final = "s3:TestEvent"
_MAX_CONTEXT_KEYS = 16


class Envelope(str, Enum):
    """How an S3 event reached the function."""

    #: S3 -> SQS, or S3 -> SNS -> SQS with raw message delivery (the two are identical).
    SQS_S3 = "sqs_s3"
    #: S3 -> SNS -> SQS without raw message delivery (the body is an SNS notification).
    SQS_SNS = "sqs_sns"
    #: S3 -> EventBridge -> SQS.
    SQS_EVENTBRIDGE = "sqs_eventbridge"
    #: An SQS message whose body could not be recognised (``error`` is set).
    SQS_UNKNOWN = "sqs_unknown"
    #: S3 -> Lambda.
    S3_DIRECT = "s3_direct"
    #: S3 -> SNS -> Lambda.
    SNS_DIRECT = "sns_direct"
    #: S3 -> EventBridge -> Lambda.
    EVENTBRIDGE_DIRECT = "eventbridge_direct"
    #: One item of a Step Functions Distributed Map item batch (ListObjectsV2 or S3
    #: Inventory item reader, with an ``ItemBatcher``).
    STEP_FUNCTIONS_MAP = "step_functions_map"

    @property
    def is_sqs(self) -> bool:
        """Whether the message came from an SQS queue (and can be reported as a failure)."""
        return self.value.startswith("sqs_")


@dataclass(frozen=True, slots=True)
class ParsedMessage:
    """One SQS message (or one direct invocation) and the S3 records it carries.

    Attributes:
        message_id: The SQS ``messageId`` (what ``batchItemFailures`` reports). For direct
            invocations: the SNS ``MessageId``, the EventBridge ``id``, or a stable id
            derived from the event's content (``s3-<sha256 prefix>``). For a Distributed
            Map batch: ``item-<index>``, the item's position in ``Items``.
        envelope: How the event was delivered.
        records: The validated records; empty for test events and failed messages.
        is_test_event: ``s3:TestEvent``: acknowledge and ignore.
        error: Why the whole message failed (malformed body, unknown shape, a record that
            failed validation); ``None`` when it parsed. ``error.error_code`` is the seed
            code for a refused key, ``UNSUPPORTED_EVENT`` for a recognised but non-S3
            message, ``INVALID_EVENT`` otherwise.
        event_source_arn: The queue ARN (``...fifo`` for FIFO queues); ``None`` when direct.
        message_group_id: ``MessageGroupId`` (FIFO queues).
        sequence_number: ``SequenceNumber`` (FIFO queues).
        receive_count: ``ApproximateReceiveCount``.
    """

    message_id: str
    envelope: Envelope
    records: tuple[S3EventNotificationRecord, ...] = ()
    is_test_event: bool = False
    error: ValidationError | None = None
    event_source_arn: str | None = None
    message_group_id: str | None = None
    sequence_number: str | None = None
    receive_count: int | None = None

    @property
    def ok(self) -> bool:
        """Whether the message parsed (``error is None``)."""
        return self.error is None

    @property
    def is_fifo(self) -> bool:
        """Whether the message came from a FIFO queue."""
        return self.event_source_arn is not None and self.event_source_arn.endswith(".fifo")


# --------------------------------------------------------------------------- helpers


def _invalid(message: str, **context: Any) -> EventParseError:
    return EventParseError(message, ValidationErrorCode.INVALID_EVENT, context)


def _unsupported(message: str, **context: Any) -> EventParseError:
    return EventParseError(message, ValidationErrorCode.UNSUPPORTED_EVENT, context)


def _keys_of(value: Mapping[str, Any]) -> list[str]:
    return sorted(str(key) for key in value)[:_MAX_CONTEXT_KEYS]


def _load_object(text: object, what: str) -> Mapping[str, Any]:
    """Parse ``text`` as a JSON object, or raise ``INVALID_EVENT``."""
    if not isinstance(text, str):
        raise _invalid(f"{what} is not a string", value_type=type(text).__name__)
    try:
        value = json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise _invalid(f"{what} is not valid JSON", reason=type(exc).__name__) from None
    if not isinstance(value, dict):
        raise _invalid(f"{what} is not a JSON object", value_type=type(value).__name__)
    return value


def _str_or_none(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


def _stable_id(prefix: str, event: Mapping[str, Any]) -> str:
    canonical = json.dumps(event, sort_keys=True, separators=(",", ":"), default=str)
    digest = hashlib.sha256(canonical.encode("utf-8", "surrogatepass")).hexdigest()
    return f"{prefix}-{digest[:32]}"


def _is_test_event(payload: Mapping[str, Any]) -> bool:
    return payload.get("Event") == _TEST_EVENT


def _is_eventbridge(payload: Mapping[str, Any]) -> bool:
    return "detail-type" in payload and "source" in payload and "detail" in payload


def _is_sns_envelope(payload: Mapping[str, Any]) -> bool:
    return "Type" in payload and "TopicArn" in payload and "MessageId" in payload


# --------------------------------------------------------------------------- S3 records


def _parse_notification(payload: Mapping[str, Any]) -> tuple[S3EventNotificationRecord, ...]:
    """Validate every record of an S3 notification; the first failure fails them all."""
    raw_records = payload.get("Records")
    if not isinstance(raw_records, list) or not raw_records:
        raise _invalid("S3 notification has no records")
    records: list[S3EventNotificationRecord] = []
    for index, raw in enumerate(raw_records):
        if not isinstance(raw, Mapping):
            raise _invalid("S3 notification record is not an object", record_index=index)
        try:
            records.append(S3EventNotificationRecord.from_aws(raw))
        except ValidationError as exc:
            exc.context["record_index"] = index
            raise
    return tuple(records)


_Parsed = tuple[tuple[S3EventNotificationRecord, ...], bool]


def _parse_payload(payload: Mapping[str, Any]) -> _Parsed | None:
    """Records and test flag of an S3 notification, test event or EventBridge event."""
    if isinstance(payload.get("Records"), list):
        return _parse_notification(payload), False
    if _is_test_event(payload):
        return (), True
    if _is_eventbridge(payload):
        return (record_from_eventbridge(payload),), False
    return None


# --------------------------------------------------------------------------- SQS


def _parse_sqs_body(body: object) -> tuple[Envelope, _Parsed | ValidationError]:
    envelope = Envelope.SQS_UNKNOWN
    try:
        payload = _load_object(body, "SQS message body")
        if _is_sns_envelope(payload):
            envelope = Envelope.SQS_SNS
            sns_type = payload.get("Type")
            if sns_type != "Notification":
                raise _unsupported(
                    "SNS message is not a Notification (confirm the subscription?)",
                    sns_type=str(sns_type),
                )
            inner = _load_object(payload.get("Message"), "SNS Message")
            parsed = _parse_payload(inner)
            if parsed is None:
                raise _invalid("SNS Message is not an S3 event", keys=_keys_of(inner))
            return envelope, parsed
        if isinstance(payload.get("Records"), list) or _is_test_event(payload):
            envelope = Envelope.SQS_S3
        elif _is_eventbridge(payload):
            envelope = Envelope.SQS_EVENTBRIDGE
        parsed = _parse_payload(payload)
        if parsed is None:
            raise _invalid("SQS message body is not an S3 event", keys=_keys_of(payload))
    except ValidationError as exc:
        exc.context.setdefault("envelope", envelope.value)
        return envelope, exc
    return envelope, parsed


def parse_sqs_message(record: Mapping[str, Any]) -> ParsedMessage:
    """Parse one record of an SQS-triggered Lambda event.

    Never raises for a bad body: the returned message has ``error`` set instead.

    Raises:
        EventParseError: The record has no ``messageId``, so it cannot even be reported.
    """
    received: object = record  # callers may hand us anything: check at runtime
    message_id = record.get("messageId") if isinstance(received, Mapping) else None
    if not isinstance(message_id, str) or not message_id:
        raise _invalid("SQS record has no messageId")
    attributes = record.get("attributes")
    if not isinstance(attributes, Mapping):
        attributes = {}
    count = attributes.get("ApproximateReceiveCount")
    meta: dict[str, Any] = {
        "message_id": message_id,
        "event_source_arn": _str_or_none(record.get("eventSourceARN")),
        "message_group_id": _str_or_none(attributes.get("MessageGroupId")),
        "sequence_number": _str_or_none(attributes.get("SequenceNumber")),
        "receive_count": int(count) if isinstance(count, str) and count.isdigit() else None,
    }
    if record.get("eventSource") != _SQS_SOURCE:
        error = _invalid("record in an SQS batch does not come from aws:sqs")
        error.correlation_id = message_id
        return ParsedMessage(envelope=Envelope.SQS_UNKNOWN, error=error, **meta)
    envelope, outcome = _parse_sqs_body(record.get("body"))
    if isinstance(outcome, ValidationError):
        outcome.correlation_id = outcome.correlation_id or message_id
        return ParsedMessage(envelope=envelope, error=outcome, **meta)
    records, is_test = outcome
    return ParsedMessage(envelope=envelope, records=records, is_test_event=is_test, **meta)


# --------------------------------------------------------------------------- direct


def _direct(message_id: str, envelope: Envelope, payload: object) -> ParsedMessage:
    """Parse a direct invocation's payload (a mapping, or the JSON string SNS carries)."""
    try:
        if isinstance(payload, Mapping):
            mapping: Mapping[str, Any] = payload
        else:
            mapping = _load_object(payload, "SNS Message")
        parsed = _parse_payload(mapping)
        if parsed is None:
            raise _invalid("event is not an S3 event", keys=_keys_of(mapping))
    except ValidationError as exc:
        exc.context.setdefault("envelope", envelope.value)
        exc.correlation_id = exc.correlation_id or message_id
        return ParsedMessage(message_id=message_id, envelope=envelope, error=exc)
    records, is_test = parsed
    return ParsedMessage(
        message_id=message_id, envelope=envelope, records=records, is_test_event=is_test
    )


def _sns_record(record: Mapping[str, Any]) -> ParsedMessage:
    sns = record.get("Sns")
    if not isinstance(sns, Mapping):
        raise _invalid("SNS record has no Sns object")
    message_id = _str_or_none(sns.get("MessageId")) or _stable_id("sns", record)
    return _direct(message_id, Envelope.SNS_DIRECT, sns.get("Message"))


def _map_item(index: int, item: S3EventNotificationRecord | ValidationError) -> ParsedMessage:
    message_id = f"item-{index}"
    if isinstance(item, ValidationError):
        item.context.setdefault("envelope", Envelope.STEP_FUNCTIONS_MAP.value)
        item.correlation_id = item.correlation_id or message_id
        return ParsedMessage(
            message_id=message_id, envelope=Envelope.STEP_FUNCTIONS_MAP, error=item
        )
    return ParsedMessage(
        message_id=message_id, envelope=Envelope.STEP_FUNCTIONS_MAP, records=(item,)
    )


def _record_source(record: object) -> object:
    if not isinstance(record, Mapping):
        return None
    return record.get("eventSource", record.get("EventSource"))


def parse_event(event: Mapping[str, Any]) -> list[ParsedMessage]:
    """Unwrap a Lambda event into messages and their S3 records.

    Accepts an SQS batch (bodies: S3 notification, ``s3:TestEvent``, SNS notification with
    or without raw delivery, EventBridge event), a direct S3 event, an SNS event, a
    direct EventBridge event and a Step Functions Distributed Map item batch
    (``{"Items": [...], "BatchInput": {...}}``: docs/backfill-step-functions.md). Event
    types are not filtered (deletes parse too): filter on ``record.event_name``.

    Returns:
        One [`ParsedMessage`][data_aggregator.schemas.ParsedMessage] per SQS message, per SNS
        record, per Map item, or one for a direct S3 or EventBridge event. A message that
        cannot be parsed has ``error`` set; the others are unaffected.

    Raises:
        EventParseError: The event itself has an unknown shape (not a mapping, no
            recognisable ``Records``, an SQS record without ``messageId``, a Map batch
            whose ``BatchInput`` is not an object ...).
    """
    received: object = event  # callers may hand us anything: check at runtime
    if not isinstance(received, Mapping):
        raise _invalid("event is not a JSON object", value_type=type(received).__name__)
    records = event.get("Records")
    if isinstance(records, list):
        if not records:
            return []
        source = _record_source(records[0])
        if source == _SQS_SOURCE:
            return [parse_sqs_message(record) for record in records]
        if source == _S3_SOURCE:
            return [_direct(_stable_id("s3", event), Envelope.S3_DIRECT, event)]
        if source == _SNS_SOURCE:
            return [_sns_record(record) for record in records]
        raise _invalid("event Records come from an unknown source", source=str(source))
    if _is_eventbridge(event):
        message_id = _str_or_none(event.get("id")) or _stable_id("eventbridge", event)
        return [_direct(message_id, Envelope.EVENTBRIDGE_DIRECT, event)]
    if is_map_batch(event):
        return [_map_item(index, item) for index, item in enumerate(map_item_records(event))]
    if _is_test_event(event):
        return [_direct(_stable_id("s3", event), Envelope.S3_DIRECT, event)]
    raise _invalid("unknown event shape", keys=_keys_of(event))
