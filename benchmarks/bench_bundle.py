"""Bundle engine vs the naive baseline, against moto over HTTP with injected latency.

Run (prints one table; takes a few minutes)::

    .venv/bin/python benchmarks/bench_bundle.py            # everything
    .venv/bin/python benchmarks/bench_bundle.py --quick    # small cases only, 50 ms

Cases: (a) 300 and 2,000 objects of 1-6 KB of log-like text; (b) 8 objects of 64 MiB
(base64 of random bytes, about 75 % compressible), each at 20 ms and 50 ms of latency per
request; (c) 5,000 objects of 0-4 bytes with no injected latency (the engine's own cost
per object). Rows:

* ``engine``: :class:`data_aggregator.bundle.BundleEngine` with its defaults (32 fetch
  workers, 64 MiB in-flight budget, gzip level 6) into :class:`MultipartSink` (16 MiB
  parts, 4 part uploads in flight).
* ``baseline``: the predecessor's algorithm: sequential ``GetObject``, ``tarfile``
  ``w:gz`` at its default level into a ``SpooledTemporaryFile`` (64 MiB in memory, then
  disk), one ``upload_fileobj`` at the end.

Every row runs in a fresh subprocess, so peak RSS (``ru_maxrss``) is that row's alone.
Peak spool disk is sampled every 10 ms: the summed size of the row's open temporary files
(a private ``TMPDIR``, seen through ``/proc/self/fd``).
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import random
import sys
import tarfile
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from tempfile import SpooledTemporaryFile
from typing import TYPE_CHECKING, Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _harness import client, moto_server, print_table, run_row

from data_aggregator.clients import MIB

if TYPE_CHECKING:
    from collections.abc import Callable

SPOOL_MAX = 64 * MIB
WORDS = [
    *("GET", "POST", "PUT", "200", "201", "304", "404", "500", "user", "session"),
    *("request", "latency_ms", "bytes", "path", "/api/v1/items", "/health", "/login"),
    *("sensor", "temperature", "humidity", "ok", "error", "warn", "info", "debug"),
]


# ----------------------------------------------------------------------------- data


def _log_text(rng: random.Random, size: int) -> bytes:
    out: list[str] = []
    length = 0
    while length < size:
        line = " ".join(rng.choice(WORDS) for _ in range(8)) + f" {rng.randint(0, 10**6)}\n"
        out.append(line)
        length += len(line)
    return "".join(out).encode()[:size]


def _big_body(seed: int, size: int) -> bytes:
    raw = random.Random(seed).randbytes(size * 3 // 4)
    return base64.b64encode(raw)[:size]


def _peak_rss_mb() -> float:
    """This process's peak RSS in MiB, from ``VmHWM``.

    Not ``ru_maxrss``: Linux carries the parent's high-water mark into a forked and
    exec'd child, so every row would report at least the driver's peak.
    """
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def _seed(endpoint: str, large: bool) -> dict[str, list[tuple[str, int]]]:
    """Create the source buckets; return ``{case: [(key, size), ...]}``."""
    s3 = client("s3", endpoint)
    rng = random.Random(7)
    cases: dict[str, list[tuple[str, int]]] = {}
    for count in (300, 2000):
        bucket = f"small-{count}"
        s3.create_bucket(Bucket=bucket)
        objects = {
            f"logs/2024/05/01/host-{i % 17}/part-{i:05d}.log": _log_text(
                rng, rng.randint(1024, 6 * 1024)
            )
            for i in range(count)
        }

        def put(item: tuple[str, bytes], bucket: str = bucket) -> None:
            s3.put_object(Bucket=bucket, Key=item[0], Body=item[1])

        with ThreadPoolExecutor(16) as pool:
            list(pool.map(put, objects.items()))
        cases[bucket] = [(key, len(data)) for key, data in objects.items()]
    # The 5,000 tiny objects (0-4 bytes) an integration test once timed: no latency, so the
    # row shows the engine's own per-object cost against the server's.
    s3.create_bucket(Bucket="tiny-5000")
    tiny = {f"d{i % 7}/obj-{i:05d}.txt": b"x" * (i % 5) for i in range(5000)}

    def put_tiny(item: tuple[str, bytes]) -> None:
        s3.put_object(Bucket="tiny-5000", Key=item[0], Body=item[1])

    with ThreadPoolExecutor(16) as pool:
        list(pool.map(put_tiny, tiny.items()))
    cases["tiny-5000"] = [(key, len(data)) for key, data in tiny.items()]
    if large:
        s3.create_bucket(Bucket="large-8")
        big = []
        for i in range(8):
            key = f"video/chunk-{i}.bin"
            body = _big_body(i, 64 * MIB)
            s3.upload_fileobj(_Bytes(body), "large-8", key)
            big.append((key, len(body)))
            del body
        cases["large-8"] = big
    s3.create_bucket(Bucket="bench-dest")
    return cases


class _Bytes:
    """A minimal readable file over bytes (``upload_fileobj`` wants ``read``)."""

    def __init__(self, data: bytes) -> None:
        self._data = memoryview(data)
        self._pos = 0

    def read(self, size: int = -1) -> bytes:
        end = len(self._data) if size < 0 else min(len(self._data), self._pos + size)
        chunk = bytes(self._data[self._pos : end])
        self._pos = end
        return chunk


# ----------------------------------------------------------------------------- one row


class _SpoolMeter:
    """Samples the bytes of open files under ``directory`` (deleted temp files included)."""

    def __init__(self, directory: str) -> None:
        self.directory = directory
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> _SpoolMeter:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()
        self._sample()

    def _sample(self) -> None:
        total = 0
        for entry in Path("/proc/self/fd").iterdir():
            try:
                if str(entry.readlink()).startswith(self.directory):
                    total += os.fstat(int(entry.name)).st_size
            except OSError:
                continue
        self.peak = max(self.peak, total)

    def _run(self) -> None:
        while not self._stop.wait(0.01):
            self._sample()


def _engine_row(
    endpoint: str, latency: float, bucket: str, objects: list[Any]
) -> Callable[[], int]:
    """Build the engine (imports and clients are not timed); return the timed part."""
    from data_aggregator.bundle import BundleEngine, BundleSource, MultipartSink, OutcomeStatus
    from data_aggregator.clients import S3Client

    s3 = S3Client(client("s3", endpoint, latency=latency, pool=48))
    sink = MultipartSink(
        s3, "bench-dest", part_size=16 * MIB, max_concurrency=4, spool_max_size=SPOOL_MAX
    )
    engine = BundleEngine(s3, sink)
    sources = [BundleSource(bucket, key, size) for key, size in objects]

    def go() -> int:
        run = engine.run(sources, bundle_key=lambda n: f"engine/{bucket}-{n}.tar.gz")
        assert run.counts()[OutcomeStatus.BUNDLED] == len(objects), run.counts()
        return sum(summary.receipt.size for summary in run.bundles)

    return go


def _baseline_row(
    endpoint: str, latency: float, bucket: str, objects: list[Any]
) -> Callable[[], int]:
    """The predecessor's algorithm (client built untimed); return the timed part."""
    s3 = client("s3", endpoint, latency=latency)
    return lambda: _baseline(s3, bucket, objects)


