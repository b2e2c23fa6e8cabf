"""Read a concat bundle back against its sidecar manifest: cut, hash, compare.

Private; used by `data_aggregator.bundle._verify.verify_bundle` (given a sidecar), by
``data-aggregator inspect`` and, through `read_bundle_manifest`, by the crash-recovery
locator. One pass, as a stream, like the tar reader: the bundle is only ever ``read(n)``,
each member is cut at the sidecar's ``offset`` and ``size`` and hashed as it streams past,
and the stream must end right after the last member (and its newline).
"""

from __future__ import annotations

import hashlib
import io
import zlib
from collections.abc import Callable
from typing import IO, TYPE_CHECKING

from data_aggregator.bundle._codecs import detect_codec, open_decompressed
from data_aggregator.bundle._manifest import bundle_problem, parse_manifest
from data_aggregator.bundle._naming import fold_name
from data_aggregator.bundle._reader import (
    CHUNK,
    BundleReading,
    Counting,
    SeenMember,
    is_zstd_error,
    member_problem,
    read_error,
    resolve_codec_name,
)
from data_aggregator.config import BundleFormat, Codec
from data_aggregator.exceptions import DataAggregatorError

if TYPE_CHECKING:
    from data_aggregator.bundle._manifest import BundleManifest, ManifestMember, Report
    from data_aggregator.bundle._types import ReadableStream

__all__ = ["MemberWriter", "read_concat_bundle"]

#: Where to copy one member's bytes as they stream past (``inspect --extract``): a binary
#: file to write to, or ``None`` to leave the member out (having reported why).
MemberWriter = Callable[["ManifestMember"], "IO[bytes] | None"]


class _Cutter:
    """Walks the decompressed stream member by member."""

    def __init__(self, stream: IO[bytes], report: Report) -> None:
        self.stream = stream
        self.report = report
        self.position = 0

    def skip_to(self, member: ManifestMember, offset: int) -> bool:
        """Move to ``offset``; ``False`` (reported) when the stream is already past it."""
        if offset < self.position:
            self.report(
                member_problem(
                    member.name,
                    f" starts at offset {offset} in the manifest, but the stream is at "
                    f"{self.position}: members overlap or are out of order",
                )
            )
            return False
        if offset > self.position:
            self.report(
                member_problem(
                    member.name,
                    f" starts at offset {offset}, after {offset - self.position} bytes "
                    "no member covers",
                )
            )
            return self.read(offset - self.position) == offset - self.position
        return True

    def read(
        self,
        size: int,
        digest: Callable[[bytes], object] | None = None,
        out: IO[bytes] | None = None,
    ) -> int:
        """Read ``size`` bytes, passing them to ``digest`` and ``out``; return how many
        were read (fewer at the end of the stream)."""
        left = size
        last = b""
        while left:
            chunk = self.stream.read(min(CHUNK, left))
            if not chunk:
                break
            left -= len(chunk)
            last = chunk[-1:]
            if digest is not None:
                digest(chunk)
            if out is not None:
                out.write(chunk)
        self.last_byte = last
        self.position += size - left
        return size - left

    last_byte = b""


def _cut_members(
    stream: IO[bytes],
    manifest: BundleManifest,
    report: Report,
    write_member: MemberWriter | None,
) -> list[SeenMember]:
    cutter = _Cutter(stream, report)
    seen: list[SeenMember] = []
    for member in manifest.members:
        assert member.offset is not None  # noqa: S101 - parse_manifest requires it
        if not cutter.skip_to(member, member.offset):
            return seen
        digest = hashlib.sha256()
        out = write_member(member) if write_member is not None else None
        try:
            got = cutter.read(member.size, digest.update, out)
        finally:
            if out is not None:
                out.close()
        if got < member.size:
            report(
                member_problem(
                    member.name, f": the stream ends after {got} of its {member.size} bytes"
                )
            )
            return seen
        found = SeenMember(member.name, member.size, digest.hexdigest())
        if write_member is None or out is not None:
            seen.append(found)
        if found.sha256 != member.sha256:
            report(
                member_problem(
                    member.name,
                    f": SHA-256 {found.sha256} does not match the manifest's {member.sha256}",
                )
            )
        if member.newline_added:
            if cutter.read(1) != 1 or cutter.last_byte != b"\n":
                report(member_problem(member.name, " is not followed by the newline added"))
        elif member.size and cutter.last_byte != b"\n":
            report(member_problem(member.name, " does not end in a newline and none was added"))
    if stream.read(1):
        report(bundle_problem("the stream goes on after the manifest's last member"))
    return seen


