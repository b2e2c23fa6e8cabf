"""InMemoryIdempotencyStore and the IdempotencyStore base: threads, errors, recovery, API."""

from __future__ import annotations

import dataclasses
import logging
import math
import subprocess
import sys
import threading
import time
from decimal import Decimal
from fractions import Fraction
from typing import TYPE_CHECKING, Any

import pytest

from data_aggregator import _deadline, idempotency
from data_aggregator.context import LocalContext
from data_aggregator.exceptions import (
    IdempotencyConfigurationError,
    IdempotencyError,
    IdempotencyStoreError,
    LeaseLostError,
)
from data_aggregator.idempotency import (
    BundleLocator,
    ClaimResult,
    ClaimStatus,
    IdempotencyRecord,
    InMemoryBundleLocator,
    InMemoryIdempotencyStore,
    RecordStatus,
    UpdateResult,
    UpdateStatus,
    WriteOutcome,
    lease_expiry,
    lease_expiry_from_context,
)
from data_aggregator.testing import FakeClock

if TYPE_CHECKING:
    from collections.abc import Set as AbstractSet

A, B = "owner-a", "owner-b"


class FaultyStore(InMemoryIdempotencyStore):
    """Fails chosen keys in chosen ways, and can add latency to every primitive."""

    def __init__(self, *, failures: dict[str, Exception] | None = None, **kwargs: Any) -> None:
        self.latency = kwargs.pop("latency", 0.0)
        super().__init__(**kwargs)
        self.failures = failures or {}
        self.calls = 0

    def _maybe_fail(self, key: str) -> None:
        self.calls += 1
        if self.latency:
            time.sleep(self.latency)
        if key in self.failures:
            raise self.failures[key]

    def _claim_record(self, key: str, **kwargs: Any) -> WriteOutcome:
        self._maybe_fail(key)
        return super()._claim_record(key, **kwargs)

    def _complete_record(self, key: str, **kwargs: Any) -> WriteOutcome:
        self._maybe_fail("complete:" + key)
        return super()._complete_record(key, **kwargs)


def test_threads_never_both_win_a_key() -> None:
    """Eight threads claiming the same keys through one store win each key exactly once."""
    store = InMemoryIdempotencyStore()
    keys = [f"k{i}" for i in range(300)]
    barrier = threading.Barrier(8)
    wins: list[list[str]] = [[] for _ in range(8)]

    def worker(index: int) -> None:
        barrier.wait()
        for start in range(0, len(keys), 7):  # many small claims interleave better
            results = store.claim(
                keys[start : start + 7], owner=f"w{index}", lease_expires_at=time.time() + 60
            )
            wins[index].extend(k for k, r in results.items() if r.status is ClaimStatus.CLAIMED)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    flat = [key for won in wins for key in won]
    assert sorted(flat) == sorted(keys)


def test_bulk_calls_run_primitives_concurrently() -> None:
    """With max_workers, a bulk claim runs its primitives at once, not one after another."""
    barrier = threading.Barrier(8, timeout=30)

    class MeetingStore(InMemoryIdempotencyStore):
        """Each claim waits until eight claims are in flight together; serial ones never meet."""

        def _claim_record(self, key: str, **kwargs: Any) -> WriteOutcome:
            barrier.wait()
            return super()._claim_record(key, **kwargs)

    store = MeetingStore(max_workers=8)
    results = store.claim([f"k{i}" for i in range(8)], owner=A, lease_expires_at=time.time() + 60)
    store.close()
    assert all(r.status is ClaimStatus.CLAIMED for r in results.values())
    assert not barrier.broken


def test_store_error_fails_only_its_key() -> None:
    """A transient store failure is that key's retryable ERROR; the others proceed."""
    boom = IdempotencyStoreError("unreachable")
    store = FaultyStore(failures={"bad": boom}, max_workers=4)
    results = store.claim(["ok1", "bad", "ok2"], owner=A, lease_expires_at=time.time() + 9)
    assert results["bad"].status is ClaimStatus.ERROR
    assert results["bad"].error is boom
    assert results["ok1"].status is results["ok2"].status is ClaimStatus.CLAIMED


