"""One `ReusableProcessor.process` call, stage by stage (private).

`Invocation` holds one slot per S3 record (or per message that carries none) and
decides each slot exactly once. The stages, in order:

1. filter: parse errors, test events, event types, the bucket allowlist;
2. FIFO cut-off, then the timeout guard (before any S3 or store call);
3. resolve ambiguous EventBridge keys (``HeadObject``), then the ``accept`` and
   ``member_name`` hooks, and same-batch duplicates;
4. FIFO cut-off again, then the pipeline: the bundle engine plans the bundles; a claimer
   thread claims the records in chunks (each claim announcing its planned bundle) while
   the guard allows and the measured pace says they can be bundled in the time left, and
   admits each claimed record to the run, which fetches and writes it at once; each
   uploaded bundle's records are completed on a completion thread while the run goes on;
   the lease and the time are checked right before each commit;
5. release what is in no uploaded bundle (always, even on an exception);
6. copy results to same-batch duplicates; with ``DELETE_SOURCES``, delete the sources of
   the records completed in a bundle (`_deletions`); call ``on_bundle_written``, build
   the result.

Every wait is bounded by the invocation's deadline (`data_aggregator._deadline`): the
clients refuse to send or retry a request past it, and the threads the invocation starts
are abandoned, not awaited, once it has no time left.

``docs/processor.md`` describes the stages for users.
"""

from __future__ import annotations

import logging
import threading
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import TYPE_CHECKING

from data_aggregator import _deadline
from data_aggregator.bundle import (
    Admission,
    AdmissionState,
    BundleSource,
    OutcomeStatus,
    StopReason,
)
from data_aggregator.exceptions import (
    BundleUploadError,
    DeadlineExceededError,
    ErrorCode,
    HookError,
    ValidationError,
    ValidationErrorCode,
)
from data_aggregator.idempotency import lease_expiry_from_context, record_idempotency_key
from data_aggregator.processor._claimer import Claimer
from data_aggregator.processor._deletions import deletable, delete_sources
from data_aggregator.processor._hooks import CheckedHooks
from data_aggregator.processor._leases import Decision, Leases
from data_aggregator.processor._resolve import resolve_keys
from data_aggregator.processor._results import BatchResult, Outcome, Reason, RecordResult
from data_aggregator.processor._slots import Slot
from data_aggregator.schemas import Envelope

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence
    from datetime import datetime

    from data_aggregator.bundle import (
        BundleEngine,
        BundlePlan,
        BundleRun,
        BundleSummary,
        ObjectOutcome,
    )
    from data_aggregator.clients import S3Client
    from data_aggregator.config import AppConfig
    from data_aggregator.context import InvocationContext
    from data_aggregator.idempotency import IdempotencyStore
    from data_aggregator.metrics import MetricsSink
    from data_aggregator.processor._hooks import Hooks
    from data_aggregator.schemas import ParsedMessage

__all__ = ["Collaborators", "Invocation"]

logger = logging.getLogger("data_aggregator.processor")

#: Kept free at the end of the invocation for its last steps (releases, results, a log
#: line per record, the metrics): requests and waits for the threads it started end this
#: long before the context's deadline, plus `_END_RESERVE_PER_RECORD` per record, at most
#: half the timeout guard's threshold.
_END_RESERVE_SECONDS = 0.25
_END_RESERVE_PER_RECORD = 0.0005
#: Longest wait for a claim still in flight once the run is over: its records would be
#: released at once rather than when their leases end, but not at any price.
_CLAIM_GRACE_SECONDS = 1.0


@dataclass(frozen=True)
class Collaborators:
    """What an invocation works with; `ReusableProcessor` hands over its own.

    Attributes:
        hooks: The processor's hooks.
        store: The idempotency store.
        engine: Writes the bundles.
        s3_client: Resolves ambiguous EventBridge keys (``HeadObject``).
        metrics: Counts ``on_bundle_written`` failures.
        config: Event filters, bucket allowlist, lease margin.
        clock: Seconds since the epoch (the lease).
    """

    hooks: Hooks
    store: IdempotencyStore
    engine: BundleEngine
    s3_client: S3Client
    metrics: MetricsSink
    config: AppConfig
    clock: Callable[[], float]


