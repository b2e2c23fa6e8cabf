"""The synthetic notifications and options of ``data-aggregator bundle`` (no AWS)."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from data_aggregator._backfill import (
    BackfillError,
    ListedObject,
    backfill_sequencer,
    iter_chunks,
    parse_s3_url,
    synthetic_message,
)
from data_aggregator.idempotency import make_idempotency_key
from data_aggregator.schemas import parse_event

MODIFIED = datetime(2024, 5, 1, 12, 0, 0, 123000, tzinfo=timezone.utc)
KEYS = ["plain.txt", "a b+c.txt", "100%25 done.txt", "caf\u00e9/\u65e5\u672c.txt", "x/?#&=.log"]


@pytest.mark.parametrize("key", KEYS)
def test_synthetic_record_carries_the_exact_key(key: str) -> None:
    """The processor decodes a synthetic record back to the exact listed key."""
    obj = ListedObject(key, 3, "abc", MODIFIED)
    (message,) = parse_event({"Records": [synthetic_message("src", obj, "m-1")]})
    (record,) = message.records
    assert record.s3.object.original_key == key
    assert record.s3.object.key_candidates == (key,)
    assert record.e_tag == "abc"


def test_versioned_key_matches_a_live_event() -> None:
    """With a version id the idempotency key is the one a live event would have."""
    obj = ListedObject("k.txt", 1, "e", MODIFIED, version_id="v1")
    (message,) = parse_event({"Records": [synthetic_message("src", obj, "m")]})
    (record,) = message.records
    key = make_idempotency_key(record.s3.object.original_key, record.version_id, record.sequencer)
    assert key == make_idempotency_key("k.txt", "v1", "0055AED6DCD90281E5")


def test_unversioned_key_uses_etag_and_last_modified() -> None:
    """Without a version id the unique part is the ETag and LastModified, stable per run."""
    obj = ListedObject("k.txt", 1, "e", MODIFIED)
    (message,) = parse_event({"Records": [synthetic_message("src", obj, "m")]})
    (record,) = message.records
    assert record.sequencer == backfill_sequencer("e", MODIFIED)
    assert record.sequencer == "backfill:e:2024-05-01T12:00:00.123Z"


def test_parse_s3_url_and_chunks() -> None:
    """``s3://bucket/prefix`` splits; anything else is a one-line error; chunks are sized."""
    assert parse_s3_url("s3://b/p/q", "x") == ("b", "p/q")
    assert parse_s3_url("s3://b", "x") == ("b", "")
    for bad in ("b/p", "s3:///p", "http://b/p"):
        with pytest.raises(BackfillError):
            parse_s3_url(bad, "x")
    objs = [ListedObject(str(i), 0, "e", None) for i in range(5)]
    assert [len(c) for c in iter_chunks(objs, 2)] == [2, 2, 1]