def test_permanent_per_key_error_is_reported_not_raised() -> None:
    """A non-retryable IdempotencyError is a per-key ERROR carrying retryable=False."""
    store = FaultyStore(failures={"bad": IdempotencyError("too big")})
    result = store.claim(["bad"], owner=A, lease_expires_at=time.time() + 9)["bad"]
    assert result.status is ClaimStatus.ERROR
    assert result.error is not None
    assert not result.error.retryable


def test_configuration_error_fails_the_whole_call() -> None:
    """A misconfiguration is raised once for the call, threaded or not."""
    error = IdempotencyConfigurationError("no table")
    for workers in (1, 4):
        store = FaultyStore(failures={"k3": error}, max_workers=workers)
        with pytest.raises(IdempotencyConfigurationError):
            store.claim([f"k{i}" for i in range(8)], owner=A, lease_expires_at=time.time() + 9)
        store.close()


def test_unexpected_exceptions_are_not_swallowed() -> None:
    """A bug (not an IdempotencyError) propagates instead of becoming a silent ERROR."""
    store = FaultyStore(failures={"k": KeyError("bug")}, max_workers=2)
    with pytest.raises(KeyError):
        store.claim(["k", "j"], owner=A, lease_expires_at=time.time() + 9)


class RaisingLocator:
    """A locator whose storage is down."""

    def bundled_keys(self, bundle_key: str) -> AbstractSet[str] | None:
        raise OSError(bundle_key)


def _pending_then_expired(store: InMemoryIdempotencyStore, clock: FakeClock) -> None:
    store.claim(["k"], owner=A, lease_expires_at=clock() + 10)
    store.mark_pending(["k"], owner=A, bundle_key="bundle-a")
    clock.advance(10)


def test_locator_exception_is_a_retryable_error_with_its_cause() -> None:
    """A locator that raises fails that record's claim only, retryably, cause attached."""
    clock = FakeClock()
    store = InMemoryIdempotencyStore(clock=clock, bundle_locator=RaisingLocator())
    _pending_then_expired(store, clock)
    results = store.claim(["k", "fresh"], owner=B, lease_expires_at=clock() + 10)
    assert results["fresh"].status is ClaimStatus.CLAIMED
    error = results["k"].error
    assert results["k"].status is ClaimStatus.ERROR
    assert isinstance(error, IdempotencyStoreError)
    assert isinstance(error.__cause__, OSError)
    record = store.get("k")
    assert record is not None
    assert record.owner is None  # released again so that the next claim checks again


def test_failed_recovery_completion_is_an_error() -> None:
    """If completing a recovered record fails, the claim is an ERROR, not a RECOVERED."""
    clock = FakeClock()
    locator = InMemoryBundleLocator({"bundle-a": ["k"]})
    store = FaultyStore(
        clock=clock,
        bundle_locator=locator,
        failures={"complete:k": IdempotencyStoreError("throttled")},
    )
    _pending_then_expired(store, clock)
    result = store.claim(["k"], owner=B, lease_expires_at=clock() + 10)["k"]
    assert result.status is ClaimStatus.ERROR
    assert result.pending_bundle_keys == ("bundle-a",)
    store.failures.clear()
    assert store.claim(["k"], owner=B, lease_expires_at=clock() + 10)["k"].status is (
        ClaimStatus.RECOVERED
    )


def test_one_locator_call_per_pending_bundle() -> None:
    """Many records pending in one bundle cost a single locator lookup."""
    clock = FakeClock()
    lookups: list[str] = []

    class Counting(InMemoryBundleLocator):
        def bundled_keys(self, bundle_key: str) -> frozenset[str] | None:
            lookups.append(bundle_key)
            return super().bundled_keys(bundle_key)

    store = InMemoryIdempotencyStore(clock=clock, bundle_locator=Counting({"b": ["k0", "k1"]}))
    keys = [f"k{i}" for i in range(5)]
    store.claim(keys, owner=A, lease_expires_at=clock() + 10)
    store.mark_pending(keys, owner=A, bundle_key="b")
    clock.advance(10)
    results = store.claim(keys, owner=B, lease_expires_at=clock() + 10)
    assert lookups == ["b"]
    assert [r.status for r in results.values()] == [ClaimStatus.RECOVERED] * 2 + [
        ClaimStatus.CLAIMED
    ] * 3


