"""A `BundleLocator` that reads a bundle's ``manifest.json`` from S3.

Bundles are tar streams (gzip, zstd or uncompressed) whose last member is
``manifest.json``. A compressed stream has no index, so finding the manifest means reading
the whole bundle once: acceptable, because the locator only runs on the crash-recovery
path (a lease taken over from an invocation that died after announcing a bundle).
"""

from __future__ import annotations

import importlib
import json
import logging
import tarfile
import zlib
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from data_aggregator.idempotency._keys import make_idempotency_key

if TYPE_CHECKING:
    from collections.abc import Callable

    from mypy_boto3_s3 import S3Client as Boto3S3Client

__all__ = ["S3ManifestBundleLocator"]

logger = logging.getLogger("data_aggregator.idempotency")

MANIFEST_NAME = "manifest.json"
_ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
_NOT_FOUND = frozenset({"NoSuchKey", "404", "NotFound"})


class _Prefixed:
    """A read-only stream: ``head`` bytes, then the rest of ``body``."""

    def __init__(self, head: bytes, body: Any) -> None:
        self._head = head
        self._body = body

    def read(self, size: int = -1) -> bytes:
        if self._head:
            if size < 0:
                rest: bytes = self._body.read()
                data, self._head = self._head + rest, b""
                return data
            data, self._head = self._head[:size], self._head[size:]
            return data
        chunk: bytes = self._body.read() if size < 0 else self._body.read(size)
        return chunk


class S3ManifestBundleLocator:
    """Answers "which records does bundle K hold?" from the bundle's ``manifest.json``.

    Args:
        bucket: The bucket bundles are written to (``DISTRIBUTION_BUCKET_NAME``).
        client: A boto3 S3 client (default: ``boto3.client("s3")``).
        key_function: Turns a manifest member's ``key``, ``version_id`` and ``sequencer``
            into its idempotency key (default
            [`make_idempotency_key`][data_aggregator.idempotency.make_idempotency_key]); a
            member's own ``idempotency_key`` field, when present, is used as is.
        expected_bucket_owner: Passed to ``GetObject`` as ``ExpectedBucketOwner``.

    ``bundled_keys`` returns an empty set when the bundle does not exist (``NoSuchKey``:
    give the role ``s3:ListBucket`` so that a missing object reads as 404, not 403), and
    ``None`` when the bundle cannot be read or has no manifest.
    """

    def __init__(
        self,
        bucket: str,
        *,
        client: Boto3S3Client | None = None,
        key_function: Callable[[str, str | None, str | None], str] = make_idempotency_key,
        expected_bucket_owner: str | None = None,
    ) -> None:
        if client is None:
            import boto3  # noqa: PLC0415 - deferred: only the recovery path needs it

            client = boto3.client("s3")
        self.bucket = bucket
        self.client = client
        self.key_function = key_function
        self.expected_bucket_owner = expected_bucket_owner

    def bundled_keys(self, bundle_key: str) -> frozenset[str] | None:
        """The idempotency keys listed in bundle ``bundle_key``'s manifest."""
        extra = {"bucket": self.bucket, "bundle_key": bundle_key}
        request: dict[str, Any] = {"Bucket": self.bucket, "Key": bundle_key}
        if self.expected_bucket_owner:
            request["ExpectedBucketOwner"] = self.expected_bucket_owner
        try:
            body = self.client.get_object(**request)["Body"]
        except ClientError as exc:
            code = str(exc.response.get("Error", {}).get("Code", ""))
            if code in _NOT_FOUND:
                return frozenset()
            logger.warning("cannot read bundle", extra={**extra, "aws_error_code": code})
            return None
        except BotoCoreError as exc:
            logger.warning("cannot read bundle", extra={**extra, "error_type": type(exc).__name__})
            return None
        try:
            manifest = self._read_manifest(body)
        except (tarfile.TarError, OSError, EOFError, zlib.error, BotoCoreError) as exc:
            logger.warning("cannot read bundle", extra={**extra, "error_type": type(exc).__name__})
            return None
        finally:
            body.close()
        if manifest is None:
            logger.warning("bundle has no manifest", extra=extra)
            return None
        try:
            return self._keys(manifest)
        except (ValueError, TypeError, KeyError, AttributeError) as exc:
            logger.warning(
                "bundle manifest is malformed", extra={**extra, "error_type": type(exc).__name__}
            )
            return None

    def _read_manifest(self, body: Any) -> bytes | None:
        head = body.read(len(_ZSTD_MAGIC))
        stream: Any = _Prefixed(head, body)
        mode = "r|*"
        if head == _ZSTD_MAGIC:
            try:
                zstandard = importlib.import_module("zstandard")
            except ImportError:
                logger.warning("zstd bundle but the zstandard package is not installed")
                return None
            stream = zstandard.ZstdDecompressor().stream_reader(stream)
            mode = "r|"
        manifest: bytes | None = None
        with tarfile.open(fileobj=stream, mode=mode) as archive:  # type: ignore[call-overload]
            for member in archive:
                if member.name == MANIFEST_NAME and member.isfile():
                    extracted = archive.extractfile(member)
                    manifest = extracted.read() if extracted is not None else None
        return manifest

    def _keys(self, manifest: bytes) -> frozenset[str]:
        document = json.loads(manifest)
        keys: set[str] = set()
        for member in document["members"]:
            explicit = member.get("idempotency_key")
            if isinstance(explicit, str) and explicit:
                keys.add(explicit)
            else:
                keys.add(
                    self.key_function(
                        member["key"], member.get("version_id"), member.get("sequencer")
                    )
                )
        return frozenset(keys)
