"""Unit tests for envelope parsing: ``data_aggregator.schemas.parse_event``."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import pytest

from data_aggregator.exceptions import EventParseError, ValidationError
from data_aggregator.schemas import (
    Envelope,
    ParsedMessage,
    S3EventNotificationRecord,
    parse_event,
    parse_sqs_message,
    record_from_eventbridge,
)
from data_aggregator.testing import sns_notification
from tests.events import event_names, load_event
from tests.processor_support import sqs_batch

S3_NOTIFICATIONS = [
    "s3_object_created_put",
    "s3_object_created_put_versioned",
    "s3_object_created_post",
    "s3_object_created_copy",
    "s3_object_created_complete_multipart_upload",
    "s3_object_removed_delete",
    "s3_object_removed_delete_marker_created",
]

# fixture -> (envelope of each message, records per message, test-event flags)
EXPECTED: dict[str, tuple[list[Envelope], list[int], list[bool]]] = {
    **{name: ([Envelope.S3_DIRECT], [1], [False]) for name in S3_NOTIFICATIONS},
    "s3_test_event": ([Envelope.S3_DIRECT], [0], [True]),
    "sqs_s3_put": ([Envelope.SQS_S3], [1], [False]),
    "sqs_s3_batch": ([Envelope.SQS_S3] * 8, [1] * 7 + [0], [False] * 7 + [True]),
    "sqs_fifo_s3_put": ([Envelope.SQS_S3] * 2, [1, 1], [False, False]),
    "sqs_sns_s3_put": ([Envelope.SQS_SNS] * 2, [1, 0], [False, True]),
    "sqs_sns_raw_s3_put": ([Envelope.SQS_S3] * 2, [1, 0], [False, True]),
    "sqs_eventbridge_batch": ([Envelope.SQS_EVENTBRIDGE] * 3, [1, 1, 1], [False] * 3),
    "eventbridge_object_created": ([Envelope.EVENTBRIDGE_DIRECT], [1], [False]),
    "eventbridge_object_created_put": ([Envelope.EVENTBRIDGE_DIRECT], [1], [False]),
    "eventbridge_object_deleted": ([Envelope.EVENTBRIDGE_DIRECT], [1], [False]),
    "sns_direct_s3_put": ([Envelope.SNS_DIRECT], [1], [False]),
    "sfn_map_list_objects_v2_batch": ([Envelope.STEP_FUNCTIONS_MAP] * 3, [1] * 3, [False] * 3),
    "sfn_map_s3_inventory_batch": ([Envelope.STEP_FUNCTIONS_MAP] * 3, [1] * 3, [False] * 3),
    "sfn_map_s3_inventory_minimal_batch": (
        [Envelope.STEP_FUNCTIONS_MAP] * 2,
        [0] * 2,
        [False] * 2,
    ),
}
#: Fixtures whose every message is refused, with what the error says: an inventory
#: without the ETag field (AWS's minimal example) gives objects no content identity.
REFUSED = {"sfn_map_s3_inventory_minimal_batch": "ETag and Size"}

GOOD_BODY = json.dumps(load_event("s3_object_created_put"))


def only(messages: list[ParsedMessage]) -> ParsedMessage:
    """The single message of a parse."""
    assert len(messages) == 1
    return messages[0]


def notification_body(key: str = "a+b.txt", size: object = 1) -> str:
    """An S3 notification body whose single record has the given event key and size."""
    notification = load_event("s3_object_created_put")
    notification["Records"][0]["s3"]["object"]["key"] = key
    notification["Records"][0]["s3"]["object"]["size"] = size
    return json.dumps(notification)


# --------------------------------------------------------------------------- fixtures


def test_every_fixture_is_covered() -> None:
    """Each JSON fixture has an expectation in this module."""
    assert sorted(f"{name}.json" for name in EXPECTED) == event_names()


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_every_fixture_parses(name: str) -> None:
    """Every fixture parses into the expected envelopes and record counts, without error
    (or with the expected one, `REFUSED`)."""
    envelopes, counts, test_flags = EXPECTED[name]

    messages = parse_event(load_event(name))

    if name in REFUSED:
        assert all(REFUSED[name] in str(message.error) for message in messages)
    else:
        assert [message.error for message in messages] == [None] * len(messages)
        assert all(message.ok for message in messages)
    assert [message.envelope for message in messages] == envelopes
    assert [len(message.records) for message in messages] == counts
    assert [message.is_test_event for message in messages] == test_flags


def test_sqs_batch_wraps_each_notification() -> None:
    """Each SQS message carries the records of the notification in its body, in order."""
    event = load_event("sqs_s3_batch")

    messages = parse_event(event)

    assert [m.message_id for m in messages] == [r["messageId"] for r in event["Records"]]
    for name, message in zip(S3_NOTIFICATIONS, messages, strict=False):
        expected = S3EventNotificationRecord.model_validate(load_event(name)["Records"][0])
        assert message.records == (expected,)
        assert message.event_source_arn == "arn:aws:sqs:us-east-1:123456789012:bundle-queue"
        assert not message.is_fifo
        assert message.receive_count == 1
    assert [m.records[0].event_name for m in messages[:7]] == [
        "ObjectCreated:Put",
        "ObjectCreated:Put",
        "ObjectCreated:Post",
        "ObjectCreated:Copy",
        "ObjectCreated:CompleteMultipartUpload",
        "ObjectRemoved:Delete",
        "ObjectRemoved:DeleteMarkerCreated",
    ]


def test_sqs_message_keys_are_decoded_once() -> None:
    """Keys inside SQS bodies are form-decoded exactly once (literal ``%2B`` survives)."""
    messages = parse_event(load_event("sqs_s3_batch"))

    assert messages[1].records[0].s3.object.original_key == "incoming/c++/red flower+%2B.jpg"
    assert messages[2].records[0].s3.object.original_key == (
        "uploads/\u30c6\u30b9\u30c8/\U0001f4c8 chart.csv"
    )


def test_fifo_messages_expose_group_and_sequence() -> None:
    """Messages from a FIFO queue say so and carry their group id and sequence number."""
    messages = parse_event(load_event("sqs_fifo_s3_put"))

    assert all(message.is_fifo for message in messages)
    assert [message.message_group_id for message in messages] == ["amzn-s3-demo-bucket"] * 2
    assert [message.sequence_number for message in messages] == [
        "18627299827412380000",
        "18627299827412380001",
    ]


def test_sns_notification_in_sqs_is_unwrapped() -> None:
    """An SNS notification body (no raw delivery) yields the S3 records of its Message."""
    message, test_message = parse_event(load_event("sqs_sns_s3_put"))

    assert message.envelope is Envelope.SQS_SNS
    assert message.records[0].s3.object.original_key == "incoming/c++/red flower+%2B.jpg"
    assert message.records[0].version_id == "096fKKXTRTtl3on89fVO.nfljtsv6qko"
    assert test_message.is_test_event
    assert test_message.records == ()


def test_sns_raw_delivery_reads_like_direct_sqs() -> None:
    """With raw message delivery the body is the S3 notification itself (envelope SQS_S3)."""
    raw_message = parse_event(load_event("sqs_sns_raw_s3_put"))[0]
    sns_message = parse_event(load_event("sqs_sns_s3_put"))[0]

    assert raw_message.envelope is Envelope.SQS_S3
    assert raw_message.records == sns_message.records


def test_eventbridge_in_sqs_maps_detail_to_records() -> None:
    """EventBridge events in SQS become records with classic event names and fields."""
    created, put, deleted = parse_event(load_event("sqs_eventbridge_batch"))

    record = created.records[0]
    assert record.event_name == "ObjectCreated:CompleteMultipartUpload"
    assert record.s3.object.original_key == "raw/health-check/2023-08-08T14:03:40.532432.zip"
    assert record.s3.object.key_candidates == (record.s3.object.original_key,)
    assert record.s3.object.size == 198524144
    assert record.e_tag == "4af981f98d22a0b9979da24b259e5e42-12"
    assert record.version_id == "uhggCJ2_B6gU2JaXWXebnXFDstO0ID6G"
    assert record.sequencer == "0064D3901D00059242"
    assert record.bucket_name == "amzn-s3-demo-bucket"
    assert record.s3.bucket.arn == "arn:aws:s3:::amzn-s3-demo-bucket"
    assert record.aws_region == "us-east-1"
    assert put.records[0].event_name == "ObjectCreated:Put"
    assert deleted.records[0].event_name == "ObjectRemoved:DeleteMarkerCreated"
    assert deleted.records[0].s3.object.size is None
    assert deleted.records[0].e_tag is None


def test_eventbridge_key_keeps_the_literal_reading_first() -> None:
    """An EventBridge key is kept as received; its form-decoded reading is the second candidate."""
    record = only(parse_event(load_event("eventbridge_object_created_put"))).records[0]

    assert record.s3.object.original_key == "incoming/red flower+1.jpg"
    assert record.s3.object.key_candidates == (
        "incoming/red flower+1.jpg",
        "incoming/red flower 1.jpg",
    )


def test_direct_eventbridge_uses_the_event_id() -> None:
    """A direct EventBridge invocation is one message named by the event's id."""
    event = load_event("eventbridge_object_created")

    message = only(parse_event(event))

    assert message.message_id == event["id"]
    assert message.envelope is Envelope.EVENTBRIDGE_DIRECT
    assert message.event_source_arn is None
    assert not message.envelope.is_sqs


