"""A fault-injecting HTTP proxy in front of an S3 / DynamoDB endpoint (private).

Standard library only: a `http.server.ThreadingHTTPServer` on 127.0.0.1 (one thread per
client connection, kept alive) that forwards each request with `http.client` to the
upstream endpoint (moto's server, SeaweedFS, DynamoDB Local), streaming bodies both ways.
Each request is classified by service and operation (DynamoDB by its ``X-Amz-Target``
header, S3 by method, path and query) and counted; rules, changed at any time from any
thread, add latency to every request or answer a share of the matching ones with a fault
instead of forwarding them.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import logging
import random
import socket
import threading
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Literal
from urllib.parse import parse_qs, unquote, urlsplit

if TYPE_CHECKING:
    from collections.abc import Iterator
    from types import TracebackType

    from typing_extensions import Self

__all__ = ["FaultKind", "FaultProxy", "FaultRule", "RequestCounts", "classify"]

logger = logging.getLogger(__name__)

FaultKind = Literal["error", "stall"]
AfterStall = Literal["error", "close", "forward"]

#: Bytes moved per read while streaming a body.
_CHUNK = 64 * 1024
#: Request bodies up to this size are read whole before forwarding, so that a request sent
#: on a kept-alive upstream connection the server had closed can be sent again.
_BUFFERED_BODY = 1024 * 1024
#: Headers that describe one hop, never forwarded as they are.
_HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "expect",
    }
)
_DYNAMODB_TARGET_PREFIX = "DynamoDB_"
_SERVICE_DEFAULTS: dict[str, tuple[int, str]] = {
    "s3": (503, "SlowDown"),
    "dynamodb": (400, "ProvisionedThroughputExceededException"),
}
_S3_MESSAGES = {
    "SlowDown": "Please reduce your request rate.",
    "ServiceUnavailable": "Please reduce your request rate.",
    "InternalError": "We encountered an internal error. Please try again.",
}
_DYNAMODB_MESSAGES = {
    "ProvisionedThroughputExceededException": (
        "The level of configured provisioned throughput for the table was exceeded. "
        "Consider increasing your provisioning level with the UpdateTable API."
    ),
    "ThrottlingException": "Rate of requests exceeds the allowed throughput.",
    "RequestLimitExceeded": "Throughput exceeds the current throughput limit for your account.",
    "InternalServerError": "Internal server error",
}
_REASONS = {400: "Bad Request", 500: "Internal Server Error", 503: "Slow Down"}
# Bucket sub-resources (query parameters) and the operation name part they give.
_BUCKET_SUBRESOURCES = {
    "versioning": "BucketVersioning",
    "tagging": "BucketTagging",
    "policy": "BucketPolicy",
    "acl": "BucketAcl",
    "cors": "BucketCors",
    "lifecycle": "BucketLifecycleConfiguration",
    "encryption": "BucketEncryption",
    "notification": "BucketNotificationConfiguration",
    "location": "BucketLocation",
    "ownershipControls": "BucketOwnershipControls",
    "publicAccessBlock": "PublicAccessBlock",
    "object-lock": "ObjectLockConfiguration",
}
_VERBS = {"GET": "Get", "PUT": "Put", "DELETE": "Delete"}


# --------------------------------------------------------------------------- classify


def classify(method: str, target: str | None, path: str) -> tuple[str, str, str | None, str | None]:
    """Name the AWS call an HTTP request makes: ``(service, operation, bucket, key)``.

    ``target`` is the ``X-Amz-Target`` header: ``DynamoDB_20120810.PutItem`` is
    ``("dynamodb", "PutItem", None, None)``; any other target is service ``"other"``.
    Without one, the request is S3 in path style (``/bucket/key?query``):
    ``GET /b/k`` is ``("s3", "GetObject", "b", "k")``, ``PUT /b/k?partNumber=2&uploadId=u``
    is ``UploadPart``, ``GET /b?list-type=2`` is ``ListObjectsV2`` ... A path under
    ``/moto-api/`` is service ``"other"``.
    """
    if target:
        prefix, _, operation = target.rpartition(".")
        service = "dynamodb" if prefix.startswith(_DYNAMODB_TARGET_PREFIX) else "other"
        return service, operation or target, None, None
    parts = urlsplit(path)
    query = parse_qs(parts.query, keep_blank_values=True)
    bucket, _, raw_key = parts.path.lstrip("/").partition("/")
    if bucket == "moto-api":
        return "other", "MotoApi", None, None
    method = method.upper()
    if not bucket:
        return "s3", "ListBuckets" if method == "GET" else f"{method.title()}Service", None, None
    if not raw_key:
        return "s3", _bucket_operation(method, query), unquote(bucket), None
    key = unquote(raw_key)
    return "s3", _object_operation(method, query), unquote(bucket), key


def _bucket_operation(method: str, query: dict[str, list[str]]) -> str:
    for name, suffix in _BUCKET_SUBRESOURCES.items():
        if name in query:
            return f"{_VERBS.get(method, method.title())}{suffix}"
    if method == "GET":
        if "uploads" in query:
            return "ListMultipartUploads"
        if "versions" in query:
            return "ListObjectVersions"
        return "ListObjectsV2" if query.get("list-type") == ["2"] else "ListObjects"
    if method == "POST" and "delete" in query:
        return "DeleteObjects"
    return {
        "PUT": "CreateBucket",
        "HEAD": "HeadBucket",
        "DELETE": "DeleteBucket",
    }.get(method, f"{method.title()}Bucket")


def _object_operation(method: str, query: dict[str, list[str]]) -> str:
    if "tagging" in query:
        return f"{_VERBS.get(method, method.title())}ObjectTagging"
    if "acl" in query:
        return f"{_VERBS.get(method, method.title())}ObjectAcl"
    if method == "GET":
        return "ListParts" if "uploadId" in query else "GetObject"
    if method == "HEAD":
        return "HeadObject"
    if method == "PUT":
        return "UploadPart" if "partNumber" in query else "PutObject"
    if method == "POST":
        if "uploads" in query:
            return "CreateMultipartUpload"
        if "uploadId" in query:
            return "CompleteMultipartUpload"
        return "PostObject"
    if method == "DELETE":
        return "AbortMultipartUpload" if "uploadId" in query else "DeleteObject"
    return f"{method.title()}Object"


# --------------------------------------------------------------------------- rules


@dataclass(frozen=True)
class FaultRule:
    """Which requests fail, how often, and how.

    Attributes:
        service: ``"s3"``, ``"dynamodb"`` or ``"other"``.
        operation: The operation (``GetObject``, ``PutItem``, ``TransactWriteItems`` ...);
            ``None`` matches every operation of the service.
        fraction: Share of the matching requests that fail (0 to 1), drawn from the
            proxy's seeded random generator.
        kind: ``"error"``: answer at once with the service's throttling error (S3:
            ``503 SlowDown``, XML body; DynamoDB: ``400
            ProvisionedThroughputExceededException``, JSON body) without forwarding.
            ``"stall"``: hold the request ``stall_seconds``, then do ``after_stall``.
        stall_seconds: How long a stall holds the request.
        after_stall: After a stall: ``"close"`` the connection without an answer,
            answer the ``"error"``, or ``"forward"`` the request (a slow answer).
        status: The error's HTTP status instead of the service's default.
        error_code: The error's code instead of the service's default (S3: ``SlowDown``,
            ``InternalError`` ...; DynamoDB: ``ThrottlingException`` ...).
        bucket: Only S3 requests on this bucket.
        key_prefix: Only S3 requests on a key starting with this.
        max_faults: Stop failing after this many faults (``None``: never).
        retry_after_ms: Sent with an error as ``x-amz-retry-after`` (milliseconds):
            botocore's standard and adaptive modes then wait at least that long (up to
            5 s more than their own backoff) before retrying: a retry delay a test can
            count on.
    """

    service: str
    operation: str | None = None
    fraction: float = 1.0
    kind: FaultKind = "error"
    stall_seconds: float = 0.0
    after_stall: AfterStall = "close"
    status: int | None = None
    error_code: str | None = None
    bucket: str | None = None
    key_prefix: str | None = None
    max_faults: int | None = None
    retry_after_ms: int | None = None

    def __post_init__(self) -> None:
        if not 0.0 <= self.fraction <= 1.0:
            msg = f"fraction must be between 0 and 1, got {self.fraction}"
            raise ValueError(msg)
        if self.kind not in ("error", "stall"):
            msg = f"kind must be 'error' or 'stall', got {self.kind!r}"
            raise ValueError(msg)
        if self.stall_seconds < 0:
            msg = f"stall_seconds must not be negative, got {self.stall_seconds}"
            raise ValueError(msg)

    def matches(self, request: _Request) -> bool:
        """Whether ``request`` is one this rule may fail."""
        if request.service != self.service:
            return False
        if self.operation is not None and request.operation != self.operation:
            return False
        if self.bucket is not None and request.bucket != self.bucket:
            return False
        return self.key_prefix is None or (request.key or "").startswith(self.key_prefix)


@dataclass
class RequestCounts:
    """Requests of one ``(service, operation)``.

    Attributes:
        received: Requests the proxy received.
        forwarded: Requests sent on to the upstream endpoint (a stall that forwards
            counts here too).
        faulted: Requests that met a fault (an error, or a stall).
    """

    received: int = 0
    forwarded: int = 0
    faulted: int = 0


@dataclass
class _Request:
    service: str
    operation: str
    bucket: str | None
    key: str | None


@dataclass
class _RuleState:
    rule: FaultRule
    faults: int = 0


@dataclass
class _State:
    """Everything the handler threads share, behind one lock."""

    rng: random.Random
    latency: float = 0.0
    rules: list[_RuleState] = field(default_factory=list)
    counts: dict[tuple[str, str], RequestCounts] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def count(self, request: _Request, what: str) -> None:
        with self.lock:
            counts = self.counts.setdefault((request.service, request.operation), RequestCounts())
            setattr(counts, what, getattr(counts, what) + 1)

    def draw(self, request: _Request) -> FaultRule | None:
        """The rule failing ``request``, if any (the first matching rule that draws it)."""
        with self.lock:
            for state in self.rules:
                rule = state.rule
                if not rule.matches(request):
                    continue
                if rule.max_faults is not None and state.faults >= rule.max_faults:
                    continue
                if rule.fraction >= 1.0 or self.rng.random() < rule.fraction:
                    state.faults += 1
                    return rule
            return None


# --------------------------------------------------------------------------- the proxy


class FaultProxy:
    """A threaded HTTP reverse proxy on 127.0.0.1 that injects latency and faults.

    Put it in front of an S3 or DynamoDB endpoint (moto's server, SeaweedFS, DynamoDB
    Local) and point boto3 at [`endpoint_url`][data_aggregator.testing.FaultProxy.endpoint_url]
    instead. Every request is classified (service and operation, see
    [`FaultRule`][data_aggregator.testing.FaultRule]) and counted; requests are forwarded
    with their headers untouched (``Host`` included, so SigV4 still verifies upstream) and
    their bodies streamed both ways, on kept-alive connections. Rules change at any time,
    from any thread:

    * [`latency`][data_aggregator.testing.FaultProxy.latency]: seconds added to every
      request before it is answered or forwarded;
    * [`add_fault`][data_aggregator.testing.FaultProxy.add_fault]: answer a share of the
      matching requests with the service's throttling error, or stall them.

    Which requests fail is drawn from a `random.Random` seeded with ``seed``: with one
    client thread, the same requests fail on every run. Standard library only; S3
    requests must use path-style addressing (boto3 does, for an endpoint on an IP address).

    Args:
        upstream: The endpoint to forward to, ``http://host:port``.
        seed: Seed of the fault draws.
        latency: Initial [`latency`][data_aggregator.testing.FaultProxy.latency].
        upstream_timeout: Socket timeout of the upstream connections, in seconds.

    ```python
    with FaultProxy(moto_url, seed=7) as proxy:
        proxy.add_fault("s3", "GetObject", fraction=0.2)  # 503 SlowDown
        s3 = boto3.client("s3", endpoint_url=proxy.endpoint_url)
        ...
        assert proxy.counts()["s3", "GetObject"].faulted > 0
    ```
    """

    def __init__(
        self,
        upstream: str,
        *,
        seed: int = 0,
        latency: float = 0.0,
        upstream_timeout: float = 60.0,
    ) -> None:
        parts = urlsplit(upstream)
        if parts.scheme != "http" or not parts.hostname:
            msg = f"upstream must be an http://host:port URL, got {upstream!r}"
            raise ValueError(msg)
        self.upstream = upstream
        self._upstream_address = (parts.hostname, parts.port or 80)
        self._upstream_timeout = upstream_timeout
        self._state = _State(rng=random.Random(seed))  # noqa: S311 - test faults, not secrets
        self.latency = latency
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> Self:
        """Listen on 127.0.0.1 (a free port) and serve in a daemon thread."""
        if self._server is not None:
            return self
        server = _Server(("127.0.0.1", 0), _Handler)
        server.proxy = self
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="fault-proxy",
            daemon=True,
        )
        self._thread.start()
        logger.debug(
            "fault proxy started", extra={"url": self.endpoint_url, "upstream": self.upstream}
        )
        return self

    def stop(self) -> None:
        """Stop serving: end the server thread, close every client connection, end stalls."""
        server, self._server = self._server, None
        if server is None:
            return
        server.stopping.set()
        server.shutdown()
        server.close_connections()
        server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def endpoint_url(self) -> str:
        """``http://127.0.0.1:<port>``: where clients send their requests."""
        if self._server is None:
            msg = "the proxy is not running: call start() or use it as a context manager"
            raise RuntimeError(msg)
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    # ------------------------------------------------------------------ rules

    @property
    def latency(self) -> float:
        """Seconds added to every request (a round trip's worth), ``0`` for none."""
        with self._state.lock:
            return self._state.latency

    @latency.setter
    def latency(self, seconds: float) -> None:
        if seconds < 0:
            msg = f"latency must not be negative, got {seconds}"
            raise ValueError(msg)
        with self._state.lock:
            self._state.latency = float(seconds)

    def add_fault(
        self,
        service: str,
        operation: str | None = None,
        *,
        fraction: float = 1.0,
        kind: FaultKind = "error",
        stall_seconds: float = 0.0,
        after_stall: AfterStall = "close",
        status: int | None = None,
        error_code: str | None = None,
        bucket: str | None = None,
        key_prefix: str | None = None,
        max_faults: int | None = None,
        retry_after_ms: int | None = None,
    ) -> FaultRule:
        """Fail ``fraction`` of the requests matching ``service`` and ``operation``.

        The arguments are [`FaultRule`][data_aggregator.testing.FaultRule]'s. Rules are
        tried in the order they were added; the first one that matches and draws a
        request fails it. Returns the rule, for
        [`remove_fault`][data_aggregator.testing.FaultProxy.remove_fault].
        """
        rule = FaultRule(
            service,
            operation,
            fraction=fraction,
            kind=kind,
            stall_seconds=stall_seconds,
            after_stall=after_stall,
            status=status,
            error_code=error_code,
            bucket=bucket,
            key_prefix=key_prefix,
            max_faults=max_faults,
            retry_after_ms=retry_after_ms,
        )
        with self._state.lock:
            self._state.rules.append(_RuleState(rule))
        return rule

    def remove_fault(self, rule: FaultRule) -> None:
        """Stop applying ``rule`` (no error if it is not there)."""
        with self._state.lock:
            self._state.rules = [s for s in self._state.rules if s.rule is not rule]

    def clear_faults(self) -> None:
        """Remove every fault rule (the latency stays)."""
        with self._state.lock:
            self._state.rules = []

    # ------------------------------------------------------------------ counters

    def counts(self) -> dict[tuple[str, str], RequestCounts]:
        """A snapshot of the counters, by ``(service, operation)``."""
        with self._state.lock:
            return {
                name: RequestCounts(c.received, c.forwarded, c.faulted)
                for name, c in self._state.counts.items()
            }

    def received(self, service: str, operation: str | None = None) -> int:
        """Requests received for ``service`` (and ``operation``, if given)."""
        return sum(c.received for c in self._matching(service, operation))

    def forwarded(self, service: str, operation: str | None = None) -> int:
        """Requests forwarded upstream for ``service`` (and ``operation``, if given)."""
        return sum(c.forwarded for c in self._matching(service, operation))

    def faulted(self, service: str, operation: str | None = None) -> int:
        """Requests that met a fault for ``service`` (and ``operation``, if given)."""
        return sum(c.faulted for c in self._matching(service, operation))

    def reset_counts(self) -> None:
        """Set every counter back to zero."""
        with self._state.lock:
            self._state.counts = {}

    def _matching(self, service: str, operation: str | None) -> Iterator[RequestCounts]:
        for (s, o), counts in self.counts().items():
            if s == service and (operation is None or o == operation):
                yield counts


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    proxy: FaultProxy

    def __init__(self, address: tuple[str, int], handler: type[_Handler]) -> None:
        super().__init__(address, handler)
        self.stopping = threading.Event()
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()

    def process_request(self, request: socket.socket, client_address: object) -> None:  # type: ignore[override]
        with self._connections_lock:
            self._connections.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: socket.socket) -> None:  # type: ignore[override]
        with self._connections_lock:
            self._connections.discard(request)
        super().shutdown_request(request)

    def close_connections(self) -> None:
        with self._connections_lock:
            connections = list(self._connections)
        for connection in connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Buffered: the status line, headers and a small body leave in one segment.
    wbufsize = _CHUNK
    server: _Server
    # An upstream connection kept alive for the requests of this client connection.
    _upstream: http.client.HTTPConnection | None = None

    def log_message(self, format: str, *args: object) -> None:
        logger.debug("fault proxy: %s", format % args)

    def do_GET(self) -> None:
        self._proxy()

    def do_HEAD(self) -> None:
        self._proxy()

    def do_PUT(self) -> None:
        self._proxy()

    def do_POST(self) -> None:
        self._proxy()

    def do_DELETE(self) -> None:
        self._proxy()

    def setup(self) -> None:
        super().setup()
        # No Nagle: an answer written in parts must not wait for the client's delayed ACK.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def handle_expect_100(self) -> bool:
        answered = super().handle_expect_100()
        self.wfile.flush()  # buffered: "100 Continue" must leave now
        return answered

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            if self._upstream is not None:
                self._upstream.close()
                self._upstream = None

    # ------------------------------------------------------------------ one request

    def _proxy(self) -> None:
        proxy = self.server.proxy
        state = proxy._state
        service, operation, bucket, key = classify(
            self.command, self.headers.get("X-Amz-Target"), self.path
        )
        request = _Request(service, operation, bucket, key)
        state.count(request, "received")
        body, streamed = self._request_body()
        stopping = self.server.stopping
        latency = proxy.latency
        if latency and stopping.wait(latency):
            self._close()
            return
        rule = state.draw(request)
        if rule is not None:
            state.count(request, "faulted")
            if rule.kind == "stall" and stopping.wait(rule.stall_seconds):
                self._close()
                return
            if rule.kind == "stall" and rule.after_stall == "close":
                self._close()
                return
            if rule.kind == "error" or rule.after_stall == "error":
                if streamed is not None:
                    _drain(streamed)
                self._send_error(request, rule)
                return
        state.count(request, "forwarded")
        self._forward(body, streamed)

    def _request_body(self) -> tuple[bytes | None, _ChunkedReader | _LengthReader | None]:
        """The body in memory (small) or a reader streaming it (large or chunked)."""
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            return None, _ChunkedReader(self.rfile)
        length = int(self.headers.get("Content-Length") or 0)
        if length <= _BUFFERED_BODY:
            return self.rfile.read(length) if length else None, None
        return None, _LengthReader(self.rfile, length)

    def _forward(self, body: bytes | None, streamed: _ChunkedReader | _LengthReader | None) -> None:
        try:
            response = self._send_upstream(body, streamed)
        except (OSError, http.client.HTTPException) as exc:
            logger.debug("fault proxy: upstream failed", extra={"error": repr(exc)})
            self._drop_upstream()
            self._send_simple(502, b"upstream failed", "text/plain")
            return
        try:
            self._relay(response)
        except OSError:  # the client left mid-answer: neither connection can go on
            self._drop_upstream()
            self.close_connection = True
            return
        response.close()  # the exchange is over: the connection may carry the next request
        if response.will_close:
            self._drop_upstream()

    def _send_upstream(
        self, body: bytes | None, streamed: _ChunkedReader | _LengthReader | None
    ) -> http.client.HTTPResponse:
        # A request whose body is streamed cannot be sent twice: it gets a fresh connection.
        # Others reuse the kept-alive one, and are sent again once if the server had closed it.
        if streamed is not None:
            self._drop_upstream()
        for attempt in (1, 2):
            reused = self._upstream is not None
            connection = self._connection()
            try:
                connection.putrequest(
                    self.command, self.path, skip_host=True, skip_accept_encoding=True
                )
                for name, value in self.headers.items():
                    lowered = name.lower()
                    if lowered not in _HOP_BY_HOP or (
                        # A chunked body is forwarded with its framing: keep its header.
                        lowered == "transfer-encoding" and isinstance(streamed, _ChunkedReader)
                    ):
                        connection.putheader(name, value)
                connection.endheaders()
                if streamed is not None:
                    for chunk in streamed:
                        connection.send(chunk)
                elif body:
                    connection.send(body)
                return connection.getresponse()
            except (ConnectionError, http.client.RemoteDisconnected):
                self._drop_upstream()
                if not reused or streamed is not None or attempt == 2:
                    raise
        raise AssertionError("unreachable")  # pragma: no cover

    def _connection(self) -> http.client.HTTPConnection:
        if self._upstream is None:
            host, port = self.server.proxy._upstream_address
            timeout = self.server.proxy._upstream_timeout
            self._upstream = _UpstreamConnection(host, port, timeout=timeout)
        return self._upstream

    def _drop_upstream(self) -> None:
        if self._upstream is not None:
            self._upstream.close()
            self._upstream = None

    def _relay(self, response: http.client.HTTPResponse) -> None:
        """Send ``response`` to the client, its body streamed."""
        self.send_response_only(response.status, response.reason)
        no_body = self.command == "HEAD" or response.status in (204, 304) or response.status < 200
        length = response.getheader("Content-Length")
        chunked = not no_body and length is None
        for name, value in response.getheaders():
            if name.lower() not in _HOP_BY_HOP:
                self.send_header(name, value)
        if chunked:
            self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        if no_body:
            return
        while True:
            data = response.read(_CHUNK)
            if not data:
                break
            if chunked:
                self.wfile.write(b"%x\r\n%b\r\n" % (len(data), data))
            else:
                self.wfile.write(data)
        if chunked:
            self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()

    # ------------------------------------------------------------------ faults

    def _send_error(self, request: _Request, rule: FaultRule) -> None:
        status, code = _SERVICE_DEFAULTS.get(request.service, (503, "SlowDown"))
        status = rule.status or status
        code = rule.error_code or code
        request_id = uuid.uuid4().hex.upper()
        extra = (
            {} if rule.retry_after_ms is None else {"x-amz-retry-after": str(rule.retry_after_ms)}
        )
        if request.service == "dynamodb":
            message = _DYNAMODB_MESSAGES.get(code, code)
            payload = {"__type": f"com.amazonaws.dynamodb.v20120810#{code}", "message": message}
            body = json.dumps(payload).encode()
            headers = {"x-amzn-RequestId": request_id, **extra}
            self._send_simple(status, body, "application/x-amz-json-1.0", headers)
            return
        message = _S3_MESSAGES.get(code, code)
        body = (
            '<?xml version="1.0" encoding="UTF-8"?>\n'
            f"<Error><Code>{code}</Code><Message>{message}</Message>"
            f"<RequestId>{request_id}</RequestId><HostId>fault-proxy</HostId></Error>"
        ).encode()
        headers = {"x-amz-request-id": request_id, "x-amz-id-2": "fault-proxy", **extra}
        self._send_simple(status, body, "application/xml", headers)

    def _send_simple(
        self,
        status: int,
        body: bytes,
        content_type: str,
        headers: dict[str, str] | None = None,
    ) -> None:
        try:
            self.send_response_only(status, _REASONS.get(status))
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)
            self.wfile.flush()
        except OSError:
            self.close_connection = True

    def _close(self) -> None:
        """Drop the client connection without an answer."""
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_RDWR)


