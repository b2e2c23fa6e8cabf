"""S3ManifestBundleLocator against moto's S3 over HTTP, and crash recovery end to end."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import logging
import tarfile
import time
from typing import TYPE_CHECKING, Any

import pytest

from data_aggregator.bundle import BundleEngine, BundleSource
from data_aggregator.clients import S3Client
from data_aggregator.exceptions import ConfigurationError
from data_aggregator.idempotency import (
    ClaimStatus,
    DynamoDBIdempotencyStore,
    S3ManifestBundleLocator,
    make_content_key,
    make_idempotency_key,
)
from data_aggregator.testing import FakeClock
from tests.bundle_fakes import FIXED_TIME, MemorySink, MemorySource, etag_of
from tests.clock_support import FUTURE_START
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


def bundle(
    objects: list[dict[str, Any]],
    *,
    manifest: bytes | None = None,
    sha256: str | None = None,
    key: str = "b.tar",
) -> bytes:
    """A hand-built bundle of ``objects`` stored at ``key`` (sound unless ``manifest`` or
    ``sha256`` spoil it)."""
    members = [(f"m{i}", b"payload") for i in range(len(objects))]
    document = {
        "format_version": 1,
        "bundle_key": key,
        "created_at": "2024-01-01T00:00:00Z",
        "members": [
            {
                **o,
                "name": f"m{i}",
                "etag": None,
                "size": 7,
                "sha256": sha256 or hashlib.sha256(b"payload").hexdigest(),
            }
            for i, o in enumerate(objects)
        ],
    }
    body = manifest if manifest is not None else json.dumps(document).encode()
    return tar_bytes([*members, ("manifest.json", body)])


def engine_bundle(
    objects: list[dict[str, Any]], codec: str = "gzip", *, key: str = "b.tar.gz"
) -> bytes:
    """``objects`` bundled by the real ``BundleEngine`` as the processor bundles them, for
    storing at ``key`` (the key its manifest names)."""
    source, sink = MemorySource(), MemorySink()
    sources = []
    for number, o in enumerate(objects):
        data = f"object {number}".encode()
        etag = source.put(o["bucket"], o["key"], data, version_id=o["version_id"])
        sources.append(
            BundleSource(
                o["bucket"],
                o["key"],
                len(data),
                version_id=o["version_id"],
                etag=etag,
                sequencer=o["sequencer"],
                token=number,
            )
        )
    run = BundleEngine(source, sink, codec=codec, clock=FIXED_TIME.timestamp).run(
        sources, bundle_key=lambda _: key
    )
    (summary,) = run.bundles
    return sink.objects[summary.key]


def expected_keys(objects: list[dict[str, Any]]) -> frozenset[str]:
    """What `engine_bundle` members answer: each one's content key (the key the processor
    claims) and its seed key (the key of a record that had no ETag)."""
    seeds = {make_idempotency_key(o["key"], o["version_id"], o["sequencer"]) for o in objects}
    contents = set()
    for number, o in enumerate(objects):
        data = f"object {number}".encode()
        contents.add(make_content_key(o["bucket"], o["key"], etag_of(data), len(data)))
    return frozenset(seeds | contents)


@pytest.fixture
def bucket(make_bucket: Callable[..., str]) -> str:
    """A destination bucket."""
    return make_bucket("dest")


@pytest.mark.parametrize("codec", ["gzip", "zstd", "none"])
def test_reads_the_manifest_of_every_codec(
    s3_client: Boto3S3Client, bucket: str, codec: str
) -> None:
    """The locator lists the processor's idempotency keys of a real gzip, zstd or tar bundle."""
    s3_client.put_object(
        Bucket=bucket, Key="2024/b.tar", Body=engine_bundle(OBJECTS, codec, key="2024/b.tar")
    )
    locator = S3ManifestBundleLocator(bucket, client=s3_client)
    assert locator.bundled_keys("2024/b.tar") == expected_keys(OBJECTS)


def test_a_verified_bundle_is_read_once_a_missing_one_every_time(
    s3_client: Boto3S3Client, bucket: str
) -> None:
    """A stored bundle never changes: the locator remembers a verified one (the
    redelivery of a crashed batch asks about it once per claim chunk); a missing bundle
    is asked again, since a late upload may still land."""
    reads: list[str] = []
    locator = S3ManifestBundleLocator(bucket, client=S3Client(s3_client))

    def count(event_name: str, **_: Any) -> None:
        reads.append(event_name.rsplit(".", 1)[-1])

    locator.client.client.meta.events.register("before-send.s3.GetObject", count)
    s3_client.put_object(Bucket=bucket, Key="b.tar.gz", Body=engine_bundle(OBJECTS))
    for _ in range(3):
        assert locator.bundled_keys("b.tar.gz") == expected_keys(OBJECTS)
    assert reads == ["GetObject"]
    for _ in range(2):
        assert locator.bundled_keys("late.tar.gz") == frozenset()
    assert reads == ["GetObject"] * 3
    s3_client.put_object(
        Bucket=bucket, Key="late.tar.gz", Body=engine_bundle(OBJECTS, key="late.tar.gz")
    )
    assert locator.bundled_keys("late.tar.gz") == expected_keys(OBJECTS)


