"""The bundling Lambda of ``docs/getting-started.md``, complete (type-checked in CI)."""

from __future__ import annotations

from typing import Any

from data_aggregator import ReusableProcessor, S3EventNotificationRecord, get_config


class LogBundler(ReusableProcessor):
    def accept(self, record: S3EventNotificationRecord) -> bool:
        # Other keys are skipped, and acknowledged.
        return record.s3.object.original_key.endswith(".log")


# Once per container: settings, S3 client, DynamoDB store.
processor = LogBundler(get_config())


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    # Returns {"batchItemFailures": [{"itemIdentifier": ...}]}.
    return processor.handle(event, context)