class _UpstreamConnection(http.client.HTTPConnection):
    """An upstream connection without Nagle's algorithm (see `_Handler.setup`)."""

    def connect(self) -> None:
        super().connect()
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


class _LengthReader:
    """Yields the ``length`` bytes of a request body, a chunk at a time."""

    def __init__(self, stream: object, length: int) -> None:
        self._stream = stream
        self._left = length

    def __iter__(self) -> Iterator[bytes]:
        read = self._stream.read  # type: ignore[attr-defined]
        while self._left > 0:
            data: bytes = read(min(_CHUNK, self._left))
            if not data:
                raise ConnectionError("the client closed the connection mid-body")
            self._left -= len(data)
            yield data


class _ChunkedReader:
    """Yields a chunked request body as it came, framing included (forwarded verbatim)."""

    def __init__(self, stream: object) -> None:
        self._stream = stream

    def __iter__(self) -> Iterator[bytes]:
        readline = self._stream.readline  # type: ignore[attr-defined]
        read = self._stream.read  # type: ignore[attr-defined]
        while True:
            line: bytes = readline(65537)
            if not line:
                raise ConnectionError("the client closed the connection mid-body")
            yield line
            size = int(line.split(b";", 1)[0].strip() or b"0", 16)
            if size == 0:
                break
            left = size + 2  # the chunk and its CRLF
            while left > 0:
                data: bytes = read(min(_CHUNK, left))
                if not data:
                    raise ConnectionError("the client closed the connection mid-body")
                left -= len(data)
                yield data
        while True:  # trailers, up to the empty line
            line = readline(65537)
            yield line
            if line in (b"\r\n", b"\n", b""):
                return


def _drain(reader: _ChunkedReader | _LengthReader) -> None:
    for _ in reader:
        pass
