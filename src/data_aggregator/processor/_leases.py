"""The leases one invocation holds in the idempotency store, from claim to end (private).

`Leases` does every store call of an invocation: claim the records, mark each bundle's
records pending just before its upload commits, complete the records of uploaded bundles,
release the rest. Each store failure is decided here, on the records it concerns.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from data_aggregator.exceptions import BundleError, ErrorCode, IdempotencyError
from data_aggregator.idempotency import ClaimStatus, UpdateStatus
from data_aggregator.processor._results import Outcome, Reason

if TYPE_CHECKING:
    from collections.abc import Collection, Sequence

    from data_aggregator.idempotency import IdempotencyStore, UpdateResult
    from data_aggregator.processor._slots import Slot

__all__ = ["Leases"]

logger = logging.getLogger("data_aggregator.processor")


class Leases:
    """One invocation's records in the idempotency store, held under ``owner``."""

    def __init__(self, store: IdempotencyStore, *, owner: str) -> None:
        self._store = store
        self._owner = owner
        #: Idempotency key -> the slot holding its lease.
        self.claimed: dict[str, Slot] = {}
        self._pending: dict[str, str] = {}  # key -> bundle whose commit was attempted
        self._unmarked: set[str] = set()  # keys of bundles whose pending mark failed

    def claim(self, slots: Sequence[Slot], *, lease_expires_at: float) -> None:
        """Claim each slot's record; decide every slot that did not get its lease."""
        by_key = {slot.idempotency_key: slot for slot in slots if slot.idempotency_key}
        try:
            results = self._store.claim(
                by_key, owner=self._owner, lease_expires_at=lease_expires_at
            )
        except IdempotencyError as exc:
            logger.exception("idempotency store failed", extra={"operation": "claim"})
            for slot in slots:
                slot.decide(Outcome.FAILED, Reason.STORE_ERROR, error=exc)
            return
        for key, slot in by_key.items():
            claim = results.get(key)
            if claim is None or claim.status is ClaimStatus.ERROR:
                error = claim.error if claim is not None else None
                slot.decide(Outcome.FAILED, Reason.STORE_ERROR, error=error)
            elif claim.status is ClaimStatus.CLAIMED:
                self.claimed[key] = slot
            elif claim.status is ClaimStatus.ALREADY_COMPLETED:
                slot.decide(
                    Outcome.DUPLICATE, Reason.ALREADY_COMPLETED, bundle_key=claim.bundle_key
                )
            elif claim.status is ClaimStatus.RECOVERED:
                slot.decide(Outcome.DUPLICATE, Reason.RECOVERED, bundle_key=claim.bundle_key)
            else:
                slot.decide(Outcome.FAILED, Reason.IN_PROGRESS_ELSEWHERE)

    def announce(self, bundle_key: str, tokens: Sequence[object]) -> None:
        """Before a bundle's upload commits: mark its records pending in that bundle.

        The engine's ``before_commit``. Raising aborts the bundle (its upload is never
        committed); the records are then remembered (`pending_mark_failed`) and released
        afterwards. Only when this returns is the commit attempted.

        Raises:
            BundleError: the store refused the mark for some record
                (``PENDING_MARK_FAILED``).
            IdempotencyError: the store failed.
        """
        keys = [str(token) for token in tokens]
        try:
            results = self._store.mark_pending(keys, owner=self._owner, bundle_key=bundle_key)
            refused = [key for key in keys if not results[key].ok]
            if refused:
                raise BundleError(
                    "the idempotency store did not accept the bundle's pending mark",
                    ErrorCode.PENDING_MARK_FAILED,
                    {"bundle_key": bundle_key, "records": len(refused)},
                )
        except Exception:
            self._unmarked.update(keys)
            raise
        for key in keys:
            self._pending[key] = bundle_key

    def pending_mark_failed(self, key: str | None) -> bool:
        """Whether the record's bundle was aborted because its pending mark failed."""
        return key in self._unmarked

    def complete(self, bundle_key: str, slots: Sequence[Slot]) -> None:
        """Mark the records of an uploaded bundle completed; fail those not confirmed."""
        keys = [slot.idempotency_key or "" for slot in slots]
        results: dict[str, UpdateResult] = {}
        failure: IdempotencyError | None = None
        try:
            results = self._store.complete(keys, owner=self._owner, bundle_key=bundle_key)
        except IdempotencyError as exc:
            failure = exc
            logger.exception(
                "completing records failed; their pending mark lets a retry recover them",
                extra={"bundle_key": bundle_key, "records": len(keys)},
            )
        for slot, key in zip(slots, keys, strict=True):
            result = results.get(key)
            if result is not None and result.ok:
                continue
            if result is not None:
                lease_lost = result.status is UpdateStatus.LEASE_LOST
                logger.warning(
                    "record bundled but not completed",
                    extra={
                        "bundle_key": bundle_key,
                        "idempotency_key": key,
                        "status": result.status.value,
                        "possible_duplicate": lease_lost,
                    },
                )
            error = result.error if result is not None else failure
            slot.decide(Outcome.FAILED, Reason.COMPLETE_FAILED, error=error, bundle_key=bundle_key)

    def release_leftovers(self, uploaded: Collection[str]) -> None:
        """Release every claimed record that is in none of the ``uploaded`` bundles.

        Never released: records in an uploaded bundle (completed, or recovered by the
        retry through their pending mark), and records announced for a bundle whose
        commit was attempted and failed: the upload may have completed after all, so
        their lease runs out instead and the next claimer checks that bundle. (SQS
        redelivers only after the visibility timeout, which outlasts the lease.) The
        rest, including records of a bundle whose pending mark was refused (never
        committed), are released so that a retry can claim them at once.
        """
        release: list[str] = []
        for key, slot in self.claimed.items():
            if slot.bundled_in is not None:
                continue
            if slot.result is None:  # interrupted before the run decided it
                slot.decide(Outcome.FAILED, Reason.UPLOAD_FAILED)
            announced = self._pending.get(key)
            if announced is not None and announced not in uploaded:
                continue
            release.append(key)
        if not release:
            return
        try:
            results = self._store.release(release, owner=self._owner)
        except IdempotencyError:
            logger.exception(
                "releasing records failed; their leases will expire",
                extra={"records": len(release)},
            )
            return
        failures = sum(1 for key in release if not results[key].ok)
        if failures:
            logger.warning(
                "some releases failed; their leases will expire", extra={"records": failures}
            )
