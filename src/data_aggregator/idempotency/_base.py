"""The idempotency store base class: bulk claim / complete / release (and mark_pending).

The base class is the orchestrator: it de-duplicates keys, runs a store's per-key
primitives (concurrently when the store allows it), turns their outcomes into per-key
results, turns per-key store failures into ``ERROR`` results, and runs crash recovery
through a `BundleLocator`. A store implements five small primitives, each one
conditional write (or read) on one key; a store with a native multi-key write may also
override the bulk hooks (``_claim_records`` ...), which by default run the primitives.
"""

from __future__ import annotations

import logging
import math
import numbers
import threading
import time
from abc import ABC, abstractmethod
from concurrent.futures import Future, ThreadPoolExecutor, wait
from decimal import Decimal
from typing import TYPE_CHECKING, TypeAlias, TypeVar

from data_aggregator import _deadline
from data_aggregator.exceptions import (
    ErrorCode,
    IdempotencyConfigurationError,
    IdempotencyError,
    IdempotencyStoreError,
    LeaseLostError,
)
from data_aggregator.idempotency._types import (
    DEFAULT_TTL_SECONDS,
    ClaimResult,
    ClaimStatus,
    IdempotencyRecord,
    RecordStatus,
    UpdateResult,
    UpdateStatus,
    WriteOutcome,
)

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable
    from collections.abc import Set as AbstractSet
    from types import TracebackType

    from typing_extensions import Self

    from data_aggregator.idempotency._types import BundleLocator

__all__ = ["IdempotencyStore", "Outcomes", "claim_allowed", "deadline_error"]

logger = logging.getLogger("data_aggregator.idempotency")

_T = TypeVar("_T")
_R = TypeVar("_R")

#: What a bulk hook returns: per key, the write's outcome or the error that failed that key.
Outcomes: TypeAlias = "dict[str, WriteOutcome | IdempotencyError]"


def claim_allowed(record: IdempotencyRecord | None, owner: str, now: float) -> bool:
    """The claim condition every store applies atomically.

    A key may be claimed when it has no record, when its record's TTL has passed, or when
    it is in progress and either its lease has ended or ``owner`` already holds it (so that
    a retried claim request succeeds). A completed record is never claimed before its TTL.
    """
    if record is None or record.is_expired(now):
        return True
    if record.status is not RecordStatus.IN_PROGRESS:
        return False
    lease_over = record.lease_expires_at is not None and record.lease_expires_at <= now
    return lease_over or record.owner == owner


def held_by(record: IdempotencyRecord | None, owner: str) -> bool:
    """The condition of ``mark_pending``, ``complete`` and ``release``: ``owner`` holds it.

    Holding does not depend on the clock: a lease that has ended but that nobody took over
    is still its owner's (completing it then is correct and avoids a second bundle).
    """
    return (
        record is not None and record.status is RecordStatus.IN_PROGRESS and record.owner == owner
    )


def deadline_error() -> IdempotencyError:
    """The error of a key whose write did not answer before the invocation's deadline."""
    return IdempotencyStoreError(
        "the store did not answer before the invocation's deadline",
        ErrorCode.DEADLINE_EXCEEDED,
        {"operation": "store"},
    )


def _abandon(future: Future[_R] | None, late: Callable[[_T], _R], item: _T) -> _R:
    if future is not None:  # None: never submitted (no time left)
        future.cancel()  # not started yet: never runs; running: left to finish unobserved
    return late(item)


def _unique(keys: Iterable[str]) -> list[str]:
    if isinstance(keys, str | bytes):  # one key given bare would claim its characters
        msg = "keys must be an iterable of keys, not a single string"
        raise IdempotencyError(msg, ErrorCode.IDEMPOTENCY_INVALID_ARGUMENT)
    try:
        ordered = list(dict.fromkeys(keys))
    except TypeError:  # not iterable, or an unhashable key
        msg = "keys must be an iterable of non-empty strings"
        raise IdempotencyError(msg, ErrorCode.IDEMPOTENCY_INVALID_ARGUMENT) from None
    for key in ordered:
        if not _is_token(key):
            msg = "idempotency keys must be non-empty strings"
            raise IdempotencyError(
                msg, ErrorCode.IDEMPOTENCY_INVALID_ARGUMENT, {"key_type": type(key).__name__}
            )
    return ordered


