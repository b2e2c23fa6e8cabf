"""The integration harness itself: the session's servers answer over real HTTP on loopback."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING
from urllib.request import urlopen

import pytest

if TYPE_CHECKING:
    from collections.abc import Callable

    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_s3 import S3Client as Boto3S3Client

    from data_aggregator.testing.pytest_plugin import AwsBackend

LISTEN = "0A"  # TCP state LISTEN in /proc/net/tcp


@pytest.mark.moto_only(reason="/moto-api/ is moto's own")
def test_moto_server_listens_on_loopback_http(moto_server: str) -> None:
    """moto's endpoint is plain HTTP on 127.0.0.1 and answers requests."""
    assert moto_server.startswith("http://127.0.0.1:")
    with urlopen(f"{moto_server}/moto-api/", timeout=5) as response:  # noqa: S310
        assert response.status == 200


def test_endpoints_are_loopback_http(aws_backend: AwsBackend) -> None:
    """Both endpoints are plain HTTP on 127.0.0.1; only moto shares one between services."""
    for url in (aws_backend.s3_endpoint_url, aws_backend.dynamodb_endpoint_url):
        assert url.startswith("http://127.0.0.1:")
    shared = aws_backend.s3_endpoint_url == aws_backend.dynamodb_endpoint_url
    assert shared is (not aws_backend.is_real)


def _listening_addresses(pid: int) -> list[str]:
    """Local addresses of the TCP sockets process ``pid`` listens on (Linux /proc)."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        target = str(fd.readlink())
        if target.startswith("socket:["):
            inodes.add(target[len("socket:[") : -1])
    found = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] == LISTEN and fields[9] in inodes:
                found.append(fields[1].rsplit(":", 1)[0])
    return found


@pytest.mark.real_servers_only(reason="moto runs in this process")
@pytest.mark.skipif(not Path("/proc/net/tcp").exists(), reason="needs Linux /proc")
def test_real_servers_listen_on_loopback_only(aws_backend: AwsBackend) -> None:
    """Every port SeaweedFS and DynamoDB Local listen on is bound to 127.0.0.1."""
    loopback = {"0100007F", "0000000000000000FFFF00000100007F"}  # 127.0.0.1, ::ffff:127.0.0.1
    assert aws_backend.pids
    for pid in aws_backend.pids:
        addresses = _listening_addresses(pid)
        assert addresses, f"process {pid} listens on nothing"
        assert set(addresses) <= loopback, (pid, addresses)


def test_bucket_round_trip(s3_client: Boto3S3Client, make_bucket: Callable[..., str]) -> None:
    """An object written through the HTTP server reads back byte for byte."""
    bucket = make_bucket()
    s3_client.put_object(Bucket=bucket, Key="a b+c.txt", Body=b"hello")
    body = s3_client.get_object(Bucket=bucket, Key="a b+c.txt")["Body"].read()
    assert body == b"hello"


def test_table_round_trip(dynamodb_client: DynamoDBClient) -> None:
    """An item written to a table on the DynamoDB server reads back."""
    from tests.integration._dynamodb_support import new_table

    table = new_table(dynamodb_client)
    dynamodb_client.put_item(TableName=table, Item={"object_key": {"S": "k"}})
    item = dynamodb_client.get_item(TableName=table, Key={"object_key": {"S": "k"}})["Item"]
    assert item == {"object_key": {"S": "k"}}
