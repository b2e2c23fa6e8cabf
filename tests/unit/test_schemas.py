"""Unit tests for the S3 record models of ``data_aggregator.schemas``."""

from __future__ import annotations

import copy
from datetime import datetime, timezone
from typing import Any

import pydantic
import pytest

from data_aggregator.exceptions import ValidationError
from data_aggregator.schemas import (
    KEY_ENCODING_CONTEXT,
    KEY_ERROR_TYPE,
    MAX_OBJECT_SIZE,
    KeyEncoding,
    S3EventNotificationRecord,
    S3EventRecord,
    S3ObjectData,
    validation_error_from_pydantic,
)
from data_aggregator.security import sanitize_s3_key
from tests.events import load_event


def raw_record(name: str = "s3_object_created_put") -> dict[str, Any]:
    """The first record of an S3 notification fixture."""
    record = load_event(name)["Records"][0]
    assert isinstance(record, dict)
    return record


def with_object(**changes: Any) -> dict[str, Any]:
    """The Put fixture record with ``s3.object`` fields replaced (``None`` removes one)."""
    record = copy.deepcopy(raw_record())
    obj = record["s3"]["object"]
    for name, value in changes.items():
        if value is None:
            obj.pop(name, None)
        else:
            obj[name] = value
    return record


def with_key(key: object) -> dict[str, Any]:
    """The Put fixture record with ``s3.object.key`` replaced."""
    return with_object(key=key)


# --------------------------------------------------------------------------- access paths


def test_seed_access_paths() -> None:
    """The seed's access paths give the validated bucket, exact key, archive name and size."""
    parsed = S3EventNotificationRecord.model_validate(raw_record())

    assert parsed.s3.bucket.name == "amzn-s3-demo-bucket"
    assert parsed.s3.object.original_key == (
        "incoming/sensor 42/reading (2) : 2024-01-01T00:00:00.json"
    )
    assert parsed.s3.object.key == sanitize_s3_key(parsed.s3.object.original_key)
    assert parsed.s3.object.size == 1024
    assert parsed.s3.object.e_tag == "d41d8cd98f00b204e9800998ecf8427e"
    assert parsed.s3.object.sequencer == "0055AED6DCD90281E5"


def test_record_level_conveniences() -> None:
    """Record-level shortcuts mirror the nested fields and the event metadata."""
    parsed = S3EventNotificationRecord.model_validate(raw_record("s3_object_created_put_versioned"))

    assert parsed.bucket_name == parsed.s3.bucket.name == "amzn-s3-demo-bucket"
    assert parsed.version_id == parsed.s3.object.version_id == "096fKKXTRTtl3on89fVO.nfljtsv6qko"
    assert parsed.sequencer == parsed.s3.object.sequencer == "0062E99A88DC407460"
    assert parsed.e_tag == parsed.s3.object.e_tag == "b1946ac92492d2347c6235b4d2611184"
    assert parsed.event_name == "ObjectCreated:Put"
    assert parsed.event_time == datetime(2024, 1, 1, 0, 0, 2, tzinfo=timezone.utc)
    assert parsed.aws_region == "us-east-1"
    assert parsed.s3.bucket.arn == "arn:aws:s3:::amzn-s3-demo-bucket"


def test_aws_camel_case_fields_exposed_in_snake_case() -> None:
    """AWS's camelCase input fields are exposed under snake_case attribute names."""
    parsed = S3EventNotificationRecord.model_validate(raw_record())

    assert parsed.event_version == "2.1"
    assert parsed.event_source == "aws:s3"
    assert parsed.user_identity is not None
    assert parsed.user_identity.principal_id == "AWS:AIDAINPONIXQXHT3IKHL2"
    assert parsed.request_parameters is not None
    assert parsed.request_parameters.source_ip_address == "203.0.113.10"
    assert parsed.response_elements == {
        "x-amz-request-id": "C3D13FE58DE4C810",
        "x-amz-id-2": "Zbk7yDc1bTFvUXlqZXJGSHVPYmxqa3l2Y0xQb0xuWEF0dWZtZ2FZbmFnT1hUdEdJZVE9",
    }
    assert parsed.s3.s3_schema_version == "1.0"
    assert parsed.s3.configuration_id == "bundle-incoming"
    assert parsed.s3.bucket.owner_identity is not None
    assert parsed.s3.bucket.owner_identity.principal_id == "A3NL1KOZZKExample"


# --------------------------------------------------------------------------- decoding


