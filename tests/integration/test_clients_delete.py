"""`S3Client.delete_objects` over HTTP: versions, ETag conditions, batches, failures."""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING

import pytest

from data_aggregator.clients import DeleteStatus, ObjectToDelete, S3Client
from data_aggregator.exceptions import S3AccessDeniedError
from tests.integration._s3_hooks import RequestLog, error_response, inject, no_retry_client
from tests.integration.conftest import seed_objects

if TYPE_CHECKING:
    from collections.abc import Callable

    from mypy_boto3_s3 import S3Client as Boto3S3Client

    from data_aggregator.testing.pytest_plugin import AwsBackend

pytestmark = pytest.mark.integration


@pytest.fixture
def boto(s3_endpoint: str) -> Boto3S3Client:
    """A raw boto3 client without retries (injected faults surface on the first attempt)."""
    return no_retry_client(s3_endpoint)


@pytest.fixture
def s3(boto: Boto3S3Client) -> S3Client:
    """The library's client over ``boto``."""
    return S3Client(boto)


def _keys(boto: Boto3S3Client, bucket: str) -> list[str]:
    return [entry["Key"] for entry in boto.list_objects_v2(Bucket=bucket).get("Contents", [])]


def test_each_object_gets_its_own_status(
    s3: S3Client, boto: Boto3S3Client, make_bucket: Callable[..., str]
) -> None:
    """A matching ETag deletes; a stale one keeps the object (CHANGED); a missing key is
    GONE; an object named without version or ETag is refused and kept."""
    bucket = make_bucket()
    same = boto.put_object(Bucket=bucket, Key="same", Body=b"1")["ETag"]
    stale = boto.put_object(Bucket=bucket, Key="rewritten", Body=b"old")["ETag"]
    boto.put_object(Bucket=bucket, Key="rewritten", Body=b"new")
    boto.put_object(Bucket=bucket, Key="bare", Body=b"x")
    results = s3.delete_objects(
        bucket,
        [
            ObjectToDelete("same", etag=same.strip('"')),
            ObjectToDelete("rewritten", etag=stale),
            ObjectToDelete("missing", etag=same),
            ObjectToDelete("bare"),
        ],
    )
    assert [(r.target.key, r.status) for r in results] == [
        ("same", DeleteStatus.DELETED),
        ("rewritten", DeleteStatus.CHANGED),
        ("missing", DeleteStatus.GONE),
        ("bare", DeleteStatus.FAILED),
    ]
    assert results[3].code == "NO_CONDITION"
    assert sorted(_keys(boto, bucket)) == ["bare", "rewritten"]


def test_a_version_is_deleted_by_its_id_only(
    s3: S3Client, boto: Boto3S3Client, make_bucket: Callable[..., str]
) -> None:
    """A version id deletes that version, leaves the current one and adds no delete
    marker."""
    bucket = make_bucket(versioned=True)
    first = boto.put_object(Bucket=bucket, Key="k", Body=b"v1")["VersionId"]
    second = boto.put_object(Bucket=bucket, Key="k", Body=b"v2")["VersionId"]
    (result,) = s3.delete_objects(bucket, [ObjectToDelete("k", version_id=first, etag="x")])
    assert result.status is DeleteStatus.DELETED
    listing = boto.list_object_versions(Bucket=bucket)
    assert [v["VersionId"] for v in listing.get("Versions", [])] == [second]
    assert listing.get("DeleteMarkers", []) == []


def test_more_than_one_thousand_objects_take_two_requests(
    s3: S3Client,
    boto: Boto3S3Client,
    make_bucket: Callable[..., str],
    aws_backend: AwsBackend,
) -> None:
    """1,005 objects: two DeleteObjects requests (1,000 + 5), every object deleted."""
    bucket = make_bucket()
    keys = {f"k/{i:05d}": str(i).encode() for i in range(1005)}
    seed_objects(aws_backend, boto, bucket, keys)
    log = RequestLog().attach(boto)
    targets = [
        ObjectToDelete(key, etag=hashlib.md5(data).hexdigest())  # noqa: S324 - S3's ETag
        for key, data in keys.items()
    ]
    results = s3.delete_objects(bucket, targets)
    assert {r.status for r in results} == {DeleteStatus.DELETED}
    assert log.operations() == ["DeleteObjects", "DeleteObjects"]
    assert _keys(boto, bucket) == []


def test_a_failed_request_fails_its_objects_without_raising(
    s3: S3Client, boto: Boto3S3Client, make_bucket: Callable[..., str]
) -> None:
    """AccessDenied for the request: every object FAILED with the typed error, kept."""
    bucket = make_bucket()
    etag = boto.put_object(Bucket=bucket, Key="k", Body=b"x")["ETag"]
    inject(boto, "DeleteObjects", lambda request: error_response(request, 403, "AccessDenied"))
    (result,) = s3.delete_objects(bucket, [ObjectToDelete("k", etag=etag)])
    assert result.status is DeleteStatus.FAILED
    assert isinstance(result.error, S3AccessDeniedError)
    assert _keys(boto, bucket) == ["k"]
