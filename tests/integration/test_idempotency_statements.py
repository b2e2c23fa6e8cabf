"""The ``"statements"`` batch mode's own paths (PartiQL ``BatchExecuteStatement``), on
DynamoDB Local: moto's PartiQL cannot run them (no ``INSERT`` parameters, no conditions).

What DynamoDB Local does not do, the tests inject at the client (a ``before-call`` hook
answering in DynamoDB's documented shape): a statement throttled on its own, a batch that
was applied but whose answer was lost, a statement denied by IAM. The statements not
faulted still run on DynamoDB Local (through a second client), so every answer about an
item is DynamoDB Local's own: ``DuplicateItem``, ``ConditionalCheckFailed`` with the item.
Every test records which requests were sent, to show which path settled each key.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import time
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

import pytest

from data_aggregator import _deadline
from data_aggregator.exceptions import IdempotencyConfigurationError, IdempotencyStoreError
from data_aggregator.idempotency import (
    ClaimStatus,
    DynamoDBIdempotencyStore,
    RecordStatus,
    UpdateStatus,
)
from data_aggregator.testing import FakeClock
from tests.clock_support import FUTURE_START
from tests.integration._dynamodb_support import (
    PARTIQL_ON_REAL_SERVERS_ONLY,
    atomic_endpoint,  # noqa: F401 - fixture
    ddb_client,
    new_table,
    statement_key,
)

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

pytestmark = [pytest.mark.integration, PARTIQL_ON_REAL_SERVERS_ONLY]

A, B = "owner-a", "owner-b"
BES = "BatchExecuteStatement"
_WRITES = ("PutItem", "UpdateItem", BES)


class Requests:
    """Records every write request a client sends (each call of the store), in order."""

    def __init__(self, client: DynamoDBClient) -> None:
        self.sent: list[tuple[str, list[str]]] = []
        self._lock = threading.Lock()
        for operation in _WRITES:  # first: before any hook that answers instead
            client.meta.events.register_first(f"before-call.dynamodb.{operation}", self._record)

    def _record(self, model: Any, params: dict[str, Any], **_: Any) -> None:
        body = json.loads(params["body"])
        if model.name == BES:
            keys = [statement_key(statement) for statement in body["Statements"]]
        else:
            keys = [(body.get("Key") or body["Item"])["object_key"]["S"]]
        with self._lock:
            self.sent.append((model.name, keys))

    def batches(self) -> list[list[str]]:
        """The keys of each BatchExecuteStatement sent."""
        return [keys for op, keys in self.sent if op == BES]

    def single_writes(self) -> list[str]:
        """The keys written one by one (PutItem/UpdateItem), sorted."""
        return sorted(keys[0] for op, keys in self.sent if op != BES)

    def clear(self) -> None:
        """Forget what was recorded so far."""
        self.sent.clear()


class StatementFaults:
    """Answers the client's BatchExecuteStatement requests itself: a statement whose key
    has a fault left gets that error code (and is not run), the others run on DynamoDB
    Local through a second client, and the answers are merged in order."""

    def __init__(self, client: DynamoDBClient) -> None:
        self.side = ddb_client(client.meta.endpoint_url)
        self.faults: dict[str, list[str]] = {}
        self.after_answer: list[Any] = []
        self._lock = threading.Lock()
        client.meta.events.register(f"before-call.dynamodb.{BES}", self._answer)

    def _answer(self, params: dict[str, Any], **_: Any) -> Any:
        statements = json.loads(params["body"])["Statements"]
        with self._lock:
            codes = [self._take(statement_key(statement)) for statement in statements]
        run = [s for s, code in zip(statements, codes, strict=True) if code is None]
        answers = iter(
            self.side.batch_execute_statement(Statements=run)["Responses"] if run else []
        )
        merged = [
            next(answers) if code is None else {"Error": {"Code": code, "Message": code}}
            for code in codes
        ]
        for callback in self.after_answer:
            callback()
        return SimpleNamespace(status_code=200), {"Responses": merged}

    def _take(self, key: str) -> str | None:
        codes = self.faults.get(key)
        return codes.pop(0) if codes else None


@pytest.fixture
def client(atomic_endpoint: str) -> DynamoDBClient:  # noqa: F811 - fixture use
    """A DynamoDB client of its own (hooks registered on it stay in the test)."""
    return ddb_client(atomic_endpoint)


@pytest.fixture
def table(client: DynamoDBClient) -> str:
    """A fresh idempotency table."""
    return new_table(client)


def statements_store(
    table: str, client: DynamoDBClient, clock: FakeClock, **kwargs: Any
) -> DynamoDBIdempotencyStore:
    kwargs.setdefault("max_workers", 4)
    return DynamoDBIdempotencyStore(
        table, client=client, clock=clock, batch_mode="statements", **kwargs
    )


def test_fresh_keys_go_in_even_batches_of_at_most_25(client: DynamoDBClient, table: str) -> None:
    """64 fresh claims are 22 + 21 + 21 statements, all applied, none written alone, and
    each record is the one the single-item claim writes."""
    clock = FakeClock(FUTURE_START)
    store = statements_store(table, client, clock)
    batch = [f"key-{i:02d}" for i in range(64)]
    requests = Requests(client)
    claimed = store.claim(batch, owner=A, lease_expires_at=clock() + 60, bundle_key="b-1")
    assert {r.status for r in claimed.values()} == {ClaimStatus.CLAIMED}
    assert all(r.previous_owner is None for r in claimed.values())
    assert sorted(len(keys) for keys in requests.batches()) == [21, 21, 22]
    assert requests.single_writes() == []
    record = store.get("key-00")
    assert record is not None
    assert (record.status, record.owner, record.pending_bundle_keys) == (
        RecordStatus.IN_PROGRESS,
        A,
        frozenset({"b-1"}),
    )
    assert record.lease_expires_at == clock() + 60


def test_existing_records_take_the_single_item_claim(client: DynamoDBClient, table: str) -> None:
    """An INSERT over an existing item fails alone (DuplicateItem, no item returned): that
    key takes the single-item claim, which settles a completed record, a live lease and an
    expired one as always; the fresh key of the same batch is claimed by the batch."""
    clock = FakeClock(FUTURE_START)
    store = statements_store(table, client, clock)
    store.claim(["done", "live", "stale"], owner=B, lease_expires_at=clock() + 30)
    assert store.complete(["done"], owner=B, bundle_key="bundle-b")["done"].ok
    clock.advance(10)
    store.claim(["live"], owner=B, lease_expires_at=clock() + 60)
    clock.advance(25)  # "stale"'s lease is over, "live"'s is not
    requests = Requests(client)
    results = store.claim(["done", "live", "stale", "new"], owner=A, lease_expires_at=clock() + 60)
    assert {key: r.status for key, r in results.items()} == {
        "done": ClaimStatus.ALREADY_COMPLETED,
        "live": ClaimStatus.IN_PROGRESS_ELSEWHERE,
        "stale": ClaimStatus.CLAIMED,
        "new": ClaimStatus.CLAIMED,
    }
    assert results["stale"].previous_owner == B
    assert results["done"].bundle_key == "bundle-b"
    assert requests.batches() == [["done", "live", "stale", "new"]]
    assert requests.single_writes() == ["done", "live", "stale"]


def test_refused_updates_are_settled_from_the_returned_item(
    client: DynamoDBClient, table: str
) -> None:
    """A completion or release refused by the held-lease condition comes back with the
    item (ALL_OLD): settled without another request, LEASE_LOST with the current record,
    or OK for a completion already made into the same bundle."""
    clock = FakeClock(FUTURE_START)
    store = statements_store(table, client, clock)
    store.claim(["mine", "theirs"], owner=A, lease_expires_at=clock() + 60)
    store.claim(["other"], owner=B, lease_expires_at=clock() + 60)
    assert store.complete(["mine"], owner=A, bundle_key="bundle-a")["mine"].ok
    requests = Requests(client)
    done = store.complete(["mine", "other"], owner=A, bundle_key="bundle-a")
    assert done["mine"].status is UpdateStatus.OK
    assert done["other"].status is UpdateStatus.LEASE_LOST
    current = done["other"].current
    assert current is not None
    assert current.owner == B
    released = store.release(["mine", "other"], owner=A)
    assert {r.status for r in released.values()} == {UpdateStatus.LEASE_LOST}
    assert requests.batches() == [["mine", "other"], ["mine", "other"]]
    assert requests.single_writes() == []


def test_a_refusal_without_an_item_takes_the_single_item_write(
    client: DynamoDBClient, table: str
) -> None:
    """No record: the UPDATE's condition fails without an item, and the single-item
    write, whose answer is exact, settles the key (LEASE_LOST, nothing current)."""
    store = statements_store(table, client, FakeClock(FUTURE_START))
    requests = Requests(client)
    result = store.complete(["ghost"], owner=A, bundle_key="bundle-a")["ghost"]
    assert result.status is UpdateStatus.LEASE_LOST
    assert result.current is None
    assert requests.batches() == [["ghost"]]
    assert requests.single_writes() == ["ghost"]
    assert store.get("ghost") is None


def test_a_throttled_statement_is_sent_again_alone_after_a_backoff(
    client: DynamoDBClient, table: str
) -> None:
    """Each statement is throttled on its own: the batch's other keys are settled, the
    throttled ones go in the next batch after a jittered backoff; one throttled past the
    retries fails IDEMPOTENCY_THROTTLED, retryable."""
    faults = StatementFaults(client)
    faults.faults = {
        "slow": ["ProvisionedThroughputExceeded"] * 2,
        "hopeless": ["ThrottlingError"] * 9,
    }
    sleeps: list[float] = []
    store = statements_store(
        table,
        client,
        FakeClock(FUTURE_START),
        sleep=sleeps.append,
        max_retries=3,
        backoff_base_seconds=0.1,
    )
    requests = Requests(client)
    results = store.claim(["slow", "hopeless", "fine"], owner=A, lease_expires_at=2e9)
    assert results["slow"].status is ClaimStatus.CLAIMED
    assert results["fine"].status is ClaimStatus.CLAIMED
    hopeless = results["hopeless"]
    assert hopeless.status is ClaimStatus.ERROR
    assert isinstance(hopeless.error, IdempotencyStoreError)
    assert hopeless.error.error_code == "IDEMPOTENCY_THROTTLED"
    assert hopeless.error.retryable
    assert requests.batches() == [
        ["slow", "hopeless", "fine"],
        ["slow", "hopeless"],
        ["slow", "hopeless"],
        ["hopeless"],
    ]
    assert requests.single_writes() == []
    assert len(sleeps) == 3
    assert all(0 <= s <= 0.4 for s in sleeps)


def test_no_backoff_past_the_deadline(client: DynamoDBClient, table: str) -> None:
    """A throttled statement whose backoff would end past the deadline is not sent again:
    its key fails DEADLINE_EXCEEDED (retryable), its neighbours are settled, nobody sleeps."""
    faults = StatementFaults(client)
    faults.faults = {"slow": ["ProvisionedThroughputExceeded"]}
    answered = threading.Event()
    faults.after_answer.append(answered.set)
    sleeps: list[float] = []
    store = statements_store(table, client, FakeClock(FUTURE_START), sleep=sleeps.append)
    deadline = _deadline.Deadline(lambda: 0.0 if answered.is_set() else 60.0)
    with _deadline.scope(deadline):
        results = store.claim(["slow", "fine"], owner=A, lease_expires_at=2e9)
    assert results["fine"].status is ClaimStatus.CLAIMED
    error = results["slow"].error
    assert isinstance(error, IdempotencyStoreError)
    assert error.error_code == "DEADLINE_EXCEEDED"
    assert error.retryable
    assert error.context["last_error"] == "ProvisionedThroughputExceeded"
    assert sleeps == []


def test_a_batch_applied_but_whose_answer_was_lost_is_retried_safely(
    client: DynamoDBClient, table: str
) -> None:
    """The batch runs but answers 500; the store's retry finds each claim's item (our
    own lease: the single-item claim takes it again) and each completion already made
    into the same bundle (OK, from the returned item)."""
    clock = FakeClock(FUTURE_START)
    side = ddb_client(client.meta.endpoint_url)
    lose = [True]

    def apply_then_fail(params: dict[str, Any], **_: Any) -> Any:
        if not lose:
            return None
        lose.pop()
        side.batch_execute_statement(Statements=json.loads(params["body"])["Statements"])
        error = {"Code": "InternalServerError", "Message": "internal server error"}
        return SimpleNamespace(status_code=500), {"Error": error}

    client.meta.events.register(f"before-call.dynamodb.{BES}", apply_then_fail)
    sleeps: list[float] = []
    store = statements_store(table, client, clock, sleep=sleeps.append)
    batch = ["k1", "k2", "k3"]
    requests = Requests(client)
    claimed = store.claim(batch, owner=A, lease_expires_at=clock() + 60, bundle_key="bundle-a")
    assert {r.status for r in claimed.values()} == {ClaimStatus.CLAIMED}
    assert all(r.previous_owner is None for r in claimed.values())
    # Each key alone: the PutItem fast path (refused: our announcement is there), then the
    # UpdateItem that keeps the announcements.
    assert requests.single_writes() == sorted(batch * 2)
    lose.append(True)
    requests.clear()
    done = store.complete(batch, owner=A, bundle_key="bundle-a")
    assert {r.status for r in done.values()} == {UpdateStatus.OK}
    assert requests.batches() == [batch, batch]
    assert requests.single_writes() == []
    assert len(sleeps) == 2
    for key in batch:
        record = store.get(key)
        assert record is not None
        assert (record.status, record.owner, record.bundle_key, record.pending_bundle_keys) == (
            RecordStatus.COMPLETED,
            A,
            "bundle-a",
            frozenset(),
        )


def _refusals(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    """The warnings the store logged about a PartiQL refusal."""
    return [
        r
        for r in caplog.records
        if r.name == "data_aggregator.idempotency" and r.levelno == logging.WARNING
    ]


class Transactions:
    """Counts the client's TransactWriteItems requests (the hybrid path's completions)."""

    def __init__(self, client: DynamoDBClient) -> None:
        self.sent = 0
        client.meta.events.register_first("before-call.dynamodb.TransactWriteItems", self._count)

    def _count(self, **_: Any) -> None:
        self.sent += 1


def refuse_requests(client: DynamoDBClient, code: str, message: str = "") -> list[bool]:
    """Answer the client's BatchExecuteStatement requests ``400 <code>`` (nothing runs)
    while the returned list is not empty."""
    active = [True]

    def refuse(**_: Any) -> Any:
        if not active:
            return None
        error = {"Code": code, "Message": message or code}
        return SimpleNamespace(status_code=400), {"Error": error}

    client.meta.events.register(f"before-call.dynamodb.{BES}", refuse)
    return active


def test_a_statement_denied_by_iam_switches_the_store_to_hybrid(
    client: DynamoDBClient, table: str, caplog: pytest.LogCaptureFixture
) -> None:
    """A role with PutItem but without dynamodb:PartiQLInsert: the denied statement's key
    is claimed the hybrid way (a PutItem) in the same call, its neighbour by the batch; the
    store writes hybrid from then on (completions in a transaction, no PartiQL) and says so
    in one warning naming the actions."""
    caplog.set_level(logging.WARNING, logger="data_aggregator")
    faults = StatementFaults(client)
    faults.faults = {"k": ["AccessDenied"]}
    clock = FakeClock(FUTURE_START)
    store = statements_store(table, client, clock)
    requests = Requests(client)
    transactions = Transactions(client)
    claimed = store.claim(["k", "j"], owner=A, lease_expires_at=clock() + 60, bundle_key="b")
    assert {key: r.status for key, r in claimed.items()} == {
        "k": ClaimStatus.CLAIMED,
        "j": ClaimStatus.CLAIMED,
    }
    assert requests.batches() == [["k", "j"]]
    assert requests.single_writes() == ["k"]
    assert store.batch_mode == "hybrid"
    done = store.complete(["k", "j"], owner=A, bundle_key="b")
    assert {r.status for r in done.values()} == {UpdateStatus.OK}
    assert requests.batches() == [["k", "j"]]
    assert transactions.sent == 1
    for key in ("k", "j"):
        record = store.get(key)
        assert record is not None
        assert (record.status, record.bundle_key) == (RecordStatus.COMPLETED, "b")
    (warning,) = _refusals(caplog)
    assert "dynamodb:PartiQLInsert and dynamodb:PartiQLUpdate" in warning.getMessage()
    assert warning.__dict__["denied_action"] == "dynamodb:PartiQLInsert"
    assert warning.__dict__["table_name"] == table


def test_a_request_denied_by_iam_is_written_the_hybrid_way_in_the_same_call(
    client: DynamoDBClient, table: str, caplog: pytest.LogCaptureFixture
) -> None:
    """The whole BatchExecuteStatement refused (AccessDeniedException: the role lacks
    dynamodb:PartiQLUpdate): nothing of it ran, and every completion of the call is made
    by a transaction instead; no key fails, one warning names the denied action and
    carries DynamoDB's message (which names the action actually denied)."""
    caplog.set_level(logging.WARNING, logger="data_aggregator")
    clock = FakeClock(FUTURE_START)
    store = statements_store(table, client, clock)
    batch = [f"key-{i:02d}" for i in range(30)]
    claimed = store.claim(batch, owner=A, lease_expires_at=clock() + 60, bundle_key="b")
    assert {r.status for r in claimed.values()} == {ClaimStatus.CLAIMED}
    message = "User: arn:aws:sts::1:assumed-role/r is not authorized to perform: x:Y"
    refuse_requests(client, "AccessDeniedException", message)
    requests = Requests(client)
    transactions = Transactions(client)
    done = store.complete(batch, owner=A, bundle_key="b")
    assert {r.status for r in done.values()} == {UpdateStatus.OK}
    # Two batches of 15, sent concurrently: the second is skipped if the first was
    # refused before it was sent.
    assert [len(keys) for keys in requests.batches()] in ([15], [15, 15])
    assert requests.single_writes() == []
    assert transactions.sent == 1
    assert store.batch_mode == "hybrid"
    (warning,) = _refusals(caplog)
    assert warning.__dict__["denied_action"] == "dynamodb:PartiQLUpdate"
    assert warning.__dict__["aws_error_message"] == message
    assert message in warning.getMessage()
    for key in batch:
        record = store.get(key)
        assert record is not None
        assert (record.status, record.bundle_key) == (RecordStatus.COMPLETED, "b")


