"""A `BundleLocator` that reads a bundle back from S3 and answers from its checked manifest.

Bundles are tar streams (gzip, zstd or uncompressed) whose last member is
``manifest.json``, or concat bundles whose manifest is the sidecar object
``<SIDECAR_PREFIX><bundle key>.manifest.json``, stored before the bundle (no bundle: not
committed); each bundle's metadata names its format and its sidecar, so a locator reads
bundles written with any settings. A compressed stream has no index, so finding the
manifest means reading
the whole bundle once: acceptable, because the locator only runs on the crash-recovery
path (a lease taken over from an invocation that died after announcing a bundle). The read
goes through [`S3Client`][data_aggregator.clients.S3Client] (typed errors) and
[`read_bundle_manifest`][data_aggregator.bundle.read_bundle_manifest], so a manifest is
trusted only once every member has been checked against it.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from typing import TYPE_CHECKING, Any, Protocol

from data_aggregator.clients import S3Client
from data_aggregator.config import BundleFormat, normalise_key_prefix, resolve_bundle_format
from data_aggregator.exceptions import (
    BundleError,
    ConfigurationError,
    DataAggregatorError,
    S3ObjectNotFoundError,
)
from data_aggregator.idempotency._keys import member_idempotency_keys

if TYPE_CHECKING:
    from collections.abc import Callable

    from mypy_boto3_s3 import S3Client as Boto3S3Client

    from data_aggregator.bundle import BundleManifest

__all__ = ["LocatorSettings", "S3ManifestBundleLocator"]

logger = logging.getLogger("data_aggregator.idempotency")


class LocatorSettings(Protocol):
    """What ``S3ManifestBundleLocator.from_config`` reads (``AppConfig`` provides it)."""

    @property
    def distribution_bucket_name(self) -> str: ...
    @property
    def bundle_format(self) -> BundleFormat: ...
    @property
    def sidecar_prefix(self) -> str: ...


def _s3_client(
    client: S3Client | Boto3S3Client | None, expected_bucket_owner: str | None
) -> S3Client:
    if isinstance(client, S3Client):
        if expected_bucket_owner is not None and expected_bucket_owner != (
            client.expected_bucket_owner
        ):
            msg = (
                "expected_bucket_owner differs from the S3Client's own: "
                "set it on the S3Client (S3Client(expected_bucket_owner=...))"
            )
            raise ConfigurationError(msg, context={"variable": "expected_bucket_owner"})
        return client
    # A boto3 client (or none: the default one) wrapped for one reader at a time: a
    # bundle's body stays open while its sidecar is read.
    return S3Client(client, expected_bucket_owner=expected_bucket_owner, max_pool_connections=2)


def _error_facts(error: DataAggregatorError) -> dict[str, Any]:
    return {
        "error_type": type(error).__name__,
        "error_code": error.error_code,
        "aws_error_code": error.context.get("aws_error_code"),
    }


class S3ManifestBundleLocator:
    """Answers "which records does bundle K hold?" from the bundle's ``manifest.json``.

    The whole bundle is read once and checked like
    [`verify_bundle`][data_aggregator.bundle.verify_bundle] does (every member's size and
    SHA-256 against the manifest, the manifest last): only a bundle that passes is trusted.

    Args:
        bucket: The bucket bundles are written to (``DISTRIBUTION_BUCKET_NAME``).
        client: An [`S3Client`][data_aggregator.clients.S3Client] (its ``ExpectedBucketOwner``
            and timeouts apply), or, for compatibility, a boto3 S3 client, which is wrapped
            into one. Default: an ``S3Client`` over a default boto3 client.
        key_function: Turns a manifest member's ``key``, ``version_id`` and ``sequencer``
            into its one idempotency key, for stores keyed some other way. By default
            (``None``) a member answers with
            [`member_idempotency_keys`][data_aggregator.idempotency.member_idempotency_keys]:
            the key the processor claims
            ([`record_idempotency_key`][data_aggregator.idempotency.record_idempotency_key],
            its content key) and the seed's key for a record that had no ETag.
        expected_bucket_owner: Sent as ``ExpectedBucketOwner`` when ``client`` is a boto3
            client or omitted; an ``S3Client`` brings its own (a different value here is a
            [`ConfigurationError`][data_aggregator.exceptions.ConfigurationError]).
        cache_size: How many verified bundles to remember (0: none).
        bundle_format: The deployment's ``BUNDLE_FORMAT`` (any case, as
            [`resolve_bundle_format`][data_aggregator.config.resolve_bundle_format]
            reads it), for bundles that do not say their format in their metadata
            (written by an earlier version): with
            ``concat``, the sidecar ``<sidecar_prefix><bundle key>.manifest.json`` (or
            the one next to the bundle) is read and the bundle checked against it, a
            bundle without a sidecar is read as tar (written before the switch). A bundle
            that describes itself is read as its metadata says, whatever this is. A
            sidecar without its bundle means the bundle was never committed (an empty
            set).
        sidecar_prefix: The deployment's ``SIDECAR_PREFIX`` (normalised like it: a
            trailing ``/`` is added), for bundles without metadata.

    A bundle found and verified is remembered (the last ``cache_size`` of them): a stored
    bundle never changes, and an invocation that takes over many records announced for the
    same crashed bundle asks about it once per claim chunk. A missing bundle is asked again
    each time (a late upload may still land).

    ``bundled_keys`` returns an empty set when the bundle does not exist
    ([`S3ObjectNotFoundError`][data_aggregator.exceptions.S3ObjectNotFoundError]: give the
    role ``s3:ListBucket`` so that a missing object reads as 404, not 403), and ``None``
    (logged as a warning) when the bundle cannot be read (any other S3 error) or fails the
    checks.

    Attributes:
        client: The `S3Client` the bundles are read through.

    Raises:
        ConfigurationError: an unknown ``bundle_format``, an invalid ``sidecar_prefix``,
            or an ``expected_bucket_owner`` that differs from the ``S3Client``'s.
    """

    def __init__(
        self,
        bucket: str,
        *,
        client: S3Client | Boto3S3Client | None = None,
        key_function: Callable[[str, str | None, str | None], str] | None = None,
        expected_bucket_owner: str | None = None,
        cache_size: int = 16,
        bundle_format: BundleFormat | str = BundleFormat.TAR,
        sidecar_prefix: str = "",
    ) -> None:
        self.bucket = bucket
        self.bundle_format = resolve_bundle_format(bundle_format)
        self.sidecar_prefix = normalise_key_prefix(sidecar_prefix, variable="sidecar_prefix")
        self.client = _s3_client(client, expected_bucket_owner)
        self.key_function = key_function
        self.expected_bucket_owner = self.client.expected_bucket_owner
        self._cache_size = max(0, cache_size)
        self._known: OrderedDict[str, frozenset[str]] = OrderedDict()
        self._lock = threading.Lock()

    @classmethod
    def from_config(
        cls, config: LocatorSettings, *, client: S3Client | Boto3S3Client | None = None
    ) -> S3ManifestBundleLocator:
        """The locator of a deployment: bundles in ``DISTRIBUTION_BUCKET_NAME``, read with
        its ``BUNDLE_FORMAT`` and ``SIDECAR_PREFIX`` (for bundles without metadata) through
        ``client`` (the processor's ``S3Client``: its ``ExpectedBucketOwner`` applies).
        The processor's default store and ``data-aggregator bundle`` use this."""
        return cls(
            config.distribution_bucket_name,
            client=client,
            bundle_format=config.bundle_format,
            sidecar_prefix=config.sidecar_prefix,
        )

    def bundled_keys(self, bundle_key: str) -> frozenset[str] | None:
        """The idempotency keys of the members of bundle ``bundle_key``, once checked."""
        with self._lock:
            known = self._known.get(bundle_key)
            if known is not None:
                self._known.move_to_end(bundle_key)
                return known
        keys = self._bundled_keys(bundle_key)
        if keys and self._cache_size:  # found and verified: it never changes
            with self._lock:
                self._known[bundle_key] = keys
                while len(self._known) > self._cache_size:
                    self._known.popitem(last=False)
        return keys

    def _bundled_keys(self, bundle_key: str) -> frozenset[str] | None:
        extra = {"bucket": self.bucket, "bundle_key": bundle_key}
        manifest = self._read(bundle_key, extra)
        if manifest is None or isinstance(manifest, frozenset):
            return manifest
        try:
            function = self.key_function
            if function is None:
                return frozenset().union(*map(member_idempotency_keys, manifest.members))
            return frozenset(
                function(member.key, member.version_id, member.sequencer)
                for member in manifest.members
            )
        except (ValueError, TypeError) as exc:
            logger.warning(
                "cannot compute the idempotency keys of the bundle's members",
                extra={**extra, "error_type": type(exc).__name__},
            )
            return None

    def _read(
        self, bundle_key: str, extra: dict[str, Any]
    ) -> BundleManifest | frozenset[str] | None:
        """The bundle's checked manifest; an empty set if it does not exist, else ``None``."""
        from data_aggregator.bundle import read_bundle_manifest  # noqa: PLC0415 - recovery only

        try:
            return read_bundle_manifest(  # a manifest naming another bundle: BundleError
                self.client,
                self.bucket,
                bundle_key,
                bundle_format=self.bundle_format,
                sidecar_prefix=self.sidecar_prefix,
            )
        except S3ObjectNotFoundError:
            return frozenset()
        except BundleError as exc:
            logger.warning(
                "bundle failed verification",
                extra={**extra, "error_code": exc.error_code, "problem": exc.message},
            )
            return None
        except DataAggregatorError as exc:  # S3 errors mid-body, zstandard not installed
            logger.warning("cannot read bundle", extra={**extra, **_error_facts(exc)})
            return None
