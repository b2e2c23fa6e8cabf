"""``data-aggregator bundle``: compact objects that already exist (a backfill, a replay).

The source prefix is listed page by page; each listed object becomes a synthetic S3
``ObjectCreated`` notification (one per SQS-shaped message, so that a record that fails
fails alone) and the records are fed, ``batch_size`` at a time, to a
`ReusableProcessor` with a DynamoDB idempotency table
and a fresh `LocalContext` per chunk (so leases stay
bounded). Claims that announce the bundle, bundle, complete or release: the same
code and the same guarantees as the Lambda. A re-run finds completed objects in the table
and bundles nothing twice; an interrupted run is resumed by running it again.

Idempotency key of a listed object (``docs/cli.md``): the processor's, as for every
record (`record_idempotency_key`): its content key, from the bucket, the exact key, the
ETag and the size, which a listing has as a live event does; so an object the Lambda
bundled is a duplicate here and the other way round. The synthetic record's sequencer,
``backfill:<ETag>:<LastModified>`` (a listing has no event sequencer;
`data_aggregator.schemas.backfill_sequencer`, shared with the Step Functions Map
envelope), is what its manifest entry records.
"""

from __future__ import annotations

import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import TYPE_CHECKING

from data_aggregator.exceptions import ValidationError
from data_aggregator.processor import Outcome, ReusableProcessor
from data_aggregator.schemas import LISTING_EVENT_NAME, backfill_sequencer, event_time
from data_aggregator.testing import s3_notification, s3_record, sqs_event, sqs_message

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Iterator, Mapping

    from data_aggregator.clients import S3Client
    from data_aggregator.config import AppConfig
    from data_aggregator.idempotency import IdempotencyStore
    from data_aggregator.processor import BatchResult
    from data_aggregator.schemas import SQSRecord

__all__ = [
    "BackfillOptions",
    "BackfillTotals",
    "ListedObject",
    "build_config",
    "iter_chunks",
    "map_hint",
    "parse_s3_url",
    "run_backfill",
    "synthetic_message",
    "watch_listing",
]

#: The event name of the synthetic notifications.
EVENT_NAME = LISTING_EVENT_NAME
_QUEUE_ARN = "arn:aws:sqs:local:000000000000:data-aggregator-bundle"


class BackfillError(Exception):
    """A problem found before any object is claimed (one line for the user)."""


@dataclass(frozen=True)
class BackfillOptions:
    """What ``data-aggregator bundle`` was asked to do (its parser has the defaults)."""

    source_bucket: str
    source_prefix: str
    dest_bucket: str
    dest_prefix: str
    table: str
    codec: str
    max_bundle_mb: int
    batch_size: int
    chunk_seconds: int
    limit: int | None
    delete_sources: bool = False
    #: ``tar`` or ``concat`` (``--format``).
    bundle_format: str = "tar"
    #: Where concat sidecars go (``--sidecar-prefix``, as ``SIDECAR_PREFIX``).
    sidecar_prefix: str = ""


@dataclass(frozen=True)
class ListedObject:
    """One object of the source listing (the latest version in a versioned bucket)."""

    key: str
    size: int
    etag: str
    last_modified: datetime | None
    version_id: str | None = None


#: Refused objects named one by one; beyond this, only their number.
MAX_REFUSED_LISTED = 100

#: Past this many listed objects, or `MAP_HINT_BYTES`, the command prints once how to run
#: the backfill on a Step Functions Distributed Map instead (docs/cli.md): one machine
#: bundles a few hundred small objects a second, a Map thousands of Lambdas at once.
MAP_HINT_OBJECTS = 100_000
#: Bytes listed past which the Step Functions route is printed (100 GiB).
MAP_HINT_BYTES = 100 * 1024**3


@dataclass(frozen=True)
class RefusedObject:
    """An object the processor refused for good: the same input fails the same way."""

    key: str
    error_code: str