class Invocation:
    """The state of one `ReusableProcessor.process` call.

    Args:
        collaborators: The store, engine, S3 client, metrics, config, clock and hooks.
        context: The Lambda context (remaining time: the lease).
        messages: The parsed messages of the event.
        has_time: Whether there is time for more work (the timeout guard).
        request_id: The invocation's request id (results, logs).
        naming_id: The request id used in bundle keys.
        owner: The lease owner in the idempotency store.
        now: The invocation's start (``bundle_key``'s ``now``).
    """

    def __init__(
        self,
        collaborators: Collaborators,
        context: InvocationContext,
        messages: Sequence[ParsedMessage],
        *,
        has_time: Callable[[], bool],
        request_id: str,
        naming_id: str,
        owner: str,
        now: datetime,
    ) -> None:
        self.config = collaborators.config
        self.engine = collaborators.engine
        self.s3_client = collaborators.s3_client
        self.metrics = collaborators.metrics
        self.clock = collaborators.clock
        self.hooks = CheckedHooks(collaborators.hooks, naming_id=naming_id, now=now)
        self.store = collaborators.store
        self.owner = owner
        self.guard_seconds = collaborators.config.timeout_guard_threshold_ms / 1000.0
        self.context = context
        self.messages = messages
        self.has_time = has_time
        self.request_id = request_id
        self.fifo = any(message.is_fifo for message in messages)
        self.from_sqs = any(message.envelope.is_sqs for message in messages)
        self.slots: list[Slot] = []
        self.bundles: tuple[BundleSummary, ...] = ()
        self.bundle_key_error: HookError | None = None
        records = sum(max(1, len(message.records)) for message in messages)
        reserve = max(
            _END_RESERVE_SECONDS,
            min(
                _END_RESERVE_SECONDS + _END_RESERVE_PER_RECORD * records,
                self.guard_seconds / 2,
            ),
        )
        self.deadline = _deadline.Deadline.from_context(context, reserve=reserve)
        self._keys: dict[int, str | HookError] = {}
        self._keys_lock = threading.Lock()

    # ------------------------------------------------------------------ stages

    def execute(self) -> BatchResult:
        """Run every stage; return the result (exceptions only for bugs and interrupts)."""
        with _deadline.scope(self.deadline):
            self._filter()
            self._fifo_cutoff()
            if self._out_of_time():
                return self._result()
            resolve_keys(self.s3_client, self._open())
            self._apply_hooks()
            self._fifo_cutoff()
            if self._out_of_time():
                return self._result()
            self._bundle()
            self._copy_to_duplicates()
            self._delete_sources()
            self._notify()
        return self._result()

    def _open(self) -> list[Slot]:
        """Slots still waiting for a decision, first copies only."""
        return [s for s in self.slots if s.result is None and s.primary is None]

    def _out_of_time(self) -> bool:
        """Fail every undecided slot with ``TIMEOUT`` if the guard says stop."""
        if self.has_time():
            return False
        for slot in self.slots:
            if slot.result is None:
                slot.decide(Outcome.FAILED, Reason.TIMEOUT)
        logger.warning(
            "timeout guard reached before bundling",
            extra={"request_id": self.request_id},
        )
        return True

    def _filter(self) -> None:
        prefixes = tuple(self.config.accepted_event_prefixes)
        allowlist = self.config.source_bucket_allowlist
        for index, message in enumerate(self.messages):
            if message.error is not None or not message.records:
                slot = Slot(index, message.message_id, None)
                self.slots.append(slot)
                if message.error is not None:
                    slot.decide(Outcome.FAILED, Reason.INVALID_MESSAGE, error=message.error)
                else:
                    slot.decide(Outcome.SKIPPED, Reason.TEST_EVENT)
                continue
            for record in message.records:
                slot = Slot(index, message.message_id, record)
                self.slots.append(slot)
                if not record.event_name.startswith(prefixes):
                    slot.decide(Outcome.SKIPPED, Reason.IGNORED_EVENT_TYPE)
                elif allowlist and record.s3.bucket.name not in allowlist:
                    slot.decide(
                        Outcome.FAILED,
                        Reason.BUCKET_NOT_ALLOWED,
                        error=ValidationError(
                            "source bucket is not in SOURCE_BUCKET_ALLOWLIST",
                            ValidationErrorCode.BUCKET_NOT_ALLOWED,
                            {"bucket": record.s3.bucket.name},
                        ),
                    )

    def _fifo_cutoff(self) -> None:
        """FIFO queues: every message after the first failed one fails, unclaimed."""
        if not self.fifo:
            return
        failed = [s.message_index for s in self.slots if s.result is not None and s.result.failed]
        if not failed:
            return
        first = min(failed)
        for slot in self.slots:
            if slot.message_index > first and slot.result is None:
                slot.decide(Outcome.FAILED, Reason.FIFO_BLOCKED)

    # ------------------------------------------------------------------ keys and hooks

    def _apply_hooks(self) -> None:
        """``accept``, then ``member_name``; then spot second copies of a record."""
        seen: dict[str, Slot] = {}
        for slot in self._open():
            record = slot.record
            assert record is not None  # noqa: S101 - message-level slots are decided
            try:
                if not self.hooks.accept(record):
                    slot.decide(Outcome.SKIPPED, Reason.NOT_ACCEPTED)
                    continue
                slot.member_name = self.hooks.member_name(record)
            except HookError as error:
                logger.error(
                    "hook failed",
                    exc_info=error.__cause__,
                    extra={"hook": error.hook, "message_id": slot.message_id},
                )
                slot.decide(Outcome.FAILED, Reason.HOOK_FAILED, error=error)
                continue
            slot.idempotency_key = record_idempotency_key(record)
            first = seen.setdefault(slot.idempotency_key, slot)
            if first is not slot:
                slot.primary = first

    def _bundle_key(self, number: int) -> str:
        """The checked ``bundle_key`` hook, called once per number (the claimer needs the
        key before the claim, the engine when it opens the bundle). A `HookError` is kept
        for the records it fails and raised again on every call for that number."""
        with self._keys_lock:
            known = self._keys.get(number)
            if known is None:
                try:
                    known = self.hooks.bundle_key(number)
                except HookError as error:
                    logger.error(
                        "hook failed",
                        extra={
                            "hook": error.hook,
                            "bundle_number": number,
                            "detail": error.detail,
                        },
                    )
                    known = error
                self._keys[number] = known
        if isinstance(known, HookError):
            self.bundle_key_error = known
            raise known
        return known

    def _work_seconds(self) -> float:
        """Seconds of work left before the timeout guard trips."""
        return self.context.get_remaining_time_in_millis() / 1000.0 - self.guard_seconds

    def _end_timeout(self) -> float:
        """How long the invocation may still wait for a thread it started."""
        return max(0.0, self.deadline.remaining())

    # ------------------------------------------------------------------ bundling

    def _bundle(self) -> None:
        """Plan, claim, fetch, write, upload and complete, overlapped (module docstring)."""
        slots = self._open()
        if not slots:
            return
        plan = self.engine.plan([self._source(slot) for slot in slots])
        for index, error in plan.refused:  # unsafe member name: refused, never claimed
            slots[index].decide(Outcome.FAILED, Reason.REFUSED, error=error)
        lease = lease_expiry_from_context(
            self.context, margin_seconds=self.config.lease_margin_seconds, clock=self.clock
        )
        leases = Leases(self.store, owner=self.owner, lease_expires_at=lease)
        admission = Admission(len(slots))
        claimer = Claimer(
            leases,
            slots,
            plan.bundle_numbers(),
            bundle_key=self._bundle_key,
            admission=admission,
            has_time=self.has_time,
            work_seconds=self._work_seconds,
            chunk_size=self.engine.fetch_concurrency,
            fifo=self.fifo,
        )
        completions = _Completions(leases, slots)
        claimer.start()
        run = None
        try:
            run = self.engine.run(
                plan,
                bundle_key=self._bundle_key,
                should_continue=self.has_time,
                before_commit=lambda key, tokens: self._commit_gate(leases, key, tokens),
                after_commit=completions.submit,
                admission=admission,
            )
        finally:
            # An interrupt in a worker thread (re-raised by seal or finish) still lets the
            # leftovers be released first, as one on this thread does.
            interrupt: BaseException | None = None
            decisions: list[Decision] = []
            try:
                decisions += claimer.seal(min(self._end_timeout(), _CLAIM_GRACE_SECONDS))
            except BaseException as exc:  # noqa: BLE001 - re-raised below
                interrupt = exc
            if claimer.bundle_key_error is not None:
                self.bundle_key_error = claimer.bundle_key_error
            try:
                decisions += completions.finish(self._end_timeout())
            except BaseException as exc:  # noqa: BLE001 - re-raised below
                interrupt = interrupt or exc
            self._settle(slots, plan, run, leases, decisions=decisions, admission=admission)
            leases.release_leftovers({bundle.key for bundle in self.bundles})
            if interrupt is not None:
                raise interrupt

    def _commit_gate(self, leases: Leases, bundle_key: str, tokens: Sequence[object]) -> None:
        """The engine's ``before_commit``, right before the final upload request: commit
        only while the invocation is alive (its request deadline, a little before the
        context's, has not passed) and its leases cannot have ended.

        Raises:
            DeadlineExceededError: the deadline has passed (the lease ends
                ``LEASE_MARGIN_SECONDS`` after it): the upload is aborted.
        """
        remaining = self.deadline.remaining()
        lease_left = leases.lease_expires_at - self.clock()
        if remaining <= 0 or lease_left <= self.config.lease_margin_seconds:
            raise DeadlineExceededError(
                "too late to commit the bundle: the leases could end before it is stored",
                context={
                    "operation": "commit",
                    "bundle_key": bundle_key,
                    "remaining_seconds": round(remaining, 3),
                    "lease_left_seconds": round(lease_left, 3),
                },
            )
        leases.attempt_commit(bundle_key, tokens)

    def _settle(
        self,
        slots: list[Slot],
        plan: BundlePlan,
        run: BundleRun | None,
        leases: Leases,
        *,
        decisions: list[Decision],
        admission: Admission,
    ) -> None:
        """Decide every slot of the pipeline from the run and the threads' decisions."""
        if run is not None:
            self.bundles = run.bundles
        held = {id(slot) for slot in leases.claimed_slots()}
        for decision in decisions:  # claims refused, duplicates, store errors
            if id(decision.slot) not in held:
                decision.apply()
        planned = {item.index for item in plan.items}
        for index, slot in enumerate(slots):
            if index not in planned or id(slot) not in held:
                continue
            if admission.state(index) is not AdmissionState.ADMITTED:
                continue  # claimed but held back (FIFO cut-off): decided below, released
            if run is None:  # interrupted before the run decided it
                slot.decide(Outcome.FAILED, Reason.UPLOAD_FAILED)
                continue
            self._decide_from(slot, run.outcomes[index], run.stop_reason)
        for decision in decisions:  # completions not confirmed
            if id(decision.slot) in held:
                decision.apply()
        self._fifo_cutoff()
        for slot in slots:  # never claimed: no time left (or the claim is still in flight)
            if slot.result is None:
                slot.decide(Outcome.FAILED, Reason.TIMEOUT)

    @staticmethod
    def _source(slot: Slot) -> BundleSource:
        record = slot.record
        assert record is not None  # noqa: S101 - claimed slots carry records
        obj = record.s3.object
        return BundleSource(
            bucket=record.s3.bucket.name,
            key=obj.original_key,
            size=obj.size,
            version_id=record.version_id,
            etag=record.e_tag,
            sequencer=record.sequencer,
            name=slot.member_name,
            token=slot.idempotency_key,
        )

    def _decide_from(
        self, slot: Slot, outcome: ObjectOutcome, stop_reason: StopReason | None
    ) -> None:
        status = outcome.status
        error = outcome.error
        if status is OutcomeStatus.BUNDLED:
            slot.member_name = outcome.member_name
            slot.bundled_in = outcome.bundle_key
            slot.bundled_etag = outcome.etag
            slot.decide(Outcome.BUNDLED, bundle_key=outcome.bundle_key)
        elif status is OutcomeStatus.NOT_FOUND:
            slot.decide(Outcome.SKIPPED, Reason.OBJECT_NOT_FOUND, error=error)
        elif status is OutcomeStatus.SUPERSEDED:
            slot.decide(Outcome.SKIPPED, Reason.OBJECT_SUPERSEDED, error=error)
        elif status is OutcomeStatus.REFUSED:
            slot.decide(Outcome.FAILED, Reason.REFUSED, error=error)
        elif status is OutcomeStatus.FAILED_RETRYABLE:
            if _out_of_time(error):
                reason = Reason.TIMEOUT
            elif isinstance(error, BundleUploadError):
                reason = Reason.UPLOAD_FAILED
            else:
                reason = Reason.FETCH_FAILED
            slot.decide(Outcome.FAILED, reason, error=error)
        elif stop_reason is StopReason.BUNDLE_KEY_FAILED:  # NOT_ATTEMPTED
            slot.decide(Outcome.FAILED, Reason.HOOK_FAILED, error=self.bundle_key_error)
        elif stop_reason is StopReason.UPLOAD_FAILED:
            slot.decide(Outcome.FAILED, Reason.UPLOAD_FAILED)
        else:
            slot.decide(Outcome.FAILED, Reason.TIMEOUT)

    # ------------------------------------------------------------------ results

    def _copy_to_duplicates(self) -> None:
        for slot in self.slots:
            primary = slot.primary
            if primary is None or slot.result is not None:
                continue
            result = primary.result
            assert result is not None  # noqa: S101 - every primary is decided by now
            if result.outcome in (Outcome.BUNDLED, Outcome.DUPLICATE):
                slot.decide(
                    Outcome.DUPLICATE, Reason.DUPLICATE_IN_BATCH, bundle_key=result.bundle_key
                )
            else:
                slot.decide(
                    result.outcome, result.reason, error=result.error, bundle_key=result.bundle_key
                )

    def _delete_sources(self) -> None:
        """``DELETE_SOURCES``: delete what completed bundles hold (never decides a slot)."""
        if not self.config.delete_sources:
            return
        sources = [source for slot in self.slots if (source := deletable(slot)) is not None]
        if sources:
            delete_sources(
                self.s3_client,
                sources,
                deadline=self.deadline,
                metrics=self.metrics,
                request_id=self.request_id,
            )

    def _notify(self) -> None:
        for bundle in self.bundles:
            records = [
                s.record for s in self.slots if s.record is not None and s.bundled_in == bundle.key
            ]
            try:
                self.hooks.on_bundle_written(bundle, records)
            except HookError as error:
                logger.error(
                    "hook failed",
                    exc_info=error.__cause__,
                    extra={"hook": error.hook, "bundle_key": bundle.key},
                )
                self.metrics.add("BundleHookFailures", 1)

    def _result(self) -> BatchResult:
        results: list[RecordResult] = []
        failed: set[str] = set()
        first_failed: int | None = None
        for slot in self.slots:
            if slot.result is None:  # defensive: nothing may leave undecided
                slot.decide(Outcome.FAILED, Reason.UPLOAD_FAILED)
            result = slot.result
            assert result is not None  # noqa: S101 - decided just above
            results.append(result)
            if result.failed:
                failed.add(slot.message_id)
                if first_failed is None or slot.message_index < first_failed:
                    first_failed = slot.message_index
        if self.fifo and first_failed is not None:
            failed.update(m.message_id for m in self.messages[first_failed + 1 :])
        ordered = dict.fromkeys(m.message_id for m in self.messages if m.message_id in failed)
        for entry in results:
            if entry.outcome is Outcome.FAILED:
                logger.warning("record failed", extra=entry.log_fields())
            elif entry.outcome is Outcome.BUNDLED:
                logger.debug("record bundled", extra=entry.log_fields())
            else:
                logger.info("record not bundled", extra=entry.log_fields())
        return BatchResult(
            records=tuple(results),
            failed_message_ids=tuple(ordered),
            bundles=self.bundles,
            request_id=self.request_id,
            from_sqs=self.from_sqs,
            from_map=any(m.envelope is Envelope.STEP_FUNCTIONS_MAP for m in self.messages),
        )


