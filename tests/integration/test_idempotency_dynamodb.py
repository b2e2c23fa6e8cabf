"""DynamoDBIdempotencyStore against moto's DynamoDB over HTTP: races, errors, schema, TTL.

Tests that concern how writes are sent run in each batch mode (``batch_mode``); the
transactional fallback paths have their own tests in ``test_idempotency_transact.py``.
"""

from __future__ import annotations

import json
import math
import multiprocessing
import random
import threading
import time
import uuid
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

import pytest

from data_aggregator.exceptions import (
    IdempotencyConfigurationError,
    IdempotencyError,
    IdempotencyStoreError,
)
from data_aggregator.idempotency import (
    ClaimStatus,
    DynamoDBIdempotencyStore,
    InMemoryBundleLocator,
    RecordStatus,
    UpdateStatus,
    create_idempotency_table,
    lease_expiry,
    main,
    make_idempotency_key,
)
from data_aggregator.testing import FakeClock
from tests.clock_support import FUTURE_START
from tests.integration._claim_worker import ClaimJob, claim_in_process
from tests.integration._dynamodb_support import (
    BATCH_MODES,
    PARTIQL_ON_REAL_SERVERS_ONLY,
    atomic_endpoint,  # noqa: F401 - fixture
    ddb_client,
    new_table,
    overlapping_sets,
    statement_key,
)
from tests.integration._s3_hooks import Concurrency
from tests.integration.conftest import make_client

if TYPE_CHECKING:
    from collections.abc import Callable

    from mypy_boto3_dynamodb import DynamoDBClient

    from data_aggregator.idempotency import BatchMode

A, B = "owner-a", "owner-b"


@pytest.fixture
def client(atomic_endpoint: str) -> DynamoDBClient:  # noqa: F811 - fixture use
    """A DynamoDB client for the atomic moto server."""
    return ddb_client(atomic_endpoint)


@pytest.fixture
def table(client: DynamoDBClient) -> str:
    """A fresh idempotency table."""
    return new_table(client)


@pytest.fixture(params=BATCH_MODES)
def batch_mode(request: pytest.FixtureRequest) -> BatchMode:
    """Each of the store's batch modes."""
    mode: BatchMode = request.param
    return mode


def keys(n: int, prefix: str = "obj") -> list[str]:
    return [make_idempotency_key(f"{prefix}/{i}.json", None, f"{i:016X}") for i in range(n)]