@pytest.mark.parametrize(
    ("detail_type", "detail", "event_name"),
    [
        ("Object Created", {"reason": "POST Object"}, "ObjectCreated:Post"),
        ("Object Created", {"reason": "CopyObject"}, "ObjectCreated:Copy"),
        ("Object Created", {"reason": "SomethingNew"}, "ObjectCreated:SomethingNew"),
        ("Object Created", {}, "ObjectCreated:Unknown"),
        (
            "Object Deleted",
            {"reason": "DeleteObject", "deletion-type": "Permanently Deleted"},
            "ObjectRemoved:Delete",
        ),
        (
            "Object Deleted",
            {"reason": "Lifecycle Expiration", "deletion-type": "Delete Marker Created"},
            "LifecycleExpiration:DeleteMarkerCreated",
        ),
        ("Object Restore Completed", {}, "ObjectRestore:Completed"),
        ("Object Tags Added", {}, "ObjectTagging:Put"),
        ("Object Storage Class Changed", {}, "LifecycleTransition"),
        ("Something Else", {}, "Unknown:Something Else"),
    ],
)
def test_eventbridge_detail_types_map_to_event_names(
    detail_type: str, detail: dict[str, Any], event_name: str
) -> None:
    """EventBridge ``detail-type`` and ``reason`` map to the classic ``eventName``."""
    event = load_event("eventbridge_object_created")
    event["detail-type"] = detail_type
    event["detail"].pop("reason")
    event["detail"].update(detail)

    assert record_from_eventbridge(event).event_name == event_name


