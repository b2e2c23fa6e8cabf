"""The bundle manifest (``manifest.json``, always the last member) and bundle verification.

Private; re-exported by `data_aggregator.bundle`. The format is documented in
``docs/bundle-format.md``.
"""

from __future__ import annotations

import hashlib
import json
import tarfile
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import IO, TYPE_CHECKING, Any

from data_aggregator.bundle._codecs import open_decompressed
from data_aggregator.bundle._naming import MANIFEST_NAME, fold_name
from data_aggregator.bundle._tar import BLOCK, RECORD
from data_aggregator.exceptions import BundleError

if TYPE_CHECKING:
    from collections.abc import Iterable

    from data_aggregator.config import Codec

__all__ = [
    "FORMAT_VERSION",
    "MANIFEST_NAME",
    "BundleManifest",
    "ManifestMember",
    "format_timestamp",
    "manifest_overhead",
    "render_manifest",
    "verify_bundle",
]

FORMAT_VERSION = 1
_HASH_CHUNK = 1024 * 1024


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

    def to_json(self) -> dict[str, Any]:
        """The entry as it appears in the manifest (field order fixed)."""
        return {
            "name": self.name,
            "bucket": self.bucket,
            "key": self.key,
            "version_id": self.version_id,
            "sequencer": self.sequencer,
            "etag": self.etag,
            "size": self.size,
            "sha256": self.sha256,
        }

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


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def format_timestamp(moment: datetime) -> str:
    """ISO-8601 UTC with milliseconds and a ``Z``: ``2024-05-01T12:00:00.000Z``."""
    utc = moment.astimezone(timezone.utc) if moment.tzinfo else moment
    return utc.replace(tzinfo=None).isoformat(timespec="milliseconds") + "Z"


def render_manifest(
    bundle_key: str, created_at: datetime, members: Iterable[ManifestMember]
) -> bytes:
    """The manifest document: compact JSON, one member per line, UTF-8, final newline."""
    head = (
        f'{{"format_version":{FORMAT_VERSION},"bundle_key":{_dumps(bundle_key)},'
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


def _fail(message: str, **context: Any) -> BundleError:
    return BundleError(message, "BUNDLE_INVALID", context)


def _member_from_json(entry: Any) -> ManifestMember:
    if not isinstance(entry, dict):
        raise _fail("manifest member is not an object")
    try:
        member = ManifestMember(
            name=entry["name"],
            bucket=entry["bucket"],
            key=entry["key"],
            version_id=entry["version_id"],
            sequencer=entry["sequencer"],
            etag=entry["etag"],
            size=entry["size"],
            sha256=entry["sha256"],
        )
    except KeyError as exc:
        raise _fail("manifest member lacks a field", field=str(exc)) from None
    fields: tuple[object, ...] = (member.size, member.name, member.sha256)
    if not (
        isinstance(fields[0], int) and isinstance(fields[1], str) and isinstance(fields[2], str)
    ):
        raise _fail("manifest member has a field of the wrong type")
    return member


def verify_bundle(fileobj: IO[bytes], codec: Codec | str | None = None) -> BundleManifest:
    """Read a whole bundle and check it against its manifest.

    Checks: the archive reads to its end; every member is a regular file; the last member
    is ``manifest.json`` with ``format_version`` 1; the manifest lists exactly the other
    members, in archive order, with their sizes and SHA-256; member names are unique once
    folded (NFC, case-insensitive) and none but the last is ``manifest.json``.

    Args:
        fileobj: The bundle as uploaded (compressed), readable from its start.
        codec: ``gzip``, ``zstd``, ``none``, or ``None`` to detect it from magic bytes.

    Returns:
        The parsed manifest.

    Raises:
        BundleError: with ``error_code`` ``BUNDLE_INVALID`` when any check fails.
    """
    stream = open_decompressed(fileobj, codec)
    seen: list[tuple[str, int, str]] = []
    manifest_bytes: bytes | None = None
    try:
        with tarfile.open(fileobj=stream, mode="r|") as archive:
            for info in archive:
                if manifest_bytes is not None:
                    raise _fail("manifest.json is not the last member")
                if not info.isreg():
                    raise _fail("bundle has a member that is not a regular file")
                handle = archive.extractfile(info)
                if handle is None:  # pragma: no cover - regular files always have data
                    raise _fail("member has no data")
                if info.name == MANIFEST_NAME:
                    manifest_bytes = handle.read()
                    continue
                digest = hashlib.sha256()
                while chunk := handle.read(_HASH_CHUNK):
                    digest.update(chunk)
                seen.append((info.name, info.size, digest.hexdigest()))
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise _fail("bundle is not a readable archive", cause=type(exc).__name__) from exc
    if manifest_bytes is None:
        raise _fail("bundle has no manifest.json")
    try:
        document = json.loads(manifest_bytes.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise _fail("manifest.json is not valid JSON") from exc
    if not isinstance(document, dict) or document.get("format_version") != FORMAT_VERSION:
        raise _fail("unsupported manifest format_version")
    members = tuple(_member_from_json(entry) for entry in document.get("members", ()))
    listed = [(member.name, member.size, member.sha256) for member in members]
    if listed != seen:
        raise _fail("manifest does not match the archive members", members=len(seen))
    if len({fold_name(name) for name, _, _ in seen}) != len(seen):
        raise _fail("member names are not unique")
    return BundleManifest(
        format_version=FORMAT_VERSION,
        bundle_key=str(document.get("bundle_key")),
        created_at=str(document.get("created_at")),
        members=members,
    )
