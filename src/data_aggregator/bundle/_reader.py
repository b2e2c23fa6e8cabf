"""The one tar bundle reader: stream a bundle once, walk its tar, hash, check the manifest.

Private; [`verify_bundle`][data_aggregator.bundle.verify_bundle] (``_verify.py``) is
re-exported by `data_aggregator.bundle`. Every reader of tar bundles goes through
`read_bundle` (concat bundles through ``_concat_reader.py``, which shares the helpers
here):

* `verify_bundle` raises the first problem (a `BundleError`, ``BUNDLE_INVALID``);
* ``data-aggregator inspect`` collects every problem, hashes the compressed bytes and
  extracts members as they stream past;
* the crash-recovery locator (`data_aggregator.idempotency.S3ManifestBundleLocator`) calls
  `verify_bundle` on an S3 body, and trusts a manifest only once it has been checked.

One pass, as a stream: the bytes are only ever ``read(n)`` (an S3 body will do, nothing is
seeked), the codec comes from the caller or the magic bytes, and nothing is held whole in
memory but ``manifest.json``. The compressed stream is read to its end, so gzip's CRC and
length and zstd's checksum are checked too.
"""

from __future__ import annotations

import hashlib
import io
import tarfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum
from typing import IO, TYPE_CHECKING, Any

from data_aggregator._sizes import MIB
from data_aggregator.bundle._codecs import detect_codec, open_decompressed
from data_aggregator.bundle._manifest import (
    BundleManifest,
    ManifestMember,
    Report,
    bundle_problem,
    parse_manifest,
)
from data_aggregator.bundle._naming import MANIFEST_NAME, fold_name
from data_aggregator.config import Codec
from data_aggregator.exceptions import DataAggregatorError

if TYPE_CHECKING:
    from data_aggregator.bundle._types import ReadableStream
    from data_aggregator.exceptions import BundleError

__all__ = [
    "BundleReading",
    "Counting",
    "MemberReader",
    "SeenMember",
    "hash_stream",
    "is_zstd_error",
    "member_problem",
    "read_bundle",
    "read_error",
    "resolve_codec_name",
]

CHUNK = MIB

#: Consumes one regular member's data and returns its hex SHA-256, or ``None`` to leave
#: the member out (having reported why). The default hashes the data and drops it.
MemberReader = Callable[[tarfile.TarFile, tarfile.TarInfo], "str | None"]


@dataclass(frozen=True, slots=True)
class SeenMember:
    """A regular member as found in the archive (the manifest excluded)."""

    name: str
    size: int
    sha256: str


@dataclass
class BundleReading:
    """What one pass over a bundle found (its problems went to the ``report`` callable).

    Attributes:
        codec: The codec given or detected.
        size: Compressed bytes read.
        sha256: Hex SHA-256 of the compressed bytes (``digest=True``), else ``None``.
        manifest: The parsed manifest, if there was one and it parsed.
        members: The members found, in archive order.
    """

    codec: Codec
    size: int = 0
    sha256: str | None = None
    manifest: BundleManifest | None = None
    members: list[SeenMember] = field(default_factory=list)


class Counting(io.RawIOBase):
    """Pass bytes through from ``raw`` while counting (and optionally hashing) them."""

    def __init__(self, raw: ReadableStream, *, digest: bool) -> None:
        super().__init__()
        self._raw = raw
        self.digest = hashlib.sha256() if digest else None
        self.size = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        data = self._raw.read(len(view))
        count = len(data)
        view[:count] = data
        if self.digest is not None:
            self.digest.update(data)
        self.size += count
        return count


def resolve_codec_name(codec: Codec | str) -> str:
    """The value of a codec given as a `Codec` or a name in any case."""
    return codec.value if isinstance(codec, Enum) else str(codec).lower()


def hash_stream(handle: IO[bytes]) -> str:
    """Read ``handle`` to its end; return the hex SHA-256 of what it held."""
    digest = hashlib.sha256()
    while chunk := handle.read(CHUNK):
        digest.update(chunk)
    return digest.hexdigest()


def _default_member_reader(archive: tarfile.TarFile, info: tarfile.TarInfo) -> str:
    handle = archive.extractfile(info)
    return hash_stream(handle) if handle is not None else hashlib.sha256().hexdigest()


def _drain(stream: IO[bytes]) -> None:
    while stream.read(CHUNK):
        pass


def read_error(exc: BaseException) -> BundleError:
    detail = str(exc).strip() or type(exc).__name__
    if isinstance(exc, EOFError) or "unexpected end" in detail.lower():
        message = f"bundle is truncated or not a readable archive: {detail}"
    else:
        message = f"bundle is not a readable archive: {detail}"
    problem = bundle_problem(message, cause=type(exc).__name__)
    problem.__cause__ = exc
    return problem


def member_problem(name: str, text: str) -> BundleError:
    """A problem with member ``name``: ``text`` follows its quoted name."""
    return bundle_problem(f"member {name!r}{text}", member=name)


