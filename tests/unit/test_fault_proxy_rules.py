"""FaultProxy without a server: how requests are named, and which rules are refused."""

from __future__ import annotations

import pytest

from data_aggregator.testing import FaultProxy, FaultRule
from data_aggregator.testing._proxy import classify


@pytest.mark.parametrize(
    ("method", "target", "path", "expected"),
    [
        ("POST", "DynamoDB_20120810.PutItem", "/", ("dynamodb", "PutItem", None, None)),
        (
            "POST",
            "DynamoDB_20120810.TransactWriteItems",
            "/",
            ("dynamodb", "TransactWriteItems", None, None),
        ),
        ("POST", "TrentService.Encrypt", "/", ("other", "Encrypt", None, None)),
        ("GET", None, "/", ("s3", "ListBuckets", None, None)),
        ("GET", None, "/bkt/a/b%20c.txt", ("s3", "GetObject", "bkt", "a/b c.txt")),
        ("GET", None, "/bkt/k?versionId=v1", ("s3", "GetObject", "bkt", "k")),
        ("HEAD", None, "/bkt/k", ("s3", "HeadObject", "bkt", "k")),
        ("PUT", None, "/bkt/k", ("s3", "PutObject", "bkt", "k")),
        ("PUT", None, "/bkt/k?partNumber=2&uploadId=u", ("s3", "UploadPart", "bkt", "k")),
        ("POST", None, "/bkt/k?uploads", ("s3", "CreateMultipartUpload", "bkt", "k")),
        ("POST", None, "/bkt/k?uploadId=u", ("s3", "CompleteMultipartUpload", "bkt", "k")),
        ("DELETE", None, "/bkt/k?uploadId=u", ("s3", "AbortMultipartUpload", "bkt", "k")),
        ("GET", None, "/bkt/k?uploadId=u", ("s3", "ListParts", "bkt", "k")),
        ("DELETE", None, "/bkt/k", ("s3", "DeleteObject", "bkt", "k")),
        ("GET", None, "/bkt/k?tagging", ("s3", "GetObjectTagging", "bkt", "k")),
        ("PUT", None, "/bkt/k?tagging", ("s3", "PutObjectTagging", "bkt", "k")),
        ("GET", None, "/bkt?list-type=2&prefix=a", ("s3", "ListObjectsV2", "bkt", None)),
        ("GET", None, "/bkt", ("s3", "ListObjects", "bkt", None)),
        ("GET", None, "/bkt?versions", ("s3", "ListObjectVersions", "bkt", None)),
        ("PUT", None, "/bkt", ("s3", "CreateBucket", "bkt", None)),
        ("PUT", None, "/bkt?versioning", ("s3", "PutBucketVersioning", "bkt", None)),
        ("HEAD", None, "/bkt", ("s3", "HeadBucket", "bkt", None)),
        ("POST", None, "/bkt?delete", ("s3", "DeleteObjects", "bkt", None)),
        ("GET", None, "/moto-api/reset", ("other", "MotoApi", None, None)),
    ],
)
def test_requests_are_named_by_service_and_operation(
    method: str,
    target: str | None,
    path: str,
    expected: tuple[str, str, str | None, str | None],
) -> None:
    """DynamoDB by its X-Amz-Target, S3 by method, path-style bucket and key, and query."""
    assert classify(method, target, path) == expected


@pytest.mark.parametrize(
    "options",
    [{"fraction": 1.5}, {"fraction": -0.1}, {"kind": "explode"}, {"stall_seconds": -1.0}],
)
def test_invalid_rules_are_refused(options: dict[str, object]) -> None:
    with pytest.raises(ValueError, match=next(iter(options))):
        FaultRule("s3", "GetObject", **options)  # type: ignore[arg-type]


def test_a_rule_matches_its_service_operation_bucket_and_prefix() -> None:
    from data_aggregator.testing._proxy import _Request

    rule = FaultRule("s3", "GetObject", bucket="src", key_prefix="logs/")
    assert rule.matches(_Request("s3", "GetObject", "src", "logs/a"))
    assert not rule.matches(_Request("s3", "GetObject", "src", "other/a"))
    assert not rule.matches(_Request("s3", "GetObject", "dst", "logs/a"))
    assert not rule.matches(_Request("s3", "HeadObject", "src", "logs/a"))
    assert not rule.matches(_Request("dynamodb", "GetObject", None, None))
    assert FaultRule("dynamodb").matches(_Request("dynamodb", "UpdateItem", None, None))


def test_the_endpoint_exists_only_while_running_and_bad_settings_are_refused() -> None:
    proxy = FaultProxy("http://127.0.0.1:9")
    with pytest.raises(RuntimeError, match="not running"):
        _ = proxy.endpoint_url
    with pytest.raises(ValueError, match="latency"):
        proxy.latency = -1
    with pytest.raises(ValueError, match="upstream"):
        FaultProxy("ftp://example")
    with proxy:
        assert proxy.endpoint_url.startswith("http://127.0.0.1:")
    proxy.stop()  # stopping twice is harmless