def test_direct_s3_event_has_a_stable_synthetic_id() -> None:
    """A direct S3 invocation gets a content-derived id, the same on every parse."""
    first = only(parse_event(load_event("s3_object_created_put")))
    again = only(parse_event(load_event("s3_object_created_put")))
    other = only(parse_event(load_event("s3_object_created_copy")))

    assert first.message_id == again.message_id
    assert first.message_id.startswith("s3-")
    assert first.message_id != other.message_id
    assert first.envelope is Envelope.S3_DIRECT


def test_sns_direct_uses_the_sns_message_id() -> None:
    """An SNS-triggered invocation yields one message per SNS record, named by MessageId."""
    message = only(parse_event(load_event("sns_direct_s3_put")))

    assert message.message_id == "95df01b4-ee98-5cb9-9903-4c221d41eb5e"
    assert message.records[0].s3.object.original_key.startswith("incoming/sensor 42/")


def test_delete_events_are_not_filtered() -> None:
    """Parsing keeps every event type; filtering on ``event_name`` is the processor's job."""
    message = only(parse_event(load_event("s3_object_removed_delete")))

    assert message.records[0].event_name == "ObjectRemoved:Delete"


# --------------------------------------------------------------------------- failures


def test_one_bad_message_does_not_fail_the_batch() -> None:
    """Each malformed message carries its own error; the good messages still parse."""
    bodies = [
        GOOD_BODY,  # 0
        "{not json",  # 1
        json.dumps({"hello": "world"}),  # 2
        notification_body(key="..%2F..%2Fetc%2Fpasswd"),  # 3
        notification_body(size=-5),  # 4
        sns_notification("not json"),  # 5
        json.dumps({**load_event("eventbridge_object_created"), "source": "aws.ec2"}),  # 6
        json.dumps({"Records": []}),  # 7
        json.dumps([1, 2, 3]),  # 8
        "[" * 100_000,  # 9
        json.dumps(load_event("s3_test_event")),  # 10
    ]
    event = sqs_batch(bodies)

    messages = parse_event(event)

    codes = [None if m.error is None else m.error.error_code for m in messages]
    assert codes == [
        None,
        "INVALID_EVENT",
        "INVALID_EVENT",
        "UNSAFE_S3_KEY_PATH",
        "INVALID_EVENT",
        "INVALID_EVENT",
        "UNSUPPORTED_EVENT",
        "INVALID_EVENT",
        "INVALID_EVENT",
        "INVALID_EVENT",
        None,
    ]
    assert len(messages[0].records) == 1
    assert messages[10].is_test_event
    for message in messages:
        if message.error is not None:
            assert message.records == ()
            assert message.error.correlation_id == message.message_id
            assert isinstance(message.error, ValidationError)
    assert [m.envelope for m in messages[:7]] == [
        Envelope.SQS_S3,
        Envelope.SQS_UNKNOWN,
        Envelope.SQS_UNKNOWN,
        Envelope.SQS_S3,
        Envelope.SQS_S3,
        Envelope.SQS_SNS,
        Envelope.SQS_EVENTBRIDGE,
    ]


