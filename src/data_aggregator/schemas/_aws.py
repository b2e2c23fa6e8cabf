"""TypedDicts describing the raw JSON that AWS delivers (static typing only).

These types describe events *as AWS sends them*: camelCase or hyphenated keys, keys
form-URL-encoded in classic S3 notifications, optional fields that really are optional.
They carry no runtime validation; use `data_aggregator.schemas.S3EventNotificationRecord`
or `data_aggregator.schemas.parse_event` for that. Public names are re-exported from
`data_aggregator.schemas`.

Sources: Amazon S3 "Event message structure" and "EventBridge event message structure",
Amazon SNS "HTTP/S notification JSON", AWS Lambda "Using Lambda with Amazon SQS".
"""

# No ``from __future__ import annotations`` here: TypedDict must see ``NotRequired`` at
# runtime for ``__required_keys__`` / ``__optional_keys__`` to be right.
from typing import Literal

from typing_extensions import NotRequired, TypedDict

__all__ = [
    "EventBridgeEvent",
    "EventBridgeS3Bucket",
    "EventBridgeS3Detail",
    "EventBridgeS3Object",
    "S3BucketData",
    "S3Data",
    "S3EventRecord",
    "S3GlacierEventData",
    "S3Identity",
    "S3Notification",
    "S3ObjectData",
    "S3RequestParameters",
    "S3ResponseElements",
    "S3RestoreEventData",
    "S3TestEvent",
    "SNSEnvelope",
    "SNSEvent",
    "SNSEventRecord",
    "SNSMessage",
    "SQSEvent",
    "SQSMessageAttribute",
    "SQSRecord",
    "SQSRecordAttributes",
]

# --------------------------------------------------------------------------- S3 notifications


class S3Identity(TypedDict):
    """``userIdentity`` / ``ownerIdentity``: the principal behind the request or the bucket."""

    principalId: str


class S3RequestParameters(TypedDict):
    """``requestParameters``: where the request came from."""

    sourceIPAddress: str


S3ResponseElements = TypedDict(
    "S3ResponseElements",
    {"x-amz-request-id": str, "x-amz-id-2": str},
)
S3ResponseElements.__doc__ = "``responseElements``: S3 request ids, for AWS Support tracing."


class S3BucketData(TypedDict):
    """``s3.bucket``."""

    name: str
    ownerIdentity: S3Identity
    arn: str


class S3ObjectData(TypedDict):
    """``s3.object``.

    ``key`` is form-URL-encoded (``red flower.jpg`` arrives as ``red+flower.jpg``).
    ``size`` and ``eTag`` are absent from delete events; ``versionId`` is absent (or null)
    when the bucket is not versioned; ``sequencer`` is absent from ACL and tagging events.
    """

    key: str
    size: NotRequired[int]
    eTag: NotRequired[str]
    versionId: NotRequired[str | None]
    sequencer: NotRequired[str]


class S3Data(TypedDict):
    """``s3``: the bucket and object the record is about."""

    s3SchemaVersion: str
    configurationId: str
    bucket: S3BucketData
    object: S3ObjectData


class S3RestoreEventData(TypedDict):
    """``glacierEventData.restoreEventData`` (restore-completed events only)."""

    lifecycleRestorationExpiryTime: str
    lifecycleRestoreStorageClass: str


class S3GlacierEventData(TypedDict):
    """``glacierEventData`` (``s3:ObjectRestore:Completed`` events only)."""

    restoreEventData: S3RestoreEventData


class S3EventRecord(TypedDict):
    """One entry of an S3 event notification's ``Records`` list (the seed's static type)."""

    eventVersion: str
    eventSource: str
    awsRegion: str
    eventTime: str
    eventName: str
    userIdentity: S3Identity
    requestParameters: S3RequestParameters
    responseElements: S3ResponseElements
    s3: S3Data
    glacierEventData: NotRequired[S3GlacierEventData]


class S3Notification(TypedDict):
    """An S3 event notification: the SQS body, the SNS ``Message``, or a direct Lambda event."""

    Records: list[S3EventRecord]


class S3TestEvent(TypedDict):
    """The message S3 sends once when a notification configuration is saved."""

    Service: Literal["Amazon S3"]
    Event: Literal["s3:TestEvent"]
    Time: str
    Bucket: str
    RequestId: str
    HostId: str


# --------------------------------------------------------------------------- SQS


