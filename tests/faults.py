"""Fault injection around the real collaborators of a `ReusableProcessor`.

A test builds the processor with its public constructor and hands it a `FaultyStore`
around a real idempotency store and a `FaultyS3Client` around a real (or in-process)
`S3Client`. Both wrappers pass every call through, except the calls a shared `FaultPlan`
picks: those fail in the way its `Rule` says (`Fault`).

A crash raises `Crash`, a `BaseException` that escapes ``process()`` as if the runtime
had killed the process. From then on every call of that invocation dies as well (a dead
process reaches neither S3 nor the store, so no cleanup happens), until the plan's next
invocation begins.
"""

from __future__ import annotations

import threading
from collections import Counter
from dataclasses import dataclass
from enum import Enum
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar

from data_aggregator import _deadline
from data_aggregator.clients import S3Client
from data_aggregator.exceptions import IdempotencyStoreError, S3ServiceError
from data_aggregator.idempotency import (
    ClaimResult,
    ClaimStatus,
    IdempotencyStore,
    UpdateResult,
    UpdateStatus,
)

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Mapping, Sequence
    from typing import IO

    from data_aggregator.clients import CompletedPart, S3Object, S3ObjectInfo, UploadResult
    from data_aggregator.idempotency import IdempotencyRecord, WriteOutcome
    from data_aggregator.testing import FakeClock

__all__ = [
    "S3_OPERATIONS",
    "STORE_OPERATIONS",
    "Crash",
    "Fault",
    "FaultPlan",
    "FaultyS3Client",
    "FaultyStore",
    "Fired",
    "Rule",
]

_R = TypeVar("_R")

#: The store calls the processor makes, in lifecycle order.
STORE_OPERATIONS = ("claim", "complete", "release")
#: The `S3Client` calls the processor makes, by S3 API name. A bundle's upload is
#: committed by ``PutObject`` (one part) or ``CompleteMultipartUpload``.
S3_OPERATIONS = (
    "HeadObject",
    "GetObject",
    "PutObject",
    "CreateMultipartUpload",
    "UploadPart",
    "CompleteMultipartUpload",
    "PutObjectTagging",
    "AbortMultipartUpload",
)


class Crash(BaseException):
    """The invocation dies here (runtime killed, out of memory ...): nothing else runs."""


class Fault(Enum):
    """What happens to a call a rule picks."""

    #: No effect; the call fails (store: every key's result is ``ERROR``; S3: a
    #: retryable `S3ServiceError`).
    FAIL = "fail"
    #: No effect; the call raises (store: `IdempotencyStoreError`; S3: as ``FAIL``).
    RAISE = "raise"
    #: The call takes effect, then its answer is lost: it is answered as ``FAIL``.
    LOSE_ANSWER = "lose-answer"
    #: The invocation dies before the call.
    CRASH = "crash"
    #: The call takes effect, then the invocation dies.
    CRASH_AFTER = "crash-after"
    #: Store only: the call takes effect for the first half of its keys, then the
    #: invocation dies.
    CRASH_MIDWAY = "crash-midway"
    #: ``seconds`` of fake time pass and ``meanwhile`` runs, then the call takes effect.
    DELAY = "delay"
    #: The call takes effect, then ``seconds`` pass and ``meanwhile`` runs before it answers.
    DELAY_ANSWER = "delay-answer"
    #: The request is on the wire: ``seconds`` pass and ``meanwhile`` runs, then it takes
    #: effect (late, as S3 applying a commit sent before the deadline), whatever the
    #: invocation's deadline says by then.
    LAND_LATE = "land-late"


_APPLIED_FIRST = {Fault.LOSE_ANSWER, Fault.CRASH_AFTER, Fault.DELAY_ANSWER}


@dataclass(frozen=True)
class Rule:
    """Which call fails, and how.

    Attributes:
        operation: One of `STORE_OPERATIONS` or `S3_OPERATIONS`.
        fault: What happens.
        call: The n-th call of ``operation`` in the invocation (from 1); ``None``: every
            call.
        invocations: The plan's invocation numbers it applies to; ``None``: all.
        seconds: Fake time a ``DELAY`` / ``DELAY_ANSWER`` / ``LAND_LATE`` takes.
        meanwhile: Run during a ``DELAY`` / ``DELAY_ANSWER`` / ``LAND_LATE`` (e.g. another
            invocation).
    """

    operation: str
    fault: Fault
    call: int | None = 1
    invocations: frozenset[int] | None = None
    seconds: float = 0.0
    meanwhile: Callable[[], object] | None = None

    def __post_init__(self) -> None:
        if self.operation not in STORE_OPERATIONS + S3_OPERATIONS:
            msg = f"unknown operation {self.operation!r}"
            raise ValueError(msg)
        if self.fault is Fault.CRASH_MIDWAY and self.operation not in STORE_OPERATIONS:
            msg = "CRASH_MIDWAY splits a store call's keys; S3 calls are not split"
            raise ValueError(msg)


