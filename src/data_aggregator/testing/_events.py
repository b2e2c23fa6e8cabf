"""Builders of the Lambda events AWS sends about S3 objects, keys encoded as AWS does.

Classic S3 notifications (direct, through SQS, through SNS) carry the key form-URL-encoded
(`encode_event_key`); EventBridge events carry it as it is. Everything else is fixed,
realistic filler, so that two calls with the same arguments build the same event (but for
SQS message ids and FIFO sequence numbers left to their defaults).
"""

from __future__ import annotations

import json
import time
import uuid
from typing import TYPE_CHECKING, cast
from urllib.parse import quote_plus

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping

    from data_aggregator.schemas import (
        EventBridgeEvent,
        EventBridgeS3Object,
        S3EventRecord,
        S3Notification,
        S3ObjectData,
        S3TestEvent,
        SNSEvent,
        SNSMessage,
        SQSEvent,
        SQSRecord,
        SQSRecordAttributes,
    )

__all__ = [
    "DEFAULT_ETAG",
    "DEFAULT_QUEUE_ARN",
    "DEFAULT_REGION",
    "DEFAULT_SEQUENCER",
    "DEFAULT_TOPIC_ARN",
    "encode_event_key",
    "eventbridge_object_created",
    "s3_notification",
    "s3_record",
    "s3_test_event",
    "sns_event",
    "sns_notification",
    "sqs_event",
    "sqs_message",
]

DEFAULT_REGION = "us-east-1"
#: The MD5 of zero bytes: the ETag S3 gives an empty object.
DEFAULT_ETAG = "d41d8cd98f00b204e9800998ecf8427e"
DEFAULT_SEQUENCER = "0055AED6DCD90281E5"
DEFAULT_QUEUE_ARN = f"arn:aws:sqs:{DEFAULT_REGION}:123456789012:data-aggregator-queue"
DEFAULT_TOPIC_ARN = f"arn:aws:sns:{DEFAULT_REGION}:123456789012:data-aggregator-topic"
_DEFAULT_EVENT_TIME = "2024-05-01T12:00:00.000Z"
_FIFO_SUFFIX = ".fifo"


def encode_event_key(key: str) -> str:
    """``key`` as a classic S3 notification carries it: form-encoded, ``/`` kept.

    A space becomes ``+``, ``+`` becomes ``%2B``, non-ASCII characters their UTF-8
    percent-escapes.

    >>> encode_event_key("logs/a b+c.txt")
    'logs/a+b%2Bc.txt'
    """
    return quote_plus(key, safe="/")


def s3_record(
    bucket: str,
    key: str,
    *,
    size: int | None = 0,
    etag: str | None = DEFAULT_ETAG,
    version_id: str | None = None,
    sequencer: str | None = DEFAULT_SEQUENCER,
    event_name: str = "ObjectCreated:Put",
    event_time: str = _DEFAULT_EVENT_TIME,
    region: str = DEFAULT_REGION,
    configuration_id: str = "data-aggregator-test",
) -> S3EventRecord:
    """One record of a classic S3 notification about the exact ``key`` (form-encoded).

    ``size``, ``etag``, ``version_id`` and ``sequencer`` are left out of the record when
    ``None`` (delete events have no size or ETag; unversioned buckets no version id).
    """
    obj: S3ObjectData = {"key": encode_event_key(key)}
    if size is not None:
        obj["size"] = size
    if etag is not None:
        obj["eTag"] = etag
    if version_id is not None:
        obj["versionId"] = version_id
    if sequencer is not None:
        obj["sequencer"] = sequencer
    return {
        "eventVersion": "2.1",
        "eventSource": "aws:s3",
        "awsRegion": region,
        "eventTime": event_time,
        "eventName": event_name,
        "userIdentity": {"principalId": "AWS:AIDAEXAMPLE"},
        "requestParameters": {"sourceIPAddress": "203.0.113.1"},
        "responseElements": {"x-amz-request-id": "EXAMPLE", "x-amz-id-2": "EXAMPLE"},
        "s3": {
            "s3SchemaVersion": "1.0",
            "configurationId": configuration_id,
            "bucket": {
                "name": bucket,
                "ownerIdentity": {"principalId": "EXAMPLE"},
                "arn": f"arn:aws:s3:::{bucket}",
            },
            "object": obj,
        },
    }


def s3_notification(records: Iterable[S3EventRecord]) -> S3Notification:
    """An S3 notification: a direct S3 event, an SQS body, or an SNS ``Message``."""
    return {"Records": list(records)}


def s3_test_event(bucket: str) -> S3TestEvent:
    """The ``s3:TestEvent`` S3 sends once when a notification configuration is saved."""
    return {
        "Service": "Amazon S3",
        "Event": "s3:TestEvent",
        "Time": _DEFAULT_EVENT_TIME,
        "Bucket": bucket,
        "RequestId": "5582815E1AEA5ADF",
        "HostId": "EXAMPLE",
    }


def _as_text(body: str | Mapping[str, object]) -> str:
    if isinstance(body, str):
        return body
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False)