@pytest.mark.parametrize(
    ("event_key", "exact_key"),
    [
        ("red+flower.jpg", "red flower.jpg"),
        ("a%2Bb", "a+b"),
        ("a%252B", "a%2B"),
        ("a+%2B+b", "a + b"),
        ("caf%C3%A9", "caf\u00e9"),
        ("%F0%9F%93%88+chart.csv", "\U0001f4c8 chart.csv"),
        ("dir/sub/x.txt", "dir/sub/x.txt"),
        ("dir%2Fsub", "dir/sub"),
        ("50%25+off", "50% off"),
        ("100%", "100%"),
        ("e%CC%81", "e\u0301"),
    ],
)
def test_key_is_form_decoded_exactly_once(event_key: str, exact_key: str) -> None:
    """``original_key`` is the event key decoded once with form decoding, never twice."""
    parsed = S3EventNotificationRecord.model_validate(with_key(event_key))

    assert parsed.s3.object.original_key == exact_key
    assert parsed.s3.object.key_candidates == (exact_key,)


def test_nfc_and_nfd_twins_stay_distinct() -> None:
    """NFC and NFD spellings of one name keep distinct exact keys (S3 compares bytes)."""
    nfc = S3EventNotificationRecord.model_validate(with_key("caf%C3%A9"))
    nfd = S3EventNotificationRecord.model_validate(with_key("cafe%CC%81"))

    assert nfc.s3.object.original_key != nfd.s3.object.original_key
    assert nfc != nfd


def test_archive_name_is_the_sanitized_exact_key() -> None:
    """``key`` is ``sanitize_s3_key(original_key)``, here with a doubled slash removed."""
    parsed = S3EventNotificationRecord.model_validate(with_key("logs//2024/a+b.txt"))

    assert parsed.s3.object.original_key == "logs//2024/a b.txt"
    assert parsed.s3.object.key == "logs/2024/a b.txt"


def test_already_decoded_keys_are_taken_as_they_are() -> None:
    """With ``KeyEncoding.NONE`` the key is the exact key, ``+`` and ``%2B`` included."""
    raw = with_key("a+b%2B.txt")

    from_aws = S3EventNotificationRecord.from_aws(raw, key_encoding=KeyEncoding.NONE)
    from_context = S3EventNotificationRecord.model_validate(
        raw, context={KEY_ENCODING_CONTEXT: KeyEncoding.NONE}
    )

    assert from_aws.s3.object.original_key == "a+b%2B.txt"
    assert from_context.s3.object.original_key == "a+b%2B.txt"
    assert from_aws.s3.object.key_candidates == ("a+b%2B.txt",)


def test_unknown_encoding_offers_both_readings() -> None:
    """With ``KeyEncoding.UNKNOWN`` the literal key comes first, its form-decoded reading second."""
    parsed = S3EventNotificationRecord.from_aws(
        with_key("a+b%2Bc.txt"), key_encoding=KeyEncoding.UNKNOWN
    )

    assert parsed.s3.object.original_key == "a+b%2Bc.txt"
    assert parsed.s3.object.key_candidates == ("a+b%2Bc.txt", "a b+c.txt")


def test_unknown_encoding_with_one_reading_has_one_candidate() -> None:
    """A key that form decoding leaves unchanged has a single candidate."""
    parsed = S3EventNotificationRecord.from_aws(
        with_key("plain/key.txt"), key_encoding=KeyEncoding.UNKNOWN
    )

    assert parsed.s3.object.key_candidates == ("plain/key.txt",)


def test_confirm_key_switches_to_the_confirmed_reading() -> None:
    """``confirm_key`` returns a copy whose exact key, archive name and identity follow it."""
    parsed = S3EventNotificationRecord.from_aws(
        with_key("dir/a+b.txt"), key_encoding=KeyEncoding.UNKNOWN
    )

    confirmed = parsed.confirm_key("dir/a b.txt")

    assert confirmed.s3.object.original_key == "dir/a b.txt"
    assert confirmed.s3.object.key == "dir/a b.txt"
    assert confirmed.s3.object.key_candidates == ("dir/a b.txt",)
    assert confirmed.identity[1] == "dir/a b.txt"
    assert parsed.s3.object.original_key == "dir/a+b.txt"
    assert confirmed.s3.object.size == parsed.s3.object.size


def test_confirm_key_of_the_only_candidate_returns_the_record() -> None:
    """Confirming the single candidate of a classic record changes nothing."""
    parsed = S3EventNotificationRecord.model_validate(raw_record())

    assert parsed.confirm_key(parsed.s3.object.original_key) is parsed


