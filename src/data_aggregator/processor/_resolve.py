"""Resolve ambiguous EventBridge keys against S3 (private).

EventBridge sends object keys form-encoded or not (and so may a Step Functions Map's S3
Inventory reader), so a key with ``+`` may name the literal key or one with a space.
`resolve_keys` confirms, for every slot whose record has several readings, which one
exists with the event's size and ETag, and decides the slots whose object is gone or
whose lookup failed.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor, wait
from typing import TYPE_CHECKING

from data_aggregator import _deadline
from data_aggregator.exceptions import (
    DataAggregatorError,
    DeadlineExceededError,
    S3ObjectNotFoundError,
    ValidationError,
)
from data_aggregator.processor._results import Outcome, Reason

if TYPE_CHECKING:
    from collections.abc import Sequence

    from data_aggregator.clients import S3Client
    from data_aggregator.processor._slots import Slot
    from data_aggregator.schemas import S3EventNotificationRecord

__all__ = ["resolve_key", "resolve_keys"]

#: Largest number of concurrent HEAD requests used to resolve ambiguous EventBridge keys.
_MAX_RESOLVE_WORKERS = 16


def resolve_keys(s3: S3Client, slots: Sequence[Slot]) -> None:
    """Pick the reading of each ambiguous key that exists in S3 (HEAD requests in parallel).

    A resolved slot gets the confirmed record; a slot whose object has no matching
    reading is skipped (``OBJECT_NOT_FOUND``), one whose lookup failed fails
    (``FETCH_FAILED`` if retryable, else ``REFUSED``), and so does one whose lookup has not
    answered by the invocation's deadline (``DeadlineExceededError``: the lookup is
    abandoned).
    """
    ambiguous = [
        slot
        for slot in slots
        if slot.record is not None and len(slot.record.s3.object.key_candidates) > 1
    ]
    if not ambiguous:
        return
    workers = min(_MAX_RESOLVE_WORKERS, len(ambiguous))
    pool = ThreadPoolExecutor(workers, thread_name_prefix="da-resolve")
    records = [slot.record for slot in ambiguous if slot.record is not None]
    futures = [_deadline.submit(pool, resolve_key, s3, record) for record in records]
    wait(futures, timeout=_deadline.wait_timeout())
    pool.shutdown(wait=False, cancel_futures=True)
    late = DeadlineExceededError(
        "the key lookup did not answer before the invocation's deadline",
        context={"operation": "HeadObject"},
    )
    resolved_all = [
        future.result() if future.done() and not future.cancelled() else late for future in futures
    ]
    for slot, resolved in zip(ambiguous, resolved_all, strict=True):
        if isinstance(resolved, S3ObjectNotFoundError):
            slot.decide(Outcome.SKIPPED, Reason.OBJECT_NOT_FOUND, error=resolved)
        elif isinstance(resolved, DataAggregatorError):
            reason = Reason.FETCH_FAILED if resolved.retryable else Reason.REFUSED
            slot.decide(Outcome.FAILED, reason, error=resolved)
        else:
            slot.record = resolved


def resolve_key(
    s3: S3Client, record: S3EventNotificationRecord
) -> S3EventNotificationRecord | DataAggregatorError:
    """Confirm which reading of an ambiguous (EventBridge) key exists in S3.

    ``HeadObject`` each of ``record.s3.object.key_candidates`` in order; the first whose
    size and ETag match the event wins (the literal reading first). Returns the confirmed
    record, or the error: ``S3ObjectNotFoundError`` when no reading matches, the S3 error
    of a failed request, or the ``ValidationError`` of a key the sanitizer refuses.
    """
    obj = record.s3.object
    for candidate in obj.key_candidates:
        try:
            info = s3.head_object(record.s3.bucket.name, candidate, version_id=record.version_id)
        except S3ObjectNotFoundError:
            continue
        except DataAggregatorError as exc:
            return exc
        if obj.size is not None and info.content_length != obj.size:
            continue
        if obj.e_tag and info.etag and info.etag.strip('"') != obj.e_tag:
            continue
        try:
            return record.confirm_key(candidate)
        except ValidationError as exc:
            return exc
    return S3ObjectNotFoundError(
        "no reading of the event's key names an object with the event's size and ETag",
        context={"bucket": record.s3.bucket.name, "candidates": len(obj.key_candidates)},
        operation="HeadObject",
    )
