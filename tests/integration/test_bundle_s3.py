"""The bundle engine against moto's S3 server over HTTP, with the real client and writer."""

from __future__ import annotations

import io
import tarfile
import threading
import unicodedata
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

import pytest

from data_aggregator.bundle import (
    BundleEngine,
    BundleSource,
    MultipartSink,
    ObjectSource,
    OutcomeStatus,
    StopReason,
    read_bundle_manifest,
    verify_bundle,
)
from data_aggregator.bundle._codecs import open_decompressed
from data_aggregator.clients import MIN_PART_SIZE, S3Client
from tests.integration._s3_hooks import error_response, inject, part_number
from tests.integration.conftest import seed_objects

if TYPE_CHECKING:
    from collections.abc import Callable

    from botocore.awsrequest import AWSPreparedRequest, AWSResponse
    from mypy_boto3_s3 import S3Client as Boto3S3Client

    from data_aggregator.bundle import BundleRun
    from data_aggregator.testing.pytest_plugin import AwsBackend

pytestmark = pytest.mark.integration


def _engine(s3: Boto3S3Client, dest: str, **kwargs: Any) -> BundleEngine:
    client = S3Client(s3)
    source: ObjectSource = client  # the real client satisfies the protocol
    sink = MultipartSink(client, dest, part_size=MIN_PART_SIZE, max_concurrency=2)
    return BundleEngine(source, sink, **kwargs)


def _put_many(s3: Boto3S3Client, bucket: str, objects: dict[str, bytes]) -> dict[str, str]:
    """Upload ``objects`` in parallel; return their ETags (without quotes)."""

    def put(item: tuple[str, bytes]) -> tuple[str, str]:
        response = s3.put_object(Bucket=bucket, Key=item[0], Body=item[1])
        return item[0], response["ETag"].strip('"')

    with ThreadPoolExecutor(16) as pool:
        return dict(pool.map(put, objects.items()))


def _sources(
    bucket: str, objects: dict[str, bytes], etags: dict[str, str] | None = None
) -> list[BundleSource]:
    return [
        BundleSource(bucket, key, len(data), etag=(etags or {}).get(key), token=f"{bucket}/{key}")
        for key, data in objects.items()
    ]


def _bundles(s3: Boto3S3Client, dest: str, run: BundleRun) -> dict[str, bytes]:
    return {
        summary.key: s3.get_object(Bucket=dest, Key=summary.key)["Body"].read()
        for summary in run.bundles
    }


def _members(data: bytes) -> dict[str, bytes]:
    """Every member of a bundle by name, read back with ``tarfile``."""
    out: dict[str, bytes] = {}
    with tarfile.open(fileobj=io.BytesIO(data)) as archive:
        for info in archive:
            handle = archive.extractfile(info)
            assert handle is not None
            out[info.name] = handle.read()
    return out


def _no_uploads_left(s3: Boto3S3Client, dest: str) -> bool:
    return not s3.list_multipart_uploads(Bucket=dest).get("Uploads")


def test_no_sources_uploads_nothing(
    s3_client: Boto3S3Client, make_bucket: Callable[..., str]
) -> None:
    """A run with no objects uploads no bundle at all."""
    dest = make_bucket("dest")
    run = _engine(s3_client, dest).run([])
    assert run.outcomes == ()
    assert run.bundles == ()
    assert s3_client.list_objects_v2(Bucket=dest).get("KeyCount") == 0


def test_one_object_round_trip(s3_client: Boto3S3Client, make_bucket: Callable[..., str]) -> None:
    """One object becomes a verified bundle whose SHA-256 metadata matches its bytes."""
    src, dest = make_bucket("src"), make_bucket("dest")
    objects = {"logs/2024/a b+c.json": b'{"x": 1}'}
    etags = _put_many(s3_client, src, objects)
    run = _engine(s3_client, dest).run(
        _sources(src, objects, etags), bundle_key=lambda n: f"out/b-{n}.tar.gz"
    )
    (outcome,) = run.outcomes
    assert outcome.status is OutcomeStatus.BUNDLED
    assert outcome.bundle_key == "out/b-1.tar.gz"
    assert outcome.member_name == "logs/2024/a b+c.json"
    assert outcome.token == f"{src}/logs/2024/a b+c.json"
    data = _bundles(s3_client, dest, run)["out/b-1.tar.gz"]
    manifest = verify_bundle(io.BytesIO(data))
    assert manifest.members[0].key == "logs/2024/a b+c.json"
    assert manifest.members[0].etag == etags["logs/2024/a b+c.json"]
    assert _members(data)["logs/2024/a b+c.json"] == b'{"x": 1}'
    head = s3_client.head_object(Bucket=dest, Key="out/b-1.tar.gz")
    assert head["Metadata"]["content-sha256"] == run.bundles[0].receipt.sha256
    assert head["Metadata"]["aggregator-format"] == "tar"
    assert head["ContentType"] == "application/gzip"


