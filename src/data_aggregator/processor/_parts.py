"""Parts of one processor invocation (private): slots, the guarded sink, key resolution."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from data_aggregator.exceptions import DataAggregatorError, S3ObjectNotFoundError, ValidationError
from data_aggregator.processor._results import Outcome, Reason, RecordResult

if TYPE_CHECKING:
    from data_aggregator.bundle import BundleSink, BundleUpload
    from data_aggregator.clients import S3Client
    from data_aggregator.schemas import S3EventNotificationRecord

__all__ = ["HOOK_FAILED", "REFUSED_KEY_PREFIX", "GuardedSink", "Slot", "hook_error", "resolve_key"]

#: Error code of a hook that raised or returned something unusable.
HOOK_FAILED = "HOOK_FAILED"
#: Prefix of the stand-in key returned to the engine when ``bundle_key()`` failed; no S3
#: key starts with a NUL character, and `GuardedSink` refuses to open it.
REFUSED_KEY_PREFIX = "\x00bundle-key-refused/"


def hook_error(hook: str, exc: BaseException | None, detail: str) -> DataAggregatorError:
    """The error recorded on the records a failed hook concerns (``HOOK_FAILED``)."""
    context: dict[str, Any] = {"hook": hook, "detail": detail}
    if exc is not None:
        context["cause"] = type(exc).__name__
        context["cause_code"] = getattr(exc, "error_code", None)
    return DataAggregatorError(f"{hook}() failed: {detail}", HOOK_FAILED, context)


class GuardedSink:
    """The processor's sink: refuses the stand-in key of a failed ``bundle_key()`` hook.

    Opening the upload is where the engine expects failures, so a hook failure surfaces
    there as an upload failure of that bundle only (bundles already uploaded stay so).
    """

    def __init__(self, sink: BundleSink) -> None:
        self.sink = sink

    def open_upload(self, key: str, *, content_type: str) -> BundleUpload:
        """Open the upload of ``key``, or raise the hook failure for a stand-in key."""
        if key.startswith(REFUSED_KEY_PREFIX):
            raise hook_error("bundle_key", None, "no usable bundle key")
        return self.sink.open_upload(key, content_type=content_type)


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


def resolve_key(
    s3: S3Client, record: S3EventNotificationRecord
) -> S3EventNotificationRecord | DataAggregatorError:
    """Confirm which reading of an ambiguous (EventBridge) key exists in S3.

    ``HeadObject`` each of ``record.s3.object.key_candidates`` in order; the first whose
    size and ETag match the event wins (the literal reading first). Returns the confirmed
    record, or the error: ``S3ObjectNotFoundError`` when no reading matches, the S3 error
    of a failed request, or the ``ValidationError`` of a key the sanitizer refuses.
    """
    obj = record.s3.object
    for candidate in obj.key_candidates:
        try:
            info = s3.head_object(record.s3.bucket.name, candidate, version_id=record.version_id)
        except S3ObjectNotFoundError:
            continue
        except DataAggregatorError as exc:
            return exc
        if obj.size is not None and info.content_length != obj.size:
            continue
        if obj.e_tag and info.etag and info.etag.strip('"') != obj.e_tag:
            continue
        try:
            return record.confirm_key(candidate)
        except ValidationError as exc:
            return exc
    return S3ObjectNotFoundError(
        "no reading of the event's key names an object with the event's size and ETag",
        context={"bucket": record.s3.bucket.name, "candidates": len(obj.key_candidates)},
        operation="HeadObject",
    )
