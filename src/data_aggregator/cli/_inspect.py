"""``data-aggregator inspect``: read a bundle once, as a stream, and report every problem.

Private; used by `data_aggregator.cli`. Unlike `data_aggregator.bundle.verify_bundle`
(which stops at the first failed check with one `BundleError`), `inspect_bundle`
keeps going and collects one line per problem, hashes the compressed bytes as they pass
(the bundle's own SHA-256, compared with ``content-sha256`` for S3 objects) and can extract
the members while it reads. Nothing is ever held whole in memory but ``manifest.json``.

Extraction is all or nothing: members are written into an empty (or new) directory with
``tarfile``'s ``data`` filter as they stream past; the manifest comes last, so if any check
fails once the whole bundle is read, everything written is removed again.
"""

from __future__ import annotations

import hashlib
import io
import json
import shutil
import tarfile
import zlib
from dataclasses import dataclass, field
from typing import IO, TYPE_CHECKING, Any

from data_aggregator.bundle._codecs import detect_codec, open_decompressed
from data_aggregator.bundle._manifest import FORMAT_VERSION, BundleManifest, ManifestMember
from data_aggregator.bundle._naming import MANIFEST_NAME, fold_name
from data_aggregator.exceptions import BundleError, DataAggregatorError

if TYPE_CHECKING:
    from pathlib import Path

__all__ = ["InspectResult", "inspect_bundle"]

_CHUNK = 1024 * 1024


class _HashingReader(io.RawIOBase):
    """Pass bytes through from ``raw`` while hashing and counting them."""

    def __init__(self, raw: IO[bytes]) -> None:
        super().__init__()
        self._raw = raw
        self.digest = hashlib.sha256()
        self.size = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        data = self._raw.read(len(view))
        count = len(data)
        view[:count] = data
        self.digest.update(data)
        self.size += count
        return count


@dataclass
class InspectResult:
    """What one pass over a bundle found."""

    codec: str
    size: int = 0
    sha256: str = ""
    manifest: BundleManifest | None = None
    problems: list[str] = field(default_factory=list)
    extracted: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """No problem found."""
        return not self.problems


@dataclass
class _Seen:
    name: str
    size: int
    sha256: str


def _hash_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _hash_stream(handle: IO[bytes]) -> str:
    digest = hashlib.sha256()
    while chunk := handle.read(_CHUNK):
        digest.update(chunk)
    return digest.hexdigest()


def _drain(stream: IO[bytes]) -> None:
    while stream.read(_CHUNK):
        pass


def _read_error(exc: BaseException) -> str:
    detail = str(exc).strip() or type(exc).__name__
    if isinstance(exc, EOFError) or "unexpected end" in detail.lower():
        return f"bundle is truncated or not a readable archive: {detail}"
    return f"bundle is not a readable archive: {detail}"


class _Reader:
    """One streaming pass: members hashed (and extracted) in order, manifest kept."""

    def __init__(self, result: InspectResult, extract_to: Path | None) -> None:
        self.result = result
        self.extract_to = extract_to
        self.seen: list[_Seen] = []
        self.manifest_bytes: bytes | None = None

    def member(self, archive: tarfile.TarFile, info: tarfile.TarInfo) -> None:
        problems = self.result.problems
        if self.manifest_bytes is not None:
            problems.append(f"member {info.name!r} follows manifest.json, which must be last")
        if not info.isreg():
            problems.append(f"member {info.name!r} is not a regular file")
            return
        if info.name == MANIFEST_NAME and self.manifest_bytes is None:
            handle = archive.extractfile(info)
            self.manifest_bytes = handle.read() if handle is not None else b""
            return
        if self.extract_to is None:
            handle = archive.extractfile(info)
            digest = _hash_stream(handle) if handle is not None else ""
        else:
            extracted = self._extract(archive, info)
            if extracted is None:
                return
            digest = extracted
        self.seen.append(_Seen(info.name, info.size, digest))

    def _extract(self, archive: tarfile.TarFile, info: tarfile.TarInfo) -> str | None:
        assert self.extract_to is not None  # noqa: S101 - narrowing only
        try:
            safe = tarfile.data_filter(info, str(self.extract_to))
            archive.extract(info, path=self.extract_to, filter="data")
        except tarfile.FilterError as exc:
            self.result.problems.append(f"member {info.name!r} refused by the data filter: {exc}")
            return None
        self.result.extracted.append(safe.name)
        return _hash_file(self.extract_to / safe.name)