def test_a_multipart_concat_bundle_describes_itself(
    s3_client: Boto3S3Client, make_bucket: Callable[..., str]
) -> None:
    """A concat bundle uploaded in parts carries its format and sidecar key (beside the
    sink's own ``Metadata``) from ``CreateMultipartUpload``; a reader configured for tar
    without a prefix reads it through them."""
    src, dest = make_bucket("src"), make_bucket("dest")
    line = b"x" * 1023 + b"\n"
    objects = {f"big/{i}.log": line * 3 * 1024 for i in range(2)}  # 3 MiB each
    etags = _put_many(s3_client, src, objects)
    client = S3Client(s3_client)
    sink = MultipartSink(
        client, dest, extra_args={"Metadata": {"team": "data"}}, part_size=MIN_PART_SIZE
    )
    engine = BundleEngine(
        client, sink, codec="none", bundle_format="concat", sidecar_prefix="manifests"
    )
    run = engine.run(_sources(src, objects, etags), bundle_key=lambda n: f"out/b-{n}.log")
    assert run.counts()[OutcomeStatus.BUNDLED] == 2
    assert run.bundles[0].receipt.size > MIN_PART_SIZE
    head = s3_client.head_object(Bucket=dest, Key="out/b-1.log")
    assert head["Metadata"] == {
        "team": "data",
        "aggregator-format": "concat",
        "aggregator-sidecar": "manifests/out/b-1.log.manifest.json",
    }
    manifest = read_bundle_manifest(client, dest, "out/b-1.log")
    assert [m.key for m in manifest.members] == list(objects)


def test_five_thousand_small_objects(
    s3_client: Boto3S3Client, make_bucket: Callable[..., str], aws_backend: AwsBackend
) -> None:
    """5,000 tiny objects (zero-byte ones included) land in one bundle, in input order."""
    src, dest = make_bucket("src"), make_bucket("dest")
    objects = {f"d{i % 7}/obj-{i:05d}.txt": b"x" * (i % 5) for i in range(5000)}
    seed_objects(aws_backend, s3_client, src, objects)
    run = _engine(s3_client, dest, fetch_concurrency=32).run(_sources(src, objects))
    assert run.counts()[OutcomeStatus.BUNDLED] == 5000
    (data,) = _bundles(s3_client, dest, run).values()
    manifest = verify_bundle(io.BytesIO(data))
    assert [m.key for m in manifest.members] == list(objects)
    assert _members(data) == {**objects, "manifest.json": _members(data)["manifest.json"]}


def test_collisions_of_every_kind(
    s3_client: Boto3S3Client, make_bucket: Callable[..., str]
) -> None:
    """Two versions, two buckets, NFC/NFD twins and a source ``manifest.json`` all survive."""
    src = make_bucket("src", versioned=True)
    other, dest = make_bucket("other"), make_bucket("dest")
    v1 = s3_client.put_object(Bucket=src, Key="a.txt", Body=b"version one")["VersionId"]
    v2 = s3_client.put_object(Bucket=src, Key="a.txt", Body=b"version two!")["VersionId"]
    s3_client.put_object(Bucket=other, Key="a.txt", Body=b"other bucket")
    nfc, nfd = unicodedata.normalize("NFC", "café.txt"), unicodedata.normalize("NFD", "café.txt")
    s3_client.put_object(Bucket=src, Key=nfc, Body=b"nfc")
    s3_client.put_object(Bucket=src, Key=nfd, Body=b"nfd")
    s3_client.put_object(Bucket=src, Key="manifest.json", Body=b"not the manifest")
    sources = [
        BundleSource(src, "a.txt", 11, version_id=v1),
        BundleSource(src, "a.txt", 12, version_id=v2),
        BundleSource(other, "a.txt", 12),
        BundleSource(src, nfc, 3),
        BundleSource(src, nfd, 3),
        BundleSource(src, "manifest.json", 16),
    ]
    run = _engine(s3_client, dest).run(sources)
    assert all(o.status is OutcomeStatus.BUNDLED for o in run.outcomes)
    (data,) = _bundles(s3_client, dest, run).values()
    members = _members(data)
    names = [o.member_name for o in run.outcomes]
    assert len(set(names)) == 6
    assert "manifest.json" not in names
    expected = [b"version one", b"version two!", b"other bucket", b"nfc", b"nfd"]
    assert [members[str(n)] for n in names] == [*expected, b"not the manifest"]
    manifest = verify_bundle(io.BytesIO(data))
    assert [(m.bucket, m.key, m.version_id) for m in manifest.members] == [
        (s.bucket, s.key, s.version_id) for s in sources
    ]


