"""What ``data-aggregator demo`` uploads, and the report of what it found (private).

`data_aggregator.cli._demo` runs the demo and fills a `DemoReport`;
`check_report` states the demo's promises over it; `data_aggregator.cli`
renders it as text or JSON.
"""

from __future__ import annotations

import unicodedata
import uuid
from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from data_aggregator.processor import Outcome

if TYPE_CHECKING:
    from data_aggregator.bundle import BundleManifest
    from data_aggregator.processor import BatchResult

__all__ = [
    "AWKWARD",
    "DESTINATION_BUCKET",
    "MAX_BATCH_SIZE",
    "MAX_OBJECTS",
    "MIN_OBJECTS",
    "REGION",
    "SOURCE_BUCKET",
    "TABLE_NAME",
    "TRAVERSAL_KEY",
    "DemoError",
    "DemoOptions",
    "DemoReport",
    "Invocation",
    "UploadedObject",
    "VerifiedBundle",
    "check_report",
]

SOURCE_BUCKET = "demo-source"
DESTINATION_BUCKET = "demo-bundles"
TABLE_NAME = "demo-idempotency"
REGION = "us-east-1"
TRAVERSAL_KEY = "../../etc/passwd"
VERSIONED_KEY = "versioned/settings.json"

#: Keys that trip up naive bundlers, each with what it shows. The versioned key is uploaded
#: twice (two versions); the traversal attempt must be refused, never written anywhere.
AWKWARD: tuple[tuple[str, str], ...] = (
    ("reports/annual report 2024.txt", "spaces arrive as '+'"),
    ("c++/a+b=c.txt", "a literal '+' arrives as '%2B'"),
    ("percent/100% done.txt", "a literal '%'"),
    ("percent/%41 stays %41.txt", "'%41' is part of the key: fetched as is"),
    ("unicode/日本語/レポート.csv", "non-ASCII"),
    ("unicode/📈 chart.json", "emoji"),
    (unicodedata.normalize("NFC", "unicode/café.txt"), "NFC twin"),
    (unicodedata.normalize("NFD", "unicode/café.txt"), "NFD twin: same name once normalised"),
    ("manifest.json", "clashes with the bundle's own manifest"),
    ("deep/" + "/".join(f"d{level:03d}" for level in range(120)) + "/leaf.txt", "deep path"),
    (TRAVERSAL_KEY, "path traversal attempt"),
    (VERSIONED_KEY, "version 1 of a key"),
    (VERSIONED_KEY, "version 2 of the same key"),
)
MIN_OBJECTS = len(AWKWARD)
MAX_OBJECTS = 20_000
#: Lambda's largest SQS batch (its default is 10).
MAX_BATCH_SIZE = 10_000


class DemoError(Exception):
    """The demo cannot run, or a bundle read back is wrong; ``str()`` is one line."""


@dataclass(frozen=True, slots=True)
class DemoOptions:
    """What ``data-aggregator demo`` was asked to do."""

    objects: int = 300
    codec: str = "gzip"
    batch_size: int = 100
    #: ``--keep DIR``: write the bundle with the most members there, to try ``inspect`` on.
    keep_dir: str | None = None


@dataclass(frozen=True, slots=True)
class UploadedObject:
    """One object version put into the source bucket, and the message announcing it."""

    key: str
    version_id: str | None
    etag: str
    size: int
    note: str | None
    message_id: str = field(default_factory=lambda: str(uuid.uuid4()))


@dataclass(frozen=True, slots=True)
class Invocation:
    """One call of the processor: a batch of SQS messages and what became of it."""

    label: str
    messages: int
    result: BatchResult
    redelivery: bool = False


@dataclass(frozen=True, slots=True)
class VerifiedBundle:
    """A bundle read back from the destination bucket and checked."""

    key: str
    size: int
    sha256: str
    manifest: BundleManifest