def test_confirm_key_refuses_other_keys() -> None:
    """``confirm_key`` only accepts one of the record's candidates."""
    parsed = S3EventNotificationRecord.model_validate(raw_record())

    with pytest.raises(ValidationError) as caught:
        parsed.confirm_key("some/other/key")

    assert caught.value.error_code == "INVALID_EVENT"


def test_input_cannot_supply_derived_fields() -> None:
    """``original_key``, ``key`` and ``key_candidates`` always derive from ``s3.object.key``."""
    raw = with_object(original_key="../../etc/passwd", key_candidates=["x"])

    parsed = S3EventNotificationRecord.model_validate(raw)

    assert parsed.s3.object.original_key.startswith("incoming/")
    assert parsed.s3.object.key_candidates == (parsed.s3.object.original_key,)


# --------------------------------------------------------------------------- optional fields


def test_unversioned_delete_has_no_size_etag_or_version() -> None:
    """A delete from an unversioned bucket parses with size, ETag and version absent."""
    parsed = S3EventNotificationRecord.model_validate(raw_record("s3_object_removed_delete"))

    assert parsed.event_name == "ObjectRemoved:Delete"
    assert parsed.s3.object.size is None
    assert parsed.e_tag is None
    assert parsed.version_id is None
    assert parsed.s3.object.original_key == "incoming/old report.csv"


def test_delete_marker_has_a_version_but_no_size() -> None:
    """A delete-marker event carries the marker's version id and no size or ETag."""
    parsed = S3EventNotificationRecord.model_validate(
        raw_record("s3_object_removed_delete_marker_created")
    )

    assert parsed.event_name == "ObjectRemoved:DeleteMarkerCreated"
    assert parsed.version_id == "Ri0E39fWR2R4NeZRGRDm.8K6fpqOa7gF"
    assert parsed.s3.object.size is None
    assert parsed.e_tag is None


def test_minimal_record_parses() -> None:
    """Only ``eventName``, ``eventTime``, ``s3.bucket.name`` and ``s3.object.key`` are required."""
    raw = {
        "eventName": "ObjectCreated:Put",
        "eventTime": "2024-01-01T00:00:00Z",
        "s3": {"bucket": {"name": "bucket-name"}, "object": {"key": "k"}},
    }

    parsed = S3EventNotificationRecord.model_validate(raw)

    assert parsed.identity == ("bucket-name", "k", None, None)
    assert parsed.user_identity is None
    assert parsed.s3.bucket.arn is None


@pytest.mark.parametrize(
    ("changes", "field", "expected"),
    [
        ({"eTag": '"abc123"'}, "e_tag", "abc123"),
        ({"eTag": ""}, "e_tag", None),
        ({"versionId": ""}, "version_id", None),
        ({"versionId": "null"}, "version_id", "null"),
        ({"sequencer": ""}, "sequencer", None),
    ],
)
def test_blank_and_quoted_values_are_normalised(
    changes: dict[str, Any], field: str, expected: str | None
) -> None:
    """ETags lose surrounding quotes; empty version ids, ETags and sequencers become ``None``."""
    raw = with_object(**changes)
    raw["s3"]["object"].update(changes)  # with_object drops None, keep "" as given

    parsed = S3EventNotificationRecord.model_validate(raw)

    assert getattr(parsed.s3.object, field) == expected


def test_null_version_id_is_none() -> None:
    """A JSON ``null`` ``versionId`` (unversioned bucket) is ``None``."""
    raw = with_object()
    raw["s3"]["object"]["versionId"] = None

    assert S3EventNotificationRecord.model_validate(raw).version_id is None


def test_event_name_prefix_is_normalised() -> None:
    """``s3:ObjectCreated:Put`` (S3-compatible stores) becomes ``ObjectCreated:Put``."""
    raw = raw_record()
    raw["eventName"] = "s3:ObjectCreated:Put"

    assert S3EventNotificationRecord.model_validate(raw).event_name == "ObjectCreated:Put"


# --------------------------------------------------------------------------- validation


@pytest.mark.parametrize("size", [0, 1, MAX_OBJECT_SIZE])
def test_sizes_within_s3_limits_are_accepted(size: int) -> None:
    """Sizes from 0 to 5 TiB are valid."""
    parsed = S3EventNotificationRecord.model_validate(with_object(size=size))

    assert parsed.s3.object.size == size


