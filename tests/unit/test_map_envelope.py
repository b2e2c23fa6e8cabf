"""Step Functions Distributed Map item batches: parsing, identity, and what ``handle()`` gives
back (a summary, or a typed error naming the failed items)."""

from __future__ import annotations

import pickle
from datetime import datetime, timezone
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from data_aggregator.cli._bundle import ListedObject, synthetic_message
from data_aggregator.exceptions import (
    MAX_MAP_FAILURES_LISTED,
    EventParseError,
    LeaseLostError,
    MapBatchFailedError,
    MapBatchRefusedError,
    MapItemFailure,
    S3ThrottlingError,
    ValidationError,
)
from data_aggregator.idempotency import make_idempotency_key
from data_aggregator.processor import BatchResult, Outcome, Reason, RecordResult
from data_aggregator.schemas import Envelope, S3EventNotificationRecord, parse_event
from data_aggregator.testing import encode_event_key
from tests.events import load_event
from tests.map_support import map_batch
from tests.strategies import event_keys


def _records(event: dict[str, Any]) -> list[S3EventNotificationRecord]:
    messages = parse_event(event)
    assert [m.error for m in messages] == [None] * len(messages)
    return [record for m in messages for record in m.records]


def _key(record: S3EventNotificationRecord) -> str:
    obj = record.s3.object
    return make_idempotency_key(obj.original_key, record.version_id, record.sequencer)


# --------------------------------------------------------------------------- the fixtures


def test_the_list_objects_v2_fixture_maps_every_field() -> None:
    """The documented ListObjectsV2 item: bucket from BatchInput, quoted ``Etag`` stripped,
    epoch ``LastModified`` in the sequencer, the key exactly as listed (no decoding)."""
    first, second, third = _records(load_event("sfn_map_list_objects_v2_batch"))

    assert first.bucket_name == "amzn-s3-demo-bucket"
    assert first.s3.object.original_key == "processData/images/n02085620_1073.jpg"
    assert first.s3.object.size == 34910
    assert first.e_tag == "05704fbdccb224cb01c59005bebbad28"
    assert first.version_id is None
    assert first.sequencer == "backfill:05704fbdccb224cb01c59005bebbad28:2022-11-17T15:44:41.000Z"
    assert first.event_name == "ObjectCreated:Put"
    assert first.event_time == datetime(2022, 11, 17, 15, 44, 41, tzinfo=timezone.utc)
    assert second.s3.object.key_candidates == ("processData/red flower+%2B.jpg",)
    assert third.s3.object.original_key == "processData/\u30c6\u30b9\u30c8/chart.csv"


def test_the_inventory_fixture_maps_every_field() -> None:
    """Inventory rows: string sizes, versions (empty is none), unquoted ETags, both readings
    of an encoded key, and a delete marker as a delete event."""
    versioned, encoded, marker = _records(load_event("sfn_map_s3_inventory_batch"))

    assert versioned.bucket_name == "amzn-s3-demo-source-bucket"
    assert versioned.s3.object.size == 3399671
    assert versioned.version_id == "3HL4kqtJlcpXroDTDmJ+rmSpXd3dIbrHY+MTRCxf3vjVBH40Nrjfkd"
    assert versioned.sequencer is None
    assert encoded.version_id is None
    assert encoded.s3.object.key_candidates == (
        "imageDataset/red+flower%2B1.jpg",
        "imageDataset/red flower+1.jpg",
    )
    assert encoded.sequencer == "backfill:0d3bd8fc9bfc5f3a26c3f5c1a7e1e1b2:2022-11-15T20:02:16.000Z"
    assert marker.event_name == "ObjectRemoved:DeleteMarkerCreated"
    assert marker.s3.object.size is None


def test_map_message_ids_are_item_positions() -> None:
    """Each item is its own message, ``item-<index>``, with the Map envelope."""
    messages = parse_event(load_event("sfn_map_s3_inventory_minimal_batch"))

    assert [m.message_id for m in messages] == ["item-0", "item-1"]
    assert {m.envelope for m in messages} == {Envelope.STEP_FUNCTIONS_MAP}
    assert not any(m.envelope.is_sqs for m in messages)


