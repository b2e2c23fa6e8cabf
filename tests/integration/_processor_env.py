"""A ReusableProcessor wired to the S3 and DynamoDB servers over HTTP, for end-to-end tests.

Real parts only: :class:`S3Client` over a boto3 client, :class:`DynamoDBIdempotencyStore`
on a table made per test with :func:`create_idempotency_table`, and
:class:`S3ManifestBundleLocator` reading bundles back for crash recovery. Time is a
:class:`FakeClock` shared by the processor, the store and the contexts, so that a test can
let leases run out without waiting.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, cast

import boto3
from botocore.awsrequest import AWSResponse
from botocore.config import Config

from data_aggregator import LocalContext, PartialBatchResponse, ReusableProcessor
from data_aggregator.bundle._concat import SIDECAR_SUFFIX, sidecar_key
from data_aggregator.clients import S3Client
from data_aggregator.config import AppConfig
from data_aggregator.idempotency import (
    DynamoDBIdempotencyStore,
    S3ManifestBundleLocator,
    create_idempotency_table,
)
from data_aggregator.testing import FakeClock
from tests.clock_support import FUTURE_START
from tests.integration._s3_hooks import no_retry_client
from tests.integration.conftest import REGION, make_client
from tests.processor_support import SourceObject, read_bundle

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Iterator, Mapping

    from botocore.awsrequest import AWSPreparedRequest
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_s3 import S3Client as Boto3S3Client

    from data_aggregator.idempotency import UpdateResult
    from data_aggregator.processor import BatchResult
    from tests.processor_support import ReadBundle

__all__ = ["Crash", "CrashOnComplete", "ProcessorEnv", "dynamodb_error", "env_factory"]


@dataclass
class ProcessorEnv:
    """Buckets, a table, a store and a processor, all on the session's servers."""

    endpoint: str  # the S3 server's
    s3: Boto3S3Client  # set-up and read-back; never fault-injected
    processor_s3: Boto3S3Client  # the processor's own client (hooks go here)
    dynamodb: DynamoDBClient  # the store's client (hooks go here)
    source: str
    dest: str
    table: str
    clock: FakeClock
    processor: ReusableProcessor
    store: DynamoDBIdempotencyStore
    make_bucket: Callable[..., str]
    results: list[BatchResult] = field(default_factory=list)

    def put(
        self, key: str, data: bytes | None = None, *, bucket: str | None = None
    ) -> SourceObject:
        """Upload a source object; describe it as its event will."""
        bucket = bucket or self.source
        body = data if data is not None else f"contents of {key}".encode()
        response = self.s3.put_object(Bucket=bucket, Key=key, Body=body)
        version = response.get("VersionId")
        return SourceObject(
            bucket,
            key,
            body,
            response["ETag"].strip('"'),
            version if version and version != "null" else None,
            sequencer=uuid.uuid4().hex[:18].upper(),
        )

    def context(self, seconds: float = 300.0, **kwargs: Any) -> LocalContext:
        """A context whose deadline is ``seconds`` away on the fake clock."""
        return LocalContext.from_timeout(seconds, clock=self.clock, **kwargs)

    def handle(self, event: Mapping[str, Any], context: Any = None) -> PartialBatchResponse:
        """``processor.handle`` with a fresh context; keeps the typed result (also when
        ``handle`` raises after processing, as for a Map batch with failures)."""
        before = self.processor.last_result
        try:
            return self.processor.handle(event, context or self.context())
        finally:
            result = self.processor.last_result
            if result is not None and result is not before:
                self.results.append(result)

    @property
    def last(self) -> BatchResult:
        """The typed result of the latest ``handle``."""
        return self.results[-1]

    def bundles(self) -> list[ReadBundle]:
        """Every bundle in the destination bucket, downloaded and verified (a concat
        bundle against its sidecar; a sidecar without its bundle is not a bundle)."""
        listing = self.s3.list_objects_v2(Bucket=self.dest)
        keys = sorted(entry["Key"] for entry in listing.get("Contents", []))
        sidecars = set(self.sidecars())
        prefix = self.processor.config.sidecar_prefix
        return [
            read_bundle(
                key,
                self._read(key),
                self._read(sidecar_key(key, prefix))
                if sidecar_key(key, prefix) in sidecars
                else None,
            )
            for key in keys
            if key not in sidecars
        ]

    def _read(self, key: str) -> bytes:
        return self.s3.get_object(Bucket=self.dest, Key=key)["Body"].read()

    def sidecars(self) -> list[str]:
        """Keys of the concat sidecars in the destination bucket."""
        listing = self.s3.list_objects_v2(Bucket=self.dest)
        return sorted(
            entry["Key"]
            for entry in listing.get("Contents", [])
            if entry["Key"].endswith(SIDECAR_SUFFIX)
        )

    def open_multipart_uploads(self) -> list[str]:
        """Keys of multipart uploads still open in the destination bucket."""
        listing = self.s3.list_multipart_uploads(Bucket=self.dest)
        return [upload["Key"] for upload in listing.get("Uploads", [])]


