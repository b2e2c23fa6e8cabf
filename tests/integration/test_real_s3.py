"""What only a real S3 server shows: checksums refused, composite checksums, KMS keys refused.

moto accepts a wrong SHA-256 on PutObject, UploadPart and CompleteMultipartUpload, returns
the composite checksum without its ``-N`` suffix and accepts any KMS key id, so these tests
run on SeaweedFS only (``DATA_AGGREGATOR_TEST_BACKEND=real``). How AWS answers a KMS key it
cannot use (400 ``KMS.NotFoundException`` ...) is pinned in
``tests/unit/test_s3_error_mapping.py``; SeaweedFS answers 500 ``InternalError``.
"""

from __future__ import annotations

import hashlib
import io
import random
from typing import TYPE_CHECKING, Any

import pytest

from data_aggregator.clients import MultipartWriter, S3Client
from data_aggregator.config import MIB
from data_aggregator.exceptions import (
    S3Error,
    S3IntegrityError,
    S3ObjectNotFoundError,
    S3ServiceError,
)
from data_aggregator.processor import Outcome, Reason
from tests.integration._processor_env import env_factory
from tests.integration._s3_hooks import inject, no_retry_client
from tests.processor_support import (
    assert_bundled_once,
    failed_ids,
    redeliver,
    s3_body,
    sqs_batch,
)

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from botocore.awsrequest import AWSPreparedRequest, AWSResponse
    from mypy_boto3_s3 import S3Client as Boto3S3Client

    from tests.integration._processor_env import ProcessorEnv

pytestmark = [
    pytest.mark.integration,
    pytest.mark.real_servers_only(
        reason="moto accepts wrong checksums and any KMS key, and drops the composite '-N'"
    ),
]

PART = 5 * MIB
UNKNOWN_KMS_KEY = "alias/no-such-key"


@pytest.fixture
def boto(s3_endpoint: str) -> Boto3S3Client:
    """An S3 client that never retries: a refusal surfaces at once."""
    return no_retry_client(s3_endpoint, max_pool_connections=8)


@pytest.fixture
def make_env(
    s3_endpoint: str,
    dynamodb_endpoint: str,
    s3_client: Boto3S3Client,
    make_bucket: Callable[..., str],
) -> Iterator[Callable[..., ProcessorEnv]]:
    """A factory of processors wired to SeaweedFS and DynamoDB Local."""
    yield from env_factory(s3_endpoint, dynamodb_endpoint, s3_client, make_bucket)


def _absent(boto: Boto3S3Client, bucket: str, key: str) -> bool:
    try:
        S3Client(boto).head_object(bucket, key)
    except S3ObjectNotFoundError:
        return True
    return False


# --------------------------------------------------------------------------- checksums


def test_put_with_a_wrong_sha256_is_refused_and_never_lands(
    boto: Boto3S3Client, make_bucket: Callable[..., str]
) -> None:
    """A PutObject whose SHA-256 does not match its bytes is refused as
    S3_CHECKSUM_MISMATCH (not retryable) and no object appears."""
    bucket = make_bucket()
    body = b"the bytes that were meant"
    wrong = hashlib.sha256(b"other bytes").digest()
    with pytest.raises(S3IntegrityError) as caught:
        S3Client(boto).put_object(bucket, "k", body, sha256=wrong, content_length=len(body))
    assert caught.value.error_code == "S3_CHECKSUM_MISMATCH"
    assert not caught.value.retryable
    assert caught.value.context["aws_error_code"] == "BadDigest"
    assert _absent(boto, bucket, "k")


def test_a_part_with_a_wrong_sha256_is_refused_and_the_upload_cannot_complete(
    boto: Boto3S3Client, make_bucket: Callable[..., str]
) -> None:
    """An UploadPart whose SHA-256 does not match is refused as S3_CHECKSUM_MISMATCH; the
    upload holds no such part, and the object never lands."""
    bucket = make_bucket()
    s3 = S3Client(boto)
    upload_id = s3.create_multipart_upload(bucket, "mpu")
    body = random.Random(1).randbytes(PART)
    with pytest.raises(S3IntegrityError) as caught:
        s3.upload_part(
            bucket,
            "mpu",
            upload_id=upload_id,
            part_number=1,
            body=io.BytesIO(body),
            content_length=len(body),
            sha256=hashlib.sha256(body[:-1] + b"!").digest(),
        )
    assert caught.value.error_code == "S3_CHECKSUM_MISMATCH"
    parts = boto.list_parts(Bucket=bucket, Key="mpu", UploadId=upload_id).get("Parts", [])
    assert parts == []
    s3.abort_multipart_upload(bucket, "mpu", upload_id=upload_id)
    assert _absent(boto, bucket, "mpu")


def test_the_composite_checksum_s3_stores_is_the_one_the_writer_reports(
    boto: Boto3S3Client, make_bucket: Callable[..., str]
) -> None:
    """After a two-part upload, S3's stored SHA-256 is COMPOSITE, '<b64>-2', and equal to the
    writer's result, so a reader can check it against the manifest."""
    bucket = make_bucket()
    s3 = S3Client(boto)
    data = random.Random(2).randbytes(PART + 1234)
    with MultipartWriter(s3, bucket, "two-parts", part_size=PART) as writer:
        writer.write(data)
    result = writer.result
    assert result is not None
    assert result.parts == 2
    head = boto.head_object(Bucket=bucket, Key="two-parts", ChecksumMode="ENABLED")
    assert head["ChecksumSHA256"] == result.checksum_sha256
    assert head["ChecksumSHA256"].endswith("-2")
    assert head.get("ChecksumType") == "COMPOSITE"
    assert result.sha256 == hashlib.sha256(data).hexdigest()


