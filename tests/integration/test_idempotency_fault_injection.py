"""The real ReusableProcessor under injected faults, over the session's S3 server (moto or
SeaweedFS) and each store kind: in-memory, and DynamoDB over HTTP in its batch modes.

Faults are injected by wrappers around the real `S3Client` and store
(``tests/faults.py``); messages are delivered like SQS does, at least once
(``tests/redelivery.py``). Every acknowledgement is checked against the bundles read back
from S3 and against the store; at the end every object is in exactly one bundle, and
crash recovery has read real bundles' manifests (`S3ManifestBundleLocator`).

DynamoDB runs on DynamoDB Local with the real servers, and on moto on the serialised moto
server of ``_dynamodb_support`` (moto's own applies conditional writes without a lock), so
that concurrent invocations see atomic conditions either way.
``tests/unit/test_processor_fault_injection.py`` runs every scenario in memory.
"""

from __future__ import annotations

import functools
import random
from typing import TYPE_CHECKING, Any

import pytest

from data_aggregator.clients import S3Client
from data_aggregator.config import MIB
from data_aggregator.idempotency import (
    InMemoryIdempotencyStore,
    S3ManifestBundleLocator,
)
from data_aggregator.processor import Outcome, Reason
from data_aggregator.testing import FakeClock
from tests.clock_support import FUTURE_START
from tests.faults import Fault, Rule
from tests.integration._dynamodb_support import (
    PARTIQL_ON_REAL_SERVERS_ONLY,
    atomic_endpoint,  # noqa: F401 - fixture
    store_factory,
)
from tests.integration.conftest import make_client
from tests.processor_fakes import unit_config
from tests.processor_support import SourceObject
from tests.redelivery import (
    SCENARIOS,
    BundleShelf,
    World,
    assert_exactly_once,
    check_concurrent_duplicate_waits,
    check_duplicate_window,
    check_every_fault_at_once,
    check_late_commit_refused,
    check_overlapping_batches,
    deliver_until_done,
    messages_for,
)

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from mypy_boto3_s3 import S3Client as Boto3S3Client

    from data_aggregator.idempotency import BatchMode, IdempotencyStore


#: The scenarios run here, over DynamoDB: every step's crash, and the lost answers, whose
#: recovery reads bundles back from S3 (every scenario runs in memory, in the unit tests).
MOTO_SCENARIOS = (
    "crash-after-claim",
    "claim-answer-lost",
    "crash-during-fetch",
    "fetch-fails",
    "crash-midway-claim",
    "slow-fetch-trips-the-guard",
    "upload-fails",
    "crash-after-upload",
    "upload-answer-lost",
    "crash-during-complete",
    "complete-answer-lost",
    "crash-during-release",
)

#: DynamoDB kinds and their batch modes: "dynamodb" is the default (hybrid: claims one
#: request per key, like single; mark_pending, complete and release in transactions).
_MODES: dict[str, BatchMode] = {
    "dynamodb": "hybrid",
    "dynamodb-single": "single",
    "dynamodb-transact": "transact",
    "dynamodb-statements": "statements",
}
_STATEMENTS = pytest.param("dynamodb-statements", marks=PARTIQL_ON_REAL_SERVERS_ONLY)
STORES = ("memory", "dynamodb", "dynamodb-single", "dynamodb-transact", _STATEMENTS)
#: The crash scenarios run on the default mode and on the batched claims (single
#: mode's claims are hybrid's; its single completions run in STORES' tests).
DYNAMODB = ("dynamodb", "dynamodb-transact", _STATEMENTS)


@functools.cache
def _processor_client(endpoint: str) -> Boto3S3Client:
    """The processors' boto3 client (one per endpoint: making a client takes ~0.2 s)."""
    client: Boto3S3Client = make_client("s3", endpoint, max_pool_connections=32)
    return client


@pytest.fixture
def make_world(
    request: pytest.FixtureRequest,
    s3_endpoint: str,
    s3_client: Boto3S3Client,
    make_bucket: Callable[..., str],
) -> Iterator[Callable[..., World]]:
    """A factory of worlds over fresh buckets: ``make_world(store kind, **AppConfig
    fields)``; the stores are closed at the end."""
    made: list[World] = []

    def make(kind: str, **config: Any) -> World:
        source, dest = make_bucket("source"), make_bucket("dest")
        clock = FakeClock(FUTURE_START)
        locator = S3ManifestBundleLocator(dest, client=s3_client)
        make_store: Callable[..., IdempotencyStore] = InMemoryIdempotencyStore
        if kind != "memory":
            make_store = store_factory(request.getfixturevalue("atomic_endpoint"), _MODES[kind])
        store = make_store(bundle_locator=locator, clock=clock, ttl_seconds=86_400)
        app_config = unit_config(distribution_bucket_name=dest, **config)

        def keys() -> list[str]:
            listing = s3_client.list_objects_v2(Bucket=dest)
            return [entry["Key"] for entry in listing.get("Contents", [])]

        def read(key: str) -> bytes:
            return s3_client.get_object(Bucket=dest, Key=key)["Body"].read()

        def put(key: str, data: bytes) -> SourceObject:
            etag = s3_client.put_object(Bucket=source, Key=key, Body=data)["ETag"]
            return SourceObject(source, key, data, etag.strip('"'))

        world = World(
            app_config,
            S3Client.from_config(app_config, _processor_client(s3_endpoint)),
            store,
            BundleShelf(keys, read),
            clock,
            put,
        )
        made.append(world)
        return world

    yield make
    for world in made:
        world.store.close()


