"""The clients' deadline hooks without a server: nothing is sent once the deadline has
passed (the endpoint is a closed port, so a request that went out would fail otherwise)."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from botocore.exceptions import EndpointConnectionError

from data_aggregator import _deadline
from data_aggregator.clients import add_deadline_hooks
from data_aggregator.clients._deadline_hooks import (
    MIN_READ_TIMEOUT_SECONDS,
    _DeadlineBoundRetry,
    _registered,
)
from data_aggregator.exceptions import DeadlineExceededError
from data_aggregator.testing.pytest_plugin import make_aws_client

CLOSED = "http://127.0.0.1:9"  # the discard port: nothing listens on loopback
EXPIRED = _deadline.Deadline(lambda: -0.25)


def _client(service: str = "s3", **config: Any) -> Any:
    config.setdefault("retries", {"mode": "standard", "total_max_attempts": 1})
    return make_aws_client(service, CLOSED, connect_timeout=0.5, **config)


@pytest.mark.parametrize("mode", ["standard", "adaptive", "legacy"])
def test_the_retry_handler_is_wrapped_once(mode: str) -> None:
    client = _client(retries={"mode": mode, "total_max_attempts": 2})
    add_deadline_hooks(client)
    add_deadline_hooks(client)
    handler = _registered(client.meta.events, "retry-config-s3")
    assert isinstance(handler, _DeadlineBoundRetry)
    assert not isinstance(handler._handler, _DeadlineBoundRetry)


@pytest.mark.parametrize("service", ["s3", "dynamodb"])
def test_an_expired_deadline_stops_the_request_before_it_is_sent(service: str) -> None:
    client = _client(service)
    add_deadline_hooks(client)
    operation = "HeadBucket" if service == "s3" else "DescribeTable"
    params = {"Bucket": "bucket"} if service == "s3" else {"TableName": "table"}
    with _deadline.scope(EXPIRED), pytest.raises(DeadlineExceededError) as caught:
        getattr(client, "head_bucket" if service == "s3" else "describe_table")(**params)
    assert caught.value.context == {"operation": operation, "overdue_seconds": 0.25}


def test_without_a_deadline_the_client_is_unchanged() -> None:
    client = _client()
    add_deadline_hooks(client)
    with pytest.raises(EndpointConnectionError):
        client.head_bucket(Bucket="bucket")


def test_without_a_retry_handler_the_send_check_still_holds(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A client whose retry handler cannot be found (another botocore, or none) still
    gets the check before each attempt; the missing wrapper is logged."""
    client = _client()
    client.meta.events.unregister("needs-retry.s3", unique_id="retry-config-s3")
    with caplog.at_level(logging.DEBUG, logger="data_aggregator.clients._deadline_hooks"):
        add_deadline_hooks(client)
    assert "no botocore retry handler found" in caplog.text
    with _deadline.scope(EXPIRED), pytest.raises(DeadlineExceededError):
        client.head_bucket(Bucket="bucket")


class _SentError(Exception):
    """Raised by the fake HTTP session: the request got as far as being sent."""


def _read_timeout_sent(client: Any, deadline: _deadline.Deadline | None) -> object:
    """The ``read_timeout`` the request context carried when ``client`` sent a request
    under ``deadline`` (``None``: the client's own applies), through a fake HTTP session."""
    seen: dict[str, object] = {}

    def send(request: Any) -> Any:
        seen["read_timeout"] = request.context.get("read_timeout")
        raise _SentError

    client._endpoint.http_session.send = send
    with _deadline.scope(deadline), pytest.raises(_SentError):
        client.head_bucket(Bucket="bucket")
    return seen["read_timeout"]


@pytest.mark.parametrize(
    ("left", "configured", "expected"),
    [
        (5.0, 60.0, 5.0),  # the time left, when shorter than the client's timeout
        (100.0, 2.0, 2.0),  # the client's own, when shorter than the time left
        (0.001, 60.0, MIN_READ_TIMEOUT_SECONDS),  # never below the minimum
    ],
    ids=["time-left", "client-timeout", "minimum"],
)
def test_each_attempt_waits_for_its_answer_no_longer_than_the_time_left(
    left: float, configured: float, expected: float
) -> None:
    client = _client(read_timeout=configured)
    add_deadline_hooks(client)
    assert _read_timeout_sent(client, _deadline.Deadline(lambda: left)) == expected


def test_a_client_without_a_read_timeout_gets_the_time_left() -> None:
    client = _client(read_timeout=None)
    add_deadline_hooks(client)
    assert _read_timeout_sent(client, _deadline.Deadline(lambda: 5.0)) == 5.0


def test_without_a_deadline_the_read_timeout_is_the_clients() -> None:
    client = _client(read_timeout=7.0)
    add_deadline_hooks(client)
    assert _read_timeout_sent(client, None) is None
