"""`Slot`: one record of an invocation and, once decided, its result (private)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from data_aggregator.processor._results import Outcome, Reason, RecordResult

if TYPE_CHECKING:
    from data_aggregator.exceptions import DataAggregatorError
    from data_aggregator.schemas import S3EventNotificationRecord

__all__ = ["Slot"]


@dataclass
class Slot:
    """One record (or a message without records) and, once decided, its result."""

    message_index: int
    message_id: str
    record: S3EventNotificationRecord | None
    result: RecordResult | None = None
    member_name: str | None = None
    idempotency_key: str | None = None
    primary: Slot | None = None  # set on a second copy of a record in the same batch
    bundled_in: str | None = None  # the uploaded bundle holding the record's object
    bundled_etag: str | None = None  # the ETag of the object as fetched into it

    def decide(
        self,
        outcome: Outcome,
        reason: Reason | None = None,
        *,
        error: DataAggregatorError | None = None,
        bundle_key: str | None = None,
    ) -> None:
        """Record the slot's result (a later decision replaces an earlier one)."""
        self.result = RecordResult(
            message_id=self.message_id,
            outcome=outcome,
            reason=reason,
            record=self.record,
            idempotency_key=self.idempotency_key,
            bundle_key=bundle_key,
            member_name=self.member_name if outcome is Outcome.BUNDLED else None,
            error=error,
        )