# --------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    ("item", "needle"),
    [
        ("not an object", "not a JSON object"),
        ({"Key": "k", "Size": 1, "Etag": "e", "LastModified": "yesterday"}, "ISO 8601"),
        ({"Key": "k", "Size": 1, "Etag": "e", "LastModified": [1]}, "neither a number"),
        ({"Key": "k", "Size": "many", "Etag": "e", "LastModified": 1}, "size"),
        ({"Key": "", "Size": 1, "Etag": "e"}, "empty"),
        ({"Key": "k", "Size": 1}, "ETag and Size"),
        ({"Key": "k", "Etag": '"e"'}, "ETag and Size"),
        ({"Key": "k", "Etag": '""', "Size": 1}, "ETag and Size"),
    ],
)
def test_a_bad_item_fails_alone(item: object, needle: str) -> None:
    """A malformed item becomes a failed message naming its index; the others parse."""
    good = {"Key": "ok.txt", "Size": 1, "Etag": '"e"', "LastModified": 1}
    messages = parse_event(map_batch([good, item, good], "bucket"))

    assert [m.ok for m in messages] == [True, False, True]
    error = messages[1].error
    assert isinstance(error, ValidationError)
    assert error.context["item_index"] == 1
    assert error.correlation_id == "item-1"
    assert needle in error.message


def test_listing_items_need_the_bucket_in_batch_input() -> None:
    """Without ``BatchInput.Bucket`` a ListObjectsV2 item fails, saying where the bucket goes."""
    (message,) = parse_event(map_batch([{"Key": "k", "Size": 1}]))

    assert message.error is not None
    assert "BatchInput.Bucket" in message.error.message


@pytest.mark.parametrize("batch_input", [["b"], {"Bucket": 7}])
def test_an_unreadable_batch_input_fails_the_event(batch_input: object) -> None:
    """A ``BatchInput`` that is not an object, or whose ``Bucket`` is not a string, makes the
    whole event unreadable."""
    with pytest.raises(EventParseError):
        parse_event({"Items": [], "BatchInput": batch_input})


def test_an_empty_batch_parses_to_nothing() -> None:
    """``{"Items": []}`` is a Map batch with no item."""
    assert parse_event({"Items": []}) == []


# --------------------------------------------------------------------------- properties


@given(key=event_keys(), size=st.integers(0, 2**40), stamp=st.integers(0, 4_102_444_800))
def test_a_listed_key_is_taken_exactly_and_matches_the_cli_identity(
    key: str, size: int, stamp: int
) -> None:
    """Any key from the ListObjectsV2 reader is the exact key (never decoded), and its
    idempotency key is the one ``data-aggregator bundle`` gives the same listed object."""
    item = {"Etag": '"abc"', "Key": key, "LastModified": stamp, "Size": size}
    messages = parse_event(map_batch([item], "bucket"))
    if not messages[0].ok:  # keys the sanitizer refuses fail on every path alike
        return
    (record,) = messages[0].records

    assert record.s3.object.original_key == key
    assert record.s3.object.key_candidates == (key,)
    modified = datetime.fromtimestamp(stamp, timezone.utc)
    listed = ListedObject(key, size, "abc", modified)
    (cli,) = parse_event({"Records": [synthetic_message("bucket", listed, "m")]})
    assert _key(cli.records[0]) == _key(record)


@given(key=event_keys())
def test_an_inventory_key_offers_its_decoded_reading(key: str) -> None:
    """An inventory key encoded as inventory CSV files hold it has the exact key among its
    readings, and the literal reading first."""
    encoded = encode_event_key(key)
    item = {"Bucket": "bucket", "Key": encoded, "Size": "1", "LastModifiedDate": ""}
    (message,) = parse_event(map_batch([item]))
    if not message.ok:
        return
    candidates = message.records[0].s3.object.key_candidates

    assert candidates[0] == encoded
    assert key in candidates


# --------------------------------------------------------------------------- the outcome