def test_pending_bundles_are_located_side_by_side() -> None:
    """Three announced bundles are asked at once (up to ``max_workers``), not one after
    another: each lookup here waits until all three have started."""
    clock = FakeClock()
    started = threading.Barrier(3, timeout=5)

    class Waiting(InMemoryBundleLocator):
        def bundled_keys(self, bundle_key: str) -> frozenset[str] | None:
            started.wait()  # one after another: BrokenBarrierError, the claims fail
            return super().bundled_keys(bundle_key)

    store = InMemoryIdempotencyStore(
        clock=clock, bundle_locator=Waiting({"b1": ["k1"]}), max_workers=4
    )
    for number in (1, 2, 3):
        store.claim([f"k{number}"], owner=A, lease_expires_at=clock() + 10, bundle_key=f"b{number}")
    clock.advance(10)
    results = store.claim(["k1", "k2", "k3"], owner=B, lease_expires_at=clock() + 10)
    assert [r.status for r in results.values()] == [
        ClaimStatus.RECOVERED,
        ClaimStatus.CLAIMED,
        ClaimStatus.CLAIMED,
    ]


def test_a_lookup_unanswered_at_the_deadline_fails_its_records() -> None:
    """A bundle lookup still running at the invocation's deadline is not awaited: its
    records are retryable ``DEADLINE_EXCEEDED`` errors, and their new leases, which no
    write may release past the deadline, end by themselves."""
    clock = FakeClock()
    answer = threading.Event()

    class Hanging(InMemoryBundleLocator):
        def bundled_keys(self, bundle_key: str) -> frozenset[str] | None:
            answer.wait(10)  # a read that does not answer before the deadline
            return super().bundled_keys(bundle_key)

    store = InMemoryIdempotencyStore(clock=clock, bundle_locator=Hanging({}), max_workers=4)
    for number in (1, 2):
        store.claim([f"k{number}"], owner=A, lease_expires_at=clock() + 10, bundle_key=f"b{number}")
    clock.advance(10)
    try:
        with _deadline.scope(_deadline.Deadline.after(0.2)):
            results = store.claim(["k1", "k2"], owner=B, lease_expires_at=clock() + 10)
    finally:
        answer.set()
    for key, result in results.items():
        assert result.status is ClaimStatus.ERROR
        assert result.error is not None
        assert result.error.error_code == "DEADLINE_EXCEEDED"
        record = store.get(key)
        assert record is not None
        assert (record.owner, record.lease_expires_at) == (B, clock() + 10)
        assert record.pending_bundle_keys == {key.replace("k", "b")}  # checked next time


def test_lease_lost_result_carries_a_typed_error() -> None:
    """LEASE_LOST results hold a LeaseLostError naming the current owner."""
    store = InMemoryIdempotencyStore()
    store.claim(["k"], owner=A, lease_expires_at=time.time() + 60)
    result = store.release(["k"], owner=B)["k"]
    assert isinstance(result.error, LeaseLostError)
    assert result.error.to_dict()["context"]["current_owner"] == A
    assert result.error.error_code == "IDEMPOTENCY_LEASE_LOST"


def test_errors_are_logged_with_structured_extra(caplog: pytest.LogCaptureFixture) -> None:
    """Per-key failures produce one warning with the operation and a count in `extra`."""
    store = FaultyStore(failures={"bad": IdempotencyStoreError("x")})
    with caplog.at_level(logging.WARNING, logger="data_aggregator.idempotency"):
        store.claim(["bad", "good"], owner=A, lease_expires_at=time.time() + 9)
    [record] = caplog.records
    assert record.operation == "claim"  # type: ignore[attr-defined]
    assert record.failed_records == 1  # type: ignore[attr-defined]


def test_get_hides_records_past_their_ttl() -> None:
    """A record past its TTL reads as absent, though still held until overwritten."""
    clock = FakeClock()
    store = InMemoryIdempotencyStore(clock=clock, ttl_seconds=100)
    store.claim(["k"], owner=A, lease_expires_at=clock() + 10)
    store.complete(["k"], owner=A, bundle_key="b")
    clock.advance(100)
    assert store.get("k") is None
    assert "k" in store.records()