def test_one_bad_record_fails_the_whole_message() -> None:
    """A message is all or nothing: one refused record fails all its records."""
    notification = load_event("s3_object_created_put")
    bad = json.loads(json.dumps(notification["Records"][0]))
    bad["s3"]["object"]["key"] = "a/%2E%2E/b"
    notification["Records"].append(bad)

    message = only(parse_event(sqs_batch([json.dumps(notification)])))

    assert message.records == ()
    assert message.error is not None
    assert message.error.error_code == "UNSAFE_S3_KEY_PATH"
    assert message.error.context["record_index"] == 1
    assert message.error.context["envelope"] == "sqs_s3"


def test_traversal_key_in_direct_event_fails_the_message() -> None:
    """A refused key in a direct S3 event fails that message without raising."""
    event = load_event("s3_object_created_put")
    event["Records"][0]["s3"]["object"]["key"] = "..%5Cwindows"

    message = only(parse_event(event))

    assert message.error is not None
    assert message.error.error_code == "UNSAFE_S3_KEY_PATH"


def test_traversal_key_in_eventbridge_event_fails_the_message() -> None:
    """A refused EventBridge key fails its message with the seed code."""
    event = load_event("eventbridge_object_created")
    event["detail"]["object"]["key"] = "../../x"

    message = only(parse_event(sqs_batch([json.dumps(event)])))

    assert message.error is not None
    assert message.error.error_code == "UNSAFE_S3_KEY_PATH"
    assert message.envelope is Envelope.SQS_EVENTBRIDGE


