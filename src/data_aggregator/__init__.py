"""data_aggregator: bundle floods of small S3 objects from an SQS-triggered Lambda.

Public names are re-exported here; every one but the exceptions loads lazily on first use
(PEP 562 ``__getattr__``), so ``import data_aggregator`` stays cheap on a Lambda cold start
and optional parts (zstd, the DynamoDB store, the command line) are imported only when
used. ``docs/performance.md`` ("Cold start") has the measured figures.

The ``TYPE_CHECKING`` block below mirrors ``_LAZY`` so that type checkers see every name.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from data_aggregator.exceptions import (
    ConfigurationError,
    DataAggregatorError,
    S3TimeoutError,
    ValidationError,
)

if TYPE_CHECKING:
    from data_aggregator.bundle import BundleEngine, BundleSummary
    from data_aggregator.clients import S3Client
    from data_aggregator.config import AppConfig, Codec, get_config
    from data_aggregator.context import InvocationContext, LocalContext
    from data_aggregator.idempotency import (
        DynamoDBIdempotencyStore,
        IdempotencyStore,
        InMemoryIdempotencyStore,
        make_idempotency_key,
    )
    from data_aggregator.metrics import MetricsSink
    from data_aggregator.processor import (
        BatchFailedError,
        BatchItemFailure,
        BatchResult,
        Outcome,
        PartialBatchResponse,
        Reason,
        RecordResult,
        ReusableProcessor,
    )
    from data_aggregator.schemas import (
        ParsedMessage,
        S3EventNotificationRecord,
        S3EventRecord,
        parse_event,
    )
    from data_aggregator.security import sanitize_s3_key

    __version__: str

#: Public name -> the module it is loaded from on first access.
_LAZY: dict[str, str] = {
    "AppConfig": "data_aggregator.config",
    "BatchFailedError": "data_aggregator.processor",
    "BatchItemFailure": "data_aggregator.processor",
    "BatchResult": "data_aggregator.processor",
    "BundleEngine": "data_aggregator.bundle",
    "BundleSummary": "data_aggregator.bundle",
    "Codec": "data_aggregator.config",
    "DynamoDBIdempotencyStore": "data_aggregator.idempotency",
    "IdempotencyStore": "data_aggregator.idempotency",
    "InMemoryIdempotencyStore": "data_aggregator.idempotency",
    "InvocationContext": "data_aggregator.context",
    "LocalContext": "data_aggregator.context",
    "MetricsSink": "data_aggregator.metrics",
    "Outcome": "data_aggregator.processor",
    "ParsedMessage": "data_aggregator.schemas",
    "PartialBatchResponse": "data_aggregator.processor",
    "Reason": "data_aggregator.processor",
    "RecordResult": "data_aggregator.processor",
    "ReusableProcessor": "data_aggregator.processor",
    "S3Client": "data_aggregator.clients",
    "S3EventNotificationRecord": "data_aggregator.schemas",
    "S3EventRecord": "data_aggregator.schemas",
    "get_config": "data_aggregator.config",
    "make_idempotency_key": "data_aggregator.idempotency",
    "parse_event": "data_aggregator.schemas",
    "sanitize_s3_key": "data_aggregator.security",
}


def __getattr__(name: str) -> Any:
    if name == "__version__":
        from data_aggregator._metadata import read_version  # noqa: PLC0415 - on demand

        value: Any = read_version()
    else:
        module_name = _LAZY.get(name)
        if module_name is None:
            msg = f"module 'data_aggregator' has no attribute {name!r}"
            raise AttributeError(msg)
        import importlib  # noqa: PLC0415 - deferred: keeps the cold-start import small

        value = getattr(importlib.import_module(module_name), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY) | {"__version__"})


__all__ = [
    "AppConfig",
    "BatchFailedError",
    "BatchItemFailure",
    "BatchResult",
    "BundleEngine",
    "BundleSummary",
    "Codec",
    "ConfigurationError",
    "DataAggregatorError",
    "DynamoDBIdempotencyStore",
    "IdempotencyStore",
    "InMemoryIdempotencyStore",
    "InvocationContext",
    "LocalContext",
    "MetricsSink",
    "Outcome",
    "ParsedMessage",
    "PartialBatchResponse",
    "Reason",
    "RecordResult",
    "ReusableProcessor",
    "S3Client",
    "S3EventNotificationRecord",
    "S3EventRecord",
    "S3TimeoutError",
    "ValidationError",
    "__version__",
    "get_config",
    "make_idempotency_key",
    "parse_event",
    "sanitize_s3_key",
]
