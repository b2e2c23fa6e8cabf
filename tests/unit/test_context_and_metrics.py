"""Tests for LocalContext and the metrics sinks."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from typing import TYPE_CHECKING

from data_aggregator.context import InvocationContext, LocalContext, request_id_of
from data_aggregator.metrics import (
    MAX_METRICS_PER_DOCUMENT,
    CallbackMetrics,
    EmfMetrics,
    MetricPoint,
    MetricUnit,
    NullMetrics,
)
from data_aggregator.testing import FakeClock

if TYPE_CHECKING:
    import pytest


def test_local_context_counts_down_with_its_clock() -> None:
    """Remaining time follows the injected clock and never goes below zero."""
    clock = FakeClock()
    ctx = LocalContext.from_timeout(10, clock=clock)
    assert ctx.get_remaining_time_in_millis() == 10_000
    clock.advance(9.5)
    assert ctx.get_remaining_time_in_millis() == 500
    clock.advance(60)
    assert ctx.get_remaining_time_in_millis() == 0


def test_local_context_accepts_datetimes() -> None:
    """A datetime deadline (naive means UTC) is converted to epoch seconds."""
    clock = FakeClock(datetime(2026, 1, 1, tzinfo=timezone.utc).timestamp())
    ctx = LocalContext(datetime(2026, 1, 1, 0, 1), clock=clock)
    assert ctx.get_remaining_time_in_millis() == 60_000


def test_local_context_without_deadline_is_unbounded() -> None:
    """No deadline reports the largest remaining time a Lambda context could."""
    assert LocalContext().get_remaining_time_in_millis() == LocalContext.UNBOUNDED_MS


def test_local_context_is_an_invocation_context_with_a_request_id() -> None:
    """LocalContext satisfies the protocol and carries a request id (given or random)."""
    ctx = LocalContext(aws_request_id="req-1")
    assert isinstance(ctx, InvocationContext)
    assert request_id_of(ctx) == "req-1"
    assert request_id_of(LocalContext()) != request_id_of(LocalContext())


def test_request_id_of_ignores_missing_or_odd_values() -> None:
    """A context without a usable aws_request_id yields None, not an error."""

    class Bare:
        aws_request_id = 42

    assert request_id_of(object()) is None
    assert request_id_of(Bare()) is None


def test_emf_line_is_valid_embedded_metric_format() -> None:
    """A flush writes one EMF document whose metrics, units and dimensions match."""
    lines: list[str] = []
    metrics = EmfMetrics(
        "DataAggregator", {"service": "svc"}, writer=lines.append, clock=FakeClock(12.5)
    )
    metrics.add("ObjectsBundled", 3)
    metrics.add("ObjectsBundled", 2)
    metrics.add("BytesBundled", 1024, MetricUnit.BYTES)
    metrics.flush()
    assert len(lines) == 1
    doc = json.loads(lines[0])
    assert doc["_aws"]["Timestamp"] == 12_500
    directive = doc["_aws"]["CloudWatchMetrics"][0]
    assert directive["Namespace"] == "DataAggregator"
    assert directive["Dimensions"] == [["service"]]
    assert directive["Metrics"] == [
        {"Name": "ObjectsBundled", "Unit": "Count"},
        {"Name": "BytesBundled", "Unit": "Bytes"},
    ]
    assert doc["ObjectsBundled"] == 5
    assert doc["BytesBundled"] == 1024
    assert doc["service"] == "svc"


def test_emf_splits_more_than_a_hundred_metrics_and_resets() -> None:
    """More than 100 metrics go out in several documents; a second flush is empty."""
    lines: list[str] = []
    metrics = EmfMetrics("NS", writer=lines.append)
    for i in range(MAX_METRICS_PER_DOCUMENT + 5):
        metrics.add(f"m{i}", i)
    metrics.flush()
    assert len(lines) == 2
    counts = [len(json.loads(line)["_aws"]["CloudWatchMetrics"][0]["Metrics"]) for line in lines]
    assert counts == [MAX_METRICS_PER_DOCUMENT, 5]
    metrics.flush()
    assert len(lines) == 2


def test_callback_metrics_receive_summed_points() -> None:
    """The callback gets one point per name with the summed value and the dimensions."""
    points: list[MetricPoint] = []
    metrics = CallbackMetrics(points.append, {"env": "test"})
    metrics.add("Duplicates", 1)
    metrics.add("Duplicates", 1)
    metrics.flush()
    assert points == [MetricPoint("Duplicates", 2, MetricUnit.COUNT, {"env": "test"})]


def test_null_metrics_accepts_and_drops(capsys: pytest.CaptureFixture[str]) -> None:
    """The null sink takes data points and emits nothing, where EMF would print a line."""
    NullMetrics().add("x", 1)
    NullMetrics().flush()
    assert capsys.readouterr().out == ""
    emf = EmfMetrics("NS")
    emf.add("x", 1)
    emf.flush()
    assert '"x":1' in capsys.readouterr().out
