"""The bundle manifest (``manifest.json``, always the last member): write it and parse it.

Private; re-exported by `data_aggregator.bundle`. The format is documented in
``docs/bundle-format.md``; reading a whole bundle back is `data_aggregator.bundle._reader`.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from data_aggregator.bundle._naming import MANIFEST_NAME
from data_aggregator.bundle._tar import BLOCK, RECORD
from data_aggregator.config import BundleFormat
from data_aggregator.exceptions import BundleError, ErrorCode

if TYPE_CHECKING:
    from collections.abc import Iterable

__all__ = [
    "FORMAT_VERSION",
    "MANIFEST_NAME",
    "BundleManifest",
    "ManifestMember",
    "Report",
    "bundle_problem",
    "format_timestamp",
    "manifest_overhead",
    "parse_manifest",
    "render_manifest",
]

#: Receives each problem a reader finds; raising it stops the read (`verify_bundle`).
Report = Callable[[BundleError], None]

FORMAT_VERSION = 1
_OPTIONAL_TEXT = ("version_id", "sequencer", "etag")
_REQUIRED = ("name", "bucket", "key", "version_id", "sequencer", "etag", "size", "sha256")
_CONCAT_FIELDS = ("offset", "newline_added")


@dataclass(frozen=True, slots=True)
class ManifestMember:
    """One entry of ``manifest["members"]``: a member and the object it came from."""

    name: str
    bucket: str
    key: str
    version_id: str | None
    sequencer: str | None
    etag: str | None
    size: int
    sha256: str
    #: Concat bundles only: where the member starts in the uncompressed stream.
    offset: int | None = None
    #: Concat bundles only: whether a newline follows the member's ``size`` bytes (added
    #: because they did not end in one).
    newline_added: bool | None = None

    def to_json(self) -> dict[str, Any]:
        """The entry as it appears in the manifest (field order fixed)."""
        entry: dict[str, Any] = {
            "name": self.name,
            "bucket": self.bucket,
            "key": self.key,
            "version_id": self.version_id,
            "sequencer": self.sequencer,
            "etag": self.etag,
            "size": self.size,
            "sha256": self.sha256,
        }
        if self.offset is not None:
            entry["offset"] = self.offset
            entry["newline_added"] = bool(self.newline_added)
        return entry

    def encoded(self) -> bytes:
        """The entry's compact JSON, UTF-8."""
        return _dumps(self.to_json()).encode("utf-8")


@dataclass(frozen=True, slots=True)
class BundleManifest:
    """A parsed, verified manifest."""

    format_version: int
    bundle_key: str
    created_at: str
    members: tuple[ManifestMember, ...]
    #: ``tar`` (``manifest.json`` inside the bundle) or ``concat`` (a sidecar object).
    bundle_format: BundleFormat = BundleFormat.TAR


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def format_timestamp(moment: datetime) -> str:
    """ISO-8601 UTC with milliseconds and a ``Z``: ``2024-05-01T12:00:00.000Z``."""
    utc = moment.astimezone(timezone.utc) if moment.tzinfo else moment
    return utc.replace(tzinfo=None).isoformat(timespec="milliseconds") + "Z"


def render_manifest(
    bundle_key: str,
    created_at: datetime,
    members: Iterable[ManifestMember],
    bundle_format: BundleFormat = BundleFormat.TAR,
) -> bytes:
    """The manifest document: compact JSON, one member per line, UTF-8, final newline.

    A concat bundle's sidecar also says ``"format":"concat"`` (a tar manifest has no
    ``format`` field: it is what it always was).
    """
    layout = "" if bundle_format is BundleFormat.TAR else f'"format":{_dumps(bundle_format.value)},'
    head = (
        f'{{"format_version":{FORMAT_VERSION},{layout}"bundle_key":{_dumps(bundle_key)},'
        f'"created_at":{_dumps(format_timestamp(created_at))},"members":['
    )
    body = ",\n".join(_dumps(member.to_json()) for member in members)
    text = f"{head}\n{body}\n]}}\n" if body else f"{head}]}}\n"
    return text.encode("utf-8")


def manifest_overhead(bundle_key: str) -> int:
    """Upper bound of the tar bytes a bundle adds besides members and manifest entries.

    The manifest's header, its fixed JSON, its padding, the end-of-archive blocks and the
    record padding.
    """
    fixed = len(render_manifest(bundle_key, datetime(2000, 1, 1, tzinfo=timezone.utc), ()))
    return 3 * BLOCK + fixed + BLOCK + 2 * BLOCK + RECORD


def bundle_problem(message: str, **context: Any) -> BundleError:
    """One failed check of a bundle, as the error `verify_bundle` raises for it."""
    return BundleError(message, ErrorCode.BUNDLE_INVALID, context)


def _is_count(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _member_from_json(
    index: int, entry: Any, report: Report, bundle_format: BundleFormat
) -> ManifestMember | None:
    names = _REQUIRED if bundle_format is BundleFormat.TAR else _REQUIRED + _CONCAT_FIELDS
    try:
        fields: dict[str, Any] = {name: entry[name] for name in names}
    except (KeyError, TypeError):
        report(bundle_problem(f"manifest entry {index} lacks a field or is not an object"))
        return None
    if not (
        all(isinstance(fields[name], str) for name in ("name", "bucket", "key", "sha256"))
        and all(isinstance(fields[name], str | None) for name in _OPTIONAL_TEXT)
        and _is_count(fields["size"])
        and (bundle_format is BundleFormat.TAR or _is_count(fields["offset"]))
        and (bundle_format is BundleFormat.TAR or isinstance(fields["newline_added"], bool))
    ):
        report(bundle_problem(f"manifest entry {index} has a field of the wrong type"))
        return None
    return ManifestMember(**fields)


def parse_manifest(
    data: bytes, report: Report, bundle_format: BundleFormat = BundleFormat.TAR
) -> BundleManifest | None:
    """Parse a manifest (``manifest.json``, or a concat bundle's sidecar when
    ``bundle_format`` is ``concat``), reporting each problem to ``report``.

    Returns ``None`` when the document as a whole is unusable (not UTF-8 JSON, another
    ``format_version`` or ``format``, no ``members`` list); a bad entry is reported and
    left out.
    """
    try:
        document = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        problem = bundle_problem("manifest.json is not valid UTF-8 JSON")
        problem.__cause__ = exc
        report(problem)
        return None
    if not isinstance(document, dict) or document.get("format_version") != FORMAT_VERSION:
        report(bundle_problem(f"manifest.json does not have format_version {FORMAT_VERSION}"))
        return None
    if document.get("format", BundleFormat.TAR.value) != bundle_format.value:
        report(bundle_problem(f"the manifest is not that of a {bundle_format.value} bundle"))
        return None
    entries = document.get("members")
    if not isinstance(entries, list):
        report(bundle_problem("manifest.json has no members list"))
        return None
    parsed = (
        _member_from_json(index, entry, report, bundle_format)
        for index, entry in enumerate(entries)
    )
    return BundleManifest(
        format_version=FORMAT_VERSION,
        bundle_key=str(document.get("bundle_key")),
        created_at=str(document.get("created_at")),
        members=tuple(member for member in parsed if member is not None),
        bundle_format=bundle_format,
    )
