"""Value types of the idempotency layer: statuses, records, per-key results, protocols.

Everything here is small and dependency-free; `data_aggregator.idempotency` re-exports
the public names.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from enum import Enum
from typing import TYPE_CHECKING, Literal, Protocol, runtime_checkable

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Mapping
    from collections.abc import Set as AbstractSet

    from data_aggregator.context import InvocationContext
    from data_aggregator.exceptions import IdempotencyError

__all__ = [
    "DEFAULT_LEASE_MARGIN_SECONDS",
    "DEFAULT_TTL_SECONDS",
    "BatchMode",
    "BundleLocator",
    "ClaimResult",
    "ClaimStatus",
    "IdempotencyRecord",
    "InMemoryBundleLocator",
    "RecordStatus",
    "UpdateResult",
    "UpdateStatus",
    "WriteOutcome",
    "lease_expiry",
    "lease_expiry_from_context",
]

#: Default time a completed record is remembered: 7 days (the seed's IDEMPOTENCY_TTL_DAYS).
DEFAULT_TTL_SECONDS = 7 * 24 * 3600
#: Default slack added to an invocation's deadline to form its lease (clock skew, in-flight
#: requests the runtime could not cancel).
DEFAULT_LEASE_MARGIN_SECONDS = 10.0

#: How `DynamoDBIdempotencyStore` sends its conditional writes: ``"hybrid"`` (the
#: constructor's default; ``IDEMPOTENCY_BATCH_MODE=auto`` picks it off AWS),
#: claims one request per key and completions and releases up to 100 keys per
#: ``TransactWriteItems``; ``"single"``, one request per key for everything;
#: ``"transact"``, up to 100 keys per ``TransactWriteItems`` for everything; or
#: ``"statements"``, up to 25 keys per PartiQL ``BatchExecuteStatement`` for everything
#: (``auto``'s pick on AWS).
BatchMode = Literal["hybrid", "single", "transact", "statements"]


class RecordStatus(str, Enum):
    """The state a store keeps for one idempotency key."""

    #: Someone holds (or held) a lease on the record and may be bundling it.
    IN_PROGRESS = "IN_PROGRESS"
    #: The record is in a bundle that is durably in S3 (``bundle_key`` names it).
    COMPLETED = "COMPLETED"


class ClaimStatus(Enum):
    """Outcome of [`IdempotencyStore.claim`][data_aggregator.idempotency.IdempotencyStore.claim]
    for one key, and what the caller does."""

    #: You hold the lease until ``lease_expires_at``: bundle the record.
    CLAIMED = "CLAIMED"
    #: Already completed earlier, in ``bundle_key``: acknowledge the message, bundle nothing.
    ALREADY_COMPLETED = "ALREADY_COMPLETED"
    #: A crashed invocation's bundle ``bundle_key`` already holds the record; it has now
    #: been marked completed. Acknowledge the message, bundle nothing.
    RECOVERED = "RECOVERED"
    #: Another live lease holds the record until ``lease_expires_at``: fail the message so
    #: that SQS retries it later.
    IN_PROGRESS_ELSEWHERE = "IN_PROGRESS_ELSEWHERE"
    #: The store (or the bundle locator) failed for this key; ``error`` says why. Fail the
    #: message; ``error.retryable`` tells whether a retry may succeed.
    ERROR = "ERROR"


class UpdateStatus(Enum):
    """Outcome of ``mark_pending``, ``complete`` or ``release`` for one key."""

    #: Done (also when a retried request finds its own earlier write already applied).
    OK = "OK"
    #: You do not hold the record's lease (any more): nothing was changed. ``error`` is a
    #: `LeaseLostError`.
    LEASE_LOST = "LEASE_LOST"
    #: The store failed for this key; ``error`` says why. The outcome is unknown.
    ERROR = "ERROR"


@dataclass(frozen=True, slots=True)
class IdempotencyRecord:
    """One key's state as a store holds it.

    Attributes:
        key: The idempotency key
            ([`record_idempotency_key`][data_aggregator.idempotency.record_idempotency_key]).
        status: In progress or completed.
        owner: The lease holder's token while in progress; ``None`` once released. Kept on
            completed records (it tells a retried ``complete`` that it was its own).
        lease_expires_at: Epoch seconds at which an in-progress lease ends (``0`` once
            released); ``None`` on completed records.
        pending_bundle_keys: In progress only: every bundle a holder announced it is
            putting the record in (with its
            [`claim`][data_aggregator.idempotency.IdempotencyStore.claim] or
            [`mark_pending`][data_aggregator.idempotency.IdempotencyStore.mark_pending]).
            An announcement survives lease takeover, so a later claimer checks every such
            bundle; only a release by its own holder (who never committed that bundle)
            withdraws it, and completion clears them all.
        bundle_key: Completed only: the bundle that holds the record.
        expiration: TTL, epoch seconds; past it the record counts as absent.
    """

    key: str
    status: RecordStatus
    owner: str | None = None
    lease_expires_at: float | None = None
    pending_bundle_keys: frozenset[str] = frozenset()
    bundle_key: str | None = None
    expiration: int | None = None

    def is_expired(self, now: float) -> bool:
        """Whether the TTL has passed (a store may still hold it: DynamoDB deletes lazily)."""
        return self.expiration is not None and self.expiration <= now

    def lease_is_live(self, now: float) -> bool:
        """Whether an unexpired lease holds this record at ``now``."""
        return (
            self.status is RecordStatus.IN_PROGRESS
            and not self.is_expired(now)
            and self.lease_expires_at is not None
            and self.lease_expires_at > now
        )


@dataclass(frozen=True, slots=True)
class WriteOutcome:
    """What a store primitive reports about one conditional write.

    ``applied`` tells whether the write happened. ``record`` is the record as it was just
    before the write when it was applied, or the record that failed the condition when it
    was not (``None`` when there was no record). Both come from the single conditional
    write (DynamoDB's ``ReturnValues``/``ReturnValuesOnConditionCheckFailure=ALL_OLD``).
    An applied ``mark_pending``, ``complete`` or ``release`` write made in a transaction
    reports ``record=None``: DynamoDB returns no old item on success, and only a refused
    write's record is used.
    """

    applied: bool
    record: IdempotencyRecord | None = None


@dataclass(frozen=True, slots=True)
class ClaimResult:
    """The outcome of a claim for one key.

    Attributes:
        key: The idempotency key.
        status: See [`ClaimStatus`][data_aggregator.idempotency.ClaimStatus].
        lease_expires_at: ``CLAIMED``: the end of your lease. ``IN_PROGRESS_ELSEWHERE``:
            the end of the other lease (retry after it).
        bundle_key: ``ALREADY_COMPLETED``/``RECOVERED``: the bundle holding the record.
        pending_bundle_keys: ``CLAIMED`` after a takeover: the bundles previous holders
            announced and that were checked (or, with no locator configured, could not be),
            in sorted order (never the claim's own ``bundle_key``). ``ERROR`` of such a
            takeover: the bundles that were to be checked.
        previous_owner: ``CLAIMED``/``RECOVERED`` after a takeover: whose lease expired.
        error: ``ERROR``: the failure (an
            [`IdempotencyError`][data_aggregator.exceptions.IdempotencyError]).
    """

    key: str
    status: ClaimStatus
    lease_expires_at: float | None = None
    bundle_key: str | None = None
    pending_bundle_keys: tuple[str, ...] = ()
    previous_owner: str | None = None
    error: IdempotencyError | None = field(default=None, compare=False)

    @property
    def acknowledged(self) -> bool:
        """Whether the message may be acknowledged without bundling (done before)."""
        return self.status in {ClaimStatus.ALREADY_COMPLETED, ClaimStatus.RECOVERED}


@dataclass(frozen=True, slots=True)
class UpdateResult:
    """The outcome of ``mark_pending``, ``complete`` or ``release`` for one key."""

    key: str
    status: UpdateStatus
    #: The record that refused the write (``LEASE_LOST``), when the store returned it.
    current: IdempotencyRecord | None = None
    error: IdempotencyError | None = field(default=None, compare=False)

    @property
    def ok(self) -> bool:
        """Whether the update is known to be applied."""
        return self.status is UpdateStatus.OK


@runtime_checkable
class BundleLocator(Protocol):
    """Tells which records an uploaded bundle holds (crash recovery).

    A store consults it when it takes over an expired lease whose holder had announced a
    pending bundle (with its claim, or
    [`IdempotencyStore.mark_pending`][data_aggregator.idempotency.IdempotencyStore.mark_pending])
    and then died.
    """

    def bundled_keys(self, bundle_key: str) -> AbstractSet[str] | None:
        """Return the idempotency keys held by bundle ``bundle_key``.

        Returns:
            The keys of the bundle's members; an empty set when the bundle definitely does
            not exist (its upload never completed); ``None`` when it cannot tell (read
            failed, bundle unreadable). ``None`` makes the claim an ``ERROR``: the record
            is neither bundled again nor acknowledged, and a later retry asks again.
        """
        ...


class InMemoryBundleLocator:
    """A [`BundleLocator`][data_aggregator.idempotency.BundleLocator] over a dictionary, for
    tests and local runs."""

    def __init__(self, bundles: Mapping[str, Iterable[str]] | None = None) -> None:
        self._bundles: dict[str, frozenset[str]] = {
            name: frozenset(keys) for name, keys in (bundles or {}).items()
        }
        #: Bundle keys for which ``bundled_keys`` answers ``None`` ("cannot tell").
        self.unknown: set[str] = set()

    def add(self, bundle_key: str, keys: Iterable[str]) -> None:
        """Record that bundle ``bundle_key`` exists and holds ``keys``."""
        self._bundles[bundle_key] = frozenset(keys)

    def bundled_keys(self, bundle_key: str) -> frozenset[str] | None:
        """The keys of ``bundle_key``; empty when unknown to it, ``None`` if marked unknown."""
        if bundle_key in self.unknown:
            return None
        return self._bundles.get(bundle_key, frozenset())


def lease_expiry(
    remaining_time_ms: float,
    *,
    margin_seconds: float = DEFAULT_LEASE_MARGIN_SECONDS,
    now: float | None = None,
    clock: Callable[[], float] = time.time,
) -> float:
    """Return the epoch second at which a lease taken now should end.

    The lease ends when the invocation can no longer finish: ``now + remaining + margin``.
    A live invocation is killed at its deadline, so it never outlives its leases; a crashed
    one's leases end ``margin_seconds`` after its deadline, which is before SQS makes the
    message visible again provided the queue's visibility timeout is at least the function
    timeout plus the margin (AWS recommends six times the function timeout).

    Args:
        remaining_time_ms: The invocation's remaining time in milliseconds.
        margin_seconds: Slack for clock skew between hosts and requests in flight at the
            deadline (``AppConfig.lease_margin_seconds``, default 10).
        now: The current epoch time; read from ``clock`` when omitted.
        clock: A ``time.time``-like callable.
    """
    start = clock() if now is None else now
    return start + max(0.0, remaining_time_ms) / 1000.0 + max(0.0, margin_seconds)


def lease_expiry_from_context(
    context: InvocationContext,
    *,
    margin_seconds: float = DEFAULT_LEASE_MARGIN_SECONDS,
    clock: Callable[[], float] = time.time,
) -> float:
    """[`lease_expiry`][data_aggregator.idempotency.lease_expiry] for a Lambda context, a
    ``LocalContext``, or anything with ``get_remaining_time_in_millis()``."""
    return lease_expiry(
        context.get_remaining_time_in_millis(), margin_seconds=margin_seconds, clock=clock
    )
