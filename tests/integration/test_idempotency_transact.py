"""The transactional batch mode's own paths, against moto's DynamoDB over HTTP.

What moto does not do, the tests inject at the client (a ``before-call`` hook answering in
DynamoDB's documented error shapes): ``TransactionConflict`` and other cancellation
reasons, a transaction that committed but whose answer was lost. Everything else is moto's
own answer, including ``CancellationReasons`` with the old ``Item`` of each action that
failed its condition. Every test records which requests were sent, to show which path
settled each key.
"""

from __future__ import annotations

import hashlib
import json
import threading
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

import pytest

from data_aggregator.exceptions import IdempotencyConfigurationError
from data_aggregator.idempotency import (
    ClaimStatus,
    DynamoDBIdempotencyStore,
    InMemoryBundleLocator,
    RecordStatus,
    UpdateStatus,
)
from data_aggregator.testing import FakeClock
from tests.clock_support import FUTURE_START
from tests.integration._dynamodb_support import (
    atomic_endpoint,  # noqa: F401 - fixture
    ddb_client,
    new_table,
)
from tests.integration._s3_hooks import Concurrency

if TYPE_CHECKING:
    from collections.abc import Callable

    from mypy_boto3_dynamodb import DynamoDBClient

A, B = "owner-a", "owner-b"
TWI = "TransactWriteItems"
_WRITES = {"PutItem", "UpdateItem", TWI}


def written_keys(body: dict[str, Any]) -> list[str]:
    """The keys a PutItem, UpdateItem or TransactWriteItems request body writes."""
    writes = [next(iter(a.values())) for a in body.get("TransactItems", [])] or [body]
    return [(w.get("Key") or w["Item"])["object_key"]["S"] for w in writes]


class Requests:
    """Records every write request a client sends (each attempt), in order."""

    def __init__(self, client: DynamoDBClient) -> None:
        self.sent: list[tuple[str, list[str], int]] = []
        self._lock = threading.Lock()
        for operation in _WRITES:  # first: before any hook that answers instead of moto
            client.meta.events.register_first(f"before-call.dynamodb.{operation}", self._record)

    def _record(self, model: Any, params: dict[str, Any], **_: Any) -> None:
        if model.name in _WRITES:
            with self._lock:
                body = params["body"]
                self.sent.append((model.name, written_keys(json.loads(body)), len(body)))

    def calls(self) -> list[tuple[str, list[str]]]:
        """``(operation, keys)`` per request."""
        return [(op, keys) for op, keys, _ in self.sent]

    def transactions(self) -> list[list[str]]:
        """The keys of each TransactWriteItems sent."""
        return [keys for op, keys, _ in self.sent if op == TWI]

    def single_writes(self) -> list[str]:
        """The keys written one by one (PutItem/UpdateItem), sorted."""
        return sorted(keys[0] for op, keys, _ in self.sent if op != TWI)

    def clear(self) -> None:
        """Forget what was recorded so far."""
        self.sent.clear()


def cancelled(reasons: list[dict[str, Any]] | None) -> tuple[Any, dict[str, Any]]:
    """A TransactionCanceledException answer, as DynamoDB shapes it."""
    codes = ", ".join(r.get("Code", "None") for r in reasons or [])
    answer: dict[str, Any] = {
        "Error": {
            "Code": "TransactionCanceledException",
            "Message": f"Transaction cancelled, please refer cancellation reasons [{codes}]",
        }
    }
    if reasons is not None:
        answer["CancellationReasons"] = reasons
    return SimpleNamespace(status_code=400), answer


def answer_transactions(
    client: DynamoDBClient, answers: list[Callable[[dict[str, Any]], Any]]
) -> None:
    """Answer the next TransactWriteItems requests with ``answers`` (one each, then moto).

    Each answer gets the request body and returns a fake answer, or ``None`` to let the
    request reach moto."""
    lock = threading.Lock()

    def hook(params: dict[str, Any], **_: Any) -> Any:
        with lock:
            if not answers:
                return None
            answer = answers.pop(0)
        return answer(json.loads(params["body"]))

    client.meta.events.register(f"before-call.dynamodb.{TWI}", hook)


@pytest.fixture
def client(atomic_endpoint: str) -> DynamoDBClient:  # noqa: F811 - fixture use
    """A DynamoDB client of its own (hooks registered on it stay in the test)."""
    return ddb_client(atomic_endpoint)


@pytest.fixture
def table(client: DynamoDBClient) -> str:
    """A fresh idempotency table."""
    return new_table(client)