def test_concurrent_refusals_switch_the_store_once(
    client: DynamoDBClient, table: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Four threads of one store meet the refusal at the same time: each writes its own
    keys the hybrid way, every key is claimed, and the store warns once."""
    caplog.set_level(logging.WARNING, logger="data_aggregator")
    threads = 4
    arrived = threading.Barrier(threads, timeout=30)

    def refuse_together(**_: Any) -> Any:
        arrived.wait()  # every thread has sent its statements before any is answered
        error = {"Code": "AccessDeniedException", "Message": "not authorized"}
        return SimpleNamespace(status_code=400), {"Error": error}

    client.meta.events.register(f"before-call.dynamodb.{BES}", refuse_together)
    clock = FakeClock(FUTURE_START)
    store = statements_store(table, client, clock, max_workers=threads)
    results: dict[str, ClaimStatus] = {}
    lock = threading.Lock()

    def claim(worker: int) -> None:
        keys = [f"w{worker}-{i}" for i in range(5)]
        claimed = store.claim(keys, owner=A, lease_expires_at=clock() + 60)
        with lock:
            results.update({key: r.status for key, r in claimed.items()})

    workers = [threading.Thread(target=claim, args=(n,)) for n in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=60)
    assert len(results) == threads * 5
    assert set(results.values()) == {ClaimStatus.CLAIMED}
    assert store.batch_mode == "hybrid"
    assert len(_refusals(caplog)) == 1


def test_a_refused_first_call_stops_sending_statements(client: DynamoDBClient, table: str) -> None:
    """Once a request is refused, the call's batches not sent yet are not sent: 100
    claims one at a time (``max_workers=1``) cost one refused request, not four; sent
    concurrently, at most one per batch of 25."""
    refuse_requests(client, "AccessDeniedException")
    requests = Requests(client)
    clock = FakeClock(FUTURE_START)
    for workers, most in ((1, 1), (4, 4)):
        store = statements_store(table, client, clock, max_workers=workers)
        keys = [f"n{workers}-{i:03d}" for i in range(100)]
        out = store.claim(keys, owner=A, lease_expires_at=clock() + 60)
        assert {r.status for r in out.values()} == {ClaimStatus.CLAIMED}
        assert 1 <= len(requests.batches()) <= most, [len(b) for b in requests.batches()]
        assert store.batch_mode == "hybrid"
        requests.clear()


def test_a_call_in_flight_sends_no_statement_after_the_switch(
    client: DynamoDBClient, table: str
) -> None:
    """A call whose first round was throttled: during its backoff another call is refused
    PartiQL and switches the store; the first call's next round is written the hybrid
    way, with no other BatchExecuteStatement."""
    faults = StatementFaults(client)
    faults.faults = {"slow": ["ThrottlingError"]}
    clock = FakeClock(FUTURE_START)
    requests = Requests(client)
    switched_at: list[int] = []

    def sleep(_: float) -> None:
        faults.faults["other"] = ["AccessDenied"]
        other = store.claim(["other"], owner=A, lease_expires_at=clock() + 60)
        assert other["other"].status is ClaimStatus.CLAIMED
        assert store.batch_mode == "hybrid"
        switched_at.append(len(requests.sent))

    store = statements_store(table, client, clock, sleep=sleep)
    out = store.claim(["slow", "fine"], owner=A, lease_expires_at=clock() + 60)
    assert {r.status for r in out.values()} == {ClaimStatus.CLAIMED}
    (index,) = switched_at
    assert requests.sent[index:] == [("PutItem", ["slow"])]


def raise_after_applied(client: DynamoDBClient, times: int = 1) -> None:
    """The next ``times`` BatchExecuteStatement calls reach DynamoDB (and are applied),
    then raise RuntimeError in ``after-call`` (as a tracing wrapper's bug would)."""
    left = [times]

    def boom(**_: Any) -> None:
        if left[0] > 0:
            left[0] -= 1
            raise RuntimeError("tracer failed to record the response")

    client.meta.events.register(f"after-call.dynamodb.{BES}", boom)


@pytest.mark.parametrize("step", ["claim", "mark_pending", "complete", "release"])
def test_an_exception_on_the_first_request_falls_back_harmlessly(
    client: DynamoDBClient, table: str, caplog: pytest.LogCaptureFixture, step: str
) -> None:
    """A store whose very first BatchExecuteStatement raises something that is no answer
    (as moto's mock does) takes the endpoint for one that cannot run PartiQL: it writes
    the keys the hybrid way and says so, with the exception. Were the batch applied after
    all (here it was), each rewrite meets its own write and succeeds."""
    caplog.set_level(logging.WARNING, logger="data_aggregator")
    clock = FakeClock(FUTURE_START)
    lease = clock() + 60
    keys = [f"k{i:02d}" for i in range(30)]
    if step != "claim":  # claimed by another store of the same process
        claimed = statements_store(table, client, clock).claim(
            keys, owner=A, lease_expires_at=lease, bundle_key="b"
        )
        assert {r.status for r in claimed.values()} == {ClaimStatus.CLAIMED}
    store = statements_store(table, client, clock)
    raise_after_applied(client, times=10)
    if step == "claim":
        out: dict[str, Any] = store.claim(keys, owner=A, lease_expires_at=lease, bundle_key="b")
        assert {r.status for r in out.values()} == {ClaimStatus.CLAIMED}
        assert {r.previous_owner for r in out.values()} == {None}
        expected: tuple[Any, ...] = (RecordStatus.IN_PROGRESS, A, frozenset({"b"}))
    elif step == "mark_pending":
        out = store.mark_pending(keys, owner=A, bundle_key="c")
        assert {r.status for r in out.values()} == {UpdateStatus.OK}
        expected = (RecordStatus.IN_PROGRESS, A, frozenset({"b", "c"}))
    elif step == "complete":
        out = store.complete(keys, owner=A, bundle_key="b")
        assert {r.status for r in out.values()} == {UpdateStatus.OK}
        expected = (RecordStatus.COMPLETED, A, frozenset())
    else:
        out = store.release(keys, owner=A, bundle_key="b")
        assert {r.status for r in out.values()} == {UpdateStatus.OK}
        expected = (RecordStatus.IN_PROGRESS, None, frozenset())
    assert store.batch_mode == "hybrid"
    for key in keys:
        record = store.get(key)
        assert record is not None
        assert (record.status, record.owner, record.pending_bundle_keys) == expected
    (warning,) = _refusals(caplog)
    assert "could not run a PartiQL BatchExecuteStatement" in warning.getMessage()
    assert "RuntimeError" in warning.getMessage()
    assert warning.__dict__["exception_type"] == "RuntimeError"
    assert warning.exc_info is not None
    assert isinstance(warning.exc_info[1], RuntimeError)
    assert "denied_action" not in warning.__dict__


def test_an_exception_after_statements_worked_propagates(
    client: DynamoDBClient, table: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Once the endpoint has answered a BatchExecuteStatement, an exception that is no
    answer is not taken for a missing PartiQL: it propagates, as any write's does in
    hybrid mode, and the store keeps its mode, without a warning."""
    caplog.set_level(logging.WARNING, logger="data_aggregator")
    clock = FakeClock(FUTURE_START)
    store = statements_store(table, client, clock)
    first = store.claim(["a", "b"], owner=A, lease_expires_at=clock() + 60)
    assert {r.status for r in first.values()} == {ClaimStatus.CLAIMED}
    raise_after_applied(client)
    with pytest.raises(RuntimeError, match="tracer failed"):
        store.claim(["c", "d"], owner=A, lease_expires_at=clock() + 60)
    assert store.batch_mode == "statements"
    assert _refusals(caplog) == []


def test_a_deadline_hook_refusal_is_not_unsupported(client: DynamoDBClient, table: str) -> None:
    """The client's deadline hook refuses the request (DeadlineExceededError, the
    library's own): the keys fail DEADLINE_EXCEEDED and the store keeps its mode."""
    called = threading.Event()
    client.meta.events.register_first(f"before-call.dynamodb.{BES}", lambda **_: called.set())
    clock = FakeClock(FUTURE_START)
    store = statements_store(table, client, clock, max_workers=1)  # no pool: no late=
    deadline = _deadline.Deadline(lambda: 0.0 if called.is_set() else 60.0)
    with _deadline.scope(deadline):
        out = store.claim(["x", "y"], owner=A, lease_expires_at=clock() + 60)
    assert {r.status for r in out.values()} == {ClaimStatus.ERROR}
    assert {r.error.error_code for r in out.values() if r.error is not None} == {
        "DEADLINE_EXCEEDED"
    }
    assert store.batch_mode == "statements"
    assert store.get("x") is None


@pytest.mark.parametrize("per_statement", [True, False], ids=["statement", "request"])
def test_a_missing_table_stays_a_configuration_error(
    client: DynamoDBClient, table: str, caplog: pytest.LogCaptureFixture, per_statement: bool
) -> None:
    """ResourceNotFound (per statement) or ResourceNotFoundException (the request) is the
    configuration error it always was: no fallback, no warning."""
    caplog.set_level(logging.WARNING, logger="data_aggregator")
    if per_statement:
        StatementFaults(client).faults = {"k": ["ResourceNotFound"]}
    else:
        refuse_requests(client, "ResourceNotFoundException")
    store = statements_store(table, client, FakeClock(FUTURE_START))
    with pytest.raises(IdempotencyConfigurationError) as caught:
        store.claim(["k", "j"], owner=A, lease_expires_at=time.time() + 60)
    assert caught.value.error_code == "IDEMPOTENCY_TABLE_NOT_FOUND"
    assert store.batch_mode == "statements"
    assert _refusals(caplog) == []


def test_keys_sharing_a_stored_item_never_meet_in_one_batch(
    client: DynamoDBClient, table: str
) -> None:
    """A key over 2 KiB is stored as its SHA-256; a key spelled as that digest goes alone
    (a batch may not touch one item twice) and finds the item its owner holds."""
    clock = FakeClock(FUTURE_START)
    long_key = "k" * 3000
    alias = "sha256:" + hashlib.sha256(long_key.encode()).hexdigest()
    store = statements_store(table, client, clock)
    requests = Requests(client)
    results = store.claim([long_key, alias, "other"], owner=A, lease_expires_at=clock() + 60)
    assert {r.status for r in results.values()} == {ClaimStatus.CLAIMED}
    assert requests.batches() == [[alias, "other"]]
    assert requests.single_writes() == [alias]


def test_release_withdraws_only_its_announcement_and_drops_an_empty_set(
    client: DynamoDBClient, table: str
) -> None:
    """``set_delete`` of the last announcement removes the attribute (as UpdateItem's
    DELETE does), so the released record is claimed again by a fresh-key-like write; an
    announcement of another bundle survives."""
    clock = FakeClock(FUTURE_START)
    store = statements_store(table, client, clock)
    store.claim(["one", "two"], owner=A, lease_expires_at=clock() + 60, bundle_key="b-1")
    assert store.mark_pending(["two"], owner=A, bundle_key="b-2")["two"].ok
    assert all(r.ok for r in store.release(["one", "two"], owner=A, bundle_key="b-1").values())
    raw = {
        key: client.get_item(TableName=table, Key={"object_key": {"S": key}})["Item"]
        for key in ("one", "two")
    }
    assert "pending_bundles" not in raw["one"]
    assert raw["two"]["pending_bundles"] == {"SS": ["b-2"]}
    assert "owner" not in raw["one"]
    assert raw["one"]["lease_expires_at"] == {"N": "0"}
