"""The manifest of a stored bundle, whatever its format, trusted only once checked.

Private; [`read_bundle_manifest`][data_aggregator.bundle.read_bundle_manifest] is
re-exported by `data_aggregator.bundle`. It is the one way to ask "what does the bundle at
this key hold?": the crash-recovery locator and anything that must verify a bundle against
its manifest before acting on it (deleting sources, say) go through it.
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING

from data_aggregator.bundle._concat import sidecar_key
from data_aggregator.bundle._reader import verify_bundle
from data_aggregator.config import BundleFormat
from data_aggregator.exceptions import S3ObjectNotFoundError

if TYPE_CHECKING:
    from data_aggregator.bundle._manifest import BundleManifest
    from data_aggregator.bundle._types import ObjectSource

__all__ = ["read_bundle_manifest"]


def _read_sidecar(source: ObjectSource, bucket: str, key: str) -> bytes | None:
    try:
        obj = source.open_object(bucket, sidecar_key(key))
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
) -> BundleManifest:
    """Read the bundle ``s3://bucket/bundle_key`` whole, check it against its manifest and
    return the manifest.

    A tar bundle is checked against the ``manifest.json`` it ends with. With
    ``bundle_format="concat"`` the sidecar ``<bundle_key>.manifest.json`` is read first
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

    Raises:
        S3ObjectNotFoundError: there is no bundle at ``bundle_key``.
        BundleError: the bundle does not match its manifest (``BUNDLE_INVALID``).
        DataAggregatorError: reading failed (S3 errors), or the bundle is zstd and the
            ``zstandard`` package is not installed.
    """
    sidecar = None
    if BundleFormat(bundle_format) is BundleFormat.CONCAT:
        sidecar = _read_sidecar(source, bucket, bundle_key)
    obj = source.open_object(bucket, bundle_key)
    with contextlib.closing(obj.body):
        return verify_bundle(obj.body, sidecar=sidecar, bundle_key=bundle_key)
