"""Tests for the idempotency keys: the conventions' formula, byte for byte, and the
content key every path shares."""

from __future__ import annotations

import hashlib
import json
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, unquote

import pytest
from hypothesis import given
from hypothesis import strategies as st

from data_aggregator.cli._bundle import ListedObject, synthetic_message
from data_aggregator.idempotency import (
    CONTENT_KEY_MAX_BYTES,
    make_content_key,
    make_idempotency_key,
    object_idempotency_key,
    record_idempotency_key,
)
from data_aggregator.schemas import parse_event
from data_aggregator.testing import s3_notification, s3_record, sqs_event, sqs_message
from tests.docs_support import python_block_containing

if TYPE_CHECKING:
    from data_aggregator.schemas import S3EventNotificationRecord


def test_known_value() -> None:
    """A fixed input gives the exact string existing tables hold."""
    assert (
        make_idempotency_key("a b.txt", None, "0055AED6DCD90281E5")
        == "%7B%22k%22%3A%22a%20b.txt%22%2C%22u%22%3A%220055AED6DCD90281E5%22%7D"
    )


def test_version_wins_over_sequencer() -> None:
    """In a versioned bucket the version id is the unique part, not the sequencer."""
    assert make_idempotency_key("k", "v1", "seq-a") == make_idempotency_key("k", "v1", "seq-b")
    assert make_idempotency_key("k", None, "seq-a") != make_idempotency_key("k", None, "seq-b")


def test_non_ascii_keys_are_escaped() -> None:
    """Non-ASCII keys are JSON-escaped, so the result is pure ASCII."""
    result = make_idempotency_key("данные/😀.txt", None, "1")
    assert result.isascii()
    assert "%5Cu" in result  # \u escapes, quoted


# The conventions' formula, worked by hand: JSON {"k": key, "u": version or sequencer}
# with "," and ":" separators and \uXXXX escapes, then every byte but A-Z a-z 0-9 _ . - ~
# percent-quoted ({ %7B, " %22, : %3A, , %2C, / %2F, \ %5C, space %20, % %25, + %2B, } %7D).
SEED_FORMULA_VALUES = [
    # a version id wins over the sequencer; "/" is quoted
    ("logs/a.txt", "v1", "S", "%7B%22k%22%3A%22logs%2Fa.txt%22%2C%22u%22%3A%22v1%22%7D"),
    # an empty version id is no version: the sequencer is the unique part
    ("k", "", "seq", "%7B%22k%22%3A%22k%22%2C%22u%22%3A%22seq%22%7D"),
    # neither: the unique part is empty, not missing
    ("k", None, "", "%7B%22k%22%3A%22k%22%2C%22u%22%3A%22%22%7D"),
    # non-ASCII is JSON-escaped (\u00e9), then the backslash quoted
    ("\u00e9", None, "1", "%7B%22k%22%3A%22%5Cu00e9%22%2C%22u%22%3A%221%22%7D"),
    # beyond the BMP: a surrogate pair
    ("\U0001f600", None, "1", "%7B%22k%22%3A%22%5Cud83d%5Cude00%22%2C%22u%22%3A%221%22%7D"),
    # JSON escapes a quote and a backslash; "~" is left as it is
    ('a"b\\c', None, "1", "%7B%22k%22%3A%22a%5C%22b%5C%5Cc%22%2C%22u%22%3A%221%22%7D"),
    ("50%+x~", None, "1", "%7B%22k%22%3A%2250%25%2Bx~%22%2C%22u%22%3A%221%22%7D"),
    # a newline is escaped by JSON, a space in the version quoted
    ("a\nb", "v 2", "1", "%7B%22k%22%3A%22a%5Cnb%22%2C%22u%22%3A%22v%202%22%7D"),
]


@pytest.mark.parametrize(("key", "version", "sequencer", "expected"), SEED_FORMULA_VALUES)
def test_matches_the_seed_formula(
    key: str, version: str | None, sequencer: str, expected: str
) -> None:
    """The conventions' formula, worked out by hand for awkward inputs, byte for byte."""
    assert make_idempotency_key(key, version, sequencer) == expected


@given(st.text(), st.none() | st.text(min_size=1), st.text(min_size=1))
def test_round_trips_and_has_no_slash(key: str, version: str | None, sequencer: str) -> None:
    """The key decodes back to its parts and never contains a slash."""
    result = make_idempotency_key(key, version, sequencer)
    assert "/" not in result
    assert json.loads(unquote(result)) == {"k": key, "u": version or sequencer}


@given(st.text(), st.text(), st.text(min_size=1))
def test_distinct_keys_never_collide(key_a: str, key_b: str, sequencer: str) -> None:
    """Two different object keys with the same version never share an idempotency key."""
    if key_a != key_b:
        assert make_idempotency_key(key_a, None, sequencer) != make_idempotency_key(
            key_b, None, sequencer
        )


