"""S3 event schemas: static types, validated records, and envelope parsing.

Two views of the same event, as the conventions prescribe:

* [`S3EventRecord`][data_aggregator.schemas.S3EventRecord] (and the other TypedDicts) type the
  raw JSON AWS sends, for function signatures and IDEs. No runtime cost, no validation.
* [`S3EventNotificationRecord`][data_aggregator.schemas.S3EventNotificationRecord] validates one
  record at runtime and is immutable:

  ```python
  parsed = S3EventNotificationRecord.model_validate(raw_s3_record)
  parsed.s3.bucket.name          # validated bucket name
  parsed.s3.object.original_key  # the exact key (decoded exactly once): for S3 calls
  parsed.s3.object.key           # sanitize_s3_key(original_key): the archive name
  parsed.s3.object.size          # int in [0, 5 TiB], or None (deletes)
  parsed.version_id, parsed.sequencer, parsed.e_tag, parsed.event_name
  ```

[`parse_event`][data_aggregator.schemas.parse_event] unwraps what a Lambda receives (SQS batches
whose bodies are S3 notifications, SNS notifications or EventBridge events; direct S3, SNS and
EventBridge invocations; Step Functions Distributed Map item batches) into
[`ParsedMessage`][data_aggregator.schemas.ParsedMessage] objects, one per SQS message or Map
item, failing single messages rather than the batch. See ``docs/schemas.md``.
"""

from __future__ import annotations

from data_aggregator.schemas._aws import (
    EventBridgeEvent,
    EventBridgeS3Bucket,
    EventBridgeS3Detail,
    EventBridgeS3Object,
    S3BucketData,
    S3Data,
    S3EventRecord,
    S3GlacierEventData,
    S3Identity,
    S3Notification,
    S3ObjectData,
    S3RequestParameters,
    S3ResponseElements,
    S3RestoreEventData,
    S3TestEvent,
    SNSEnvelope,
    SNSEvent,
    SNSEventRecord,
    SNSMessage,
    SQSEvent,
    SQSMessageAttribute,
    SQSRecord,
    SQSRecordAttributes,
)
from data_aggregator.schemas._envelopes import (
    Envelope,
    ParsedMessage,
    parse_event,
    parse_sqs_message,
)
from data_aggregator.schemas._eventbridge import record_from_eventbridge
from data_aggregator.schemas._listing import LISTING_EVENT_NAME, backfill_sequencer, event_time
from data_aggregator.schemas._map import MAP_BUCKET_FIELD
from data_aggregator.schemas._records import (
    KEY_ENCODING_CONTEXT,
    KEY_ERROR_TYPE,
    MAX_OBJECT_SIZE,
    KeyEncoding,
    S3EventBucket,
    S3EventEntity,
    S3EventIdentity,
    S3EventNotificationRecord,
    S3EventObject,
    S3EventRequestParameters,
    validation_error_from_pydantic,
)

__all__ = [
    "KEY_ENCODING_CONTEXT",
    "KEY_ERROR_TYPE",
    "LISTING_EVENT_NAME",
    "MAP_BUCKET_FIELD",
    "MAX_OBJECT_SIZE",
    "Envelope",
    "EventBridgeEvent",
    "EventBridgeS3Bucket",
    "EventBridgeS3Detail",
    "EventBridgeS3Object",
    "KeyEncoding",
    "ParsedMessage",
    "S3BucketData",
    "S3Data",
    "S3EventBucket",
    "S3EventEntity",
    "S3EventIdentity",
    "S3EventNotificationRecord",
    "S3EventObject",
    "S3EventRecord",
    "S3EventRequestParameters",
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
    "backfill_sequencer",
    "event_time",
    "parse_event",
    "parse_sqs_message",
    "record_from_eventbridge",
    "validation_error_from_pydantic",
]
