"""Benchmark: bulk claim + complete vs the per-record sequential pattern.

Runs moto's DynamoDB in a subprocess and injects a fixed round-trip latency per request
(20 ms by default), then measures, in the same run:

* ``bulk``: :class:`DynamoDBIdempotencyStore` ``claim`` then ``complete`` over all keys
  (one conditional ``UpdateItem`` per key and step, ``--workers`` at a time);
* ``sequential``: the per-record pattern of the app we descend from and of Powertools: for
  each record a conditional ``PutItem`` then an ``UpdateItem``, one after another.

The sequential pattern is measured on ``--sample`` keys and, for larger sizes, extrapolated
linearly from that measurement; such rows are labelled ``extrapolated``.

Usage::

    python benchmarks/bench_idempotency.py [--sizes 1000,10000] [--latency-ms 20]
"""

from __future__ import annotations

import argparse
import os
import time
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

from _harness import client, moto_server, peak_rss_mb, print_table

if TYPE_CHECKING:
    from collections.abc import Callable

from data_aggregator.idempotency import (
    ClaimStatus,
    DynamoDBIdempotencyStore,
    create_idempotency_table,
    make_idempotency_key,
)


def keys_for(n: int, run: str) -> list[str]:
    """``n`` realistic idempotency keys."""
    return [
        make_idempotency_key(f"landing/{run}/2024/06/01/device-{i:06d}.json", None, f"{i:016X}")
        for i in range(n)
    ]


def new_table(endpoint: str) -> str:
    """A fresh idempotency table (created without injected latency)."""
    name = f"bench-{uuid.uuid4().hex[:10]}"
    create_idempotency_table(client("dynamodb", endpoint), name)
    return name


def bulk(endpoint: str, n: int, *, latency: float, workers: int) -> float:
    """Seconds for claim + complete of ``n`` keys through the store."""
    table = new_table(endpoint)
    ddb = client("dynamodb", endpoint, latency=latency, pool=workers)
    store = DynamoDBIdempotencyStore(table, client=ddb, max_workers=workers)
    keys = keys_for(n, "bulk")
    owner = f"bench-{uuid.uuid4().hex[:8]}"
    started = time.perf_counter()
    claimed = store.claim(keys, owner=owner, lease_expires_at=time.time() + 900)
    done = store.complete(keys, owner=owner, bundle_key="bundle-1.tar.gz")
    elapsed = time.perf_counter() - started
    store.close()
    assert all(r.status is ClaimStatus.CLAIMED for r in claimed.values()), "claims failed"
    assert all(r.ok for r in done.values()), "completes failed"
    return elapsed


def sequential(endpoint: str, n: int, *, latency: float) -> float:
    """Seconds for the per-record pattern: conditional put, then update, record by record."""
    table = new_table(endpoint)
    ddb: Any = client("dynamodb", endpoint, latency=latency, pool=1)
    keys = keys_for(n, "sequential")
    now = int(time.time())
    started = time.perf_counter()
    for key in keys:
        ddb.put_item(
            TableName=table,
            Item={
                "object_key": {"S": key},
                "status": {"S": "IN_PROGRESS"},
                "expiration": {"N": str(now + 900)},
            },
            ConditionExpression="attribute_not_exists(object_key) OR expiration < :now",
            ExpressionAttributeValues={":now": {"N": str(now)}},
        )
        ddb.update_item(
            TableName=table,
            Key={"object_key": {"S": key}},
            UpdateExpression="SET #s = :done, bundle_key = :b, expiration = :e",
            ExpressionAttributeNames={"#s": "status"},
            ExpressionAttributeValues={
                ":done": {"S": "COMPLETED"},
                ":b": {"S": "bundle-1.tar.gz"},
                ":e": {"N": str(now + 86_400)},
            },
        )
    return time.perf_counter() - started


def server_cpu_seconds() -> float | None:
    """CPU seconds used so far by our child processes (the moto server); Linux only."""
    proc = Path("/proc")
    if not proc.is_dir():
        return None
    me, total = os.getpid(), 0.0
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[1]) == me:
            total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


def measured(run: Callable[[], float]) -> tuple[float, float | None]:
    """``run()``'s seconds and the moto server CPU seconds spent meanwhile."""
    before = server_cpu_seconds()
    seconds = run()
    after = server_cpu_seconds()
    return seconds, (after - before) if before is not None and after is not None else None


def main() -> None:
    """Run the comparison and print the table."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--sizes", default="1000,10000")
    parser.add_argument("--latency-ms", type=float, default=20.0)
    parser.add_argument("--workers", type=int, default=32)
    parser.add_argument("--sample", type=int, default=1000, help="sequential keys measured")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    latency = args.latency_ms / 1000
    rows: list[list[Any]] = []
    with moto_server() as endpoint:
        bulk(endpoint, 100, latency=0, workers=args.workers)  # warm up the server
        sample = min(args.sample, max(sizes))
        seq_seconds, seq_cpu = measured(lambda: sequential(endpoint, sample, latency=latency))
        for n in sizes:
            seconds, cpu = measured(
                lambda n=n: bulk(endpoint, n, latency=latency, workers=args.workers)  # type: ignore[misc]
            )
            if n == sample:
                seq, seq_label, seq_server = seq_seconds, "sequential, measured", seq_cpu
            else:
                factor = n / sample
                seq = seq_seconds * factor
                seq_label = f"sequential, extrapolated from {sample:,}"
                seq_server = seq_cpu * factor if seq_cpu is not None else None
            rows.append(
                [
                    f"{n:,}",
                    f"bulk, {args.workers} workers",
                    args.latency_ms,
                    seconds,
                    n / seconds,
                    _cpu(cpu),
                    "1.0x",
                ]
            )
            rows.append(
                [
                    f"{n:,}",
                    seq_label,
                    args.latency_ms,
                    seq,
                    n / seq,
                    _cpu(seq_server),
                    f"{seq / seconds:.1f}x",
                ]
            )
        # Diagnostic: the same bulk run with no injected latency. When it takes as long as
        # with latency, the latency is entirely hidden and moto's own CPU is the limit.
        n = min(sizes)
        seconds, cpu = measured(lambda: bulk(endpoint, n, latency=0, workers=args.workers))
        rows.append(
            [
                f"{n:,}",
                "bulk, no injected latency",
                0.0,
                seconds,
                n / seconds,
                _cpu(cpu),
                "(diagnostic)",
            ]
        )
    print_table(
        "Idempotency claim + complete against moto's DynamoDB over HTTP",
        ["keys", "pattern", "latency ms", "seconds", "keys/s", "moto CPU s", "time vs bulk"],
        rows,
    )
    print(f"peak RSS {peak_rss_mb():.0f} MiB; {os.cpu_count()} CPUs")


def _cpu(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.1f}"


if __name__ == "__main__":
    main()
