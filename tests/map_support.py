"""Step Functions Distributed Map item batches built from a real bucket, as the readers do.

The shapes follow AWS Step Functions "ItemReader (Map)" and "ItemBatcher (Map)" (the
fixtures ``tests/events/sfn_map_*.json`` hold the documented examples):

* the ListObjectsV2 reader gives ``Etag`` (quoted), ``Key``, ``LastModified`` (epoch
  seconds), ``Size``, ``StorageClass`` and no bucket;
* the S3 Inventory reader gives one item per CSV row, named by the manifest's
  ``fileSchema``, every value a string, the key URL-encoded as inventory CSV files hold it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from urllib.parse import quote_plus

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping

    from mypy_boto3_s3 import S3Client as Boto3S3Client

__all__ = ["INVENTORY_FIELDS", "inventory_items", "list_objects_v2_items", "map_batch"]

#: A full inventory ``fileSchema`` (the optional fields a user would select).
INVENTORY_FIELDS = (
    "Bucket",
    "Key",
    "VersionId",
    "IsLatest",
    "IsDeleteMarker",
    "Size",
    "LastModifiedDate",
    "ETag",
    "StorageClass",
)


def list_objects_v2_items(s3: Boto3S3Client, bucket: str, prefix: str = "") -> list[Any]:
    """The items the ``s3:listObjectsV2`` reader passes for ``bucket``/``prefix``."""
    items: list[Any] = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for entry in page.get("Contents", []):
            items.append(
                {
                    "Etag": entry["ETag"],
                    "Key": entry["Key"],
                    "LastModified": int(entry["LastModified"].timestamp()),
                    "Size": entry["Size"],
                    "StorageClass": entry.get("StorageClass", "STANDARD"),
                }
            )
    return items


def inventory_items(
    s3: Boto3S3Client,
    bucket: str,
    prefix: str = "",
    *,
    fields: Iterable[str] = INVENTORY_FIELDS,
    encode_keys: bool = True,
) -> list[Any]:
    """The items the S3 Inventory reader passes for an all-versions inventory of ``bucket``.

    ``encode_keys``: the key form-URL-encoded (``/`` kept) as inventory CSV files hold it;
    ``False`` for a reader that would decode it.
    """
    wanted = tuple(fields)
    rows: list[dict[str, str]] = []
    paginator = s3.get_paginator("list_object_versions")
    for page in paginator.paginate(Bucket=bucket, Prefix=prefix):
        entries: list[tuple[Mapping[str, Any], bool]] = [
            (dict(v), False) for v in page.get("Versions", [])
        ]
        entries += [(dict(m), True) for m in page.get("DeleteMarkers", [])]
        for entry, marker in entries:
            key = str(entry["Key"])
            version = str(entry.get("VersionId", ""))
            row = {
                "Bucket": bucket,
                "Key": quote_plus(key, safe="/") if encode_keys else key,
                "VersionId": "" if version == "null" else version,
                "IsLatest": "true" if entry.get("IsLatest") else "false",
                "IsDeleteMarker": "true" if marker else "false",
                "Size": "" if marker else str(entry.get("Size", 0)),
                "LastModifiedDate": entry["LastModified"].strftime("%Y-%m-%dT%H:%M:%S.000Z"),
                "ETag": "" if marker else str(entry.get("ETag", "")).strip('"'),
                "StorageClass": "" if marker else str(entry.get("StorageClass", "STANDARD")),
            }
            rows.append({name: value for name, value in row.items() if name in wanted})
    return rows


def map_batch(items: Iterable[object], bucket: str | None = None) -> dict[str, Any]:
    """What a Distributed Map with an ``ItemBatcher`` passes to the Lambda."""
    event: dict[str, Any] = {"Items": list(items)}
    if bucket is not None:
        event["BatchInput"] = {"Bucket": bucket}
    return event