class SQSRecordAttributes(TypedDict):
    """``attributes`` of an SQS record; the FIFO ones only on FIFO queues."""

    ApproximateReceiveCount: str
    SentTimestamp: str
    SenderId: str
    ApproximateFirstReceiveTimestamp: str
    AWSTraceHeader: NotRequired[str]
    SequenceNumber: NotRequired[str]
    MessageGroupId: NotRequired[str]
    MessageDeduplicationId: NotRequired[str]
    DeadLetterQueueSourceArn: NotRequired[str]


class SQSMessageAttribute(TypedDict):
    """One user-defined SQS message attribute."""

    dataType: str
    stringValue: NotRequired[str]
    binaryValue: NotRequired[str]
    stringListValues: NotRequired[list[str]]
    binaryListValues: NotRequired[list[str]]


class SQSRecord(TypedDict):
    """One message of an SQS-triggered Lambda event; ``body`` is a JSON string."""

    messageId: str
    receiptHandle: str
    body: str
    attributes: SQSRecordAttributes
    messageAttributes: dict[str, SQSMessageAttribute]
    md5OfBody: str
    md5OfMessageAttributes: NotRequired[str | None]
    eventSource: Literal["aws:sqs"]
    eventSourceARN: str
    awsRegion: str


class SQSEvent(TypedDict):
    """The event an SQS-triggered Lambda receives."""

    Records: list[SQSRecord]


# --------------------------------------------------------------------------- SNS


class SNSEnvelope(TypedDict):
    """An SNS notification as delivered to SQS without raw message delivery.

    ``Message`` is a JSON string: the S3 notification (or test event) itself.
    """

    Type: Literal["Notification"]
    MessageId: str
    TopicArn: str
    Subject: NotRequired[str]
    Message: str
    Timestamp: str
    SignatureVersion: str
    Signature: str
    SigningCertURL: str
    UnsubscribeURL: str
    MessageAttributes: NotRequired[dict[str, object]]


class SNSMessage(TypedDict):
    """``Sns`` of an SNS-triggered Lambda record (``SigningCertUrl`` spelling as AWS sends)."""

    Type: str
    MessageId: str
    TopicArn: str
    Subject: NotRequired[str | None]
    Message: str
    Timestamp: str
    SignatureVersion: str
    Signature: str
    SigningCertUrl: str
    UnsubscribeUrl: str
    MessageAttributes: NotRequired[dict[str, object]]


class SNSEventRecord(TypedDict):
    """One record of an SNS-triggered Lambda event."""

    EventVersion: str
    EventSubscriptionArn: str
    EventSource: Literal["aws:sns"]
    Sns: SNSMessage


class SNSEvent(TypedDict):
    """The event an SNS-triggered Lambda receives."""

    Records: list[SNSEventRecord]


# --------------------------------------------------------------------------- EventBridge


class EventBridgeS3Bucket(TypedDict):
    """``detail.bucket``."""

    name: str


EventBridgeS3Object = TypedDict(
    "EventBridgeS3Object",
    {
        "key": str,
        "size": NotRequired[int],
        "etag": NotRequired[str],
        "version-id": NotRequired[str],
        "sequencer": NotRequired[str],
    },
)
EventBridgeS3Object.__doc__ = (
    "``detail.object``. Whether ``key`` is URL-encoded is not documented by AWS; "
    "see docs/schemas.md."
)

EventBridgeS3Detail = TypedDict(
    "EventBridgeS3Detail",
    {
        "version": str,
        "bucket": EventBridgeS3Bucket,
        "object": EventBridgeS3Object,
        "request-id": str,
        "requester": str,
        "source-ip-address": NotRequired[str],
        "reason": NotRequired[str],
        "deletion-type": NotRequired[str],
        "source-storage-class": NotRequired[str],
        "destination-storage-class": NotRequired[str],
        "destination-access-tier": NotRequired[str],
        "restore-expiry-time": NotRequired[str],
    },
)
EventBridgeS3Detail.__doc__ = "``detail`` of an S3 event delivered through EventBridge."

EventBridgeEvent = TypedDict(
    "EventBridgeEvent",
    {
        "version": str,
        "id": str,
        "detail-type": str,
        "source": str,
        "account": str,
        "time": str,
        "region": str,
        "resources": list[str],
        "detail": EventBridgeS3Detail,
    },
)
EventBridgeEvent.__doc__ = "An S3 event as EventBridge delivers it (``source`` is ``aws.s3``)."
