"""`S3EventNotificationRecord.from_aws`'s fast path makes exactly what ``model_validate`` makes.

The fast path (``_fast_record``) builds records with ``model_construct`` so that a Lambda's
first invocation does not build the models' validators; it must never accept what pydantic
refuses, and what it accepts must be the same record, field for field, with the same
``model_fields_set`` at every level.
"""

from __future__ import annotations

import copy
import json
from typing import Any

import pydantic
import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import BaseModel

from data_aggregator.schemas import KeyEncoding, S3EventNotificationRecord
from data_aggregator.schemas._records import KEY_ENCODING_CONTEXT, _fast_record
from tests.events import event_names, load_event
from tests.strategies import event_keys, raw_s3_records


def assert_same(fast: BaseModel, slow: BaseModel) -> None:
    """Same type, same values (repr shows the time zone's type too), same fields set."""
    assert type(fast) is type(slow)
    assert repr(fast) == repr(slow)
    assert fast.model_dump() == slow.model_dump()
    assert fast.model_fields_set == slow.model_fields_set
    assert fast.__pydantic_extra__ == slow.__pydantic_extra__
    for name in type(slow).model_fields:
        mine, theirs = getattr(fast, name), getattr(slow, name)
        if isinstance(theirs, BaseModel):
            assert isinstance(mine, BaseModel)
            assert_same(mine, theirs)


def check(raw: Any, encoding: KeyEncoding = KeyEncoding.FORM_URLENCODED) -> str:
    """Compare both paths on ``raw``: ``"fast"`` (same record), ``"slow"`` (the fast path
    stepped aside) or ``"refused"`` (pydantic refuses it, and so did the fast path)."""
    fast = _fast_record(raw, encoding)
    try:
        slow = S3EventNotificationRecord.model_validate(
            raw, context={KEY_ENCODING_CONTEXT: encoding}
        )
    except pydantic.ValidationError:
        assert fast is None, "the fast path accepted a record pydantic refuses"
        return "refused"
    if fast is None:
        return "slow"
    assert_same(fast, slow)
    return "fast"


def fixture_records() -> list[tuple[str, dict[str, Any]]]:
    """Every classic S3 record in the event fixtures (direct, in SQS bodies, in SNS)."""
    found: list[tuple[str, dict[str, Any]]] = []

    def walk(name: str, value: Any) -> None:
        if isinstance(value, str) and value.startswith("{"):
            walk(name, json.loads(value))
        elif isinstance(value, dict):
            if "s3" in value and "eventName" in value:
                found.append((name, value))
                return
            for item in value.values():
                walk(name, item)
        elif isinstance(value, list):
            for item in value:
                walk(name, item)

    for name in event_names():
        walk(name, load_event(name))
    return found


@pytest.mark.parametrize(("name", "raw"), fixture_records())
def test_fixture_records_take_the_fast_path_and_match(name: str, raw: dict[str, Any]) -> None:
    """Each real-shaped record of the fixtures is built by the fast path, identically."""
    for encoding in KeyEncoding:
        assert check(raw, encoding) == "fast", f"{name}: not taken by the fast path ({encoding})"


@given(raw_s3_records(key=None))
def test_generated_records_match(raw: Any) -> None:
    """Generated classic records (valid keys): the fast path takes every one, in every
    encoding, unless the key is refused (then pydantic refuses it too)."""
    for encoding in KeyEncoding:
        assert check(dict(raw), encoding) in {"fast", "refused"}


@given(event_keys())
def test_adversarial_keys_match(key: str) -> None:
    """Keys of every kind (encoded, refused, over-long): same record or both refuse."""
    raw = copy.deepcopy(load_event("s3_object_created_put")["Records"][0])
    raw["s3"]["object"]["key"] = key
    for encoding in KeyEncoding:
        check(raw, encoding)


#: Values of every JSON type (and a few Python ones) to put where a field was.
ODD_VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-2, 6 * 1024**4),
    st.floats(allow_nan=False),
    st.text(max_size=30),
    st.sampled_from(
        [
            "",
            '""',
            "s3:",
            "s3:ObjectCreated:Put",
            "2024-01-01T00:00:00Z",
            "2024-01-01T00:00:00.1234567Z",
            "2024-02-30T00:00:00.000Z",
            "2024-01-01T24:00:00.000Z",
            "2024-01-01 00:00:00",
            "1704067200",
            "my-bucket",
            "A",
        ]
    ),
    st.lists(st.text(max_size=5), max_size=2),
    st.dictionaries(st.text(max_size=5), st.text(max_size=5), max_size=2),
)

#: Paths of the fields a mutation may replace or delete.
PATHS = [
    ("eventVersion",),
    ("eventSource",),
    ("awsRegion",),
    ("eventTime",),
    ("eventName",),
    ("userIdentity",),
    ("userIdentity", "principalId"),
    ("requestParameters",),
    ("requestParameters", "sourceIPAddress"),
    ("responseElements",),
    ("responseElements", "x-amz-request-id"),
    ("s3",),
    ("s3", "s3SchemaVersion"),
    ("s3", "configurationId"),
    ("s3", "bucket"),
    ("s3", "bucket", "name"),
    ("s3", "bucket", "arn"),
    ("s3", "bucket", "ownerIdentity"),
    ("s3", "bucket", "ownerIdentity", "principalId"),
    ("s3", "object"),
    ("s3", "object", "key"),
    ("s3", "object", "size"),
    ("s3", "object", "eTag"),
    ("s3", "object", "versionId"),
    ("s3", "object", "sequencer"),
]


@given(
    st.lists(
        st.tuples(st.sampled_from(PATHS), st.one_of(st.just("<delete>"), ODD_VALUES)),
        min_size=1,
        max_size=3,
    )
)
def test_mutated_records_match(mutations: list[tuple[tuple[str, ...], Any]]) -> None:
    """A real record with fields replaced by odd values or removed: same record, or the
    fast path steps aside and pydantic decides."""
    raw: Any = copy.deepcopy(load_event("s3_object_created_put")["Records"][0])
    for path, value in mutations:
        parent = raw
        for part in path[:-1]:
            parent = parent.get(part) if isinstance(parent, dict) else None
        if not isinstance(parent, dict):
            continue
        if value == "<delete>":
            parent.pop(path[-1], None)
        else:
            parent[path[-1]] = value
    for encoding in KeyEncoding:
        check(raw, encoding)


def test_from_aws_does_not_build_the_validator_for_a_usual_record() -> None:
    """``from_aws`` of a usual record leaves the model unbuilt (checked in a fresh
    interpreter: this process may have validated records already)."""
    import subprocess
    import sys

    code = (
        "import json, sys\n"
        "from data_aggregator.schemas import S3EventNotificationRecord as R\n"
        f"raw = json.loads({json.dumps(json.dumps(load_event('s3_object_created_put')))})\n"
        "record = R.from_aws(raw['Records'][0])\n"
        "print(json.dumps([record.s3.object.key, R.__pydantic_complete__,"
        " 'importlib.metadata' in sys.modules]))"
    )
    done = subprocess.run(  # noqa: S603 - our own interpreter
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    )
    key, complete, metadata = json.loads(done.stdout)
    assert key.startswith("incoming/")
    assert (complete, metadata) == (False, False)
