"""A ``ReusableProcessor`` subclass written the way a user writes one, type-checked by mypy.

Not a test module (pytest does not collect it): CI runs ``mypy --strict`` over it, so a
change to the hooks' signatures that would break users' type checking fails CI.
``tests/unit/test_processor.py`` also runs :class:`PartnerDropBundler` for real.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from typing_extensions import assert_type

from data_aggregator import (
    BatchItemFailure,
    BatchResult,
    BundleSummary,
    LocalContext,
    Outcome,
    PartialBatchResponse,
    Reason,
    RecordResult,
    ReusableProcessor,
    S3EventNotificationRecord,
    get_config,
)
from data_aggregator.exceptions import MapBatchFailedError, MapItemFailure
from data_aggregator.processor import BatchFailedError, MapBatchSummary

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence
    from datetime import datetime

    from data_aggregator.config import AppConfig
    from data_aggregator.context import InvocationContext

logger = logging.getLogger("partner_drops")


class PartnerDropBundler(ReusableProcessor):
    """Bundles partner CSV drops, one folder per partner, and remembers what it wrote."""

    def __init__(self, config: AppConfig, **kwargs: Any) -> None:
        super().__init__(config, **kwargs)
        self.written: list[tuple[str, int]] = []

    def accept(self, record: S3EventNotificationRecord) -> bool:
        """Only CSV files; everything else is skipped (and counted)."""
        return record.s3.object.original_key.endswith(".csv")

    def member_name(self, record: S3EventNotificationRecord) -> str:
        """Group members by source bucket inside the bundle."""
        return f"{record.s3.bucket.name}/{record.s3.object.key}"

    def bundle_key(self, number: int, *, request_id: str, now: datetime) -> str:
        """``partners/YYYY-MM-DD/<request id>-<n>.tar.gz``."""
        return f"partners/{now:%Y-%m-%d}/{request_id}-{number}{self.engine.extension}"

    def on_bundle_written(
        self, bundle: BundleSummary, records: Sequence[S3EventNotificationRecord]
    ) -> None:
        """Remember each bundle (a real one might notify a downstream queue)."""
        assert_type(bundle.key, str)
        self.written.append((bundle.key, len(records)))
        logger.info("bundle ready", extra={"bundle_key": bundle.key, "records": len(records)})


def build() -> PartnerDropBundler:
    """Built once per container, from the environment."""
    return PartnerDropBundler(get_config())


def handler(
    processor: ReusableProcessor, event: Mapping[str, Any], context: InvocationContext
) -> PartialBatchResponse:
    """The Lambda handler: SQS partial batch response."""
    return processor.handle(event, context)


def inspect(processor: ReusableProcessor, event: Mapping[str, Any]) -> list[str]:
    """The typed per-record results, for a CLI or a test."""
    result = processor.process(event, LocalContext.from_timeout(60))
    assert_type(result, BatchResult)
    assert_type(result.records, tuple[RecordResult, ...])
    assert_type(result.failed_message_ids, tuple[str, ...])
    assert_type(result.response, PartialBatchResponse)
    assert_type(result.response["batchItemFailures"], list[BatchItemFailure])
    assert_type(processor.last_result, BatchResult | None)
    notes: list[str] = []
    for entry in result.records:
        assert_type(entry.outcome, Outcome)
        assert_type(entry.reason, Reason | None)
        if entry.outcome is Outcome.FAILED and entry.error is not None:
            notes.append(entry.error.error_code)
        elif entry.reason is Reason.NOT_ACCEPTED and entry.record is not None:
            notes.append(entry.record.s3.object.original_key)
    return notes


def direct(processor: ReusableProcessor, event: Mapping[str, Any]) -> int:
    """A direct (asynchronous) invocation raises when something must be retried."""
    try:
        processor.handle(event, LocalContext.from_timeout(60))
    except BatchFailedError as error:
        assert_type(error.result, BatchResult)
        return len(error.result.failed_message_ids)
    return 0


def map_batch(processor: ReusableProcessor, event: Mapping[str, Any]) -> int:
    """A Step Functions Map item batch: a typed summary, or an error naming the items."""
    try:
        processor.handle(event, LocalContext.from_timeout(60))
    except MapBatchFailedError as error:
        assert_type(error.failures, tuple[MapItemFailure, ...])
        return -len(error.failures)
    assert processor.last_result is not None
    summary = processor.last_result.map_summary
    assert_type(summary, MapBatchSummary)
    assert_type(summary["bundles"], list[str])
    assert_type(processor.last_result.map_batch_error(), MapBatchFailedError)
    return summary["bundled"] + summary["duplicates"]