def transact_store(
    table: str, client: DynamoDBClient, clock: FakeClock, **kwargs: Any
) -> DynamoDBIdempotencyStore:
    kwargs.setdefault("max_workers", 4)
    return DynamoDBIdempotencyStore(
        table, client=client, clock=clock, batch_mode="transact", **kwargs
    )


def test_refused_keys_are_settled_and_their_neighbours_retried_as_one_transaction(
    client: DynamoDBClient, table: str
) -> None:
    """A completed and a held key among fresh ones: the first transaction is cancelled,
    the two are settled from the returned items, the fresh ones go in a second one."""
    clock = FakeClock(FUTURE_START)
    other = transact_store(table, ddb_client(client.meta.endpoint_url), clock)
    other.claim(["done", "held"], owner=B, lease_expires_at=clock() + 70)
    other.complete(["done"], owner=B, bundle_key="bundle-b")
    store = transact_store(table, client, clock)
    requests = Requests(client)
    batch = ["f1", "done", "f2", "held", "f3"]
    results = store.claim(batch, owner=A, lease_expires_at=clock() + 60)
    assert {k: r.status for k, r in results.items()} == {
        "f1": ClaimStatus.CLAIMED,
        "done": ClaimStatus.ALREADY_COMPLETED,
        "f2": ClaimStatus.CLAIMED,
        "held": ClaimStatus.IN_PROGRESS_ELSEWHERE,
        "f3": ClaimStatus.CLAIMED,
    }
    assert results["done"].bundle_key == "bundle-b"
    assert results["held"].lease_expires_at == clock() + 70
    assert requests.calls() == [(TWI, batch), (TWI, ["f1", "f2", "f3"])]
    for key in ("f1", "f2", "f3"):
        record = store.get(key)
        assert record is not None
        assert (record.status, record.owner) == (RecordStatus.IN_PROGRESS, A)
    held = store.get("held")
    assert held is not None
    assert held.owner == B


def test_claimable_refusals_take_the_single_item_claim(client: DynamoDBClient, table: str) -> None:
    """Keys the fresh-claim transaction refuses but that are claimable (expired lease,
    pending bundle, own lease) are claimed one by one, with their previous owner."""
    clock = FakeClock(FUTURE_START)
    locator = InMemoryBundleLocator()
    other = transact_store(table, ddb_client(client.meta.endpoint_url), clock)
    other.claim(["expired", "pending"], owner=B, lease_expires_at=clock() + 10)
    other.mark_pending(["pending"], owner=B, bundle_key="bundle-b")
    locator.add("bundle-b", ["pending"])
    store = transact_store(table, client, clock, bundle_locator=locator)
    store.claim(["mine"], owner=A, lease_expires_at=clock() + 10)
    clock.advance(10)
    requests = Requests(client)
    results = store.claim(
        ["expired", "pending", "mine", "fresh"], owner=A, lease_expires_at=clock() + 60
    )
    assert results["expired"].status is ClaimStatus.CLAIMED
    assert results["expired"].previous_owner == B
    assert results["pending"].status is ClaimStatus.RECOVERED
    assert results["pending"].bundle_key == "bundle-b"
    assert results["mine"].status is ClaimStatus.CLAIMED
    assert results["mine"].previous_owner is None
    assert results["fresh"].status is ClaimStatus.CLAIMED
    sent = requests.calls()
    assert sent[:2] == [(TWI, ["expired", "pending", "mine", "fresh"]), (TWI, ["fresh"])]
    # Then each claimable key alone (the pending one: a PutItem refused for its pending
    # announcement, then the UpdateItem that keeps it), and the recovery's complete.
    assert requests.single_writes() == ["expired", "mine", "pending", "pending"]
    assert sent[-1] == (TWI, ["pending"])
    pending = store.get("pending")
    assert pending is not None
    assert (pending.status, pending.bundle_key) == (RecordStatus.COMPLETED, "bundle-b")


@pytest.mark.parametrize(
    "reasons",
    [
        [
            {"Code": "None"},
            {"Code": "TransactionConflict", "Message": "conflict"},
            {"Code": "None"},
        ],
        [{"Code": "None"}, {"Code": "ThrottlingError", "Message": "slow"}, {"Code": "None"}],
        [{"Code": "ValidationError", "Message": "bad"}, {"Code": "None"}, {"Code": "None"}],
        [{"Code": "None"}],  # does not match the actions
        None,  # no reasons at all
    ],
    ids=["conflict", "throttled-item", "validation", "mismatched", "missing"],
)
def test_a_cancellation_not_due_to_conditions_sends_the_chunk_to_single_writes(
    client: DynamoDBClient, table: str, reasons: list[dict[str, Any]] | None
) -> None:
    """TransactionConflict (another transaction on one of the items), a throttled or
    invalid item, or reasons that cannot be read: every key of the chunk is then written
    alone, and each gets the single write's result."""
    clock = FakeClock(FUTURE_START)
    store = transact_store(table, client, clock)
    answer_transactions(client, [lambda _body: cancelled(reasons)])
    requests = Requests(client)
    results = store.claim(["k1", "k2", "k3"], owner=A, lease_expires_at=clock() + 60)
    assert {r.status for r in results.values()} == {ClaimStatus.CLAIMED}
    assert requests.calls()[0] == (TWI, ["k1", "k2", "k3"])
    assert requests.single_writes() == ["k1", "k2", "k3"]
    assert len(requests.transactions()) == 1