def _is_token(value: object) -> bool:
    """A non-empty string (typed callers pass ``str``; untyped ones may not)."""
    return isinstance(value, str) and bool(value)


def _check_token(name: str, value: str) -> None:
    if not _is_token(value):
        msg = f"{name} must be a non-empty string"
        raise IdempotencyError(msg, ErrorCode.IDEMPOTENCY_INVALID_ARGUMENT, {"argument": name})


def _finite(given: object) -> int | float | None:
    """``given`` as a finite ``int``/``float`` when it is a real number (``Decimal`` and
    NumPy scalars converted to ``float``); ``None`` for ``bool``, ``inf``, ``NaN``,
    strings and other non-numbers."""
    if isinstance(given, bool):
        return None
    if isinstance(given, int):
        return given
    if not isinstance(given, numbers.Real | Decimal):
        return None
    try:
        value = float(given)
    except (OverflowError, ValueError):
        return None
    return value if math.isfinite(value) else None


def _checked_lease(lease_expires_at: float) -> float:
    """``lease_expires_at`` as a finite number of epoch seconds (see `_finite`)."""
    value = _finite(lease_expires_at)
    if value is None:
        msg = "lease_expires_at must be a finite number of epoch seconds"
        raise IdempotencyError(
            msg, ErrorCode.IDEMPOTENCY_INVALID_ARGUMENT, {"argument": "lease_expires_at"}
        )
    return value


def _checked_ttl(ttl_seconds: int) -> int:
    """``ttl_seconds`` as a whole number of seconds; zero or less would forget a record at
    once, so it is an argument error, as is anything `_finite` refuses."""
    value = _finite(ttl_seconds)
    if value is None or int(value) <= 0:
        msg = "ttl_seconds must be a positive number of seconds"
        raise IdempotencyError(
            msg, ErrorCode.IDEMPOTENCY_INVALID_ARGUMENT, {"ttl_seconds": repr(ttl_seconds)[:50]}
        )
    return int(value)


def _lease_lost(key: str, owner: str, current: IdempotencyRecord | None) -> LeaseLostError:
    return LeaseLostError(
        "the record's lease is not held by this owner",
        context={
            "idempotency_key": key,
            "owner": owner,
            "current_owner": current.owner if current else None,
            "current_status": current.status if current else None,
        },
    )


