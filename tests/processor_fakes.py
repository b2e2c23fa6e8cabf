"""In-memory stand-ins for the processor unit tests: S3, a bundle locator, a flaky store,
and :class:`UnitEnv`, a processor wired to them with a fake clock."""

from __future__ import annotations

import hashlib
import io
import json
import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, cast

import boto3

from data_aggregator import LocalContext, ReusableProcessor
from data_aggregator.clients import S3BodyStream, S3Client, S3Object, S3ObjectInfo, UploadResult
from data_aggregator.config import AppConfig
from data_aggregator.exceptions import (
    IdempotencyStoreError,
    S3ObjectNotFoundError,
    S3ObjectSupersededError,
)
from data_aggregator.idempotency import InMemoryIdempotencyStore, member_idempotency_keys
from data_aggregator.metrics import CallbackMetrics, MetricPoint
from data_aggregator.testing import FakeClock
from tests.processor_support import FIXED_TIME, SourceObject, read_bundle

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping
    from typing import IO

    from data_aggregator.exceptions import DataAggregatorError
    from data_aggregator.idempotency import WriteOutcome
    from data_aggregator.processor import BatchResult, Outcome, Reason
    from tests.processor_support import ReadBundle

SRC = "source-bucket"
DEST = "dest-bucket"


def _etag(data: bytes) -> str:
    return hashlib.md5(data, usedforsecurity=False).hexdigest()


_BOTO3_CLIENT: Any = None


def _offline_boto3_client() -> Any:
    """One boto3 S3 client that is never used for requests (S3Client needs one)."""
    global _BOTO3_CLIENT  # noqa: PLW0603 - built once: creating clients is slow
    if _BOTO3_CLIENT is None:
        _BOTO3_CLIENT = boto3.session.Session(
            aws_access_key_id="testing", aws_secret_access_key="testing", region_name="us-east-1"
        ).client("s3")
    return _BOTO3_CLIENT


@dataclass
class _Version:
    version_id: str | None
    data: bytes
    etag: str


class FakeS3Client(S3Client):
    """An in-memory :class:`S3Client`: reads, heads and single-part uploads, with faults.

    Bundles stay small in the unit tests, so the multipart writer sends each as one
    ``PutObject``, stored like any object. ``faults[(bucket, key)]`` is raised by reads of
    that key; ``put_failure`` by the next uploads.
    """

    def __init__(self) -> None:
        super().__init__(_offline_boto3_client(), max_pool_connections=10)
        self.versions: dict[tuple[str, str], list[_Version]] = {}
        self.faults: dict[tuple[str, str], DataAggregatorError] = {}
        self.put_failure: Exception | None = None
        self.uploaded: list[str] = []
        self.heads: list[str] = []
        self.gets: list[str] = []
        #: Called with the key of each read, before it is answered (tests move clocks).
        self.on_get: Callable[[str], None] | None = None
        self._lock = threading.Lock()
        self._next_version = 0

    def put(self, bucket: str, key: str, data: bytes, *, versioned: bool = False) -> SourceObject:
        """Store an object (a new version when ``versioned``) and describe it."""
        with self._lock:
            version_id = None
            if versioned:
                self._next_version += 1
                version_id = f"v{self._next_version:04d}"
            etag = _etag(data)
            history = self.versions.setdefault((bucket, key), [])
            if not versioned:
                history.clear()
            history.append(_Version(version_id, data, etag))
        return SourceObject(bucket, key, data, etag, version_id)

    def delete(self, bucket: str, key: str) -> None:
        """Delete every version of ``key``."""
        with self._lock:
            self.versions.pop((bucket, key), None)

    def _find(self, bucket: str, key: str, version_id: str | None) -> _Version:
        fault = self.faults.get((bucket, key))
        if fault is not None:
            raise fault
        with self._lock:
            history = list(self.versions.get((bucket, key), ()))
        for version in reversed(history):
            if version_id is None or version.version_id == version_id:
                return version
        raise S3ObjectNotFoundError("no such key", context={"bucket": bucket, "key": key})

    def open_object(
        self,
        bucket: str,
        key: str,
        *,
        version_id: str | None = None,
        if_match: str | None = None,
    ) -> S3Object:
        """Open an in-memory object, with S3's not-found and precondition errors."""
        self.gets.append(key)
        if self.on_get is not None:
            self.on_get(key)
        version = self._find(bucket, key, version_id)
        if if_match is not None and if_match.strip('"') != version.etag:
            raise S3ObjectSupersededError("precondition failed", context={"bucket": bucket})
        body = S3BodyStream(
            cast("Any", io.BytesIO(version.data)), operation="GetObject", bucket=bucket, key=key
        )
        return S3Object(
            bucket=bucket,
            key=key,
            body=body,
            content_length=len(version.data),
            etag=version.etag,
            version_id=version.version_id,
            last_modified=FIXED_TIME,
        )

    def head_object(
        self,
        bucket: str,
        key: str,
        *,
        version_id: str | None = None,
        if_match: str | None = None,
        checksum_mode: bool = False,
    ) -> S3ObjectInfo:
        """Describe an in-memory object."""
        del if_match, checksum_mode
        self.heads.append(key)
        version = self._find(bucket, key, version_id)
        return S3ObjectInfo(
            bucket=bucket,
            key=key,
            content_length=len(version.data),
            etag=version.etag,
            version_id=version.version_id,
            last_modified=FIXED_TIME,
        )

    def put_object(
        self,
        bucket: str,
        key: str,
        body: bytes | IO[bytes],
        *,
        extra_args: Mapping[str, Any] | None = None,
        sha256: bytes | None = None,
        content_length: int | None = None,
    ) -> UploadResult:
        """Store an upload (a bundle) unless ``put_failure`` is set."""
        del extra_args, sha256, content_length
        if self.put_failure is not None:
            raise self.put_failure
        data = body if isinstance(body, bytes) else body.read()
        self.put(bucket, key, data)
        self.uploaded.append(key)
        digest = hashlib.sha256(data).hexdigest()
        return UploadResult(
            bucket=bucket,
            key=key,
            etag=_etag(data),
            version_id=None,
            size=len(data),
            sha256=digest,
            checksum_sha256=digest,
            parts=1,
            multipart=False,
        )

    def bundle(self, bucket: str, key: str) -> ReadBundle:
        """Read back an uploaded bundle."""
        return read_bundle(key, self._find(bucket, key, None).data)