def test_a_conflict_with_a_condition_failure_settles_the_failure_and_writes_the_rest(
    client: DynamoDBClient, table: str
) -> None:
    """A refused key is settled from its item even when a conflict sends the rest of the
    chunk to single writes."""
    clock = FakeClock(FUTURE_START)
    store = transact_store(table, client, clock)
    store.claim(["done"], owner=B, lease_expires_at=clock() + 60)
    store.complete(["done"], owner=B, bundle_key="bundle-b")
    done_item = client.get_item(TableName=table, Key={"object_key": {"S": "done"}})["Item"]
    reasons: list[dict[str, Any]] = [
        {"Code": "ConditionalCheckFailed", "Message": "failed", "Item": done_item},
        {"Code": "TransactionConflict", "Message": "conflict"},
        {"Code": "None"},
    ]
    answer_transactions(client, [lambda _body: cancelled(reasons)])
    requests = Requests(client)
    results = store.claim(["done", "k1", "k2"], owner=A, lease_expires_at=clock() + 60)
    assert results["done"].status is ClaimStatus.ALREADY_COMPLETED
    assert results["done"].bundle_key == "bundle-b"
    assert results["k1"].status is ClaimStatus.CLAIMED
    assert results["k2"].status is ClaimStatus.CLAIMED
    assert requests.single_writes() == ["k1", "k2"]


def test_keys_cancelled_twice_are_written_alone(client: DynamoDBClient, table: str) -> None:
    """Cancelled neighbours get one more transaction; if that is cancelled too (another
    claimer took one of them meanwhile), what is left is written alone."""
    clock = FakeClock(FUTURE_START)
    other = transact_store(table, ddb_client(client.meta.endpoint_url), clock)
    other.claim(["done"], owner=B, lease_expires_at=clock() + 60)
    other.complete(["done"], owner=B, bundle_key="bundle-b")
    store = transact_store(table, client, clock)

    def take_x_first(_body: dict[str, Any]) -> None:
        taken = other.claim(["x"], owner=B, lease_expires_at=clock() + 60)["x"]
        assert taken.status is ClaimStatus.CLAIMED

    answer_transactions(client, [lambda _body: None, take_x_first])
    requests = Requests(client)
    results = store.claim(["done", "x", "y"], owner=A, lease_expires_at=clock() + 60)
    assert {k: r.status for k, r in results.items()} == {
        "done": ClaimStatus.ALREADY_COMPLETED,
        "x": ClaimStatus.IN_PROGRESS_ELSEWHERE,
        "y": ClaimStatus.CLAIMED,
    }
    assert requests.calls() == [(TWI, ["done", "x", "y"]), (TWI, ["x", "y"]), ("PutItem", ["y"])]


def test_a_committed_transaction_whose_answer_was_lost_is_retried_safely(
    client: DynamoDBClient, table: str
) -> None:
    """The first attempt commits but answers 500; the retry (a new request, no reused
    token) finds every action refused by its own earlier write, and settles each key as
    the single-item path settles a repeated write: claimed, completed."""
    clock = FakeClock(FUTURE_START)
    side = ddb_client(client.meta.endpoint_url)

    def commit_then_fail(body: dict[str, Any]) -> Any:
        side.transact_write_items(TransactItems=body["TransactItems"])
        error = {"Code": "InternalServerError", "Message": "internal server error"}
        return SimpleNamespace(status_code=500), {"Error": error}

    sleeps: list[float] = []
    store = transact_store(table, client, clock, sleep=sleeps.append)
    batch = ["k1", "k2", "k3"]
    answer_transactions(client, [commit_then_fail])
    claimed = store.claim(batch, owner=A, lease_expires_at=clock() + 60)
    assert {r.status for r in claimed.values()} == {ClaimStatus.CLAIMED}
    assert all(r.previous_owner is None for r in claimed.values())
    answer_transactions(client, [commit_then_fail])
    requests = Requests(client)
    done = store.complete(batch, owner=A, bundle_key="bundle-a")
    assert {r.status for r in done.values()} == {UpdateStatus.OK}
    assert requests.calls() == [(TWI, batch), (TWI, batch)]  # the retry: all refused
    assert len(sleeps) == 2
    for key in batch:
        record = store.get(key)
        assert record is not None
        assert (record.status, record.owner, record.bundle_key) == (
            RecordStatus.COMPLETED,
            A,
            "bundle-a",
        )