def _parse_manifest(data: bytes, problems: list[str]) -> BundleManifest | None:
    try:
        document = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        problems.append("manifest.json is not valid UTF-8 JSON")
        return None
    if not isinstance(document, dict) or document.get("format_version") != FORMAT_VERSION:
        problems.append(f"manifest.json does not have format_version {FORMAT_VERSION}")
        return None
    entries = document.get("members")
    if not isinstance(entries, list):
        problems.append("manifest.json has no members list")
        return None
    members: list[ManifestMember] = []
    for index, entry in enumerate(entries):
        try:
            fields: dict[str, Any] = {name: entry[name] for name in ManifestMember.__slots__}
        except (KeyError, TypeError):
            problems.append(f"manifest entry {index} lacks a field or is not an object")
            continue
        member = ManifestMember(**fields)
        if not (
            isinstance(fields["name"], str)
            and isinstance(fields["size"], int)
            and isinstance(fields["sha256"], str)
        ):
            problems.append(f"manifest entry {index} has a field of the wrong type")
            continue
        members.append(member)
    return BundleManifest(
        format_version=FORMAT_VERSION,
        bundle_key=str(document.get("bundle_key")),
        created_at=str(document.get("created_at")),
        members=tuple(members),
    )


def _compare(manifest: BundleManifest, seen: list[_Seen], problems: list[str]) -> None:
    archive: dict[str, _Seen] = {}
    for item in seen:
        if item.name in archive:
            problems.append(f"member {item.name!r} appears twice in the archive")
        archive[item.name] = item
    listed = {member.name: member for member in manifest.members}
    for member in manifest.members:
        found = archive.get(member.name)
        if found is None:
            problems.append(f"member {member.name!r} is in the manifest but not in the archive")
            continue
        item = found
        if item.size != member.size:
            problems.append(
                f"member {member.name!r}: size {item.size} in the archive, "
                f"{member.size} in the manifest"
            )
        if item.sha256 != member.sha256:
            problems.append(
                f"member {member.name!r}: SHA-256 {item.sha256} does not match "
                f"the manifest's {member.sha256}"
            )
    problems.extend(
        f"member {item.name!r} is in the archive but not in the manifest"
        for item in seen
        if item.name not in listed
    )
    order = [item.name for item in seen if item.name in listed]
    if order != [member.name for member in manifest.members if member.name in archive]:
        problems.append("the archive's members are not in the manifest's order")
    if len({fold_name(name) for name in archive}) != len(archive):
        problems.append("member names are not unique once folded (NFC, case-insensitive)")


def _clear(directory: Path) -> None:
    for child in directory.iterdir():
        if child.is_dir() and not child.is_symlink():
            shutil.rmtree(child)
        else:
            child.unlink()


def inspect_bundle(
    raw: IO[bytes],
    *,
    expected_sha256: str | None = None,
    check_sha256: bool = False,
    extract_to: Path | None = None,
) -> InspectResult:
    """Read the bundle ``raw`` (compressed, from its start) once and check everything.

    Args:
        raw: The bundle's bytes; only ``read(n)`` is used.
        expected_sha256: The recorded whole-object SHA-256 (``content-sha256``).
        check_sha256: Compare the bundle's SHA-256 with ``expected_sha256`` (a missing
            value is then a problem).
        extract_to: Extract the members here (an empty or missing directory); removed
            again if any problem is found.

    Raises:
        BundleError: ``extract_to`` exists and is not an empty directory.
        DataAggregatorError: reading ``raw`` failed (S3 errors, for instance).
    """
    if extract_to is not None:
        if extract_to.exists() and (not extract_to.is_dir() or any(extract_to.iterdir())):
            msg = f"extract directory {str(extract_to)!r} exists and is not empty"
            raise BundleError(msg, "EXTRACT_DIR_NOT_EMPTY", {"directory": str(extract_to)})
        extract_to.mkdir(parents=True, exist_ok=True)
    hashing = _HashingReader(raw)
    buffered = io.BufferedReader(hashing, _CHUNK)
    codec = detect_codec(buffered.peek(4)[:4])
    result = InspectResult(codec=codec.value)
    reader = _Reader(result, extract_to)
    readable = True
    try:
        stream = open_decompressed(buffered, codec)
        with tarfile.open(fileobj=stream, mode="r|") as archive:
            for info in archive:
                reader.member(archive, info)
        _drain(stream)  # the rest of the stream: gzip's CRC and length, zstd's checksum
    except DataAggregatorError:
        raise
    except (tarfile.TarError, OSError, EOFError, zlib.error) as exc:
        result.problems.append(_read_error(exc))
        readable = False
    except Exception as exc:  # zstandard.ZstdError: the package may not be installed
        if type(exc).__module__.split(".")[0] != "zstandard":
            raise
        result.problems.append(_read_error(exc))
        readable = False
    _drain(buffered)
    result.size = hashing.size
    result.sha256 = hashing.digest.hexdigest()
    if reader.manifest_bytes is not None:
        result.manifest = _parse_manifest(reader.manifest_bytes, result.problems)
        if result.manifest is not None:
            _compare(result.manifest, reader.seen, result.problems)
    elif readable:
        result.problems.append("bundle has no manifest.json")
    if check_sha256:
        if expected_sha256 is None:
            result.problems.append("the object has no content-sha256 metadata or tag to check")
        elif expected_sha256.lower() != result.sha256:
            result.problems.append(
                f"bundle SHA-256 {result.sha256} does not match its content-sha256 "
                f"{expected_sha256}"
            )
    if extract_to is not None and result.problems:
        _clear(extract_to)
        result.extracted.clear()
    return result
