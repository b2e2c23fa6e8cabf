"""The synthetic notifications and options of ``data-aggregator bundle`` (no AWS)."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import TYPE_CHECKING

import boto3
import pytest

from data_aggregator.cli import build_parser, main
from data_aggregator.cli._bundle import (
    MAX_REFUSED_LISTED,
    BackfillError,
    BackfillOptions,
    BackfillTotals,
    ListedObject,
    RefusedObject,
    build_config,
    iter_chunks,
    parse_s3_url,
    synthetic_message,
    watch_listing,
)
from data_aggregator.clients import S3Client
from data_aggregator.config import BundleFormat
from data_aggregator.exceptions import (
    DataAggregatorError,
    IdempotencyStoreError,
    LeaseLostError,
    S3AccessDeniedError,
    ValidationError,
    ValidationErrorCode,
)
from data_aggregator.idempotency import (
    S3ManifestBundleLocator,
    make_content_key,
    record_idempotency_key,
)
from data_aggregator.processor import BatchResult, Outcome, Reason, RecordResult
from data_aggregator.schemas import backfill_sequencer, parse_event
from data_aggregator.testing import s3_notification, s3_record, sqs_message

if TYPE_CHECKING:
    from pathlib import Path

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


@pytest.mark.parametrize("version_id", [None, "v1"])
def test_listed_key_matches_a_live_event(version_id: str | None) -> None:
    """A listed object's idempotency key is the one a live event for it has: its content
    key (bucket, key, ETag, size), whatever the sequencers and version ids say."""
    obj = ListedObject("k.txt", 1, '"e"', MODIFIED, version_id=version_id)
    (message,) = parse_event({"Records": [synthetic_message("src", obj, "m")]})
    (record,) = message.records
    live = s3_record("src", "k.txt", size=1, etag="e", version_id="v1", sequencer="0A")
    (event,) = parse_event({"Records": [sqs_message(s3_notification([live]))]})
    assert record_idempotency_key(record) == record_idempotency_key(event.records[0])
    assert record_idempotency_key(record) == make_content_key("src", "k.txt", "e", 1)


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


def test_the_listing_watch_speaks_once_past_either_threshold() -> None:
    """The Step Functions advice comes once, at the first object past the byte or the
    object threshold; the listing passes through unchanged."""
    objs = [ListedObject(str(i), 40, "e", None) for i in range(10)]
    said: list[str] = []
    assert list(watch_listing(objs, said.append, objects=100, size=100)) == objs
    assert len(said) == 1
    assert "3 objects, 0.0 GiB" in said[0]
    said.clear()
    assert list(watch_listing(objs, said.append, objects=4, size=10**9)) == objs
    assert len(said) == 1
    assert "5 objects" in said[0]
    said.clear()
    assert list(watch_listing(objs, said.append, objects=10, size=400)) == objs
    assert said == []


def _failed(message_id: str, reason: Reason, error: DataAggregatorError) -> RecordResult:
    return RecordResult(message_id=message_id, outcome=Outcome.FAILED, reason=reason, error=error)


def test_only_validation_refusals_count_as_refused_for_good() -> None:
    """An unsafe key is refused by key; denied access, a lost lease, a store error are retryable."""
    unsafe = ValidationError("climbs", ValidationErrorCode.UNSAFE_S3_KEY_PATH)
    results = [
        _failed("m-0", Reason.INVALID_MESSAGE, unsafe),
        _failed("m-1", Reason.FETCH_FAILED, S3AccessDeniedError("denied")),
        _failed("m-2", Reason.COMPLETE_FAILED, LeaseLostError("taken over")),
        _failed("m-3", Reason.STORE_ERROR, IdempotencyStoreError("throttled")),
        RecordResult(message_id="m-4", outcome=Outcome.BUNDLED, bundle_key="b"),
    ]
    totals = BackfillTotals()
    totals.add(
        BatchResult(records=tuple(results), failed_message_ids=()),
        {"m-0": "../../etc/passwd", "m-1": "a", "m-2": "b", "m-3": "c", "m-4": "d"},
    )
    assert totals.refused == [RefusedObject("../../etc/passwd", "UNSAFE_S3_KEY_PATH")]
    assert totals.problems == {
        "failed fetch_failed": 1,
        "failed complete_failed": 1,
        "failed store_error": 1,
    }
    assert (totals.bundled, totals.not_bundled) == (1, 4)


def test_refused_objects_beyond_the_cap_are_counted_not_listed() -> None:
    """A flood of refused keys keeps a bounded list and counts the rest."""
    unsafe = ValidationError("climbs", ValidationErrorCode.UNSAFE_S3_KEY_PATH)
    count = MAX_REFUSED_LISTED + 5
    results = tuple(_failed(f"m-{i}", Reason.INVALID_MESSAGE, unsafe) for i in range(count))
    totals = BackfillTotals()
    totals.add(BatchResult(records=results, failed_message_ids=()), {})
    assert len(totals.refused) == MAX_REFUSED_LISTED
    assert totals.refused_count == count
    assert totals.not_bundled == count


@pytest.mark.parametrize("command", ["bundle", "inspect"])
@pytest.mark.parametrize(("given", "normal"), [("manifests", "manifests/"), ("a/b/", "a/b/")])
def test_sidecar_prefix_option_is_normalised_as_the_setting(
    command: str, given: str, normal: str
) -> None:
    """``--sidecar-prefix`` of ``bundle`` and ``inspect`` takes what SIDECAR_PREFIX takes,
    with its trailing ``/``; unset, sidecars are next to their bundles."""
    rest = ["--to", "s3://dest", "--table", "t"] if command == "bundle" else []
    args = build_parser().parse_args([command, "s3://b/k", *rest, "--sidecar-prefix", given])
    assert args.sidecar_prefix == normal
    assert build_parser().parse_args([command, "s3://b/k", *rest]).sidecar_prefix == ""


@pytest.mark.parametrize("bad", ["/manifests", "a//b", "a/../b"])
def test_a_sidecar_prefix_the_setting_refuses_is_a_usage_error(
    bad: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """A prefix SIDECAR_PREFIX would refuse exits 2 naming the option, before any request."""
    with pytest.raises(SystemExit) as exited:
        main(["bundle", "s3://b/k", "--to", "s3://d", "--table", "t", "--sidecar-prefix", bad])
    assert exited.value.code == 2
    assert "--sidecar-prefix must be an S3 key prefix" in capsys.readouterr().err


def test_the_backfill_config_and_locator_get_the_sidecar_prefix() -> None:
    """The processor's config (where sidecars are written) and the crash-recovery locator
    built from it (where undescribed bundles' sidecars are looked for) agree."""
    options = BackfillOptions(
        source_bucket="src",
        source_prefix="in/",
        dest_bucket="dest",
        dest_prefix="out",
        table="idempotency",
        codec="gzip",
        max_bundle_mb=64,
        batch_size=10,
        chunk_seconds=600,
        limit=None,
        bundle_format="concat",
        sidecar_prefix="manifests/",
    )
    config = build_config(options)
    assert (config.bundle_format, config.sidecar_prefix) == (BundleFormat.CONCAT, "manifests/")
    client = S3Client(
        boto3.session.Session(
            aws_access_key_id="testing", aws_secret_access_key="testing", region_name="us-east-1"
        ).client("s3")
    )
    locator = S3ManifestBundleLocator.from_config(config, client=client)
    assert (locator.bucket, locator.bundle_format, locator.sidecar_prefix) == (
        "dest",
        BundleFormat.CONCAT,
        "manifests/",
    )
    assert locator.client is client


def test_inspect_sidecar_prefix_is_for_s3_bundles(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A local bundle's sidecar is next to it or named by ``--sidecar``: ``--sidecar-prefix``
    on a local path is one error line."""
    bundle = tmp_path / "b.log.gz"
    bundle.write_bytes(b"")
    assert main(["inspect", str(bundle), "--sidecar-prefix", "manifests"]) == 1
    assert "--sidecar-prefix applies to s3:// bundles only" in capsys.readouterr().err