@dataclass(frozen=True, slots=True)
class DemoReport:
    """Everything the demo did and found; ``problems`` is empty when every check held."""

    options: DemoOptions
    uploaded: tuple[UploadedObject, ...]
    messages: int
    invocations: tuple[Invocation, ...]
    bundles: tuple[VerifiedBundle, ...]
    problems: tuple[str, ...]
    #: Where ``--keep`` wrote a bundle, when it was asked to.
    kept: str | None = None

    def totals(self) -> dict[str, int]:
        """Outcome counts over every invocation, and the messages reported to SQS."""
        results = [invocation.result for invocation in self.invocations]
        return {
            "bundled": sum(r.count(Outcome.BUNDLED) for r in results),
            "duplicates": sum(r.count(Outcome.DUPLICATE) for r in results),
            "skipped": sum(r.count(Outcome.SKIPPED) for r in results),
            "failed": sum(r.count(Outcome.FAILED) for r in results),
            "batch_item_failures": sum(len(r.failed_message_ids) for r in results),
        }

    def refused(self) -> list[tuple[UploadedObject, str]]:
        """Uploaded objects whose message failed, with the error code behind it."""
        by_message = {obj.message_id: obj for obj in self.uploaded}
        refused: list[tuple[UploadedObject, str]] = []
        for invocation in self.invocations:
            for entry in invocation.result.records:
                obj = by_message.get(entry.message_id)
                if obj is not None and entry.outcome is Outcome.FAILED:
                    code = entry.error.error_code if entry.error is not None else "UNKNOWN"
                    refused.append((obj, code))
        return refused

    def to_json(self) -> dict[str, Any]:
        """The machine-readable summary printed by ``--json``."""
        return {
            "ok": not self.problems,
            "problems": list(self.problems),
            "objects": len(self.uploaded),
            "codec": self.options.codec,
            "batch_size": self.options.batch_size,
            "messages": self.messages,
            "totals": self.totals(),
            "kept": self.kept,
            "invocations": [
                {
                    "label": inv.label,
                    "redelivery": inv.redelivery,
                    "messages": inv.messages,
                    "bundled": inv.result.count(Outcome.BUNDLED),
                    "duplicates": inv.result.count(Outcome.DUPLICATE),
                    "skipped": inv.result.count(Outcome.SKIPPED),
                    "failed": inv.result.count(Outcome.FAILED),
                    "batch_item_failures": list(inv.result.failed_message_ids),
                    "bundles": [bundle.key for bundle in inv.result.bundles],
                }
                for inv in self.invocations
            ],
            "bundles": [
                {
                    "key": bundle.key,
                    "members": len(bundle.manifest.members),
                    "size": bundle.size,
                    "sha256": bundle.sha256,
                    "manifest": [
                        {
                            "name": m.name,
                            "bucket": m.bucket,
                            "key": m.key,
                            "version_id": m.version_id,
                        }
                        for m in bundle.manifest.members
                    ],
                }
                for bundle in self.bundles
            ],
            "uploaded": [
                {"key": obj.key, "version_id": obj.version_id, "message_id": obj.message_id}
                for obj in self.uploaded
            ],
            "refused": [
                {"key": obj.key, "message_id": obj.message_id, "error_code": code}
                for obj, code in self.refused()
            ],
        }


def check_report(report: DemoReport) -> tuple[str, ...]:
    """The demo's promises, checked from the manifests read back (not the processor)."""
    problems: list[str] = []
    in_bundles = Counter(
        (member.bucket, member.key, member.version_id)
        for bundle in report.bundles
        for member in bundle.manifest.members
    )
    for obj in report.uploaded:
        seen = in_bundles[(SOURCE_BUCKET, obj.key, obj.version_id)]
        expected = 0 if obj.key == TRAVERSAL_KEY else 1
        if seen != expected:
            problems.append(f"{obj.key!r} is in {seen} bundles, expected {expected}")
    if sum(in_bundles.values()) != len(report.uploaded) - 1:
        problems.append("the bundles hold objects that were not uploaded")
    refused = {obj.key for obj, _ in report.refused()}
    if refused != {TRAVERSAL_KEY}:
        problems.append(f"refused keys {sorted(refused)}, expected only {TRAVERSAL_KEY!r}")
    traversal = next(obj for obj in report.uploaded if obj.key == TRAVERSAL_KEY)
    reported = {
        message_id
        for invocation in report.invocations
        for message_id in invocation.result.failed_message_ids
    }
    if traversal.message_id not in reported:
        problems.append("the traversal attempt's message is not in batchItemFailures")
    again = report.invocations[-1].result
    if again.count(Outcome.DUPLICATE) != len(again.records) or again.bundles:
        problems.append("the redelivered messages were not all dropped as duplicates")
    return tuple(problems)
