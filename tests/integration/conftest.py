"""Integration fixtures: S3 and DynamoDB over HTTP on 127.0.0.1, and clients that talk to them.

Tests here use real HTTP, the way a user's Lambda talks to S3 and DynamoDB. The servers are
the shipped plugin's (``data_aggregator.testing.pytest_plugin``, enabled in
``tests/conftest.py``): moto's by default, SeaweedFS and DynamoDB Local with
``DATA_AGGREGATOR_TEST_BACKEND=real`` (or ``--aggregator-backend=real``), started once per
session on free ports; tests isolate themselves with unique resource names rather than
resetting the servers.
"""

from __future__ import annotations

import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from data_aggregator.testing.pytest_plugin import REGION, AwsBackend, make_aws_client

if TYPE_CHECKING:
    from collections.abc import Callable

    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_s3 import S3Client as Boto3S3Client

__all__ = ["REGION", "make_client", "seed_objects"]

_HERE = Path(__file__).resolve().parent


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every test of this folder ``integration``: they all talk to a server over HTTP."""
    for item in items:
        if _HERE in Path(str(item.path)).resolve().parents:
            item.add_marker(pytest.mark.integration)


@pytest.fixture(scope="session")
def s3_endpoint(aws_backend: AwsBackend) -> str:
    """The session's S3 server (moto, or SeaweedFS)."""
    return aws_backend.s3_endpoint_url


@pytest.fixture(scope="session")
def dynamodb_endpoint(aws_backend: AwsBackend) -> str:
    """The session's DynamoDB server (moto, or DynamoDB Local)."""
    return aws_backend.dynamodb_endpoint_url


@pytest.fixture(scope="session")
def kms_key_id(aws_backend: AwsBackend) -> str:
    """A KMS key id the session's S3 server accepts for SSE-KMS."""
    return aws_backend.kms_key_id


def make_client(service: str, endpoint: str, **config: Any) -> Any:
    """A boto3 client for ``service`` pointed at ``endpoint``, with the fake credentials."""
    return make_aws_client(service, endpoint, **config)


@pytest.fixture
def s3_client(s3_endpoint: str) -> Boto3S3Client:
    """An S3 client talking HTTP to the S3 server."""
    client: Boto3S3Client = make_client("s3", s3_endpoint)
    return client


@pytest.fixture
def dynamodb_client(dynamodb_endpoint: str) -> DynamoDBClient:
    """A DynamoDB client talking HTTP to the DynamoDB server."""
    client: DynamoDBClient = make_client("dynamodb", dynamodb_endpoint)
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


def seed_objects(
    backend: AwsBackend, s3: Boto3S3Client, bucket: str, objects: dict[str, bytes]
) -> None:
    """Store many objects for a test's set-up, the fastest way the backend allows.

    On moto, straight into its in-process backend (thousands of HTTP PUTs would cost seconds
    of moto's CPU); on the real servers, through the S3 API, 16 at a time. Only the set-up
    skips HTTP: the code under test still reads every object over it.
    """
    if not backend.is_real:
        from moto.core.models import DEFAULT_ACCOUNT_ID
        from moto.s3.models import s3_backends

        store = s3_backends[DEFAULT_ACCOUNT_ID]["aws"]
        for key, data in objects.items():
            store.put_object(bucket, key, data)
        return

    def put(item: tuple[str, bytes]) -> None:
        s3.put_object(Bucket=bucket, Key=item[0], Body=item[1])

    with ThreadPoolExecutor(16) as pool:
        list(pool.map(put, objects.items()))


@pytest.fixture
def make_env(
    s3_endpoint: str,
    dynamodb_endpoint: str,
    s3_client: Any,
    make_bucket: Any,
) -> Any:
    """A factory of processors (`tests.integration._processor_env.ProcessorEnv`) on fresh
    buckets and a fresh table."""
    from tests.integration._processor_env import env_factory

    yield from env_factory(s3_endpoint, dynamodb_endpoint, s3_client, make_bucket)
