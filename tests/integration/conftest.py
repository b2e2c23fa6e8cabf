"""Integration fixtures: moto's server over HTTP on 127.0.0.1, and clients that talk to it.

Tests here use real HTTP, the way a user's Lambda talks to S3 and DynamoDB. The server is
started once per session on a free port; tests isolate themselves with unique resource
names rather than resetting the server.
"""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Any

import boto3
import pytest
from botocore.config import Config
from moto.server import ThreadedMotoServer

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_s3 import S3Client as Boto3S3Client

REGION = "us-east-1"


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    """Start moto's server on 127.0.0.1 (a free port) for the whole session."""
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


def make_client(service: str, endpoint: str, **config: Any) -> Any:
    """A boto3 client for ``service`` pointed at the moto server."""
    return boto3.session.Session(
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        region_name=REGION,
    ).client(
        service,  # type: ignore[call-overload]
        endpoint_url=endpoint,
        config=Config(retries={"max_attempts": 2, "mode": "standard"}, **config),
    )


@pytest.fixture
def s3_client(moto_endpoint: str) -> Boto3S3Client:
    """An S3 client talking HTTP to the moto server."""
    client: Boto3S3Client = make_client("s3", moto_endpoint)
    return client


@pytest.fixture
def dynamodb_client(moto_endpoint: str) -> DynamoDBClient:
    """A DynamoDB client talking HTTP to the moto server."""
    client: DynamoDBClient = make_client("dynamodb", moto_endpoint)
    return client


@pytest.fixture
def make_bucket(s3_client: Boto3S3Client) -> Callable[..., str]:
    """Create a uniquely named bucket (optionally versioned) and return its name."""

    def _make(prefix: str = "bucket", *, versioned: bool = False) -> str:
        name = f"{prefix}-{uuid.uuid4().hex[:12]}"
        s3_client.create_bucket(Bucket=name)
        if versioned:
            s3_client.put_bucket_versioning(
                Bucket=name, VersioningConfiguration={"Status": "Enabled"}
            )
        return name

    return _make
