"""Property tests: keys survive every envelope exactly, decoded once and sanitized."""

from __future__ import annotations

import json
from typing import Any, cast
from urllib.parse import unquote_plus

import pytest
from hypothesis import given
from hypothesis import strategies as st

from data_aggregator.exceptions import ValidationError
from data_aggregator.schemas import (
    KeyEncoding,
    S3EventNotificationRecord,
    parse_event,
    record_from_eventbridge,
)
from data_aggregator.security import sanitize_s3_key
from data_aggregator.testing import encode_event_key, eventbridge_object_created, s3_record
from tests.processor_support import sqs_batch
from tests.strategies import (
    event_keys,
    notification_wrappers,
    raw_s3_records,
    wrap_notification,
)


def sanitized_or_code(key: str) -> tuple[str | None, str | None]:
    """``(sanitize_s3_key(key), None)``, or ``(None, error_code)`` when it is refused."""
    try:
        return sanitize_s3_key(key), None
    except ValidationError as exc:
        return None, exc.error_code


def test_s3_form_encoding_matches_the_documented_examples() -> None:
    """The strategies encode as S3 does: space to ``+``, ``+`` to ``%2B``, ``/`` kept."""
    assert encode_event_key("red flower.jpg") == "red+flower.jpg"
    assert encode_event_key("a+b/c d") == "a%2Bb/c+d"
    assert encode_event_key("50%") == "50%25"


@given(key=event_keys(), wrapper=notification_wrappers(), data=st.data())
def test_keys_survive_every_envelope_exactly(key: str, wrapper: str, data: st.DataObject) -> None:
    """Encoded as S3 does and wrapped in any envelope, a key parses back to itself exactly."""
    record = data.draw(raw_s3_records(key))
    event = wrap_notification(wrapper, {"Records": [record]})

    (message,) = parse_event(event)

    safe, code = sanitized_or_code(key)
    if code is not None:
        assert message.error is not None
        assert message.error.error_code == code
        assert message.records == ()
        return
    assert message.error is None
    (parsed,) = message.records
    assert parsed.s3.object.original_key == key
    assert parsed.s3.object.key == safe
    assert parsed.s3.object.key_candidates == (key,)


@given(key=event_keys())
def test_decoding_is_never_applied_twice(key: str) -> None:
    """A key that itself looks encoded (``%2B``, ``+``) is returned as it is, not decoded again."""
    already_encoded = encode_event_key(key)  # a real key made of escape sequences
    notification = {"Records": [_record(encode_event_key(already_encoded))]}

    (message,) = parse_event(sqs_batch([json.dumps(notification)]))

    if message.error is None:
        assert message.records[0].s3.object.original_key == already_encoded
    else:
        assert message.error.error_code == sanitized_or_code(already_encoded)[1]


@given(key=event_keys())
def test_exact_keys_are_taken_literally(key: str) -> None:
    """With ``KeyEncoding.NONE`` the key in the record is the exact key, whatever it holds."""
    safe, code = sanitized_or_code(key)
    if code is not None:
        with pytest.raises(ValidationError) as caught:
            S3EventNotificationRecord.from_aws(_record(key), key_encoding=KeyEncoding.NONE)
        assert caught.value.error_code == code
        return
    parsed = S3EventNotificationRecord.from_aws(_record(key), key_encoding=KeyEncoding.NONE)
    assert parsed.s3.object.original_key == key
    assert parsed.s3.object.key == safe


@given(key=event_keys())
def test_eventbridge_keys_offer_literal_then_decoded(key: str) -> None:
    """EventBridge keys are kept literally, with the differing form-decoded reading second."""
    safe, code = sanitized_or_code(key)
    if code is not None:
        with pytest.raises(ValidationError) as caught:
            record_from_eventbridge(eventbridge_object_created("bucket-name", key))
        assert caught.value.error_code == code
        return
    parsed = record_from_eventbridge(eventbridge_object_created("bucket-name", key))
    candidates = parsed.s3.object.key_candidates
    assert parsed.s3.object.original_key == key
    assert candidates[0] == key
    assert parsed.s3.object.key == safe
    decoded = _form_decoded(key)
    if decoded is not None and decoded != key:
        assert candidates == (key, decoded)
    else:
        assert candidates == (key,)


@given(first=event_keys(), second=event_keys(), same_version=st.booleans())
def test_equality_is_identity_equality(first: str, second: str, same_version: bool) -> None:
    """Two records are equal exactly when their identities are, and equal records hash alike."""
    try:
        a = S3EventNotificationRecord.from_aws(_record(first), key_encoding=KeyEncoding.NONE)
        b_raw = _record(second)
        if not same_version:
            b_raw["s3"]["object"]["versionId"] = "other-version"
        b = S3EventNotificationRecord.from_aws(b_raw, key_encoding=KeyEncoding.NONE)
    except ValidationError:
        return
    assert (a == b) is (a.identity == b.identity)
    if a == b:
        assert hash(a) == hash(b)


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=20,
)


@given(bodies=st.lists(st.one_of(st.text(), _JSON.map(json.dumps)), min_size=1, max_size=5))
def test_arbitrary_sqs_bodies_never_break_the_batch(bodies: list[str]) -> None:
    """Whatever the bodies hold, every SQS message comes back, parsed or with an error."""
    messages = parse_event(sqs_batch(bodies))

    assert [m.message_id for m in messages] == [f"message-{i}" for i in range(len(bodies))]
    for message in messages:
        assert (message.error is None) or (message.records == () and not message.is_test_event)


@given(obj=st.dictionaries(st.sampled_from(["key", "size", "eTag", "versionId"]), _JSON))
def test_arbitrary_object_fields_raise_only_our_error(obj: dict[str, Any]) -> None:
    """``from_aws`` either validates or raises our ``ValidationError``, nothing else."""
    raw = _record("placeholder")
    raw["s3"]["object"] = obj
    try:
        parsed = S3EventNotificationRecord.from_aws(raw)
    except ValidationError:
        return
    assert parsed.s3.object.original_key == unquote_plus(obj["key"])


def _record(event_key: str) -> dict[str, Any]:
    """A record whose ``key`` is ``event_key`` as written (the builder encodes its own)."""
    record = cast("dict[str, Any]", s3_record("bucket-name", "", sequencer="0A"))
    record["s3"]["object"]["key"] = event_key
    return record


def _form_decoded(key: str) -> str | None:
    try:
        decoded = unquote_plus(key, errors="strict")
        decoded.encode("utf-8")
    except UnicodeError:
        return None
    return decoded or None
