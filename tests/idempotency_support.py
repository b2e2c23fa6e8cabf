"""Test doubles for the idempotency tests: a fake clock, a fake bundle sink, a simulated
processor that follows the documented call order, and a redelivering SQS queue.

The real bundle engine and processor are being written separately; the simulation here
stands in for them honestly: "bundling" appends idempotency keys to an in-memory upload
list and "S3" is a dictionary. What it exercises for real is the idempotency store and the
call order ``claim -> mark_pending -> upload -> complete / release``.
"""

from __future__ import annotations

import itertools
import threading
from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from data_aggregator.idempotency import (
    ClaimStatus,
    IdempotencyStore,
    UpdateStatus,
    lease_expiry,
)

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable


#: A clock start for records that reach a real DynamoDB: DynamoDB Local deletes an item
#: whose TTL ``expiration`` is in the (real) past within about a second, so a clock in 2023
#: would see its records vanish. 2100-01-01 keeps every expiration ahead of real time.
FUTURE_START = 4_102_444_800.0


class FakeClock:
    """A settable ``time.time`` replacement (thread-safe)."""

    def __init__(self, start: float = 1_700_000_000.0) -> None:
        self._now = start
        self._lock = threading.Lock()

    def __call__(self) -> float:
        with self._lock:
            return self._now

    def advance(self, seconds: float) -> None:
        """Move time forward."""
        with self._lock:
            self._now += seconds


class FakeBundleSink:
    """Stands in for the bundle engine plus S3: uploads are lists of idempotency keys.

    It is also a :class:`BundleLocator`: a bundle "exists" once uploaded, and its
    "manifest" lists the keys uploaded in it.
    """

    def __init__(self) -> None:
        self.uploads: dict[str, list[str]] = {}
        self._lock = threading.Lock()

    def upload(self, bundle_key: str, keys: Iterable[str]) -> None:
        """Durably store a bundle holding ``keys`` (once per bundle key, like S3)."""
        with self._lock:
            assert bundle_key not in self.uploads, "bundle keys are unique per invocation"
            self.uploads[bundle_key] = list(keys)

    def bundled_keys(self, bundle_key: str) -> frozenset[str] | None:
        """The keys of an uploaded bundle; empty when it was never uploaded."""
        with self._lock:
            return frozenset(self.uploads.get(bundle_key, ()))

    def occurrences(self) -> Counter[str]:
        """How many bundles hold each key."""
        with self._lock:
            return Counter(key for keys in self.uploads.values() for key in keys)


class Crash(Exception):  # noqa: N818 - named after what it simulates
    """The invocation dies here (runtime killed, out of memory ...): no cleanup runs."""


#: Where the simulated processor can be made to fail, in call order.
FAULT_POINTS = (
    "after_claim",
    "during_fetch",
    "fetch_fails",
    "after_mark_pending",
    "upload_fails",
    "after_upload",
    "during_complete",
    "during_release",
)


@dataclass
class Faults:
    """Which faults fire in which invocation: ``{invocation number: {point, ...}}``.

    ``hooks`` run at a point (e.g. start a concurrent invocation) before the fault does.
    """

    plan: dict[int, set[str]] = field(default_factory=dict)
    hooks: dict[tuple[int, str], Callable[[], None]] = field(default_factory=dict)

    def fires(self, invocation: int, point: str) -> bool:
        """Whether ``point`` fails in invocation ``invocation``."""
        hook = self.hooks.pop((invocation, point), None)
        if hook is not None:
            hook()
        return point in self.plan.get(invocation, set())


@dataclass
class Outcome:
    """What one simulated invocation reports."""

    failed: set[str] = field(default_factory=set)
    statuses: Counter[str] = field(default_factory=Counter)


class SimulatedProcessor:
    """Follows the documented call order over a store and a fake bundle sink.

    Messages are ``(message_id, idempotency_key)``; one bundle per invocation.
    """

    def __init__(
        self,
        store: IdempotencyStore,
        sink: FakeBundleSink,
        clock: FakeClock,
        *,
        faults: Faults | None = None,
        function_timeout: float = 60.0,
        margin: float = 10.0,
    ) -> None:
        self.store = store
        self.sink = sink
        self.clock = clock
        self.faults = faults or Faults()
        self.function_timeout = function_timeout
        self.margin = margin
        self._numbers = itertools.count(1)

    def invoke(self, messages: list[tuple[str, str]]) -> Outcome:
        """Handle one batch; raises :class:`Crash` when a crash fault fires."""
        number = next(self._numbers)
        run = _Invocation(self, number, messages)
        run.claim()
        run.mark_pending()
        run.upload_and_complete()
        run.release()
        return run.outcome


