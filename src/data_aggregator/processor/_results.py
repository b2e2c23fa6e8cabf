"""Result types of `ReusableProcessor` (re-exported there)."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import TYPE_CHECKING, TypedDict

from data_aggregator.exceptions import (
    DataAggregatorError,
    ErrorCode,
    MapBatchFailedError,
    MapBatchRefusedError,
    MapItemFailure,
)

if TYPE_CHECKING:
    from data_aggregator.bundle import BundleSummary
    from data_aggregator.schemas import S3EventNotificationRecord

__all__ = [
    "BatchFailedError",
    "BatchItemFailure",
    "BatchResult",
    "MapBatchSummary",
    "Outcome",
    "PartialBatchResponse",
    "Reason",
    "RecordResult",
]


class BatchItemFailure(TypedDict):
    """One message SQS must deliver again: its ``messageId`` as ``itemIdentifier``."""

    itemIdentifier: str


class PartialBatchResponse(TypedDict):
    """What an SQS-triggered handler returns (``ReportBatchItemFailures``).

    ``{"batchItemFailures": [{"itemIdentifier": "<messageId>"}, ...]}``; an empty list
    means every message of the batch is done.
    """

    batchItemFailures: list[BatchItemFailure]


class MapBatchSummary(PartialBatchResponse):
    """What ``handle()`` returns for a Step Functions Distributed Map item batch in which
    every item is done (bundled, already bundled, or deliberately skipped).

    A `PartialBatchResponse` whose ``batchItemFailures`` is always empty (a batch with
    failures raises `MapBatchFailedError` instead), plus counts. Step Functions keeps it
    as the batch's output (in the ``ResultWriter``'s results).

    Attributes:
        items: Items in the batch.
        bundled: Items bundled by this invocation.
        duplicates: Items already in a bundle (an earlier run, a retry, or live events).
        skipped: Items deliberately not bundled (object gone or overwritten since the
            listing, a delete marker, ``accept()`` said no).
        bundles: The keys of the bundles this invocation wrote.
    """

    items: int
    bundled: int
    duplicates: int
    skipped: int
    bundles: list[str]


class Outcome(str, Enum):
    """What became of one S3 record (or of a message that carried none)."""

    #: In a bundle that is durably in S3 (``bundle_key`` names it).
    BUNDLED = "bundled"
    #: Already in a bundle: completed earlier, recovered from a crashed invocation's
    #: bundle, or a second copy of a record earlier in the same batch.
    DUPLICATE = "duplicate"
    #: Deliberately not bundled, and not worth retrying: see ``reason``.
    SKIPPED = "skipped"
    #: Not bundled; the message is reported in ``batchItemFailures`` so SQS retries it
    #: (and, after the redrive limit, moves it to the dead-letter queue).
    FAILED = "failed"


class Reason(str, Enum):
    """Why a record was skipped or failed (``None`` on bundled records)."""

    # Skipped: acknowledged, logged and counted.
    TEST_EVENT = "test_event"
    IGNORED_EVENT_TYPE = "ignored_event_type"
    NOT_ACCEPTED = "not_accepted"
    OBJECT_NOT_FOUND = "object_not_found"
    OBJECT_SUPERSEDED = "object_superseded"
    # Duplicates: already in a bundle.
    ALREADY_COMPLETED = "already_completed"
    RECOVERED = "recovered"
    DUPLICATE_IN_BATCH = "duplicate_in_batch"
    # Failed: reported to SQS for a retry.
    INVALID_MESSAGE = "invalid_message"
    BUCKET_NOT_ALLOWED = "bucket_not_allowed"
    HOOK_FAILED = "hook_failed"
    IN_PROGRESS_ELSEWHERE = "in_progress_elsewhere"
    STORE_ERROR = "store_error"
    FETCH_FAILED = "fetch_failed"
    REFUSED = "refused"
    UPLOAD_FAILED = "upload_failed"
    #: In an uploaded bundle (``bundle_key``), but the store did not confirm ``complete``
    #: (store error, or the lease was lost): the retry finds it completed or recovers it.
    COMPLETE_FAILED = "complete_failed"
    TIMEOUT = "timeout"
    FIFO_BLOCKED = "fifo_blocked"


#: Failures that a retry of the same message settles whatever error class they carry:
#: the record is in an uploaded bundle (found completed or recovered), was held by another
#: invocation, or never got its turn.
_RETRY_SETTLES = frozenset(
    {
        Reason.COMPLETE_FAILED,
        Reason.IN_PROGRESS_ELSEWHERE,
        Reason.TIMEOUT,
        Reason.FIFO_BLOCKED,
        Reason.UPLOAD_FAILED,
    }
)


@dataclass(frozen=True, slots=True)
class RecordResult:
    """The outcome of one record (or of a whole message that failed before its records).

    Attributes:
        message_id: The SQS message (what ``batchItemFailures`` names).
        outcome: Bundled, duplicate, skipped or failed.
        reason: Why, for everything but ``BUNDLED``.
        record: The parsed record; ``None`` for a message that did not parse or carried no
            record (a test event).
        idempotency_key: The record's key in the idempotency store, when it got that far.
        bundle_key: The bundle holding the record (``BUNDLED``; ``DUPLICATE`` when the
            store knows it; ``FAILED`` with ``COMPLETE_FAILED``).
        member_name: The record's name inside ``bundle_key`` (``BUNDLED`` only).
        error: The error behind a ``FAILED`` or ``SKIPPED`` outcome, when there is one.
    """

    message_id: str
    outcome: Outcome
    reason: Reason | None = None
    record: S3EventNotificationRecord | None = None
    idempotency_key: str | None = None
    bundle_key: str | None = None
    member_name: str | None = None
    error: DataAggregatorError | None = field(default=None, compare=False)

    @property
    def failed(self) -> bool:
        """Whether this result makes its message fail."""
        return self.outcome is Outcome.FAILED

    def log_fields(self) -> dict[str, object]:
        """Structured logging fields: ids, bucket and key, outcome; never object contents."""
        fields: dict[str, object] = {
            "message_id": self.message_id,
            "outcome": self.outcome.value,
            "reason": self.reason.value if self.reason else None,
        }
        if self.record is not None:
            fields["bucket"] = self.record.s3.bucket.name
            fields["key"] = self.record.s3.object.original_key
            fields["version_id"] = self.record.version_id
        if self.bundle_key is not None:
            fields["bundle_key"] = self.bundle_key
        if self.error is not None:
            fields["error_code"] = self.error.error_code
        return fields


@dataclass(frozen=True, slots=True)
class BatchResult:
    """What [`ReusableProcessor.process`][data_aggregator.processor.ReusableProcessor.process]
    did with one Lambda event.

    Attributes:
        records: One result per record, plus one per message that failed as a whole or
            carried no record, in event order.
        failed_message_ids: The messages SQS must retry, in event order, each once.
        bundles: The bundles uploaded during the invocation.
        request_id: The invocation's request id (used in bundle keys).
        from_sqs: Whether the event came from SQS, whose event source mapping honours
            ``batchItemFailures``; ``False`` for direct (asynchronous) invocations.
        from_map: Whether the event was a Step Functions Distributed Map item batch (one
            message per item, ``item-<index>``).
    """

    records: tuple[RecordResult, ...]
    failed_message_ids: tuple[str, ...]
    bundles: tuple[BundleSummary, ...] = ()
    request_id: str = ""
    from_sqs: bool = True
    from_map: bool = False

    @property
    def map_summary(self) -> MapBatchSummary:
        """The summary ``handle()`` returns for a Map batch without failures."""
        return {
            "batchItemFailures": [],
            "items": len({result.message_id for result in self.records}),
            "bundled": self.count(Outcome.BUNDLED),
            "duplicates": self.count(Outcome.DUPLICATE),
            "skipped": self.count(Outcome.SKIPPED),
            "bundles": [bundle.key for bundle in self.bundles],
        }

    def map_batch_error(self) -> MapBatchFailedError:
        """The error ``handle()`` raises for a Map batch with failures:
        `MapBatchRefusedError` when no failure can go away on a retry (each has an error
        that is not ``retryable``, and a reason a retry does not settle by itself: not
        ``COMPLETE_FAILED``, ``IN_PROGRESS_ELSEWHERE``, ``TIMEOUT``, ``FIFO_BLOCKED`` or
        ``UPLOAD_FAILED``), else `MapBatchFailedError`."""
        failures = [
            MapItemFailure(
                item=result.message_id,
                reason=result.reason.value if result.reason is not None else "unknown",
                error_code=result.error.error_code if result.error is not None else None,
                bucket=result.record.s3.bucket.name if result.record is not None else None,
                key=result.record.s3.object.original_key if result.record is not None else None,
                retryable=(
                    result.reason in _RETRY_SETTLES
                    or result.error is None
                    or result.error.retryable
                ),
            )
            for result in self.records
            if result.failed
        ]
        items = len({result.message_id for result in self.records})
        cls = (
            MapBatchFailedError
            if any(failure.retryable for failure in failures)
            else MapBatchRefusedError
        )
        return cls(failures, items, correlation_id=self.request_id or None)

    @property
    def response(self) -> PartialBatchResponse:
        """The Lambda response for SQS partial batch failures."""
        return {
            "batchItemFailures": [
                {"itemIdentifier": message_id} for message_id in self.failed_message_ids
            ]
        }

    def count(self, outcome: Outcome, reason: Reason | None = None) -> int:
        """How many record results have ``outcome`` (and ``reason``, when given)."""
        return sum(
            1
            for result in self.records
            if result.outcome is outcome and (reason is None or result.reason is reason)
        )


class BatchFailedError(DataAggregatorError):
    """Raised by [`ReusableProcessor.handle`][data_aggregator.processor.ReusableProcessor.handle]
    when a direct invocation has failures.

    S3, SNS and EventBridge invoke a function asynchronously and ignore what it returns:
    the only way to get a retry (and, after Lambda's retries, the on-failure destination)
    is to raise. SQS-triggered invocations never raise this: they report
    ``batchItemFailures``. Everything that could be bundled was bundled and completed
    first, so the retry finds those records already done.

    Attributes:
        result: The [`BatchResult`][data_aggregator.processor.BatchResult] of the invocation.
    """

    default_code = ErrorCode.BATCH_FAILED
    retryable = True

    def __init__(self, result: BatchResult) -> None:
        super().__init__(
            "some records of a direct invocation could not be bundled",
            context={
                "request_id": result.request_id,
                "failed_messages": len(result.failed_message_ids),
                "failed_records": result.count(Outcome.FAILED),
            },
        )
        self.result = result
