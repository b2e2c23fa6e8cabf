"""A complete bundling Lambda, as ``docs/getting-started.md`` shows it (type-checked in CI)."""

from __future__ import annotations

from typing import Any

from data_aggregator import ReusableProcessor, S3EventNotificationRecord, get_config


class LogBundler(ReusableProcessor):
    def accept(self, record: S3EventNotificationRecord) -> bool:
        return record.s3.object.original_key.endswith(".log")  # others: skipped, acknowledged


processor = LogBundler(get_config())  # once per container: settings, S3 client, DynamoDB store


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return processor.handle(event, context)  # {"batchItemFailures": [{"itemIdentifier": ...}]}