def test_store_is_reusable_after_close_and_as_context_manager() -> None:
    """close() only stops the worker threads; the store restarts them on demand."""
    with InMemoryIdempotencyStore(max_workers=4) as store:
        store.claim(["a", "b"], owner=A, lease_expires_at=time.time() + 9)
    assert store.complete(["a", "b"], owner=A, bundle_key="x")["a"].ok


@pytest.mark.parametrize("ttl", [0, -5])
def test_non_positive_ttl_is_rejected(ttl: int) -> None:
    """A TTL of zero or less would forget records at once: refused."""
    with pytest.raises(IdempotencyError):
        InMemoryIdempotencyStore(ttl_seconds=ttl)


@pytest.mark.parametrize("ttl", [0, -5, 0.5, math.inf, math.nan, "60", True])
def test_non_positive_ttl_override_on_complete_is_rejected(ttl: object) -> None:
    """``complete(ttl_seconds=...)`` is checked like the store's TTL: a record completed
    with a TTL under one second would be claimable, and bundled, again at once."""
    store = InMemoryIdempotencyStore()
    store.claim(["k"], owner=A, lease_expires_at=time.time() + 60)
    with pytest.raises(IdempotencyError) as raised:
        store.complete(["k"], owner=A, bundle_key="b", ttl_seconds=ttl)  # type: ignore[arg-type]
    assert raised.value.error_code == "IDEMPOTENCY_INVALID_ARGUMENT"
    record = store.get("k")
    assert record is not None
    assert record.status is RecordStatus.IN_PROGRESS


@pytest.mark.parametrize(
    "lease",
    [math.inf, -math.inf, math.nan, "soon", "9999999999", b"1", None, True, Fraction(10**400)],
)
def test_a_lease_that_is_not_a_finite_number_is_an_argument_error(lease: object) -> None:
    """``inf``, ``NaN`` and non-numbers cannot be stored as a lease: a typed argument
    error, before anything is written."""
    store = InMemoryIdempotencyStore()
    with pytest.raises(IdempotencyError) as raised:
        store.claim(["k"], owner=A, lease_expires_at=lease)  # type: ignore[arg-type]
    assert raised.value.error_code == "IDEMPOTENCY_INVALID_ARGUMENT"
    assert store.get("k") is None


def test_a_decimal_lease_is_taken_as_its_float() -> None:
    """Numbers that are not float (``Decimal``, as DynamoDB's resource API returns them)
    are converted."""
    store = InMemoryIdempotencyStore()
    ends = time.time() + 60
    result = store.claim(["k"], owner=A, lease_expires_at=Decimal(repr(ends)))["k"]  # type: ignore[arg-type]
    assert result.status is ClaimStatus.CLAIMED
    assert result.lease_expires_at == ends


@pytest.mark.parametrize("bad", [7, b"k", None, ["k"]])
def test_keys_and_owners_that_are_not_strings_are_argument_errors(bad: object) -> None:
    """A key or owner of another type (unhashable ones too) is a typed argument error,
    not a crash later."""
    store = InMemoryIdempotencyStore()
    with pytest.raises(IdempotencyError):
        store.claim([bad], owner=A, lease_expires_at=time.time() + 60)  # type: ignore[list-item]
    with pytest.raises(IdempotencyError):
        store.claim(["k"], owner=bad, lease_expires_at=time.time() + 60)  # type: ignore[arg-type]
    assert store.get("k") is None


def test_a_bare_string_of_keys_is_an_argument_error() -> None:
    """``claim("key")`` would otherwise claim each character as a key."""
    store = InMemoryIdempotencyStore()
    with pytest.raises(IdempotencyError):
        store.claim("abc", owner=A, lease_expires_at=time.time() + 60)
    assert store.get("a") is None


def test_empty_keys_and_bundle_keys_are_rejected() -> None:
    """Empty idempotency keys or bundle keys are argument errors."""
    store = InMemoryIdempotencyStore()
    with pytest.raises(IdempotencyError):
        store.claim([""], owner=A, lease_expires_at=time.time() + 9)
    with pytest.raises(IdempotencyError):
        store.complete(["k"], owner=A, bundle_key="")