@pytest.mark.parametrize("size", [-1, MAX_OBJECT_SIZE + 1, True, "5", 1.5, 5.0, [5]])
def test_bad_sizes_are_refused(size: object) -> None:
    """Negative, over 5 TiB, boolean, string or fractional sizes fail with INVALID_EVENT."""
    raw = with_object(size=size)

    with pytest.raises(pydantic.ValidationError):
        S3EventNotificationRecord.model_validate(raw)
    with pytest.raises(ValidationError) as caught:
        S3EventNotificationRecord.from_aws(raw)

    assert caught.value.error_code == "INVALID_EVENT"
    assert caught.value.context["errors"][0]["loc"] == "s3.object.size"


@pytest.mark.parametrize(
    ("event_key", "code"),
    [
        ("..%2F..%2Fetc%2Fpasswd", "UNSAFE_S3_KEY_PATH"),
        ("a/%2E%2E/b", "UNSAFE_S3_KEY_PATH"),
        ("a%252F..%252Fb", "UNSAFE_S3_KEY_PATH"),
        ("CON", "UNSAFE_S3_KEY_PATH"),
        ("", "INVALID_S3_KEY_FORMAT"),
        ("%2F%2F", "UNSAFE_S3_KEY_PATH"),
        ("%FF", "INVALID_S3_KEY_CHARACTER"),
        ("a%00b", "INVALID_S3_KEY_CHARACTER"),
        ("a%E2%80%8Bb", "INVALID_S3_KEY_CHARACTER"),
        ("\ud800", "INVALID_S3_KEY_CHARACTER"),
        ("a" * 1025, "INVALID_S3_KEY_LENGTH"),
        (5, "INVALID_S3_KEY_TYPE"),
        (None, "INVALID_S3_KEY_TYPE"),
    ],
)
def test_refused_keys_carry_the_seed_code(event_key: object, code: str) -> None:
    """A key refused by decoding or sanitization fails with the seed's error code."""
    raw = with_key("placeholder")
    raw["s3"]["object"]["key"] = event_key

    with pytest.raises(pydantic.ValidationError) as pydantic_error:
        S3EventNotificationRecord.model_validate(raw)
    with pytest.raises(ValidationError) as our_error:
        S3EventNotificationRecord.from_aws(raw)

    assert code in str(pydantic_error.value)
    assert pydantic_error.value.errors()[0]["type"] == KEY_ERROR_TYPE
    assert our_error.value.error_code == code
    assert code in our_error.value.message
    if isinstance(event_key, str):
        assert our_error.value.context["key_hint"] == repr(event_key[:64])


def test_missing_key_is_refused() -> None:
    """A record without ``s3.object.key`` fails with INVALID_S3_KEY_TYPE."""
    with pytest.raises(ValidationError) as caught:
        S3EventNotificationRecord.from_aws(with_object(key=None))

    assert caught.value.error_code == "INVALID_S3_KEY_TYPE"


@pytest.mark.parametrize(
    "name", ["a", "-bucket", "bucket-", "bucket/name", "bucket name", "b" * 256, ""]
)
def test_invalid_bucket_names_are_refused(name: str) -> None:
    """Bucket names outside S3's naming rules fail with INVALID_EVENT."""
    raw = raw_record()
    raw["s3"]["bucket"]["name"] = name

    with pytest.raises(ValidationError) as caught:
        S3EventNotificationRecord.from_aws(raw)

    assert caught.value.error_code == "INVALID_EVENT"
    assert caught.value.context["errors"][0]["loc"] == "s3.bucket.name"


@pytest.mark.parametrize("name", ["abc", "my.bucket-1", "DOC-EXAMPLE-BUCKET1", "legacy_bucket"])
def test_valid_and_legacy_bucket_names_are_accepted(name: str) -> None:
    """Current names and legacy us-east-1 names (uppercase, underscores) are accepted."""
    raw = raw_record()
    raw["s3"]["bucket"]["name"] = name

    assert S3EventNotificationRecord.model_validate(raw).bucket_name == name


@pytest.mark.parametrize("missing", ["eventName", "eventTime", "s3"])
def test_missing_required_fields_fail(missing: str) -> None:
    """A record without ``eventName``, ``eventTime`` or ``s3`` fails with INVALID_EVENT."""
    raw = raw_record()
    del raw[missing]

    with pytest.raises(ValidationError) as caught:
        S3EventNotificationRecord.from_aws(raw)

    assert caught.value.error_code == "INVALID_EVENT"


