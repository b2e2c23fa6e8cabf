"""``data-aggregator inspect``: read a bundle once, as a stream, and report every problem.

Private; used by `data_aggregator.cli`. The reading and checking is the bundle reader's
(`data_aggregator.bundle._reader`, shared with `data_aggregator.bundle.verify_bundle` and
the crash-recovery locator). Unlike `verify_bundle` (which stops at the first failed check
with one `BundleError`), `inspect_bundle` keeps going and collects one line per problem,
hashes the compressed bytes as they pass (the bundle's own SHA-256, compared with
``content-sha256`` for S3 objects) and can extract the members while it reads. Nothing is
ever held whole in memory but ``manifest.json``.

Extraction is all or nothing: members are written into an empty (or new) directory with
``tarfile``'s ``data`` filter as they stream past; the manifest comes last, so if any check
fails once the whole bundle is read, everything written is removed again.

A concat bundle (``BUNDLE_FORMAT=concat``) is read against its sidecar manifest, given as
``sidecar``: each member is cut at its offset and size, hashed and (when extracting)
written under its name, which must be a safe relative name (a fixed point of
`sanitize_s3_key`) that stays inside the directory.
"""

from __future__ import annotations

import shutil
import tarfile
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from data_aggregator.bundle._concat_reader import read_concat_bundle
from data_aggregator.bundle._reader import hash_stream, read_bundle
from data_aggregator.config import BundleFormat
from data_aggregator.exceptions import BundleError, ErrorCode, ValidationError
from data_aggregator.security import sanitize_s3_key

if TYPE_CHECKING:
    from pathlib import Path
    from typing import IO

    from data_aggregator.bundle._manifest import BundleManifest, ManifestMember
    from data_aggregator.bundle._types import ReadableStream

__all__ = ["InspectResult", "inspect_bundle"]


@dataclass
class InspectResult:
    """What one pass over a bundle found."""

    codec: str
    #: ``tar``, or ``concat`` when read against a sidecar manifest.
    bundle_format: str = BundleFormat.TAR.value
    size: int = 0
    sha256: str = ""
    manifest: BundleManifest | None = None
    problems: list[str] = field(default_factory=list)
    extracted: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """No problem found."""
        return not self.problems


class _Extractor:
    """Writes each member into ``directory`` as it streams past; returns its SHA-256."""

    def __init__(self, directory: Path, problems: list[str]) -> None:
        self.directory = directory
        self.problems = problems
        self.extracted: list[str] = []

    def __call__(self, archive: tarfile.TarFile, info: tarfile.TarInfo) -> str | None:
        try:
            safe = tarfile.data_filter(info, str(self.directory))
            archive.extract(info, path=self.directory, filter="data")
        except tarfile.FilterError as exc:
            self.problems.append(f"member {info.name!r} refused by the data filter: {exc}")
            return None
        self.extracted.append(safe.name)
        with (self.directory / safe.name).open("rb") as handle:
            return hash_stream(handle)


class _ConcatExtractor:
    """Opens a file for each member of a concat bundle, under ``directory``."""

    def __init__(self, directory: Path, problems: list[str]) -> None:
        self.directory = directory
        self.problems = problems
        self.extracted: list[str] = []

    def __call__(self, member: ManifestMember) -> IO[bytes] | None:
        name = member.name
        try:
            safe = sanitize_s3_key(name) == name
        except ValidationError:
            safe = False
        root = self.directory.resolve()
        target = (root / name).resolve()
        if not safe or not target.is_relative_to(root) or target == root:
            self.problems.append(f"member {name!r} has an unsafe name: not extracted")
            return None
        target.parent.mkdir(parents=True, exist_ok=True)
        self.extracted.append(name)
        return target.open("xb")


def _clear(directory: Path) -> None:
    for child in directory.iterdir():
        if child.is_dir() and not child.is_symlink():
            shutil.rmtree(child)
        else:
            child.unlink()


def inspect_bundle(
    raw: ReadableStream,
    *,
    expected_sha256: str | None = None,
    check_sha256: bool = False,
    extract_to: Path | None = None,
    sidecar: bytes | None = None,
    bundle_key: str | None = None,
) -> InspectResult:
    """Read the bundle ``raw`` (compressed, from its start) once and check everything.

    Args:
        raw: The bundle's bytes; only ``read(n)`` is used.
        expected_sha256: The recorded whole-object SHA-256 (``content-sha256``).
        check_sha256: Compare the bundle's SHA-256 with ``expected_sha256`` (a missing
            value is then a problem).
        extract_to: Extract the members here (an empty or missing directory); removed
            again if any problem is found.
        sidecar: A concat bundle's manifest (``<bundle>.manifest.json``); ``None`` reads
            a tar bundle.
        bundle_key: With ``sidecar``: the key the sidecar must name.

    Raises:
        BundleError: ``extract_to`` exists and is not an empty directory.
        DataAggregatorError: reading ``raw`` failed (S3 errors, for instance).
    """
    if extract_to is not None:
        if extract_to.exists() and (not extract_to.is_dir() or any(extract_to.iterdir())):
            msg = f"extract directory {str(extract_to)!r} exists and is not empty"
            raise BundleError(msg, ErrorCode.EXTRACT_DIR_NOT_EMPTY, {"directory": str(extract_to)})
        extract_to.mkdir(parents=True, exist_ok=True)
    problems: list[str] = []
    extractor: _Extractor | _ConcatExtractor | None = None
    if sidecar is None:
        extractor = None if extract_to is None else _Extractor(extract_to, problems)
        reading = read_bundle(
            raw,
            report=lambda problem: problems.append(problem.message),
            read_member=extractor,
            digest=True,
        )
    else:
        extractor = None if extract_to is None else _ConcatExtractor(extract_to, problems)
        reading = read_concat_bundle(
            raw,
            sidecar,
            report=lambda problem: problems.append(problem.message),
            bundle_key=bundle_key,
            write_member=extractor,
            digest=True,
        )
    result = InspectResult(
        codec=reading.codec.value,
        bundle_format=(BundleFormat.TAR if sidecar is None else BundleFormat.CONCAT).value,
        size=reading.size,
        sha256=reading.sha256 or "",
        manifest=reading.manifest,
        problems=problems,
        extracted=[] if extractor is None else extractor.extracted,
    )
    if check_sha256:
        if expected_sha256 is None:
            problems.append("the object has no content-sha256 metadata or tag to check")
        elif expected_sha256.lower() != result.sha256:
            problems.append(
                f"bundle SHA-256 {result.sha256} does not match its content-sha256 "
                f"{expected_sha256}"
            )
    if extract_to is not None and problems:
        _clear(extract_to)
        result.extracted.clear()
    return result
