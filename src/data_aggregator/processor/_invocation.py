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
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING

from data_aggregator.bundle import BundleSource, OutcomeStatus, StopReason
from data_aggregator.exceptions import (
    BundleError,
    BundleUploadError,
    DataAggregatorError,
    IdempotencyError,
    S3ObjectNotFoundError,
    ValidationError,
    ValidationErrorCode,
)
from data_aggregator.idempotency import (
    ClaimStatus,
    UpdateStatus,
    lease_expiry_from_context,
    make_idempotency_key,
)
from data_aggregator.processor._parts import (
    HOOK_FAILED,
    REFUSED_KEY_PREFIX,
    Slot,
    hook_error,
    resolve_key,
)
from data_aggregator.processor._results import BatchResult, Outcome, Reason, RecordResult
from data_aggregator.security import MAX_KEY_BYTES, sanitize_s3_key

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence
    from datetime import datetime

    from data_aggregator.bundle import BundleSummary, ObjectOutcome
    from data_aggregator.context import InvocationContext
    from data_aggregator.idempotency import UpdateResult
    from data_aggregator.processor._processor import ReusableProcessor
    from data_aggregator.schemas import ParsedMessage, S3EventNotificationRecord

__all__ = ["Invocation"]

logger = logging.getLogger("data_aggregator.processor")

#: Largest number of concurrent HEAD requests used to resolve ambiguous EventBridge keys.
_MAX_RESOLVE_WORKERS = 16


