"""Metrics as CloudWatch Embedded Metric Format (EMF) lines, or through a callback.

No dependency on any metrics library: [`EmfMetrics`][data_aggregator.metrics.EmfMetrics] writes
one JSON line per flush to a writer (stdout by default, which Lambda ships to CloudWatch Logs,
where EMF lines become metrics). [`CallbackMetrics`][data_aggregator.metrics.CallbackMetrics]
hands each data point to a function of yours;
[`NullMetrics`][data_aggregator.metrics.NullMetrics] drops everything (``METRICS_ENABLED=false``).
"""

from __future__ import annotations

import json
import sys
import threading
import time
from dataclasses import dataclass
from enum import Enum
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

__all__ = [
    "MAX_METRICS_PER_DOCUMENT",
    "CallbackMetrics",
    "EmfMetrics",
    "MetricPoint",
    "MetricUnit",
    "MetricsSink",
    "NullMetrics",
]

#: CloudWatch accepts at most 100 metrics in one EMF document.
MAX_METRICS_PER_DOCUMENT = 100


class MetricUnit(str, Enum):
    """CloudWatch metric units used by the library."""

    COUNT = "Count"
    BYTES = "Bytes"
    SECONDS = "Seconds"
    MILLISECONDS = "Milliseconds"
    NONE = "None"


@dataclass(frozen=True, slots=True)
class MetricPoint:
    """One data point: what a [`CallbackMetrics`][data_aggregator.metrics.CallbackMetrics]
    callback receives."""

    name: str
    value: float
    unit: MetricUnit
    dimensions: Mapping[str, str]


class MetricsSink(Protocol):
    """Where the processor sends its metrics. ``flush()`` is called once per invocation."""

    def add(self, name: str, value: float, unit: MetricUnit = MetricUnit.COUNT) -> None:
        """Record ``value`` for ``name`` (values of one name add up until the flush)."""
        ...

    def flush(self) -> None:
        """Emit what was recorded and start afresh."""
        ...


class NullMetrics:
    """A sink that drops everything."""

    def add(self, name: str, value: float, unit: MetricUnit = MetricUnit.COUNT) -> None:
        """Ignore the data point."""

    def flush(self) -> None:
        """Nothing to emit."""


class _Accumulator:
    """Thread-safe sums of values per metric name, in first-seen order."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._values: dict[str, tuple[float, MetricUnit]] = {}

    def add(self, name: str, value: float, unit: MetricUnit) -> None:
        with self._lock:
            previous = self._values.get(name)
            total = value if previous is None else previous[0] + value
            self._values[name] = (total, unit)

    def drain(self) -> dict[str, tuple[float, MetricUnit]]:
        with self._lock:
            values, self._values = self._values, {}
        return values


class EmfMetrics:
    """Accumulates metrics and writes them as CloudWatch EMF JSON lines on
    [`flush`][data_aggregator.metrics.EmfMetrics.flush].

    Args:
        namespace: The CloudWatch namespace (``METRICS_NAMESPACE``).
        dimensions: Dimension names and values attached to every metric, e.g.
            ``{"service": "log-bundler", "environment": "prod"}``.
        writer: Receives each line (without newline); defaults to writing to stdout.
        clock: Seconds since the epoch, for the EMF timestamp.
    """

    def __init__(
        self,
        namespace: str,
        dimensions: Mapping[str, str] | None = None,
        *,
        writer: Callable[[str], None] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.namespace = namespace
        self.dimensions = dict(dimensions or {})
        self._writer = writer or _stdout_line
        self._clock = clock
        self._values = _Accumulator()

    def add(self, name: str, value: float, unit: MetricUnit = MetricUnit.COUNT) -> None:
        """Add ``value`` to metric ``name`` for the next flush."""
        self._values.add(name, value, unit)

    def flush(self) -> None:
        """Write the accumulated metrics (100 per line at most) and reset."""
        values = list(self._values.drain().items())
        timestamp = int(self._clock() * 1000)
        for start in range(0, len(values), MAX_METRICS_PER_DOCUMENT):
            chunk = values[start : start + MAX_METRICS_PER_DOCUMENT]
            document: dict[str, object] = {
                "_aws": {
                    "Timestamp": timestamp,
                    "CloudWatchMetrics": [
                        {
                            "Namespace": self.namespace,
                            "Dimensions": [sorted(self.dimensions)],
                            "Metrics": [
                                {"Name": name, "Unit": unit.value} for name, (_, unit) in chunk
                            ],
                        }
                    ],
                },
                **self.dimensions,
            }
            for name, (value, _) in chunk:
                document[name] = value
            self._writer(json.dumps(document, separators=(",", ":")))


class CallbackMetrics:
    """Hands every data point to ``callback`` at flush time (sums per name, as EMF does)."""

    def __init__(
        self,
        callback: Callable[[MetricPoint], None],
        dimensions: Mapping[str, str] | None = None,
    ) -> None:
        self._callback = callback
        self.dimensions = dict(dimensions or {})
        self._values = _Accumulator()

    def add(self, name: str, value: float, unit: MetricUnit = MetricUnit.COUNT) -> None:
        """Add ``value`` to metric ``name`` for the next flush."""
        self._values.add(name, value, unit)

    def flush(self) -> None:
        """Call the callback once per metric name with its summed value."""
        for name, (value, unit) in self._values.drain().items():
            self._callback(MetricPoint(name, value, unit, self.dimensions))


def _stdout_line(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()
