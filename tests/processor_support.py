"""Helpers for the processor tests: AWS-shaped event builders, contexts, bundle readers,
and an in-memory :class:`S3Client` for the unit tests.

Events are built with :mod:`data_aggregator.testing`, which encodes keys the way AWS
does: classic S3 notifications form-encode them, EventBridge events carry them as they are.
"""

from __future__ import annotations

import copy
import io
import json
import tarfile
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, cast

from data_aggregator.bundle import verify_bundle
from data_aggregator.bundle._codecs import open_decompressed
from data_aggregator.idempotency import object_idempotency_key
from data_aggregator.testing import (
    DEFAULT_SEQUENCER,
    eventbridge_object_created,
    s3_notification,
    s3_record,
    s3_test_event,
    sns_notification,
    sqs_event,
    sqs_message,
)

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping, Sequence

    from data_aggregator.bundle import BundleManifest
    from data_aggregator.schemas import S3EventRecord

__all__ = [
    "DEFAULT_SEQUENCER",
    "FIXED_TIME",
    "CountdownContext",
    "ReadBundle",
    "SourceObject",
    "assert_bundled_once",
    "eventbridge_body",
    "failed_ids",
    "notification",
    "occurrences",
    "read_bundle",
    "redeliver",
    "s3_body",
    "s3_record",
    "s3_test_event_body",
    "sns_body",
    "sqs_batch",
]

FIXED_TIME = datetime(2024, 5, 1, 12, 30, tzinfo=timezone.utc)


# ----------------------------------------------------------------------------- objects


@dataclass(frozen=True)
class SourceObject:
    """An object as stored in a source bucket, and what its event says about it."""

    bucket: str
    key: str
    data: bytes
    etag: str
    version_id: str | None = None
    sequencer: str = DEFAULT_SEQUENCER

    @property
    def identity(self) -> tuple[str, str, str | None]:
        """``(bucket, exact key, version id)``: what a manifest entry names."""
        return (self.bucket, self.key, self.version_id)

    @property
    def idempotency_key(self) -> str:
        """The key the processor uses for this object in the idempotency store."""
        return object_idempotency_key(
            self.bucket,
            self.key,
            version_id=self.version_id,
            sequencer=self.sequencer,
            etag=self.etag,
            size=len(self.data),
        )

    def record(self, event_name: str = "ObjectCreated:Put") -> S3EventRecord:
        """The raw S3 notification record announcing this object."""
        return s3_record(
            self.bucket,
            self.key,
            size=len(self.data),
            etag=self.etag,
            version_id=self.version_id,
            sequencer=self.sequencer,
            event_name=event_name,
        )


# ----------------------------------------------------------------------------- events


def notification(*records: Mapping[str, Any]) -> dict[str, Any]:
    """An S3 notification (``{"Records": [...]}``): a direct S3 event, or an SQS body.

    ``records`` may be hand-edited (invalid) records as well as :func:`s3_record`'s.
    """
    raw = cast("list[S3EventRecord]", [dict(record) for record in records])
    return cast("dict[str, Any]", s3_notification(raw))


def s3_body(*records: Mapping[str, Any]) -> str:
    """An SQS body holding an S3 notification (also SNS with raw message delivery)."""
    return json.dumps(notification(*records))


def sns_body(*records: Mapping[str, Any]) -> str:
    """An SQS body holding an SNS notification (no raw delivery) of an S3 notification."""
    return sns_notification(s3_body(*records))


def eventbridge_body(obj: SourceObject, *, key: str | None = None) -> str:
    """An SQS body holding an EventBridge ``Object Created`` event for ``obj``.

    ``key`` overrides the key as written in the event (EventBridge does not encode it).
    """
    event = eventbridge_object_created(
        obj.bucket,
        key if key is not None else obj.key,
        size=len(obj.data),
        etag=obj.etag,
        version_id=obj.version_id,
        sequencer=obj.sequencer,
    )
    return json.dumps(event)


def s3_test_event_body(bucket: str) -> str:
    """The ``s3:TestEvent`` S3 sends when a notification configuration is saved."""
    return json.dumps(s3_test_event(bucket))