def _baseline(s3: Any, bucket: str, objects: list[Any]) -> int:
    spool = SpooledTemporaryFile(max_size=SPOOL_MAX, mode="w+b")  # noqa: SIM115
    with tarfile.open(fileobj=spool, mode="w:gz") as archive:
        for key, size in objects:
            body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
            assert len(body) == size
            info = tarfile.TarInfo(key)
            info.size = len(body)
            archive.addfile(info, _Bytes(body))
            del body
    size = spool.tell()
    spool.seek(0)
    s3.upload_fileobj(spool, "bench-dest", f"baseline/{bucket}.tar.gz")
    spool.close()
    return size


def _row_main(args: argparse.Namespace) -> None:
    objects = json.loads(Path(args.objects).read_text())
    with tempfile.TemporaryDirectory() as tmp:
        tempfile.tempdir = tmp
        build = _engine_row if args.row == "engine" else _baseline_row
        row = build(args.endpoint, args.latency, args.bucket, objects)
        with _SpoolMeter(tmp) as meter:
            started = time.perf_counter()
            bundle_size = row()
            wall = time.perf_counter() - started
        tempfile.tempdir = None
    print(
        json.dumps(
            {
                "wall": wall,
                "rss": _peak_rss_mb(),
                "spool": meter.peak / MIB,
                "bundle": bundle_size / MIB,
            }
        )
    )


# ----------------------------------------------------------------------------- driver


def _run_row(
    endpoint: str, row: str, bucket: str, latency: float, objects_file: str
) -> dict[str, float]:
    return run_row(
        [
            __file__,
            "--row",
            row,
            "--endpoint",
            endpoint,
            "--bucket",
            bucket,
            "--latency",
            str(latency),
            "--objects",
            objects_file,
        ],
        f"{row} {bucket}",
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small cases at 50 ms only")
    parser.add_argument("--row", choices=["engine", "baseline"], help=argparse.SUPPRESS)
    parser.add_argument("--endpoint", help=argparse.SUPPRESS)
    parser.add_argument("--bucket", help=argparse.SUPPRESS)
    parser.add_argument("--latency", type=float, default=0.0, help=argparse.SUPPRESS)
    parser.add_argument("--objects", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.row:
        _row_main(args)
        return

    latencies = [0.05] if args.quick else [0.02, 0.05]
    rows: list[list[Any]] = []
    started = time.perf_counter()
    with moto_server() as endpoint, tempfile.TemporaryDirectory() as work:
        print("seeding the moto server ...", flush=True)
        cases = _seed(endpoint, large=not args.quick)
        names = list(cases)
        dest = client("s3", endpoint)
        for name in names:
            objects_file = str(Path(work) / f"{name}.json")
            Path(objects_file).write_text(json.dumps(cases[name]))
            total_mb = sum(size for _, size in cases[name]) / MIB
            for latency in [0.0] if name.startswith("tiny") else latencies:
                results = {}
                for row in ("engine", "baseline"):
                    result = _run_row(endpoint, row, name, latency, objects_file)
                    print(
                        f"  {name} {latency * 1000:.0f} ms {row}: {result['wall']:.1f} s",
                        flush=True,
                    )
                    results[row] = result
                    for summary in dest.list_objects_v2(Bucket="bench-dest").get("Contents", []):
                        dest.delete_object(Bucket="bench-dest", Key=summary["Key"])
                    rows.append(
                        [
                            name,
                            f"{latency * 1000:.0f} ms",
                            row,
                            len(cases[name]),
                            result["wall"],
                            len(cases[name]) / result["wall"],
                            total_mb / result["wall"],
                            result["rss"],
                            result["spool"],
                            result["bundle"],
                        ]
                    )
                ratio = results["baseline"]["wall"] / results["engine"]["wall"]
                rows[-2].append(f"{ratio:.1f}x")
                rows[-1].append("1.0x")
    print_table(
        "Bundle engine vs naive baseline (moto over HTTP, injected per-request latency)",
        [
            "case",
            "latency",
            "row",
            "objects",
            "wall s",
            "objects/s",
            "MB/s",
            "peak RSS MB",
            "peak spool MB",
            "bundle MB",
            "speedup",
        ],
        rows,
    )
    print(f"\ntotal benchmark time: {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
