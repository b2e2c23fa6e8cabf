"""botocore's retry modes under steady throttling: ``standard`` against ``adaptive``.

Run (prints one table)::

    .venv/bin/python benchmarks/bench_retry_mode.py              # 200 GETs, 32 threads
    .venv/bin/python benchmarks/bench_retry_mode.py --rounds 5 --fraction 0.1

Setup: moto's server in its own process holds ``--objects`` small objects; every row runs
in a fresh process that starts a `FaultProxy` in front of it (``--latency-ms`` added to
every request) and reads each object once with ``GetObject`` from ``--threads`` threads,
through the S3 client the library builds by default (``build_boto3_s3_client``: 5
attempts, keep-alive, a pool for every thread) in the row's retry mode. Rows, one after
another in each round (paired: every ratio compares rows of the same round):

* ``floor``: standard mode, no faults: what the reads cost when nothing fails;
* ``standard``: ``--fraction`` (20 %) of ``GetObject`` answered ``503 SlowDown``;
* ``adaptive``: the same faults, adaptive mode (its client-side rate limiter on).

Reported per row: wall seconds (median and range over the rounds), requests the proxy
received, how many were throttled, reads that failed after every attempt, and the ratio
to the same round's ``standard`` row.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _harness import REGION, client, moto_server, print_table, run_row

BUCKET = "bench-retry"
ROWS = ("floor", "standard", "adaptive")


def _row(spec: dict[str, Any]) -> dict[str, float]:
    """One row, in this (fresh) process."""
    import boto3
    from botocore.exceptions import ClientError

    from data_aggregator.clients import build_boto3_s3_client
    from data_aggregator.testing import FaultProxy

    with FaultProxy(spec["endpoint"], seed=spec["seed"], latency=spec["latency"]) as proxy:
        if spec["fraction"]:
            proxy.add_fault("s3", "GetObject", fraction=spec["fraction"])
        os.environ["AWS_ENDPOINT_URL"] = proxy.endpoint_url
        s3 = build_boto3_s3_client(
            session=boto3.session.Session(region_name=REGION),
            max_pool_connections=spec["threads"] + 4,
            retry_mode=spec["mode"],
        )
        s3.head_bucket(Bucket=BUCKET)  # connect and resolve before the clock starts
        proxy.reset_counts()

        def read(key: str) -> bool:
            try:
                s3.get_object(Bucket=BUCKET, Key=key)["Body"].read()
            except ClientError:
                return False
            return True

        keys = [f"obj-{n:05d}" for n in range(spec["objects"])]
        started = time.perf_counter()
        with ThreadPoolExecutor(spec["threads"]) as pool:
            done = list(pool.map(read, keys))
        wall = time.perf_counter() - started
        return {
            "wall": wall,
            "requests": proxy.received("s3", "GetObject"),
            "throttled": proxy.faulted("s3", "GetObject"),
            "failed": done.count(False),
        }


def _seed(endpoint: str, objects: int, size: int) -> None:
    s3 = client("s3", endpoint)
    s3.create_bucket(Bucket=BUCKET)
    body = os.urandom(size)
    with ThreadPoolExecutor(16) as pool:
        list(
            pool.map(
                lambda n: s3.put_object(Bucket=BUCKET, Key=f"obj-{n:05d}", Body=body),
                range(objects),
            )
        )


def _spread(values: list[float], unit: str = "") -> str:
    return f"{min(values):.2f}{unit}-{max(values):.2f}{unit}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--objects", type=int, default=200)
    parser.add_argument("--threads", type=int, default=32)
    parser.add_argument("--fraction", type=float, default=0.2, help="GetObject throttled")
    parser.add_argument("--latency-ms", type=float, default=10.0)
    parser.add_argument("--size-kib", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--row", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.row:
        print(json.dumps(_row(json.loads(args.row))))
        return

    print(f"cpus: {os.cpu_count()}, load average: {os.getloadavg()[0]:.2f}", flush=True)
    results: dict[str, list[dict[str, float]]] = {name: [] for name in ROWS}
    started = time.perf_counter()
    with moto_server() as endpoint:
        _seed(endpoint, args.objects, args.size_kib * 1024)
        for round_number in range(1, args.rounds + 1):
            for name in ROWS:
                spec = {
                    "endpoint": endpoint,
                    "mode": "standard" if name == "floor" else name,
                    "fraction": 0.0 if name == "floor" else args.fraction,
                    "latency": args.latency_ms / 1000,
                    "objects": args.objects,
                    "threads": args.threads,
                    "seed": round_number,
                }
                result = run_row([__file__, "--row", json.dumps(spec)], name)
                results[name].append(result)
                print(
                    f"  round {round_number} {name}: {result['wall']:.1f} s, "
                    f"{int(result['throttled'])} throttled, {int(result['failed'])} failed",
                    flush=True,
                )
    table: list[list[Any]] = []
    for name in ROWS:
        runs = results[name]
        walls = [r["wall"] for r in runs]
        ratios = [r["wall"] / s["wall"] for r, s in zip(runs, results["standard"], strict=True)]
        table.append(
            [
                name,
                statistics.median(walls),
                _spread(walls, " s"),
                statistics.median(r["requests"] for r in runs),
                statistics.median(r["throttled"] for r in runs),
                int(sum(r["failed"] for r in runs)),
                f"{statistics.median(ratios):.2f}x ({_spread(ratios)})",
            ]
        )
    print_table(
        f"{args.objects} GETs on {args.threads} threads, {args.fraction:.0%} SlowDown on "
        f"GetObject, moto over HTTP with {args.latency_ms:.0f} ms per request, "
        f"{args.rounds} paired rounds",
        [
            "row",
            "wall s (median)",
            "wall range",
            "requests",
            "throttled",
            "failed reads (all rounds)",
            "x standard (median, range)",
        ],
        table,
    )
    print(f"\ntotal benchmark time: {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
