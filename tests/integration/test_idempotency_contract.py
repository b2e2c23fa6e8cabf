"""The store contract, run against every store: in-memory, DynamoDB (moto over HTTP, or
DynamoDB Local with ``--aggregator-backend=real``, in each batch mode) and the SQLite
"bring your own store" example in docs/examples.

Each test gets a fresh store from a factory, so the same assertions prove the stores
behave identically.
"""

from __future__ import annotations

import importlib.util
import logging
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from data_aggregator.exceptions import IdempotencyError, IdempotencyStoreError, LeaseLostError
from data_aggregator.idempotency import (
    ClaimStatus,
    IdempotencyStore,
    InMemoryBundleLocator,
    InMemoryIdempotencyStore,
    RecordStatus,
    UpdateStatus,
)
from data_aggregator.testing import FakeClock
from tests.clock_support import FUTURE_START
from tests.integration._dynamodb_support import (
    PARTIQL_ON_REAL_SERVERS_ONLY,
    atomic_endpoint,  # noqa: F401 - fixture
    store_factory,
)

if TYPE_CHECKING:
    from collections.abc import Callable

    from data_aggregator.idempotency import BatchMode, BundleLocator

TTL = 3600
LEASE = 70.0
A, B, C = "owner-a", "owner-b", "owner-c"


class CountingLocator(InMemoryBundleLocator):
    """An in-memory locator that records which bundles it was asked about."""

    def __init__(self) -> None:
        super().__init__()
        self.lookups: list[str] = []

    def bundled_keys(self, bundle_key: str) -> frozenset[str] | None:
        """Record the question, then answer it."""
        self.lookups.append(bundle_key)
        return super().bundled_keys(bundle_key)


class Env:
    """A store under test with its fake clock and bundle locator."""

    def __init__(self, factory: Callable[..., IdempotencyStore]) -> None:
        self.clock = FakeClock(FUTURE_START)
        self.locator = CountingLocator()
        self._factory = factory
        self.store = self.make()

    def make(self, locator: BundleLocator | str | None = "default") -> IdempotencyStore:
        """Another store of the same kind (fresh table) with the shared clock."""
        chosen = self.locator if locator == "default" else locator
        return self._factory(ttl_seconds=TTL, bundle_locator=chosen, clock=self.clock)

    def lease(self, seconds: float = LEASE) -> float:
        """A lease ending ``seconds`` from now."""
        return self.clock() + seconds


