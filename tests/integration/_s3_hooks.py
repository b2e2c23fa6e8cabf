"""botocore event hooks for S3 integration tests: record requests, inject faults.

Hooks run inside the client, on the real HTTP path to the moto server: ``before-send``
sees every attempt's final headers and may answer instead of the server (a fake
``AWSResponse``) or raise a transport error, exactly where a network failure would.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, cast
from urllib.parse import parse_qs, urlsplit

import boto3
from botocore.awsrequest import AWSResponse
from botocore.config import Config

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from botocore.awsrequest import AWSPreparedRequest
    from mypy_boto3_s3 import S3Client as Boto3S3Client

REGION = "us-east-1"


def no_retry_client(endpoint: str, **config: Any) -> Boto3S3Client:
    """An S3 client for the moto server that never retries (faults surface at once)."""
    client: Boto3S3Client = boto3.session.Session(
        aws_access_key_id="testing", aws_secret_access_key="testing", region_name=REGION
    ).client(
        "s3",
        endpoint_url=endpoint,
        config=Config(retries={"mode": "standard", "total_max_attempts": 1}, **config),
    )
    return client


class _Raw:
    """Just enough of a urllib3 response for botocore to parse a fake answer."""

    def __init__(self, body: bytes) -> None:
        self._body = body

    def stream(self, **_: Any) -> Iterator[bytes]:
        yield self._body


def fake_response(
    request: AWSPreparedRequest, status: int, headers: dict[str, str], raw: object
) -> AWSResponse:
    """A fake answer to ``request``: ``raw`` needs ``stream()`` (and ``read()`` for bodies
    botocore streams to the caller, such as ``GetObject``'s)."""
    return AWSResponse(request.url, status, cast("Any", headers), raw)


def error_response(
    request: AWSPreparedRequest, status: int, code: str | None = None, message: str = "injected"
) -> AWSResponse:
    """A fake S3 error answer (XML body when ``code`` is given, empty body otherwise)."""
    body = b""
    if code is not None:
        body = f"<Error><Code>{code}</Code><Message>{message}</Message></Error>".encode()
    headers = {"content-type": "application/xml", "x-amz-request-id": "INJECTED"}
    return fake_response(request, status, headers, _Raw(body))


def xml_response(request: AWSPreparedRequest, body: bytes) -> AWSResponse:
    """A fake successful S3 answer (200) with the XML ``body``."""
    headers = {"content-type": "application/xml", "x-amz-request-id": "INJECTED"}
    return fake_response(request, 200, headers, _Raw(body))


def part_number(request: AWSPreparedRequest) -> int | None:
    """The ``partNumber`` query parameter of an ``UploadPart`` request."""
    values = parse_qs(urlsplit(request.url).query).get("partNumber")
    return int(values[0]) if values else None


@dataclass
class Sent:
    """One HTTP request as sent: its operation and lower-cased headers."""

    operation: str
    headers: dict[str, str]
    url: str


@dataclass
class RequestLog:
    """Records every request a client sends (register with :meth:`attach`)."""

    sent: list[Sent] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def attach(self, client: Boto3S3Client) -> RequestLog:
        """Start recording ``client``'s requests."""
        client.meta.events.register("before-send.s3", self._record)
        return self

    def _record(self, request: AWSPreparedRequest, event_name: str, **_: Any) -> None:
        items: list[tuple[Any, Any]] = list(request.headers.items())
        headers = {
            str(k).lower(): (v.decode() if isinstance(v, bytes) else str(v)) for k, v in items
        }
        with self._lock:
            self.sent.append(Sent(event_name.rsplit(".", 1)[-1], headers, request.url))

    def operations(self) -> list[str]:
        """Operation names in the order sent."""
        return [s.operation for s in self.sent]

    def of(self, operation: str) -> list[Sent]:
        """The requests of one operation."""
        return [s for s in self.sent if s.operation == operation]


def inject(
    client: Boto3S3Client,
    operation: str,
    fault: Callable[[AWSPreparedRequest], AWSResponse | None],
) -> None:
    """Call ``fault(request)`` before each ``operation`` request; a response replaces S3's."""

    def _hook(request: AWSPreparedRequest, **_: Any) -> AWSResponse | None:
        return fault(request)

    client.meta.events.register(f"before-send.s3.{operation}", cast("Any", _hook))


@dataclass
class Concurrency:
    """Counts requests in flight at once (``before-send`` to ``after-call``).

    Works for any botocore client: ``attach(client, "GetObject")`` tracks one S3 operation,
    ``attach(client, None, service="dynamodb")`` every DynamoDB request.
    """

    active: int = 0
    peak: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def attach(
        self, client: Any, operation: str | None, delay: float = 0.0, *, service: str = "s3"
    ) -> Concurrency:
        """Track ``operation`` (every operation when ``None``) of ``service``.

        Optionally holds each request ``delay`` seconds before sending it.
        """
        import time

        event = service if operation is None else f"{service}.{operation}"

        def _start(**_: Any) -> None:
            with self._lock:
                self.active += 1
                self.peak = max(self.peak, self.active)
            if delay:
                time.sleep(delay)

        def _end(**_: Any) -> None:
            with self._lock:
                self.active -= 1

        client.meta.events.register(f"before-send.{event}", _start)
        client.meta.events.register(f"after-call.{event}", _end)
        client.meta.events.register(f"after-call-error.{event}", _end)
        return self
