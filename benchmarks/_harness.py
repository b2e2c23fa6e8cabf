"""Shared benchmark harness: an emulator (moto) in its own process and injected latency.

The server runs in a separate process so that its CPU work does not compete with the code
under test for the GIL. Latency is injected per request on the client side through a
botocore ``before-send`` hook: every HTTP request pays one round trip, as on a kept-alive
connection to real S3/DynamoDB (``python -m moto.server`` closes every connection, so a
proxy that delayed each new connection would charge a handshake per request instead).
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import resource
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import TYPE_CHECKING, Any

import boto3
from botocore.config import Config

if TYPE_CHECKING:
    from collections.abc import Iterator

REGION = "us-east-1"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextlib.contextmanager
def server_process(argv: list[str], port: int) -> Iterator[str]:
    """Run ``argv`` (a server listening on 127.0.0.1:``port``); yield its endpoint URL.

    Waits until the server answers HTTP (moto's ``/moto-api/``; any HTTP answer counts, so
    other emulators work too), and stops the process on exit.
    """
    with _running(argv, port) as (endpoint, _pid):
        yield endpoint


@contextlib.contextmanager
def _running(argv: list[str], port: int) -> Iterator[tuple[str, int]]:
    proc = subprocess.Popen(  # noqa: S603 - our own interpreter and code
        argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    endpoint = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"{endpoint}/moto-api/", timeout=1):  # noqa: S310
                    break
            except urllib.error.HTTPError:
                break  # it answered: up, though not moto
            except OSError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise RuntimeError(f"server did not start: {argv[0]}") from None
                time.sleep(0.1)
        yield endpoint, proc.pid
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=30)


def process_cpu_seconds(pid: int) -> float:
    """User + system CPU seconds a running process has used so far (Linux ``/proc``)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


#: The S3 servers ``s3_server`` runs (``--s3`` / ``--server`` of the benchmarks).
S3_SERVERS = ("moto-s3", "moto-server", "seaweedfs")


@contextlib.contextmanager
def s3_server(kind: str) -> Iterator[tuple[str, int]]:
    """An S3 server on 127.0.0.1; yield (endpoint, PID). ``kind`` is one of `S3_SERVERS`:

    * ``"moto-s3"``: moto's S3 application alone on a server that keeps connections
      alive (``_moto_s3.py``, needs ``waitress`` from ``benchmarks/requirements.txt``):
      well under half the server CPU per request of ``moto-server``, the same S3 code;
    * ``"moto-server"``: ``python -m moto.server``, as the test suite runs it (every
      connection closed after one request, every request dispatched across moto's
      services);
    * ``"seaweedfs"``: ``weed mini`` from the ``[servers]`` extra.
    """
    if kind == "moto-s3" and importlib.util.find_spec("waitress") is None:
        sys.exit(
            "waitress is not installed: --s3/--server moto-s3 serves moto's S3 with it. "
            "pip install -r benchmarks/requirements.txt, or choose moto-server"
        )
    if kind in ("moto-s3", "moto-server"):
        port = _free_port()
        if kind == "moto-s3":
            argv = [sys.executable, str(Path(__file__).resolve().parent / "_moto_s3.py")]
        else:
            argv = [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p"]
        with _running([*argv, str(port)], port) as running:
            yield running
        return
    if kind != "seaweedfs":
        msg = f"unknown server {kind!r}: one of {', '.join(S3_SERVERS)}"
        raise ValueError(msg)
    from data_aggregator.testing.servers import start_seaweedfs

    with tempfile.TemporaryDirectory(prefix="bench-seaweedfs-") as tmp:
        server = start_seaweedfs(Path(tmp))
        try:
            yield server.endpoint, server.process.pid
        finally:
            server.stop()


@contextlib.contextmanager
def moto_server() -> Iterator[str]:
    """Run ``moto.server`` on 127.0.0.1 in a subprocess; yield its endpoint URL."""
    with s3_server("moto-server") as (endpoint, _pid):
        yield endpoint


def add_latency(client: Any, seconds: float) -> None:
    """Make every HTTP request ``client`` sends pay ``seconds`` of round-trip latency."""
    if seconds <= 0:
        return

    def _sleep(**_: Any) -> None:
        time.sleep(seconds)

    client.meta.events.register("before-send.*", _sleep)


def client(service: str, endpoint: str, *, latency: float = 0.0, pool: int = 64) -> Any:
    """A boto3 client for the benchmark server with injected latency."""
    made = boto3.session.Session(
        aws_access_key_id="testing",
        aws_secret_access_key="testing",  # noqa: S106 - moto's fake credentials
        region_name=REGION,
    ).client(
        service,  # type: ignore[call-overload]
        endpoint_url=endpoint,
        config=Config(max_pool_connections=pool, retries={"mode": "standard"}),
    )
    add_latency(made, latency)
    return made


def peak_rss_mb() -> float:
    """Peak resident set size of this process so far, in MiB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def print_table(title: str, headers: list[str], rows: list[list[Any]]) -> None:
    """Print a plain-text table with right-aligned numeric columns."""
    cells = [[_fmt(c) for c in row] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) for i, h in enumerate(headers)]
    print(f"\n{title}")
    print("  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)))
    print("  ".join("-" * w for w in widths))
    for row in cells:
        print("  ".join(c.rjust(w) for c, w in zip(row, widths, strict=True)))
    sys.stdout.flush()


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:,.3f}" if abs(value) < 100 else f"{value:,.1f}"
    return str(value)


os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")


def run_row(argv: list[str], what: str) -> dict[str, float]:
    """Run one benchmark row as ``python <argv>`` in a fresh process (so that its peak RSS
    is its own) and return the JSON object its last stdout line holds."""
    done = subprocess.run(  # noqa: S603 - our own interpreter and script
        [sys.executable, *argv], capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        sys.stderr.write(done.stderr)
        msg = f"row {what} failed"
        raise RuntimeError(msg)
    result: dict[str, float] = json.loads(done.stdout.strip().splitlines()[-1])
    return result
