"""A stateful Hypothesis model of the idempotency store contract.

:class:`IdempotencyMachine` drives a store with random interleavings of claim (announcing
a bundle or not), mark_pending, bundle uploads, complete, release (withdrawing a bundle or
not), a locator that cannot tell, and clock advances, and checks every result and every
stored record against a plain dictionary model written from the documented rules (not
from the implementation). Subclasses choose the store (``make_store``).

The rules modelled: a record's announcements are a set. An applied claim keeps the
earlier holders' announcements and adds its own ``bundle_key``; when the record it
replaced was in progress, it checks every announcement but its own through the locator:
a bundle holding the record makes it ``RECOVERED`` (completed in that bundle); none
holding it leaves it ``CLAIMED``, reporting the checked bundles; no holder and one
bundle the locator cannot tell about make it an ``ERROR``, and the lease just taken is
released again, withdrawing the claimer's own announcement. ``mark_pending`` adds to the
set, ``release`` withdraws only the bundle it names, ``complete`` clears the set.
"""

from __future__ import annotations

import math
from dataclasses import replace

from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from data_aggregator.idempotency import (
    ClaimResult,
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
BUNDLES = ("bundle-1", "bundle-2", "bundle-3", "bundle-4")
TTL = 400

key_lists = st.lists(st.sampled_from(KEYS), min_size=1, max_size=4)
owners = st.sampled_from(OWNERS)
bundles = st.sampled_from(BUNDLES)
maybe_bundles = st.none() | bundles

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

    def _check_claim(
        self, key: str, owner: str, lease: float, bundle: str | None, result: ClaimResult
    ) -> None:
        """Check one key's claim result against the rules, and apply it to the model."""
        now = self.clock()
        raw = self.model.get(key)
        live = self._live(key)
        if live is not None and live.status is DONE:
            assert result.status is ClaimStatus.ALREADY_COMPLETED
            assert result.bundle_key == live.bundle_key
            return
        if (
            live is not None
            and live.owner != owner
            and live.lease_expires_at is not None
            and live.lease_expires_at > now
        ):
            assert result.status is ClaimStatus.IN_PROGRESS_ELSEWHERE
            assert result.lease_expires_at == live.lease_expires_at
            return
        # Claimable: the claim is applied, keeping the announcements and adding its own.
        in_progress = raw is not None and raw.status is IP
        announced = raw.pending_bundle_keys if raw is not None and in_progress else frozenset()
        previous_owner = raw.owner if raw is not None and in_progress else None
        if previous_owner == owner:
            previous_owner = None
        # Every earlier announcement is checked, whoever held the lease, but never the
        # claimer's own bundle (it claims before it writes it).
        checked = announced - {bundle}
        holders = {b for b in checked if key in self.uploaded.get(b, ())} - self.locator.unknown
        if holders:
            assert result.status is ClaimStatus.RECOVERED, (key, result)
            assert result.bundle_key in holders
            assert result.previous_owner == previous_owner
            self.model[key] = IdempotencyRecord(
                key, DONE, owner, None, frozenset(), result.bundle_key, math.ceil(now) + TTL
            )
            return
        assert result.pending_bundle_keys == tuple(sorted(checked)), (key, result)
        mine = frozenset() if bundle is None else frozenset({bundle})
        expiration = math.ceil(lease) + TTL
        if checked & self.locator.unknown:
            # Cannot tell: an error, and the lease is released again withdrawing ours.
            assert result.status is ClaimStatus.ERROR, (key, result)
            self.model[key] = IdempotencyRecord(
                key, IP, None, 0.0, (announced | mine) - mine, None, expiration
            )
            return
        assert result.status is ClaimStatus.CLAIMED, (key, result)
        assert result.lease_expires_at == lease
        assert result.previous_owner == previous_owner
        self.model[key] = IdempotencyRecord(
            key, IP, owner, lease, announced | mine, None, expiration
        )

    # ------------------------------------------------------------------ operations

    @rule(owner=owners, keys=key_lists, seconds=st.sampled_from([30, 60, 90]), bundle=maybe_bundles)
    def claim(self, owner: str, keys: list[str], seconds: int, bundle: str | None) -> None:
        """Claim keys, announcing ``bundle`` or not; each result matches the model."""
        lease = self.clock() + seconds
        results = self.store.claim(keys, owner=owner, lease_expires_at=lease, bundle_key=bundle)
        assert list(results) == list(dict.fromkeys(keys))
        for key, result in results.items():
            self._check_claim(key, owner, lease, bundle, result)

    @rule(owner=owners, keys=key_lists, bundle=bundles)
    def mark_pending(self, owner: str, keys: list[str], bundle: str) -> None:
        """Announce one more bundle; only holders succeed."""
        results = self.store.mark_pending(keys, owner=owner, bundle_key=bundle)
        for key, result in results.items():
            record = self.model.get(key)
            if self._holds(key, owner) and record is not None:
                assert result.status is UpdateStatus.OK
                self.model[key] = replace(
                    record, pending_bundle_keys=record.pending_bundle_keys | {bundle}
                )
            else:
                assert result.status is UpdateStatus.LEASE_LOST

    @rule(bundle=bundles, keys=key_lists)
    def upload(self, bundle: str, keys: list[str]) -> None:
        """A bundle becomes durable in S3 holding some keys (once per bundle key)."""
        if bundle not in self.uploaded:
            self.uploaded[bundle] = frozenset(keys)
            self.locator.add(bundle, keys)

    @rule(bundle=bundles, unknown=st.booleans())
    def locator_answers(self, bundle: str, unknown: bool) -> None:
        """The locator can (no longer) tell what ``bundle`` holds (S3 down, unreadable)."""
        if unknown:
            self.locator.unknown.add(bundle)
        else:
            self.locator.unknown.discard(bundle)

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
                    key, DONE, owner, None, frozenset(), bundle, math.ceil(now) + TTL
                )
            elif record is not None and record.status is DONE and record.bundle_key == bundle:
                assert result.status is UpdateStatus.OK
            else:
                assert result.status is UpdateStatus.LEASE_LOST

    @rule(owner=owners, keys=key_lists, bundle=maybe_bundles)
    def release(self, owner: str, keys: list[str], bundle: str | None) -> None:
        """Only the holder releases, withdrawing ``bundle`` alone (if given); releasing a
        released record is OK (and withdraws nothing: it is nobody's)."""
        results = self.store.release(keys, owner=owner, bundle_key=bundle)
        for key, result in results.items():
            record = self.model.get(key)
            if self._holds(key, owner) and record is not None:
                assert result.status is UpdateStatus.OK
                self.model[key] = replace(
                    record,
                    owner=None,
                    lease_expires_at=0.0,
                    pending_bundle_keys=record.pending_bundle_keys - {bundle},
                )
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
