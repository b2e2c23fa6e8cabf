"""Code written the way a user writes it against the public API, type-checked by mypy.

Not a test module (pytest does not collect it): CI runs ``mypy --strict`` over it, so a
change that breaks users' type checking fails CI. ``assert_type`` pins what users see.
"""

from __future__ import annotations

import logging
from typing import Any

from typing_extensions import assert_type

import data_aggregator
from data_aggregator.config import (
    AppConfig,
    BundleFormat,
    Codec,
    get_config,
    normalise_key_prefix,
)
from data_aggregator.exceptions import (
    DataAggregatorError,
    S3TimeoutError,
    TransientError,
    ValidationError,
)
from data_aggregator.idempotency import S3ManifestBundleLocator, make_idempotency_key
from data_aggregator.schemas import (
    ParsedMessage,
    S3EventNotificationRecord,
    S3EventRecord,
    parse_event,
)
from data_aggregator.security import sanitize_s3_key

logger = logging.getLogger("my_lambda")


def process_static(record: S3EventRecord) -> str:
    """A user function typed with the TypedDict view of a raw record."""
    return record["s3"]["object"]["key"]


def keys_of(raw_s3_record: dict[str, Any]) -> tuple[str, str, str]:
    """The seed's access paths keep their types."""
    parsed = S3EventNotificationRecord.model_validate(raw_s3_record)
    assert_type(parsed.s3.object.key, str)
    assert_type(parsed.s3.object.original_key, str)
    assert_type(parsed.s3.bucket.name, str)
    assert_type(parsed.s3.object.size, int | None)
    assert_type(parsed.version_id, str | None)
    assert_type(parsed.sequencer, str | None)
    assert_type(parsed.e_tag, str | None)
    idem = make_idempotency_key(parsed.s3.object.original_key, parsed.version_id, parsed.sequencer)
    return parsed.s3.object.key, parsed.s3.object.original_key, idem


def failed_ids(event: dict[str, Any]) -> dict[str, list[dict[str, str]]]:
    """Parse a Lambda event and report the messages that failed to parse."""
    messages = parse_event(event)
    assert_type(messages, list[ParsedMessage])
    failures = [{"itemIdentifier": m.message_id} for m in messages if m.error is not None]
    return {"batchItemFailures": failures}


def configure() -> AppConfig:
    """Configuration from the environment, or built in code."""
    config = get_config()
    assert_type(config.spool_file_max_size_bytes, int)
    assert_type(config.timeout_guard_threshold_ms, int)
    assert_type(config.idempotency_ttl_seconds, int)
    assert_type(config.bundle_codec, Codec)
    assert_type(config.bundle_format, BundleFormat)
    assert_type(config.sidecar_prefix, str)
    assert_type(normalise_key_prefix("manifests"), str)
    return AppConfig(distribution_bucket_name="dest-bucket", fetch_concurrency=8)


def recovery(config: AppConfig) -> S3ManifestBundleLocator:
    """The crash-recovery locator of a deployment (``AppConfig`` is its settings)."""
    return S3ManifestBundleLocator.from_config(config)


def safe_name(key: str) -> str | None:
    """Sanitize a key, logging the structured error when it is refused."""
    try:
        return sanitize_s3_key(key)
    except ValidationError as error:
        logger.warning("key refused", extra={"error": error.to_dict()})
        assert_type(error.error_code, str)
        return None


def fetch_guarded() -> None:
    """Errors from the seed example, caught by branch."""
    try:
        raise S3TimeoutError(
            operation="GetObject",
            timeout_seconds=30.0,
            context={"bucket": "landing-bucket", "key": "file.txt"},
        )
    except TransientError as error:
        assert_type(error.retryable, bool)
        logger.info("retry later", extra=error.to_dict())
    except DataAggregatorError:
        raise


assert_type(data_aggregator.__version__, str)