def sqs_message(
    body: str | Mapping[str, object],
    *,
    message_id: str | None = None,
    queue_arn: str | None = None,
    fifo: bool = False,
    group_id: str | None = None,
    sequence_number: int | None = None,
    receive_count: int = 1,
) -> SQSRecord:
    """One message of an SQS-triggered Lambda event.

    Args:
        body: The message body; a mapping is serialised as compact JSON.
        message_id: A random UUID by default.
        queue_arn: The queue's ARN; by default `DEFAULT_QUEUE_ARN` (with ``.fifo``
            appended when ``fifo``).
        fifo: Add the FIFO attributes (``MessageGroupId``, ``SequenceNumber``,
            ``MessageDeduplicationId``); the queue ARN must then end in ``.fifo``.
        group_id: ``MessageGroupId`` (FIFO only); ``"group-1"`` by default.
        sequence_number: ``SequenceNumber`` (FIFO only); by default the current time in
            nanoseconds, so successive messages get increasing numbers.
        receive_count: ``ApproximateReceiveCount``: above 1 for a redelivery.

    Raises:
        ValueError: FIFO settings on a standard queue, or a FIFO queue ARN without them.
    """
    if queue_arn is None:
        queue_arn = DEFAULT_QUEUE_ARN + (_FIFO_SUFFIX if fifo else "")
    if fifo != queue_arn.endswith(_FIFO_SUFFIX):
        msg = f"fifo={fifo} does not match the queue ARN {queue_arn!r}"
        raise ValueError(msg)
    if not fifo and (group_id is not None or sequence_number is not None):
        msg = "group_id and sequence_number are for FIFO queues only (fifo=True)"
        raise ValueError(msg)
    if receive_count < 1:
        msg = f"receive_count must be at least 1, got {receive_count}"
        raise ValueError(msg)
    message_id = message_id if message_id is not None else str(uuid.uuid4())
    attributes: SQSRecordAttributes = {
        "ApproximateReceiveCount": str(receive_count),
        "SentTimestamp": "1714564800000",
        "SenderId": "AIDAEXAMPLE",
        "ApproximateFirstReceiveTimestamp": "1714564800001",
    }
    if fifo:
        number = sequence_number if sequence_number is not None else time.time_ns()
        attributes["MessageGroupId"] = group_id if group_id is not None else "group-1"
        attributes["SequenceNumber"] = f"{number:020d}"
        attributes["MessageDeduplicationId"] = message_id
    return {
        "messageId": message_id,
        "receiptHandle": f"handle-{message_id}",
        "body": _as_text(body),
        "attributes": attributes,
        "messageAttributes": {},
        "md5OfBody": "0" * 32,
        "eventSource": "aws:sqs",
        "eventSourceARN": queue_arn,
        "awsRegion": queue_arn.split(":")[3],
    }


def sqs_event(messages: Iterable[SQSRecord]) -> SQSEvent:
    """The event an SQS-triggered Lambda receives, holding ``messages``."""
    return {"Records": list(messages)}


def sns_notification(
    body: str | Mapping[str, object],
    *,
    raw: bool = False,
    message_id: str = "sns-message",
    topic_arn: str = DEFAULT_TOPIC_ARN,
) -> str:
    """An SQS body for ``body`` published to an SNS topic subscribed by the queue.

    With ``raw`` (raw message delivery) that is ``body`` itself; otherwise the SNS JSON
    envelope whose ``Message`` is ``body``, pretty-printed as SNS does.
    """
    if raw:
        return _as_text(body)
    envelope = _sns_message(body, message_id, topic_arn, url="URL")
    return json.dumps(envelope, indent=2, separators=(",", " : "), ensure_ascii=False)


def sns_event(
    body: str | Mapping[str, object],
    *,
    message_id: str = "sns-message",
    topic_arn: str = DEFAULT_TOPIC_ARN,
) -> SNSEvent:
    """The event a Lambda subscribed to an SNS topic receives when ``body`` is published
    (no queue in between); a mapping is serialised as compact JSON."""
    message = cast("SNSMessage", _sns_message(body, message_id, topic_arn, url="Url"))
    return {
        "Records": [
            {
                "EventVersion": "1.0",
                "EventSubscriptionArn": f"{topic_arn}:subscription",
                "EventSource": "aws:sns",
                "Sns": message,
            }
        ]
    }


def _sns_message(
    body: str | Mapping[str, object], message_id: str, topic_arn: str, *, url: str
) -> dict[str, object]:
    """What SNS says about one published message; its two URL fields end in ``url``
    (``SigningCertURL`` in an SQS body, ``SigningCertUrl`` in a Lambda event)."""
    region = topic_arn.split(":")[3]
    return {
        "Type": "Notification",
        "MessageId": message_id,
        "TopicArn": topic_arn,
        "Subject": "Amazon S3 Notification",
        "Message": _as_text(body),
        "Timestamp": _DEFAULT_EVENT_TIME,
        "SignatureVersion": "1",
        "Signature": "EXAMPLE",
        f"SigningCert{url}": f"https://sns.{region}.amazonaws.com/cert.pem",
        f"Unsubscribe{url}": f"https://sns.{region}.amazonaws.com/?Action=Unsubscribe",
    }


def eventbridge_object_created(
    bucket: str,
    key: str,
    *,
    size: int = 0,
    etag: str = DEFAULT_ETAG,
    version_id: str | None = None,
    sequencer: str = DEFAULT_SEQUENCER,
    reason: str = "PutObject",
    region: str = DEFAULT_REGION,
    event_id: str = "eventbridge-event",
) -> EventBridgeEvent:
    """An EventBridge ``Object Created`` event; ``detail.object.key`` is ``key`` unencoded."""
    obj: EventBridgeS3Object = {"key": key, "size": size, "etag": etag, "sequencer": sequencer}
    if version_id is not None:
        obj["version-id"] = version_id
    return {
        "version": "0",
        "id": event_id,
        "detail-type": "Object Created",
        "source": "aws.s3",
        "account": "123456789012",
        "time": "2024-05-01T12:00:00Z",
        "region": region,
        "resources": [f"arn:aws:s3:::{bucket}"],
        "detail": {
            "version": "0",
            "bucket": {"name": bucket},
            "object": obj,
            "request-id": "EXAMPLE",
            "requester": "123456789012",
            "reason": reason,
        },
    }
