"""``data-aggregator inspect`` and ``create-table`` against the servers over HTTP."""

from __future__ import annotations

import json
import uuid
from typing import TYPE_CHECKING

import pytest

from data_aggregator.bundle import BundleEngine, BundleSource, MultipartSink
from data_aggregator.cli import main
from data_aggregator.clients import S3Client

if TYPE_CHECKING:
    from collections.abc import Callable

    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_s3 import S3Client as Boto3S3Client

pytestmark = pytest.mark.integration

OBJECTS = {"in/a.txt": b"alpha\n" * 100, "in/b c.json": b'{"b": 2}'}


def bundle_to_s3(s3: Boto3S3Client, make_bucket: Callable[..., str]) -> tuple[str, str]:
    """Bundle ``OBJECTS`` from a source bucket into a destination bucket with the engine."""
    src, dest = make_bucket("src"), make_bucket("dest")
    sources = []
    for key, data in OBJECTS.items():
        etag = s3.put_object(Bucket=src, Key=key, Body=data)["ETag"].strip('"')
        sources.append(BundleSource(src, key, len(data), etag=etag, token=key))
    client = S3Client(s3)
    run = BundleEngine(client, MultipartSink(client, dest)).run(
        sources, bundle_key=lambda n: f"out/b-{n}.tar.gz"
    )
    (summary,) = run.bundles
    return dest, summary.key


def test_inspect_s3_bundle(
    s3_endpoint: str,
    s3_client: Boto3S3Client,
    make_bucket: Callable[..., str],
    capsys: pytest.CaptureFixture[str],
) -> None:
    """An engine-written S3 bundle lists its members and matches its content-sha256."""
    dest, key = bundle_to_s3(s3_client, make_bucket)
    url = f"s3://{dest}/{key}"
    assert main(["inspect", url, "--endpoint-url", s3_endpoint, "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["ok"] is True
    assert report["content_sha256"] == report["sha256"]
    assert [m["key"] for m in report["members"]] == list(OBJECTS)


def test_tampered_content_sha256_fails(
    s3_endpoint: str,
    s3_client: Boto3S3Client,
    make_bucket: Callable[..., str],
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A content-sha256 that does not match the bundle's bytes is exit status 1."""
    dest, key = bundle_to_s3(s3_client, make_bucket)
    s3_client.copy_object(
        Bucket=dest,
        Key=key,
        CopySource={"Bucket": dest, "Key": key},
        Metadata={"content-sha256": "0" * 64},
        MetadataDirective="REPLACE",
    )
    assert main(["inspect", f"s3://{dest}/{key}", "--endpoint-url", s3_endpoint]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert "content-sha256" in err[0]


def test_missing_s3_bundle_is_one_line(
    s3_endpoint: str, make_bucket: Callable[..., str], capsys: pytest.CaptureFixture[str]
) -> None:
    """A key that does not exist is one error line and exit status 1."""
    bucket = make_bucket("dest")
    assert main(["inspect", f"s3://{bucket}/nope.tar.gz", "--s3-endpoint-url", s3_endpoint]) == 1
    assert len(capsys.readouterr().err.strip().splitlines()) == 1


def test_create_table_key_schema_and_ttl(
    dynamodb_endpoint: str, dynamodb_client: DynamoDBClient, capsys: pytest.CaptureFixture[str]
) -> None:
    """``create-table`` makes the documented key schema and TTL; ``--exist-ok`` reruns."""
    name = f"cli-{uuid.uuid4().hex[:10]}"
    args = ["create-table", name, "--endpoint-url", dynamodb_endpoint, "--region", "us-east-1"]
    assert main([*args, "--partition-key", "pk"]) == 0
    assert name in capsys.readouterr().out
    table = dynamodb_client.describe_table(TableName=name)["Table"]
    assert table["KeySchema"] == [{"AttributeName": "pk", "KeyType": "HASH"}]
    assert table["AttributeDefinitions"] == [{"AttributeName": "pk", "AttributeType": "S"}]
    ttl = dynamodb_client.describe_time_to_live(TableName=name)["TimeToLiveDescription"]
    assert ttl.get("AttributeName") == "expiration"
    assert ttl.get("TimeToLiveStatus") == "ENABLED"
    assert main([*args, "--partition-key", "pk"]) == 1
    assert "already exists" in capsys.readouterr().err
    assert main([*args, "--partition-key", "pk", "--exist-ok"]) == 0