@pytest.mark.real_servers_only(
    reason="races need atomic conditional writes: DynamoDB Local has them, moto does not"
)
@pytest.mark.parametrize("workers", [2, 4, 8])
def test_threads_claiming_overlapping_sets_win_each_key_once(
    client: DynamoDBClient, table: str, workers: int, batch_mode: BatchMode
) -> None:
    """Concurrent claimers (threads, each running 8 requests at once) never both win a key.

    In transact mode each claimer sends chunks of 8 keys, so chunks of different claimers
    overlap and cancel each other: the fallback paths run under contention too."""
    clock = FakeClock(FUTURE_START)
    all_keys = keys(40)
    shares = list(overlapping_sets(all_keys, workers, share=30))
    barrier = threading.Barrier(workers)
    wins: dict[str, list[str]] = {}
    lock = threading.Lock()

    def worker(index: int, share: list[str]) -> None:
        owner = f"worker-{index}"
        store = DynamoDBIdempotencyStore(
            table,
            client=client,
            clock=clock,
            max_workers=8,
            batch_mode=batch_mode,
            transact_max_items=8,
        )
        random.Random(index).shuffle(share)
        barrier.wait(timeout=30)
        results = store.claim(share, owner=owner, lease_expires_at=clock() + 60)
        store.close()
        assert {r.status for r in results.values()} <= {
            ClaimStatus.CLAIMED,
            ClaimStatus.IN_PROGRESS_ELSEWHERE,
        }
        with lock:
            for key, result in results.items():
                if result.status is ClaimStatus.CLAIMED:
                    wins.setdefault(key, []).append(owner)

    threads = [threading.Thread(target=worker, args=(i, share)) for i, share in enumerate(shares)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    covered = {key for share in shares for key in share}
    assert set(wins) == covered
    assert all(len(owners) == 1 for owners in wins.values()), wins
    reader = DynamoDBIdempotencyStore(table, client=client, clock=clock)
    for key, owners in wins.items():
        record = reader.get(key)
        assert record is not None
        assert record.owner == owners[0]


@pytest.mark.real_servers_only(
    reason="races need atomic conditional writes: DynamoDB Local has them, moto does not"
)
def test_processes_claiming_overlapping_sets_win_each_key_once(
    atomic_endpoint: str,  # noqa: F811 - fixture use
    client: DynamoDBClient,
    table: str,
    batch_mode: BatchMode,
) -> None:
    """Four spawned processes, each with its own client, never both win a key."""
    context = multiprocessing.get_context("spawn")
    workers = 4
    all_keys = keys(40, "proc")
    shares = list(overlapping_sets(all_keys, workers, share=30))
    barrier = context.Barrier(workers)
    now = time.time()
    jobs = [
        ClaimJob(atomic_endpoint, table, f"process-{i}", share, now, batch_mode)
        for i, share in enumerate(shares)
    ]
    queue = context.Queue()
    processes = [
        context.Process(target=claim_in_process, args=(job, barrier, queue)) for job in jobs
    ]
    for process in processes:
        process.start()
    reports = [queue.get(timeout=120) for _ in processes]
    for process in processes:
        process.join(timeout=30)
        assert process.exitcode == 0
    winners: dict[str, list[str]] = {}
    for owner, keys_won, errors in reports:
        assert errors == 0
        for key in keys_won:
            winners.setdefault(key, []).append(owner)
    assert set(winners) == {key for share in shares for key in share}
    assert all(len(w) == 1 for w in winners.values()), winners


def test_racing_takeovers_of_pending_records_win_each_key_once(
    client: DynamoDBClient, table: str, batch_mode: BatchMode
) -> None:
    """Four claimers racing for expired leases with a pending bundle (the UpdateItem path),
    each announcing its own bundle, still win each key once; every winner sees the dead
    holder's bundle, and the record keeps it next to the winner's own."""
    clock = FakeClock(FUTURE_START)
    batch = keys(24, "pending")
    dead = DynamoDBIdempotencyStore(
        table, client=client, clock=clock, max_workers=8, batch_mode=batch_mode
    )
    dead.claim(batch, owner="dead", lease_expires_at=clock() + 10, bundle_key="never-uploaded")
    clock.advance(10)
    barrier = threading.Barrier(4)
    wins: list[tuple[str, tuple[str, ...], int]] = []
    lock = threading.Lock()

    def worker(index: int) -> None:
        store = DynamoDBIdempotencyStore(
            table,
            client=client,
            clock=clock,
            max_workers=8,
            batch_mode=batch_mode,
            transact_max_items=8,
        )
        barrier.wait(timeout=30)
        results = store.claim(
            batch, owner=f"w{index}", lease_expires_at=clock() + 60, bundle_key=f"bundle-{index}"
        )
        store.close()
        with lock:
            wins.extend(
                (key, r.pending_bundle_keys, index)
                for key, r in results.items()
                if r.status is ClaimStatus.CLAIMED
            )

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert sorted(key for key, _, _ in wins) == sorted(batch)
    assert {pending for _, pending, _ in wins} == {("never-uploaded",)}
    for key, _, index in wins:
        record = dead.get(key)
        assert record is not None
        assert (record.owner, record.pending_bundle_keys) == (
            f"w{index}",
            frozenset({"never-uploaded", f"bundle-{index}"}),
        )


def test_bulk_takeover_of_expired_leases(
    client: DynamoDBClient, table: str, batch_mode: BatchMode
) -> None:
    """Every expired lease of a crashed owner is taken over in one bulk call."""
    clock = FakeClock(FUTURE_START)
    store = DynamoDBIdempotencyStore(
        table, client=client, clock=clock, max_workers=16, batch_mode=batch_mode
    )
    batch = keys(24)
    first = store.claim(batch, owner=A, lease_expires_at=lease_expiry(30_000, now=clock()))
    assert all(r.status is ClaimStatus.CLAIMED for r in first.values())
    clock.advance(39)
    early = store.claim(batch, owner=B, lease_expires_at=clock() + 60)
    assert all(r.status is ClaimStatus.IN_PROGRESS_ELSEWHERE for r in early.values())
    clock.advance(1)
    late = store.claim(batch, owner=B, lease_expires_at=clock() + 60)
    assert all(r.status is ClaimStatus.CLAIMED and r.previous_owner == A for r in late.values())
    done = store.complete(batch, owner=A, bundle_key="bundle-a")
    assert all(r.status is UpdateStatus.LEASE_LOST for r in done.values())


def test_only_claims_ask_for_the_replaced_item(client: DynamoDBClient, table: str) -> None:
    """A success of mark_pending, complete or release is sent without ``ReturnValues``
    (its item is never used); claims ask for it, and every write still gets the item
    that refused it (single-item writes: ``batch_mode="single"``)."""
    sent: list[tuple[str, dict[str, Any]]] = []

    def record(params: dict[str, Any], model: Any, **_: Any) -> None:
        sent.append((model.name, json.loads(params["body"])))

    client.meta.events.register("before-call.dynamodb", record)
    clock = FakeClock(FUTURE_START)
    store = DynamoDBIdempotencyStore(
        table, client=client, clock=clock, max_workers=1, batch_mode="single"
    )
    first, second = keys(2)
    claimed = store.claim([first, second], owner=A, lease_expires_at=clock() + 1)
    assert all(r.status is ClaimStatus.CLAIMED for r in claimed.values())
    assert store.mark_pending([first], owner=A, bundle_key="b-1")[first].ok
    assert store.complete([first], owner=A, bundle_key="b-1")[first].ok
    assert store.release([second], owner=A)[second].ok
    clock.advance(5)
    taken = store.claim([second], owner=B, lease_expires_at=clock() + 60)[second]
    assert taken.status is ClaimStatus.CLAIMED
    lost = store.complete([second], owner=A, bundle_key="b-2")[second]
    assert lost.status is UpdateStatus.LEASE_LOST
    assert lost.current is not None
    assert lost.current.owner == B

    operations = [name for name, _ in sent]
    # claim x2, mark_pending, complete, release, the takeover claim, the refused complete
    assert operations == [
        "PutItem",
        "PutItem",
        "UpdateItem",
        "PutItem",
        "UpdateItem",
        "PutItem",
        "PutItem",
    ]
    assert all(body["ReturnValuesOnConditionCheckFailure"] == "ALL_OLD" for _, body in sent)
    asks = [body.get("ReturnValues") for _, body in sent]
    assert asks == ["ALL_OLD", "ALL_OLD", None, None, None, "ALL_OLD", None]


@pytest.mark.parametrize("bundled", [True, False])
def test_a_takeover_whose_answer_was_lost_still_checks_the_pending_bundle(
    client: DynamoDBClient, table: str, batch_mode: BatchMode, bundled: bool
) -> None:
    """B takes over a crashed holder's record announced pending in bundle-a; DynamoDB
    applies the UpdateItem but the answer is lost (500), so the request is sent again and
    now finds B's own lease. The announcement it still carries is checked all the same:
    the record is recovered when bundle-a holds it, and plainly claimed when not (B's
    own bundle-b, announced by the lost write, is not checked)."""
    clock = FakeClock(FUTURE_START)
    locator = InMemoryBundleLocator()
    store = DynamoDBIdempotencyStore(
        table,
        client=client,
        clock=clock,
        bundle_locator=locator,
        batch_mode=batch_mode,
        sleep=lambda _: None,
    )
    claimed = store.claim(["k"], owner=A, lease_expires_at=clock() + 60, bundle_key="bundle-a")
    assert claimed["k"].status is ClaimStatus.CLAIMED
    if bundled:
        locator.add("bundle-a", ["k"])  # A's upload completed; A died before complete
    clock.advance(120)

    side = ddb_client(client.meta.endpoint_url)
    lost: list[dict[str, Any]] = []

    def apply_then_lose_the_answer(params: dict[str, Any], **_: Any) -> Any:
        if lost:
            return None
        body = json.loads(params["body"])
        lost.append(body)
        side.update_item(**body)
        error = {"Code": "InternalServerError", "Message": "internal server error"}
        return SimpleNamespace(status_code=500), {"Error": error}

    client.meta.events.register("before-call.dynamodb.UpdateItem", apply_then_lose_the_answer)
    result = store.claim(["k"], owner=B, lease_expires_at=clock() + 60, bundle_key="bundle-b")["k"]
    assert lost, "the takeover's UpdateItem was not sent"
    record = store.get("k")
    assert record is not None
    if bundled:
        assert result.status is ClaimStatus.RECOVERED
        assert result.bundle_key == "bundle-a"
        assert (record.status, record.bundle_key) == (RecordStatus.COMPLETED, "bundle-a")
    else:
        assert result.status is ClaimStatus.CLAIMED
        assert result.pending_bundle_keys == ("bundle-a",)  # B's own bundle-b not checked
        assert (record.status, record.owner) == (RecordStatus.IN_PROGRESS, B)
        assert record.pending_bundle_keys == {"bundle-a", "bundle-b"}
    # Who held the lease before is unknown after a lost answer: not reported as B itself.
    assert result.previous_owner is None


def test_bulk_calls_run_concurrently(atomic_endpoint: str) -> None:  # noqa: F811
    """With 20 ms per request, a bulk claim keeps many requests in flight at once."""
    client = ddb_client(atomic_endpoint, pool=16)
    table = new_table(client)
    concurrency = Concurrency().attach(client, None, 0.02, service="dynamodb")
    store = DynamoDBIdempotencyStore(table, client=client, max_workers=16)
    results = store.claim(keys(96), owner=A, lease_expires_at=time.time() + 60)
    store.close()
    assert all(r.status is ClaimStatus.CLAIMED for r in results.values())
    assert concurrency.peak >= 8


def test_ttl_is_enabled_and_items_use_the_documented_layout(
    client: DynamoDBClient, table: str, batch_mode: BatchMode
) -> None:
    """The created table has TTL on `expiration`; items carry the documented attributes."""
    ttl = client.describe_time_to_live(TableName=table)["TimeToLiveDescription"]
    assert ttl.get("TimeToLiveStatus") == "ENABLED"
    assert ttl.get("AttributeName") == "expiration"
    clock = FakeClock(FUTURE_START)
    store = DynamoDBIdempotencyStore(
        table, client=client, clock=clock, ttl_seconds=86_400, batch_mode=batch_mode
    )
    store.claim(["k"], owner=A, lease_expires_at=clock() + 70.5, bundle_key="2024/bundle-1.tar.gz")
    raw = client.get_item(TableName=table, Key={"object_key": {"S": "k"}})["Item"]
    assert raw == {
        "object_key": {"S": "k"},
        "status": {"S": "IN_PROGRESS"},
        "owner": {"S": A},
        "lease_expires_at": {"N": str(FUTURE_START + 70.5)},
        "pending_bundles": {"SS": ["2024/bundle-1.tar.gz"]},
        "expiration": {"N": str(int(FUTURE_START) + 71 + 86_400)},
    }
    store.mark_pending(["k"], owner=A, bundle_key="2024/bundle-0.tar.gz")
    raw = client.get_item(TableName=table, Key={"object_key": {"S": "k"}})["Item"]
    assert sorted(raw["pending_bundles"]["SS"]) == [
        "2024/bundle-0.tar.gz",
        "2024/bundle-1.tar.gz",
    ]
    store.complete(["k"], owner=A, bundle_key="2024/bundle-1.tar.gz")
    raw = client.get_item(TableName=table, Key={"object_key": {"S": "k"}})["Item"]
    assert raw == {
        "object_key": {"S": "k"},
        "status": {"S": "COMPLETED"},
        "owner": {"S": A},
        "bundle_key": {"S": "2024/bundle-1.tar.gz"},
        "expiration": {"N": str(int(FUTURE_START) + 86_400)},
    }


def test_missing_table_is_a_configuration_error(
    client: DynamoDBClient, batch_mode: BatchMode
) -> None:
    """Every operation on a missing table raises one clear, typed error for the whole call."""
    store = DynamoDBIdempotencyStore(
        "no-such-table", client=client, max_workers=4, batch_mode=batch_mode
    )
    calls = [
        lambda: store.claim(keys(5), owner=A, lease_expires_at=time.time() + 60),
        lambda: store.complete(keys(5), owner=A, bundle_key="b"),
        lambda: store.mark_pending(keys(5), owner=A, bundle_key="b"),
        lambda: store.release(["k"], owner=A),
        lambda: store.get("k"),
        store.verify_table,
    ]
    for call in calls:
        with pytest.raises(IdempotencyConfigurationError) as caught:
            call()
        assert caught.value.error_code == "IDEMPOTENCY_TABLE_NOT_FOUND"
        assert not caught.value.retryable
        assert caught.value.to_dict()["context"]["table_name"] == "no-such-table"


@pytest.mark.parametrize(
    ("key_schema", "definitions"),
    [
        ([("id", "HASH")], [("id", "S")]),
        ([("object_key", "HASH")], [("object_key", "N")]),
        ([("object_key", "HASH"), ("sk", "RANGE")], [("object_key", "S"), ("sk", "S")]),
    ],
    ids=["other-name", "number-type", "composite-key"],
)
def test_wrong_key_schema_is_a_configuration_error(
    client: DynamoDBClient,
    key_schema: list[tuple[str, str]],
    definitions: list[tuple[str, str]],
    batch_mode: BatchMode,
) -> None:
    """A table whose key is not a lone string `object_key` is reported as such."""
    name = f"bad-{uuid.uuid4().hex[:10]}"
    client.create_table(
        TableName=name,
        KeySchema=[{"AttributeName": n, "KeyType": t} for n, t in key_schema],  # type: ignore[typeddict-item]
        AttributeDefinitions=[
            {"AttributeName": n, "AttributeType": t}  # type: ignore[typeddict-item]
            for n, t in definitions
        ],
        BillingMode="PAY_PER_REQUEST",
    )
    store = DynamoDBIdempotencyStore(name, client=client, batch_mode=batch_mode)
    with pytest.raises(IdempotencyConfigurationError) as caught:
        store.claim(["k", "j"], owner=A, lease_expires_at=time.time() + 60)
    assert caught.value.error_code == "IDEMPOTENCY_KEY_SCHEMA_MISMATCH"
    with pytest.raises(IdempotencyConfigurationError) as verified:
        store.verify_table()
    assert verified.value.error_code == "IDEMPOTENCY_KEY_SCHEMA_MISMATCH"
    with pytest.raises(IdempotencyConfigurationError):
        create_idempotency_table(client, name, exist_ok=True)


def test_verify_table_accepts_a_good_table(client: DynamoDBClient, table: str) -> None:
    """A table made by create_idempotency_table passes verification, which reads its key
    schema with one DescribeTable; the same table checked for another key name fails."""
    sent: list[tuple[str, str]] = []

    def record(params: dict[str, Any], model: Any, **_: Any) -> None:
        sent.append((model.name, json.loads(params["body"])["TableName"]))

    client.meta.events.register("before-call.dynamodb", record)
    DynamoDBIdempotencyStore(table, client=client).verify_table()
    assert sent == [("DescribeTable", table)]
    with pytest.raises(IdempotencyConfigurationError) as caught:
        DynamoDBIdempotencyStore(table, client=client, partition_key="other").verify_table()
    assert caught.value.error_code == "IDEMPOTENCY_KEY_SCHEMA_MISMATCH"


def test_custom_partition_key(client: DynamoDBClient, batch_mode: BatchMode) -> None:
    """The partition key attribute name is configurable end to end."""
    name = f"custom-{uuid.uuid4().hex[:10]}"
    create_idempotency_table(client, name, partition_key="idempotency_key")
    store = DynamoDBIdempotencyStore(
        name, partition_key="idempotency_key", client=client, batch_mode=batch_mode
    )
    store.verify_table()
    claimed = store.claim(["k", "j"], owner=A, lease_expires_at=time.time() + 60)
    assert {r.status for r in claimed.values()} == {ClaimStatus.CLAIMED}
    assert store.claim(["k"], owner=B, lease_expires_at=time.time() + 60)["k"].status is (
        ClaimStatus.IN_PROGRESS_ELSEWHERE
    )
    assert all(r.ok for r in store.complete(["k", "j"], owner=A, bundle_key="b").values())
    item = client.get_item(TableName=name, Key={"idempotency_key": {"S": "k"}})
    assert item["Item"]["owner"] == {"S": A}
    assert item["Item"]["bundle_key"] == {"S": "b"}


def _written_keys(body: dict[str, Any]) -> list[str]:
    """The keys a PutItem, UpdateItem, TransactWriteItems or BatchExecuteStatement request
    body writes."""
    if "Statements" in body:
        return [statement_key(statement) for statement in body["Statements"]]
    writes = [next(iter(a.values())) for a in body.get("TransactItems", [])] or [body]
    return [(w.get("Key") or w["Item"])["object_key"]["S"] for w in writes]


@pytest.mark.parametrize(
    ("batch_mode", "expected_sleeps"),
    # single and hybrid (whose claims are single writes): "slow" backs off twice,
    # "hopeless" three times. transact and statements: the request holding all three backs
    # off three times, then each key is written alone and "hopeless" backs off three more.
    [
        ("single", 2 + 3),
        ("hybrid", 2 + 3),
        ("transact", 3 + 3),
        pytest.param("statements", 3 + 3, marks=PARTIQL_ON_REAL_SERVERS_ONLY),
    ],
)
def test_throttling_is_retried_with_backoff_and_fails_only_its_key(
    atomic_endpoint: str,  # noqa: F811 - fixture use
    batch_mode: BatchMode,
    expected_sleeps: int,
) -> None:
    """Throttled requests back off and retry; a key throttled past the limit alone errs."""
    client = ddb_client(atomic_endpoint)
    table = new_table(client)
    throttled: dict[str, int] = {"slow": 2, "hopeless": 99}
    lock = threading.Lock()

    def throttle(params: dict[str, Any], **_: Any) -> Any:
        written = _written_keys(json.loads(params["body"]))
        with lock:
            hit = [key for key in written if throttled.get(key, 0) > 0]
            if not hit:
                return None
            for key in hit:
                throttled[key] -= 1
        error = {"Code": "ProvisionedThroughputExceededException", "Message": "slow down"}
        return SimpleNamespace(status_code=400), {"Error": error}

    client.meta.events.register("before-call.dynamodb", throttle)
    sleeps: list[float] = []
    store = DynamoDBIdempotencyStore(
        table,
        client=client,
        max_retries=3,
        backoff_base_seconds=0.1,
        sleep=sleeps.append,
        max_workers=4,
        batch_mode=batch_mode,
    )
    results = store.claim(["slow", "hopeless", "fine"], owner=A, lease_expires_at=time.time() + 60)
    assert results["slow"].status is ClaimStatus.CLAIMED
    assert results["fine"].status is ClaimStatus.CLAIMED
    hopeless = results["hopeless"]
    assert hopeless.status is ClaimStatus.ERROR
    assert isinstance(hopeless.error, IdempotencyStoreError)
    assert hopeless.error.retryable
    assert hopeless.error.error_code == "IDEMPOTENCY_THROTTLED"
    assert len(sleeps) == expected_sleeps
    assert all(0 <= s <= 0.4 for s in sleeps)


def test_unreachable_endpoint_fails_each_key_retryably(batch_mode: BatchMode) -> None:
    """Connection failures become per-key retryable errors, not a crash of the batch."""
    client = make_client(
        "dynamodb", "http://127.0.0.1:9", connect_timeout=0.5, max_pool_connections=4
    )
    client.meta.config.retries = {"max_attempts": 1}
    store = DynamoDBIdempotencyStore("t", client=client, max_workers=2, batch_mode=batch_mode)
    results = store.claim(["a", "b"], owner=A, lease_expires_at=time.time() + 60)
    assert {r.status for r in results.values()} == {ClaimStatus.ERROR}
    assert all(isinstance(r.error, IdempotencyStoreError) for r in results.values())
    assert all(r.error is not None and r.error.retryable for r in results.values())


def test_keys_longer_than_dynamodb_allows_are_stored_hashed(
    client: DynamoDBClient, table: str, batch_mode: BatchMode
) -> None:
    """A 1,024-byte non-ASCII S3 key (over 2 KiB once encoded) still works."""
    key = make_idempotency_key("é" * 512, None, "0A")
    assert len(key) > 2048
    store = DynamoDBIdempotencyStore(table, client=client, batch_mode=batch_mode)
    claimed = store.claim([key, "short"], owner=A, lease_expires_at=time.time() + 60)
    assert claimed[key].status is ClaimStatus.CLAIMED
    assert store.claim([key], owner=B, lease_expires_at=time.time() + 60)[key].status is (
        ClaimStatus.IN_PROGRESS_ELSEWHERE
    )
    assert store.complete([key, "short"], owner=A, bundle_key="b")[key].ok
    record = store.get(key)
    assert record is not None
    assert (record.key, record.status) == (key, RecordStatus.COMPLETED)


def test_item_without_status_counts_as_completed(
    client: DynamoDBClient, table: str, batch_mode: BatchMode
) -> None:
    """An item written by an older tool (no status) is never bundled again."""
    client.put_item(TableName=table, Item={"object_key": {"S": "legacy"}, "done": {"BOOL": True}})
    store = DynamoDBIdempotencyStore(table, client=client, batch_mode=batch_mode)
    results = store.claim(["legacy", "new"], owner=A, lease_expires_at=time.time() + 60)
    assert results["legacy"].status is ClaimStatus.ALREADY_COMPLETED
    assert results["new"].status is ClaimStatus.CLAIMED


def test_table_name_comes_from_the_environment(
    client: DynamoDBClient, table: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without a table name the store reads IDEMPOTENCY_TABLE_NAME, and fails clearly without."""
    monkeypatch.setenv("IDEMPOTENCY_TABLE_NAME", table)
    assert DynamoDBIdempotencyStore(client=client).table_name == table
    monkeypatch.delenv("IDEMPOTENCY_TABLE_NAME")
    with pytest.raises(IdempotencyConfigurationError) as caught:
        DynamoDBIdempotencyStore(client=client)
    assert caught.value.error_code == "IDEMPOTENCY_TABLE_NOT_CONFIGURED"


def test_from_config_reads_table_key_and_ttl(client: DynamoDBClient) -> None:
    """from_config takes table name, partition key, TTL and batch mode from an
    AppConfig-like object."""
    config = SimpleNamespace(
        idempotency_table_name="t1",
        idempotency_partition_key="pk",
        idempotency_ttl_seconds=60,
        idempotency_batch_mode="single",
    )
    store = DynamoDBIdempotencyStore.from_config(config, client=client, max_workers=3)
    assert (store.table_name, store.partition_key, store.ttl_seconds) == ("t1", "pk", 60)
    assert store.batch_mode == "single"


def test_from_config_accepts_the_app_config(client: DynamoDBClient) -> None:
    """The real AppConfig satisfies DynamoDBStoreSettings (names and types line up)."""
    from data_aggregator.config import AppConfig

    config = AppConfig(distribution_bucket_name="dest-bucket", idempotency_table_name="tbl")
    store = DynamoDBIdempotencyStore.from_config(config, client=client)
    assert (store.table_name, store.partition_key) == ("tbl", "object_key")
    assert store.ttl_seconds == config.idempotency_ttl_seconds


def test_default_client_honours_aws_endpoint_url(
    atomic_endpoint: str,  # noqa: F811 - fixture use
    table: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """With no client given, boto3's own AWS_ENDPOINT_URL support points the store at moto."""
    monkeypatch.setenv("AWS_ENDPOINT_URL", atomic_endpoint)
    store = DynamoDBIdempotencyStore(table, max_workers=40)
    assert _pool_size(store) == 40
    assert store.claim(["k"], owner=A, lease_expires_at=time.time() + 60)["k"].status is (
        ClaimStatus.CLAIMED
    )


def test_create_table_refuses_an_existing_table_unless_told(
    client: DynamoDBClient, table: str
) -> None:
    """Creating an existing table is an error, or a schema check with exist_ok."""
    with pytest.raises(IdempotencyConfigurationError) as caught:
        create_idempotency_table(client, table)
    assert caught.value.error_code == "IDEMPOTENCY_TABLE_EXISTS"
    create_idempotency_table(client, table, exist_ok=True)


def test_command_line_creates_a_table(
    atomic_endpoint: str,  # noqa: F811 - fixture use
    client: DynamoDBClient,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """`python -m data_aggregator.idempotency create-table` makes a usable table."""
    name = f"cli-{uuid.uuid4().hex[:10]}"
    args = ["create-table", "--table-name", name, "--endpoint-url", atomic_endpoint]
    assert main([*args, "--region", "us-east-1"]) == 0
    assert name in capsys.readouterr().out
    DynamoDBIdempotencyStore(name, client=client).verify_table()
    assert main([*args, "--exist-ok"]) == 0


def test_other_validation_errors_fail_only_their_key(
    client: DynamoDBClient, table: str, batch_mode: BatchMode
) -> None:
    """A request DynamoDB rejects for a non-schema reason is a permanent per-key error."""
    store = DynamoDBIdempotencyStore(table, client=client, batch_mode=batch_mode)
    too_big = "b" * 500_000  # over DynamoDB's 400 KB item limit
    store.claim(["k", "j"], owner=A, lease_expires_at=time.time() + 60)
    results = store.mark_pending(["k"], owner=A, bundle_key=too_big)
    error = results["k"].error
    if results["k"].status is UpdateStatus.OK:  # pragma: no cover - moto may not enforce it
        pytest.skip("this moto version accepts oversized items")
    assert results["k"].status is UpdateStatus.ERROR
    assert isinstance(error, IdempotencyError)
    assert not error.retryable
    assert store.mark_pending(["j"], owner=A, bundle_key="small")["j"].ok


def test_a_validation_error_without_describe_table_permission_fails_only_its_key(
    client: DynamoDBClient, table: str
) -> None:
    """The schema check after a rejected request needs ``dynamodb:DescribeTable``; a role
    without it leaves the cause unknown, only the rejected keys fail, and the check is
    tried once, not once per rejected key."""
    denied: list[str] = []

    def deny(**_: Any) -> Any:
        denied.append("DescribeTable")
        error = {"Code": "AccessDeniedException", "Message": "not authorized: DescribeTable"}
        return SimpleNamespace(status_code=400), {"Error": error}

    client.meta.events.register("before-call.dynamodb.DescribeTable", deny)
    store = DynamoDBIdempotencyStore(table, client=client, max_workers=4)
    batch = keys(6)
    store.claim(batch, owner=A, lease_expires_at=time.time() + 60)
    results = store.mark_pending(batch, owner=A, bundle_key="b" * 500_000)
    if results[batch[0]].status is UpdateStatus.OK:  # pragma: no cover - moto may not enforce it
        pytest.skip("this moto version accepts oversized items")
    for key in batch:
        error = results[key].error
        assert results[key].status is UpdateStatus.ERROR
        assert isinstance(error, IdempotencyError)
        assert error.error_code == "IDEMPOTENCY_INVALID_REQUEST"
    assert denied == ["DescribeTable"]
    assert store.mark_pending(batch[:1], owner=A, bundle_key="small")[batch[0]].ok


def test_default_pool_is_at_least_the_concurrency(table: str) -> None:
    """The default client's connection pool fits max_workers requests at once."""
    store = DynamoDBIdempotencyStore(table, max_workers=64)
    assert _pool_size(store) == 64


def _pool_size(store: DynamoDBIdempotencyStore) -> int:
    size: int = getattr(store.client.meta.config, "max_pool_connections")  # noqa: B009
    return size


TRANSACT = "TransactWriteItems"
STATEMENTS = "BatchExecuteStatement"


def _legacy_item(key: str, *, lease: int, pending: str) -> dict[str, Any]:
    """An in-progress item as 0.1.0 wrote it: one announcement, ``pending_bundle_key`` (S).

    (Whole seconds: DynamoDB stores ``4102444830.0`` as ``4102444830``.)"""
    return {
        "object_key": {"S": key},
        "status": {"S": "IN_PROGRESS"},
        "owner": {"S": "owner-0.1.0"},
        "lease_expires_at": {"N": str(lease)},
        "pending_bundle_key": {"S": pending},
        "expiration": {"N": str(int(FUTURE_START) + 86_400)},
    }


class _Operations:
    """The operation of every request a client sends (each attempt), in order."""

    def __init__(self, client: DynamoDBClient) -> None:
        self.sent: list[str] = []
        self._lock = threading.Lock()
        client.meta.events.register("before-send.dynamodb", self._record)

    def _record(self, event_name: str, **_: Any) -> None:
        with self._lock:
            self.sent.append(event_name.rsplit(".", 1)[-1])

    def take(self) -> list[str]:
        """What was sent since the last call."""
        with self._lock:
            sent, self.sent = self.sent, []
        return sent


@pytest.mark.parametrize("bundled", [True, False], ids=["bundled", "not-bundled"])
def test_a_0_1_0_pending_bundle_key_is_read_checked_and_never_clobbered(
    client: DynamoDBClient, table: str, batch_mode: BatchMode, bundled: bool
) -> None:
    """An item 0.1.0 left behind (its holder crashed after ``mark_pending``) reads as a
    one-announcement set. The claim's one-PutItem fast path is refused for it (a PutItem
    would replace the item and lose the announcement), and the UpdateItem that takes it
    over checks bundle-old: recovered when bundle-old holds the record; otherwise
    claimed, with bundle-old kept as it was and the claimer's own announcement in the new
    set, so that the next claimer checks both."""
    clock = FakeClock(FUTURE_START)
    locator = InMemoryBundleLocator()
    store = DynamoDBIdempotencyStore(
        table, client=client, clock=clock, bundle_locator=locator, batch_mode=batch_mode
    )
    client.put_item(
        TableName=table, Item=_legacy_item("old", lease=int(FUTURE_START) - 5, pending="bundle-old")
    )
    legacy = store.get("old")
    assert legacy is not None
    assert (legacy.status, legacy.owner) == (RecordStatus.IN_PROGRESS, "owner-0.1.0")
    assert legacy.pending_bundle_keys == {"bundle-old"}
    if bundled:
        locator.add("bundle-old", ["old"])
    operations = _Operations(client)
    result = store.claim(["old"], owner=B, lease_expires_at=clock() + 60, bundle_key="bundle-b")
    # (transact, statements: the fresh-key batch, refused), the refused fast path, the
    # takeover, and when recovered the completion.
    batched = {"transact": [TRANSACT], "statements": [STATEMENTS]}
    takeover = [*batched.get(batch_mode, []), "PutItem", "UpdateItem"]
    completion = {"single": ["PutItem"], "statements": [STATEMENTS]}.get(batch_mode, [TRANSACT])
    assert operations.take() == takeover + (completion if bundled else [])
    raw = client.get_item(TableName=table, Key={"object_key": {"S": "old"}})["Item"]
    if bundled:
        assert (result["old"].status, result["old"].bundle_key) == (
            ClaimStatus.RECOVERED,
            "bundle-old",
        )
        assert result["old"].previous_owner == "owner-0.1.0"
        assert raw["status"] == {"S": "COMPLETED"}
        assert "pending_bundle_key" not in raw
        assert "pending_bundles" not in raw
        return
    assert result["old"].status is ClaimStatus.CLAIMED
    assert result["old"].pending_bundle_keys == ("bundle-old",)
    assert raw["pending_bundle_key"] == {"S": "bundle-old"}
    assert raw["pending_bundles"] == {"SS": ["bundle-b"]}
    assert raw["owner"] == {"S": B}
    record = store.get("old")
    assert record is not None
    assert record.pending_bundle_keys == {"bundle-old", "bundle-b"}
    clock.advance(60)
    locator.add("bundle-b", ["old"])
    third = store.claim(["old"], owner=A, lease_expires_at=clock() + 60)["old"]
    assert (third.status, third.bundle_key, third.previous_owner) == (
        ClaimStatus.RECOVERED,
        "bundle-b",
        B,
    )


def test_a_live_0_1_0_lease_is_respected_and_left_untouched(
    client: DynamoDBClient, table: str, batch_mode: BatchMode
) -> None:
    """A 0.1.0 holder still working: its lease blocks the claim and its item is unchanged."""
    clock = FakeClock(FUTURE_START)
    store = DynamoDBIdempotencyStore(table, client=client, clock=clock, batch_mode=batch_mode)
    item = _legacy_item("busy", lease=int(FUTURE_START) + 30, pending="bundle-old")
    client.put_item(TableName=table, Item=item)
    result = store.claim(["busy"], owner=B, lease_expires_at=clock() + 60, bundle_key="bundle-b")
    assert result["busy"].status is ClaimStatus.IN_PROGRESS_ELSEWHERE
    assert result["busy"].lease_expires_at == FUTURE_START + 30
    assert client.get_item(TableName=table, Key={"object_key": {"S": "busy"}})["Item"] == item


def test_a_blank_0_1_0_announcement_does_not_block_the_claim(
    client: DynamoDBClient, table: str, batch_mode: BatchMode
) -> None:
    """A ``pending_bundle_key`` holding an empty string announces nothing, but it still
    fails the fast path's ``attribute_not_exists``: the claim takes the UpdateItem path
    instead of reporting a lease that has ended as held elsewhere."""
    clock = FakeClock(FUTURE_START)
    store = DynamoDBIdempotencyStore(table, client=client, clock=clock, batch_mode=batch_mode)
    client.put_item(
        TableName=table, Item=_legacy_item("blank", lease=int(FUTURE_START) - 5, pending="")
    )
    result = store.claim(["blank"], owner=B, lease_expires_at=clock() + 60)["blank"]
    assert result.status is ClaimStatus.CLAIMED
    assert (result.previous_owner, result.pending_bundle_keys) == ("owner-0.1.0", ())
    record = store.get("blank")
    assert record is not None
    assert record.owner == B


def _expected_requests(mode: BatchMode, step: str, count: int) -> list[str]:
    """The requests a bulk step on ``count`` fresh keys sends in ``mode``."""
    if mode == "statements":
        return [STATEMENTS] * math.ceil(count / 25)
    transactions = [TRANSACT] * math.ceil(count / 100)
    if mode == "transact" or (mode == "hybrid" and step != "claim"):
        return transactions
    return [{"claim": "PutItem", "complete": "PutItem"}.get(step, "UpdateItem")] * count


@pytest.mark.parametrize("count", [100, 150])
def test_requests_per_step_in_each_batch_mode(
    client: DynamoDBClient, table: str, batch_mode: BatchMode, count: int
) -> None:
    """Counted at the wire (``before-send``, every attempt): ``hybrid`` sends one claim
    request per key and each of mark_pending, complete and release as one
    ``TransactWriteItems`` per 100 keys; ``single`` one request per key and step;
    ``transact`` one transaction per 100 keys and step; ``statements`` one
    ``BatchExecuteStatement`` per 25 keys and step. With no contention nothing else is
    sent: no read, no retry, no fallback."""
    clock = FakeClock(FUTURE_START)
    store = DynamoDBIdempotencyStore(
        table, client=client, clock=clock, batch_mode=batch_mode, max_workers=8
    )
    done, dropped = keys(count, "done"), keys(count, "dropped")
    operations = _Operations(client)
    lease = clock() + 60
    steps: list[tuple[str, Callable[[], dict[str, Any]]]] = [
        ("claim", lambda: store.claim(done, owner=A, lease_expires_at=lease, bundle_key="b-1")),
        ("mark_pending", lambda: store.mark_pending(done, owner=A, bundle_key="b-2")),
        ("complete", lambda: store.complete(done, owner=A, bundle_key="b-1")),
        ("claim", lambda: store.claim(dropped, owner=A, lease_expires_at=lease, bundle_key="b-3")),
        ("release", lambda: store.release(dropped, owner=A, bundle_key="b-3")),
    ]
    for step, call in steps:
        results = call()
        assert len(results) == count
        assert all(
            getattr(r, "ok", False) or getattr(r, "status", None) is ClaimStatus.CLAIMED
            for r in results.values()
        )
        assert operations.take() == _expected_requests(batch_mode, step, count), step
    store.close()


def test_the_default_batch_mode_is_hybrid(client: DynamoDBClient, table: str) -> None:
    """Without ``batch_mode``, N claims are N requests and completing N <= 100 keys is one
    ``TransactWriteItems``: about two requests per bundled object with its GET."""
    store = DynamoDBIdempotencyStore(table, client=client, clock=FakeClock(FUTURE_START))
    assert store.batch_mode == "hybrid"
    batch = keys(40)
    operations = _Operations(client)
    claimed = store.claim(batch, owner=A, lease_expires_at=FUTURE_START + 60, bundle_key="b")
    assert all(r.status is ClaimStatus.CLAIMED for r in claimed.values())
    assert operations.take() == ["PutItem"] * 40
    assert all(r.ok for r in store.complete(batch, owner=A, bundle_key="b").values())
    assert operations.take() == [TRANSACT]