def test_error_context_never_holds_the_input() -> None:
    """Converted errors list locations and messages, never the offending input."""
    raw = with_object(size=-123456789)

    with pytest.raises(pydantic.ValidationError) as caught:
        S3EventNotificationRecord.model_validate(raw)
    error = validation_error_from_pydantic(caught.value, context={"message_id": "m-1"})

    assert error.context["message_id"] == "m-1"
    assert all(set(item) == {"loc", "type", "msg"} for item in error.context["errors"])
    assert "-123456789" not in str(error.to_dict())


# --------------------------------------------------------------------------- identity


def test_equality_and_hash_follow_identity() -> None:
    """Records with the same bucket, exact key, version and sequencer are equal and hash alike."""
    first = S3EventNotificationRecord.model_validate(raw_record())
    other = raw_record()
    other["eventName"] = "ObjectCreated:Copy"
    other["s3"]["object"]["size"] = 1
    other["s3"]["object"]["eTag"] = "ffff"
    second = S3EventNotificationRecord.model_validate(other)

    exact_key = first.s3.object.original_key
    assert first.identity == ("amzn-s3-demo-bucket", exact_key, None, "0055AED6DCD90281E5")
    assert first == second
    assert hash(first) == hash(second)
    assert len({first, second}) == 1


@pytest.mark.parametrize(
    ("path", "value"),
    [
        (("s3", "object", "versionId"), "v2"),
        (("s3", "object", "sequencer"), "0055AED6DCD90281FF"),
        (("s3", "object", "key"), "another-key"),
        (("s3", "bucket", "name"), "another-bucket"),
    ],
)
def test_records_differing_in_identity_are_not_equal(path: tuple[str, ...], value: str) -> None:
    """A different bucket, key, version or sequencer makes a different record."""
    base = S3EventNotificationRecord.model_validate(raw_record())
    changed = raw_record()
    target = changed
    for part in path[:-1]:
        target = target[part]
    target[path[-1]] = value

    assert S3EventNotificationRecord.model_validate(changed) != base


def test_records_do_not_equal_other_types() -> None:
    """Comparing a record with something else is simply unequal."""
    parsed = S3EventNotificationRecord.model_validate(raw_record())

    assert parsed != parsed.identity
    assert parsed != "record"


def test_records_are_immutable() -> None:
    """Records and their nested parts are frozen."""
    parsed = S3EventNotificationRecord.model_validate(raw_record())

    with pytest.raises(pydantic.ValidationError):
        parsed.event_name = "ObjectRemoved:Delete"  # type: ignore[misc]
    with pytest.raises(pydantic.ValidationError):
        parsed.s3.object.original_key = "../x"  # type: ignore[misc]
    with pytest.raises(pydantic.ValidationError):
        parsed.s3.bucket.name = "other"  # type: ignore[misc]


# --------------------------------------------------------------------------- static types


def test_typed_dicts_describe_optional_fields() -> None:
    """The TypedDicts mark AWS's optional object fields as not required."""
    assert S3ObjectData.__required_keys__ == frozenset({"key"})
    assert S3ObjectData.__optional_keys__ == frozenset({"size", "eTag", "versionId", "sequencer"})
    assert "glacierEventData" in S3EventRecord.__optional_keys__
    assert "s3" in S3EventRecord.__required_keys__


def test_typed_dict_records_validate_at_runtime() -> None:
    """A value typed as ``S3EventRecord`` is what ``model_validate`` takes."""
    record: S3EventRecord = {
        "eventVersion": "2.1",
        "eventSource": "aws:s3",
        "awsRegion": "us-east-1",
        "eventTime": "2024-01-01T00:00:00.000Z",
        "eventName": "ObjectCreated:Put",
        "userIdentity": {"principalId": "EXAMPLE"},
        "requestParameters": {"sourceIPAddress": "127.0.0.1"},
        "responseElements": {"x-amz-request-id": "EXAMPLE", "x-amz-id-2": "EXAMPLE"},
        "s3": {
            "s3SchemaVersion": "1.0",
            "configurationId": "config",
            "bucket": {
                "name": "bucket-name",
                "ownerIdentity": {"principalId": "EXAMPLE"},
                "arn": "arn:aws:s3:::bucket-name",
            },
            "object": {"key": "a+b", "sequencer": "0A"},
        },
    }

    assert S3EventNotificationRecord.model_validate(record).s3.object.original_key == "a b"
