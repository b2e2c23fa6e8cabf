"""Step Functions Distributed Map item batches, as records (private; see `data_aggregator.schemas`).

A Distributed Map with an ``ItemBatcher`` invokes its Lambda with
``{"Items": [...], "BatchInput": {...}}``. Two item readers name S3 objects:

* ``arn:aws:states:::s3:listObjectsV2`` (an ``ItemReader`` over a bucket and prefix): each
  item is ``{"Etag": "\\"<hex>\\"", "Key": ..., "LastModified": <epoch seconds>, "Size":
  <int>, "StorageClass": ...}``, without the bucket: ``BatchInput.Bucket`` names it. The
  key is the exact key (the reader's JSON, not the XML listing's optional URL encoding).
* an S3 Inventory manifest (``ReaderConfig.ManifestType: S3_INVENTORY`` or ``InputType:
  MANIFEST``): each item is one CSV row named by the inventory's ``fileSchema``
  (``Bucket``, ``Key``, and optionally ``VersionId``, ``IsLatest``, ``IsDeleteMarker``,
  ``Size``, ``LastModifiedDate``, ``ETag``, ...), every value a string. Inventory CSV files
  hold keys URL-encoded, and AWS does not say whether the reader decodes them: the key is
  kept as received with its form-decoded reading as a second candidate, and the processor
  confirms against S3 which one exists (as for EventBridge).

Each item becomes one record, with the identity the CLI backfill gives a listed object
(`backfill_sequencer` in place of the missing event sequencer).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timezone
from typing import Any, Final

from data_aggregator.exceptions import EventParseError, ValidationError, ValidationErrorCode
from data_aggregator.schemas._listing import LISTING_EVENT_NAME, backfill_sequencer, event_time
from data_aggregator.schemas._records import KeyEncoding, S3EventNotificationRecord

__all__ = ["MAP_BUCKET_FIELD", "is_map_batch", "map_item_records"]

#: The ``BatchInput`` field naming the bucket of ListObjectsV2 items.
MAP_BUCKET_FIELD: Final = "Bucket"
_DELETE_MARKER_EVENT: Final = "ObjectRemoved:DeleteMarkerCreated"


def _invalid(message: str, **context: Any) -> EventParseError:
    return EventParseError(message, ValidationErrorCode.INVALID_EVENT, context)


def is_map_batch(event: Mapping[str, Any]) -> bool:
    """Whether ``event`` is a Distributed Map item batch (an ``Items`` list, no ``Records``)."""
    return isinstance(event.get("Items"), list) and "Records" not in event


def _text(value: object) -> str | None:
    """A non-empty string field, else ``None`` (inventory CSV cells may be empty)."""
    return value if isinstance(value, str) and value else None


def _size(value: object) -> object:
    """An integer size from an int or a decimal string (inventory cells are strings)."""
    if isinstance(value, str) and value.isascii() and value.isdigit():
        return int(value)
    return None if value == "" else value


def _last_modified(value: object) -> datetime | None:
    """``LastModified`` (epoch seconds) or ``LastModifiedDate`` (ISO 8601) as UTC."""
    if value is None or value == "":
        return None
    if isinstance(value, int | float) and not isinstance(value, bool):
        try:
            return datetime.fromtimestamp(value, timezone.utc)
        except (OverflowError, OSError, ValueError):
            raise _invalid("item's LastModified is out of range") from None
    if isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        except ValueError:
            raise _invalid("item's LastModifiedDate is not an ISO 8601 time") from None
        return moment if moment.tzinfo is not None else moment.replace(tzinfo=timezone.utc)
    raise _invalid("item's LastModified is neither a number nor a string")


def _record(item: Mapping[str, Any], default_bucket: object) -> S3EventNotificationRecord:
    if "Bucket" in item:  # an S3 Inventory row
        bucket: object = item.get("Bucket")
        encoding = KeyEncoding.UNKNOWN
        etag = _text(item.get("ETag"))
        modified = _last_modified(item.get("LastModifiedDate"))
        marker = str(item.get("IsDeleteMarker", "")).lower() == "true"
    else:  # a ListObjectsV2 item
        if default_bucket is None:
            msg = (
                "a ListObjectsV2 item names no bucket: put the source bucket in the "
                f"ItemBatcher's BatchInput.{MAP_BUCKET_FIELD}"
            )
            raise _invalid(msg)
        bucket = default_bucket
        encoding = KeyEncoding.NONE
        etag = _text(item.get("Etag", item.get("ETag")))
        modified = _last_modified(item.get("LastModified"))
        marker = False
    if etag is not None:
        etag = etag.strip('"') or None
    size = _size(item.get("Size"))
    if not marker and (etag is None or size is None):
        # Without them the fetch is not checked against the listed bytes and the object
        # has no content identity: a rewritten object would pass for the bundled one.
        msg = (
            "a Map item must carry the object's ETag and Size (for an S3 Inventory, add "
            "the ETag and Size fields to the inventory)"
        )
        raise _invalid(msg)
    version = _text(item.get("VersionId"))
    if version == "null":  # written before versioning was enabled
        version = None
    obj: dict[str, Any] = {
        "key": item.get("Key"),
        "size": size,
        "eTag": etag,
        "versionId": version,
        "sequencer": None if version is not None else backfill_sequencer(etag or "", modified),
    }
    raw: dict[str, Any] = {
        "eventSource": "aws:s3",
        "eventTime": event_time(modified or datetime.now(timezone.utc)),
        "eventName": _DELETE_MARKER_EVENT if marker else LISTING_EVENT_NAME,
        "s3": {
            "bucket": {"name": bucket},
            "object": {name: value for name, value in obj.items() if value is not None},
        },
    }
    return S3EventNotificationRecord.from_aws(raw, key_encoding=encoding)


def map_item_records(
    event: Mapping[str, Any],
) -> list[S3EventNotificationRecord | ValidationError]:
    """One record per item of a Distributed Map batch, or the item's validation error.

    A bad item fails alone: its entry is the `ValidationError` (``INVALID_EVENT``, or the
    seed code of a refused key) with ``context["item_index"]``. An inventory row for a
    delete marker becomes an ``ObjectRemoved:DeleteMarkerCreated`` record, which the
    default event filter skips.

    Raises:
        EventParseError: ``BatchInput`` is present but not an object, or its ``Bucket``
            is not a string.
    """
    batch_input = event.get("BatchInput")
    if batch_input is None:
        batch_input = {}
    if not isinstance(batch_input, Mapping):
        raise _invalid("BatchInput is not a JSON object")
    default_bucket = batch_input.get(MAP_BUCKET_FIELD)
    if default_bucket is not None and not isinstance(default_bucket, str):
        raise _invalid(f"BatchInput.{MAP_BUCKET_FIELD} is not a string")
    out: list[S3EventNotificationRecord | ValidationError] = []
    for index, item in enumerate(event["Items"]):
        try:
            if not isinstance(item, Mapping):
                raise _invalid("item is not a JSON object", value_type=type(item).__name__)
            out.append(_record(item, default_bucket))
        except ValidationError as exc:
            exc.context["item_index"] = index
            out.append(exc)
    return out