def sqlite_store_class() -> Callable[..., IdempotencyStore]:
    """The "bring your own store" worked example from docs/examples."""
    path = Path(__file__).parents[2] / "docs" / "examples" / "sqlite_idempotency_store.py"
    spec = importlib.util.spec_from_file_location("sqlite_idempotency_store", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    store_class: Callable[..., IdempotencyStore] = module.SQLiteIdempotencyStore
    return store_class


@pytest.fixture(
    params=[
        "memory",
        "dynamodb-hybrid",
        "dynamodb-single",
        "dynamodb-transact",
        pytest.param("dynamodb-statements", marks=PARTIQL_ON_REAL_SERVERS_ONLY),
        "sqlite-example",
    ]
)
def env(request: pytest.FixtureRequest) -> Env:
    """A fresh store of each kind (DynamoDB in each batch mode)."""
    if request.param == "memory":
        return Env(InMemoryIdempotencyStore)
    if request.param == "sqlite-example":
        return Env(sqlite_store_class())
    endpoint: str = request.getfixturevalue("atomic_endpoint")
    mode: BatchMode = request.param.removeprefix("dynamodb-")
    return Env(store_factory(endpoint, mode))


@pytest.fixture(params=["claim", "mark_pending"])
def announce(request: pytest.FixtureRequest) -> str:
    """How a holder announces its bundle: with its claim, or with a later mark_pending."""
    how: str = request.param
    return how


def hold(env: Env, keys: list[str], owner: str, bundle_key: str, how: str) -> None:
    """``owner`` claims ``keys`` for bundle ``bundle_key``, announced as ``how`` says."""
    if how == "claim":
        claimed = env.store.claim(
            keys, owner=owner, lease_expires_at=env.lease(), bundle_key=bundle_key
        )
    else:
        claimed = env.store.claim(keys, owner=owner, lease_expires_at=env.lease())
        assert all(
            r.ok for r in env.store.mark_pending(keys, owner=owner, bundle_key=bundle_key).values()
        )
    assert all(r.status is ClaimStatus.CLAIMED for r in claimed.values())


def statuses(results: dict[str, Any]) -> dict[str, Any]:
    return {key: result.status for key, result in results.items()}


def test_fresh_claim_takes_a_lease_with_ttl(env: Env) -> None:
    """A first claim wins and stores owner, lease and expiration = ceil(lease) + TTL."""
    lease = env.lease() + 0.25
    result = env.store.claim(["k1"], owner=A, lease_expires_at=lease)["k1"]
    assert result.status is ClaimStatus.CLAIMED
    assert result.lease_expires_at == lease
    record = env.store.get("k1")
    assert record is not None
    assert record.status is RecordStatus.IN_PROGRESS
    assert record.owner == A
    assert record.lease_expires_at == lease
    assert record.expiration == math.ceil(lease) + TTL


def test_live_lease_blocks_other_owners(env: Env) -> None:
    """Another owner gets IN_PROGRESS_ELSEWHERE with the holder's lease end."""
    lease = env.lease()
    env.store.claim(["k1"], owner=A, lease_expires_at=lease)
    env.clock.advance(LEASE - 1)
    result = env.store.claim(["k1"], owner=B, lease_expires_at=env.lease())["k1"]
    assert result.status is ClaimStatus.IN_PROGRESS_ELSEWHERE
    assert result.lease_expires_at == lease
    assert env.store.get("k1").owner == A  # type: ignore[union-attr]


def test_same_owner_can_claim_again(env: Env) -> None:
    """A retried claim by the holder succeeds and moves its lease."""
    env.store.claim(["k1"], owner=A, lease_expires_at=env.lease())
    later = env.lease(120)
    result = env.store.claim(["k1"], owner=A, lease_expires_at=later)["k1"]
    assert result.status is ClaimStatus.CLAIMED
    assert result.previous_owner is None
    assert env.store.get("k1").lease_expires_at == later  # type: ignore[union-attr]


def test_expired_lease_is_taken_over(env: Env) -> None:
    """Once a lease ends another owner takes it, and the old holder is locked out."""
    env.store.claim(["k1"], owner=A, lease_expires_at=env.lease())
    env.clock.advance(LEASE)  # the lease end is exclusive: at that instant it is over
    result = env.store.claim(["k1"], owner=B, lease_expires_at=env.lease())["k1"]
    assert result.status is ClaimStatus.CLAIMED
    assert result.previous_owner == A
    stale = env.store.complete(["k1"], owner=A, bundle_key="bundle-a")["k1"]
    assert stale.status is UpdateStatus.LEASE_LOST
    assert isinstance(stale.error, LeaseLostError)
    assert env.store.complete(["k1"], owner=B, bundle_key="bundle-b")["k1"].ok


def test_complete_records_bundle_and_ttl(env: Env) -> None:
    """Completion stores the bundle and a TTL from completion time; claims then ack."""
    env.store.claim(["k1", "k2"], owner=A, lease_expires_at=env.lease())
    env.clock.advance(5.5)
    done = env.store.complete(["k1", "k2"], owner=A, bundle_key="b/1.tar.gz")
    assert statuses(done) == {"k1": UpdateStatus.OK, "k2": UpdateStatus.OK}
    record = env.store.get("k1")
    assert record is not None
    assert record.status is RecordStatus.COMPLETED
    assert record.bundle_key == "b/1.tar.gz"
    assert record.lease_expires_at is None
    assert record.expiration == math.ceil(env.clock()) + TTL
    again = env.store.claim(["k1"], owner=B, lease_expires_at=env.lease())["k1"]
    assert again.status is ClaimStatus.ALREADY_COMPLETED
    assert again.bundle_key == "b/1.tar.gz"
    assert again.acknowledged


def test_complete_honours_a_ttl_override(env: Env) -> None:
    """A per-call TTL replaces the store's for those records."""
    env.store.claim(["k1"], owner=A, lease_expires_at=env.lease())
    env.store.complete(["k1"], owner=A, bundle_key="b", ttl_seconds=60)
    assert env.store.get("k1").expiration == math.ceil(env.clock()) + 60  # type: ignore[union-attr]


def test_non_holder_cannot_complete(env: Env) -> None:
    """Completing a record someone else holds changes nothing and says LEASE_LOST."""
    env.store.claim(["k1"], owner=A, lease_expires_at=env.lease())
    result = env.store.complete(["k1", "never-claimed"], owner=B, bundle_key="b")
    assert statuses(result) == {
        "k1": UpdateStatus.LEASE_LOST,
        "never-claimed": UpdateStatus.LEASE_LOST,
    }
    assert result["k1"].current is not None
    assert result["k1"].current.owner == A
    assert result["never-claimed"].current is None
    record = env.store.get("k1")
    assert record is not None
    assert record.status is RecordStatus.IN_PROGRESS
    assert record.owner == A


def test_retried_complete_is_ok_only_for_the_same_bundle(env: Env) -> None:
    """A repeated complete by the holder is OK; naming another bundle is refused."""
    env.store.claim(["k1"], owner=A, lease_expires_at=env.lease())
    assert env.store.complete(["k1"], owner=A, bundle_key="b1")["k1"].ok
    assert env.store.complete(["k1"], owner=A, bundle_key="b1")["k1"].ok
    other = env.store.complete(["k1"], owner=A, bundle_key="b2")["k1"]
    assert other.status is UpdateStatus.LEASE_LOST
    assert env.store.get("k1").bundle_key == "b1"  # type: ignore[union-attr]


def test_holder_may_complete_after_its_lease_ends_if_nobody_took_over(env: Env) -> None:
    """Holding does not depend on the clock: a late complete still succeeds if untaken."""
    env.store.claim(["k1"], owner=A, lease_expires_at=env.lease())
    env.clock.advance(LEASE * 2)
    assert env.store.complete(["k1"], owner=A, bundle_key="b")["k1"].ok


def test_completed_record_is_forgotten_after_its_ttl(env: Env) -> None:
    """Before the TTL a completed record is never re-claimed; after it, it is absent."""
    env.store.claim(["k1"], owner=A, lease_expires_at=env.lease())
    env.store.complete(["k1"], owner=A, bundle_key="b")
    env.clock.advance(TTL - 1)
    early = env.store.claim(["k1"], owner=B, lease_expires_at=env.lease())["k1"]
    assert early.status is ClaimStatus.ALREADY_COMPLETED
    env.clock.advance(2)
    assert env.store.get("k1") is None
    late = env.store.claim(["k1"], owner=B, lease_expires_at=env.lease())["k1"]
    assert late.status is ClaimStatus.CLAIMED
    record = env.store.get("k1")
    assert record is not None
    assert record.bundle_key is None
    assert record.owner == B


def test_release_makes_the_record_claimable_at_once(env: Env) -> None:
    """After release another owner claims immediately; releasing twice is OK."""
    env.store.claim(["k1"], owner=A, lease_expires_at=env.lease())
    assert env.store.release(["k1"], owner=A)["k1"].ok
    assert env.store.release(["k1"], owner=A)["k1"].ok
    record = env.store.get("k1")
    assert record is not None
    assert record.owner is None
    assert record.lease_expires_at == 0
    result = env.store.claim(["k1"], owner=B, lease_expires_at=env.lease())["k1"]
    assert result.status is ClaimStatus.CLAIMED
    assert result.previous_owner is None


def test_release_by_non_holder_and_of_completed_is_refused(env: Env) -> None:
    """Only the holder releases, and a completed record is never un-completed."""
    env.store.claim(["k1", "k2"], owner=A, lease_expires_at=env.lease())
    assert env.store.release(["k1"], owner=B)["k1"].status is UpdateStatus.LEASE_LOST
    env.store.complete(["k2"], owner=A, bundle_key="b")
    assert env.store.release(["k2"], owner=A)["k2"].status is UpdateStatus.LEASE_LOST
    assert env.store.get("k2").status is RecordStatus.COMPLETED  # type: ignore[union-attr]


def test_mark_pending_only_by_holder_and_adds_to_the_announcements(env: Env) -> None:
    """The holder announces bundles (each added to the set); anyone else is refused;
    completion clears them all."""
    env.store.claim(["k1"], owner=A, lease_expires_at=env.lease())
    assert env.store.mark_pending(["k1"], owner=B, bundle_key="x")["k1"].status is (
        UpdateStatus.LEASE_LOST
    )
    assert env.store.mark_pending(["k1"], owner=A, bundle_key="b1")["k1"].ok
    assert env.store.get("k1").pending_bundle_keys == {"b1"}  # type: ignore[union-attr]
    assert env.store.mark_pending(["k1"], owner=A, bundle_key="b2")["k1"].ok
    assert env.store.mark_pending(["k1"], owner=A, bundle_key="b2")["k1"].ok  # a retry
    assert env.store.get("k1").pending_bundle_keys == {"b1", "b2"}  # type: ignore[union-attr]
    env.store.complete(["k1"], owner=A, bundle_key="b1")
    record = env.store.get("k1")
    assert record is not None
    assert record.pending_bundle_keys == frozenset()


def test_a_claim_with_a_bundle_key_announces_it(env: Env) -> None:
    """``claim(bundle_key=K)`` takes the lease and announces K in the same write; only an
    applied claim announces (a refused one leaves the record as it was); completion
    clears the announcement."""
    lease = env.lease()
    claimed = env.store.claim(["k1", "k2"], owner=A, lease_expires_at=lease, bundle_key="bundle-a")
    for result in claimed.values():
        assert result.status is ClaimStatus.CLAIMED
        assert result.pending_bundle_keys == ()  # nothing was checked: a fresh claim
    record = env.store.get("k1")
    assert record is not None
    assert (record.status, record.owner, record.lease_expires_at) == (
        RecordStatus.IN_PROGRESS,
        A,
        lease,
    )
    assert record.pending_bundle_keys == {"bundle-a"}
    refused = env.store.claim(["k1"], owner=B, lease_expires_at=env.lease(), bundle_key="bundle-b")
    assert refused["k1"].status is ClaimStatus.IN_PROGRESS_ELSEWHERE
    assert env.store.get("k1").pending_bundle_keys == {"bundle-a"}  # type: ignore[union-attr]
    assert env.store.complete(["k1"], owner=A, bundle_key="bundle-a")["k1"].ok
    done = env.store.claim(["k1"], owner=B, lease_expires_at=env.lease(), bundle_key="bundle-b")
    assert done["k1"].status is ClaimStatus.ALREADY_COMPLETED
    record = env.store.get("k1")
    assert record is not None
    assert (record.status, record.bundle_key) == (RecordStatus.COMPLETED, "bundle-a")
    assert record.pending_bundle_keys == frozenset()
    assert env.locator.lookups == []


def test_takeover_recovers_a_record_already_in_its_pending_bundle(env: Env, announce: str) -> None:
    """A dead holder's uploaded bundle is found: the record is completed, not re-bundled;
    a record the bundle does not hold is claimed, and keeps the announcement."""
    hold(env, ["k1", "k2"], A, "bundle-a", announce)
    env.locator.add("bundle-a", ["k1"])  # uploaded, holding k1 only
    env.clock.advance(LEASE)
    results = env.store.claim(["k1", "k2"], owner=B, lease_expires_at=env.lease())
    assert results["k1"].status is ClaimStatus.RECOVERED
    assert results["k1"].bundle_key == "bundle-a"
    assert results["k1"].previous_owner == A
    assert results["k1"].acknowledged
    assert results["k2"].status is ClaimStatus.CLAIMED
    assert results["k2"].pending_bundle_keys == ("bundle-a",)
    assert results["k2"].previous_owner == A
    assert env.locator.lookups == ["bundle-a"]
    k1 = env.store.get("k1")
    assert k1 is not None
    assert (k1.status, k1.bundle_key, k1.owner) == (RecordStatus.COMPLETED, "bundle-a", B)
    assert k1.pending_bundle_keys == frozenset()
    k2 = env.store.get("k2")
    assert k2 is not None
    assert (k2.owner, k2.pending_bundle_keys) == (B, frozenset({"bundle-a"}))


def test_a_late_holder_completing_into_the_bundle_a_taker_recovered_is_ok(
    env: Env, announce: str
) -> None:
    """A holder whose record a taker recovered into the holder's own bundle finds it
    completed there: its late ``complete`` is OK (the record is in that bundle once), not
    a lease loss; a ``complete`` naming another bundle is still ``LEASE_LOST``."""
    hold(env, ["k1"], A, "bundle-a", announce)
    env.locator.add("bundle-a", ["k1"])
    env.clock.advance(LEASE)
    taken = env.store.claim(["k1"], owner=B, lease_expires_at=env.lease(), bundle_key="bundle-b")
    assert taken["k1"].status is ClaimStatus.RECOVERED
    assert env.store.complete(["k1"], owner=A, bundle_key="bundle-a")["k1"].ok
    other = env.store.complete(["k1"], owner=A, bundle_key="bundle-x")["k1"]
    assert other.status is UpdateStatus.LEASE_LOST
    record = env.store.get("k1")
    assert record is not None
    assert (record.status, record.owner, record.bundle_key) == (
        RecordStatus.COMPLETED,
        B,
        "bundle-a",
    )
    assert record.pending_bundle_keys == frozenset()


def test_pending_announcement_survives_release(env: Env, announce: str) -> None:
    """A record released without a bundle key keeps its announcement, so the next claim
    still checks it."""
    hold(env, ["k1"], A, "bundle-a", announce)
    assert env.store.release(["k1"], owner=A)["k1"].ok
    assert env.store.get("k1").pending_bundle_keys == {"bundle-a"}  # type: ignore[union-attr]
    env.locator.add("bundle-a", ["k1"])
    result = env.store.claim(["k1"], owner=B, lease_expires_at=env.lease())["k1"]
    assert result.status is ClaimStatus.RECOVERED
    assert result.previous_owner is None  # released: nobody's lease was taken over


def test_release_with_a_bundle_key_withdraws_only_that_announcement(env: Env) -> None:
    """``release(bundle_key=K)`` drops the lease and K; the other announcements (an
    earlier holder's, and the holder's own mark_pending) stay and are checked next."""
    env.store.claim(["k1"], owner=A, lease_expires_at=env.lease(), bundle_key="bundle-a")
    env.clock.advance(LEASE)
    taken = env.store.claim(["k1"], owner=B, lease_expires_at=env.lease(), bundle_key="bundle-b")
    assert taken["k1"].status is ClaimStatus.CLAIMED
    assert env.store.mark_pending(["k1"], owner=B, bundle_key="bundle-x")["k1"].ok
    assert env.store.get("k1").pending_bundle_keys == {  # type: ignore[union-attr]
        "bundle-a",
        "bundle-b",
        "bundle-x",
    }
    foreign = env.store.release(["k1"], owner=C, bundle_key="bundle-b")["k1"]
    assert foreign.status is UpdateStatus.LEASE_LOST
    assert env.store.release(["k1"], owner=B, bundle_key="bundle-b")["k1"].ok
    assert env.store.release(["k1"], owner=B, bundle_key="bundle-b")["k1"].ok  # a retry
    record = env.store.get("k1")
    assert record is not None
    assert (record.status, record.owner, record.lease_expires_at) == (
        RecordStatus.IN_PROGRESS,
        None,
        0,
    )
    assert record.pending_bundle_keys == {"bundle-a", "bundle-x"}
    env.locator.lookups.clear()
    env.locator.add("bundle-b", ["k1"])  # withdrawn: never asked, even if it existed
    again = env.store.claim(["k1"], owner=C, lease_expires_at=env.lease())["k1"]
    assert again.status is ClaimStatus.CLAIMED
    assert again.pending_bundle_keys == ("bundle-a", "bundle-x")
    assert sorted(env.locator.lookups) == ["bundle-a", "bundle-x"]


def test_releasing_with_a_bundle_key_never_announced_is_ok(env: Env) -> None:
    """Withdrawing an announcement that is not there changes nothing else: the record is
    released and claimed again like any released record, with nothing to check."""
    env.store.claim(["k1"], owner=A, lease_expires_at=env.lease())
    assert env.store.release(["k1"], owner=A, bundle_key="bundle-a")["k1"].ok
    record = env.store.get("k1")
    assert record is not None
    assert (record.owner, record.pending_bundle_keys) == (None, frozenset())
    result = env.store.claim(["k1"], owner=B, lease_expires_at=env.lease(), bundle_key="bundle-b")
    assert result["k1"].status is ClaimStatus.CLAIMED
    assert result["k1"].pending_bundle_keys == ()
    assert env.locator.lookups == []
    assert env.store.get("k1").pending_bundle_keys == {"bundle-b"}  # type: ignore[union-attr]


#: The uploaded bundles when the third claimer comes, those the locator cannot tell
#: about, and the outcome: recovered from a bundle, CLAIMED or ERROR.
THIRD_CLAIM_CASES: dict[str, tuple[dict[str, list[str]], set[str], str]] = {
    "held-in-first": ({"bundle-a": ["k1"], "bundle-b": ["other"]}, set(), "bundle-a"),
    "held-in-second": ({"bundle-a": ["other"], "bundle-b": ["k1"]}, set(), "bundle-b"),
    "held-in-neither": ({"bundle-b": ["other"]}, set(), "CLAIMED"),
    "one-unknown": ({"bundle-a": ["other"]}, {"bundle-b"}, "ERROR"),
    "unknown-but-held-in-the-other": ({"bundle-b": ["k1"]}, {"bundle-a"}, "bundle-b"),
}


@pytest.mark.parametrize("case", list(THIRD_CLAIM_CASES))
def test_takeovers_accumulate_announcements_and_the_next_claimer_checks_them_all(
    env: Env, case: str
) -> None:
    """A announces bundle-a with its claim and dies; B takes over announcing bundle-b
    (bundle-a checked: it does not hold k1) and dies too. C's claim then checks both
    announcements, each bundle asked once and never its own bundle-c: the record is
    recovered from whichever holds it; claimed (both bundles reported) when neither
    does; and when one cannot tell and the other does not hold it, an ERROR that
    releases the lease again, keeps A's and B's announcements and withdraws C's own."""
    env.store.claim(["k1"], owner=A, lease_expires_at=env.lease(), bundle_key="bundle-a")
    env.clock.advance(LEASE)
    second = env.store.claim(["k1"], owner=B, lease_expires_at=env.lease(), bundle_key="bundle-b")[
        "k1"
    ]
    assert second.status is ClaimStatus.CLAIMED
    assert (second.pending_bundle_keys, second.previous_owner) == (("bundle-a",), A)
    assert env.store.get("k1").pending_bundle_keys == {  # type: ignore[union-attr]
        "bundle-a",
        "bundle-b",
    }
    env.clock.advance(LEASE)
    bundles, unknown, expected = THIRD_CLAIM_CASES[case]
    for name, members in bundles.items():
        env.locator.add(name, members)
    env.locator.unknown.update(unknown)
    env.locator.add("bundle-c", ["k1"])  # the claimer's own bundle is never asked
    env.locator.lookups.clear()
    lease = env.lease()
    third = env.store.claim(["k1"], owner=C, lease_expires_at=lease, bundle_key="bundle-c")["k1"]
    assert len(env.locator.lookups) == len(set(env.locator.lookups))
    assert "bundle-c" not in env.locator.lookups
    record = env.store.get("k1")
    assert record is not None
    if expected.startswith("bundle-"):
        assert third.status is ClaimStatus.RECOVERED
        assert (third.bundle_key, third.previous_owner) == (expected, B)
        assert (record.status, record.owner, record.bundle_key) == (
            RecordStatus.COMPLETED,
            C,
            expected,
        )
        assert record.pending_bundle_keys == frozenset()
        return
    assert sorted(env.locator.lookups) == ["bundle-a", "bundle-b"]
    assert third.pending_bundle_keys == ("bundle-a", "bundle-b")
    if expected == "CLAIMED":
        assert third.status is ClaimStatus.CLAIMED
        assert (third.lease_expires_at, third.previous_owner) == (lease, B)
        assert (record.status, record.owner, record.lease_expires_at) == (
            RecordStatus.IN_PROGRESS,
            C,
            lease,
        )
        assert record.pending_bundle_keys == {"bundle-a", "bundle-b", "bundle-c"}
        return
    assert third.status is ClaimStatus.ERROR
    assert isinstance(third.error, IdempotencyStoreError)
    assert third.error.retryable
    assert third.error.error_code == "IDEMPOTENCY_BUNDLE_UNVERIFIED"
    assert (record.status, record.owner, record.lease_expires_at) == (
        RecordStatus.IN_PROGRESS,
        None,
        0,
    )
    assert record.pending_bundle_keys == {"bundle-a", "bundle-b"}
    env.locator.unknown.clear()
    env.locator.add("bundle-b", ["k1"])
    again = env.store.claim(["k1"], owner=C, lease_expires_at=env.lease(), bundle_key="bundle-d")
    assert again["k1"].status is ClaimStatus.RECOVERED
    assert again["k1"].bundle_key == "bundle-b"


def test_each_announced_bundle_is_asked_once_per_claim(env: Env) -> None:
    """Many records announced in overlapping sets of bundles cost one locator question
    per distinct bundle; each record gets the answer for its own announcements."""
    env.store.claim(
        ["k1", "k2", "k3"], owner=A, lease_expires_at=env.lease(), bundle_key="bundle-a"
    )
    env.clock.advance(LEASE)
    env.store.claim(["k2", "k3"], owner=B, lease_expires_at=env.lease(), bundle_key="bundle-b")
    env.clock.advance(LEASE)
    env.locator.add("bundle-a", ["k1"])
    env.locator.add("bundle-b", ["k3"])
    env.locator.lookups.clear()
    results = env.store.claim(
        ["k1", "k2", "k3", "k4"], owner=C, lease_expires_at=env.lease(), bundle_key="bundle-c"
    )
    assert sorted(env.locator.lookups) == ["bundle-a", "bundle-b"]
    assert statuses(results) == {
        "k1": ClaimStatus.RECOVERED,
        "k2": ClaimStatus.CLAIMED,
        "k3": ClaimStatus.RECOVERED,
        "k4": ClaimStatus.CLAIMED,
    }
    assert (results["k1"].bundle_key, results["k1"].previous_owner) == ("bundle-a", A)
    assert (results["k3"].bundle_key, results["k3"].previous_owner) == ("bundle-b", B)
    assert results["k2"].pending_bundle_keys == ("bundle-a", "bundle-b")
    assert results["k4"].pending_bundle_keys == ()
    k2 = env.store.get("k2")
    assert k2 is not None
    assert k2.pending_bundle_keys == {"bundle-a", "bundle-b", "bundle-c"}


@pytest.mark.parametrize("bundled", [True, False], ids=["bundled", "not-bundled"])
def test_a_retried_claim_checks_the_earlier_holders_bundles_but_not_its_own(
    env: Env, bundled: bool
) -> None:
    """B takes over A's record announcing bundle-b, then sends the same claim again (its
    first answer lost): the record is B's own now, yet A's bundle-a is checked again,
    and B's own bundle-b is not (B claims before it writes)."""
    env.store.claim(["k1"], owner=A, lease_expires_at=env.lease(), bundle_key="bundle-a")
    env.clock.advance(LEASE)
    lease = env.lease()
    env.store.claim(["k1"], owner=B, lease_expires_at=lease, bundle_key="bundle-b")
    if bundled:
        env.locator.add("bundle-a", ["k1"])
    env.locator.add("bundle-b", ["k1"])
    env.locator.lookups.clear()
    again = env.store.claim(["k1"], owner=B, lease_expires_at=lease, bundle_key="bundle-b")["k1"]
    assert env.locator.lookups == ["bundle-a"]
    assert again.previous_owner is None  # the record it replaced was its own
    record = env.store.get("k1")
    assert record is not None
    if bundled:
        assert (again.status, again.bundle_key) == (ClaimStatus.RECOVERED, "bundle-a")
        assert (record.status, record.bundle_key) == (RecordStatus.COMPLETED, "bundle-a")
    else:
        assert again.status is ClaimStatus.CLAIMED
        assert again.pending_bundle_keys == ("bundle-a",)
        assert (record.owner, record.pending_bundle_keys) == (
            B,
            frozenset({"bundle-a", "bundle-b"}),
        )


def test_a_retried_claim_of_a_fresh_record_asks_nothing(env: Env) -> None:
    """A holder claiming its own record again with the same bundle key (a retried
    request) checks nothing: its own bundle is not committed before it claims."""
    env.store.claim(["k1"], owner=A, lease_expires_at=env.lease(), bundle_key="bundle-a")
    env.locator.add("bundle-a", ["k1"])
    again = env.store.claim(["k1"], owner=A, lease_expires_at=env.lease(), bundle_key="bundle-a")
    assert again["k1"].status is ClaimStatus.CLAIMED
    assert again["k1"].pending_bundle_keys == ()
    assert env.locator.lookups == []
    assert env.store.get("k1").pending_bundle_keys == {"bundle-a"}  # type: ignore[union-attr]


def test_an_announcement_is_checked_after_the_records_ttl(env: Env) -> None:
    """An in-progress record past its TTL reads as absent, but its announcement is still
    checked before the record is bundled again."""
    lease = env.lease()
    env.store.claim(["k1"], owner=A, lease_expires_at=lease, bundle_key="bundle-a")
    env.clock.advance(math.ceil(lease) + TTL - env.clock())
    assert env.store.get("k1") is None
    env.locator.add("bundle-a", ["k1"])
    result = env.store.claim(["k1"], owner=B, lease_expires_at=env.lease())["k1"]
    assert (result.status, result.bundle_key) == (ClaimStatus.RECOVERED, "bundle-a")


def test_unverifiable_bundle_is_an_error_and_frees_the_record(env: Env, announce: str) -> None:
    """When the locator cannot tell, the claim is a retryable ERROR and the lease is let go."""
    hold(env, ["k1"], A, "bundle-a", announce)
    env.locator.unknown.add("bundle-a")
    env.clock.advance(LEASE)
    result = env.store.claim(["k1"], owner=B, lease_expires_at=env.lease())["k1"]
    assert result.status is ClaimStatus.ERROR
    assert result.pending_bundle_keys == ("bundle-a",)
    assert isinstance(result.error, IdempotencyStoreError)
    assert result.error.retryable
    assert result.error.error_code == "IDEMPOTENCY_BUNDLE_UNVERIFIED"
    record = env.store.get("k1")
    assert record is not None
    assert (record.owner, record.pending_bundle_keys) == (None, frozenset({"bundle-a"}))
    env.locator.unknown.clear()
    env.locator.add("bundle-a", ["k1"])
    again = env.store.claim(["k1"], owner=B, lease_expires_at=env.lease())["k1"]
    assert again.status is ClaimStatus.RECOVERED


def test_takeover_without_locator_claims_and_warns(
    env: Env, caplog: pytest.LogCaptureFixture
) -> None:
    """With no locator a pending record is claimed, flagged, and a warning is logged."""
    store = env.make(locator=None)
    store.claim(["k1"], owner=A, lease_expires_at=env.lease(), bundle_key="bundle-a")
    env.clock.advance(LEASE)
    with caplog.at_level(logging.WARNING, logger="data_aggregator.idempotency"):
        result = store.claim(["k1"], owner=B, lease_expires_at=env.lease())["k1"]
    assert result.status is ClaimStatus.CLAIMED
    assert result.pending_bundle_keys == ("bundle-a",)
    assert "without a bundle locator" in caplog.text


def test_keys_are_deduplicated_in_first_seen_order(env: Env) -> None:
    """Repeated keys are claimed once and results keep the first-seen order."""
    results = env.store.claim(["b", "a", "b", "c", "a"], owner=A, lease_expires_at=env.lease())
    assert list(results) == ["b", "a", "c"]
    assert all(r.status is ClaimStatus.CLAIMED for r in results.values())
    assert env.store.claim([], owner=A, lease_expires_at=env.lease()) == {}


def test_mixed_batch_reports_each_key(env: Env) -> None:
    """One call answers per key: claimed, completed elsewhere, held elsewhere."""
    env.store.claim(["done", "held"], owner=A, lease_expires_at=env.lease())
    env.store.complete(["done"], owner=A, bundle_key="b")
    results = env.store.claim(["done", "held", "new"], owner=B, lease_expires_at=env.lease())
    assert statuses(results) == {
        "done": ClaimStatus.ALREADY_COMPLETED,
        "held": ClaimStatus.IN_PROGRESS_ELSEWHERE,
        "new": ClaimStatus.CLAIMED,
    }


@pytest.mark.parametrize("bad", ["", None])
def test_empty_owner_is_rejected(env: Env, bad: Any) -> None:
    """An empty owner token would make every caller the holder: it is refused."""
    with pytest.raises(IdempotencyError) as caught:
        env.store.claim(["k1"], owner=bad, lease_expires_at=env.lease())
    assert caught.value.error_code == "IDEMPOTENCY_INVALID_ARGUMENT"


def test_get_unknown_key_is_none(env: Env) -> None:
    """A key never seen has no record."""
    assert env.store.get("nothing-here") is None
