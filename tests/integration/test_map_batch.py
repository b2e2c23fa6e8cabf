"""Step Functions Distributed Map item batches through the real processor, over HTTP.

Each batch is built from the server's own listing exactly as the Map's item readers pass
it (``tests/map_support.py``); bundles are read back, verified and compared with the
source objects; the idempotency table is DynamoDB's (moto's or DynamoDB Local).
"""

from __future__ import annotations

from typing import TYPE_CHECKING
from urllib.parse import unquote

import pytest

from data_aggregator.cli import _bundle as _backfill
from data_aggregator.clients import S3Client
from data_aggregator.exceptions import (
    ErrorCode,
    MapBatchFailedError,
    MapBatchRefusedError,
)
from data_aggregator.processor import Outcome, Reason
from tests.integration._s3_hooks import error_response, inject
from tests.map_support import inventory_items, list_objects_v2_items, map_batch
from tests.processor_support import SourceObject, assert_bundled_once

if TYPE_CHECKING:
    from collections.abc import Callable

    from botocore.awsrequest import AWSPreparedRequest, AWSResponse

    from tests.integration._processor_env import ProcessorEnv

pytestmark = pytest.mark.integration

#: Awkward keys: a space, '+', a literal '%2B', non-ASCII, a '+' twin of the space key.
KEYS = ["in/plain.txt", "in/a b.txt", "in/a+b.txt", "in/100%2B.txt", "in/caf\u00e9/\u65e5.txt"]


def _put_all(env: ProcessorEnv) -> list[SourceObject]:
    # Distinct sizes, so that the '+' twins cannot be mistaken for each other.
    objects = [env.put(key, f"{key}\n".encode() * (i + 1)) for i, key in enumerate(KEYS)]
    env.put("other/outside.txt")
    return objects


def _bundle_count(env: ProcessorEnv) -> int:
    return len(env.s3.list_objects_v2(Bucket=env.dest).get("Contents", []))


def test_a_list_objects_v2_batch_bundles_and_a_second_bundles_nothing(
    make_env: Callable[..., ProcessorEnv],
) -> None:
    """A ListObjectsV2 batch (bucket in BatchInput) bundles every object under its exact key;
    the same batch again is all duplicates and writes no bundle."""
    env = make_env()
    objects = _put_all(env)
    event = map_batch(list_objects_v2_items(env.s3, env.source, "in/"), env.source)

    summary = env.handle(event)

    assert summary == {
        "batchItemFailures": [],
        "items": len(KEYS),
        "bundled": len(KEYS),
        "duplicates": 0,
        "skipped": 0,
        "bundles": [bundle.key for bundle in env.last.bundles],
    }
    assert env.last.from_map
    assert_bundled_once(env.bundles(), objects)

    again = env.handle(event)

    assert again["bundled"] == 0  # type: ignore[typeddict-item]
    assert again["duplicates"] == len(KEYS)  # type: ignore[typeddict-item]
    assert env.last.count(Outcome.DUPLICATE, Reason.ALREADY_COMPLETED) == len(KEYS)
    assert _bundle_count(env) == 1


def test_an_inventory_batch_resolves_encoded_keys_and_skips_delete_markers(
    make_env: Callable[..., ProcessorEnv],
) -> None:
    """An all-versions S3 Inventory batch (URL-encoded keys, string fields) bundles every
    version by its exact key and id, skips the delete marker, and is a no-op the second time."""
    env = make_env(versioned=True)
    objects = _put_all(env)
    newer = env.put("in/plain.txt", b"the second version")
    env.s3.delete_object(Bucket=env.source, Key="in/a b.txt")  # a delete marker
    event = map_batch(inventory_items(env.s3, env.source, "in/"))
    assert any(item["Key"] == "in/a+b.txt" for item in event["Items"])  # 'a b' encoded

    summary = env.handle(event)

    assert summary["items"] == len(KEYS) + 2  # type: ignore[typeddict-item]
    assert summary["bundled"] == len(KEYS) + 1  # type: ignore[typeddict-item]
    assert summary["skipped"] == 1  # type: ignore[typeddict-item]
    assert env.last.count(Outcome.SKIPPED, Reason.IGNORED_EVENT_TYPE) == 1
    assert_bundled_once(env.bundles(), [*objects, newer])

    again = env.handle(event)

    assert again["duplicates"] == len(KEYS) + 1  # type: ignore[typeddict-item]
    assert _bundle_count(env) == 1


def test_a_minimal_inventory_and_a_decoded_key_reader_also_work(
    make_env: Callable[..., ProcessorEnv],
) -> None:
    """Inventory rows with only Bucket, Key, Size and ETag bundle; keys that a reader
    would pass decoded resolve as well as encoded ones."""
    env = make_env()
    objects = _put_all(env)
    fields = ("Bucket", "Key", "Size", "ETag")
    decoded = map_batch(
        inventory_items(env.s3, env.source, "in/", fields=fields, encode_keys=False)
    )

    assert env.handle(decoded)["bundled"] == len(KEYS)  # type: ignore[typeddict-item]
    assert_bundled_once(env.bundles(), objects)

    encoded = map_batch(inventory_items(env.s3, env.source, "in/", fields=fields))
    assert env.handle(encoded)["duplicates"] == len(KEYS)  # type: ignore[typeddict-item]


def test_inventory_rows_without_an_etag_are_refused(
    make_env: Callable[..., ProcessorEnv],
) -> None:
    """Rows without the ETag have no content identity and no checked fetch: each is
    refused (the batch raises the name its Retry leaves out), nothing is bundled."""
    env = make_env()
    _put_all(env)
    fields = ("Bucket", "Key", "Size", "LastModifiedDate")
    batch = map_batch(inventory_items(env.s3, env.source, "in/", fields=fields))

    with pytest.raises(MapBatchRefusedError) as raised:
        env.handle(batch)
    assert len(raised.value.failures) == len(KEYS)
    assert {f.error_code for f in raised.value.failures} == {"INVALID_EVENT"}
    assert _bundle_count(env) == 0


