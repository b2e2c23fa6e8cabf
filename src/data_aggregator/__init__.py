"""data_aggregator: bundle floods of small S3 objects from an SQS-triggered Lambda.

Public names are re-exported here, and every one loads lazily on first use (PEP 562
``__getattr__``), so ``import data_aggregator`` stays cheap on a Lambda cold start and
optional parts (zstd, the DynamoDB store, the command line) are imported only when used.
``docs/performance.md`` ("Cold start") has the measured figures.

Each public name is written twice, the least the tools allow: in the ``TYPE_CHECKING``
block, as an explicit re-export (``import Name as Name``) so that type checkers see it
(with ``no_implicit_reexport``, as under ``mypy --strict``), and as a key of ``_LAZY``,
which says where it is loaded from at run time. ``__all__`` is derived from ``_LAZY``;
``tests/unit/test_lazy_imports.py`` checks that the block and the table agree.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from data_aggregator import _lazy

if TYPE_CHECKING:
    from data_aggregator._version import __version__ as __version__
    from data_aggregator.bundle import BundleEngine as BundleEngine
    from data_aggregator.bundle import BundleSummary as BundleSummary
    from data_aggregator.clients import S3Client as S3Client
    from data_aggregator.config import AppConfig as AppConfig
    from data_aggregator.config import BundleFormat as BundleFormat
    from data_aggregator.config import Codec as Codec
    from data_aggregator.config import get_config as get_config
    from data_aggregator.context import InvocationContext as InvocationContext
    from data_aggregator.context import LocalContext as LocalContext
    from data_aggregator.exceptions import ConfigurationError as ConfigurationError
    from data_aggregator.exceptions import DataAggregatorError as DataAggregatorError
    from data_aggregator.exceptions import S3TimeoutError as S3TimeoutError
    from data_aggregator.exceptions import ValidationError as ValidationError
    from data_aggregator.idempotency import DynamoDBIdempotencyStore as DynamoDBIdempotencyStore
    from data_aggregator.idempotency import IdempotencyStore as IdempotencyStore
    from data_aggregator.idempotency import InMemoryIdempotencyStore as InMemoryIdempotencyStore
    from data_aggregator.idempotency import make_idempotency_key as make_idempotency_key
    from data_aggregator.metrics import MetricsSink as MetricsSink
    from data_aggregator.processor import BatchFailedError as BatchFailedError
    from data_aggregator.processor import BatchItemFailure as BatchItemFailure
    from data_aggregator.processor import BatchResult as BatchResult
    from data_aggregator.processor import Outcome as Outcome
    from data_aggregator.processor import PartialBatchResponse as PartialBatchResponse
    from data_aggregator.processor import Reason as Reason
    from data_aggregator.processor import RecordResult as RecordResult
    from data_aggregator.processor import ReusableProcessor as ReusableProcessor
    from data_aggregator.schemas import ParsedMessage as ParsedMessage
    from data_aggregator.schemas import S3EventNotificationRecord as S3EventNotificationRecord
    from data_aggregator.schemas import S3EventRecord as S3EventRecord
    from data_aggregator.schemas import parse_event as parse_event
    from data_aggregator.security import sanitize_s3_key as sanitize_s3_key

#: Public name -> the module it is loaded from on first access (in ``__all__``'s order).
_LAZY: dict[str, str] = {
    "AppConfig": "data_aggregator.config",
    "BatchFailedError": "data_aggregator.processor",
    "BatchItemFailure": "data_aggregator.processor",
    "BatchResult": "data_aggregator.processor",
    "BundleEngine": "data_aggregator.bundle",
    "BundleFormat": "data_aggregator.config",
    "BundleSummary": "data_aggregator.bundle",
    "Codec": "data_aggregator.config",
    "ConfigurationError": "data_aggregator.exceptions",
    "DataAggregatorError": "data_aggregator.exceptions",
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
    "S3TimeoutError": "data_aggregator.exceptions",
    "ValidationError": "data_aggregator.exceptions",
    "__version__": "data_aggregator._version",
    "get_config": "data_aggregator.config",
    "make_idempotency_key": "data_aggregator.idempotency",
    "parse_event": "data_aggregator.schemas",
    "sanitize_s3_key": "data_aggregator.security",
}

__all__ = list(_LAZY)
__getattr__, __dir__ = _lazy.lazy_attributes(globals(), _LAZY)
