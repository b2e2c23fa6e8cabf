"""Parallel compression: big bundles end to end against Python's single-threaded codecs.

Run (prints one table)::

    .venv/bin/python benchmarks/bench_compression.py            # 8 x 64 MiB, 3 rounds, 2 GiB
    .venv/bin/python benchmarks/bench_compression.py --quick    # 8 x 16 MiB, 3 rounds, 512 MiB

Data: 8 objects of base64 of random bytes (semi-compressible: gzip-6 keeps about 76 %),
stored in an S3 server in a subprocess, over HTTP, ``--latency-ms`` injected per request:
``python -m moto.server`` by default (``--server moto-server``; ``moto-s3``: its S3 alone on
kept-alive connections), SeaweedFS with ``--server seaweedfs`` (far less CPU per byte than moto,
which shares the machine's cores with the row). Each round runs, one after another in
fresh subprocesses (paired: every ratio compares rows of the same round):

* ``1 thread, no network``: Python's ``zlib.compressobj(6)`` (gzip container) or
  ``zstandard`` level 3 over the same bytes, in memory: the reference;
* ``blocks, auto threads, no network``: the engine's block compressor alone over the same
  bytes: what the machine lets parallel compression reach at that moment (the ceiling of
  the end-to-end rows on a shared machine);
* ``engine gzip-6`` and ``engine zstd-3``, each with ``COMPRESSION_THREADS=1`` (one
  stream, as before) and with the automatic thread count: ``BundleEngine`` into
  ``MultipartSink`` (16 MiB parts, 4 in flight), every object fetched from the server.

Reported: MiB/s of input (the objects' bytes) per wall second, CPU seconds of the row's
process (all its threads), the ratio to the single-threaded codec of the same round
(median and range over the rounds), and the row's peak RSS (``VmHWM``). One last row
bundles 32 objects (the 8, four times over: 2 GiB) with gzip on the automatic thread
count, for its peak RSS. The load average is printed before and after: the machine may be
shared.
"""

from __future__ import annotations

import argparse
import base64
import importlib.util
import json
import os
import random
import statistics
import sys
import time
import zlib
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _harness import S3_SERVERS, client, print_table, process_cpu_seconds, run_row, s3_server

from data_aggregator.clients import MIB

BUCKET = "big-src"
DEST = "bench-dest"


def _body(seed: int, size: int) -> bytes:
    raw = random.Random(seed).randbytes(size * 3 // 4)
    return base64.b64encode(raw)[:size]


def _peak_rss_mb() -> float:
    """This process's peak RSS in MiB (``VmHWM``; ``ru_maxrss`` would carry the parent's)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def _cpu() -> float:
    times = os.times()
    return times.user + times.system


# ----------------------------------------------------------------------------- rows


def _local_row(
    codec: str, count: int, size: int, *, blocks: bool, library: str | None
) -> dict[str, float]:
    """No network: compress the same bytes with Python's codec on one thread, or (with
    ``blocks``) with the engine's compressor on the automatic thread count."""
    from data_aggregator.bundle._codecs import new_compressor, resolve_codec

    spec = resolve_codec(codec, threads=None, gzip_library=library)
    wall = cpu = 0.0
    out = 0
    for seed in range(count):
        data = _body(seed, size)  # generated untimed
        started, cpu_started = time.perf_counter(), _cpu()
        if blocks:
            compressor: Any = new_compressor(spec)
        elif codec == "gzip":
            compressor = zlib.compressobj(6, zlib.DEFLATED, 31)
        else:
            import zstandard

            compressor = zstandard.ZstdCompressor(level=3, write_checksum=True).compressobj()
        for offset in range(0, len(data), MIB):
            out += len(compressor.compress(data[offset : offset + MIB]))
        out += len(compressor.flush())
        wall += time.perf_counter() - started
        cpu += _cpu() - cpu_started
    threads = spec.threads if blocks else 1
    return {"wall": wall, "cpu": cpu, "rss": _peak_rss_mb(), "out": out / MIB, "threads": threads}


