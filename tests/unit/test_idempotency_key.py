"""Tests for make_idempotency_key: the conventions' formula, byte for byte."""

from __future__ import annotations

import json
from urllib.parse import quote, unquote

from hypothesis import given
from hypothesis import strategies as st

from data_aggregator.idempotency import make_idempotency_key


def _seed_formula(key: str, version: str | None, sequencer: str) -> str:
    # Copied verbatim from ../shared/seed/conventions.md.
    unique_part = version or sequencer
    raw = json.dumps({"k": key, "u": unique_part}, separators=(",", ":"))
    return quote(raw, safe="")


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


@given(st.text(), st.none() | st.text(min_size=1), st.text())
def test_matches_the_seed_formula(key: str, version: str | None, sequencer: str) -> None:
    """For any input the public function equals the conventions' private one."""
    assert make_idempotency_key(key, version, sequencer) == _seed_formula(key, version, sequencer)


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