def _out_of_time(error: object) -> bool:
    """Whether a failure is the deadline's: a refused commit or a request not sent."""
    if isinstance(error, DeadlineExceededError):
        return True
    context = getattr(error, "context", None)
    return isinstance(context, dict) and context.get("cause_code") == ErrorCode.DEADLINE_EXCEEDED


class _Completions:
    """Completes each uploaded bundle's records on a thread of its own, while the run
    goes on; `finish` waits (bounded) and returns the decisions for records not
    confirmed."""

    def __init__(self, leases: Leases, slots: Sequence[Slot]) -> None:
        self._leases = leases
        self._by_key = {slot.idempotency_key: slot for slot in slots if slot.idempotency_key}
        self._pool: ThreadPoolExecutor | None = None
        self._futures: list[tuple[str, list[Slot], Future[list[Decision]]]] = []

    def submit(self, bundle: BundleSummary, tokens: Sequence[object]) -> None:
        """The engine's ``after_commit``: the bundle is stored; complete its records."""
        members = [self._by_key[str(token)] for token in tokens]
        for slot, name in zip(members, bundle.member_names, strict=True):
            slot.member_name = name
            slot.bundled_in = bundle.key
        if self._pool is None:
            self._pool = ThreadPoolExecutor(1, thread_name_prefix="da-complete")
        future = _deadline.submit(self._pool, self._leases.complete, bundle.key, members)
        self._futures.append((bundle.key, members, future))

    def finish(self, timeout: float) -> list[Decision]:
        """Wait at most ``timeout`` seconds; records whose completion did not end in time
        are failed (``COMPLETE_FAILED``): their claim announced the bundle, so the retry
        recovers them."""
        if self._pool is None:
            return []
        wait([future for _, _, future in self._futures], timeout=timeout)
        self._pool.shutdown(wait=False, cancel_futures=True)
        decisions: list[Decision] = []
        for bundle_key, members, future in self._futures:
            if future.done() and not future.cancelled() and future.exception() is None:
                decisions += future.result()
                continue
            error = future.exception() if future.done() and not future.cancelled() else None
            if error is not None and not isinstance(error, Exception):
                raise error  # an interrupt (KeyboardInterrupt ...): the invocation ends
            logger.warning(
                "completing a bundle's records did not finish in time",
                extra={"bundle_key": bundle_key, "records": len(members)},
                exc_info=error,
            )
            decisions += [
                Decision(slot, Outcome.FAILED, Reason.COMPLETE_FAILED, bundle_key=bundle_key)
                for slot in members
            ]
        return decisions
