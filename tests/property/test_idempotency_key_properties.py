"""Property tests of the idempotency keys: the content key is one injective, ASCII,
slash-free string that fits a DynamoDB partition key, and every path derives the same."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from urllib.parse import unquote

from hypothesis import given, settings
from hypothesis import strategies as st

from data_aggregator.cli._bundle import ListedObject, synthetic_message
from data_aggregator.idempotency import (
    CONTENT_KEY_MAX_BYTES,
    make_content_key,
    make_idempotency_key,
    record_idempotency_key,
)
from data_aggregator.schemas import parse_event
from data_aggregator.testing import s3_notification, s3_record, sqs_event, sqs_message
from tests.strategies import ObjectContent, object_content_pairs, object_contents

MODIFIED = datetime(2024, 5, 1, 12, 0, 0, 123000, tzinfo=timezone.utc)


@settings(max_examples=200)
@given(object_content_pairs())
def test_content_key_is_injective(pair: tuple[ObjectContent, ObjectContent]) -> None:
    """Two objects that differ in bucket, key, ETag (quotes aside) or size never share a
    content key; the same inputs always give the same one."""
    first, second = pair
    same = first[0] == second[0] and first[1] == second[1] and first[3] == second[3]
    same = same and first[2].strip('"') == second[2].strip('"')
    assert (make_content_key(*first) == make_content_key(*second)) is same


@settings(max_examples=200)
@given(object_contents())
def test_content_key_is_ascii_without_slash_and_fits_dynamodb(content: ObjectContent) -> None:
    """Whatever the key (up to S3's 1,024 bytes of UTF-8, any characters), the content key
    is ASCII, has no ``/``, fits DynamoDB's 2,048-byte partition key, and decodes back to
    its inputs (or, when it had to be hashed, to its bucket and a SHA-256)."""
    bucket, key, etag, size = content
    result = make_content_key(bucket, key, etag, size)
    assert result.isascii()
    assert "/" not in result
    assert len(result.encode("utf-8")) <= CONTENT_KEY_MAX_BYTES
    decoded = json.loads(unquote(result))
    if "h" in decoded:  # hashed: the bucket and a SHA-256 of the long form
        assert set(decoded) == {"b", "h"}
        assert decoded["b"] == bucket
        assert len(decoded["h"]) == 64
    else:
        assert decoded == {"b": bucket, "k": key, "e": etag.strip('"'), "z": size}


@given(object_contents(), st.text(), st.none() | st.text(), st.none() | st.text())
def test_content_and_seed_keys_never_meet(
    content: ObjectContent, key: str, version: str | None, sequencer: str | None
) -> None:
    """A content key is never a seed key: a table may hold both kinds side by side."""
    assert make_content_key(*content) != make_idempotency_key(key, version, sequencer)


@settings(max_examples=200)
@given(
    object_contents(),
    st.none() | st.from_regex(r"[A-Za-z0-9._]{32}", fullmatch=True),
    st.from_regex(r"[0-9A-F]{16,18}", fullmatch=True),
)
def test_event_and_listing_of_one_object_share_its_key(
    content: ObjectContent, version: str | None, sequencer: str
) -> None:
    """An S3 event (bare ETag, sequencer, version id) and a backfill's listed object
    (quoted ETag, no sequencer; a version id from ListObjectVersions, none from
    ListObjectsV2) of one object have the same record key: its content key."""
    bucket, key, etag, size = content
    etag = etag.strip('"')
    live = sqs_message(
        s3_notification(
            [s3_record(bucket, key, size=size, etag=etag, version_id=version, sequencer=sequencer)]
        )
    )
    listed = [
        synthetic_message(bucket, ListedObject(key, size, f'"{etag}"', MODIFIED, version), "a"),
        synthetic_message(bucket, ListedObject(key, size, f'"{etag}"', MODIFIED), "b"),
    ]
    messages = parse_event(sqs_event([live, *listed]))
    if any(message.error is not None for message in messages):
        return  # a key the parser refuses (unsafe): refused on every path alike
    keys = {record_idempotency_key(m.records[0]) for m in messages}
    assert keys == {make_content_key(bucket, key, etag, size)}