class _Invocation:
    """One simulated invocation's state, step by step in the documented order."""

    def __init__(
        self, processor: SimulatedProcessor, number: int, messages: list[tuple[str, str]]
    ) -> None:
        self.p = processor
        self.number = number
        self.owner = f"invocation-{number}"
        self.bundle_key = f"bundle-{self.owner}-1"
        self.outcome = Outcome()
        self.by_key: dict[str, list[str]] = {}
        for message_id, key in messages:
            self.by_key.setdefault(key, []).append(message_id)
        self.members: list[str] = []
        self.to_release: list[str] = []

    def fires(self, point: str) -> bool:
        return self.p.faults.fires(self.number, point)

    def fail(self, key: str) -> None:
        self.outcome.failed.update(self.by_key[key])

    def claim(self) -> None:
        lease = lease_expiry(
            self.p.function_timeout * 1000, margin_seconds=self.p.margin, now=self.p.clock()
        )
        claims = self.p.store.claim(self.by_key, owner=self.owner, lease_expires_at=lease)
        if self.fires("after_claim"):
            raise Crash
        for key, result in claims.items():
            self.outcome.statuses[result.status.value] += 1
            if result.status is ClaimStatus.CLAIMED:
                if self.fires("during_fetch"):
                    raise Crash
                if self.fires("fetch_fails"):
                    self.to_release.append(key)
                else:
                    self.members.append(key)
            elif not result.acknowledged:
                self.fail(key)

    def mark_pending(self) -> None:
        if not self.members:
            return
        pending = self.p.store.mark_pending(
            self.members, owner=self.owner, bundle_key=self.bundle_key
        )
        if self.fires("after_mark_pending"):
            raise Crash
        for key, update in pending.items():
            if update.status is not UpdateStatus.OK:
                self.members.remove(key)
                self.fail(key)
                if update.status is UpdateStatus.ERROR:
                    self.to_release.append(key)

    def upload_and_complete(self) -> None:
        if not self.members:
            return
        if self.fires("upload_fails"):
            self.to_release.extend(self.members)
            self.members = []
            return
        self.p.sink.upload(self.bundle_key, self.members)
        if self.fires("after_upload"):
            raise Crash
        crash = self.fires("during_complete")
        done = self.p.store.complete(
            self.members[: len(self.members) // 2] if crash else self.members,
            owner=self.owner,
            bundle_key=self.bundle_key,
        )
        if crash:
            raise Crash
        for key, update in done.items():
            if update.status is not UpdateStatus.OK:
                self.fail(key)

    def release(self) -> None:
        if not self.to_release:
            return
        for key in self.to_release:
            self.fail(key)
        crash = self.fires("during_release")
        half = self.to_release[: len(self.to_release) // 2]
        self.p.store.release(half if crash else self.to_release, owner=self.owner)
        if crash:
            raise Crash


def deliver_until_done(
    processor: SimulatedProcessor,
    messages: list[tuple[str, str]],
    *,
    batch_size: int = 10,
    visibility_timeout: float = 360.0,
    max_rounds: int = 50,
) -> Counter[str]:
    """Deliver ``messages`` like SQS (at least once) until every one is acknowledged.

    Crashed batches and failed messages come back after the visibility timeout. Returns
    the claim statuses seen over all invocations.
    """
    queue = list(messages)
    statuses: Counter[str] = Counter()
    for _ in range(max_rounds):
        if not queue:
            return statuses
        retry: list[tuple[str, str]] = []
        for start in range(0, len(queue), batch_size):
            batch = queue[start : start + batch_size]
            try:
                outcome = processor.invoke(batch)
            except Crash:
                retry.extend(batch)
                continue
            statuses.update(outcome.statuses)
            retry.extend(m for m in batch if m[0] in outcome.failed)
        queue = retry
        processor.clock.advance(visibility_timeout)
    msg = f"messages still unacknowledged after {max_rounds} rounds: {len(queue)}"
    raise AssertionError(msg)