def _corrupt_body(request: AWSPreparedRequest) -> AWSResponse | None:
    """Flip the first byte of the request body on its way out (after it was checksummed)."""
    body: Any = request.body
    if hasattr(body, "read"):
        start = body.tell()
        data = body.read()
        body.seek(start)
    else:
        data = bytes(body or b"")
    if data:
        request.body = bytes([data[0] ^ 0xFF]) + data[1:]
    return None


@pytest.mark.parametrize(
    ("operation", "size"), [("PutObject", 1000), ("UploadPart", 2 * MIB)], ids=["put", "part"]
)
def test_bytes_corrupted_in_transit_never_land_as_a_bundle(
    make_env: Callable[..., ProcessorEnv], operation: str, size: int
) -> None:
    """When a bundle's bytes change between checksum and server, S3 refuses them: every
    message fails with S3_CHECKSUM_MISMATCH, no bundle and no open upload remains, and a
    redelivery bundles each object once."""
    env = make_env(retries=False)
    rng = random.Random(size)
    objects = [env.put(f"in/{i}.bin", rng.randbytes(size)) for i in range(3)]
    corrupting = [True]

    def corrupt(request: AWSPreparedRequest) -> AWSResponse | None:
        return _corrupt_body(request) if corrupting[0] else None

    inject(env.processor_s3, operation, corrupt)
    event = sqs_batch([s3_body(o.record()) for o in objects])
    response = env.handle(event, env.context(120))
    assert failed_ids(response) == ["message-0", "message-1", "message-2"]
    assert {r.reason for r in env.last.records} == {Reason.UPLOAD_FAILED}
    errors = [r.error for r in env.last.records if r.error is not None]
    assert {e.error_code for e in errors} == {"BUNDLE_UPLOAD_FAILED"}
    assert {e.context["cause_code"] for e in errors} == {"S3_CHECKSUM_MISMATCH"}
    assert env.bundles() == []
    assert env.open_multipart_uploads() == []
    corrupting[0] = False
    env.clock.advance(200)  # past every lease
    assert env.handle(redeliver(event, failed_ids(response))) == {"batchItemFailures": []}
    assert env.last.count(Outcome.BUNDLED) == 3
    assert_bundled_once(env.bundles(), objects)


# --------------------------------------------------------------------------- KMS


def test_a_known_kms_key_encrypts_the_object(
    boto: Boto3S3Client, make_bucket: Callable[..., str], kms_key_id: str
) -> None:
    """With a key the server's KMS holds, the upload succeeds and the object is SSE-KMS."""
    bucket = make_bucket()
    S3Client(boto, kms_key_id=kms_key_id).put_object(bucket, "k", b"secret")
    assert boto.head_object(Bucket=bucket, Key="k")["ServerSideEncryption"] == "aws:kms"


def test_an_unknown_kms_key_is_refused_with_the_key_named_and_nothing_lands(
    boto: Boto3S3Client, make_bucket: Callable[..., str]
) -> None:
    """An upload with a KMS key the server does not hold fails with a typed error whose
    context and message name the key, and no object appears.

    SeaweedFS answers 500 InternalError (AWS: 400 KMS.NotFoundException, which maps to the
    non-retryable S3_KMS_KEY_UNUSABLE). A bare 500 stays retryable: it may be transient."""
    bucket = make_bucket()
    s3 = S3Client(boto, kms_key_id=UNKNOWN_KMS_KEY)
    with pytest.raises(S3Error) as caught:
        s3.put_object(bucket, "k", b"secret")
    error = caught.value
    assert error.context["sse_kms_key_id"] == UNKNOWN_KMS_KEY
    assert isinstance(error, S3ServiceError)
    assert error.context["http_status"] == 500
    assert f"SSE-KMS key {UNKNOWN_KMS_KEY!r}" in error.message
    assert _absent(boto, bucket, "k")


@pytest.mark.parametrize("size", [1000, 2 * MIB], ids=["put", "multipart"])
def test_a_processor_with_an_unknown_kms_key_bundles_nothing(
    make_env: Callable[..., ProcessorEnv], size: int
) -> None:
    """A processor configured with a KMS key the server refuses fails every message of the
    bundle (UPLOAD_FAILED, caused by SeaweedFS's 500) and leaves no bundle and no open
    upload."""
    env = make_env(retries=False, kms_key_id=UNKNOWN_KMS_KEY)
    rng = random.Random(size)
    objects = [env.put(f"in/{i}.bin", rng.randbytes(size)) for i in range(3)]
    event = sqs_batch([s3_body(o.record()) for o in objects])
    response = env.handle(event, env.context(120))
    assert failed_ids(response) == ["message-0", "message-1", "message-2"]
    assert {r.reason for r in env.last.records} == {Reason.UPLOAD_FAILED}
    errors = [r.error for r in env.last.records if r.error is not None]
    assert len(errors) == 3
    assert {e.context["cause_code"] for e in errors} == {"S3_SERVICE_ERROR"}
    assert env.bundles() == []
    assert env.open_multipart_uploads() == []
