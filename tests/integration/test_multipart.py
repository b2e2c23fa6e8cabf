"""MultipartWriter against moto's server over HTTP: parts, checksums, bounds, aborts."""

from __future__ import annotations

import gc
import hashlib
import io
import os
import tarfile
import tempfile
import threading
from typing import TYPE_CHECKING, Any

import pytest

from data_aggregator.clients import (
    CONTENT_SHA256,
    MIB,
    MIN_PART_SIZE,
    MultipartWriter,
    S3Client,
    WriterOptions,
    WriterState,
    _part_uploads,
)
from data_aggregator.exceptions import (
    S3AccessDeniedError,
    S3ObjectNotFoundError,
    S3ServiceError,
    ValidationError,
)
from tests.integration._s3_hooks import (
    Concurrency,
    RequestLog,
    error_response,
    inject,
    no_retry_client,
    part_number,
)

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from botocore.awsrequest import AWSPreparedRequest, AWSResponse
    from mypy_boto3_s3 import S3Client as Boto3S3Client

pytestmark = pytest.mark.integration

PART = MIN_PART_SIZE  # 5 MiB: the smallest part S3 (and moto) accept
#: The writers of these tests: small parts, three in flight.
SMALL_PARTS: WriterOptions = {"part_size": PART, "max_concurrency": 3}
_BLOCKS = [os.urandom(MIB) for _ in range(7)]


def stream(size: int, chunk: int = 256 * 1024) -> Iterator[bytes]:
    """Cheap incompressible test data: random 1 MiB blocks repeated, cut into chunks."""
    data = b"".join(_BLOCKS)
    produced = 0
    offset = 0
    while produced < size:
        take = min(chunk, size - produced, len(data) - offset)
        yield data[offset : offset + take]
        produced += take
        offset = (offset + take) % len(data)


def digest_of(size: int) -> str:
    """SHA-256 of ``stream(size)``."""
    hasher = hashlib.sha256()
    for piece in stream(size):
        hasher.update(piece)
    return hasher.hexdigest()


def read_back_sha256(s3: S3Client, bucket: str, key: str) -> tuple[str, int]:
    """Stream an object back and return its SHA-256 and size."""
    hasher = hashlib.sha256()
    with s3.open_object(bucket, key) as obj:
        while chunk := obj.body.read(4 * MIB):
            hasher.update(chunk)
        return hasher.hexdigest(), obj.body.bytes_read


def uploads_left(boto: Boto3S3Client, bucket: str) -> list[Any]:
    """Multipart uploads still open in ``bucket``."""
    return list(boto.list_multipart_uploads(Bucket=bucket).get("Uploads", []))


def assert_absent(s3: S3Client, bucket: str, key: str) -> None:
    """The object was never created."""
    with pytest.raises(S3ObjectNotFoundError):
        s3.head_object(bucket, key)


@pytest.fixture
def boto(s3_endpoint: str) -> Boto3S3Client:
    """A raw boto3 client without retries (injected faults surface on the first attempt)."""
    return no_retry_client(s3_endpoint, max_pool_connections=20)


@pytest.fixture
def s3(boto: Boto3S3Client) -> S3Client:
    """The library's client over the raw client."""
    return S3Client(boto)


@pytest.fixture
def bucket(make_bucket: Callable[..., str]) -> str:
    """A fresh bucket."""
    return make_bucket("mpu")


class CountingSpool(tempfile.SpooledTemporaryFile):  # type: ignore[type-arg]
    """A SpooledTemporaryFile that counts how many are alive at once (and spills)."""

    lock = threading.Lock()
    alive = 0
    peak = 0
    rolled = 0

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        with CountingSpool.lock:
            CountingSpool.alive += 1
            CountingSpool.peak = max(CountingSpool.peak, CountingSpool.alive)
        self._counted = True

    def close(self) -> None:
        with CountingSpool.lock:
            if self._counted:
                self._counted = False
                CountingSpool.alive -= 1
                CountingSpool.rolled += bool(getattr(self, "_rolled", False))
        super().close()


@pytest.fixture
def spools(monkeypatch: pytest.MonkeyPatch) -> type[CountingSpool]:
    """Count the writer's part buffers independently of its own statistics."""
    CountingSpool.alive = CountingSpool.peak = CountingSpool.rolled = 0
    monkeypatch.setattr(_part_uploads, "SpooledTemporaryFile", CountingSpool)
    return CountingSpool