class IdempotencyStore(ABC):
    """Bulk, lossless idempotency over a store of per-key leases.

    The life of a record, driven by the caller (the processor): two writes per record.

    ```text
    claim(bundle_key=K) ──► upload bundle K ──► complete(K)
      │                          │
      └── not put in K ──────────┴──► release(bundle_key=K)   (only if K was never committed
                                                                or does not hold it)
    ```

    * [`claim`][data_aggregator.idempotency.IdempotencyStore.claim] takes a lease ending at
      ``lease_expires_at`` on each key, or tells that the key is completed, or held by another
      live lease. With ``bundle_key=K`` the same write announces that the holder will put
      the record in bundle ``K`` (and nowhere else); after a crash, the next claimer asks the
      [`BundleLocator`][data_aggregator.idempotency.BundleLocator] whether ``K`` holds it
      (``RECOVERED``) instead of bundling it a second time.
    * [`complete`][data_aggregator.idempotency.IdempotencyStore.complete] marks them completed
      in ``K`` once ``K`` is durably in S3.
    * [`release`][data_aggregator.idempotency.IdempotencyStore.release] drops the lease on
      records that could not be bundled, and withdraws the announcement of ``K``.
    * [`mark_pending`][data_aggregator.idempotency.IdempotencyStore.mark_pending] announces a
      bundle separately, for callers that only learn the bundle after claiming (one more
      write per record).

    Every bulk method takes many keys and returns ``{key: result}`` in first-seen order
    (duplicates are merged). A store failure on one key becomes that key's ``ERROR``
    result; only
    [`IdempotencyConfigurationError`][data_aggregator.exceptions.IdempotencyConfigurationError]
    (missing table, wrong key schema, access denied) is raised, for the whole call.

    Subclasses implement the primitives `_claim_record`, `_set_pending`,
    `_complete_record`, `_release_record` and `_get_record`. Each is one
    atomic conditional operation on one key; each raises ``IdempotencyStoreError`` for a
    transient failure (it fails that key only), ``IdempotencyConfigurationError`` for a
    misconfiguration, and may raise another ``IdempotencyError`` for a permanent failure
    of that key. The bulk hooks `_claim_records`, `_set_pending_records`,
    `_complete_records` and `_release_records` run the primitives over many
    keys (concurrently); a store may override them to write several keys per request, as
    long as each key's outcome is one the primitive could have given.

    Args:
        ttl_seconds: How long a completed record is remembered (its ``expiration`` is
            set to completion time plus this); in-progress records expire this long after
            their lease.
        bundle_locator: Consulted on takeover of a lease whose holders announced pending
            bundles. Without one, such claims return ``CLAIMED`` with
            ``pending_bundle_keys`` set and a warning is logged.
        clock: A ``time.time``-like callable (epoch seconds); tests inject a fake one.
        max_workers: How many primitives run at once (1: one after another, inline).
    """

    def __init__(
        self,
        *,
        ttl_seconds: int = DEFAULT_TTL_SECONDS,
        bundle_locator: BundleLocator | None = None,
        clock: Callable[[], float] = time.time,
        max_workers: int = 1,
    ) -> None:
        self.ttl_seconds = _checked_ttl(ttl_seconds)
        self.bundle_locator = bundle_locator
        self.clock = clock
        self._max_workers = max(1, int(max_workers))
        self._executor: ThreadPoolExecutor | None = None
        self._executor_lock = threading.Lock()

    # ------------------------------------------------------------------ primitives

    @abstractmethod
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
        """Atomically, if `claim_allowed` (record, owner, now): set status in
        progress, owner, ``lease_expires_at`` and ``expiration``, drop ``bundle_key``
        (the completed one), keep ``pending_bundle_keys`` and add the given ``bundle_key``
        to them (when not ``None``). Report the record as it was before (applied) or as it
        refused (not applied)."""

    @abstractmethod
    def _set_pending(self, key: str, *, owner: str, bundle_key: str) -> WriteOutcome:
        """Atomically, if `held_by` (record, owner): add ``bundle_key`` to
        ``pending_bundle_keys``."""

    @abstractmethod
    def _complete_record(
        self, key: str, *, owner: str, bundle_key: str, expiration: int
    ) -> WriteOutcome:
        """Atomically, if `held_by` (record, owner): set status completed,
        ``bundle_key`` and ``expiration``; drop the lease and every announcement
        (``pending_bundle_keys``); keep ``owner``."""

    @abstractmethod
    def _release_record(self, key: str, *, owner: str, bundle_key: str | None) -> WriteOutcome:
        """Atomically, if `held_by` (record, owner): drop ``owner``, set
        ``lease_expires_at`` to 0 (claimable at once) and remove ``bundle_key`` (when not
        ``None``) from ``pending_bundle_keys``; keep the other announcements."""

    @abstractmethod
    def _get_record(self, key: str) -> IdempotencyRecord | None:
        """Read one record (strongly consistent), expired or not; ``None`` if absent."""

    # ------------------------------------------------------------------ bulk hooks
    #
    # Each runs one primitive per key, at most ``max_workers`` at a time, and returns
    # ``{key: WriteOutcome | IdempotencyError}`` for every key given (distinct, non-empty).
    # An override must give each key an outcome its primitive could have given, with one
    # latitude: for mark_pending, complete and release an *applied* outcome may carry
    # ``record=None`` (only a refusal's record is used). It must let
    # ``IdempotencyConfigurationError`` propagate and turn other per-key failures into
    # that key's ``IdempotencyError``.

    def _claim_records(
        self,
        keys: list[str],
        *,
        owner: str,
        now: float,
        lease_expires_at: float,
        expiration: int,
        bundle_key: str | None,
    ) -> Outcomes:
        """`_claim_record` on every key."""
        return self._map(
            keys,
            lambda key: self._claim_record(
                key,
                owner=owner,
                now=now,
                lease_expires_at=lease_expires_at,
                expiration=expiration,
                bundle_key=bundle_key,
            ),
        )

    def _set_pending_records(self, keys: list[str], *, owner: str, bundle_key: str) -> Outcomes:
        """`_set_pending` on every key."""
        return self._map(
            keys, lambda key: self._set_pending(key, owner=owner, bundle_key=bundle_key)
        )

    def _complete_records(
        self, keys: list[str], *, owner: str, bundle_key: str, expiration: int
    ) -> Outcomes:
        """`_complete_record` on every key."""
        return self._map(
            keys,
            lambda key: self._complete_record(
                key, owner=owner, bundle_key=bundle_key, expiration=expiration
            ),
        )

    def _release_records(self, keys: list[str], *, owner: str, bundle_key: str | None) -> Outcomes:
        """`_release_record` on every key."""
        return self._map(
            keys, lambda key: self._release_record(key, owner=owner, bundle_key=bundle_key)
        )

    # ------------------------------------------------------------------ public API

    def claim(
        self,
        keys: Iterable[str],
        *,
        owner: str,
        lease_expires_at: float,
        bundle_key: str | None = None,
    ) -> dict[str, ClaimResult]:
        """Take a lease ending at ``lease_expires_at`` on each key.

        Claim each key once per invocation. A repeated claim by the same owner succeeds
        (it is how a retried request finds its own write), but the bundles that earlier
        holders announced for the record are then checked like a takeover's (all but
        this claim's own ``bundle_key``): if one holds it, the answer is ``RECOVERED``
        and the record is completed in it.

        Args:
            keys: Idempotency keys.
            owner: A token unique to this invocation (e.g. the request id plus a random
                suffix); the lease holder's identity for the later calls.
            lease_expires_at: Epoch seconds; see
                [`lease_expiry`][data_aggregator.idempotency.lease_expiry].
            bundle_key: The bundle the caller will put these records in, if they are
                bundled at all (and in no other): announced in the same write as the
                lease, so a crash at any later point is recovered by checking that bundle.
                Put a claimed record in no other bundle; release it with the same
                ``bundle_key`` if that bundle was never committed or does not hold it.

        Returns:
            ``{key: ClaimResult}``. See [`ClaimStatus`][data_aggregator.idempotency.ClaimStatus]
            for what to do with each.
        """
        _check_token("owner", owner)
        if bundle_key is not None:
            _check_token("bundle_key", bundle_key)
        lease_expires_at = _checked_lease(lease_expires_at)
        ordered = _unique(keys)
        now = self.clock()
        expiration = math.ceil(lease_expires_at) + self.ttl_seconds
        outcomes = self._claim_records(
            ordered,
            owner=owner,
            now=now,
            lease_expires_at=lease_expires_at,
            expiration=expiration,
            bundle_key=bundle_key,
        )
        results: dict[str, ClaimResult] = {}
        to_check: dict[str, tuple[frozenset[str], str | None]] = {}
        for key in ordered:
            outcome = outcomes[key]
            if isinstance(outcome, IdempotencyError):
                results[key] = ClaimResult(key, ClaimStatus.ERROR, error=outcome)
            elif not outcome.applied:
                results[key] = self._refused_claim(key, outcome.record)
            else:
                previous = outcome.record
                pending: frozenset[str] = frozenset()
                previous_owner: str | None = None
                if previous is not None and previous.status is RecordStatus.IN_PROGRESS:
                    # Announcements are checked even under our own name: a retried
                    # takeover whose first answer was lost finds our lease, with the
                    # crashed holder's announcements still in it. Our own bundle is not
                    # committed yet (we claim before we write), so it is not checked.
                    pending = previous.pending_bundle_keys - {bundle_key}
                    if previous.owner != owner:
                        previous_owner = previous.owner
                if pending:
                    to_check[key] = (pending, previous_owner)
                    continue
                results[key] = ClaimResult(
                    key,
                    ClaimStatus.CLAIMED,
                    lease_expires_at=lease_expires_at,
                    previous_owner=previous_owner,
                )
        if to_check:
            results.update(
                self._recover(
                    to_check, owner=owner, lease_expires_at=lease_expires_at, bundle_key=bundle_key
                )
            )
        self._log_errors("claim", results.values())
        return {key: results[key] for key in ordered}

    def mark_pending(
        self, keys: Iterable[str], *, owner: str, bundle_key: str
    ) -> dict[str, UpdateResult]:
        """Announce that ``owner`` is putting these records in bundle ``bundle_key``.

        Call it before the bundle's upload completes (before ``PutObject`` or
        ``CompleteMultipartUpload``). Leave out of the bundle every record whose result is
        not ``OK``: its lease is lost, or the announcement is not known to be stored.
        """
        _check_token("owner", owner)
        _check_token("bundle_key", bundle_key)
        ordered = _unique(keys)
        outcomes = self._set_pending_records(ordered, owner=owner, bundle_key=bundle_key)
        results = {
            key: self._update_result(key, owner, outcomes[key], lambda _r: False) for key in ordered
        }
        self._log_errors("mark_pending", results.values())
        return results

    def complete(
        self,
        keys: Iterable[str],
        *,
        owner: str,
        bundle_key: str,
        ttl_seconds: int | None = None,
    ) -> dict[str, UpdateResult]:
        """Mark records completed in ``bundle_key``, which must be durably in S3.

        Only the lease holder can complete a record. ``ttl_seconds`` overrides the store's
        TTL for these records (positive, like the store's). A record found already
        completed in the same bundle reports ``OK``: a retried request, or a record that
        another invocation took over and recovered into this very bundle.

        Raises:
            IdempotencyError: ``ttl_seconds`` is not positive (``IDEMPOTENCY_INVALID_ARGUMENT``).
        """
        _check_token("owner", owner)
        _check_token("bundle_key", bundle_key)
        ordered = _unique(keys)
        ttl = self.ttl_seconds if ttl_seconds is None else _checked_ttl(ttl_seconds)
        expiration = math.ceil(self.clock()) + ttl

        def already_done(record: IdempotencyRecord) -> bool:
            return record.status is RecordStatus.COMPLETED and record.bundle_key == bundle_key

        outcomes = self._complete_records(
            ordered, owner=owner, bundle_key=bundle_key, expiration=expiration
        )
        results = {
            key: self._update_result(key, owner, outcomes[key], already_done) for key in ordered
        }
        self._log_errors("complete", results.values())
        return results

    def release(
        self, keys: Iterable[str], *, owner: str, bundle_key: str | None = None
    ) -> dict[str, UpdateResult]:
        """Drop ``owner``'s lease on records it could not bundle: claimable at once.

        ``bundle_key`` withdraws that announcement too: pass it only when that bundle
        does not hold the records (it was never committed, or committed without them).
        Never release a record that may be in an uploaded bundle with that bundle's key:
        release it without ``bundle_key``, or leave the lease to expire (announcements
        survive either way, so a takeover checks the bundle). A completed record is never
        released.
        """
        _check_token("owner", owner)
        if bundle_key is not None:
            _check_token("bundle_key", bundle_key)
        ordered = _unique(keys)

        def already_released(record: IdempotencyRecord) -> bool:
            return record.status is RecordStatus.IN_PROGRESS and record.owner is None

        outcomes = self._release_records(ordered, owner=owner, bundle_key=bundle_key)
        results = {
            key: self._update_result(key, owner, outcomes[key], already_released) for key in ordered
        }
        self._log_errors("release", results.values())
        return results

    def get(self, key: str) -> IdempotencyRecord | None:
        """The record of ``key``, or ``None`` when absent or past its TTL."""
        record = self._get_record(key)
        if record is None or record.is_expired(self.clock()):
            return None
        return record

    def close(self) -> None:
        """Stop the worker threads (the store can still be used; they restart on demand)."""
        with self._executor_lock:
            executor, self._executor = self._executor, None
        if executor is not None:
            executor.shutdown(wait=True)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # ------------------------------------------------------------------ internals

    def _refused_claim(self, key: str, record: IdempotencyRecord | None) -> ClaimResult:
        if record is None:  # a store that refuses without a record breaks the contract
            error = IdempotencyStoreError(
                "the store refused the claim but returned no record",
                context={"idempotency_key": key},
            )
            return ClaimResult(key, ClaimStatus.ERROR, error=error)
        if record.status is RecordStatus.COMPLETED:
            return ClaimResult(key, ClaimStatus.ALREADY_COMPLETED, bundle_key=record.bundle_key)
        return ClaimResult(
            key, ClaimStatus.IN_PROGRESS_ELSEWHERE, lease_expires_at=record.lease_expires_at
        )

    def _recover(
        self,
        to_check: dict[str, tuple[frozenset[str], str | None]],
        *,
        owner: str,
        lease_expires_at: float,
        bundle_key: str | None,
    ) -> dict[str, ClaimResult]:
        """Resolve claims of records announced as pending in earlier holders' bundles.

        ``to_check`` maps each key to the bundles announced for it and its previous owner
        (``None`` when it was the claimer). Each bundle is asked once. A record held by one
        of its bundles is completed in it (``RECOVERED``); a record that none of them holds
        stays claimed (``CLAIMED``). When a bundle's answer is unknown and no other holds
        the record, or completing fails, the record is an ``ERROR`` and the lease just
        taken is released again (best effort, withdrawing ``bundle_key``), so that the next
        claim, whoever makes it, checks the bundles again.
        """
        bundles = sorted({bundle for pending, _ in to_check.values() for bundle in pending})
        # Each bundle is a read of its own (a GET, a 404 for one never committed): they go
        # out side by side, so records whose holders died one after another, each
        # announcing a bundle of its own, cost one read's time, not one per holder.
        located = self._by_key(
            bundles, lambda bundle: self._locate(bundle, self._count(to_check, bundle))
        )
        known = {b: keys for b, keys in located.items() if not isinstance(keys, IdempotencyError)}
        failures = {b: err for b, err in located.items() if isinstance(err, IdempotencyError)}
        results: dict[str, ClaimResult] = {}
        unresolved: list[str] = []
        found: dict[str, list[tuple[str, str | None]]] = {}
        for key, (pending, previous_owner) in to_check.items():
            checked = tuple(sorted(pending))
            holder = next((b for b in checked if b in known and key in known[b]), None)
            if holder is not None:
                found.setdefault(holder, []).append((key, previous_owner))
                continue
            unknown = next((failures[b] for b in checked if b in failures), None)
            if unknown is not None:
                results[key] = ClaimResult(
                    key, ClaimStatus.ERROR, pending_bundle_keys=checked, error=unknown
                )
                unresolved.append(key)
                continue
            results[key] = ClaimResult(
                key,
                ClaimStatus.CLAIMED,
                lease_expires_at=lease_expires_at,
                pending_bundle_keys=checked,
                previous_owner=previous_owner,
            )
        for holder, items in found.items():
            completed = self.complete([key for key, _ in items], owner=owner, bundle_key=holder)
            for key, previous_owner in items:
                done = completed[key]
                if done.ok:
                    results[key] = ClaimResult(
                        key,
                        ClaimStatus.RECOVERED,
                        bundle_key=holder,
                        previous_owner=previous_owner,
                    )
                else:
                    results[key] = ClaimResult(
                        key,
                        ClaimStatus.ERROR,
                        pending_bundle_keys=tuple(sorted(to_check[key][0])),
                        error=done.error,
                    )
                    unresolved.append(key)
            logger.info(
                "recovered records already in a bundle",
                extra={"bundle_key": holder, "records": len(items)},
            )
        if unresolved:
            self.release(unresolved, owner=owner, bundle_key=bundle_key)
        return results

    @staticmethod
    def _count(to_check: dict[str, tuple[frozenset[str], str | None]], bundle: str) -> int:
        return sum(1 for pending, _ in to_check.values() if bundle in pending)

    def _locate(self, bundle_key: str, records: int) -> AbstractSet[str] | IdempotencyError:
        """Ask the locator which keys ``bundle_key`` holds; an error when it cannot tell."""
        locator = self.bundle_locator
        if locator is None:
            logger.warning(
                "taking over records pending in a bundle without a bundle locator",
                extra={"bundle_key": bundle_key, "records": records},
            )
            return frozenset()
        failure: Exception | None = None
        try:
            contained = locator.bundled_keys(bundle_key)
        except Exception as exc:  # noqa: BLE001 - a locator failure fails its records only
            contained, failure = None, exc
        if contained is not None:
            return contained
        error = IdempotencyStoreError(
            "cannot tell whether the pending bundle holds the records",
            ErrorCode.IDEMPOTENCY_BUNDLE_UNVERIFIED,
            {"bundle_key": bundle_key, "records": records},
        )
        error.__cause__ = failure
        return error

    @staticmethod
    def _update_result(
        key: str,
        owner: str,
        outcome: WriteOutcome | IdempotencyError,
        counts_as_done: Callable[[IdempotencyRecord], bool],
    ) -> UpdateResult:
        if isinstance(outcome, IdempotencyError):
            return UpdateResult(key, UpdateStatus.ERROR, error=outcome)
        if outcome.applied:
            return UpdateResult(key, UpdateStatus.OK)
        current = outcome.record
        if current is not None and counts_as_done(current):
            return UpdateResult(key, UpdateStatus.OK, current=current)
        return UpdateResult(
            key, UpdateStatus.LEASE_LOST, current=current, error=_lease_lost(key, owner, current)
        )

    def _guarded(
        self, operation: Callable[[str], WriteOutcome], key: str
    ) -> WriteOutcome | IdempotencyError:
        try:
            return operation(key)
        except IdempotencyConfigurationError:
            raise
        except IdempotencyError as exc:
            return exc

    def _map(self, keys: list[str], operation: Callable[[str], WriteOutcome]) -> Outcomes:
        """Run ``operation`` on every key, at most ``max_workers`` at a time; a key whose
        write has not answered by the invocation's deadline is an ``ERROR``."""
        return self._by_key(keys, lambda key: self._guarded(operation, key))

    def _by_key(
        self, keys: list[str], task: Callable[[str], _R | IdempotencyError]
    ) -> dict[str, _R | IdempotencyError]:
        """``{key: task(key)}``, at most ``max_workers`` at a time; a key whose task has
        not answered by the invocation's deadline gets `deadline_error`, unawaited."""
        done = self._run_all(keys, task, late=lambda _key: deadline_error())
        return dict(zip(keys, done, strict=True))

    def _run_all(
        self,
        items: list[_T],
        task: Callable[[_T], _R],
        *,
        late: Callable[[_T], _R] | None = None,
    ) -> list[_R]:
        """``[task(item) for item in items]``, at most ``max_workers`` at a time.

        With ``late`` and a current invocation deadline (`data_aggregator._deadline`), the
        wait ends at the deadline: an item whose task has not finished gets ``late(item)``
        and its task is abandoned (a write it still makes is one the caller reports as
        failed, which the protocol allows); the time left is read after submitting, and a
        task not yet submitted when the deadline passes is never started. An exception
        from any task (``task`` should let only configuration errors escape) cancels the
        tasks not yet started and propagates. Tasks must not call ``_run_all`` themselves
        (the pool is bounded: nested waits could deadlock).
        """
        deadline = _deadline.current() if late is not None else None
        if self._max_workers == 1 or (len(items) <= 1 and deadline is None):
            return [task(item) for item in items]
        executor = self._get_executor()
        futures: list[Future[_R] | None] = []
        try:
            for item in items:
                # Submitting can start a worker thread, which takes long on a starved host:
                # once the deadline has passed, what is left is not started at all.
                started = deadline is None or not deadline.expired()
                futures.append(_deadline.submit(executor, task, item) if started else None)
            if deadline is not None and late is not None:
                # The time left is read now that every task is submitted.
                wait([f for f in futures if f is not None], timeout=_deadline.wait_timeout())
                return [
                    future.result()
                    if future is not None and future.done()
                    else _abandon(future, late, item)
                    for future, item in zip(futures, items, strict=True)
                ]
            return [future.result() for future in futures if future is not None]
        except BaseException:
            for future in futures:
                if future is not None:
                    future.cancel()
            raise

    def _get_executor(self) -> ThreadPoolExecutor:
        with self._executor_lock:
            if self._executor is None:
                self._executor = ThreadPoolExecutor(
                    max_workers=self._max_workers, thread_name_prefix="idempotency"
                )
            return self._executor

    @staticmethod
    def _log_errors(operation: str, results: Iterable[ClaimResult | UpdateResult]) -> None:
        errors = [r for r in results if r.error is not None]
        if not errors:
            return
        first = errors[0].error
        logger.warning(
            "idempotency store operation failed for some records",
            extra={
                "operation": operation,
                "failed_records": len(errors),
                "first_error": first.to_dict() if first is not None else None,
            },
        )
