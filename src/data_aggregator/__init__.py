"""data_aggregator: bundle floods of small S3 objects from an SQS-triggered Lambda.

Public names are re-exported here; heavy or optional parts load lazily on first use so
that ``import data_aggregator`` stays cheap on a Lambda cold start.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as _version
from typing import TYPE_CHECKING, Any

from data_aggregator.exceptions import (
    ConfigurationError,
    DataAggregatorError,
    S3TimeoutError,
    ValidationError,
)

if TYPE_CHECKING:
    from data_aggregator.config import AppConfig, Codec, get_config
    from data_aggregator.idempotency import make_idempotency_key
    from data_aggregator.schemas import (
        ParsedMessage,
        S3EventNotificationRecord,
        S3EventRecord,
        parse_event,
    )
    from data_aggregator.security import sanitize_s3_key

try:
    __version__ = _version("data-aggregator")
except PackageNotFoundError:  # pragma: no cover - only when run from a bare source tree
    __version__ = "0.0.0+unknown"

_LAZY: dict[str, str] = {
    "AppConfig": "data_aggregator.config",
    "Codec": "data_aggregator.config",
    "ParsedMessage": "data_aggregator.schemas",
    "parse_event": "data_aggregator.schemas",
    "get_config": "data_aggregator.config",
    "make_idempotency_key": "data_aggregator.idempotency",
    "S3EventNotificationRecord": "data_aggregator.schemas",
    "S3EventRecord": "data_aggregator.schemas",
    "sanitize_s3_key": "data_aggregator.security",
}


def __getattr__(name: str) -> Any:
    module_name = _LAZY.get(name)
    if module_name is None:
        msg = f"module 'data_aggregator' has no attribute {name!r}"
        raise AttributeError(msg)
    import importlib  # noqa: PLC0415 - deferred: keeps the cold-start import small

    value = getattr(importlib.import_module(module_name), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


__all__ = [
    "AppConfig",
    "Codec",
    "ConfigurationError",
    "DataAggregatorError",
    "ParsedMessage",
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