@pytest.mark.parametrize(
    ("sns_type", "code"),
    [("SubscriptionConfirmation", "UNSUPPORTED_EVENT"), ("Notification", "INVALID_EVENT")],
)
def test_sns_messages_that_are_not_s3_events_fail(sns_type: str, code: str) -> None:
    """SNS subscription confirmations and non-S3 SNS messages fail their SQS message."""
    envelope = json.loads(sns_notification(json.dumps({"greeting": "hello"})))
    envelope["Type"] = sns_type

    message = only(parse_event(sqs_batch([json.dumps(envelope)])))

    assert message.error is not None
    assert message.error.error_code == code
    assert message.envelope is Envelope.SQS_SNS


@pytest.mark.parametrize("body", [None, 42, {"Records": []}])
def test_non_string_bodies_fail_their_message(body: object) -> None:
    """A body that is not a string fails its message with INVALID_EVENT."""
    event = sqs_batch(["placeholder"])
    event["Records"][0]["body"] = body

    message = only(parse_event(event))

    assert message.error is not None
    assert message.error.error_code == "INVALID_EVENT"


def test_record_from_another_source_in_an_sqs_batch_fails() -> None:
    """A record of an SQS batch whose eventSource is not aws:sqs fails its message."""
    event = sqs_batch([GOOD_BODY, GOOD_BODY])
    event["Records"][1]["eventSource"] = "aws:kinesis"

    first, second = parse_event(event)

    assert first.ok
    assert second.error is not None
    assert second.error.error_code == "INVALID_EVENT"


@pytest.mark.parametrize(
    "event",
    [
        {},
        {"hello": "world"},
        {"Records": [{"eventSource": "aws:kinesis"}]},
        {"Records": ["not a record"]},
        {"Records": [{"eventSource": "aws:sqs", "body": "{}"}]},
        {"Records": [{"EventSource": "aws:sns", "Sns": "not an object"}]},
        ["not", "a", "mapping"],
        "not a mapping",
    ],
)
def test_unknown_top_level_shapes_raise(event: Any) -> None:
    """An event whose messages cannot even be named raises EventParseError."""
    with pytest.raises(EventParseError) as caught:
        parse_event(event)

    assert caught.value.error_code == "INVALID_EVENT"


def test_empty_batch_parses_to_nothing() -> None:
    """An event with an empty ``Records`` list has no messages."""
    assert parse_event({"Records": []}) == []


def test_parse_sqs_message_needs_a_message_id() -> None:
    """``parse_sqs_message`` raises when the record cannot be reported."""
    with pytest.raises(EventParseError):
        parse_sqs_message({"eventSource": "aws:sqs", "body": GOOD_BODY})


def test_direct_test_event_is_flagged() -> None:
    """A bare ``s3:TestEvent`` is one acknowledged test message."""
    message = only(parse_event(load_event("s3_test_event")))

    assert message.is_test_event
    assert message.ok


def test_error_to_dict_is_structured() -> None:
    """A message error serialises with its code, correlation id and envelope."""
    message = only(parse_event(sqs_batch(["{broken"])))
    assert message.error is not None

    data = message.error.to_dict()

    assert data["error_type"] == "EventParseError"
    assert data["error_code"] == "INVALID_EVENT"
    assert data["correlation_id"] == "message-0"
    assert data["context"]["envelope"] == "sqs_unknown"


# --------------------------------------------------------------------------- ParsedMessage


def test_parsed_messages_are_frozen_and_slotted() -> None:
    """``ParsedMessage`` cannot be modified and has no instance ``__dict__``."""
    message = only(parse_event(load_event("sqs_s3_put")))

    with pytest.raises(dataclasses.FrozenInstanceError):
        message.message_id = "other"  # type: ignore[misc]
    assert not hasattr(message, "__dict__")
    assert hash(message) == hash(only(parse_event(load_event("sqs_s3_put"))))


@pytest.mark.parametrize(
    ("envelope", "is_sqs"),
    [(envelope, envelope.value.startswith("sqs_")) for envelope in Envelope],
)
def test_envelope_knows_whether_it_is_sqs(envelope: Envelope, is_sqs: bool) -> None:
    """Only SQS envelopes can be reported in ``batchItemFailures``."""
    assert envelope.is_sqs is is_sqs