@dataclass(frozen=True)
class Fired:
    """A fault that happened: in which invocation, at which call."""

    invocation: int
    operation: str
    call: int
    fault: Fault


class FaultPlan:
    """Rules shared by the wrappers of one processor, and what fired.

    Call `begin_invocation` before each ``process()`` / ``handle()``: it numbers the
    invocation, restarts the call counts and revives the process after a crash.

    Args:
        rules: The rules; the first that matches a call decides it.
        clock: Advanced by ``DELAY`` / ``DELAY_ANSWER``.
    """

    def __init__(self, *rules: Rule, clock: FakeClock | None = None) -> None:
        self.rules = list(rules)
        self.clock = clock
        self.invocation = 0
        self.fired: list[Fired] = []
        self._calls: Counter[str] = Counter()
        self._dead = False
        self._lock = threading.Lock()

    def add(self, operation: str, fault: Fault, **options: Any) -> Rule:
        """Add a rule (keyword options as in `Rule`) and return it."""
        rule = Rule(operation, fault, **options)
        self.rules.append(rule)
        return rule

    def begin_invocation(self) -> int:
        """Start the next invocation (a new process if the last one crashed)."""
        with self._lock:
            self.invocation += 1
            self._calls.clear()
            self._dead = False
            return self.invocation

    @property
    def dead(self) -> bool:
        """Whether the current invocation has crashed."""
        return self._dead

    def faults(self) -> list[tuple[str, Fault]]:
        """``(operation, fault)`` of every fault fired so far, in order."""
        return [(fired.operation, fired.fault) for fired in self.fired]

    def intercept(
        self,
        operation: str,
        apply: Callable[[], _R],
        *,
        failed: Callable[[], _R],
        raised: Callable[[], Exception] | None = None,
        apply_part: Callable[[], object] | None = None,
        discard: Callable[[_R], object] | None = None,
    ) -> _R:
        """Make one call through the plan.

        Args:
            operation: The call's operation name.
            apply: Makes the real call.
            failed: The answer of a failed call (may raise).
            raised: The exception of ``RAISE`` (default: ``failed``'s answer).
            apply_part: Makes the real call for the first half of its keys.
            discard: Releases the real answer of a call whose answer is lost.
        """
        rule = self._pick(operation)
        if rule is None:
            return apply()
        fault = rule.fault
        if fault is Fault.FAIL or (fault is Fault.RAISE and raised is None):
            return failed()
        if fault is Fault.RAISE:
            assert raised is not None
            raise raised()
        if fault is Fault.CRASH:
            self._die(operation)
        if fault is Fault.CRASH_MIDWAY:
            assert apply_part is not None, f"{operation} cannot be split"
            apply_part()
            self._die(operation)
        if fault is Fault.DELAY:
            self._pass_time(rule)
            return apply()
        if fault is Fault.LAND_LATE:
            self._pass_time(rule)
            with _deadline.scope(None):  # sent before the deadline: nothing stops it now
                return apply()
        assert fault in _APPLIED_FIRST, fault
        answer = apply()
        if fault is Fault.CRASH_AFTER:
            self._die(operation)
        if fault is Fault.DELAY_ANSWER:
            self._pass_time(rule)
            return answer
        if discard is not None:
            discard(answer)
        return failed()

    def _pick(self, operation: str) -> Rule | None:
        """Count the call; the rule deciding it, if any. Dies if the process is dead."""
        with self._lock:
            if self._dead:
                raise Crash(operation)
            self._calls[operation] += 1
            number = self._calls[operation]
            for rule in self.rules:
                if (
                    rule.operation == operation
                    and (rule.call is None or rule.call == number)
                    and (rule.invocations is None or self.invocation in rule.invocations)
                ):
                    self.fired.append(Fired(self.invocation, operation, number, rule.fault))
                    return rule
        return None

    def _die(self, operation: str) -> NoReturn:
        with self._lock:
            self._dead = True
        raise Crash(operation)

    def _pass_time(self, rule: Rule) -> None:
        if rule.seconds:
            assert self.clock is not None, "a DELAY needs the plan's clock"
            self.clock.advance(rule.seconds)
        if rule.meanwhile is not None:
            rule.meanwhile()


