"""S3 events delivered by EventBridge, as records (private; see `data_aggregator.schemas`).

EventBridge events carry the bucket and object in ``detail`` with their own spelling
(``etag``, ``version-id``) and an event type split over ``detail-type`` and ``reason``.
`record_from_eventbridge` maps them onto the classic record so that one model and one
event-name filter serve both. The key's encoding is undocumented: see docs/schemas.md.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from data_aggregator.exceptions import EventParseError, ValidationErrorCode
from data_aggregator.schemas._records import KeyEncoding, S3EventNotificationRecord

__all__ = ["record_from_eventbridge"]

_EVENTBRIDGE_S3_SOURCE: Final = "aws.s3"


def _invalid(message: str, **context: Any) -> EventParseError:
    return EventParseError(message, ValidationErrorCode.INVALID_EVENT, context)


def _unsupported(message: str, **context: Any) -> EventParseError:
    return EventParseError(message, ValidationErrorCode.UNSUPPORTED_EVENT, context)


_CREATED_REASONS: Final = {
    "PutObject": "Put",
    "POST Object": "Post",
    "PostObject": "Post",
    "CopyObject": "Copy",
    "CompleteMultipartUpload": "CompleteMultipartUpload",
}
# detail-type -> classic event name (Amazon S3 "EventBridge mapping and troubleshooting").
_DETAIL_TYPES: Final = {
    "Object Restore Initiated": "ObjectRestore:Post",
    "Object Restore Completed": "ObjectRestore:Completed",
    "Object Restore Expired": "ObjectRestore:Delete",
    "Object Tags Added": "ObjectTagging:Put",
    "Object Tags Deleted": "ObjectTagging:Delete",
    "Object ACL Updated": "ObjectAcl:Put",
    "Object Storage Class Changed": "LifecycleTransition",
    "Object Access Tier Changed": "IntelligentTiering",
}


def _eventbridge_event_name(detail_type: str, detail: Mapping[str, Any]) -> str:
    """The classic ``eventName`` matching an EventBridge ``detail-type`` and ``reason``."""
    reason = detail.get("reason")
    if detail_type == "Object Created":
        created = _CREATED_REASONS.get(reason) if isinstance(reason, str) else None
        return f"ObjectCreated:{created or reason or 'Unknown'}"
    if detail_type == "Object Deleted":
        prefix = "LifecycleExpiration" if reason == "Lifecycle Expiration" else "ObjectRemoved"
        marker = detail.get("deletion-type") == "Delete Marker Created"
        return f"{prefix}:{'DeleteMarkerCreated' if marker else 'Delete'}"
    return _DETAIL_TYPES.get(detail_type, f"Unknown:{detail_type}")


def record_from_eventbridge(event: Mapping[str, Any]) -> S3EventNotificationRecord:
    """Build a record from an S3 event delivered by EventBridge.

    The key is kept as received (``original_key``); when its form-decoded reading differs,
    that reading is the second entry of ``s3.object.key_candidates`` (see docs/schemas.md).
    ``event_name`` is the classic name (``ObjectCreated:Put`` ...) derived from
    ``detail-type`` and ``reason``.

    Raises:
        ValidationError: ``UNSUPPORTED_EVENT`` when ``source`` is not ``aws.s3``; the seed
            code when the key is refused; ``INVALID_EVENT`` otherwise.
    """
    source = event.get("source")
    if source != _EVENTBRIDGE_S3_SOURCE:
        raise _unsupported("EventBridge event does not come from aws.s3", source=str(source))
    detail_type = event.get("detail-type")
    detail = event.get("detail")
    if not isinstance(detail_type, str) or not isinstance(detail, Mapping):
        raise _invalid("EventBridge event has no detail-type or detail")
    bucket = detail.get("bucket")
    obj = detail.get("object")
    if not isinstance(bucket, Mapping) or not isinstance(obj, Mapping):
        raise _invalid("EventBridge S3 event has no bucket or object", detail_type=detail_type)
    resources = event.get("resources")
    bucket_arn = resources[0] if isinstance(resources, list) and resources else None
    object_data = {
        "key": obj.get("key"),
        "size": obj.get("size"),
        "eTag": obj.get("etag"),
        "versionId": obj.get("version-id"),
        "sequencer": obj.get("sequencer"),
    }
    raw: dict[str, Any] = {
        "eventVersion": detail.get("version"),
        "eventSource": "aws:s3",
        "awsRegion": event.get("region"),
        "eventTime": event.get("time"),
        "eventName": _eventbridge_event_name(detail_type, detail),
        "userIdentity": {"principalId": detail.get("requester")},
        "requestParameters": {"sourceIPAddress": detail.get("source-ip-address")},
        "s3": {
            "bucket": {"name": bucket.get("name"), "arn": bucket_arn},
            "object": {name: value for name, value in object_data.items() if value is not None},
        },
    }
    request_id = detail.get("request-id")
    if isinstance(request_id, str):
        raw["responseElements"] = {"x-amz-request-id": request_id}
    return S3EventNotificationRecord.from_aws(raw, key_encoding=KeyEncoding.UNKNOWN)