def _result(*outcomes: tuple[Outcome, Reason | None, Any]) -> BatchResult:
    (record,) = _records(map_batch([{"Key": "a b.txt", "Size": 1, "Etag": '"e"'}], "bucket"))
    results = tuple(
        RecordResult(f"item-{i}", outcome, reason, record=record, error=error)
        for i, (outcome, reason, error) in enumerate(outcomes)
    )
    failed = tuple(r.message_id for r in results if r.failed)
    return BatchResult(results, failed, request_id="req", from_sqs=False, from_map=True)


def test_the_summary_counts_every_outcome() -> None:
    """The summary is an empty failure list plus the counts of each outcome."""
    result = _result(
        (Outcome.BUNDLED, None, None),
        (Outcome.DUPLICATE, Reason.ALREADY_COMPLETED, None),
        (Outcome.SKIPPED, Reason.OBJECT_NOT_FOUND, None),
    )
    assert result.map_summary == {
        "batchItemFailures": [],
        "items": 3,
        "bundled": 1,
        "duplicates": 1,
        "skipped": 1,
        "bundles": [],
    }


def test_one_retryable_failure_makes_the_batch_retryable() -> None:
    """A refused item next to a throttled one: the retryable name, both items listed."""
    refused = ValidationError("no", "UNSAFE_S3_KEY_PATH")
    throttled = S3ThrottlingError("slow down")
    error = _result(
        (Outcome.FAILED, Reason.REFUSED, refused),
        (Outcome.FAILED, Reason.FETCH_FAILED, throttled),
        (Outcome.BUNDLED, None, None),
    ).map_batch_error()

    assert type(error) is MapBatchFailedError
    assert error.correlation_id == "req"
    assert [f.retryable for f in error.failures] == [False, True]
    assert str(error) == (
        "2 of 3 items of the Map batch not bundled: "
        "item-0 s3://bucket/a b.txt: refused (UNSAFE_S3_KEY_PATH); "
        "item-1 s3://bucket/a b.txt: fetch_failed (S3_THROTTLED)"
    )


def test_only_permanent_failures_make_the_refused_error() -> None:
    """When no failure can go away, the error is `MapBatchRefusedError` (not retryable)."""
    refused = ValidationError("no", "UNSAFE_S3_KEY_PATH")
    error = _result((Outcome.FAILED, Reason.REFUSED, refused)).map_batch_error()

    assert type(error) is MapBatchRefusedError
    assert not error.retryable
    assert error.to_dict()["error_type"] == "MapBatchRefusedError"


def test_a_failure_without_an_error_counts_as_retryable() -> None:
    """A timeout carries no error: running the batch again may bundle it."""
    error = _result((Outcome.FAILED, Reason.TIMEOUT, None)).map_batch_error()

    assert type(error) is MapBatchFailedError
    assert error.failures[0].reason == "timeout"


def test_a_record_in_a_stored_bundle_is_retryable_whatever_its_error() -> None:
    """A record in an uploaded bundle whose completion the store did not confirm (here:
    the lease was lost, an error that is not retryable by itself) is found completed or
    recovered by the retry: the batch must be retried, not refused."""
    lost = LeaseLostError("lease lost")
    assert not lost.retryable
    error = _result((Outcome.FAILED, Reason.COMPLETE_FAILED, lost)).map_batch_error()

    assert type(error) is MapBatchFailedError
    assert error.failures[0].retryable


def test_the_message_is_bounded_and_the_error_pickles() -> None:
    """Past `MAX_MAP_FAILURES_LISTED` failures the message counts the rest; the error
    survives pickling with its failures."""
    failures = [MapItemFailure(f"item-{i}", "timeout") for i in range(25)]
    error = MapBatchFailedError(failures, 30)

    assert str(error).count("item-") == MAX_MAP_FAILURES_LISTED
    assert str(error).endswith(f"and {25 - MAX_MAP_FAILURES_LISTED} more")
    assert error.to_dict()["context"]["failed_items"] == 25
    copy = pickle.loads(pickle.dumps(error))  # noqa: S301 - our own bytes
    assert copy.failures == error.failures
    assert type(copy) is MapBatchFailedError