def _store_error(operation: str) -> IdempotencyStoreError:
    return IdempotencyStoreError(
        f"injected {operation} failure", context={"operation": operation, "injected": True}
    )


class FaultyStore(IdempotencyStore):
    """Passes each bulk call to ``inner``, but for the faults ``plan`` injects.

    Faults act on whole calls, as the processor makes them: ``FAIL`` answers ``ERROR``
    for every key (the contract's shape of a failed request), ``RAISE`` raises
    `IdempotencyStoreError` for the call.
    """

    def __init__(self, inner: IdempotencyStore, plan: FaultPlan) -> None:
        super().__init__(
            ttl_seconds=inner.ttl_seconds, bundle_locator=inner.bundle_locator, clock=inner.clock
        )
        self.inner = inner
        self.plan = plan

    def claim(
        self,
        keys: Iterable[str],
        *,
        owner: str,
        lease_expires_at: float,
        bundle_key: str | None = None,
    ) -> dict[str, ClaimResult]:
        """`IdempotencyStore.claim` through the plan."""
        ordered = list(dict.fromkeys(keys))

        def apply(part: list[str]) -> dict[str, ClaimResult]:
            return self.inner.claim(
                part, owner=owner, lease_expires_at=lease_expires_at, bundle_key=bundle_key
            )

        def failed() -> dict[str, ClaimResult]:
            error = _store_error("claim")
            return {key: ClaimResult(key, ClaimStatus.ERROR, error=error) for key in ordered}

        return self.plan.intercept(
            "claim",
            lambda: apply(ordered),
            failed=failed,
            raised=lambda: _store_error("claim"),
            apply_part=lambda: apply(ordered[: len(ordered) // 2]),
        )

    def mark_pending(
        self, keys: Iterable[str], *, owner: str, bundle_key: str
    ) -> dict[str, UpdateResult]:
        """`IdempotencyStore.mark_pending` through the plan."""
        return self._update(
            "mark_pending",
            keys,
            lambda part: self.inner.mark_pending(part, owner=owner, bundle_key=bundle_key),
        )

    def complete(
        self,
        keys: Iterable[str],
        *,
        owner: str,
        bundle_key: str,
        ttl_seconds: int | None = None,
    ) -> dict[str, UpdateResult]:
        """`IdempotencyStore.complete` through the plan."""
        return self._update(
            "complete",
            keys,
            lambda part: self.inner.complete(
                part, owner=owner, bundle_key=bundle_key, ttl_seconds=ttl_seconds
            ),
        )

    def release(
        self, keys: Iterable[str], *, owner: str, bundle_key: str | None = None
    ) -> dict[str, UpdateResult]:
        """`IdempotencyStore.release` through the plan."""
        return self._update(
            "release",
            keys,
            lambda part: self.inner.release(part, owner=owner, bundle_key=bundle_key),
        )

    def get(self, key: str) -> IdempotencyRecord | None:
        """The inner store's record (never faulted: tests read through it)."""
        return self.inner.get(key)

    def close(self) -> None:
        """Close the inner store."""
        self.inner.close()

    def _update(
        self,
        operation: str,
        keys: Iterable[str],
        call: Callable[[list[str]], dict[str, UpdateResult]],
    ) -> dict[str, UpdateResult]:
        ordered = list(dict.fromkeys(keys))

        def failed() -> dict[str, UpdateResult]:
            error = _store_error(operation)
            return {key: UpdateResult(key, UpdateStatus.ERROR, error=error) for key in ordered}

        return self.plan.intercept(
            operation,
            lambda: call(ordered),
            failed=failed,
            raised=lambda: _store_error(operation),
            apply_part=lambda: call(ordered[: len(ordered) // 2]),
        )

    # The primitives are never reached: every public method goes to the inner store.

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
        raise NotImplementedError

    def _set_pending(self, key: str, *, owner: str, bundle_key: str) -> WriteOutcome:
        raise NotImplementedError

    def _complete_record(
        self, key: str, *, owner: str, bundle_key: str, expiration: int
    ) -> WriteOutcome:
        raise NotImplementedError

    def _release_record(self, key: str, *, owner: str, bundle_key: str | None) -> WriteOutcome:
        raise NotImplementedError

    def _get_record(self, key: str) -> IdempotencyRecord | None:
        raise NotImplementedError


class FaultyS3Client(S3Client):
    """Passes each call the processor makes to ``inner``, but for the faults ``plan``
    injects (``FAIL`` and ``RAISE`` raise a retryable `S3ServiceError`)."""

    def __init__(self, inner: S3Client, plan: FaultPlan) -> None:
        super().__init__(
            inner.client,
            expected_bucket_owner=inner.expected_bucket_owner,
            kms_key_id=inner.kms_key_id,
        )
        self.inner = inner
        self.plan = plan

    def _through(
        self,
        operation: str,
        bucket: str,
        key: str,
        apply: Callable[[], _R],
        discard: Callable[[_R], object] | None = None,
    ) -> _R:
        def failed() -> NoReturn:
            raise S3ServiceError(
                f"injected {operation} failure",
                context={"bucket": bucket, "key": key, "injected": True},
                operation=operation,
            )

        return self.plan.intercept(operation, apply, failed=failed, discard=discard)

    def open_object(
        self,
        bucket: str,
        key: str,
        *,
        version_id: str | None = None,
        if_match: str | None = None,
    ) -> S3Object:
        """``GetObject`` through the plan."""
        return self._through(
            "GetObject",
            bucket,
            key,
            lambda: self.inner.open_object(bucket, key, version_id=version_id, if_match=if_match),
            discard=lambda opened: opened.body.close(),
        )

    def head_object(
        self,
        bucket: str,
        key: str,
        *,
        version_id: str | None = None,
        if_match: str | None = None,
        checksum_mode: bool = False,
    ) -> S3ObjectInfo:
        """``HeadObject`` through the plan."""
        return self._through(
            "HeadObject",
            bucket,
            key,
            lambda: self.inner.head_object(
                bucket, key, version_id=version_id, if_match=if_match, checksum_mode=checksum_mode
            ),
        )

    def put_object(
        self,
        bucket: str,
        key: str,
        body: bytes | IO[bytes],
        *,
        extra_args: Mapping[str, Any] | None = None,
        sha256: bytes | None = None,
        content_length: int | None = None,
    ) -> UploadResult:
        """``PutObject`` (a one-part bundle's commit) through the plan."""
        return self._through(
            "PutObject",
            bucket,
            key,
            lambda: self.inner.put_object(
                bucket,
                key,
                body,
                extra_args=extra_args,
                sha256=sha256,
                content_length=content_length,
            ),
        )

    def create_multipart_upload(
        self, bucket: str, key: str, *, extra_args: Mapping[str, Any] | None = None
    ) -> str:
        """``CreateMultipartUpload`` through the plan."""
        return self._through(
            "CreateMultipartUpload",
            bucket,
            key,
            lambda: self.inner.create_multipart_upload(bucket, key, extra_args=extra_args),
        )

    def upload_part(
        self,
        bucket: str,
        key: str,
        *,
        upload_id: str,
        part_number: int,
        body: IO[bytes],
        content_length: int,
        sha256: bytes,
    ) -> CompletedPart:
        """``UploadPart`` through the plan."""
        return self._through(
            "UploadPart",
            bucket,
            key,
            lambda: self.inner.upload_part(
                bucket,
                key,
                upload_id=upload_id,
                part_number=part_number,
                body=body,
                content_length=content_length,
                sha256=sha256,
            ),
        )

    def complete_multipart_upload(
        self, bucket: str, key: str, *, upload_id: str, parts: Sequence[CompletedPart]
    ) -> tuple[str, str | None]:
        """``CompleteMultipartUpload`` (a multipart bundle's commit) through the plan."""
        return self._through(
            "CompleteMultipartUpload",
            bucket,
            key,
            lambda: self.inner.complete_multipart_upload(
                bucket, key, upload_id=upload_id, parts=parts
            ),
        )

    def abort_multipart_upload(self, bucket: str, key: str, *, upload_id: str) -> None:
        """``AbortMultipartUpload`` through the plan."""
        self._through(
            "AbortMultipartUpload",
            bucket,
            key,
            lambda: self.inner.abort_multipart_upload(bucket, key, upload_id=upload_id),
        )

    def put_object_tags(
        self,
        bucket: str,
        key: str,
        tags: Mapping[str, str],
        *,
        version_id: str | None = None,
    ) -> None:
        """``PutObjectTagging`` through the plan."""
        self._through(
            "PutObjectTagging",
            bucket,
            key,
            lambda: self.inner.put_object_tags(bucket, key, tags, version_id=version_id),
        )
