"""The integration harness itself: moto's server answers over real HTTP."""

from __future__ import annotations

from typing import TYPE_CHECKING
from urllib.request import urlopen

if TYPE_CHECKING:
    from collections.abc import Callable

    from mypy_boto3_s3 import S3Client as Boto3S3Client


def test_server_listens_on_loopback_http(moto_endpoint: str) -> None:
    """The fixture's endpoint is plain HTTP on 127.0.0.1 and answers requests."""
    assert moto_endpoint.startswith("http://127.0.0.1:")
    with urlopen(f"{moto_endpoint}/moto-api/", timeout=5) as response:  # noqa: S310
        assert response.status == 200


def test_bucket_round_trip(s3_client: Boto3S3Client, make_bucket: Callable[..., str]) -> None:
    """An object written through the HTTP server reads back byte for byte."""
    bucket = make_bucket()
    s3_client.put_object(Bucket=bucket, Key="a b+c.txt", Body=b"hello")
    body = s3_client.get_object(Bucket=bucket, Key="a b+c.txt")["Body"].read()
    assert body == b"hello"
