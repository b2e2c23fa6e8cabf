"""The bundling Lambda of ``docs/getting-started.md``, complete (type-checked in CI)."""

from __future__ import annotations

from typing import Any

from data_aggregator import (
    PartialBatchResponse,
    ReusableProcessor,
    S3EventNotificationRecord,
    get_config,
)


class LogBundler(ReusableProcessor):
    def accept(self, record: S3EventNotificationRecord) -> bool:
        # Objects not ending in .log are skipped and acknowledged, never retried.
        return record.s3.object.original_key.endswith(".log")


# Once per container (cold start): settings, S3 client, DynamoDB store.
processor = LogBundler(get_config())


def handler(event: dict[str, Any], context: Any) -> PartialBatchResponse:
    # SQS retries only the messages listed in "batchItemFailures".
    return processor.handle(event, context)