# --------------------------------------------------------------------------- single PUT


def test_zero_bytes_is_one_put_object(s3: S3Client, boto: Boto3S3Client, bucket: str) -> None:
    """An empty stream is sent as one PutObject carrying SHA-256 metadata and checksum."""
    log = RequestLog().attach(boto)
    with MultipartWriter(s3, bucket, "empty", **SMALL_PARTS) as writer:
        pass
    result = writer.result
    assert result is not None
    assert log.operations() == ["PutObject"]
    empty = hashlib.sha256(b"")
    assert (result.size, result.parts, result.multipart) == (0, 1, False)
    assert result.sha256 == empty.hexdigest()
    info = s3.head_object(bucket, "empty", checksum_mode=True)
    assert info.content_length == 0
    assert info.metadata[CONTENT_SHA256] == empty.hexdigest()
    assert info.checksum_sha256 == result.checksum_sha256
    assert log.of("PutObject")[0].headers["x-amz-checksum-sha256"] == result.checksum_sha256


def test_small_stream_is_one_put_object(s3: S3Client, boto: Boto3S3Client, bucket: str) -> None:
    """A stream within one part, written in pieces, is one PutObject that reads back intact."""
    log = RequestLog().attach(boto)
    size = 3 * MIB + 17
    with MultipartWriter(
        s3, bucket, "small", **SMALL_PARTS, extra_args={"ContentType": "x/y"}
    ) as writer:
        for piece in stream(size, chunk=100_003):
            writer.write(piece)
        assert writer.tell() == size
    result = writer.finish()
    assert log.operations() == ["PutObject"]
    assert result.sha256 == digest_of(size)
    assert read_back_sha256(s3, bucket, "small") == (result.sha256, size)
    assert s3.head_object(bucket, "small").content_type == "x/y"
    assert s3.get_content_sha256(bucket, "small") == result.sha256


def test_exactly_one_full_part_is_still_one_put_object(
    s3: S3Client, boto: Boto3S3Client, bucket: str
) -> None:
    """A stream of exactly one part size does not open a multipart upload."""
    log = RequestLog().attach(boto)
    with MultipartWriter(s3, bucket, "one", **SMALL_PARTS) as writer:
        for piece in stream(PART):
            writer.write(piece)
    assert log.operations() == ["PutObject"]
    assert writer.finish().size == PART


# --------------------------------------------------------------------------- multipart


def test_multipart_stream_uploads_parts_concurrently(
    s3: S3Client, boto: Boto3S3Client, bucket: str
) -> None:
    """Six parts go up three at a time with SHA-256 checksums; the object reads back intact."""
    log = RequestLog().attach(boto)
    in_flight = Concurrency().attach(boto, "UploadPart", delay=0.15)
    size = 5 * PART + MIB // 2
    with MultipartWriter(s3, bucket, "multi", **SMALL_PARTS) as writer:
        for piece in stream(size, chunk=MIB + 7):
            writer.write(piece)
    result = writer.finish()
    assert (result.size, result.parts, result.multipart) == (size, 6, True)
    assert in_flight.peak == 3
    assert writer.stats.peak_parts_in_flight == 3
    assert result.sha256 == digest_of(size)
    assert read_back_sha256(s3, bucket, "multi") == (result.sha256, size)
    assert result.etag.endswith("-6")
    # Per-part checksums were sent, and S3's composite checksum matches ours.
    (create,) = log.of("CreateMultipartUpload")
    assert create.headers["x-amz-checksum-algorithm"] == "SHA256"
    parts = log.of("UploadPart")
    assert len(parts) == 6
    assert all("x-amz-checksum-sha256" in p.headers for p in parts)
    stored = s3.head_object(bucket, "multi", checksum_mode=True).checksum_sha256
    assert stored is not None
    assert stored.split("-")[0] == result.checksum_sha256.split("-")[0]
    # The whole-stream SHA-256 is a tag (metadata was fixed before the hash was known).
    assert result.sha256_tagged
    assert s3.get_object_tags(bucket, "multi") == {CONTENT_SHA256: result.sha256}
    assert s3.get_content_sha256(bucket, "multi") == result.sha256
    assert uploads_left(boto, bucket) == []