def test_results_are_frozen_and_slotted() -> None:
    """Result and record values are immutable, slotted dataclasses."""
    values: list[Any] = [
        ClaimResult("k", ClaimStatus.CLAIMED),
        UpdateResult("k", UpdateStatus.OK),
        IdempotencyRecord("k", RecordStatus.COMPLETED),
        WriteOutcome(applied=True),
    ]
    for value in values:
        assert not hasattr(value, "__dict__")
        first = dataclasses.fields(value)[0].name
        with pytest.raises(dataclasses.FrozenInstanceError):
            setattr(value, first, "other")


def test_result_helpers() -> None:
    """acknowledged is true for done-before statuses only; ok only for OK."""
    acknowledged = {s for s in ClaimStatus if ClaimResult("k", s).acknowledged}
    assert acknowledged == {ClaimStatus.ALREADY_COMPLETED, ClaimStatus.RECOVERED}
    assert [s for s in UpdateStatus if UpdateResult("k", s).ok] == [UpdateStatus.OK]


def test_record_lease_is_live() -> None:
    """A lease is live strictly before its end and only while in progress and unexpired."""
    record = IdempotencyRecord("k", RecordStatus.IN_PROGRESS, "a", 100.0, expiration=500)
    assert record.lease_is_live(99.9)
    assert not record.lease_is_live(100.0)
    assert not dataclasses.replace(record, status=RecordStatus.COMPLETED).lease_is_live(50)
    assert not record.lease_is_live(500) or record.is_expired(500)


def test_lease_expiry_is_deadline_plus_margin() -> None:
    """The lease ends at now + remaining time + margin; negatives are clamped to zero."""
    assert lease_expiry(30_000, margin_seconds=10, now=1000.0) == 1040.0
    assert lease_expiry(-5, margin_seconds=-1, now=1000.0) == 1000.0
    assert lease_expiry(1500, clock=lambda: 2000.0) == 2000.0 + 1.5 + 10


def test_lease_expiry_from_a_lambda_like_context() -> None:
    """Any object with get_remaining_time_in_millis() gives the lease end."""

    class Context:
        def get_remaining_time_in_millis(self) -> int:
            return 2_500

    assert lease_expiry_from_context(Context(), margin_seconds=5, clock=lambda: 10.0) == 17.5


def test_lease_expiry_from_a_local_context() -> None:
    """A LocalContext's deadline plus the margin is the lease end."""
    now = 5_000.0
    context = LocalContext.from_timeout(60, clock=lambda: now)
    assert lease_expiry_from_context(context, clock=lambda: now) == now + 60 + 10


def test_in_memory_locator_answers() -> None:
    """The in-memory locator knows uploaded bundles, says empty for others, None if unknown."""
    locator = InMemoryBundleLocator({"b1": ["x"]})
    locator.add("b2", ["y", "z"])
    locator.unknown.add("b3")
    assert isinstance(locator, BundleLocator)
    assert locator.bundled_keys("b1") == frozenset({"x"})
    assert locator.bundled_keys("b2") == frozenset({"y", "z"})
    assert locator.bundled_keys("missing") == frozenset()
    assert locator.bundled_keys("b3") is None


def test_public_names_resolve() -> None:
    """Every name in idempotency.__all__ resolves, lazily for the DynamoDB parts."""
    for name in idempotency.__all__:
        assert getattr(idempotency, name) is not None
    assert set(idempotency.__all__) <= set(dir(idempotency))
    with pytest.raises(AttributeError, match="nope"):
        _ = idempotency.nope


def test_import_does_not_load_boto3() -> None:
    """Importing the module stays cheap: boto3/botocore load only with the DynamoDB store."""
    code = (
        "import sys, data_aggregator.idempotency as m;"
        "assert 'boto3' not in sys.modules and 'botocore' not in sys.modules;"
        "m.InMemoryIdempotencyStore().claim(['k'], owner='o', lease_expires_at=1e10);"
        "assert 'botocore' not in sys.modules;"
        "m.DynamoDBIdempotencyStore;"
        "assert 'botocore' in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True)  # noqa: S603
