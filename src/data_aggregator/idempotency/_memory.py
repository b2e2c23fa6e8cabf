"""An in-memory idempotency store with the DynamoDB store's semantics (thread-safe)."""

from __future__ import annotations

import dataclasses
import threading
import time
from typing import TYPE_CHECKING

from data_aggregator.idempotency._base import IdempotencyStore, claim_allowed, held_by
from data_aggregator.idempotency._types import (
    DEFAULT_TTL_SECONDS,
    IdempotencyRecord,
    RecordStatus,
    WriteOutcome,
)

if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

    from data_aggregator.idempotency._types import BundleLocator

__all__ = ["InMemoryIdempotencyStore"]


class InMemoryIdempotencyStore(IdempotencyStore):
    """Idempotency records in a dictionary, for tests and local runs.

    Same conditions, same results as
    [`DynamoDBIdempotencyStore`][data_aggregator.idempotency.DynamoDBIdempotencyStore] (a shared
    contract test suite runs against both). Every primitive runs under one lock, so the store is
    safe to share between threads; records live as long as the object. As in DynamoDB, a record
    past its TTL is claimable again and
    [`get`][data_aggregator.idempotency.IdempotencyStore.get] reports it absent; a pending
    announcement it carries is still checked before the record is bundled again.

    Args:
        ttl_seconds: See [`IdempotencyStore`][data_aggregator.idempotency.IdempotencyStore].
        bundle_locator: See [`IdempotencyStore`][data_aggregator.idempotency.IdempotencyStore].
        clock: See [`IdempotencyStore`][data_aggregator.idempotency.IdempotencyStore].
        max_workers: Threads per bulk call (default 1: inline, which is fastest here;
            more only to exercise concurrency, e.g. in a subclass that injects latency).
    """

    def __init__(
        self,
        *,
        ttl_seconds: int = DEFAULT_TTL_SECONDS,
        bundle_locator: BundleLocator | None = None,
        clock: Callable[[], float] = time.time,
        max_workers: int = 1,
    ) -> None:
        super().__init__(
            ttl_seconds=ttl_seconds,
            bundle_locator=bundle_locator,
            clock=clock,
            max_workers=max_workers,
        )
        self._records: dict[str, IdempotencyRecord] = {}
        self._lock = threading.Lock()

    def records(self) -> dict[str, IdempotencyRecord]:
        """A snapshot of every stored record (expired ones included), for assertions."""
        with self._lock:
            return dict(self._records)

    def _claim_record(
        self,
        key: str,
        *,
        owner: str,
        now: float,
        lease_expires_at: float,
        expiration: int,
        bundle_key: str | None,
    ) -> WriteOutcome:
        with self._lock:
            current = self._records.get(key)
            if not claim_allowed(current, owner, now):
                return WriteOutcome(applied=False, record=current)
            pending = current.pending_bundle_keys if current else frozenset()
            if bundle_key is not None:
                pending |= {bundle_key}
            self._records[key] = IdempotencyRecord(
                key=key,
                status=RecordStatus.IN_PROGRESS,
                owner=owner,
                lease_expires_at=lease_expires_at,
                pending_bundle_keys=pending,
                expiration=expiration,
            )
            return WriteOutcome(applied=True, record=current)

    def _set_pending(self, key: str, *, owner: str, bundle_key: str) -> WriteOutcome:
        return self._update_held(
            key,
            owner,
            lambda record: {"pending_bundle_keys": record.pending_bundle_keys | {bundle_key}},
        )

    def _complete_record(
        self, key: str, *, owner: str, bundle_key: str, expiration: int
    ) -> WriteOutcome:
        return self._update_held(
            key,
            owner,
            lambda _record: {
                "status": RecordStatus.COMPLETED,
                "bundle_key": bundle_key,
                "expiration": expiration,
                "lease_expires_at": None,
                "pending_bundle_keys": frozenset(),
            },
        )

    def _release_record(self, key: str, *, owner: str, bundle_key: str | None) -> WriteOutcome:
        return self._update_held(
            key,
            owner,
            lambda record: {
                "owner": None,
                "lease_expires_at": 0.0,
                "pending_bundle_keys": record.pending_bundle_keys - {bundle_key},
            },
        )

    def _get_record(self, key: str) -> IdempotencyRecord | None:
        with self._lock:
            return self._records.get(key)

    def _update_held(
        self,
        key: str,
        holder: str,
        changes: Callable[[IdempotencyRecord], dict[str, Any]],
        /,
    ) -> WriteOutcome:
        with self._lock:
            current = self._records.get(key)
            if not held_by(current, holder) or current is None:
                return WriteOutcome(applied=False, record=current)
            self._records[key] = dataclasses.replace(current, **changes(current))
            return WriteOutcome(applied=True, record=current)