# ----------------------------------------------------------------------------- content key


def test_content_key_known_value() -> None:
    """The content key is JSON {"b", "k", "e", "z"}, percent-quoted like the seed's key."""
    assert make_content_key("logs", "a b.txt", "e1", 7) == (
        "%7B%22b%22%3A%22logs%22%2C%22k%22%3A%22a%20b.txt%22%2C%22e%22%3A%22e1%22%2C%22z%22%3A7%7D"
    )


def test_content_key_ignores_etag_quotes() -> None:
    """A listing's quoted ETag and an event's bare one give the same key."""
    assert make_content_key("b", "k", '"abc"', 1) == make_content_key("b", "k", "abc", 1)


def test_every_field_of_the_content_key_counts() -> None:
    """Another bucket, key, ETag or size is another object."""
    base = make_content_key("b", "k", "e", 1)
    others = [
        make_content_key("b2", "k", "e", 1),
        make_content_key("b", "k2", "e", 1),
        make_content_key("b", "k", "e2", 1),
        make_content_key("b", "k", "e", 2),
    ]
    assert base not in others
    assert len(set(others)) == 4


def test_the_record_key_is_the_content_key_when_etag_and_size_are_known() -> None:
    """With an ETag and a size, the version id and the sequencer do not matter; without
    either, the seed's key of key, version id and sequencer is the record key."""
    content = make_content_key("b", "k", "e", 3)
    for version, sequencer in [(None, "0A"), ("v1", "0A"), (None, "backfill:e:-"), ("v1", None)]:
        key = object_idempotency_key(
            "b", "k", version_id=version, sequencer=sequencer, etag="e", size=3
        )
        assert key == content
    for etag, size in [(None, 3), ("", 3), ('""', 3), ("e", None)]:
        key = object_idempotency_key(
            "b", "k", version_id="v1", sequencer="0A", etag=etag, size=size
        )
        assert key == make_idempotency_key("k", "v1", "0A")


def test_a_long_content_key_is_hashed_to_fit_dynamodb() -> None:
    """A content key longer than 2,048 bytes names its bucket and its SHA-256 instead (the
    seed's key of the same object would be about 4 KiB, which the DynamoDB store hashes
    in its turn)."""
    key = "\U0001f600" * 256  # 1,024 bytes of UTF-8, the longest key S3 allows
    readable = quote(
        json.dumps({"b": "b", "k": key, "e": "e", "z": 1}, separators=(",", ":")), safe=""
    )
    assert len(readable) > CONTENT_KEY_MAX_BYTES
    assert len(make_idempotency_key(key, None, "0A")) > CONTENT_KEY_MAX_BYTES
    hashed = make_content_key("b", key, "e", 1)
    digest = hashlib.sha256(readable.encode()).hexdigest()
    assert json.loads(unquote(hashed)) == {"b": "b", "h": digest}
    assert hashed != make_content_key("b", key, "e", 2)


def _live_record(**fields: Any) -> S3EventNotificationRecord:
    (message,) = parse_event(sqs_event([sqs_message(s3_notification([s3_record(**fields)]))]))
    (record,) = message.records
    return record


def test_live_and_listed_records_of_one_object_share_their_key() -> None:
    """An S3 event (sequencer, version id) and a backfill's listed object (quoted ETag,
    no sequencer, a version id only from ListObjectVersions) of one object have one key;
    another bucket with the same key and bytes does not."""
    modified = datetime(2024, 5, 1, 12, tzinfo=timezone.utc)
    for version in (None, "v1"):
        live = _live_record(
            bucket="src", key="a b.txt", size=5, etag="e5", version_id=version, sequencer="0A"
        )
        listed_versions = ListedObject("a b.txt", 5, '"e5"', modified, version_id=version)
        listed_plain = ListedObject("a b.txt", 5, '"e5"', modified)  # ListObjectsV2
        keys = {record_idempotency_key(live)}
        for listed in (listed_versions, listed_plain):
            (message,) = parse_event(sqs_event([synthetic_message("src", listed, "m")]))
            keys.add(record_idempotency_key(message.records[0]))
        assert keys == {make_content_key("src", "a b.txt", "e5", 5)}
        elsewhere = _live_record(
            bucket="src2", key="a b.txt", size=5, etag="e5", version_id=version, sequencer="0A"
        )
        assert record_idempotency_key(elsewhere) not in keys


def test_the_documented_example_runs() -> None:
    """The worked example of ``docs/idempotency.md`` (an event and a listing of one object
    share its content key; without an ETag, the seed key) runs as shown."""
    source = python_block_containing("docs/idempotency.md", "no_etag =")
    namespace: dict[str, Any] = {}
    exec(compile(source, "docs/idempotency.md", "exec"), namespace)  # noqa: S102 - our own docs
    assert namespace["event"].startswith("%7B%22b%22")