def _build(
    endpoint: str,
    dynamodb_endpoint: str,
    s3: Boto3S3Client,
    make_bucket: Callable[..., str],
    *,
    cls: type[ReusableProcessor] = ReusableProcessor,
    versioned: bool = False,
    allowlist: bool = False,
    retries: bool = True,
    store_class: type[DynamoDBIdempotencyStore] = DynamoDBIdempotencyStore,
    clock: FakeClock | None = None,
    **config: Any,
) -> ProcessorEnv:
    source = make_bucket("source", versioned=versioned)
    dest = make_bucket("dest")
    clock = clock or FakeClock(FUTURE_START)
    processor_s3: Boto3S3Client = (
        no_retry_client(endpoint, max_pool_connections=16)
        if not retries
        else make_client("s3", endpoint, max_pool_connections=16)
    )
    dynamodb: DynamoDBClient = boto3.session.Session(
        aws_access_key_id="testing", aws_secret_access_key="testing", region_name=REGION
    ).client(
        "dynamodb",
        endpoint_url=dynamodb_endpoint,
        config=Config(
            retries={"mode": "standard", "total_max_attempts": 1}, max_pool_connections=16
        ),
    )
    table = f"idem-{uuid.uuid4().hex[:12]}"
    create_idempotency_table(dynamodb, table)
    settings: dict[str, Any] = {
        "distribution_bucket_name": dest,
        "metrics_enabled": False,
        "fetch_concurrency": 4,
        "upload_concurrency": 2,
        "multipart_part_size_mb": 5,
        "timeout_guard_threshold_seconds": 30.0,
        **config,
    }
    if allowlist:
        settings["source_bucket_allowlist"] = frozenset({source})
    app_config = AppConfig(**settings)
    store = store_class(
        table,
        client=dynamodb,
        bundle_locator=S3ManifestBundleLocator.from_config(app_config, client=s3),
        clock=clock,
        max_workers=8,
        max_retries=1,
        backoff_base_seconds=0.001,
        backoff_max_seconds=0.002,
    )
    client = S3Client.from_config(app_config, processor_s3)
    processor = cls(app_config, s3_client=client, store=store, clock=clock)
    return ProcessorEnv(
        endpoint,
        s3,
        processor_s3,
        dynamodb,
        source,
        dest,
        table,
        clock,
        processor,
        store,
        make_bucket,
    )


def env_factory(
    s3_endpoint: str,
    dynamodb_endpoint: str,
    s3_client: Boto3S3Client,
    make_bucket: Callable[..., str],
) -> Iterator[Callable[..., ProcessorEnv]]:
    """Body of each test module's ``make_env`` fixture: a factory of :class:`ProcessorEnv`.

    Keyword arguments: ``cls``, ``versioned``, ``allowlist`` (only the source bucket),
    ``retries``, ``store_class``, ``clock`` (default a `FakeClock` at ``FUTURE_START``) and any
    ``AppConfig`` field. Stores are closed at the end of the test.
    """
    made: list[ProcessorEnv] = []

    def make(**kwargs: Any) -> ProcessorEnv:
        env = _build(s3_endpoint, dynamodb_endpoint, s3_client, make_bucket, **kwargs)
        made.append(env)
        return env

    yield make
    for env in made:
        env.store.close()


class _Raw:
    """Just enough of a urllib3 response for botocore to parse a fake JSON answer."""

    def __init__(self, body: bytes) -> None:
        self._body = body

    def stream(self, **_: Any) -> Iterator[bytes]:
        yield self._body


def dynamodb_error(request: AWSPreparedRequest, status: int, code: str) -> AWSResponse:
    """A fake DynamoDB JSON error answer (``ProvisionedThroughputExceededException`` ...)."""
    body = json.dumps({"__type": f"com.amazonaws.dynamodb.v20120810#{code}", "message": "x"})
    headers = {"content-type": "application/x-amz-json-1.0", "x-amzn-requestid": "INJECTED"}
    return AWSResponse(request.url, status, cast("Any", headers), _Raw(body.encode()))


class Crash(BaseException):
    """The invocation dies here (nothing of the library catches it)."""


class CrashOnComplete(DynamoDBIdempotencyStore):
    """Dies when asked to complete, as if killed between the upload and ``complete``,
    while ``crash`` is set."""

    crash = True

    def complete(
        self, keys: Iterable[str], *, owner: str, bundle_key: str, ttl_seconds: int | None = None
    ) -> dict[str, UpdateResult]:
        if self.crash:
            raise Crash
        return super().complete(keys, owner=owner, bundle_key=bundle_key, ttl_seconds=ttl_seconds)
