"""One `ReusableProcessor.process` call, stage by stage (private).

`Invocation` holds one slot per S3 record (or per message that carries none) and
decides each slot exactly once. The stages, in order:

1. filter: parse errors, test events, event types, the bucket allowlist;
2. FIFO cut-off, then the timeout guard (before any S3 or store call);
3. resolve ambiguous EventBridge keys (``HeadObject``), then the ``accept`` and
   ``member_name`` hooks, and same-batch duplicates;
4. FIFO cut-off again, claim in the idempotency store, FIFO cut-off again;
5. bundle the claimed records (``mark_pending`` just before each commit), complete what
   is in an uploaded bundle, release what is in none (always, even on an exception);
6. copy results to same-batch duplicates, call ``on_bundle_written``, build the result.

``docs/processor.md`` describes the stages for users.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

from data_aggregator.bundle import BundleSource, OutcomeStatus, StopReason
from data_aggregator.exceptions import (
    BundleUploadError,
    HookError,
    ValidationError,
    ValidationErrorCode,
)
from data_aggregator.idempotency import lease_expiry_from_context, make_idempotency_key
from data_aggregator.processor._hooks import CheckedHooks
from data_aggregator.processor._leases import Leases
from data_aggregator.processor._resolve import resolve_keys
from data_aggregator.processor._results import BatchResult, Outcome, Reason, RecordResult
from data_aggregator.processor._slots import Slot

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence
    from datetime import datetime

    from data_aggregator.bundle import BundleEngine, BundleSummary, ObjectOutcome
    from data_aggregator.clients import S3Client
    from data_aggregator.config import AppConfig
    from data_aggregator.context import InvocationContext
    from data_aggregator.idempotency import IdempotencyStore
    from data_aggregator.metrics import MetricsSink
    from data_aggregator.processor._hooks import Hooks
    from data_aggregator.schemas import ParsedMessage

__all__ = ["Collaborators", "Invocation"]

logger = logging.getLogger("data_aggregator.processor")


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
        self.leases = Leases(collaborators.store, owner=owner)
        self.context = context
        self.messages = messages
        self.has_time = has_time
        self.request_id = request_id
        self.fifo = any(message.is_fifo for message in messages)
        self.from_sqs = any(message.envelope.is_sqs for message in messages)
        self.slots: list[Slot] = []
        self.bundles: tuple[BundleSummary, ...] = ()
        self.bundle_key_error: HookError | None = None

    # ------------------------------------------------------------------ stages

    def execute(self) -> BatchResult:
        """Run every stage; return the result (exceptions only for bugs and interrupts)."""
        self._filter()
        self._fifo_cutoff()
        if self._out_of_time():
            return self._result()
        resolve_keys(self.s3_client, self._open())
        self._apply_hooks()
        self._fifo_cutoff()
        if self._out_of_time():
            return self._result()
        self._claim()
        self._fifo_cutoff()
        try:
            self._bundle()
        finally:
            self.leases.release_leftovers({bundle.key for bundle in self.bundles})
        self._copy_to_duplicates()
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
            obj = record.s3.object
            slot.idempotency_key = make_idempotency_key(
                obj.original_key, record.version_id, record.sequencer
            )
            first = seen.setdefault(slot.idempotency_key, slot)
            if first is not slot:
                slot.primary = first

    def _bundle_key(self, number: int) -> str:
        """The engine's ``bundle_key``: the checked hook. A `HookError` is kept for the
        records it fails and passed on: the engine stops the run (and logs the traceback)."""
        try:
            return self.hooks.bundle_key(number)
        except HookError as error:
            logger.error(
                "hook failed",
                extra={"hook": error.hook, "bundle_number": number, "detail": error.detail},
            )
            self.bundle_key_error = error
            raise

    # ------------------------------------------------------------------ store

    def _claim(self) -> None:
        slots = self._open()
        if not slots:
            return
        lease = lease_expiry_from_context(
            self.context, margin_seconds=self.config.lease_margin_seconds, clock=self.clock
        )
        self.leases.claim(slots, lease_expires_at=lease)

    # ------------------------------------------------------------------ bundling

    def _bundle(self) -> None:
        slots = [s for s in self._open() if s.idempotency_key in self.leases.claimed]
        if not slots:
            return
        run = self.engine.run(
            [self._source(slot) for slot in slots],
            bundle_key=self._bundle_key,
            should_continue=self.has_time,
            before_commit=self.leases.announce,
        )
        self.bundles = run.bundles
        for slot, outcome in zip(slots, run.outcomes, strict=True):
            self._decide_from(slot, outcome, run.stop_reason)
        for bundle in run.bundles:
            self.leases.complete(bundle.key, [s for s in slots if s.bundled_in == bundle.key])

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
            slot.decide(Outcome.BUNDLED, bundle_key=outcome.bundle_key)
        elif status is OutcomeStatus.NOT_FOUND:
            slot.decide(Outcome.SKIPPED, Reason.OBJECT_NOT_FOUND, error=error)
        elif status is OutcomeStatus.SUPERSEDED:
            slot.decide(Outcome.SKIPPED, Reason.OBJECT_SUPERSEDED, error=error)
        elif status is OutcomeStatus.REFUSED:
            slot.decide(Outcome.FAILED, Reason.REFUSED, error=error)
        elif status is OutcomeStatus.FAILED_RETRYABLE:
            if self.leases.pending_mark_failed(slot.idempotency_key):
                reason = Reason.STORE_ERROR
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
        )
