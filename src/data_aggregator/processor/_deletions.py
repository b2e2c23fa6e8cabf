"""``DELETE_SOURCES``: delete the source objects of completed bundles (private).

Runs on the invocation's thread once every slot is decided, so only records whose
completion the store confirmed are considered (`deletable`), and only where the bundle
is known to hold exactly that object:

* ``BUNDLED``: in a bundle this invocation committed (its parts' SHA-256 checksums
  checked by S3) and completed: deleted by the version fetched, else while the key still
  holds the fetched ETag;
* ``RECOVERED``: in a bundle a crashed invocation committed, read back and verified by
  the recovery locator, which found the record's key among its members: deleted while the
  key still holds the record's ETag (unversioned), or by version id when that version is
  part of the key that matched (a record without an ETag or size, keyed by the seed's
  formula). A versioned record matched by its content key is kept: the member may be
  another version with the same bytes.

``ALREADY_COMPLETED`` duplicates are never deleted: nothing in this invocation shows that
their bundle still exists or which version it holds. A delete that fails, finds the
object changed or is not tried for lack of time is counted and logged, never turned into
a failed record, and is not retried (docs/delete-sources.md: sweeping by hand).
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass
from typing import TYPE_CHECKING

from data_aggregator.clients import MAX_DELETE_KEYS, DeleteResult, DeleteStatus, ObjectToDelete
from data_aggregator.processor._results import Outcome, Reason

if TYPE_CHECKING:
    from collections.abc import Sequence

    from data_aggregator._deadline import Deadline
    from data_aggregator.clients import S3Client
    from data_aggregator.metrics import MetricsSink
    from data_aggregator.processor._slots import Slot

__all__ = ["SourceToDelete", "deletable", "delete_sources"]

logger = logging.getLogger("data_aggregator.processor")

#: A ``DeleteObjects`` request is started only with at least this much time left before
#: the invocation's deadline; the sources of later requests are reported not attempted.
MIN_DELETE_SECONDS = 1.0

#: Metric per `DeleteStatus`, and for the sources not tried (too late).
_METRICS = {
    DeleteStatus.DELETED: "SourcesDeleted",
    DeleteStatus.CHANGED: "SourcesChanged",
    DeleteStatus.GONE: "SourcesGone",
    DeleteStatus.FAILED: "SourceDeletesFailed",
}
_NOT_ATTEMPTED = "NOT_ATTEMPTED"


@dataclass(frozen=True, slots=True)
class SourceToDelete:
    """One source object of a completed bundle, as it was bundled."""

    bucket: str
    target: ObjectToDelete
    bundle_key: str | None


def deletable(slot: Slot) -> SourceToDelete | None:
    """The source to delete for a decided slot, or ``None`` when it must stay: not
    completed in a bundle, or a second copy of a record in the batch."""
    record, result = slot.record, slot.result
    if record is None or result is None or slot.primary is not None:
        return None
    version_id = record.version_id if record.version_id not in (None, "null") else None
    if result.outcome is Outcome.BUNDLED:
        etag = slot.bundled_etag
    elif result.outcome is Outcome.DUPLICATE and result.reason is Reason.RECOVERED:
        content_keyed = bool(record.e_tag) and record.s3.object.size is not None
        if version_id is not None and content_keyed:
            return None  # the bundle holds these bytes, maybe under another version
        etag = record.e_tag  # the member matched the record's ETag and size
    else:
        return None
    etag = (etag or "").strip('"') or None
    if etag is not None and (etag == "*" or etag.startswith("W/")):
        etag = None  # a wildcard or weak tag is no condition: refused below
    # Neither a version nor an ETag: `S3Client.delete_objects` refuses it (NO_CONDITION),
    # so it is counted and logged as not deleted rather than silently left.
    target = ObjectToDelete(
        record.s3.object.original_key,
        version_id=version_id,
        etag=None if version_id else etag,
    )
    return SourceToDelete(record.s3.bucket.name, target, result.bundle_key)


def delete_sources(
    s3_client: S3Client,
    sources: Sequence[SourceToDelete],
    *,
    deadline: Deadline,
    metrics: MetricsSink,
    request_id: str,
) -> Counter[str]:
    """Delete ``sources`` (``DeleteObjects``, 1,000 a request, per bucket) while the
    deadline leaves `MIN_DELETE_SECONDS`; count each outcome in ``metrics`` and log
    every source not deleted. Returns the counts by metric name."""
    unique = list(
        {(s.bucket, s.target.key, s.target.version_id, s.target.etag): s for s in sources}.values()
    )
    by_bucket: dict[str, list[SourceToDelete]] = {}
    for source in unique:
        by_bucket.setdefault(source.bucket, []).append(source)
    counts: Counter[str] = Counter()
    for bucket, items in by_bucket.items():
        for start in range(0, len(items), MAX_DELETE_KEYS):
            chunk = items[start : start + MAX_DELETE_KEYS]
            if deadline.remaining() < MIN_DELETE_SECONDS:
                results = [
                    DeleteResult(item.target, DeleteStatus.FAILED, code=_NOT_ATTEMPTED)
                    for item in chunk
                ]
            else:
                results = s3_client.delete_objects(bucket, [item.target for item in chunk])
            for item, result in zip(chunk, results, strict=True):
                counts[_METRICS[result.status]] += 1
                _log(item, result, request_id)
    for name in _METRICS.values():
        metrics.add(name, counts[name])
    if unique:
        logger.info(
            "sources deleted",
            extra={"request_id": request_id, "sources": len(unique), **counts},
        )
    return counts


def _log(item: SourceToDelete, result: DeleteResult, request_id: str) -> None:
    if result.status is DeleteStatus.DELETED:
        return
    fields = {
        "request_id": request_id,
        "bucket": item.bucket,
        "key": item.target.key,
        "version_id": item.target.version_id,
        "etag": item.target.etag,
        "bundle_key": item.bundle_key,
        "status": result.status.value,
        "code": result.code,
        "error": result.error.to_dict() if result.error is not None else None,
    }
    if result.status is DeleteStatus.FAILED:
        logger.warning("source not deleted", extra=fields)
    else:
        logger.info("source not deleted", extra=fields)