@pytest.mark.parametrize("codec", ["gzip", "zstd", "none"])
def test_codec_round_trip(
    s3_client: Boto3S3Client, make_bucket: Callable[..., str], codec: str
) -> None:
    """Each codec's bundle reads back to the original bytes and carries its extension."""
    if codec == "zstd":
        pytest.importorskip("zstandard", reason="needs the s3-data-aggregator[zstd] extra")
    src, dest = make_bucket("src"), make_bucket("dest")
    objects = {f"k{i}.bin": bytes([i]) * (i * 100) for i in range(20)}
    _put_many(s3_client, src, objects)
    engine = _engine(s3_client, dest, codec=codec)
    run = engine.run(_sources(src, objects))
    (key, data) = next(iter(_bundles(s3_client, dest, run).items()))
    assert key.endswith(engine.extension)
    manifest = verify_bundle(io.BytesIO(data), codec)
    assert len(manifest.members) == 20
    members = _members(open_decompressed(io.BytesIO(data), codec).read())
    assert all(members[k] == v for k, v in objects.items())


def test_rollover_makes_several_bundles(
    s3_client: Boto3S3Client, make_bucket: Callable[..., str]
) -> None:
    """A small size limit splits the run; every object is in exactly one bundle."""
    src, dest = make_bucket("src"), make_bucket("dest")
    objects = {f"f{i:03d}": bytes([i % 251]) * 3000 for i in range(60)}
    _put_many(s3_client, src, objects)
    limit = 64 * 1024
    run = _engine(s3_client, dest, max_bundle_size_bytes=limit).run(_sources(src, objects))
    assert len(run.bundles) > 2
    seen: list[str] = []
    for key, data in _bundles(s3_client, dest, run).items():
        manifest = verify_bundle(io.BytesIO(data))
        assert manifest.bundle_key == key
        members = _members(data)
        for member in manifest.members:
            assert members[member.name] == objects[member.key]
        seen.extend(m.key for m in manifest.members)
    assert sorted(seen) == sorted(objects)
    assert all(s.tar_size <= limit for s in run.bundles)
    assert [s.number for s in run.bundles] == list(range(1, len(run.bundles) + 1))


def test_missing_overwritten_and_wrong_size(
    s3_client: Boto3S3Client, make_bucket: Callable[..., str]
) -> None:
    """Deleted, overwritten and wrong-size objects get their outcome; the rest is bundled."""
    src, dest = make_bucket("src"), make_bucket("dest")
    objects = {"ok": b"fine", "gone": b"deleted soon", "changed": b"old", "size": b"12345"}
    etags = _put_many(s3_client, src, objects)
    s3_client.delete_object(Bucket=src, Key="gone")
    s3_client.put_object(Bucket=src, Key="changed", Body=b"new body")
    sources = _sources(src, objects, etags)
    sources[3] = BundleSource(src, "size", 99, etag=etags["size"])  # event size is wrong
    run = _engine(s3_client, dest).run(sources)
    statuses = [o.status for o in run.outcomes]
    assert statuses == [
        OutcomeStatus.BUNDLED,
        OutcomeStatus.NOT_FOUND,
        OutcomeStatus.SUPERSEDED,
        OutcomeStatus.REFUSED,
    ]
    assert run.outcomes[3].error is not None
    assert run.outcomes[3].error.error_code == "SIZE_MISMATCH"
    (data,) = _bundles(s3_client, dest, run).values()
    assert [m.key for m in verify_bundle(io.BytesIO(data)).members] == ["ok"]


