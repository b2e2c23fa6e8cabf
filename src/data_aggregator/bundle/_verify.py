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
from typing import TYPE_CHECKING

from data_aggregator.bundle._concat import sidecar_key
from data_aggregator.bundle._concat_reader import read_concat_bundle
from data_aggregator.bundle._manifest import bundle_problem
from data_aggregator.bundle._reader import read_bundle
from data_aggregator.config import BundleFormat
from data_aggregator.exceptions import S3ObjectNotFoundError

if TYPE_CHECKING:
    from data_aggregator.bundle._manifest import BundleManifest
    from data_aggregator.bundle._types import ObjectSource, ReadableStream
    from data_aggregator.config import Codec
    from data_aggregator.exceptions import BundleError

__all__ = ["read_bundle_manifest", "verify_bundle"]


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


def _read_sidecar(source: ObjectSource, bucket: str, key: str) -> bytes | None:
    try:
        obj = source.open_object(bucket, key)
    except S3ObjectNotFoundError:
        return None
    with contextlib.closing(obj.body):
        return obj.body.read()


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

    A tar bundle is checked against the ``manifest.json`` it ends with. With
    ``bundle_format="concat"`` the sidecar ``<sidecar_prefix><bundle_key>.manifest.json``
    is read first
    and the bundle is checked against it (every member cut at its offset, hashed,
    compared; the sidecar must name ``bundle_key``); a concat deployment that finds no
    sidecar reads the bundle as tar (one written before the switch). The sidecar is
    stored before the bundle, so a sidecar whose bundle is missing is a bundle that was
    never committed: `S3ObjectNotFoundError`, as for any missing bundle.

    Args:
        source: Opens objects ([`S3Client`][data_aggregator.clients.S3Client] fits).
        bucket: The bundles' bucket.
        bundle_key: The bundle's key.
        bundle_format: The deployment's ``BUNDLE_FORMAT``.
        sidecar_prefix: The deployment's ``SIDECAR_PREFIX`` (where sidecars are).

    Raises:
        S3ObjectNotFoundError: there is no bundle at ``bundle_key``.
        BundleError: the bundle does not match its manifest (``BUNDLE_INVALID``).
        DataAggregatorError: reading failed (S3 errors), or the bundle is zstd and the
            ``zstandard`` package is not installed.
    """
    sidecar = None
    if BundleFormat(bundle_format) is BundleFormat.CONCAT:
        sidecar = _read_sidecar(source, bucket, sidecar_key(bundle_key, sidecar_prefix))
    obj = source.open_object(bucket, bundle_key)
    with contextlib.closing(obj.body):
        return verify_bundle(obj.body, sidecar=sidecar, bundle_key=bundle_key)
