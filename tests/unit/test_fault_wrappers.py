"""The fault-injection wrappers of ``tests/faults.py`` do what each `Fault` says: the
processor tests that use them are only as strong as this."""

from __future__ import annotations

import pytest

from data_aggregator.exceptions import IdempotencyStoreError, S3ServiceError
from data_aggregator.idempotency import (
    ClaimStatus,
    InMemoryIdempotencyStore,
    RecordStatus,
    UpdateStatus,
)
from data_aggregator.testing import FakeClock
from tests.faults import Crash, Fault, FaultPlan, FaultyS3Client, FaultyStore, Fired, Rule
from tests.processor_fakes import FakeS3Client

KEYS = ["k0", "k1", "k2", "k3"]


def _store(*rules: Rule) -> tuple[FaultyStore, InMemoryIdempotencyStore, FaultPlan]:
    clock = FakeClock()
    inner = InMemoryIdempotencyStore(clock=clock)
    plan = FaultPlan(*rules, clock=clock)
    plan.begin_invocation()
    return FaultyStore(inner, plan), inner, plan


def _lease(store: FaultyStore) -> float:
    return store.clock() + 60


def test_fail_answers_error_without_effect() -> None:
    store, inner, plan = _store(Rule("claim", Fault.FAIL))
    results = store.claim(KEYS, owner="a", lease_expires_at=_lease(store))
    assert {r.status for r in results.values()} == {ClaimStatus.ERROR}
    assert all(isinstance(r.error, IdempotencyStoreError) for r in results.values())
    assert inner.records() == {}
    assert plan.fired == [Fired(1, "claim", 1, Fault.FAIL)]


def test_raise_raises_without_effect() -> None:
    store, inner, _ = _store(Rule("claim", Fault.RAISE))
    with pytest.raises(IdempotencyStoreError):
        store.claim(KEYS, owner="a", lease_expires_at=_lease(store))
    assert inner.records() == {}


def test_lose_answer_applies_then_answers_error() -> None:
    store, inner, _ = _store(Rule("complete", Fault.LOSE_ANSWER))
    store.claim(KEYS, owner="a", lease_expires_at=_lease(store))
    results = store.complete(KEYS, owner="a", bundle_key="b")
    assert {r.status for r in results.values()} == {UpdateStatus.ERROR}
    assert {r.status for r in inner.records().values()} == {RecordStatus.COMPLETED}


def test_crash_kills_the_invocation_until_the_next_one() -> None:
    store, inner, plan = _store(Rule("claim", Fault.CRASH, invocations=frozenset({1})))
    with pytest.raises(Crash):
        store.claim(KEYS, owner="a", lease_expires_at=_lease(store))
    assert inner.records() == {}
    assert plan.dead
    with pytest.raises(Crash):  # a dead process makes no more calls
        store.release(KEYS, owner="a")
    plan.begin_invocation()  # the next invocation runs in a new process
    results = store.claim(KEYS, owner="b", lease_expires_at=_lease(store))
    assert {r.status for r in results.values()} == {ClaimStatus.CLAIMED}


def test_crash_after_applies_then_dies() -> None:
    store, inner, _ = _store(Rule("claim", Fault.CRASH_AFTER))
    with pytest.raises(Crash):
        store.claim(KEYS, owner="a", lease_expires_at=_lease(store))
    assert set(inner.records()) == set(KEYS)


def test_crash_midway_applies_the_first_half() -> None:
    store, inner, _ = _store(Rule("release", Fault.CRASH_MIDWAY))
    store.claim(KEYS, owner="a", lease_expires_at=_lease(store))
    with pytest.raises(Crash):
        store.release(KEYS, owner="a")
    owners = {key: record.owner for key, record in inner.records().items()}
    assert owners == {"k0": None, "k1": None, "k2": "a", "k3": "a"}


def test_delay_passes_time_and_runs_meanwhile_before_the_call() -> None:
    seen: list[int] = []
    store, inner, plan = _store()
    plan.add(
        "claim", Fault.DELAY, seconds=30.0, meanwhile=lambda: seen.append(len(inner.records()))
    )
    start = store.clock()
    results = store.claim(KEYS, owner="a", lease_expires_at=start + 60)
    assert seen == [0]
    assert store.clock() == start + 30
    assert {r.status for r in results.values()} == {ClaimStatus.CLAIMED}


def test_delay_answer_runs_meanwhile_after_the_call() -> None:
    seen: list[int] = []
    store, inner, plan = _store()
    plan.add("claim", Fault.DELAY_ANSWER, meanwhile=lambda: seen.append(len(inner.records())))
    store.claim(KEYS, owner="a", lease_expires_at=_lease(store))
    assert seen == [len(KEYS)]


def test_rules_pick_the_nth_call_of_chosen_invocations() -> None:
    store, _, plan = _store(Rule("complete", Fault.FAIL, call=2, invocations=frozenset({2})))
    for invocation in (1, 2):
        if invocation == 2:
            plan.begin_invocation()
        owner, keys = f"o{invocation}", [f"{key}-{invocation}" for key in KEYS[:3]]
        store.claim(keys, owner=owner, lease_expires_at=_lease(store))
        statuses = [store.complete([key], owner=owner, bundle_key="b")[key].status for key in keys]
        expected = UpdateStatus.ERROR if invocation == 2 else UpdateStatus.OK
        assert statuses == [UpdateStatus.OK, expected, UpdateStatus.OK]
    assert plan.fired == [Fired(2, "complete", 2, Fault.FAIL)]


def test_rules_are_checked() -> None:
    with pytest.raises(ValueError, match="unknown operation"):
        Rule("GetObjects", Fault.FAIL)
    with pytest.raises(ValueError, match="CRASH_MIDWAY"):
        Rule("PutObject", Fault.CRASH_MIDWAY)


def test_s3_faults() -> None:
    """S3 calls fail with a retryable error, lose the answer of a stored upload, crash."""
    inner = FakeS3Client()
    plan = FaultPlan(
        Rule("GetObject", Fault.FAIL),
        Rule("PutObject", Fault.LOSE_ANSWER),
        Rule("PutObject", Fault.CRASH_AFTER, call=2),
    )
    plan.begin_invocation()
    s3 = FaultyS3Client(inner, plan)
    inner.put("bucket", "object", b"data")
    with pytest.raises(S3ServiceError) as failed:
        s3.open_object("bucket", "object")
    assert failed.value.retryable
    assert s3.open_object("bucket", "object").body.read() == b"data"
    with pytest.raises(S3ServiceError):
        s3.put_object("bucket", "bundle-1", b"one")
    assert inner.uploaded == ["bundle-1"]
    with pytest.raises(Crash):
        s3.put_object("bucket", "bundle-2", b"two")
    assert inner.uploaded == ["bundle-1", "bundle-2"]
    with pytest.raises(Crash):
        s3.head_object("bucket", "object")
