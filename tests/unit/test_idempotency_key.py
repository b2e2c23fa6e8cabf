"""Tests for make_idempotency_key: the conventions' formula, byte for byte."""

from __future__ import annotations

import json
from urllib.parse import unquote

import pytest
from hypothesis import given
from hypothesis import strategies as st

from data_aggregator.idempotency import make_idempotency_key


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