def _engine_row(
    endpoint: str,
    codec: str,
    threads: int | None,
    objects: list[Any],
    latency: float,
    *,
    library: str | None,
) -> dict[str, float]:
    from data_aggregator.bundle import BundleEngine, BundleSource, MultipartSink, OutcomeStatus
    from data_aggregator.clients import S3Client

    s3 = S3Client(client("s3", endpoint, latency=latency, pool=48))
    sink = MultipartSink(s3, DEST, part_size=16 * MIB, max_concurrency=4, spool_max_size=64 * MIB)
    engine = BundleEngine(s3, sink, codec=codec, compression_threads=threads, gzip_library=library)
    sources = [BundleSource(BUCKET, key, size) for key, size in objects]
    started, cpu_started = time.perf_counter(), _cpu()
    run = engine.run(sources, bundle_key=lambda n: f"out/{codec}-{threads}-{n}")
    wall, cpu = time.perf_counter() - started, _cpu() - cpu_started
    assert run.counts()[OutcomeStatus.BUNDLED] == len(objects), run.counts()
    assert len(run.bundles) == 1
    out = run.bundles[0].receipt.size
    return {
        "wall": wall,
        "cpu": cpu,
        "rss": _peak_rss_mb(),
        "out": out / MIB,
        "threads": engine.codec.threads,
    }


def _row_main(args: argparse.Namespace) -> None:
    spec = json.loads(args.row)
    if spec["kind"] == "local":
        result = _local_row(
            spec["codec"],
            spec["count"],
            spec["size"],
            blocks=spec["blocks"],
            library=spec.get("library"),
        )
    else:
        result = _engine_row(
            spec["endpoint"],
            spec["codec"],
            spec["threads"],
            spec["objects"],
            spec["latency"],
            library=spec.get("library"),
        )
    print(json.dumps(result))


# ----------------------------------------------------------------------------- driver


def _run_row(spec: dict[str, Any]) -> dict[str, float]:
    return run_row([__file__, "--row", json.dumps(spec)], f"{spec['kind']} {spec['codec']}")


def _seed(endpoint: str, count: int, size: int) -> list[tuple[str, int]]:
    s3 = client("s3", endpoint)
    s3.create_bucket(Bucket=BUCKET)
    s3.create_bucket(Bucket=DEST)
    objects = []
    for seed in range(count):
        key = f"video/chunk-{seed}.bin"
        s3.put_object(Bucket=BUCKET, Key=key, Body=_body(seed, size))
        objects.append((key, size))
    return objects


def _clear(endpoint: str) -> None:
    s3 = client("s3", endpoint)
    for item in s3.list_objects_v2(Bucket=DEST).get("Contents", []):
        s3.delete_object(Bucket=DEST, Key=item["Key"])


def _rows(
    codec: str, count: int, size: int, engine: dict[str, Any], *, zlib_ng: bool
) -> list[tuple[str, dict[str, Any]]]:
    """A round's rows of ``codec``: name and spec. gzip rows name their library: Python's
    zlib, and zlib-ng (a dependency) when its compiled module is installed."""
    local = {"kind": "local", "count": count, "size": size, "blocks": False, "library": None}
    libraries = ["zlib", "zlib-ng"] if codec == "gzip" and zlib_ng else ["zlib"]
    rows: list[tuple[str, dict[str, Any]]] = [("1 thread, no network", local)]
    for library in libraries:
        suffix = f", {library}" if codec == "gzip" else ""
        rows += [
            (f"blocks, auto threads, no network{suffix}", {**local, "blocks": True}),
            (f"engine, 1 thread{suffix}", {**engine, "threads": 1}),
            (f"engine, auto threads{suffix}", {**engine, "threads": None}),
        ]
        for _, spec in rows[-3:]:
            spec["library"] = library if codec == "gzip" else None
    return rows


def _load() -> str:
    return " ".join(f"{value:.2f}" for value in os.getloadavg())