def sqs_batch(bodies: Sequence[str], *, queue: str = "bundle-queue") -> dict[str, Any]:
    """An SQS-triggered Lambda event (messages ``message-0``, ``message-1`` ...).

    A queue name ending in ``.fifo`` makes a FIFO batch (one message group).
    """
    fifo = queue.endswith(".fifo")
    messages = [
        sqs_message(
            body,
            message_id=f"message-{index}",
            queue_arn=f"arn:aws:sqs:us-east-1:123456789012:{queue}",
            fifo=fifo,
            sequence_number=18627299827412380000 + index if fifo else None,
        )
        for index, body in enumerate(bodies)
    ]
    return cast("dict[str, Any]", sqs_event(messages))


def redeliver(event: Mapping[str, Any], message_ids: Iterable[str]) -> dict[str, Any]:
    """The event SQS sends when it redelivers ``message_ids`` (receive count + 1)."""
    wanted = set(message_ids)
    records = [copy.deepcopy(r) for r in event["Records"] if r["messageId"] in wanted]
    for record in records:
        attributes = record["attributes"]
        attributes["ApproximateReceiveCount"] = str(int(attributes["ApproximateReceiveCount"]) + 1)
    return {"Records": records}


def failed_ids(response: Mapping[str, Any]) -> list[str]:
    """The ``itemIdentifier`` of each entry of ``batchItemFailures``."""
    return [entry["itemIdentifier"] for entry in response["batchItemFailures"]]


# ----------------------------------------------------------------------------- contexts


class CountdownContext:
    """A context with ``plenty`` ms left for its first ``calls`` questions, then ``little``.

    Lets a test decide exactly how many objects the timeout guard lets through.
    """

    def __init__(
        self, calls: int, *, plenty: int = 600_000, little: int = 1_000, request_id: str = ""
    ) -> None:
        self.calls_left = calls
        self.plenty = plenty
        self.little = little
        self.aws_request_id = request_id or f"countdown-{id(self):x}"
        self.asked = 0

    def get_remaining_time_in_millis(self) -> int:
        """``plenty`` while calls are left, ``little`` afterwards."""
        self.asked += 1
        if self.calls_left > 0:
            self.calls_left -= 1
            return self.plenty
        return self.little


# ----------------------------------------------------------------------------- bundles


@dataclass(frozen=True)
class ReadBundle:
    """A downloaded bundle: its verified manifest and its members' bytes by name."""

    key: str
    manifest: BundleManifest
    members: dict[str, bytes]

    def by_identity(self) -> dict[tuple[str, str, str | None], bytes]:
        """Member bytes keyed by ``(bucket, key, version id)`` of their source object."""
        return {
            (m.bucket, m.key, m.version_id): self.members[m.name] for m in self.manifest.members
        }


def read_bundle(key: str, data: bytes, sidecar: bytes | None = None) -> ReadBundle:
    """Verify a bundle (:func:`verify_bundle`) and read its members; a concat bundle is
    cut by the offsets of its ``sidecar`` manifest."""
    manifest = verify_bundle(io.BytesIO(data), sidecar=sidecar, bundle_key=key)
    members: dict[str, bytes] = {}
    if sidecar is not None:
        stream = open_decompressed(io.BytesIO(data))
        text = stream.read()
        for member in manifest.members:
            assert member.offset is not None
            members[member.name] = text[member.offset : member.offset + member.size]
        assert manifest.bundle_key == key
        return ReadBundle(key, manifest, members)
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:*") as archive:
        for info in archive:
            handle = archive.extractfile(info)
            assert handle is not None
            if info.name != "manifest.json":
                members[info.name] = handle.read()
    assert manifest.bundle_key == key
    return ReadBundle(key, manifest, members)


def occurrences(bundles: Iterable[ReadBundle]) -> Counter[tuple[str, str, str | None]]:
    """How many times each source object appears across ``bundles``."""
    counts: Counter[tuple[str, str, str | None]] = Counter()
    for bundle in bundles:
        counts.update((m.bucket, m.key, m.version_id) for m in bundle.manifest.members)
    return counts


def assert_bundled_once(bundles: Sequence[ReadBundle], objects: Iterable[SourceObject]) -> None:
    """Each of ``objects`` is in exactly one bundle, with its exact bytes; nothing else is."""
    expected = {obj.identity: obj.data for obj in objects}
    counts = occurrences(bundles)
    assert dict(counts) == dict.fromkeys(expected, 1)
    found: dict[tuple[str, str, str | None], bytes] = {}
    for bundle in bundles:
        found.update(bundle.by_identity())
    assert found == expected