def test_size_mismatch_without_etag_is_superseded(
    s3_client: Boto3S3Client, make_bucket: Callable[..., str]
) -> None:
    """With nothing pinning the object, a different size means it was overwritten."""
    src, dest = make_bucket("src"), make_bucket("dest")
    s3_client.put_object(Bucket=src, Key="k", Body=b"now longer than announced")
    run = _engine(s3_client, dest).run([BundleSource(src, "k", 3)])
    assert run.outcomes[0].status is OutcomeStatus.SUPERSEDED
    assert run.bundles == ()


def test_throttling_and_server_errors_fail_only_those_objects(
    s3_client: Boto3S3Client, make_bucket: Callable[..., str]
) -> None:
    """GETs answered 503 SlowDown or 500 are failed-retryable; the others are bundled."""
    src, dest = make_bucket("src"), make_bucket("dest")
    objects = {f"k{i:02d}": f"body {i}".encode() for i in range(30)}
    _put_many(s3_client, src, objects)
    throttled, broken = {"k03", "k17"}, {"k08", "k29"}

    def fault(request: AWSPreparedRequest) -> AWSResponse | None:
        key = request.url.split("?")[0].rsplit("/", 1)[-1]
        if key in throttled:
            return error_response(request, 503, "SlowDown")
        if key in broken:
            return error_response(request, 500, "InternalError")
        return None

    inject(s3_client, "GetObject", fault)
    run = _engine(s3_client, dest).run(_sources(src, objects))
    failed = {o.source.key for o in run.with_status(OutcomeStatus.FAILED_RETRYABLE)}
    assert failed == throttled | broken
    assert run.counts()[OutcomeStatus.BUNDLED] == 26
    for outcome in run.with_status(OutcomeStatus.FAILED_RETRYABLE):
        assert outcome.error is not None
        assert outcome.error.retryable


def test_upload_failure_leaves_nothing_behind(
    s3_client: Boto3S3Client, make_bucket: Callable[..., str]
) -> None:
    """A part upload failing mid-stream aborts the upload; no object counts as bundled."""
    src, dest = make_bucket("src"), make_bucket("dest")
    objects = {f"big{i}": bytes(range(256)) * (12 * 1024) for i in range(5)}  # 3 MiB each
    _put_many(s3_client, src, objects)

    def fault(request: AWSPreparedRequest) -> AWSResponse | None:
        if part_number(request) == 2:
            return error_response(request, 400, "InvalidRequest")
        return None

    inject(s3_client, "UploadPart", fault)
    run = _engine(s3_client, dest, codec="none").run(_sources(src, objects))
    assert run.stop_reason is StopReason.UPLOAD_FAILED
    assert not any(o.bundled for o in run.outcomes)
    assert run.counts()[OutcomeStatus.FAILED_RETRYABLE] >= 1
    assert run.bundles == ()
    assert _no_uploads_left(s3_client, dest)
    assert s3_client.list_objects_v2(Bucket=dest).get("KeyCount") == 0


def test_should_continue_false_midway(
    s3_client: Boto3S3Client, make_bucket: Callable[..., str]
) -> None:
    """When the guard says stop, the rest is not attempted and the bundle is still uploaded."""
    src, dest = make_bucket("src"), make_bucket("dest")
    objects = {f"k{i:02d}": b"data" for i in range(20)}
    _put_many(s3_client, src, objects)
    calls = 0
    lock = threading.Lock()

    def guard() -> bool:
        nonlocal calls
        with lock:
            calls += 1
            return calls <= 7

    run = _engine(s3_client, dest).run(_sources(src, objects), should_continue=guard)
    statuses = [o.status for o in run.outcomes]
    # The engine also asks while it waits for a fetch, so how many of the 7 "yes" answers
    # go to objects depends on timing: a prefix is bundled, the rest is not attempted.
    bundled = statuses.count(OutcomeStatus.BUNDLED)
    assert 1 <= bundled <= 7, statuses
    assert statuses == [OutcomeStatus.BUNDLED] * bundled + [OutcomeStatus.NOT_ATTEMPTED] * (
        20 - bundled
    )
    assert run.stop_reason is StopReason.CALLER
    (data,) = _bundles(s3_client, dest, run).values()
    assert len(verify_bundle(io.BytesIO(data)).members) == bundled