def test_writer_blocks_instead_of_buffering(
    s3: S3Client, boto: Boto3S3Client, bucket: str, spools: type[CountingSpool]
) -> None:
    """With slow uploads, at most concurrency + 1 part buffers ever exist at once."""
    in_flight = Concurrency().attach(boto, "UploadPart", delay=0.2)
    with MultipartWriter(s3, bucket, "bounded", part_size=PART, max_concurrency=2) as writer:
        for piece in stream(10 * PART, chunk=2 * MIB):
            writer.write(piece)
    stats = writer.stats
    assert stats.parts_started == stats.parts_uploaded == 10
    assert in_flight.peak == 2
    assert stats.peak_parts_in_flight == 2
    assert stats.peak_parts_buffered <= 3
    assert spools.peak <= 3
    assert spools.alive == 0


def test_parts_spill_to_disk_above_the_spool_threshold(
    s3: S3Client, bucket: str, spools: type[CountingSpool], tmp_path: Any
) -> None:
    """Part buffers larger than spool_max_size roll over to disk and still upload intact."""
    size = 2 * PART + 1
    with MultipartWriter(
        s3, bucket, "spilled", part_size=PART, spool_max_size=MIB, spool_dir=str(tmp_path)
    ) as writer:
        for piece in stream(size):
            writer.write(piece)
    assert spools.rolled == 2  # two full parts spilled; the 1-byte last part did not
    assert read_back_sha256(s3, bucket, "spilled") == (writer.finish().sha256, size)


def test_user_metadata_and_tags_are_kept(s3: S3Client, bucket: str) -> None:
    """User Metadata and Tagging survive; the SHA-256 tag is added beside the user's tags."""
    extra = {"Metadata": {"origin": "test"}, "Tagging": "team=data&kind=bundle"}
    with MultipartWriter(s3, bucket, "tagged", **SMALL_PARTS, extra_args=extra) as writer:
        for piece in stream(PART + 1):
            writer.write(piece)
    result = writer.finish()
    assert s3.head_object(bucket, "tagged").metadata == {"origin": "test"}
    assert s3.get_object_tags(bucket, "tagged") == {
        "team": "data",
        "kind": "bundle",
        CONTENT_SHA256: result.sha256,
    }


def test_owner_and_kms_apply_to_every_multipart_request(
    boto: Boto3S3Client, bucket: str, kms_key_id: str
) -> None:
    """ExpectedBucketOwner is on every request; SSE-KMS is set on CreateMultipartUpload."""
    key_id = kms_key_id
    s3 = S3Client(
        boto,
        expected_bucket_owner="123456789012",
        kms_key_id=key_id,
    )
    log = RequestLog().attach(boto)
    with MultipartWriter(s3, bucket, "kms", **SMALL_PARTS) as writer:
        for piece in stream(PART + 1):
            writer.write(piece)
    assert log.operations()[0] == "CreateMultipartUpload"
    assert set(log.operations()) == {
        "CreateMultipartUpload",
        "UploadPart",
        "CompleteMultipartUpload",
        "PutObjectTagging",
    }
    assert all(s.headers["x-amz-expected-bucket-owner"] == "123456789012" for s in log.sent)
    (create,) = log.of("CreateMultipartUpload")
    assert create.headers["x-amz-server-side-encryption"] == "aws:kms"
    assert create.headers["x-amz-server-side-encryption-aws-kms-key-id"] == key_id


def test_tarfile_can_stream_into_the_writer(s3: S3Client, bucket: str) -> None:
    """The writer is a file object tarfile's streaming gzip mode can write to."""
    with MultipartWriter(s3, bucket, "b.tar.gz", **SMALL_PARTS) as writer:
        with tarfile.open(fileobj=writer, mode="w|gz") as tar:
            info = tarfile.TarInfo("hello.txt")
            info.size = 5
            tar.addfile(info, io.BytesIO(b"hello"))
        assert not writer.closed
    with s3.open_object(bucket, "b.tar.gz") as obj:
        data = obj.body.read()
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
        member = tar.extractfile("hello.txt")
        assert member is not None
        assert member.read() == b"hello"


# --------------------------------------------------------------------------- failures


def test_exception_inside_with_aborts_and_leaves_nothing(
    s3: S3Client, boto: Boto3S3Client, bucket: str
) -> None:
    """An exception mid-stream aborts the upload: no open upload, no object."""
    log = RequestLog().attach(boto)
    with (  # noqa: PT012
        pytest.raises(RuntimeError, match="producer failed"),
        MultipartWriter(s3, bucket, "broken", **SMALL_PARTS) as writer,
    ):
        for piece in stream(3 * PART):
            writer.write(piece)
        raise RuntimeError("producer failed")
    assert writer.state is WriterState.ABORTED
    assert writer.closed
    assert writer.result is None
    assert "AbortMultipartUpload" in log.operations()
    assert "CompleteMultipartUpload" not in log.operations()
    assert uploads_left(boto, bucket) == []
    assert_absent(s3, bucket, "broken")


