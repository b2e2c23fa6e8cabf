"""One identity per object (issue 15): an object bundled by one path (an SQS event, a
backfill, a listing without version ids) is a duplicate for every other, in either
order, in unversioned and versioned buckets.

The real `ReusableProcessor` and `run_backfill` share one DynamoDB table and one
destination bucket on the session's servers; every test reads the bundles back.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import pytest

from data_aggregator.cli._bundle import (
    BackfillOptions,
    BackfillTotals,
    ListedObject,
    run_backfill,
    synthetic_message,
)
from data_aggregator.clients import S3Client
from data_aggregator.idempotency import (
    CONTENT_KEY_MAX_BYTES,
    DynamoDBIdempotencyStore,
    make_content_key,
)
from data_aggregator.processor import Outcome, Reason, ReusableProcessor
from data_aggregator.testing import s3_record, sqs_event
from tests.integration._processor_env import Crash, CrashOnComplete
from tests.processor_support import eventbridge_body, s3_body, sqs_batch

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable

    from data_aggregator.config import AppConfig
    from data_aggregator.testing import FakeClock
    from tests.integration._processor_env import ProcessorEnv
    from tests.processor_support import SourceObject

pytestmark = pytest.mark.integration

#: Plain and awkward keys (a space, a '+', non-ASCII) under the backfilled prefix.
KEYS = ["in/a.json", "in/b c.json", "in/x+y.json", "in/caf\u00e9.json"]

#: ``(bucket, key, version id, SHA-256 of the bytes)`` of a bundle member.
Member = tuple[str, str, "str | None", str]


def _on_clock(clock: FakeClock) -> type[ReusableProcessor]:
    """The backfill's processor class, on the test's clock (the store's)."""

    class Backfiller(ReusableProcessor):
        def __init__(self, config: AppConfig, **kwargs: Any) -> None:
            super().__init__(config, clock=clock, **kwargs)

    return Backfiller


def backfill(
    env: ProcessorEnv,
    *,
    bucket: str | None = None,
    store: DynamoDBIdempotencyStore | None = None,
) -> BackfillTotals:
    """``data-aggregator bundle s3://<bucket>/in/`` into the env's table and destination."""
    options = BackfillOptions(
        source_bucket=bucket or env.source,
        source_prefix="in/",
        dest_bucket=env.dest,
        dest_prefix="backfill",
        table=env.table,
        codec="gzip",
        max_bundle_mb=100,
        batch_size=3,
        chunk_seconds=120,
        limit=None,
    )
    return run_backfill(
        options,
        s3=S3Client(env.s3),
        store=store or env.store,
        progress=lambda _: None,
        processor_class=_on_clock(env.clock),
    )


def members(env: ProcessorEnv) -> Counter[Member]:
    """Every member of every bundle in the destination (all verified), with its bytes'
    SHA-256, counted."""
    counts: Counter[Member] = Counter()
    for bundle in env.bundles():
        for m in bundle.manifest.members:
            digest = hashlib.sha256(bundle.members[m.name]).hexdigest()
            assert digest == m.sha256
            counts[(m.bucket, m.key, m.version_id, digest)] += 1
    return counts


def once(objects: Iterable[SourceObject]) -> Counter[Member]:
    """What `members` must be: each object once, with its bytes."""
    return Counter(
        (o.bucket, o.key, o.version_id, hashlib.sha256(o.data).hexdigest()) for o in objects
    )


def live(env: ProcessorEnv, objects: Iterable[SourceObject]) -> None:
    """Deliver the objects' S3 notifications (and EventBridge events, every other one)
    through SQS; every message must be acknowledged."""
    bodies = [eventbridge_body(o) if i % 2 else s3_body(o.record()) for i, o in enumerate(objects)]
    assert env.handle(sqs_batch(bodies)) == {"batchItemFailures": []}


def listed_without_versions(env: ProcessorEnv, objects: Iterable[SourceObject]) -> None:
    """Announce the objects as a ListObjectsV2 listing (or a Step Functions Map item over
    one) does: key, size and quoted ETag, no version id, no event sequencer."""
    messages = [
        synthetic_message(o.bucket, ListedObject(o.key, len(o.data), f'"{o.etag}"', None), f"l{i}")
        for i, o in enumerate(objects)
    ]
    assert env.handle(sqs_event(messages)) == {"batchItemFailures": []}


def all_duplicates(env: ProcessorEnv, count: int) -> None:
    """The latest call bundled nothing: its ``count`` records were already completed."""
    assert env.last.bundles == ()
    assert env.last.count(Outcome.DUPLICATE, Reason.ALREADY_COMPLETED) == count
    assert len(env.last.records) == count


# ----------------------------------------------------------------------------- both orders


@pytest.mark.parametrize("versioned", [False, True], ids=["unversioned", "versioned"])
def test_live_then_backfill_bundles_nothing_twice(
    make_env: Callable[..., ProcessorEnv], versioned: bool
) -> None:
    """Objects the Lambda bundled from their events are duplicates for a later backfill
    of their prefix: the backfill writes no bundle."""
    env = make_env(versioned=versioned)
    objects = [env.put(key) for key in KEYS]
    live(env, objects)
    assert env.last.count(Outcome.BUNDLED) == len(KEYS)
    totals = backfill(env)
    assert (totals.listed, totals.bundled, totals.duplicates) == (len(KEYS), 0, len(KEYS))
    assert totals.bundles == []
    assert totals.not_bundled == 0
    assert members(env) == once(objects)


@pytest.mark.parametrize("versioned", [False, True], ids=["unversioned", "versioned"])
def test_backfill_then_live_bundles_nothing_twice(
    make_env: Callable[..., ProcessorEnv], versioned: bool
) -> None:
    """Objects a backfill bundled are duplicates when their (late) events arrive, S3
    notifications and EventBridge events alike: acknowledged, nothing bundled."""
    env = make_env(versioned=versioned)
    objects = [env.put(key) for key in KEYS]
    totals = backfill(env)
    assert (totals.bundled, totals.duplicates) == (len(KEYS), 0)
    live(env, objects)
    all_duplicates(env, len(KEYS))
    assert members(env) == once(objects)


@pytest.mark.parametrize("live_first", [True, False], ids=["live-first", "listing-first"])
def test_a_listing_without_version_ids_matches_versioned_events(
    make_env: Callable[..., ProcessorEnv], live_first: bool
) -> None:
    """In a versioned bucket, events carry version ids and a ListObjectsV2 listing does
    not: the two still name one object, whichever comes first."""
    env = make_env(versioned=True)
    objects = [env.put(key) for key in KEYS]
    assert all(o.version_id is not None for o in objects)
    if live_first:
        live(env, objects)
        listed_without_versions(env, objects)
    else:
        listed_without_versions(env, objects)
        live(env, objects)
    all_duplicates(env, len(KEYS))
    # A member's version id is what its first announcer knew.
    expected = once(objects) if live_first else once(replace(o, version_id=None) for o in objects)
    assert members(env) == expected


# ----------------------------------------------------------------------------- what "same" means


def test_two_buckets_with_the_same_key_and_bytes_are_two_objects(
    make_env: Callable[..., ProcessorEnv],
) -> None:
    """The same key and bytes in two buckets are two objects, each bundled once, whichever
    path comes first for each."""
    env = make_env()
    twin_bucket = env.make_bucket("twin")
    first = env.put("in/same.json", b'{"same": true}')
    twin = env.put("in/same.json", b'{"same": true}', bucket=twin_bucket)
    assert first.etag == twin.etag
    live(env, [first])
    totals = backfill(env, bucket=twin_bucket)
    assert (totals.bundled, totals.duplicates) == (1, 0)
    live(env, [twin])
    all_duplicates(env, 1)
    assert backfill(env).duplicates == 1
    assert members(env) == once([first, twin])


@pytest.mark.parametrize("versioned", [False, True], ids=["unversioned", "versioned"])
def test_a_rewrite_with_other_bytes_is_a_new_object(
    make_env: Callable[..., ProcessorEnv], versioned: bool
) -> None:
    """A key rewritten with different bytes is a new object: the backfill bundles it,
    and its own late event is then a duplicate."""
    env = make_env(versioned=versioned)
    old = env.put("in/r.json", b"old bytes")
    live(env, [old])
    new = env.put("in/r.json", b"new bytes, longer")
    totals = backfill(env)
    assert (totals.bundled, totals.duplicates) == (1, 0)
    live(env, [new])
    all_duplicates(env, 1)
    assert members(env) == once([old, new])


def test_an_identical_rewrite_is_the_same_object(make_env: Callable[..., ProcessorEnv]) -> None:
    """A key written again with the same bytes (same ETag and size, a new sequencer) is
    the same object, as documented: its event and a backfill are duplicates."""
    env = make_env()
    first = env.put("in/same.json", b"same bytes")
    live(env, [first])
    again = env.put("in/same.json", b"same bytes")
    assert (again.etag, again.sequencer != first.sequencer) == (first.etag, True)
    live(env, [again])
    all_duplicates(env, 1)
    assert backfill(env).duplicates == 1
    assert members(env) == once([first])


def test_the_longest_key_fits_the_table(make_env: Callable[..., ProcessorEnv]) -> None:
    """A key of 1,024 bytes of four-byte characters (a seed key of about 4 KiB) gets a
    content key that fits DynamoDB's 2,048-byte partition key, and is still one object
    for the Lambda and the backfill."""
    key = "in/" + "/".join(["\U0001f600" * 50] * 5) + "/" + "\U0001f600" * 4
    assert len(key.encode()) == 1024
    env = make_env()
    obj = env.put(key)
    live(env, [obj])
    assert env.last.count(Outcome.BUNDLED) == 1
    content = make_content_key(env.source, key, obj.etag, len(obj.data))
    assert len(content) < CONTENT_KEY_MAX_BYTES
    assert "%22h%22" in content  # hashed: {"b": bucket, "h": digest}
    assert env.last.records[0].idempotency_key == content
    record = env.store.get(content)
    assert record is not None
    assert record.bundle_key is not None
    assert backfill(env).duplicates == 1
    assert members(env) == once([obj])


# ----------------------------------------------------------------------------- crash recovery


def test_a_crashed_backfill_is_recovered_by_the_live_events(
    make_env: Callable[..., ProcessorEnv],
) -> None:
    """A backfill killed after its upload, before ``complete``: once its leases end, the
    objects' live events find them in its announced bundle (RECOVERED), not bundled again."""
    env = make_env(lease_margin_seconds=10.0)
    objects = [env.put(key) for key in KEYS]
    dying = CrashOnComplete(
        env.table, client=env.dynamodb, clock=env.clock, bundle_locator=env.store.bundle_locator
    )
    with pytest.raises(Crash):
        backfill(env, store=dying)
    (crashed,) = env.bundles()
    chunk = sorted(objects, key=lambda o: o.key.encode())[:3]  # the listing's first three
    env.clock.advance(200)  # the chunk's deadline and the margin have passed
    live(env, chunk)
    assert {(r.outcome, r.reason) for r in env.last.records} == {
        (Outcome.DUPLICATE, Reason.RECOVERED)
    }
    assert {r.bundle_key for r in env.last.records} == {crashed.key}
    assert members(env) == once(chunk)


def test_a_record_without_etag_is_recovered_under_the_seed_key(
    make_env: Callable[..., ProcessorEnv],
) -> None:
    """An event without an ETag is claimed under the seed's key; killed after the upload,
    its redelivery still finds it in the bundle, whose manifest records the ETag S3
    answered (the locator answers both keys of each member)."""
    env = make_env(store_class=CrashOnComplete, lease_margin_seconds=10.0)
    obj = env.put("in/no-etag.json")
    record = s3_record(obj.bucket, obj.key, size=len(obj.data), etag=None, sequencer=obj.sequencer)
    event = sqs_batch([s3_body(record)])
    with pytest.raises(Crash):
        env.processor.handle(event, env.context(60))
    (crashed,) = env.bundles()
    assert crashed.manifest.members[0].etag == obj.etag
    assert isinstance(env.store, CrashOnComplete)
    env.store.crash = False  # the next invocation lives
    env.clock.advance(71)
    assert env.handle(event) == {"batchItemFailures": []}
    assert [(r.outcome, r.reason) for r in env.last.records] == [
        (Outcome.DUPLICATE, Reason.RECOVERED)
    ]
    assert members(env) == once([obj])
