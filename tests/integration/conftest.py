"""Integration fixtures: moto's server over HTTP on 127.0.0.1, and clients that talk to it.

Tests here use real HTTP, the way a user's Lambda talks to S3 and DynamoDB. The server is
the shipped plugin's (``data_aggregator.testing.pytest_plugin``, enabled in
``tests/conftest.py``), started once per session on a free port; tests isolate themselves
with unique resource names rather than resetting the server.
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from data_aggregator.testing.pytest_plugin import REGION, make_aws_client

if TYPE_CHECKING:
    from collections.abc import Callable

    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_s3 import S3Client as Boto3S3Client

__all__ = ["REGION", "make_client"]

_HERE = Path(__file__).resolve().parent


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every test of this folder ``integration``: they all talk to a server over HTTP."""
    for item in items:
        if _HERE in Path(str(item.path)).resolve().parents:
            item.add_marker(pytest.mark.integration)


@pytest.fixture(scope="session")
def moto_endpoint(moto_server: str) -> str:
    """The session's moto server (the shipped plugin's ``moto_server`` fixture)."""
    return moto_server


def make_client(service: str, endpoint: str, **config: Any) -> Any:
    """A boto3 client for ``service`` pointed at the moto server."""
    return make_aws_client(service, endpoint, **config)


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