@dataclass
class BackfillTotals:
    """Running counts over every chunk."""

    listed: int = 0
    bundled: int = 0
    duplicates: int = 0
    bundles: list[str] = field(default_factory=list)
    #: ``"<outcome> <reason>"`` (e.g. ``"failed upload_failed"``) -> records that a later
    #: run may still bundle (transient failures, skips).
    problems: Counter[str] = field(default_factory=Counter)
    #: Objects refused by validation (an unsafe key, say), in listing order, the first
    #: ``MAX_REFUSED_LISTED`` of them: running the command again will not bundle them.
    refused: list[RefusedObject] = field(default_factory=list)
    #: Every refused object, listed or not.
    refused_count: int = 0

    def add(self, result: BatchResult, keys: Mapping[str, str]) -> None:
        """Count one chunk's records and bundles; ``keys`` maps message ids to S3 keys."""
        self.listed += len(result.records)
        for entry in result.records:
            if entry.outcome is Outcome.BUNDLED:
                self.bundled += 1
            elif entry.outcome is Outcome.DUPLICATE:
                self.duplicates += 1
            elif entry.failed and isinstance(entry.error, ValidationError):
                # Refused by validation (an unsafe key, say): the object itself is the
                # problem. Access denied, a lost lease or a store error are not: fixing
                # permissions, or simply running again, bundles those.
                self.refused_count += 1
                if len(self.refused) < MAX_REFUSED_LISTED:
                    key = keys.get(entry.message_id, entry.message_id)
                    self.refused.append(RefusedObject(key, str(entry.error.error_code)))
            else:
                reason = entry.reason.value if entry.reason is not None else "unknown"
                self.problems[f"{entry.outcome.value} {reason}"] += 1
        self.bundles.extend(bundle.key for bundle in result.bundles)

    @property
    def not_bundled(self) -> int:
        """Records neither bundled now nor already in a bundle."""
        return sum(self.problems.values()) + self.refused_count

    def line(self) -> str:
        """``listed N, bundled N, duplicates N, failed N, bundles N``."""
        return (
            f"listed {self.listed}, bundled {self.bundled}, duplicates {self.duplicates}, "
            f"failed {self.not_bundled}, bundles {len(self.bundles)}"
        )


def parse_s3_url(url: str, what: str) -> tuple[str, str]:
    """``s3://bucket[/prefix]`` -> ``(bucket, prefix)``; `BackfillError` if not."""
    if not url.startswith("s3://"):
        msg = f"{what} must be s3://bucket[/prefix], got {url!r}"
        raise BackfillError(msg)
    bucket, _, prefix = url.removeprefix("s3://").partition("/")
    if not bucket or "*" in bucket or any(c.isspace() for c in bucket):
        msg = f"{what} must be s3://bucket[/prefix], got {url!r}"
        raise BackfillError(msg)
    return bucket, prefix


def synthetic_message(bucket: str, obj: ListedObject, message_id: str) -> SQSRecord:
    """An SQS record carrying one classic S3 ``ObjectCreated`` notification about ``obj``.

    Built with the event builders of `data_aggregator.testing`: the key is form-encoded as
    S3 encodes it (the processor decodes it back to the exact key); the ETag makes the
    fetch conditional (``If-Match``), so an object rewritten since the listing is skipped
    as superseded rather than bundled under the old version's key.
    """
    record = s3_record(
        bucket,
        obj.key,
        size=obj.size,
        etag=obj.etag,
        version_id=obj.version_id,
        sequencer=(
            None if obj.version_id is not None else backfill_sequencer(obj.etag, obj.last_modified)
        ),
        event_name=EVENT_NAME,
        event_time=event_time(obj.last_modified or datetime.now(timezone.utc)),
        region="",
        configuration_id="data-aggregator-bundle",
    )
    return sqs_message(s3_notification([record]), message_id=message_id, queue_arn=_QUEUE_ARN)


def map_hint(objects: int, size: int, *, estimated: bool = False) -> str:
    """The one-time advice to run a large backfill on a Step Functions Distributed Map."""
    seen = (
        f"--limit {objects:,}"
        if estimated
        else f"{objects:,} objects, {size / 1024**3:,.1f} GiB listed so far"
    )
    return (
        f"this backfill is large ({seen}): one machine bundles it slowly; a Step Functions "
        "Distributed Map fans it out to many Lambda invocations with the same idempotency "
        "table (docs/backfill-step-functions.md, examples/backfill.yaml). This run goes "
        "on; stopped and run again later, it bundles nothing twice."
    )


