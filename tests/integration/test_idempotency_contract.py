"""The store contract, run against every store: in-memory, DynamoDB (moto over HTTP, in
both batch modes) and the SQLite "bring your own store" example in docs/examples.

Each test gets a fresh store from a factory, so the same assertions prove the two stores
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
    atomic_endpoint,  # noqa: F401 - fixture
    store_factory,
)

if TYPE_CHECKING:
    from collections.abc import Callable

    from data_aggregator.idempotency import BatchMode, BundleLocator

TTL = 3600
LEASE = 70.0
A, B, C = "owner-a", "owner-b", "owner-c"


class Env:
    """A store under test with its fake clock and bundle locator."""

    def __init__(self, factory: Callable[..., IdempotencyStore]) -> None:
        self.clock = FakeClock(FUTURE_START)
        self.locator = InMemoryBundleLocator()
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


@pytest.fixture(params=["memory", "dynamodb", "dynamodb-transact", "sqlite-example"])
def env(request: pytest.FixtureRequest) -> Env:
    """A fresh store of each kind (DynamoDB in both batch modes)."""
    if request.param == "memory":
        return Env(InMemoryIdempotencyStore)
    if request.param == "sqlite-example":
        return Env(sqlite_store_class())
    endpoint: str = request.getfixturevalue("atomic_endpoint")
    mode: BatchMode = "transact" if request.param == "dynamodb-transact" else "single"
    return Env(store_factory(endpoint, mode))


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


def test_mark_pending_only_by_holder(env: Env) -> None:
    """The holder announces its bundle; anyone else is refused."""
    env.store.claim(["k1"], owner=A, lease_expires_at=env.lease())
    assert env.store.mark_pending(["k1"], owner=B, bundle_key="x")["k1"].status is (
        UpdateStatus.LEASE_LOST
    )
    assert env.store.mark_pending(["k1"], owner=A, bundle_key="b1")["k1"].ok
    assert env.store.get("k1").pending_bundle_key == "b1"  # type: ignore[union-attr]
    env.store.complete(["k1"], owner=A, bundle_key="b1")
    record = env.store.get("k1")
    assert record is not None
    assert record.pending_bundle_key is None


def test_takeover_recovers_a_record_already_in_its_pending_bundle(env: Env) -> None:
    """A dead holder's uploaded bundle is found: the record is completed, not re-bundled."""
    env.store.claim(["k1", "k2"], owner=A, lease_expires_at=env.lease())
    env.store.mark_pending(["k1", "k2"], owner=A, bundle_key="bundle-a")
    env.locator.add("bundle-a", ["k1"])  # uploaded, holding k1 only
    env.clock.advance(LEASE)
    results = env.store.claim(["k1", "k2"], owner=B, lease_expires_at=env.lease())
    assert results["k1"].status is ClaimStatus.RECOVERED
    assert results["k1"].bundle_key == "bundle-a"
    assert results["k1"].previous_owner == A
    assert results["k1"].acknowledged
    assert results["k2"].status is ClaimStatus.CLAIMED
    assert results["k2"].pending_bundle_key == "bundle-a"
    k1 = env.store.get("k1")
    assert k1 is not None
    assert (k1.status, k1.bundle_key, k1.owner) == (RecordStatus.COMPLETED, "bundle-a", B)
    k2 = env.store.get("k2")
    assert k2 is not None
    assert (k2.owner, k2.pending_bundle_key) == (B, "bundle-a")


def test_a_late_holder_completing_into_the_bundle_a_taker_recovered_is_ok(env: Env) -> None:
    """A holder whose record a taker recovered into the holder's own bundle finds it
    completed there: its late ``complete`` is OK (the record is in that bundle once), not
    a lease loss; a ``complete`` naming another bundle is still ``LEASE_LOST``."""
    env.store.claim(["k1"], owner=A, lease_expires_at=env.lease())
    env.store.mark_pending(["k1"], owner=A, bundle_key="bundle-a")
    env.locator.add("bundle-a", ["k1"])
    env.clock.advance(LEASE)
    taken = env.store.claim(["k1"], owner=B, lease_expires_at=env.lease())["k1"]
    assert taken.status is ClaimStatus.RECOVERED
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


def test_pending_announcement_survives_release(env: Env) -> None:
    """A released record keeps its pending bundle, so the next claim still checks it."""
    env.store.claim(["k1"], owner=A, lease_expires_at=env.lease())
    env.store.mark_pending(["k1"], owner=A, bundle_key="bundle-a")
    env.store.release(["k1"], owner=A)
    env.locator.add("bundle-a", ["k1"])
    result = env.store.claim(["k1"], owner=B, lease_expires_at=env.lease())["k1"]
    assert result.status is ClaimStatus.RECOVERED


def test_unverifiable_bundle_is_an_error_and_frees_the_record(env: Env) -> None:
    """When the locator cannot tell, the claim is a retryable ERROR and the lease is let go."""
    env.store.claim(["k1"], owner=A, lease_expires_at=env.lease())
    env.store.mark_pending(["k1"], owner=A, bundle_key="bundle-a")
    env.locator.unknown.add("bundle-a")
    env.clock.advance(LEASE)
    result = env.store.claim(["k1"], owner=B, lease_expires_at=env.lease())["k1"]
    assert result.status is ClaimStatus.ERROR
    assert isinstance(result.error, IdempotencyStoreError)
    assert result.error.retryable
    assert result.error.error_code == "IDEMPOTENCY_BUNDLE_UNVERIFIED"
    record = env.store.get("k1")
    assert record is not None
    assert (record.owner, record.pending_bundle_key) == (None, "bundle-a")
    env.locator.unknown.clear()
    env.locator.add("bundle-a", ["k1"])
    again = env.store.claim(["k1"], owner=B, lease_expires_at=env.lease())["k1"]
    assert again.status is ClaimStatus.RECOVERED


def test_takeover_without_locator_claims_and_warns(
    env: Env, caplog: pytest.LogCaptureFixture
) -> None:
    """With no locator a pending record is claimed, flagged, and a warning is logged."""
    store = env.make(locator=None)
    store.claim(["k1"], owner=A, lease_expires_at=env.lease())
    store.mark_pending(["k1"], owner=A, bundle_key="bundle-a")
    env.clock.advance(LEASE)
    with caplog.at_level(logging.WARNING, logger="data_aggregator.idempotency"):
        result = store.claim(["k1"], owner=B, lease_expires_at=env.lease())["k1"]
    assert result.status is ClaimStatus.CLAIMED
    assert result.pending_bundle_key == "bundle-a"
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
