"""The real-server harness's own logic: backend choice, endpoints, paths, process cleanup."""

from __future__ import annotations

import os
import sys
import time
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any, cast

import pytest

from data_aggregator.config import AppConfig
from data_aggregator.testing import servers
from data_aggregator.testing.pytest_plugin import AggregatorEnv, selected_backend

if TYPE_CHECKING:
    from pathlib import Path


def _config(option: str | None) -> pytest.Config:
    return cast("pytest.Config", SimpleNamespace(getoption=lambda *_, **__: option))


def test_the_option_wins_over_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """--aggregator-backend beats DATA_AGGREGATOR_TEST_BACKEND, which beats the moto default."""
    monkeypatch.delenv("DATA_AGGREGATOR_TEST_BACKEND", raising=False)
    assert selected_backend(_config(None)) == "moto"
    monkeypatch.setenv("DATA_AGGREGATOR_TEST_BACKEND", "real")
    assert selected_backend(_config(None)) == "real"
    assert selected_backend(_config("moto")) == "moto"


def test_an_unknown_backend_is_a_usage_error(monkeypatch: pytest.MonkeyPatch) -> None:
    """A misspelt backend stops the session with a message naming the choices."""
    monkeypatch.setenv("DATA_AGGREGATOR_TEST_BACKEND", "localstack")
    with pytest.raises(pytest.UsageError, match="moto, real"):
        selected_backend(_config(None))


def _env(s3: str, dynamodb: str) -> AggregatorEnv:
    config = AppConfig(distribution_bucket_name="bundles", idempotency_table_name="table")
    client = cast("Any", object())
    return AggregatorEnv(s3, "src", "bundles", "table", client, client, config, dynamodb)


def test_environ_exports_one_endpoint_per_service() -> None:
    """Separate servers export AWS_ENDPOINT_URL_S3/_DYNAMODB and no shared URL; one server
    exports all three."""
    separate = _env("http://127.0.0.1:1", "http://127.0.0.1:2").environ
    assert separate["AWS_ENDPOINT_URL_S3"] == "http://127.0.0.1:1"
    assert separate["AWS_ENDPOINT_URL_DYNAMODB"] == "http://127.0.0.1:2"
    assert "AWS_ENDPOINT_URL" not in separate
    shared = _env("http://127.0.0.1:1", "http://127.0.0.1:1").environ
    assert shared["AWS_ENDPOINT_URL"] == shared["AWS_ENDPOINT_URL_S3"]
    assert shared["AWS_ENDPOINT_URL_DYNAMODB"] == "http://127.0.0.1:1"
    assert "AWS_SESSION_TOKEN" not in shared


def test_the_cache_directory_follows_the_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """$DATA_AGGREGATOR_SERVERS_CACHE wins; else $XDG_CACHE_HOME/data-aggregator-servers."""
    monkeypatch.setenv("DATA_AGGREGATOR_SERVERS_CACHE", str(tmp_path / "mine"))
    assert servers.cache_dir() == tmp_path / "mine"
    monkeypatch.delenv("DATA_AGGREGATOR_SERVERS_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert servers.cache_dir() == tmp_path / "data-aggregator-servers"


def test_weed_is_found_from_the_environment_or_reported_missing(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """$DATA_AGGREGATOR_WEED names the binary; with none anywhere the error says which
    extra to install."""
    weed = tmp_path / "weed"
    weed.write_text("#!/bin/sh\n")
    weed.chmod(0o755)
    monkeypatch.setenv("DATA_AGGREGATOR_WEED", str(weed))
    assert servers.find_weed() == weed
    monkeypatch.delenv("DATA_AGGREGATOR_WEED")
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    monkeypatch.setattr(sys, "executable", str(tmp_path / "empty" / "python"))
    with pytest.raises(servers.ServerStartError, match=r"s3-data-aggregator\[servers\]"):
        servers.find_weed()


def test_free_ports_are_distinct() -> None:
    """The ports chosen for one server are all different."""
    ports = servers.free_ports(10)
    assert len(set(ports)) == 10


def test_a_server_that_ignores_sigterm_is_killed_by_pid(tmp_path: Path) -> None:
    """stop() terminates the process by its PID and kills it when it will not exit."""
    code = (
        "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
        "print('up', flush=True); time.sleep(600)"
    )
    server = servers._spawn(
        "stubborn", [sys.executable, "-c", code], cwd=tmp_path, endpoint="http://127.0.0.1:9"
    )
    deadline = time.monotonic() + 30
    while "up" not in server.log_tail() and time.monotonic() < deadline:
        time.sleep(0.05)
    server.stop(timeout=0.5)
    assert server.process.returncode == -9
    with pytest.raises(ProcessLookupError):
        os.kill(server.process.pid, 0)


def test_a_server_that_exits_at_start_fails_with_its_log(tmp_path: Path) -> None:
    """A server dying before it answers raises ServerStartError carrying its output."""
    code = "print('port already in use'); raise SystemExit(3)"
    server = servers._spawn(
        "dying", [sys.executable, "-c", code], cwd=tmp_path, endpoint="http://127.0.0.1:9"
    )
    with pytest.raises(servers.ServerStartError, match="port already in use"):
        servers._wait_http(server, time.monotonic() + 30)
    assert server.process.returncode == 3
