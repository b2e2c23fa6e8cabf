"""The identity of an object a listing names (private; import from `data_aggregator.schemas`).

A listing (``data-aggregator bundle``'s ListObjectsV2 pages, a Step Functions Distributed
Map item) names an object without the event sequencer that a live S3 notification carries.
Both paths derive the missing unique part here, in one place, so that one object listed
twice, by either path, has one idempotency key.
"""

from __future__ import annotations

from datetime import datetime, timezone

__all__ = ["LISTING_EVENT_NAME", "backfill_sequencer", "event_time"]

#: The event name given to records built from a listing (the default event filter
#: accepts it).
LISTING_EVENT_NAME = "ObjectCreated:Put"


def event_time(moment: datetime) -> str:
    """``moment`` as S3 events write times: UTC, milliseconds, ``2024-05-01T12:00:00.123Z``.

    A naive ``moment`` is taken as UTC.
    """
    utc = moment.replace(tzinfo=timezone.utc) if moment.tzinfo is None else moment
    utc = utc.astimezone(timezone.utc)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"


def backfill_sequencer(etag: str, last_modified: datetime | None) -> str:
    """The sequencer of a synthetic record for an unversioned listed object.

    A listing has no event sequencer; ``ETag`` (without quotes) + ``LastModified`` (UTC,
    milliseconds) tell apart successive writes of one key the same way, and are stable
    across runs and across the paths that list (the CLI backfill, a Distributed Map). It
    is recorded in the manifest; the record's idempotency key is its content key
    (`data_aggregator.idempotency.record_idempotency_key`), which does not use it: it is
    the unique part of the seed's key only for a record without an ETag or size, which a
    listing or a Map item never is.

    >>> from datetime import datetime, timezone
    >>> backfill_sequencer("abc", datetime(2024, 5, 1, 12, 0, tzinfo=timezone.utc))
    'backfill:abc:2024-05-01T12:00:00.000Z'
    """
    stamp = "-" if last_modified is None else event_time(last_modified)
    return f"backfill:{etag}:{stamp}"
