"""Check a bundle against its manifest, whatever its format; read a stored bundle's manifest.

Private; [`verify_bundle`][data_aggregator.bundle.verify_bundle] and
[`read_bundle_manifest`][data_aggregator.bundle.read_bundle_manifest] are re-exported by
`data_aggregator.bundle`. The reading itself is the tar reader's (``_reader.py``) or the
concat reader's (``_concat_reader.py``). It is the one way to ask "what does the bundle at
this key hold?": the crash-recovery locator and anything that must verify a bundle against
its manifest before acting on it (deleting sources, say) go through it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from data_aggregator.bundle._concat import sidecar_key
from data_aggregator.bundle._concat_reader import read_concat_bundle
from data_aggregator.bundle._manifest import bundle_problem
from data_aggregator.bundle._metadata import BundleDescription
from data_aggregator.bundle._reader import read_bundle
from data_aggregator.config import BundleFormat, normalise_key_prefix, resolve_bundle_format
from data_aggregator.exceptions import (
    BundleError,
    DataAggregatorError,
    S3AccessDeniedError,
    S3ObjectNotFoundError,
)

if TYPE_CHECKING:
    from collections.abc import Iterable

    from data_aggregator.bundle._manifest import BundleManifest
    from data_aggregator.bundle._types import ObjectBody, ObjectSource, ReadableStream
    from data_aggregator.config import Codec

__all__ = [
    "SidecarSearch",
    "read_bundle_manifest",
    "read_sidecar",
    "sidecar_candidates",
    "verify_bundle",
]


def _raise(problem: BundleError) -> None:
    raise problem


def verify_bundle(
    fileobj: ReadableStream,
    codec: Codec | str | None = None,
    *,
    sidecar: bytes | None = None,
    bundle_key: str | None = None,
) -> BundleManifest:
    """Read a whole bundle and check it against its manifest; stop at the first problem.

    A tar bundle carries its manifest; a concat bundle (``BUNDLE_FORMAT=concat``) is
    checked against its sidecar, given as ``sidecar`` (the bytes of
    ``<bundle key>.manifest.json``): each member cut at its offset and size, hashed and
    compared, its newline checked, nothing after the last one (see
    ``docs/bundle-format.md``).
    [`read_bundle_manifest`][data_aggregator.bundle.read_bundle_manifest] fetches both
    from S3, whatever the format.

    Checks: the compressed stream and the archive read to their ends; every member is a
    regular file; the last member is ``manifest.json`` with ``format_version`` 1; the
    manifest lists exactly the other members, in archive order, with their sizes and
    SHA-256; member names are unique once folded (NFC, case-insensitive) and none but the
    last is ``manifest.json``.

    Args:
        fileobj: The bundle as uploaded (compressed), readable from its start; only
            ``read(n)`` is used, so an S3 body stream will do.
        codec: ``gzip``, ``zstd``, ``none``, or ``None`` to detect it from magic bytes.
        sidecar: A concat bundle's manifest; ``None`` for a tar bundle.
        bundle_key: With ``sidecar``: the bundle's key, which the sidecar must name.

    Returns:
        The parsed manifest.

    Raises:
        BundleError: with ``error_code`` ``BUNDLE_INVALID`` when any check fails; the
            message names the first problem found.
        DataAggregatorError: reading ``fileobj`` failed (S3 errors, for instance), or the
            bundle is zstd and the ``zstandard`` package is not installed.
    """
    if sidecar is not None:
        reading = read_concat_bundle(
            fileobj, sidecar, report=_raise, codec=codec, bundle_key=bundle_key
        )
    else:
        reading = read_bundle(fileobj, report=_raise, codec=codec)
    manifest = reading.manifest
    if manifest is None:  # pragma: no cover - every path without a manifest reported
        raise bundle_problem("bundle has no manifest.json")
    return manifest


def _metadata(obj: ObjectBody) -> Mapping[str, str]:
    """The user metadata of an opened object (`S3Object.metadata`); none for an object
    source that does not report it."""
    metadata = getattr(obj, "metadata", None)
    return metadata if isinstance(metadata, Mapping) else {}


def sidecar_candidates(
    bundle_key: str, description: BundleDescription, sidecar_prefix: str = ""
) -> tuple[str, ...]:
    """Where the sidecar of ``bundle_key`` may be, in the order to look.

    A tar bundle (by its metadata) has none; a concat bundle whose metadata records its
    sidecar's key has that one only. Otherwise (a bundle that does not describe itself):
    under ``sidecar_prefix``, then next to the bundle.
    """
    if description.bundle_format is BundleFormat.TAR:
        return ()
    if description.sidecar_key is not None:
        return (description.sidecar_key,)
    keys = (sidecar_key(bundle_key, sidecar_prefix), sidecar_key(bundle_key))
    return tuple(dict.fromkeys(keys))


@dataclass(frozen=True, slots=True)
class SidecarSearch:
    """What `read_sidecar` found.

    Attributes:
        data: The sidecar's bytes; ``None`` when no candidate could be read.
        denied: The error of the first candidate that answered 403 (without
            ``s3:ListBucket`` a missing object does), if any.
        denied_key: That candidate's key.
    """

    data: bytes | None = None
    denied: S3AccessDeniedError | None = None
    denied_key: str | None = None

    def failure(self, bundle_key: str, problem: BundleError) -> DataAggregatorError:
        """The error to raise when no sidecar was found and ``problem`` is why the bundle
        cannot be read otherwise: ``problem`` itself, or, when a candidate answered 403 (the
        sidecar may be there, unreadable), an `S3AccessDeniedError` that says so."""
        if self.denied is None:
            return problem
        error = S3AccessDeniedError(
            f"{problem.message} (access denied at {self.denied_key}: the sidecar may be "
            "there, unreadable; without s3:ListBucket a missing object answers 403 too)",
            None,
            {**self.denied.context, "bundle_key": bundle_key, "sidecar_key": self.denied_key},
            operation=self.denied.operation,
        )
        error.__cause__ = self.denied
        return error


def read_sidecar(source: ObjectSource, bucket: str, keys: Iterable[str]) -> SidecarSearch:
    """The bytes of the first of the sidecars ``keys`` that can be read. A missing one
    (404), or one that answers 403 (what a missing object answers without
    ``s3:ListBucket``), moves on to the next; the first 403 is kept in the result.

    Raises:
        DataAggregatorError: reading failed for another reason.
    """
    denied: tuple[S3AccessDeniedError, str] | None = None
    for key in keys:
        try:
            obj = source.open_object(bucket, key)
        except S3ObjectNotFoundError:
            continue
        except S3AccessDeniedError as exc:
            denied = denied or (exc, key)
            continue
        with contextlib.closing(obj.body):
            return SidecarSearch(obj.body.read())
    return SidecarSearch(None, *denied) if denied else SidecarSearch()


def _tar_manifest(body: ReadableStream, bundle_key: str) -> BundleManifest:
    """The manifest of ``body`` read as a tar bundle, which must name ``bundle_key``: a
    tar that names another bundle is not this bundle's (e.g. a concat bundle whose first
    member is itself an uncompressed tar bundle reads as that tar)."""
    manifest = verify_bundle(body)
    if manifest.bundle_key != bundle_key:
        raise bundle_problem(
            f"the manifest names bundle {manifest.bundle_key!r}, not {bundle_key!r}"
        )
    return manifest


def read_bundle_manifest(
    source: ObjectSource,
    bucket: str,
    bundle_key: str,
    *,
    bundle_format: BundleFormat | str = BundleFormat.TAR,
    sidecar_prefix: str = "",
) -> BundleManifest:
    """Read the bundle ``s3://bucket/bundle_key`` whole, check it against its manifest and
    return the manifest.

    A bundle's format, and a concat bundle's sidecar key, come from the bundle's own
    metadata (``aggregator-format``, ``aggregator-sidecar``, returned with the bundle's
    ``GetObject``): a tar bundle is checked against the ``manifest.json`` it ends with, a
    concat bundle against the sidecar its metadata names (every member cut at its offset,
    hashed, compared; the sidecar must name ``bundle_key``), whatever ``bundle_format`` and
    ``sidecar_prefix`` say. A bundle without that metadata (written by an earlier version)
    is read as the caller's configuration says: with ``bundle_format="concat"`` against
    the sidecar ``<sidecar_prefix><bundle_key>.manifest.json`` or, failing that, the one
    next to the bundle, and as tar when there is neither (one written before the switch);
    as tar otherwise, and if that fails, against a sidecar found at either place (the
    bundle is read a second time). The sidecar is stored before the bundle, so a sidecar
    whose bundle is missing is a bundle that was never committed: `S3ObjectNotFoundError`,
    as for any missing bundle.

    The manifest returned always names ``bundle_key``: a tar read whose ``manifest.json``
    names another bundle (a concat bundle whose first member is itself an uncompressed tar
    bundle; a bundle copied to another key) is a failed tar read, and so is a sidecar
    naming another bundle.

    Args:
        source: Opens objects ([`S3Client`][data_aggregator.clients.S3Client] fits; its
            ``S3Object.metadata`` is the bundle's metadata).
        bucket: The bundles' bucket.
        bundle_key: The bundle's key.
        bundle_format: The reader's ``BUNDLE_FORMAT``, for bundles without metadata.
        sidecar_prefix: The reader's ``SIDECAR_PREFIX`` (normalised as
            [`normalise_key_prefix`][data_aggregator.config.normalise_key_prefix] does),
            for bundles without metadata.

    Raises:
        S3ObjectNotFoundError: there is no bundle at ``bundle_key``.
        BundleError: the bundle does not match its manifest, its manifest names another
            bundle, or its metadata names a sidecar that does not exist or a format this
            version does not know (``BUNDLE_INVALID``).
        S3AccessDeniedError: as for a `BundleError`, no sidecar was found, and a place
            where it may be answered 403 (the message says which): the sidecar may be
            there, unreadable. A 403 on one place does not stop the search: without
            ``s3:ListBucket`` a missing object answers 403.
        ConfigurationError: an invalid ``bundle_format`` or ``sidecar_prefix``.
        DataAggregatorError: reading failed (S3 errors), or the bundle is zstd and the
            ``zstandard`` package is not installed.
    """
    configured = resolve_bundle_format(bundle_format)
    prefix = normalise_key_prefix(sidecar_prefix, variable="sidecar_prefix")
    obj = source.open_object(bucket, bundle_key)
    found: SidecarSearch | None = None  # not looked for yet
    with contextlib.closing(obj.body):
        description = BundleDescription.from_metadata(_metadata(obj))
        candidates = sidecar_candidates(bundle_key, description, prefix)
        if description.bundle_format is not None or configured is BundleFormat.CONCAT:
            found = read_sidecar(source, bucket, candidates)
            if found.data is not None:
                return verify_bundle(obj.body, sidecar=found.data, bundle_key=bundle_key)
            if description.bundle_format is BundleFormat.CONCAT:
                raise found.failure(
                    bundle_key,
                    bundle_problem(
                        f"no sidecar manifest for this concat bundle at {', '.join(candidates)}"
                    ),
                )
        # Tar by its metadata; or undescribed: read by a tar deployment, or by a concat
        # one that found no sidecar (a bundle written before the switch).
        try:
            return _tar_manifest(obj.body, bundle_key)
        except BundleError as problem:
            as_tar = problem
    if found is None:  # a tar deployment: the sidecar, if any, says what this bundle is
        found = read_sidecar(source, bucket, candidates)
    if found.data is None:
        raise found.failure(bundle_key, as_tar)
    try:
        again = source.open_object(bucket, bundle_key)
    except S3ObjectNotFoundError:  # there a moment ago: this cannot tell
        raise as_tar from None
    with contextlib.closing(again.body):
        return verify_bundle(again.body, sidecar=found.data, bundle_key=bundle_key)