def test_exception_before_the_first_part_sends_nothing(
    s3: S3Client, boto: Boto3S3Client, bucket: str
) -> None:
    """An exception while the stream still fits in one part makes no request at all."""
    log = RequestLog().attach(boto)
    with pytest.raises(KeyError), MultipartWriter(s3, bucket, "never", **SMALL_PARTS) as writer:  # noqa: PT012
        writer.write(b"some bytes")
        raise KeyError("boom")
    assert log.sent == []
    assert_absent(s3, bucket, "never")


def _fail_part(number: int) -> Callable[[AWSPreparedRequest], AWSResponse | None]:
    def _fault(request: AWSPreparedRequest) -> AWSResponse | None:
        if part_number(request) == number:
            return error_response(request, 500, "InternalError")
        return None

    return _fault


def test_failed_part_aborts_and_raises_a_typed_error(
    s3: S3Client, boto: Boto3S3Client, bucket: str
) -> None:
    """A part failing after client retries aborts the upload; write/close raise its error."""
    inject(boto, "UploadPart", _fail_part(2))
    writer = MultipartWriter(s3, bucket, "failed-part", **SMALL_PARTS)
    with pytest.raises(S3ServiceError) as caught, writer:  # noqa: PT012
        for piece in stream(6 * PART):
            writer.write(piece)
    error = caught.value
    assert error.retryable
    assert error.context["operation"] == "UploadPart"
    assert error.context["part_number"] == 2
    assert error.context["upload_aborted"] is True
    assert writer.state is WriterState.ABORTED
    assert uploads_left(boto, bucket) == []
    assert_absent(s3, bucket, "failed-part")
    with pytest.raises(ValueError, match="aborted"):
        writer.write(b"more")


def test_failed_last_part_is_raised_by_close(
    s3: S3Client, boto: Boto3S3Client, bucket: str
) -> None:
    """A failure of the final part surfaces from close(), after the upload was aborted."""
    inject(boto, "UploadPart", _fail_part(2))
    writer = MultipartWriter(s3, bucket, "failed-last", **SMALL_PARTS)
    for piece in stream(PART + 10):
        writer.write(piece)
    with pytest.raises(S3ServiceError):
        writer.close()
    assert writer.closed
    writer.close()  # idempotent
    assert uploads_left(boto, bucket) == []


def test_failed_create_raises_typed_error_and_leaves_nothing(
    s3: S3Client, boto: Boto3S3Client, bucket: str
) -> None:
    """A refused CreateMultipartUpload raises S3AccessDeniedError from write()."""
    inject(boto, "CreateMultipartUpload", lambda r: error_response(r, 403, "AccessDenied"))
    writer = MultipartWriter(s3, bucket, "denied", **SMALL_PARTS)
    with pytest.raises(S3AccessDeniedError), writer:  # noqa: PT012
        for piece in stream(2 * PART):
            writer.write(piece)
    assert writer.state is WriterState.ABORTED
    assert uploads_left(boto, bucket) == []


def test_failed_complete_aborts(s3: S3Client, boto: Boto3S3Client, bucket: str) -> None:
    """A failed CompleteMultipartUpload aborts the upload; nothing is left behind."""
    inject(boto, "CompleteMultipartUpload", lambda r: error_response(r, 500, "InternalError"))
    writer = MultipartWriter(s3, bucket, "no-complete", **SMALL_PARTS)
    with pytest.raises(S3ServiceError), writer:  # noqa: PT012
        for piece in stream(2 * PART):
            writer.write(piece)
    assert uploads_left(boto, bucket) == []
    assert_absent(s3, bucket, "no-complete")


def test_failed_tagging_keeps_the_completed_object(
    s3: S3Client, boto: Boto3S3Client, bucket: str
) -> None:
    """Tagging is best effort: when refused, the durable object stands and the result says so."""
    inject(boto, "PutObjectTagging", lambda r: error_response(r, 403, "AccessDenied"))
    with MultipartWriter(s3, bucket, "untagged", **SMALL_PARTS) as writer:
        for piece in stream(PART + 1):
            writer.write(piece)
    result = writer.finish()
    assert not result.sha256_tagged
    assert read_back_sha256(s3, bucket, "untagged") == (result.sha256, PART + 1)