def test_single_writes_retry_a_conflict_with_a_transaction_in_flight(
    client: DynamoDBClient, table: str
) -> None:
    """A single write that meets a transaction on its item (TransactionConflictException)
    was not applied: it backs off and retries."""
    conflicts = [1]

    def conflict(**_: Any) -> Any:
        if not conflicts:
            return None
        conflicts.pop()
        error = {"Code": "TransactionConflictException", "Message": "in a transaction"}
        return SimpleNamespace(status_code=400), {"Error": error}

    client.meta.events.register("before-call.dynamodb.PutItem", conflict)
    sleeps: list[float] = []
    store = DynamoDBIdempotencyStore(table, client=client, sleep=sleeps.append)
    assert store.claim(["k"], owner=A, lease_expires_at=2e9)["k"].status is ClaimStatus.CLAIMED
    assert len(sleeps) == 1


def test_chunks_are_even_and_within_the_count_and_size_limits(
    client: DynamoDBClient, table: str
) -> None:
    """130 keys in chunks of at most 50 go as 44 + 43 + 43; actions whose total would pass
    4 MB are split; every key is settled by a transaction, none alone."""
    clock = FakeClock(FUTURE_START)
    store = transact_store(table, client, clock, max_workers=8, transact_max_items=50)
    batch = [f"key-{i:03d}" for i in range(130)]
    requests = Requests(client)
    claimed = store.claim(batch, owner=A, lease_expires_at=clock() + 60)
    assert {r.status for r in claimed.values()} == {ClaimStatus.CLAIMED}
    assert sorted(len(keys) for keys in requests.transactions()) == [43, 43, 44]
    assert requests.single_writes() == []
    requests.clear()
    big = transact_store(table, client, clock)  # up to 100 per chunk
    bundle = "b" * 70_000  # 60 actions of ~70 KB: 4.2 MB, over the 4 MB limit
    done = big.complete(batch[:60], owner=A, bundle_key=bundle)
    assert all(r.ok for r in done.values())
    sizes = [size for op, _, size in requests.sent if op == TWI]
    assert len(sizes) == 2
    assert all(size <= 4_000_000 for size in sizes)
    assert requests.single_writes() == []


def test_chunks_run_concurrently(client: DynamoDBClient, table: str) -> None:
    """With 20 ms per request, the chunks of one bulk call are in flight together."""
    concurrency = Concurrency().attach(client, None, 0.02, service="dynamodb")
    store = transact_store(
        table, client, FakeClock(FUTURE_START), max_workers=8, transact_max_items=8
    )
    requests = Requests(client)
    results = store.claim([f"k{i}" for i in range(64)], owner=A, lease_expires_at=2e9)
    store.close()
    assert {r.status for r in results.values()} == {ClaimStatus.CLAIMED}
    assert len(requests.transactions()) == 8
    assert concurrency.peak >= 4


def test_keys_sharing_a_stored_item_never_meet_in_one_transaction(
    client: DynamoDBClient, table: str
) -> None:
    """A key over 2 KiB is stored as its SHA-256; a key spelled as that digest goes alone
    (a transaction may not touch one item twice) and finds the item its owner holds."""
    clock = FakeClock(FUTURE_START)
    long_key = "k" * 3000
    alias = "sha256:" + hashlib.sha256(long_key.encode()).hexdigest()
    store = transact_store(table, client, clock)
    requests = Requests(client)
    results = store.claim([long_key, alias, "other"], owner=A, lease_expires_at=clock() + 60)
    assert {r.status for r in results.values()} == {ClaimStatus.CLAIMED}
    assert requests.transactions() == [[alias, "other"]]
    assert requests.single_writes() == [alias]


@pytest.mark.parametrize(
    "settings",
    [{"batch_mode": "batched"}, {"transact_max_items": 0}, {"transact_max_items": 101}],
)
def test_invalid_batch_settings_are_refused(client: DynamoDBClient, settings: Any) -> None:
    """An unknown batch mode or a chunk size outside 1..100 is a configuration error."""
    with pytest.raises(IdempotencyConfigurationError):
        DynamoDBIdempotencyStore("t", client=client, **settings)