def _spread(values: list[float]) -> str:
    return f"{statistics.median(values):.2f}x ({min(values):.2f}-{max(values):.2f})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="8 x 16 MiB, 512 MiB RSS row")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--latency-ms", type=float, default=20.0)
    parser.add_argument("--no-zstd", action="store_true", help="gzip rows only")
    parser.add_argument(
        "--server",
        choices=S3_SERVERS,
        default="moto-server",
        help="the S3 server the engine rows fetch from and upload to (default: moto-server)",
    )
    parser.add_argument("--row", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.row:
        _row_main(args)
        return

    count, size = 8, (16 if args.quick else 64) * MIB
    total_mib = count * size / MIB
    latency = args.latency_ms / 1000
    codecs = ["gzip"] if args.no_zstd else ["gzip", "zstd"]
    zlib_ng = importlib.util.find_spec("zlib_ng") is not None
    print(f"cpus: {os.cpu_count()}, load average before: {_load()}", flush=True)
    started = time.perf_counter()
    results: dict[tuple[str, str], list[dict[str, float]]] = {}
    with s3_server(args.server) as (endpoint, server_pid):
        print(f"seeding {count} x {size // MIB} MiB ...", flush=True)
        objects = _seed(endpoint, count, size)
        engine = {"kind": "engine", "endpoint": endpoint, "objects": objects, "latency": latency}
        for round_number in range(1, args.rounds + 1):
            for codec in codecs:
                rows = _rows(codec, count, size, engine, zlib_ng=zlib_ng)
                for name, spec in rows:
                    server_cpu = process_cpu_seconds(server_pid)
                    result = _run_row({**spec, "codec": codec})
                    result["server_cpu"] = process_cpu_seconds(server_pid) - server_cpu
                    _clear(endpoint)
                    results.setdefault((codec, name), []).append(result)
                    print(
                        f"  round {round_number} {codec} {name}: {result['wall']:.1f} s, "
                        f"load {_load()}",
                        flush=True,
                    )
        big = [obj for _ in range(4) for obj in objects]
        server_cpu = process_cpu_seconds(server_pid)
        rss_row = _run_row(
            {**engine, "objects": big, "codec": "gzip", "threads": None, "library": None}
        )
        rss_row["server_cpu"] = process_cpu_seconds(server_pid) - server_cpu
        _clear(endpoint)
    table: list[list[Any]] = []
    for codec in codecs:
        base = results[(codec, "1 thread, no network")]
        for name, _ in _rows(codec, count, size, engine, zlib_ng=zlib_ng):
            runs = results[(codec, name)]
            ratios = [b["wall"] / r["wall"] for b, r in zip(base, runs, strict=True)]
            table.append(
                [
                    f"{codec}-{6 if codec == 'gzip' else 3}",
                    name,
                    int(runs[0].get("threads", 1)),
                    statistics.median(total_mib / r["wall"] for r in runs),
                    f"{min(total_mib / r['wall'] for r in runs):.1f}-"
                    f"{max(total_mib / r['wall'] for r in runs):.1f}",
                    statistics.median(r["cpu"] for r in runs),
                    statistics.median(r["server_cpu"] for r in runs),
                    _spread(ratios),
                    max(r["rss"] for r in runs),
                    runs[0]["out"],
                ]
            )
    table.append(
        [
            "gzip-6",
            f"engine, auto, {len(big)} x {size // MIB} MiB",
            int(rss_row["threads"]),
            len(big) * size / MIB / rss_row["wall"],
            "1 run",
            rss_row["cpu"],
            rss_row["server_cpu"],
            "",
            rss_row["rss"],
            rss_row["out"],
        ]
    )
    print_table(
        f"Parallel compression: {count} x {size // MIB} MiB through one bundle, {args.server} over "
        f"HTTP at {args.latency_ms:.0f} ms, {args.rounds} paired rounds",
        [
            "codec",
            "row",
            "threads",
            "MiB/s (median)",
            "MiB/s range",
            "CPU s (median)",
            "server CPU s",
            "x 1-thread codec (median, range)",
            "peak RSS MB",
            "output MiB",
        ],
        table,
    )
    print(f"\nload average after: {_load()}")
    print(f"total benchmark time: {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
