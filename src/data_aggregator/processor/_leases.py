"""The leases one invocation holds in the idempotency store, from claim to end (private).

`Leases` makes every store call of an invocation: claim the records of one planned bundle
(the claim announces that bundle), complete the records of an uploaded bundle, release the
rest. Two writes per bundled record: its claim and its completion (batched by the store).

Threads: `claim` runs on the claimer thread, `complete` on the completion thread, the rest
on the invocation's thread. None of them decides a slot: each returns what it learned
(`Decision` values), and the invocation applies them on its own thread once the other
threads are done or abandoned.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING

from data_aggregator.exceptions import IdempotencyError
from data_aggregator.idempotency import ClaimStatus, UpdateStatus
from data_aggregator.processor._results import Outcome, Reason

if TYPE_CHECKING:
    from collections.abc import Collection, Sequence

    from data_aggregator.exceptions import DataAggregatorError
    from data_aggregator.idempotency import IdempotencyStore, UpdateResult
    from data_aggregator.processor._slots import Slot

__all__ = ["Decision", "Leases"]

logger = logging.getLogger("data_aggregator.processor")


@dataclass(frozen=True, slots=True)
class Decision:
    """A result for one slot, to be applied on the invocation's thread."""

    slot: Slot
    outcome: Outcome
    reason: Reason | None = None
    error: DataAggregatorError | None = None
    bundle_key: str | None = None

    def apply(self) -> None:
        """Decide the slot."""
        self.slot.decide(self.outcome, self.reason, error=self.error, bundle_key=self.bundle_key)


class Leases:
    """One invocation's records in the idempotency store, held under ``owner`` until
    ``lease_expires_at``."""

    def __init__(self, store: IdempotencyStore, *, owner: str, lease_expires_at: float) -> None:
        self._store = store
        self._owner = owner
        self.lease_expires_at = lease_expires_at
        self._lock = threading.Lock()
        #: Idempotency key -> (the slot holding its lease, the bundle its claim announced).
        self._claimed: dict[str, tuple[Slot, str]] = {}
        #: Bundle key -> keys of the bundle whose commit was attempted.
        self._attempted: dict[str, frozenset[str]] = {}

    def claim(self, slots: Sequence[Slot], *, bundle_key: str) -> tuple[list[Slot], list[Decision]]:
        """Claim the slots' records for bundle ``bundle_key``.

        Returns the slots now held (bundle them into ``bundle_key`` or nowhere) and the
        decisions for the others.
        """
        by_key = {slot.idempotency_key: slot for slot in slots if slot.idempotency_key}
        try:
            results = self._store.claim(
                by_key,
                owner=self._owner,
                lease_expires_at=self.lease_expires_at,
                bundle_key=bundle_key,
            )
        except IdempotencyError as exc:
            logger.exception("idempotency store failed", extra={"operation": "claim"})
            return [], [Decision(slot, Outcome.FAILED, Reason.STORE_ERROR, exc) for slot in slots]
        held: list[Slot] = []
        decisions: list[Decision] = []
        for key, slot in by_key.items():
            claim = results.get(key)
            if claim is None or claim.status is ClaimStatus.ERROR:
                error = claim.error if claim is not None else None
                decisions.append(Decision(slot, Outcome.FAILED, Reason.STORE_ERROR, error))
            elif claim.status is ClaimStatus.CLAIMED:
                held.append(slot)
            elif claim.status is ClaimStatus.ALREADY_COMPLETED:
                decisions.append(
                    Decision(
                        slot,
                        Outcome.DUPLICATE,
                        Reason.ALREADY_COMPLETED,
                        bundle_key=claim.bundle_key,
                    )
                )
            elif claim.status is ClaimStatus.RECOVERED:
                decisions.append(
                    Decision(slot, Outcome.DUPLICATE, Reason.RECOVERED, bundle_key=claim.bundle_key)
                )
            else:
                decisions.append(Decision(slot, Outcome.FAILED, Reason.IN_PROGRESS_ELSEWHERE))
        with self._lock:
            for slot in held:
                self._claimed[slot.idempotency_key or ""] = (slot, bundle_key)
        return held, decisions

    def attempt_commit(self, bundle_key: str, tokens: Sequence[object]) -> None:
        """Record that ``bundle_key``'s commit is about to be attempted with these records:
        from now on, they may be in it, so they are never released."""
        with self._lock:
            self._attempted[bundle_key] = frozenset(str(token) for token in tokens)

    def complete(self, bundle_key: str, slots: Sequence[Slot]) -> list[Decision]:
        """Mark the records of an uploaded bundle completed; decisions for those not
        confirmed (their claim announced the bundle, so a retry recovers them)."""
        keys = [slot.idempotency_key or "" for slot in slots]
        results: dict[str, UpdateResult] = {}
        failure: IdempotencyError | None = None
        try:
            results = self._store.complete(keys, owner=self._owner, bundle_key=bundle_key)
        except IdempotencyError as exc:
            failure = exc
            logger.exception(
                "completing records failed; their announcement lets a retry recover them",
                extra={"bundle_key": bundle_key, "records": len(keys)},
            )
        decisions: list[Decision] = []
        for slot, key in zip(slots, keys, strict=True):
            result = results.get(key)
            if result is not None and result.ok:
                continue
            if result is not None:
                logger.warning(
                    "record bundled but not completed",
                    extra={
                        "bundle_key": bundle_key,
                        "idempotency_key": key,
                        "status": result.status.value,
                        "possible_duplicate": result.status is UpdateStatus.LEASE_LOST,
                    },
                )
            error = result.error if result is not None else failure
            decisions.append(
                Decision(slot, Outcome.FAILED, Reason.COMPLETE_FAILED, error, bundle_key)
            )
        return decisions

    def claimed_slots(self) -> list[Slot]:
        """The slots whose records this invocation holds, in claim order."""
        with self._lock:
            return [slot for slot, _ in self._claimed.values()]

    def release_leftovers(self, uploaded: Collection[str]) -> int:
        """Release every claimed record that is in none of the ``uploaded`` bundles.

        Never released: records in an uploaded bundle (completed, or recovered by the
        retry through their announcement), and records of a bundle whose commit was
        attempted and failed: the upload may have completed after all, so their lease
        runs out instead and the next claimer checks that bundle. (SQS redelivers only
        after the visibility timeout, which outlasts the lease.) The rest are released
        with their announcement withdrawn (their bundle does not hold them), so a retry
        claims them at once with a single write. Returns how many were released.
        """
        with self._lock:
            claimed = list(self._claimed.items())
            attempted = dict(self._attempted)
        by_bundle: dict[str, list[str]] = {}
        for key, (slot, bundle_key) in claimed:
            if slot.bundled_in is not None:
                continue
            if bundle_key not in uploaded and key in attempted.get(bundle_key, ()):
                continue
            by_bundle.setdefault(bundle_key, []).append(key)
        released = 0
        for bundle_key, keys in by_bundle.items():
            try:
                results = self._store.release(keys, owner=self._owner, bundle_key=bundle_key)
            except IdempotencyError:
                logger.exception(
                    "releasing records failed; their leases will expire",
                    extra={"records": len(keys)},
                )
                continue
            failures = sum(1 for key in keys if not results[key].ok)
            released += len(keys) - failures
            if failures:
                logger.warning(
                    "some releases failed; their leases will expire", extra={"records": failures}
                )
        return released