@pytest.mark.parametrize("kind", DYNAMODB)
@pytest.mark.parametrize("scenario", MOTO_SCENARIOS)
def test_fault_then_redelivery_bundles_every_object_once(
    make_world: Callable[..., World], kind: str, scenario: str
) -> None:
    """A fault at a step in the first two invocations loses nothing and bundles nothing
    twice; each fault did fire."""
    world = make_world(kind)
    objects = world.objects(8)
    function = world.function(*SCENARIOS[scenario])
    delivery = deliver_until_done(
        [function], messages_for(objects, 2), world.shelf, world.store, batch_size=4
    )
    assert_exactly_once(world.shelf, objects, world.store)
    assert set(function.plan.faults()) == {(r.operation, r.fault) for r in SCENARIOS[scenario]}
    if scenario in {"crash-after-upload", "upload-answer-lost", "crash-during-complete"}:
        assert delivery.outcomes[Outcome.DUPLICATE, Reason.RECOVERED] > 0


@pytest.mark.parametrize("kind", STORES)
def test_every_fault_at_once_across_invocations(
    make_world: Callable[..., World], kind: str
) -> None:
    """Each scenario in its own invocation, one after the other: still exactly once."""
    check_every_fault_at_once(make_world(kind), count=16, batch_size=3)


@pytest.mark.parametrize("kind", STORES)
def test_concurrent_duplicate_waits_for_the_live_lease(
    make_world: Callable[..., World], kind: str
) -> None:
    """A duplicate met by a live lease fails, then is acknowledged as already completed."""
    check_concurrent_duplicate_waits(make_world(kind))


@pytest.mark.parametrize("kind", STORES)
def test_commit_after_the_lease_ended_is_the_duplicate_window(
    make_world: Callable[..., World], kind: str
) -> None:
    """A commit sent in time that lands after its lease ended duplicates the object; the
    late invocation does not acknowledge it, and a redelivery finds it completed in the
    taker's bundle."""
    check_duplicate_window(make_world(kind))


@pytest.mark.parametrize("kind", STORES)
def test_a_commit_that_would_start_after_the_deadline_is_never_sent(
    make_world: Callable[..., World], kind: str
) -> None:
    """The upload stalls past the deadline and the lease (another invocation takes the
    record over meanwhile): its commit request is refused before it is sent, so the
    object is in the taker's bundle only, and the late invocation fails with TIMEOUT."""
    check_late_commit_refused(make_world(kind))


@pytest.mark.parametrize("kind", STORES)
def test_concurrent_overlapping_batches_with_crashes(
    make_world: Callable[..., World], kind: str
) -> None:
    """Three function instances at once on overlapping batches (every object announced
    twice), crashing after the claim, after the upload and midway through complete:
    exactly once, the store's conditions deciding every race."""
    scenarios = ("crash-after-claim", "crash-after-upload", "crash-during-complete")
    check_overlapping_batches(make_world(kind), scenarios, count=12)


@pytest.mark.parametrize("fault", [Fault.CRASH_AFTER, Fault.LOSE_ANSWER])
def test_multipart_commit_crash_or_lost_answer_is_recovered(
    make_world: Callable[..., World], fault: Fault
) -> None:
    """A multipart bundle whose ``CompleteMultipartUpload`` succeeded but was never
    followed by ``complete`` (crash, or lost answer): after the leases end, the redelivery
    reads the bundle's manifest back and acknowledges every record as recovered."""
    world = make_world("dynamodb", multipart_part_size_mb=5)
    rng = random.Random(11)
    objects = [world.put(f"big/{i}.bin", rng.randbytes(3 * MIB)) for i in range(3)]
    function = world.function(Rule("CompleteMultipartUpload", fault, invocations=frozenset({1})))
    delivery = deliver_until_done([function], messages_for(objects), world.shelf, world.store)
    assert function.plan.faults() == [("CompleteMultipartUpload", fault)]
    assert delivery.outcomes[Outcome.DUPLICATE, Reason.RECOVERED] == 3
    assert delivery.outcomes[Outcome.BUNDLED, None] == 0
    assert_exactly_once(world.shelf, objects, world.store)
