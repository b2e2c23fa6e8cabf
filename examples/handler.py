"""The example Lambda: bundle every object that lands in the landing bucket.

Deployed by ``template.yaml`` (AWS SAM, SQS-triggered) and, unchanged, by ``backfill.yaml``
(invoked by a Step Functions Distributed Map with item batches of existing objects:
``handle()`` recognises the event). Configured entirely by environment variables
(``DISTRIBUTION_BUCKET_NAME``, ``IDEMPOTENCY_TABLE_NAME``, ...: see
``docs/configuration.md``). The processor is built once per container, at import, so the
configuration, the boto3 clients and the DynamoDB store are reused across invocations.
"""

from __future__ import annotations

from typing import Any

from data_aggregator import (
    PartialBatchResponse,
    ReusableProcessor,
    S3EventNotificationRecord,
    get_config,
)


class LandingBundler(ReusableProcessor):
    """Bundles every new object except zero-byte "folder" markers (keys ending in ``/``)."""

    def accept(self, record: S3EventNotificationRecord) -> bool:
        # Skipped records are acknowledged and logged, never retried.
        return not record.s3.object.original_key.endswith("/")


processor = LandingBundler(get_config())  # once per container (cold start)


def handler(event: dict[str, Any], context: Any) -> PartialBatchResponse:
    """Entry point: ``{"batchItemFailures": [...]}`` for SQS; for a Map item batch, a
    summary, or a raised ``MapBatchFailedError`` that the Map's Retry matches."""
    return processor.handle(event, context)
