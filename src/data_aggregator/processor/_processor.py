"""`ReusableProcessor`: the Lambda-facing orchestrator (private)."""

from __future__ import annotations

import logging
import time
import uuid
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from data_aggregator.bundle import BundleEngine, MultipartSink, make_bundle_key_factory
from data_aggregator.context import request_id_of
from data_aggregator.exceptions import ConfigurationError
from data_aggregator.metrics import EmfMetrics, MetricsSink, MetricUnit, NullMetrics
from data_aggregator.processor._invocation import Collaborators, Invocation
from data_aggregator.processor._results import (
    BatchFailedError,
    BatchResult,
    Outcome,
    PartialBatchResponse,
)
from data_aggregator.schemas import parse_event

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping, Sequence

    from botocore.session import Session as BotocoreSession

    from data_aggregator.bundle import BundleSummary
    from data_aggregator.clients import S3Client
    from data_aggregator.config import AppConfig
    from data_aggregator.context import InvocationContext
    from data_aggregator.idempotency import BundleLocator, IdempotencyStore
    from data_aggregator.schemas import S3EventNotificationRecord

__all__ = ["ReusableProcessor"]

logger = logging.getLogger("data_aggregator.processor")


class ReusableProcessor:
    """Base class for bundling Lambdas: owns the loop, the bookkeeping and the cleanup.

    Args:
        config: The validated configuration ([`get_config`][data_aggregator.config.get_config]).
        s3_client: S3 operations; default ``S3Client.from_config(config)``.
        store: Idempotency store; default a ``DynamoDBIdempotencyStore`` on
            ``IDEMPOTENCY_TABLE_NAME`` whose crash recovery reads bundle manifests from
            ``DISTRIBUTION_BUCKET_NAME``. Required when no table is configured.
        metrics: Metrics sink; default EMF lines on stdout when ``METRICS_ENABLED``,
            else [`NullMetrics`][data_aggregator.metrics.NullMetrics].
        clock: Seconds since the epoch (leases, bundle times); tests pass a fake.

    Hooks a subclass may override (each has a default; a hook that raises fails only the
    records it concerns): [`accept`][data_aggregator.processor.ReusableProcessor.accept],
    [`member_name`][data_aggregator.processor.ReusableProcessor.member_name],
    [`bundle_key`][data_aggregator.processor.ReusableProcessor.bundle_key],
    [`on_bundle_written`][data_aggregator.processor.ReusableProcessor.on_bundle_written].

    Raises:
        ConfigurationError: no store given and ``IDEMPOTENCY_TABLE_NAME`` unset.
    """

    def __init__(
        self,
        config: AppConfig,
        *,
        s3_client: S3Client | None = None,
        store: IdempotencyStore | None = None,
        metrics: MetricsSink | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.config = config
        self._clock = clock
        # The default S3 client and the default store's DynamoDB client share one botocore
        # session: the second client reuses what the first one loaded (endpoints,
        # partitions, defaults), about 45 ms of CPU on a cold start, and neither imports
        # boto3 nor s3transfer (boto3's extras, unused here), about 40 ms more.
        session = _new_session() if s3_client is None else None
        if s3_client is None:
            from data_aggregator.clients import S3Client  # noqa: PLC0415 - imports boto3

            s3_client = S3Client.from_config(config, session=session)
        self.s3 = s3_client
        self.store = store if store is not None else self._default_store(session)
        self.metrics: MetricsSink = metrics if metrics is not None else self._default_metrics()
        sink = MultipartSink.from_config(config, s3_client)
        self.engine = BundleEngine.from_config(config, s3_client, sink, clock=clock)
        #: The result of the latest `process` / `handle` call.
        self.last_result: BatchResult | None = None

    # ------------------------------------------------------------------ seed API

    def process_with_timeout_guard(self, context: InvocationContext) -> bool:
        """Whether there is time for more work: remaining time above the guard threshold."""
        return context.get_remaining_time_in_millis() > self.config.timeout_guard_threshold_ms

    # ------------------------------------------------------------------ hooks

    def accept(self, record: S3EventNotificationRecord) -> bool:
        """Whether to bundle ``record``; ``False`` skips it (acknowledged, logged, counted).

        Called after the event-type filter, the bucket allowlist and the resolution of
        ambiguous EventBridge keys (``record.s3.object.original_key`` is the exact key).
        Default: accept all. If it raises, the record fails (``HOOK_FAILED``).
        """
        return True

    def member_name(self, record: S3EventNotificationRecord) -> str:
        """The name of ``record``'s member in the bundle. Default: the sanitized key.

        Must return a ``str`` that [`sanitize_s3_key`][data_aggregator.security.sanitize_s3_key]
        accepts; the bundle applies the sanitizer and its collision rule to it, so a hook
        cannot produce an unsafe or duplicate name. If it raises or returns something
        unusable, the record fails (``HOOK_FAILED``).
        """
        return record.s3.object.key

    def bundle_key(self, number: int, *, request_id: str, now: datetime) -> str:
        """The S3 key of the invocation's ``number``-th bundle (1, 2, ...).

        Default: ``<BUNDLE_PREFIX>YYYY/MM/DD/HH/bundle-<request id>-<n><extension>``, the
        folder from ``now`` (UTC, the invocation's start). ``request_id`` is the Lambda
        request id; for a direct (asynchronous) invocation, which Lambda retries with the
        same request id, it carries a random suffix. Keys must never repeat: across
        invocations too, or a later bundle would overwrite an earlier one. If it raises or
        returns an empty, over-long or already used key, the records of that bundle and
        of every later one fail (``HOOK_FAILED``); earlier bundles are kept.
        """
        factory = make_bundle_key_factory(
            extension=self.engine.extension,
            prefix=self.config.bundle_prefix,
            request_id=request_id,
            now=now,
        )
        return factory(number)

    def on_bundle_written(
        self, bundle: BundleSummary, records: Sequence[S3EventNotificationRecord]
    ) -> None:
        """Called once per bundle, after it is durably in S3 and ``complete`` was called.

        ``records`` are the records whose objects are members of ``bundle``, in member
        order. E.g. notify a downstream queue. At most once per bundle: a bundle recovered
        after a crash is not announced again. An exception is logged and counted
        (``BundleHookFailures``) but does not fail the records: they are bundled, and a
        retry would find them completed without calling the hook again.
        """

    # ------------------------------------------------------------------ entry points

    def handle(self, event: Mapping[str, Any], context: InvocationContext) -> PartialBatchResponse:
        """Process one Lambda event; return ``{"batchItemFailures": [...]}``.

        For a Step Functions Distributed Map item batch whose items are all done, the
        return value is a [`MapBatchSummary`][data_aggregator.processor.MapBatchSummary]
        (an empty ``batchItemFailures`` plus counts); see docs/backfill-step-functions.md.

        Raises:
            EventParseError: the event as a whole is of no known shape.
            MapBatchFailedError: items of a Map batch were not bundled and one at least
                may be on a retry (`MapBatchRefusedError` when none can): raising is how
                the batch counts as failed and gets retried by the Map's ``Retry``.
            BatchFailedError: a direct (S3, SNS or EventBridge) invocation had failures;
                raising is how such invocations get retried. SQS events never raise it.
        """
        result = self.process(event, context)
        if result.from_map:
            if result.failed_message_ids:
                raise result.map_batch_error()
            return result.map_summary
        if result.failed_message_ids and not result.from_sqs:
            raise BatchFailedError(result)
        return result.response

    def process(self, event: Mapping[str, Any], context: InvocationContext) -> BatchResult:
        """Process one Lambda event; return the typed per-record
        [`BatchResult`][data_aggregator.processor.BatchResult].

        Raises:
            EventParseError: the event as a whole is of no known shape (no message can be
                named, so the whole invocation must fail and be retried).
        """
        started = time.monotonic()
        request_id = request_id_of(context) or uuid.uuid4().hex
        messages = parse_event(event)
        naming_id = request_id
        if messages and not any(m.envelope.is_sqs for m in messages):
            # Lambda retries a failed asynchronous invocation with the same request id:
            # keep its bundle keys distinct from the first attempt's.
            naming_id = f"{request_id}-{uuid.uuid4().hex[:8]}"
        collaborators = Collaborators(
            hooks=self,
            store=self.store,
            engine=self.engine,
            s3_client=self.s3,
            metrics=self.metrics,
            config=self.config,
            clock=self._clock,
        )
        invocation = Invocation(
            collaborators,
            context,
            messages,
            has_time=lambda: self.process_with_timeout_guard(context),
            request_id=request_id,
            naming_id=naming_id,
            owner=f"{request_id}/{uuid.uuid4().hex[:12]}",
            now=self._now(),
        )
        result = invocation.execute()
        self.last_result = result
        self._report(result, context, time.monotonic() - started)
        return result

    # ------------------------------------------------------------------ internals

    def _now(self) -> datetime:
        return datetime.fromtimestamp(self._clock(), timezone.utc)

    def _default_store(self, session: BotocoreSession | None) -> IdempotencyStore:
        table = self.config.idempotency_table_name
        if not table:
            msg = (
                "IDEMPOTENCY_TABLE_NAME is not set: set it, or pass store= explicitly "
                "(InMemoryIdempotencyStore for tests and local runs)"
            )
            raise ConfigurationError(msg, context={"variable": "IDEMPOTENCY_TABLE_NAME"})
        from data_aggregator.idempotency import (  # noqa: PLC0415 - boto3-backed, lazy
            DynamoDBIdempotencyStore,
            S3ManifestBundleLocator,
        )

        locator: BundleLocator = S3ManifestBundleLocator.from_config(self.config, client=self.s3)
        return DynamoDBIdempotencyStore.from_config(
            self.config, bundle_locator=locator, clock=self._clock, session=session
        )

    def _default_metrics(self) -> MetricsSink:
        if not self.config.metrics_enabled:
            return NullMetrics()
        return EmfMetrics(
            self.config.metrics_namespace,
            {"service": self.config.service_name, "environment": self.config.environment},
            clock=self._clock,
        )

    def _report(self, result: BatchResult, context: InvocationContext, seconds: float) -> None:
        """Emit the invocation's metrics (one flush) and its summary log line."""
        metrics = self.metrics
        bundled = [r for r in result.records if r.outcome is Outcome.BUNDLED]
        duplicates = result.count(Outcome.DUPLICATE)
        remaining_ms = context.get_remaining_time_in_millis()
        metrics.add("ObjectsBundled", len(bundled))
        metrics.add(
            "BytesBundled",
            sum(r.record.s3.object.size or 0 for r in bundled if r.record is not None),
            MetricUnit.BYTES,
        )
        metrics.add("Duplicates", duplicates)
        metrics.add("BundlesWritten", len(result.bundles))
        metrics.add("MessagesFailed", len(result.failed_message_ids))
        for entry in result.records:
            if entry.outcome in (Outcome.SKIPPED, Outcome.FAILED) and entry.reason is not None:
                prefix = "Skipped" if entry.outcome is Outcome.SKIPPED else "Failed"
                metrics.add(f"{prefix}_{entry.reason.value}", 1)
        metrics.add("BundleSeconds", seconds, MetricUnit.SECONDS)
        metrics.add("RemainingTimeAtFinish", remaining_ms, MetricUnit.MILLISECONDS)
        metrics.flush()
        logger.info(
            "batch processed",
            extra={
                "request_id": result.request_id,
                "messages": len({r.message_id for r in result.records}),
                "records": len(result.records),
                "bundled": len(bundled),
                "duplicates": duplicates,
                "skipped": result.count(Outcome.SKIPPED),
                "failed": result.count(Outcome.FAILED),
                "failed_messages": len(result.failed_message_ids),
                "bundles": [bundle.key for bundle in result.bundles],
                "seconds": round(seconds, 3),
                "remaining_ms": remaining_ms,
            },
        )


def _new_session() -> BotocoreSession:
    """A botocore session for the default clients (imported here, on first use)."""
    import botocore.session  # noqa: PLC0415 - deferred: the processor's import stays light

    return botocore.session.get_session()