def test_key_function_sees_each_members_key_version_and_sequencer(
    s3_client: Boto3S3Client, bucket: str
) -> None:
    """A custom ``key_function`` gets each member's exact key, version id and sequencer."""
    s3_client.put_object(Bucket=bucket, Key="b.tar.gz", Body=engine_bundle(OBJECTS))
    locator = S3ManifestBundleLocator(
        bucket, client=S3Client(s3_client), key_function=lambda *fields: repr(fields)
    )
    assert locator.bundled_keys("b.tar.gz") == frozenset(
        repr((o["key"], o["version_id"], o["sequencer"])) for o in OBJECTS
    )


def test_a_boto3_client_is_wrapped_into_an_s3_client(s3_client: Boto3S3Client) -> None:
    """A boto3 client (the old way) is wrapped, with the locator's expected bucket owner."""
    locator = S3ManifestBundleLocator(
        "dest", client=s3_client, expected_bucket_owner="111122223333"
    )
    assert isinstance(locator.client, S3Client)
    assert locator.client.client is s3_client
    assert locator.client.expected_bucket_owner == "111122223333"


def test_an_s3_clients_own_bucket_owner_cannot_be_contradicted(
    s3_client: Boto3S3Client,
) -> None:
    """An ``S3Client`` brings its expected bucket owner; a different one is refused."""
    s3 = S3Client(s3_client, expected_bucket_owner="111122223333")
    assert S3ManifestBundleLocator("dest", client=s3).client is s3
    with pytest.raises(ConfigurationError):
        S3ManifestBundleLocator("dest", client=s3, expected_bucket_owner="444455556666")


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
        gzip.compress(bundle(OBJECTS, sha256="0" * 64)),
    ],
    ids=["garbage", "no-manifest", "bad-json", "bad-shape", "truncated", "member-mismatch"],
)
def test_unreadable_bundle_cannot_tell(s3_client: Boto3S3Client, bucket: str, body: bytes) -> None:
    """An unreadable bundle, or one that fails its checks, answers None: never a guess."""
    s3_client.put_object(Bucket=bucket, Key="bad.tar.gz", Body=body)
    locator = S3ManifestBundleLocator(bucket, client=s3_client)
    assert locator.bundled_keys("bad.tar.gz") is None


def test_a_bundle_whose_manifest_names_another_bundle_cannot_tell(
    s3_client: Boto3S3Client, bucket: str
) -> None:
    """A sound bundle stored under a key its manifest does not name (e.g. a concat bundle
    read as tar whose first source is itself a bundle) answers None: its members are not
    this bundle's."""
    body = gzip.compress(bundle(OBJECTS, key="elsewhere.tar.gz"))
    s3_client.put_object(Bucket=bucket, Key="good.tar.gz", Body=body)
    locator = S3ManifestBundleLocator(bucket, client=s3_client)
    assert locator.bundled_keys("good.tar.gz") is None


def test_a_sound_handmade_bundle_is_read(s3_client: Boto3S3Client, bucket: str) -> None:
    """The spoiled bundles above fail for their damage alone: the same bundle, sound, reads."""
    s3_client.put_object(
        Bucket=bucket, Key="good.tar.gz", Body=gzip.compress(bundle(OBJECTS, key="good.tar.gz"))
    )
    locator = S3ManifestBundleLocator(bucket, client=s3_client)
    # Its manifest has no ETags: each member answers with its seed key alone.
    assert locator.bundled_keys("good.tar.gz") == frozenset(
        make_idempotency_key(o["key"], o["version_id"], o["sequencer"]) for o in OBJECTS
    )


def test_unreachable_bucket_cannot_tell(
    s3_client: Boto3S3Client, caplog: pytest.LogCaptureFixture
) -> None:
    """An S3 error other than a missing key answers None, logged with its typed code."""
    locator = S3ManifestBundleLocator("no-such-bucket-xyz", client=s3_client)
    with caplog.at_level(logging.WARNING, logger="data_aggregator.idempotency"):
        assert locator.bundled_keys("b.tar.gz") is None
    (logged,) = [r for r in caplog.records if r.getMessage() == "cannot read bundle"]
    assert logged.__dict__["error_code"] == "S3_NO_SUCH_BUCKET"
    assert logged.__dict__["aws_error_code"] == "NoSuchBucket"


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
    store.claim(
        keys, owner="dead", lease_expires_at=clock() + 70, bundle_key="2024/bundle-dead-1.tar.gz"
    )
    s3_client.put_object(
        Bucket=bucket,
        Key="2024/bundle-dead-1.tar.gz",
        Body=engine_bundle(OBJECTS, key="2024/bundle-dead-1.tar.gz"),
    )
    # ... and the invocation dies before complete().
    clock.advance(70)
    results = store.claim(keys, owner="next", lease_expires_at=time.time() + 70)
    assert {r.status for r in results.values()} == {ClaimStatus.RECOVERED}
    assert {r.bundle_key for r in results.values()} == {"2024/bundle-dead-1.tar.gz"}