def watch_listing(
    listed: Iterable[ListedObject],
    say: Callable[[str], None],
    *,
    objects: int,
    size: int,
) -> Iterator[ListedObject]:
    """``listed`` unchanged; ``say(map_hint(...))`` once, when more than ``objects``
    objects or ``size`` bytes have gone by."""
    total = 0
    told = False
    for count, obj in enumerate(listed, start=1):
        total += obj.size
        if not told and (count > objects or total > size):
            told = True
            say(map_hint(count, total))
        yield obj


def iter_chunks(items: Iterable[ListedObject], size: int) -> Iterator[list[ListedObject]]:
    """``items`` in lists of ``size`` (the last one shorter)."""
    chunk: list[ListedObject] = []
    for item in items:
        chunk.append(item)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def build_config(options: BackfillOptions) -> AppConfig:
    """The processor's configuration, from the command's options."""
    from data_aggregator.config import AppConfig, BundleFormat, Codec  # noqa: PLC0415

    return AppConfig(
        distribution_bucket_name=options.dest_bucket,
        idempotency_table_name=options.table,
        bundle_prefix=options.dest_prefix,
        bundle_format=BundleFormat(options.bundle_format),
        sidecar_prefix=options.sidecar_prefix,
        bundle_codec=Codec(options.codec),
        max_bundle_size_mb=options.max_bundle_mb,
        delete_sources=options.delete_sources,
        metrics_enabled=False,
    )


def list_source(s3: S3Client, bucket: str, prefix: str) -> Iterator[ListedObject]:
    """Every object under ``prefix``, lazily; latest versions when the bucket is versioned.

    A ``versionId`` of ``null`` (written before versioning was enabled) counts as none.
    """
    status = s3.client.get_bucket_versioning(Bucket=bucket).get("Status")
    if status not in ("Enabled", "Suspended"):
        for entry in s3.iter_objects(bucket, prefix):
            yield ListedObject(entry.key, entry.size, entry.etag, entry.last_modified)
        return
    paginator = s3.client.get_paginator("list_object_versions")
    for page in paginator.paginate(Bucket=bucket, Prefix=prefix):
        for item in page.get("Versions", []):
            if not item.get("IsLatest"):
                continue
            version = item.get("VersionId")
            yield ListedObject(
                key=item["Key"],
                size=int(item.get("Size", 0)),
                etag=str(item.get("ETag", "")).strip('"'),
                last_modified=item.get("LastModified"),
                version_id=None if version in (None, "null") else version,
            )


def run_backfill(
    options: BackfillOptions,
    *,
    s3: S3Client,
    store: IdempotencyStore,
    progress: Callable[[str], None],
    processor_class: type[ReusableProcessor] | None = None,
    hint: Callable[[str], None] | None = None,
) -> BackfillTotals:
    """List the source, feed it to a processor chunk by chunk; return the totals.

    ``hint`` receives, once, the advice to run the backfill on Step Functions when
    ``--limit`` asks for more than `MAP_HINT_OBJECTS` objects (before anything is listed)
    or the listing goes past `MAP_HINT_OBJECTS` objects or `MAP_HINT_BYTES` bytes.
    """
    from data_aggregator.context import LocalContext  # noqa: PLC0415

    cls = processor_class or ReusableProcessor
    processor = cls(build_config(options), s3_client=s3, store=store)
    totals = BackfillTotals()
    listed: Iterable[ListedObject] = list_source(s3, options.source_bucket, options.source_prefix)
    if hint is not None:
        if options.limit is not None and options.limit > MAP_HINT_OBJECTS:
            hint(map_hint(options.limit, 0, estimated=True))
        else:
            listed = watch_listing(listed, hint, objects=MAP_HINT_OBJECTS, size=MAP_HINT_BYTES)
    if options.limit is not None:
        listed = (obj for _, obj in zip(range(options.limit), listed, strict=False))
    run_id = uuid.uuid4().hex[:12]
    for number, chunk in enumerate(iter_chunks(listed, options.batch_size), start=1):
        request_id = f"backfill-{run_id}-{number}"
        keys = {f"{request_id}-{i}": obj.key for i, obj in enumerate(chunk)}
        event = sqs_event(
            synthetic_message(options.source_bucket, obj, message_id)
            for (message_id, obj) in zip(keys, chunk, strict=True)
        )
        context = LocalContext.from_timeout(options.chunk_seconds, aws_request_id=request_id)
        totals.add(processor.process(event, context), keys)
        progress(f"chunk {number}: {totals.line()}")
    return totals
