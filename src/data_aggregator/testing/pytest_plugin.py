"""pytest fixtures: moto's server over HTTP, and the AWS resources a bundling Lambda needs.

Enable them in your top-level ``conftest.py``:

```python
pytest_plugins = ["data_aggregator.testing.pytest_plugin"]
```

Needs moto's server (``pip install 's3-data-aggregator[testing]'``). Fixtures:

* ``moto_server`` (session): starts moto's ``ThreadedMotoServer`` on 127.0.0.1 on a free
  port and yields its endpoint URL (``http://127.0.0.1:<port>``);
* ``aws_test_env``: fake credentials and a region in the environment (never a real
  account), ``AWS_PROFILE`` removed; returns the variables it set;
* ``make_aggregator_env``: a factory building an `AggregatorEnv` (a source bucket,
  versioned or not, a destination bucket, an idempotency table made with
  ``create_idempotency_table``, boto3 clients and an ``AppConfig``), with unique names;
* ``handler_env``: ``aggregator_env`` applied to ``os.environ`` with ``get_config()``'s
  cache cleared, for testing a handler module (import it with ``import_handler``);
* ``aggregator_env``: ``make_aggregator_env()`` with the defaults, or with the keyword
  arguments given by indirect parametrization:

  ```python
  @pytest.mark.parametrize("aggregator_env", [{"versioned_source": True}], indirect=True)
  def test_versioned(aggregator_env): ...
  ```

Resources are isolated by unique names, not by resetting the server, so tests can share
one server.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import boto3
import pytest
from botocore.config import Config

from data_aggregator.config import AppConfig
from data_aggregator.idempotency import create_idempotency_table
from data_aggregator.testing._handler import use_environment as _use_environment

try:
    from moto.server import ThreadedMotoServer
except ImportError as _exc:  # pragma: no cover - depends on the installed extras
    _msg = (
        "data_aggregator.testing.pytest_plugin needs moto's server: "
        "pip install 's3-data-aggregator[testing]'"
    )
    raise ImportError(_msg) from _exc

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_s3 import S3Client as Boto3S3Client

__all__ = [
    "FAKE_CREDENTIALS",
    "REGION",
    "AggregatorEnv",
    "aggregator_env",
    "aws_test_env",
    "handler_env",
    "make_aggregator_env",
    "make_aws_client",
    "moto_server",
]

#: The region every fixture uses.
REGION = "us-east-1"

#: Fake credentials: moto accepts anything, and a real account never sees them.
FAKE_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SECURITY_TOKEN": "testing",
    "AWS_SESSION_TOKEN": "testing",
}


def make_aws_client(service: str, endpoint_url: str, **config: Any) -> Any:
    """A boto3 client for ``service`` with fake credentials, pointed at ``endpoint_url``.

    ``config`` goes to ``botocore.config.Config`` (two attempts, standard retry mode
    unless given).
    """
    config.setdefault("retries", {"max_attempts": 2, "mode": "standard"})
    return boto3.session.Session(
        aws_access_key_id=FAKE_CREDENTIALS["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=FAKE_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
        region_name=REGION,
    ).client(
        service,  # type: ignore[call-overload]
        endpoint_url=endpoint_url,
        config=Config(**config),
    )


@dataclass(frozen=True)
class AggregatorEnv:
    """The AWS side of a bundling Lambda, on moto's server.

    Attributes:
        endpoint_url: The moto server's URL.
        source_bucket: Where objects land (versioned when asked for).
        destination_bucket: Where bundles go (``DISTRIBUTION_BUCKET_NAME``).
        table_name: The idempotency table (``IDEMPOTENCY_TABLE_NAME``).
        s3: A boto3 S3 client talking to the server.
        dynamodb: A boto3 DynamoDB client talking to the server.
        config: An ``AppConfig`` naming the destination bucket and the table.
    """

    endpoint_url: str
    source_bucket: str
    destination_bucket: str
    table_name: str
    s3: Boto3S3Client = field(repr=False)
    dynamodb: DynamoDBClient = field(repr=False)
    config: AppConfig

    @property
    def environ(self) -> dict[str, str]:
        """Environment variables for code that builds its own clients and config.

        ``config.to_env()`` plus ``AWS_ENDPOINT_URL`` (boto3 sends every default client to
        the moto server), the region and the fake credentials.
        """
        return {
            **self.config.to_env(),
            **FAKE_CREDENTIALS,
            "AWS_DEFAULT_REGION": REGION,
            "AWS_ENDPOINT_URL": self.endpoint_url,
        }


@pytest.fixture(scope="session")
def moto_server() -> Iterator[str]:
    """Start moto's server on 127.0.0.1 (a free port) for the session; yield its URL."""
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


@pytest.fixture
def aws_test_env(monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """Set fake credentials and the region in the environment; drop ``AWS_PROFILE``."""
    values = {**FAKE_CREDENTIALS, "AWS_DEFAULT_REGION": REGION}
    for name, value in values.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    return values


@pytest.fixture
def make_aggregator_env(
    moto_server: str,
    aws_test_env: dict[str, str],
) -> Callable[..., AggregatorEnv]:
    """A factory of `AggregatorEnv`: fresh buckets and table on every call.

    Keyword arguments: ``versioned_source`` (default ``False``), ``name_prefix`` (default
    ``"da"``), and any other ``AppConfig`` field for the config.
    """

    def _make(
        *, versioned_source: bool = False, name_prefix: str = "da", **config: Any
    ) -> AggregatorEnv:
        suffix = uuid.uuid4().hex[:12]
        s3: Boto3S3Client = make_aws_client("s3", moto_server)
        dynamodb: DynamoDBClient = make_aws_client("dynamodb", moto_server)
        source = f"{name_prefix}-source-{suffix}"
        destination = f"{name_prefix}-bundles-{suffix}"
        table = f"{name_prefix}-idempotency-{suffix}"
        s3.create_bucket(Bucket=source)
        if versioned_source:
            s3.put_bucket_versioning(Bucket=source, VersioningConfiguration={"Status": "Enabled"})
        s3.create_bucket(Bucket=destination)
        create_idempotency_table(dynamodb, table)
        app_config = AppConfig(
            distribution_bucket_name=destination, idempotency_table_name=table, **config
        )
        return AggregatorEnv(
            endpoint_url=moto_server,
            source_bucket=source,
            destination_bucket=destination,
            table_name=table,
            s3=s3,
            dynamodb=dynamodb,
            config=app_config,
        )

    return _make


@pytest.fixture
def aggregator_env(
    request: pytest.FixtureRequest, make_aggregator_env: Callable[..., AggregatorEnv]
) -> AggregatorEnv:
    """Source and destination buckets, an idempotency table, clients and an ``AppConfig``."""
    options: dict[str, Any] = dict(getattr(request, "param", None) or {})
    return make_aggregator_env(**options)


@pytest.fixture
def handler_env(aggregator_env: AggregatorEnv) -> Iterator[AggregatorEnv]:
    """``aggregator_env``, applied to ``os.environ`` for a handler module to read.

    Sets ``aggregator_env.environ`` (configuration, endpoint, region, fake credentials),
    removes ``AWS_PROFILE`` and clears ``get_config()``'s cache; undoes all of it after the
    test. Import your handler inside the test with ``import_handler``.
    """
    with _use_environment(aggregator_env.environ):
        yield aggregator_env
