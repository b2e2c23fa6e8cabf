"""A stateful Hypothesis model of the idempotency store contract.

:class:`IdempotencyMachine` drives a store with random interleavings of claim,
mark_pending, bundle uploads, complete, release and clock advances, and checks every result
and every stored record against a plain dictionary model written from the documented rules
(not from the implementation). Subclasses choose the store (``make_store``).
"""

from __future__ import annotations

import math
from dataclasses import replace

from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from data_aggregator.idempotency import (
    ClaimStatus,
    IdempotencyRecord,
    IdempotencyStore,
    InMemoryBundleLocator,
    InMemoryIdempotencyStore,
    RecordStatus,
    UpdateStatus,
)
from data_aggregator.testing import FakeClock
from tests.clock_support import FUTURE_START

KEYS = ("k0", "k1", "k2", "k3")
OWNERS = ("a", "b", "c")
BUNDLES = ("bundle-1", "bundle-2", "bundle-3")
TTL = 400

key_lists = st.lists(st.sampled_from(KEYS), min_size=1, max_size=4)
owners = st.sampled_from(OWNERS)
bundles = st.sampled_from(BUNDLES)

IP = RecordStatus.IN_PROGRESS
DONE = RecordStatus.COMPLETED


class IdempotencyMachine(RuleBasedStateMachine):
    """Random operation sequences against a store, checked against a dictionary model."""

    def __init__(self) -> None:
        super().__init__()
        self.clock = FakeClock(FUTURE_START)
        self.locator = InMemoryBundleLocator()
        self.uploaded: dict[str, frozenset[str]] = {}
        self.model: dict[str, IdempotencyRecord] = {}
        self.store = self.make_store()

    def make_store(self) -> IdempotencyStore:
        """The store under test."""
        return InMemoryIdempotencyStore(
            clock=self.clock, bundle_locator=self.locator, ttl_seconds=TTL
        )

    def teardown(self) -> None:
        """Stop the store's worker threads."""
        self.store.close()

    # ------------------------------------------------------------------ model rules

    def _live(self, key: str) -> IdempotencyRecord | None:
        record = self.model.get(key)
        if record is None or (record.expiration is not None and record.expiration <= self.clock()):
            return None
        return record

    def _holds(self, key: str, owner: str) -> bool:
        record = self.model.get(key)
        return record is not None and record.status is IP and record.owner == owner

    def _expected_claim(self, key: str, owner: str, lease: float) -> ClaimStatus:
        now = self.clock()
        raw = self.model.get(key)
        live = self._live(key)
        if live is not None and live.status is DONE:
            return ClaimStatus.ALREADY_COMPLETED
        if (
            live is not None
            and live.owner != owner
            and live.lease_expires_at is not None
            and live.lease_expires_at > now
        ):
            return ClaimStatus.IN_PROGRESS_ELSEWHERE
        pending = raw.pending_bundle_key if raw is not None else None
        # A pending announcement is checked whoever held the lease, the claimer included.
        in_progress = raw is not None and raw.status is IP
        if in_progress and pending is not None and key in self.uploaded.get(pending, ()):
            self.model[key] = IdempotencyRecord(
                key, DONE, owner, None, None, pending, math.ceil(now) + TTL
            )
            return ClaimStatus.RECOVERED
        self.model[key] = IdempotencyRecord(
            key, IP, owner, lease, pending, None, math.ceil(lease) + TTL
        )
        return ClaimStatus.CLAIMED

    # ------------------------------------------------------------------ operations

    @rule(owner=owners, keys=key_lists, seconds=st.sampled_from([30, 60, 90]))
    def claim(self, owner: str, keys: list[str], seconds: int) -> None:
        """Claim keys; each status matches the model."""
        lease = self.clock() + seconds
        results = self.store.claim(keys, owner=owner, lease_expires_at=lease)
        assert list(results) == list(dict.fromkeys(keys))
        for key, result in results.items():
            assert result.status is self._expected_claim(key, owner, lease), (key, result)

    @rule(owner=owners, keys=key_lists, bundle=bundles)
    def mark_pending(self, owner: str, keys: list[str], bundle: str) -> None:
        """Announce a bundle that is not uploaded yet; only holders succeed."""
        if bundle in self.uploaded:
            return
        results = self.store.mark_pending(keys, owner=owner, bundle_key=bundle)
        for key, result in results.items():
            if self._holds(key, owner):
                assert result.status is UpdateStatus.OK
                self.model[key] = replace(self.model[key], pending_bundle_key=bundle)
            else:
                assert result.status is UpdateStatus.LEASE_LOST

    @rule(bundle=bundles, keys=key_lists)
    def upload(self, bundle: str, keys: list[str]) -> None:
        """A bundle becomes durable in S3 holding some keys (once per bundle key)."""
        if bundle not in self.uploaded:
            self.uploaded[bundle] = frozenset(keys)
            self.locator.add(bundle, keys)

    @rule(owner=owners, keys=key_lists, bundle=bundles)
    def complete(self, owner: str, keys: list[str], bundle: str) -> None:
        """Only the holder completes; a record already completed in the same bundle is OK
        for anyone (a repeat, or a late holder whose record a taker recovered into it)."""
        now = self.clock()
        results = self.store.complete(keys, owner=owner, bundle_key=bundle)
        for key, result in results.items():
            record = self.model.get(key)
            if self._holds(key, owner):
                assert result.status is UpdateStatus.OK
                self.model[key] = IdempotencyRecord(
                    key, DONE, owner, None, None, bundle, math.ceil(now) + TTL
                )
            elif record is not None and record.status is DONE and record.bundle_key == bundle:
                assert result.status is UpdateStatus.OK
            else:
                assert result.status is UpdateStatus.LEASE_LOST

    @rule(owner=owners, keys=key_lists)
    def release(self, owner: str, keys: list[str]) -> None:
        """Only the holder releases; releasing a released record is OK."""
        results = self.store.release(keys, owner=owner)
        for key, result in results.items():
            record = self.model.get(key)
            if self._holds(key, owner) and record is not None:
                assert result.status is UpdateStatus.OK
                self.model[key] = replace(record, owner=None, lease_expires_at=0.0)
            elif record is not None and record.status is IP and record.owner is None:
                assert result.status is UpdateStatus.OK
            else:
                assert result.status is UpdateStatus.LEASE_LOST

    @rule(seconds=st.sampled_from([30, 60, 90, 400]))
    def advance(self, seconds: int) -> None:
        """Time passes (around lease and TTL boundaries)."""
        self.clock.advance(seconds)

    @invariant()
    def store_matches_model(self) -> None:
        """Every key's stored record is the model's (absent once past its TTL)."""
        for key in KEYS:
            assert self.store.get(key) == self._live(key), key