class _Walk:
    """The tar walk: members hashed in order, ``manifest.json`` kept, order checked."""

    def __init__(self, report: Report, read_member: MemberReader) -> None:
        self.report = report
        self.read_member = read_member
        self.seen: list[SeenMember] = []
        self.manifest_bytes: bytes | None = None

    def member(self, archive: tarfile.TarFile, info: tarfile.TarInfo) -> None:
        if self.manifest_bytes is not None:
            self.report(member_problem(info.name, " follows manifest.json, which must be last"))
        if not info.isreg():
            self.report(member_problem(info.name, " is not a regular file"))
            return
        if info.name == MANIFEST_NAME and self.manifest_bytes is None:
            handle = archive.extractfile(info)
            self.manifest_bytes = handle.read() if handle is not None else b""
            return
        digest = self.read_member(archive, info)
        if digest is not None:
            self.seen.append(SeenMember(info.name, info.size, digest))


def _compare(manifest: BundleManifest, seen: list[SeenMember], report: Report) -> None:
    """Report every difference between the manifest and the members found."""
    archive: dict[str, SeenMember] = {}
    for item in seen:
        if item.name in archive:
            report(member_problem(item.name, " appears twice in the archive"))
        archive[item.name] = item
    listed: dict[str, ManifestMember] = {}
    for member in manifest.members:
        name = member.name
        if name in listed:
            report(member_problem(name, " appears twice in the manifest"))
        listed[name] = member
        found = archive.get(name)
        if found is None:
            report(member_problem(name, " is in the manifest but not in the archive"))
            continue
        if found.size != member.size:
            report(
                member_problem(
                    name, f": size {found.size} in the archive, {member.size} in the manifest"
                )
            )
        if found.sha256 != member.sha256:
            report(
                member_problem(
                    name,
                    f": SHA-256 {found.sha256} does not match the manifest's {member.sha256}",
                )
            )
    for item in seen:
        if item.name not in listed:
            report(member_problem(item.name, " is in the archive but not in the manifest"))
    order = [item.name for item in seen if item.name in listed]
    if order != [member.name for member in manifest.members if member.name in archive]:
        report(bundle_problem("the archive's members are not in the manifest's order"))
    if len({fold_name(name) for name in archive}) != len(archive):
        report(bundle_problem("member names are not unique once folded (NFC, case-insensitive)"))


def is_zstd_error(exc: Exception) -> bool:
    # zstandard.ZstdError, without importing the optional package.
    return type(exc).__module__.split(".")[0] == "zstandard"


def read_bundle(
    raw: ReadableStream,
    *,
    report: Report,
    codec: Codec | str | None = None,
    read_member: MemberReader | None = None,
    digest: bool = False,
) -> BundleReading:
    """Read the bundle ``raw`` (compressed, from its start) once, checking everything.

    Checks: the compressed stream and the archive read to their ends; every member is a
    regular file; the last member is ``manifest.json`` with ``format_version`` 1; the
    manifest lists exactly the other members, in archive order, with their sizes and
    SHA-256; member names are unique once folded (NFC, case-insensitive).

    Args:
        raw: The bundle's bytes; only ``read(n)`` is used.
        report: Called with each problem, a `BundleError` (``BUNDLE_INVALID``); if it
            raises, reading stops there.
        codec: ``gzip``, ``zstd``, ``none``, or ``None`` to detect it from magic bytes.
        read_member: Consumes each regular member but the manifest (default: hash it).
        digest: Also hash the compressed bytes (``BundleReading.sha256``).

    Raises:
        DataAggregatorError: reading ``raw`` failed (S3 errors, for instance), or the
            bundle is zstd and the ``zstandard`` package is not installed.
    """
    counting = Counting(raw, digest=digest)
    buffered = io.BufferedReader(counting, CHUNK)
    if codec is None:
        resolved = detect_codec(buffered.peek(4)[:4])
    else:
        resolved = Codec(resolve_codec_name(codec))
    walk = _Walk(report, read_member or _default_member_reader)
    readable = True
    try:
        stream = open_decompressed(buffered, resolved)
        with tarfile.open(fileobj=stream, mode="r|") as archive:
            for info in archive:
                walk.member(archive, info)
        _drain(stream)  # the rest of the stream: gzip's CRC and length, zstd's checksum
    except DataAggregatorError:
        raise
    except (tarfile.TarError, OSError, EOFError, zlib.error) as exc:
        readable = False
        report(read_error(exc))
    except Exception as exc:
        if not is_zstd_error(exc):
            raise
        readable = False
        report(read_error(exc))
    _drain(buffered)
    reading = BundleReading(codec=resolved, members=walk.seen)
    if walk.manifest_bytes is not None:
        reading.manifest = parse_manifest(walk.manifest_bytes, report)
        if reading.manifest is not None:
            _compare(reading.manifest, walk.seen, report)
    elif readable:
        report(bundle_problem("bundle has no manifest.json"))
    reading.size = counting.size
    reading.sha256 = None if counting.digest is None else counting.digest.hexdigest()
    return reading