def test_collected_open_writer_aborts_instead_of_completing(
    s3: S3Client, boto: Boto3S3Client, bucket: str
) -> None:
    """A writer dropped without close() is aborted on collection, never completed."""
    writer = MultipartWriter(s3, bucket, "dropped", **SMALL_PARTS)
    for piece in stream(PART + 1):
        writer.write(piece)
    assert writer.upload_id is not None
    del writer
    gc.collect()
    assert uploads_left(boto, bucket) == []
    assert_absent(s3, bucket, "dropped")


# --------------------------------------------------------------------------- file protocol


@pytest.mark.parametrize(
    "call",
    [
        lambda w: w.read(),
        lambda w: w.read1(1),
        lambda w: w.readinto(bytearray(1)),
        lambda w: w.readline(),
        lambda w: w.seek(0),
        lambda w: w.truncate(),
        lambda w: w.fileno(),
        lambda w: w.detach(),
    ],
    ids=["read", "read1", "readinto", "readline", "seek", "truncate", "fileno", "detach"],
)
def test_unsupported_operations_raise(
    s3: S3Client, bucket: str, call: Callable[[MultipartWriter], object]
) -> None:
    """Reading, seeking and file descriptors are io.UnsupportedOperation."""
    with (
        MultipartWriter(s3, bucket, "k", **SMALL_PARTS) as writer,
        pytest.raises(io.UnsupportedOperation),
    ):
        call(writer)


def test_file_object_state(s3: S3Client, bucket: str) -> None:
    """closed follows the state; writes after close fail; close is idempotent."""
    writer = MultipartWriter(s3, bucket, "k", **SMALL_PARTS)
    assert (writer.writable(), writer.readable(), writer.seekable()) == (True, False, False)
    assert writer.mode == "wb"
    assert [writer.closed, writer.state] == [False, WriterState.OPEN]  # (no mypy narrowing)
    assert writer.write(bytearray(b"ab")) + writer.write(memoryview(b"cd")) == 4
    writer.writelines([b"e", b"f"])
    writer.flush()
    assert writer.tell() == 6
    writer.close()
    assert writer.closed
    assert writer.state is WriterState.COMPLETED
    writer.close()
    writer.abort()  # no-op once closed
    with pytest.raises(ValueError, match="completed"):
        writer.write(b"x")
    with pytest.raises(ValueError, match="completed"):
        writer.flush()
    assert writer.finish().size == 6


def test_invalid_arguments_are_rejected_up_front(s3: S3Client, bucket: str) -> None:
    """Unknown extra_args, or ten user tags (no room for the SHA-256 tag), are refused."""
    with pytest.raises(ValidationError, match="allowed arguments are"):
        MultipartWriter(s3, bucket, "k", **SMALL_PARTS, extra_args={"ACL": "private"})
    tags = "&".join(f"t{i}=v" for i in range(10))
    with pytest.raises(ValidationError, match="at most 9"):
        MultipartWriter(s3, bucket, "k", **SMALL_PARTS, extra_args={"Tagging": tags})
    MultipartWriter(
        s3, bucket, "k", **SMALL_PARTS, extra_args={"Tagging": tags}, tag_sha256=False
    ).abort()


# --------------------------------------------------------------------------- large


@pytest.mark.slow
def test_two_hundred_mib_stream(s3_endpoint: str, bucket: str) -> None:
    """A ~200 MiB stream goes up in 16 MiB parts, four at a time, and reads back intact."""
    boto = no_retry_client(s3_endpoint, max_pool_connections=8)
    in_flight = Concurrency().attach(boto, "UploadPart")
    s3 = S3Client(boto)
    size = 200 * MIB + 12345
    with MultipartWriter(s3, bucket, "large") as writer:  # defaults: 16 MiB parts, 4 at once
        for piece in stream(size, chunk=4 * MIB):
            writer.write(piece)
    result = writer.finish()
    assert result.parts == 13
    assert in_flight.peak > 1
    assert writer.stats.peak_parts_buffered <= 5
    assert result.sha256 == digest_of(size)
    assert read_back_sha256(s3, bucket, "large") == (result.sha256, size)
    assert s3.get_content_sha256(bucket, "large") == result.sha256