class Invocation:
    """The state of one `ReusableProcessor.process` call."""

    def __init__(
        self,
        processor: ReusableProcessor,
        context: InvocationContext,
        messages: Sequence[ParsedMessage],
        *,
        request_id: str,
        naming_id: str,
        owner: str,
        clock: Callable[[], float],
        now: datetime,
    ) -> None:
        self.p = processor
        self.config = processor.config
        self.context = context
        self.messages = messages
        self.request_id = request_id
        self.naming_id = naming_id  # the request id used in bundle keys
        self.owner = owner
        self.clock = clock
        self.now = now
        self.fifo = any(message.is_fifo for message in messages)
        self.from_sqs = any(message.envelope.is_sqs for message in messages)
        self.slots: list[Slot] = []
        self.claimed: dict[str, Slot] = {}  # idempotency key -> slot holding the lease
        self.pending: dict[str, str] = {}  # idempotency key -> bundle whose commit was tried
        self.bundles: tuple[BundleSummary, ...] = ()
        self.used_bundle_keys: set[str] = set()
        self.bundle_key_failed = False

    # ------------------------------------------------------------------ stages

    def execute(self) -> BatchResult:
        """Run every stage; return the result (exceptions only for bugs and interrupts)."""
        self._filter()
        self._fifo_cutoff()
        if self._out_of_time():
            return self._result()
        self._resolve_keys()
        self._apply_hooks()
        self._fifo_cutoff()
        if self._out_of_time():
            return self._result()
        self._claim()
        self._fifo_cutoff()
        try:
            self._bundle()
        finally:
            self._release_leftovers()
        self._copy_to_duplicates()
        self._notify()
        return self._result()

    def _open(self) -> list[Slot]:
        """Slots still waiting for a decision, first copies only."""
        return [s for s in self.slots if s.result is None and s.primary is None]

    def _out_of_time(self) -> bool:
        """Fail every undecided slot with ``TIMEOUT`` if the guard says stop."""
        if self.p.process_with_timeout_guard(self.context):
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

    def _resolve_keys(self) -> None:
        """Pick the reading of each ambiguous (EventBridge) key that exists in S3."""
        ambiguous = [
            s
            for s in self._open()
            if s.record is not None and len(s.record.s3.object.key_candidates) > 1
        ]
        if not ambiguous:
            return
        workers = min(_MAX_RESOLVE_WORKERS, len(ambiguous))
        with ThreadPoolExecutor(workers, thread_name_prefix="da-resolve") as pool:
            records = [slot.record for slot in ambiguous if slot.record is not None]
            resolved_all = list(pool.map(lambda r: resolve_key(self.p.s3, r), records))
        for slot, resolved in zip(ambiguous, resolved_all, strict=True):
            if isinstance(resolved, S3ObjectNotFoundError):
                slot.decide(Outcome.SKIPPED, Reason.OBJECT_NOT_FOUND, error=resolved)
            elif isinstance(resolved, DataAggregatorError):
                reason = Reason.FETCH_FAILED if resolved.retryable else Reason.REFUSED
                slot.decide(Outcome.FAILED, reason, error=resolved)
            else:
                slot.record = resolved

    def _apply_hooks(self) -> None:
        """``accept``, then ``member_name``; then spot second copies of a record."""
        seen: dict[str, Slot] = {}
        for slot in self._open():
            record = slot.record
            assert record is not None  # noqa: S101 - message-level slots are decided
            ok, accepted = self._call_hook(slot, "accept", self.p.accept, record)
            if not ok:
                continue
            if not accepted:
                slot.decide(Outcome.SKIPPED, Reason.NOT_ACCEPTED)
                continue
            ok, name = self._call_hook(slot, "member_name", self.p.member_name, record)
            if not ok:
                continue
            if not isinstance(name, str):
                self._hook_failed(slot, hook_error("member_name", None, "did not return a str"))
                continue
            try:
                sanitize_s3_key(name)
            except ValidationError as exc:
                self._hook_failed(slot, hook_error("member_name", exc, "unusable member name"))
                continue
            slot.member_name = name
            obj = record.s3.object
            slot.idempotency_key = make_idempotency_key(
                obj.original_key, record.version_id, record.sequencer
            )
            first = seen.setdefault(slot.idempotency_key, slot)
            if first is not slot:
                slot.primary = first

    def _call_hook(
        self,
        slot: Slot,
        name: str,
        hook: Callable[[S3EventNotificationRecord], object],
        record: S3EventNotificationRecord,
    ) -> tuple[bool, object]:
        """``(True, value)``, or ``(False, None)`` with the slot failed if the hook raised."""
        try:
            return True, hook(record)
        except Exception as exc:  # noqa: BLE001 - user code may raise anything: logged
            self._hook_failed(slot, hook_error(name, exc, "raised"), exc)
            return False, None

    @staticmethod
    def _hook_failed(
        slot: Slot, error: DataAggregatorError, exc: BaseException | None = None
    ) -> None:
        logger.error(
            "hook failed",
            exc_info=exc,
            extra={"hook": error.context.get("hook"), "message_id": slot.message_id},
        )
        slot.decide(Outcome.FAILED, Reason.HOOK_FAILED, error=error)

    def _bundle_key(self, number: int) -> str:
        """The ``bundle_key`` hook, checked; a stand-in key that the sink refuses if not."""
        try:
            key: object = self.p.bundle_key(number, request_id=self.naming_id, now=self.now)
            if not isinstance(key, str) or not key or key.startswith(REFUSED_KEY_PREFIX):
                detail = "did not return a non-empty str"
            elif len(key.encode("utf-8", "surrogatepass")) > MAX_KEY_BYTES:
                detail = f"returned a key longer than {MAX_KEY_BYTES} bytes"
            elif key in self.used_bundle_keys:
                detail = "returned a key already used in this invocation"
            else:
                self.used_bundle_keys.add(key)
                return key
            exc: Exception | None = None
        except Exception as caught:  # noqa: BLE001 - user code may raise anything: logged
            detail, exc = "raised", caught
        self.bundle_key_failed = True
        logger.error(
            "hook failed",
            exc_info=exc,
            extra={"hook": "bundle_key", "bundle_number": number, "detail": detail},
        )
        return f"{REFUSED_KEY_PREFIX}{number}"

    # ------------------------------------------------------------------ store

    def _claim(self) -> None:
        slots = self._open()
        if not slots:
            return
        by_key = {slot.idempotency_key: slot for slot in slots if slot.idempotency_key}
        lease = lease_expiry_from_context(
            self.context, margin_seconds=self.config.lease_margin_seconds, clock=self.clock
        )
        try:
            results = self.p.store.claim(by_key, owner=self.owner, lease_expires_at=lease)
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

    def _announce(self, bundle_key: str, tokens: Sequence[object]) -> None:
        """Before a bundle's upload commits: tell the store which records it holds.

        Raising aborts the bundle (its upload is never committed), so its records are
        released afterwards; only when this returns is the commit attempted.
        """
        keys = [str(token) for token in tokens]
        results = self.p.store.mark_pending(keys, owner=self.owner, bundle_key=bundle_key)
        refused = [key for key in keys if not results[key].ok]
        if refused:
            raise BundleError(
                "the idempotency store did not accept the bundle's pending mark",
                "PENDING_MARK_FAILED",
                {"bundle_key": bundle_key, "records": len(refused)},
            )
        for key in keys:
            self.pending[key] = bundle_key

    # ------------------------------------------------------------------ bundling

    def _bundle(self) -> None:
        slots = [s for s in self._open() if s.idempotency_key in self.claimed]
        if not slots:
            return
        run = self.p.engine.run(
            [self._source(slot) for slot in slots],
            bundle_key=self._bundle_key,
            should_continue=lambda: self.p.process_with_timeout_guard(self.context),
            before_commit=self._announce,
        )
        self.bundles = run.bundles
        for slot, outcome in zip(slots, run.outcomes, strict=True):
            self._decide_from(slot, outcome, run.stop_reason)
        for bundle in run.bundles:
            self._complete(bundle.key, [s for s in slots if s.bundled_in == bundle.key])

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
            if isinstance(error, BundleUploadError):
                reason = Reason.UPLOAD_FAILED
                if error.context.get("cause_code") == HOOK_FAILED:
                    reason = Reason.HOOK_FAILED
                elif error.error_code == "BUNDLE_COMMIT_HOOK_FAILED":  # mark_pending refused
                    reason = Reason.STORE_ERROR
            else:
                reason = Reason.FETCH_FAILED
            slot.decide(Outcome.FAILED, reason, error=error)
        elif stop_reason is StopReason.UPLOAD_FAILED:  # NOT_ATTEMPTED
            reason = Reason.HOOK_FAILED if self.bundle_key_failed else Reason.UPLOAD_FAILED
            slot.decide(Outcome.FAILED, reason)
        else:
            slot.decide(Outcome.FAILED, Reason.TIMEOUT)

    def _complete(self, bundle_key: str, slots: Sequence[Slot]) -> None:
        """Mark the records of an uploaded bundle completed; fail those not confirmed."""
        keys = [slot.idempotency_key or "" for slot in slots]
        results: dict[str, UpdateResult] = {}
        failure: IdempotencyError | None = None
        try:
            results = self.p.store.complete(keys, owner=self.owner, bundle_key=bundle_key)
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

    def _release_leftovers(self) -> None:
        """Release every claimed record that is in no uploaded bundle.

        Never released: records in an uploaded bundle (completed, or recovered by the
        retry through their pending mark), and records announced for a bundle whose
        commit was attempted and failed: the upload may have completed after all, so
        their lease runs out instead and the next claimer checks that bundle. (SQS
        redelivers only after the visibility timeout, which outlasts the lease.) The
        rest, including records of a bundle whose pending mark was refused (never
        committed), are released so that a retry can claim them at once.
        """
        uploaded = {bundle.key for bundle in self.bundles}
        release: list[str] = []
        for key, slot in self.claimed.items():
            if slot.bundled_in is not None:
                continue
            if slot.result is None:  # interrupted before the run decided it
                slot.decide(Outcome.FAILED, Reason.UPLOAD_FAILED)
            announced = self.pending.get(key)
            if announced is not None and announced not in uploaded:
                continue
            release.append(key)
        if not release:
            return
        try:
            results = self.p.store.release(release, owner=self.owner)
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
                self.p.on_bundle_written(bundle, records)
            except Exception:
                logger.exception(
                    "hook failed", extra={"hook": "on_bundle_written", "bundle_key": bundle.key}
                )
                self.p.metrics.add("BundleHookFailures", 1)

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
