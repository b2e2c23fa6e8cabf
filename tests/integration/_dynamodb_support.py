"""Helpers for the DynamoDB idempotency tests: the DynamoDB endpoint and table factories.

On the real servers (``DATA_AGGREGATOR_TEST_BACKEND=real``) the endpoint is DynamoDB
Local's, which makes every conditional write atomic, as DynamoDB does: nothing in between.

On moto it needs a shim: moto's DynamoDB backend evaluates a condition and applies the
write without a lock, so two concurrent HTTP requests can both pass the same condition, and
its ``TransactWriteItems`` is not thread-safe (concurrent transactions on one table fail
with 500s). To test *our* conditions rather than moto's thread-safety, the moto endpoint
handles one request at a time behind a lock, while still accepting connections
concurrently over real HTTP. The races that only atomic writes decide run on DynamoDB Local
alone (``test_claim_race_real.py``).
"""

from __future__ import annotations

import functools
import threading
import uuid
from typing import TYPE_CHECKING, Any

import pytest

from data_aggregator.idempotency import DynamoDBIdempotencyStore, create_idempotency_table
from tests.integration.conftest import make_client

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Iterator

    from mypy_boto3_dynamodb import DynamoDBClient

    from data_aggregator.idempotency import BatchMode
    from data_aggregator.testing.pytest_plugin import AwsBackend


class AtomicMotoServer:
    """moto's server on 127.0.0.1 with request handling serialised (see module doc)."""

    def __init__(self) -> None:
        from moto.moto_server.werkzeug_app import (
            DomainDispatcherApplication,
            MotoRequestHandler,
            create_backend_app,
        )
        from werkzeug.serving import make_server

        class _QuietHandler(MotoRequestHandler):
            def log_request(self, *args: Any, **kwargs: Any) -> None:
                """Do not print one access-log line per request."""

        app = DomainDispatcherApplication(create_backend_app)
        lock = threading.Lock()

        def serialised(environ: Any, start_response: Any) -> Any:
            with lock:
                # Materialise the body inside the lock: the backend runs while iterating.
                return list(app(environ, start_response))

        self._server = make_server(
            "127.0.0.1", 0, serialised, threaded=True, request_handler=_QuietHandler
        )
        # A short poll interval: shutdown() waits up to one interval (0.5 s by default).
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    @property
    def endpoint(self) -> str:
        """The server's base URL."""
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> None:
        """Serve in a background thread."""
        self._thread.start()

    def stop(self) -> None:
        """Stop serving."""
        self._server.shutdown()
        self._thread.join()


@pytest.fixture(scope="module")
def atomic_endpoint(aws_backend: AwsBackend) -> Iterator[str]:
    """A DynamoDB endpoint with atomic conditional writes: DynamoDB Local, or moto's shim."""
    if aws_backend.is_real:
        yield aws_backend.dynamodb_endpoint_url
        return
    server = AtomicMotoServer()
    server.start()
    try:
        yield server.endpoint
    finally:
        server.stop()


def ddb_client(endpoint: str, pool: int = 32) -> DynamoDBClient:
    """A DynamoDB client for ``endpoint`` with a connection pool of ``pool``."""
    client: DynamoDBClient = make_client("dynamodb", endpoint, max_pool_connections=pool)
    return client


def new_table(client: DynamoDBClient, prefix: str = "idem") -> str:
    """Create a uniquely named idempotency table and return its name."""
    name = f"{prefix}-{uuid.uuid4().hex[:12]}"
    create_idempotency_table(client, name)
    return name


def overlapping_sets(keys: list[str], workers: int, share: int) -> Iterable[list[str]]:
    """``workers`` windows over ``keys`` (a ring), each ``share`` keys long, overlapping."""
    step = len(keys) // workers
    for i in range(workers):
        yield [keys[(i * step + j) % len(keys)] for j in range(share)]


@functools.cache
def _shared_client(endpoint: str) -> DynamoDBClient:
    """One client per endpoint for the store factories (making a client takes ~0.2 s).

    Clients are thread-safe; tests that register event hooks make their own."""
    return ddb_client(endpoint)


#: moto's PartiQL cannot run the ``"statements"`` mode: no ``?`` parameters in an
#: ``INSERT`` (a 500), no float literals, an ``INSERT`` over an existing item overwrites
#: it, and an ``UPDATE`` whose ``WHERE`` matches nothing answers no error (moto 5.2.6).
PARTIQL_ON_REAL_SERVERS_ONLY = pytest.mark.real_servers_only(
    reason="moto's PartiQL has no INSERT parameters and no conditional statements"
)

#: The store's batch modes; the DynamoDB suites run against each (``hybrid``, the
#: default, claims as ``single`` does and completes as ``transact`` does; ``statements``
#: on DynamoDB Local only).
BATCH_MODES: tuple[Any, ...] = (
    "hybrid",
    "single",
    "transact",
    pytest.param("statements", marks=PARTIQL_ON_REAL_SERVERS_ONLY),
)


def statement_key(statement: dict[str, Any]) -> str:
    """The key a ``BatchStatementRequest`` of the store writes: an ``INSERT``'s first
    parameter, an ``UPDATE``'s third from last (``WHERE <key> AND status AND owner``)."""
    parameters = statement["Parameters"]
    value = parameters[0] if statement["Statement"].startswith("INSERT") else parameters[-3]
    key: str = value["S"]
    return key


def store_factory(
    endpoint: str, batch_mode: BatchMode = "hybrid"
) -> Callable[..., DynamoDBIdempotencyStore]:
    """A factory of DynamoDB stores in ``batch_mode``, each over a fresh table on
    ``endpoint``."""
    client = _shared_client(endpoint)

    def make(**kwargs: Any) -> DynamoDBIdempotencyStore:
        kwargs.setdefault("max_workers", 8)
        kwargs.setdefault("batch_mode", batch_mode)
        return DynamoDBIdempotencyStore(new_table(client), client=client, **kwargs)

    return make
