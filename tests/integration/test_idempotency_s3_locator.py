"""S3ManifestBundleLocator against moto's S3 over HTTP, and crash recovery end to end."""

from __future__ import annotations

import gzip
import io
import json
import tarfile
import time
from typing import TYPE_CHECKING, Any

import pytest
import zstandard

from data_aggregator.idempotency import (
    ClaimStatus,
    DynamoDBIdempotencyStore,
    S3ManifestBundleLocator,
    make_idempotency_key,
)
from tests.idempotency_support import FUTURE_START, FakeClock
from tests.integration._dynamodb_support import ddb_client, new_table

if TYPE_CHECKING:
    from collections.abc import Callable

    from mypy_boto3_s3 import S3Client as Boto3S3Client

OBJECTS: list[dict[str, Any]] = [
    {"bucket": "src", "key": "logs/a b.txt", "version_id": None, "sequencer": "0A"},
    {"bucket": "src", "key": "logs/é.txt", "version_id": "v-123", "sequencer": "0B"},
]


def tar_bytes(members: list[tuple[str, bytes]]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as archive:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def bundle(objects: list[dict[str, Any]], *, manifest: bytes | None = None) -> bytes:
    members = [(f"m{i}", b"payload") for i in range(len(objects))]
    document = {
        "format_version": 1,
        "bundle_key": "b",
        "created_at": "2024-01-01T00:00:00Z",
        "members": [
            {**o, "name": f"m{i}", "etag": None, "size": 7, "sha256": "0" * 64}
            for i, o in enumerate(objects)
        ],
    }
    body = manifest if manifest is not None else json.dumps(document).encode()
    return tar_bytes([*members, ("manifest.json", body)])


def expected_keys(objects: list[dict[str, Any]]) -> frozenset[str]:
    return frozenset(
        make_idempotency_key(o["key"], o["version_id"], o["sequencer"]) for o in objects
    )


@pytest.fixture
def bucket(make_bucket: Callable[..., str]) -> str:
    """A destination bucket."""
    return make_bucket("dest")


@pytest.mark.parametrize(
    "encode",
    [gzip.compress, lambda raw: zstandard.ZstdCompressor().compress(raw), lambda raw: raw],
    ids=["gzip", "zstd", "none"],
)
def test_reads_the_manifest_of_every_codec(
    s3_client: Boto3S3Client, bucket: str, encode: Callable[[bytes], bytes]
) -> None:
    """The locator lists the idempotency keys of a gzip, zstd or plain tar bundle."""
    s3_client.put_object(Bucket=bucket, Key="2024/b.tar", Body=encode(bundle(OBJECTS)))
    locator = S3ManifestBundleLocator(bucket, client=s3_client)
    assert locator.bundled_keys("2024/b.tar") == expected_keys(OBJECTS)


def test_explicit_idempotency_key_in_the_manifest_wins(
    s3_client: Boto3S3Client, bucket: str
) -> None:
    """A member's own idempotency_key field is used as is."""
    objects = [{**OBJECTS[0], "idempotency_key": "custom-key"}]
    s3_client.put_object(Bucket=bucket, Key="b.tar.gz", Body=gzip.compress(bundle(objects)))
    locator = S3ManifestBundleLocator(bucket, client=s3_client)
    assert locator.bundled_keys("b.tar.gz") == frozenset({"custom-key"})


def test_missing_bundle_holds_nothing(s3_client: Boto3S3Client, bucket: str) -> None:
    """A bundle whose upload never completed definitely holds nothing."""
    locator = S3ManifestBundleLocator(bucket, client=s3_client)
    assert locator.bundled_keys("never-uploaded.tar.gz") == frozenset()


@pytest.mark.parametrize(
    "body",
    [
        b"not a tar at all" * 100,
        gzip.compress(tar_bytes([("m0", b"x")])),
        gzip.compress(bundle(OBJECTS, manifest=b"{not json")),
        gzip.compress(bundle(OBJECTS, manifest=b'{"members": [{"nokey": 1}]}')),
        gzip.compress(bundle(OBJECTS))[:-40],
    ],
    ids=["garbage", "no-manifest", "bad-json", "bad-shape", "truncated"],
)
def test_unreadable_bundle_cannot_tell(s3_client: Boto3S3Client, bucket: str, body: bytes) -> None:
    """An unreadable bundle or manifest answers None (unknown), never a guess."""
    s3_client.put_object(Bucket=bucket, Key="bad.tar.gz", Body=body)
    locator = S3ManifestBundleLocator(bucket, client=s3_client)
    assert locator.bundled_keys("bad.tar.gz") is None


def test_unreachable_bucket_cannot_tell(s3_client: Boto3S3Client) -> None:
    """An S3 error other than a missing key answers None."""
    locator = S3ManifestBundleLocator("no-such-bucket-xyz", client=s3_client)
    assert locator.bundled_keys("b.tar.gz") is None


def test_crash_after_upload_is_recovered_from_the_real_bundle(
    s3_client: Boto3S3Client, bucket: str, dynamodb_endpoint: str
) -> None:
    """A dead invocation's uploaded bundle is read from S3 and its records completed."""
    client = ddb_client(dynamodb_endpoint)
    table = new_table(client)
    clock = FakeClock(FUTURE_START)
    locator = S3ManifestBundleLocator(bucket, client=s3_client)
    store = DynamoDBIdempotencyStore(table, client=client, clock=clock, bundle_locator=locator)
    keys = sorted(expected_keys(OBJECTS))
    store.claim(keys, owner="dead", lease_expires_at=clock() + 70)
    store.mark_pending(keys, owner="dead", bundle_key="2024/bundle-dead-1.tar.gz")
    s3_client.put_object(
        Bucket=bucket, Key="2024/bundle-dead-1.tar.gz", Body=gzip.compress(bundle(OBJECTS))
    )
    # ... and the invocation dies before complete().
    clock.advance(70)
    results = store.claim(keys, owner="next", lease_expires_at=time.time() + 70)
    assert {r.status for r in results.values()} == {ClaimStatus.RECOVERED}
    assert {r.bundle_key for r in results.values()} == {"2024/bundle-dead-1.tar.gz"}