@dataclass
class LineCapture:
    """Collects EMF lines (pass as ``EmfMetrics(writer=...)``)."""

    lines: list[str] = field(default_factory=list)

    def __call__(self, line: str) -> None:
        self.lines.append(line)

    def documents(self) -> list[dict[str, Any]]:
        """Every line, parsed."""
        return [json.loads(line) for line in self.lines]


class FakeLocator:
    """A :class:`BundleLocator` reading manifests from a :class:`FakeS3Client`."""

    def __init__(self, s3: FakeS3Client, bucket: str) -> None:
        self.s3 = s3
        self.bucket = bucket

    def bundled_keys(self, bundle_key: str) -> frozenset[str] | None:
        """The idempotency keys of the bundle's members; empty when it does not exist."""
        try:
            bundle = self.s3.bundle(self.bucket, bundle_key)
        except S3ObjectNotFoundError:
            return frozenset()
        return frozenset().union(*map(member_idempotency_keys, bundle.manifest.members))


def unit_config(**overrides: Any) -> AppConfig:
    """A valid configuration for the unit tests (small pools, no EMF, 5 s guard)."""
    settings: dict[str, Any] = {
        "distribution_bucket_name": DEST,
        "metrics_enabled": False,
        "fetch_concurrency": 4,
        "upload_concurrency": 2,
        "timeout_guard_threshold_seconds": 5.0,
        **overrides,
    }
    return AppConfig(**settings)


class FlakyStore(InMemoryIdempotencyStore):
    """The in-memory store with per-key failures of chosen primitives."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.fail: dict[str, set[str]] = {"claim": set(), "pending": set(), "complete": set()}

    def _check(self, operation: str, key: str) -> None:
        if key in self.fail[operation]:
            msg = f"injected {operation} failure"
            raise IdempotencyStoreError(msg, "IDEMPOTENCY_THROTTLED")

    def _claim_record(
        self,
        key: str,
        *,
        owner: str,
        now: float,
        lease_expires_at: float,
        expiration: int,
        bundle_key: str | None,
    ) -> WriteOutcome:
        self._check("claim", key)
        return super()._claim_record(
            key,
            owner=owner,
            now=now,
            lease_expires_at=lease_expires_at,
            expiration=expiration,
            bundle_key=bundle_key,
        )

    def _set_pending(self, key: str, *, owner: str, bundle_key: str) -> WriteOutcome:
        self._check("pending", key)
        return super()._set_pending(key, owner=owner, bundle_key=bundle_key)

    def _complete_record(
        self, key: str, *, owner: str, bundle_key: str, expiration: int
    ) -> WriteOutcome:
        self._check("complete", key)
        return super()._complete_record(
            key, owner=owner, bundle_key=bundle_key, expiration=expiration
        )


@dataclass
class UnitEnv:
    """A processor over a fake S3 and a flaky in-memory store, with a fake clock."""

    processor: ReusableProcessor
    s3: FakeS3Client
    store: FlakyStore
    clock: FakeClock
    points: list[MetricPoint] = field(default_factory=list)

    def context(self, seconds: float = 300.0) -> LocalContext:
        """A context with ``seconds`` left on the fake clock."""
        return LocalContext.from_timeout(seconds, clock=self.clock)

    def run(self, event: Mapping[str, Any], context: Any = None) -> BatchResult:
        """``process`` with a fresh context."""
        return self.processor.process(event, context or self.context())

    def put(self, key: str, data: bytes | None = None, **kwargs: Any) -> SourceObject:
        """Store a source object."""
        return self.s3.put(SRC, key, data if data is not None else key.encode() * 3, **kwargs)

    def bundles(self) -> list[ReadBundle]:
        """Every uploaded bundle, read back and verified."""
        return [self.s3.bundle(DEST, key) for key in self.s3.uploaded]

    def metric(self, name: str) -> float:
        """The value a metric had at the last flush (0 when absent)."""
        return sum(p.value for p in self.points if p.name == name)


def make_unit_env(cls: type[ReusableProcessor] = ReusableProcessor, **config: Any) -> UnitEnv:
    """A ``cls`` processor over a fake S3 and a flaky store (config overrides as kwargs)."""
    clock = FakeClock()
    s3 = FakeS3Client()
    store = FlakyStore(clock=clock, bundle_locator=FakeLocator(s3, DEST))
    points: list[MetricPoint] = []
    processor = cls(
        unit_config(**config),
        s3_client=s3,
        store=store,
        metrics=CallbackMetrics(points.append),
        clock=clock,
    )
    return UnitEnv(processor, s3, store, clock, points)


def outcomes(result: BatchResult) -> list[tuple[str, Outcome, Reason | None]]:
    """``(message id, outcome, reason)`` of every record result."""
    return [(r.message_id, r.outcome, r.reason) for r in result.records]
