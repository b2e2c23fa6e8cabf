"""`S3Client.delete_objects` reads S3's ``DeleteObjects`` answer strictly: an object is
deleted only when the answer lists it (its key, and the version id sent)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import boto3
import pytest
from botocore.stub import Stubber

from data_aggregator.clients import DeleteStatus, ObjectToDelete, S3Client

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client as Boto3S3Client

_TARGETS = [
    ObjectToDelete("a", etag="e1"),
    ObjectToDelete("b", etag="e2"),
    ObjectToDelete("v", version_id="v1"),
]
_SENT = {
    "Objects": [
        {"Key": "a", "ETag": '"e1"'},
        {"Key": "b", "ETag": '"e2"'},
        {"Key": "v", "VersionId": "v1"},
    ],
    "Quiet": False,
}


@pytest.fixture
def boto() -> Boto3S3Client:
    client: Boto3S3Client = boto3.session.Session(
        aws_access_key_id="testing", aws_secret_access_key="testing", region_name="us-east-1"
    ).client("s3")
    return client


def _statuses(boto: Boto3S3Client, answer: dict[str, Any]) -> list[tuple[DeleteStatus, str | None]]:
    with Stubber(boto) as stubber:
        stubber.add_response("delete_objects", answer, {"Bucket": "src", "Delete": _SENT})
        results = S3Client(boto).delete_objects("src", _TARGETS)
        stubber.assert_no_pending_responses()
    return [(r.status, r.code) for r in results]


def test_only_the_objects_the_answer_lists_are_deleted(boto: Boto3S3Client) -> None:
    """An error naming a key not asked for accounts for nothing; a listed version other
    than the one sent is not ours: both unlisted objects are failed deletes."""
    answer = {
        "Deleted": [{"Key": "a"}, {"Key": "v", "VersionId": "v2"}],
        "Errors": [{"Key": "other", "Code": "AccessDenied", "Message": "x"}],
    }
    failed = (DeleteStatus.FAILED, "NOT_ANSWERED")
    assert _statuses(boto, answer) == [(DeleteStatus.DELETED, None), failed, failed]


def test_an_empty_answer_deletes_nothing(boto: Boto3S3Client) -> None:
    assert _statuses(boto, {}) == [(DeleteStatus.FAILED, "NOT_ANSWERED")] * 3


def test_a_version_is_deleted_when_listed_with_its_id_and_an_error_wins(
    boto: Boto3S3Client,
) -> None:
    answer = {
        "Deleted": [{"Key": "a"}, {"Key": "b"}, {"Key": "v", "VersionId": "v1"}],
        "Errors": [{"Key": "b", "Code": "PreconditionFailed", "Message": "x"}],
    }
    assert _statuses(boto, answer) == [
        (DeleteStatus.DELETED, None),
        (DeleteStatus.CHANGED, "PreconditionFailed"),
        (DeleteStatus.DELETED, None),
    ]