def test_a_map_item_is_a_duplicate_of_the_cli_backfill(
    make_env: Callable[..., ProcessorEnv],
) -> None:
    """An object bundled by ``data-aggregator bundle`` is a duplicate in a Map batch: both
    paths derive one idempotency key (``backfill_sequencer``)."""
    env = make_env()
    _put_all(env)
    options = _backfill.BackfillOptions(
        source_bucket=env.source,
        source_prefix="in/",
        dest_bucket=env.dest,
        dest_prefix="cli/",
        table=env.table,
        codec="gzip",
        max_bundle_mb=64,
        batch_size=10,
        chunk_seconds=300,
        limit=None,
    )
    client = S3Client.from_config(_backfill.build_config(options), env.processor_s3)
    totals = _backfill.run_backfill(options, s3=client, store=env.store, progress=lambda _: None)
    assert totals.bundled == len(KEYS)

    event = map_batch(list_objects_v2_items(env.s3, env.source, "in/"), env.source)
    summary = env.handle(event)

    assert summary["duplicates"] == len(KEYS)  # type: ignore[typeddict-item]
    assert summary["bundled"] == 0  # type: ignore[typeddict-item]


def test_a_retryable_failure_raises_and_the_retry_bundles_only_the_rest(
    make_env: Callable[..., ProcessorEnv],
) -> None:
    """One object S3 throttles: the batch raises MapBatchFailedError naming it, after the
    others were bundled and completed; the Map's retry bundles it alone."""
    env = make_env(retries=False)
    objects = _put_all(env)
    throttled = {"on": True}

    def slow_down(request: AWSPreparedRequest) -> AWSResponse | None:
        if throttled["on"] and unquote(request.url.split("?")[0]).endswith("/in/a+b.txt"):
            return error_response(request, 503, "SlowDown")
        return None

    inject(env.processor_s3, "GetObject", slow_down)
    event = map_batch(list_objects_v2_items(env.s3, env.source, "in/"), env.source)

    with pytest.raises(MapBatchFailedError) as raised:
        env.handle(event)

    error = raised.value
    assert type(error) is MapBatchFailedError
    assert error.error_code == ErrorCode.MAP_BATCH_FAILED
    assert error.retryable
    assert [(f.key, f.reason, f.retryable) for f in error.failures] == [
        ("in/a+b.txt", "fetch_failed", True)
    ]
    assert f"item-2 s3://{env.source}/in/a+b.txt: fetch_failed (S3_THROTTLED)" in str(error)
    assert env.last.count(Outcome.BUNDLED) == len(KEYS) - 1

    throttled["on"] = False
    summary = env.handle(event)

    assert summary["bundled"] == 1  # type: ignore[typeddict-item]
    assert summary["duplicates"] == len(KEYS) - 1  # type: ignore[typeddict-item]
    assert_bundled_once(env.bundles(), objects)


def test_permanent_failures_raise_the_refused_error(
    make_env: Callable[..., ProcessorEnv],
) -> None:
    """Items that can never be bundled (an unsafe key, an item without a key) raise
    MapBatchRefusedError, not the retryable name; the good items are bundled first."""
    env = make_env()
    good = env.put("in/good.txt")
    env.put("in/CON")  # a Windows device name: refused by sanitize_s3_key
    items = list_objects_v2_items(env.s3, env.source, "in/")
    items.append({"Etag": '"x"', "LastModified": 1668699881, "Size": 1})
    event = map_batch(items, env.source)

    with pytest.raises(MapBatchRefusedError) as raised:
        env.handle(event)

    error = raised.value
    assert not error.retryable
    assert error.error_code == ErrorCode.MAP_BATCH_REFUSED
    codes = sorted(str(f.error_code) for f in error.failures)
    assert codes == ["INVALID_S3_KEY_TYPE", "UNSAFE_S3_KEY_PATH"]
    assert_bundled_once(env.bundles(), [good])


def test_a_listing_batch_without_its_bucket_is_refused(
    make_env: Callable[..., ProcessorEnv],
) -> None:
    """ListObjectsV2 items name no bucket: without BatchInput.Bucket every item is refused
    (INVALID_EVENT) and nothing is fetched."""
    env = make_env()
    _put_all(env)
    event = map_batch(list_objects_v2_items(env.s3, env.source, "in/"))

    with pytest.raises(MapBatchRefusedError) as raised:
        env.handle(event)

    assert len(raised.value.failures) == len(KEYS)
    assert "BatchInput.Bucket" in str(env.last.records[0].error)
    assert _bundle_count(env) == 0


def test_the_timeout_guard_fails_the_batch_for_a_retry(
    make_env: Callable[..., ProcessorEnv],
) -> None:
    """With less time left than the guard, nothing is claimed: the batch raises the
    retryable error (reason ``timeout``) and a retry with time bundles everything."""
    env = make_env()
    objects = _put_all(env)
    event = map_batch(list_objects_v2_items(env.s3, env.source, "in/"), env.source)

    with pytest.raises(MapBatchFailedError) as raised:
        env.handle(event, env.context(seconds=10.0))  # the guard is 30 s

    assert type(raised.value) is MapBatchFailedError
    assert {f.reason for f in raised.value.failures} == {"timeout"}
    assert env.handle(event)["bundled"] == len(KEYS)  # type: ignore[typeddict-item]
    assert_bundled_once(env.bundles(), objects)