def _check_names(manifest: BundleManifest, report: Report) -> None:
    names = [member.name for member in manifest.members]
    seen: set[str] = set()
    for name in names:
        if name in seen:
            report(member_problem(name, " appears twice in the manifest"))
        seen.add(name)
    if len({fold_name(name) for name in names}) != len(names):
        report(bundle_problem("member names are not unique once folded (NFC, case-insensitive)"))


def read_concat_bundle(
    raw: ReadableStream,
    sidecar: bytes,
    *,
    report: Report,
    codec: Codec | str | None = None,
    bundle_key: str | None = None,
    write_member: MemberWriter | None = None,
    digest: bool = False,
) -> BundleReading:
    """Read the concat bundle ``raw`` (compressed, from its start) once against its sidecar.

    Checks: the sidecar is a concat manifest (``format_version`` 1, ``"format":"concat"``,
    for ``bundle_key`` when given); the members are contiguous from offset 0, each with
    its size and SHA-256, followed by a newline where ``newline_added`` says so and ending
    in one otherwise; nothing follows the last member; names are unique once folded; the
    compressed stream reads to its end (gzip's CRC and length, zstd's checksum).

    Args:
        raw: The bundle's bytes; only ``read(n)`` is used.
        sidecar: The bytes of ``<bundle key>.manifest.json``.
        report: Called with each problem (a `BundleError`, ``BUNDLE_INVALID``); if it
            raises, reading stops there.
        codec: ``gzip``, ``zstd``, ``none``, or ``None`` to detect it from magic bytes.
        bundle_key: The bundle's key, checked against the sidecar's ``bundle_key``.
        write_member: Where each member's bytes go as they stream past (extraction).
        digest: Also hash the compressed bytes (``BundleReading.sha256``).

    Raises:
        DataAggregatorError: reading ``raw`` failed (S3 errors, for instance), or the
            bundle is zstd and the ``zstandard`` package is not installed.
    """
    counting = Counting(raw, digest=digest)
    buffered = io.BufferedReader(counting, CHUNK)
    resolved = (
        detect_codec(buffered.peek(4)[:4]) if codec is None else Codec(resolve_codec_name(codec))
    )
    reading = BundleReading(codec=resolved)
    manifest = parse_manifest(sidecar, report, BundleFormat.CONCAT)
    reading.manifest = manifest
    if manifest is not None:
        if bundle_key is not None and manifest.bundle_key != bundle_key:
            report(
                bundle_problem(
                    f"the sidecar names bundle {manifest.bundle_key!r}, not {bundle_key!r}"
                )
            )
        _check_names(manifest, report)
        try:
            stream = open_decompressed(buffered, resolved)
            reading.members = _cut_members(stream, manifest, report, write_member)
            while stream.read(CHUNK):  # the rest: gzip's CRC and length, zstd's checksum
                pass
        except DataAggregatorError:
            raise
        except (OSError, EOFError, zlib.error) as exc:
            report(read_error(exc))
        except Exception as exc:
            if not is_zstd_error(exc):
                raise
            report(read_error(exc))
    while buffered.read(CHUNK):
        pass
    reading.size = counting.size
    reading.sha256 = None if counting.digest is None else counting.digest.hexdigest()
    return reading
