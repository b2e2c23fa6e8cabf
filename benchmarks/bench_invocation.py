"""One invocation end to end: ours vs hand-written Powertools handlers vs a floor.

Run (prints the tables; about 15 minutes with the defaults on 2 cores)::

    pip install -r benchmarks/requirements.txt     # aws-lambda-powertools, benchmarks only
    python benchmarks/bench_invocation.py          # 300,2000 objects; 20,50 ms; 3 rounds
    python benchmarks/bench_invocation.py --quick  # smoke run: 100 objects, 20 ms, 1 round
    python benchmarks/bench_invocation.py --rows ours-statements,threaded,floor  # some rows
    python benchmarks/bench_invocation.py --s3 moto-server # python -m moto.server for S3
    python benchmarks/bench_invocation.py --s3 seaweedfs   # S3 on SeaweedFS instead of moto

``aws-lambda-powertools`` is never a dependency of the package; without it the benchmark
stops at once and says how to install it.

**Set-up.** One S3 server and one DynamoDB Local for the tables (AWS's own
implementation, from the ``[servers]`` set-up the real-server tests use; ``--tables moto``
puts the tables on moto's server, with ``--s3 moto-server``) for the whole run, each in its
own process; a latency of 20 or 50 ms is injected into every HTTP request on the client
side (a botocore ``before-send`` hook, see ``_harness.py``). The S3 server (``--s3``) is by
default moto's S3 application alone on a server that keeps connections alive
(``moto-s3``, ``_moto_s3.py``: well under half the CPU per request of ``python -m moto.server``,
which closes every connection and dispatches every request across moto's services; that
one is ``--s3 moto-server``, the server of the earlier tables of ``docs/performance.md``).
Why DynamoDB Local: moto's ``TransactWriteItems`` deep-copies the whole table once per item
of the transaction, so its cost grows with the table (about 14 ms per item at 300 items),
an artefact no real DynamoDB has; our completions are transactions, Powertools' and the
floor's writes are not. The same source objects for every row:
2,000 JSON-lines objects of 1-4 KiB (the first ``N`` of them for a case of ``N``
objects). The event is what SQS delivers to a Lambda: ``N`` messages, one S3 record per
message, **all ``N`` in one event** (an SQS event source mapping with a batching window
delivers up to 10,000 messages per invocation), built with `data_aggregator.testing`.

**Rows** (each in a fresh process; each gets its own fresh table; the clients are the
ones the code under test makes itself, pointed at moto through ``AWS_ENDPOINT_URL``):

* ``ours``: a `ReusableProcessor` subclass with default settings, built as the docs
  show (``Bundler(get_config())`` with ``DISTRIBUTION_BUCKET_NAME`` and
  ``IDEMPOTENCY_TABLE_NAME`` set: its default `DynamoDBIdempotencyStore`, S3 client and
  bundle settings), called as ``handle(event, LocalContext.from_timeout(900))``.
* ``ours, transact claims``: the same, with its store built by hand as
  ``DynamoDBIdempotencyStore.from_config(config, bundle_locator=..., batch_mode="transact")``
  (claims 100 to a ``TransactWriteItems`` too: fewer requests, twice the write capacity
  per claim).
* ``ours, statements``: the same with ``batch_mode="statements"`` (claims, completions and
  releases 25 to a PartiQL ``BatchExecuteStatement``: not transactional, one write capacity
  unit per write, like a single ``PutItem``).
* ``powertools, docs``: the handler Powertools' docs show ("Batch integration" of the
  idempotency utility): ``BatchProcessor(event_type=EventType.SQS)`` and
  ``process_partial_response``, the record handler decorated with
  ``@idempotent_function(data_keyword_argument="record", ...)`` on a
  ``DynamoDBPersistenceLayer`` (its own table: partition key ``id``, TTL attribute
  ``expiration``) keyed on ``messageId``. Records one after another; each record handler
  GETs its object and appends it to a ``tarfile`` ``w:gz`` (default level) in a
  ``SpooledTemporaryFile``; one ``upload_fileobj`` of the bundle at the end.
* ``powertools, 10 threads``: the same persistence layer, config and idempotent function,
  but the idempotent work of every record (Powertools' conditional ``PutItem``, the GET,
  Powertools' ``UpdateItem``) is submitted to a ``ThreadPoolExecutor(10)``; then
  ``process_partial_response`` walks the records in event order, re-raising a record's
  failure or appending its body to the tar; one upload at the end. With one object per
  message, this is what "10 fetch threads per message" becomes: 10 records in flight.
* ``floor``: no bundling. Per object one conditional ``PutItem``, one ``GetObject`` and one
  ``UpdateItem``, one after another, 64 objects at a time (64 threads, 64 connections).

Every row first handles an untimed event of 10 other objects (a warm container: lazy
imports, thread pools and clients are ready), then the timed event; a row fails unless
every message succeeded and every object is in its bundle (or, for the floor, was
fetched). Rows of a case run back to back in each round, the order rotated by one from
round to round; every ratio is taken within a round.

**Measured per row**: wall seconds of the timed call; client CPU seconds per 1,000
objects (``time.process_time`` of the row's process over the timed call: every thread);
the servers' CPU seconds per 1,000 objects over the same call (``/proc``, Linux);
requests per object (every HTTP request every botocore client of the row sent during the
timed call, retries and the bundle upload included, by service and operation); peak RSS
of the row's process (``VmHWM``: ``ru_maxrss`` would carry the parent's peak over the
exec).

**What bounds it here**: the servers share the machine's cores with the row. moto's S3 is
one Python process (about 2 ms of CPU per ``GetObject`` as ``moto-s3``, 5 ms as
``moto-server``) and DynamoDB Local spends a few ms of CPU per PartiQL statement, so the
rows that keep many requests in flight are bound by the servers' CPU rather than by the
latency; the server CPU column shows it. Fewer requests per object, and less client CPU
competing for the same cores, are what move those rows.

**Docs-style at 2,000 objects is opt-in**: records one after another make it take about
``N x 3 x latency`` (2,000 x 3 x 50 ms = 5 min per round), which alone would double the
run. By default it runs at the smallest size only (``--docs-objects``) and the larger
sizes show it extrapolated linearly from that size in the same round, labelled so; pass
``--docs-objects 300,2000`` to measure it everywhere (about +25 minutes), ``none`` to skip it.

**Targets** (issue 12), each a median over the rounds with its min-max and the number of
rounds meeting it: ours at least 1.5x faster than ``powertools, 10 threads``; ours at
most 0.8x the floor's time; ours' client CPU per 1,000 objects at most 0.75x the threaded
handler's; ours at most 2.1 requests per object.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import importlib
import io
import json
import os
import random
import statistics
import sys
import tarfile
import tempfile
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from tempfile import SpooledTemporaryFile
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote_plus

sys.path.insert(0, str(Path(__file__).resolve().parent))

import boto3
from _harness import REGION, S3_SERVERS, client, print_table, run_row, s3_server
from botocore.config import Config

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

    from data_aggregator.idempotency import BatchMode

ROWS = (
    "ours",
    "ours, transact claims",
    "ours, statements",
    "powertools, 10 threads",
    "powertools, docs",
    "floor",
)
OURS, OURS_TRANSACT, OURS_STATEMENTS, THREADED, DOCS, FLOOR = ROWS
ROW_FLAGS = {
    OURS: "ours",
    OURS_TRANSACT: "ours-transact",
    OURS_STATEMENTS: "ours-statements",
    THREADED: "threaded",
    DOCS: "docs",
    FLOOR: "floor",
}
MAX_OBJECTS = 2000
WARM_OBJECTS = 10
CONTEXT_SECONDS = 900.0  # Lambda's longest timeout
SPOOL_MAX = 64 * 1024 * 1024
FLOOR_THREADS = 64
POWERTOOLS_THREADS = 10
MISSING_POWERTOOLS = (
    "aws-lambda-powertools is not installed: the benchmark compares against it. Install it "
    "into the benchmark environment only: pip install -r benchmarks/requirements.txt"
)

# ----------------------------------------------------------------------------- data


def _json_lines(rng: random.Random, index: int) -> bytes:
    """1-4 KiB of JSON lines, as devices or services drop them into a landing bucket."""
    size = rng.randint(1024, 4096)
    lines: list[str] = []
    length = 0
    while length < size:
        line = json.dumps(
            {
                "device": f"device-{index:05d}",
                "ts": 1_717_200_000 + rng.randint(0, 86_400),
                "temperature": round(rng.uniform(-10, 40), 2),
                "humidity": rng.randint(0, 100),
                "status": rng.choice(["ok", "ok", "ok", "warn", "error"]),
                "path": rng.choice(["/api/v1/items", "/health", "/login"]),
            }
        )
        lines.append(line)
        length += len(line) + 1
    return ("\n".join(lines) + "\n").encode()


def _seed(endpoint: str) -> dict[str, Any]:
    """The source bucket, its objects (key, size, ETag) and the distribution bucket."""
    s3 = client("s3", endpoint)
    source, dest = "bench-landing", "bench-distribution"
    s3.create_bucket(Bucket=source)
    s3.create_bucket(Bucket=dest)
    rng = random.Random(12)
    bodies = {
        f"landing/2024/06/01/device-{i % 97:03d}/reading-{i:05d}.jsonl": _json_lines(rng, i)
        for i in range(MAX_OBJECTS + WARM_OBJECTS)
    }

    def put(item: tuple[str, bytes]) -> list[Any]:
        etag = s3.put_object(Bucket=source, Key=item[0], Body=item[1])["ETag"].strip('"')
        return [item[0], len(item[1]), etag]

    with ThreadPoolExecutor(16) as pool:
        objects = list(pool.map(put, bodies.items()))
    return {"source": source, "dest": dest, "objects": objects}


def _event(source: str, objects: list[list[Any]]) -> dict[str, Any]:
    """The SQS event delivering ``objects``: one message per object, one record each."""
    from data_aggregator.testing import s3_notification, s3_record, sqs_event, sqs_message

    return dict(
        sqs_event(
            sqs_message(
                s3_notification(
                    [s3_record(source, key, size=size, etag=etag, sequencer=uuid.uuid4().hex[:18])]
                )
            )
            for key, size, etag in objects
        )
    )


def _peak_rss_mb() -> float:
    """This process's peak RSS in MiB, from ``VmHWM`` (not inherited over fork and exec)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def _cpu_seconds(pid: int) -> float | None:
    """CPU seconds (user and system) process ``pid`` has used so far; ``None`` off Linux."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _servers_cpu(pids: list[int]) -> float | None:
    """CPU seconds the servers ``pids`` have used so far (``None`` if unknown)."""
    used = [_cpu_seconds(pid) for pid in pids]
    if not used or any(value is None for value in used):
        return None
    return sum(value for value in used if value is not None)


# ----------------------------------------------------------------------------- meter


class Meter:
    """Injected latency and a request count for every botocore client this process makes.

    Installed by wrapping ``botocore.session.Session.create_client``, so that the clients
    the code under test builds itself (our default S3 client and store, Powertools'
    persistence layer) are measured exactly like the benchmark's own. Disarmed, requests
    pay no latency and are not counted (table creation, set-up).
    """

    def __init__(self, latency: float) -> None:
        self.latency = latency
        self.armed = False
        self.counts: dict[str, int] = {}
        self._lock = threading.Lock()

    def install(self) -> None:
        """Measure every client created from now on."""
        import botocore.session

        original = botocore.session.Session.create_client
        meter = self

        def create_client(session: Any, *args: Any, **kwargs: Any) -> Any:
            made = original(session, *args, **kwargs)
            made.meta.events.register("before-send.*", meter.sent)
            return made

        patched: Any = create_client
        botocore.session.Session.create_client = patched  # type: ignore[method-assign]

    def sent(self, event_name: str, **_: Any) -> None:
        """``before-send`` hook: count the request, then pay the round trip."""
        if not self.armed:
            return
        operation = event_name.removeprefix("before-send.")
        with self._lock:
            self.counts[operation] = self.counts.get(operation, 0) + 1
        time.sleep(self.latency)

    def reset(self) -> None:
        """Forget what was counted so far."""
        with self._lock:
            self.counts = {}


# ----------------------------------------------------------------------------- rows
# Each builder does the untimed set-up (tables, clients, handler) and returns the
# handler and a check of its answer: ``check(response, n)`` raises unless every message
# succeeded and ``n`` objects were bundled (fetched, for the floor).


def _build_ours(
    endpoint: str, case: Mapping[str, Any], *, batch_mode: BatchMode | None = None
) -> tuple[Any, Any]:
    from data_aggregator import Outcome, ReusableProcessor, get_config
    from data_aggregator.idempotency import (
        DynamoDBIdempotencyStore,
        S3ManifestBundleLocator,
        create_idempotency_table,
    )

    table = f"ours-{uuid.uuid4().hex[:10]}"
    create_idempotency_table(client("dynamodb", endpoint), table)
    os.environ["DISTRIBUTION_BUCKET_NAME"] = case["dest"]
    os.environ["IDEMPOTENCY_TABLE_NAME"] = table

    class Bundler(ReusableProcessor):
        """A user's bundler with nothing overridden."""

    config = get_config()
    if batch_mode is None:
        processor = Bundler(config)
    else:  # a user's choice of batch mode: the store built by hand, as the docs show
        store = DynamoDBIdempotencyStore.from_config(
            config,
            bundle_locator=S3ManifestBundleLocator(config.distribution_bucket_name),
            batch_mode=batch_mode,
        )
        processor = Bundler(config, store=store)

    def check(response: Any, n: int) -> None:
        assert response == {"batchItemFailures": []}, response
        result = processor.last_result
        assert result is not None
        bundled = result.count(Outcome.BUNDLED)
        assert bundled == n, f"{bundled} of {n} objects bundled"

    return processor.handle, check


def _powertools() -> SimpleNamespace:
    """Powertools' names, imported here (the package is optional); exits if missing."""
    try:
        batch = importlib.import_module("aws_lambda_powertools.utilities.batch")
        classes = importlib.import_module("aws_lambda_powertools.utilities.data_classes")
        sqs = importlib.import_module("aws_lambda_powertools.utilities.data_classes.sqs_event")
        idempotency = importlib.import_module("aws_lambda_powertools.utilities.idempotency")
    except ImportError as exc:
        raise SystemExit(f"{MISSING_POWERTOOLS}\n({exc})") from None
    return SimpleNamespace(
        BatchProcessor=batch.BatchProcessor,
        EventType=batch.EventType,
        process_partial_response=batch.process_partial_response,
        S3Event=classes.S3Event,
        SQSRecord=sqs.SQSRecord,
        DynamoDBPersistenceLayer=idempotency.DynamoDBPersistenceLayer,
        IdempotencyConfig=idempotency.IdempotencyConfig,
        idempotent_function=idempotency.idempotent_function,
    )


def _powertools_table(endpoint: str) -> str:
    """A table as Powertools' docs create it: partition key ``id``, TTL ``expiration``."""
    ddb = client("dynamodb", endpoint)
    table = f"powertools-{uuid.uuid4().hex[:10]}"
    ddb.create_table(
        TableName=table,
        AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
        KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
        BillingMode="PAY_PER_REQUEST",
    )
    ddb.update_time_to_live(
        TableName=table,
        TimeToLiveSpecification={"Enabled": True, "AttributeName": "expiration"},
    )
    return table


class _Bundle:
    """The hand-written bundle: ``tarfile`` ``w:gz`` into a spooled temporary file."""

    def __init__(self) -> None:
        self.spool = SpooledTemporaryFile(max_size=SPOOL_MAX, mode="w+b")  # noqa: SIM115
        self.archive = tarfile.open(fileobj=self.spool, mode="w:gz")  # noqa: SIM115
        self.members = 0

    def add(self, key: str, body: bytes) -> None:
        info = tarfile.TarInfo(key)
        info.size = len(body)
        info.mtime = int(time.time())
        self.archive.addfile(info, io.BytesIO(body))
        self.members += 1

    def upload(self, s3: Any, bucket: str) -> None:
        self.archive.close()
        self.spool.seek(0)
        s3.upload_fileobj(self.spool, bucket, f"powertools/{uuid.uuid4()}.tar.gz")
        self.spool.close()


def _powertools_check(bundles: list[_Bundle]) -> Any:
    def check(response: Any, n: int) -> None:
        assert response == {"batchItemFailures": []}, response
        assert bundles[-1].members == n, f"{bundles[-1].members} of {n} objects bundled"

    return check


def _build_docs(endpoint: str, case: Mapping[str, Any]) -> tuple[Any, Any]:
    """Powertools' "Batch integration" example, with the bundling as the record's work."""
    pt = _powertools()
    table = _powertools_table(endpoint)
    dest = case["dest"]

    # -- from here on, the handler module as a user writes it from Powertools' docs
    processor = pt.BatchProcessor(event_type=pt.EventType.SQS)
    dynamodb = pt.DynamoDBPersistenceLayer(table_name=table)
    config = pt.IdempotencyConfig(event_key_jmespath="messageId")
    s3 = boto3.client("s3")
    bundles: list[_Bundle] = []

    def bundle_record(record: Any) -> dict[str, Any]:
        s3_event = pt.S3Event(record.json_body)
        key = s3_event.object_key
        body = s3.get_object(Bucket=s3_event.bucket_name, Key=key)["Body"].read()
        bundles[-1].add(key, body)
        return {"key": key, "size": len(body)}

    # The docs' ``@idempotent_function(...)``, applied by hand: the optional package is
    # imported as ``Any`` here, which mypy refuses as a decorator.
    record_handler = pt.idempotent_function(
        data_keyword_argument="record", config=config, persistence_store=dynamodb
    )(bundle_record)

    def lambda_handler(event: dict[str, Any], context: Any) -> Any:
        config.register_lambda_context(context)
        bundles.append(_Bundle())
        response = pt.process_partial_response(
            event=event, context=context, processor=processor, record_handler=record_handler
        )
        bundles[-1].upload(s3, dest)
        return response

    return lambda_handler, _powertools_check(bundles)


def _build_threaded(endpoint: str, case: Mapping[str, Any]) -> tuple[Any, Any]:
    """The same idempotent work, ``POWERTOOLS_THREADS`` records at a time."""
    pt = _powertools()
    table = _powertools_table(endpoint)
    dest = case["dest"]

    processor = pt.BatchProcessor(event_type=pt.EventType.SQS)
    dynamodb = pt.DynamoDBPersistenceLayer(table_name=table)
    config = pt.IdempotencyConfig(event_key_jmespath="messageId")
    s3 = boto3.client("s3")
    bodies: dict[str, tuple[str, bytes]] = {}
    bundles: list[_Bundle] = []

    def fetch_record(record: Any) -> dict[str, Any]:
        s3_event = pt.S3Event(record.json_body)
        key = s3_event.object_key
        body = s3.get_object(Bucket=s3_event.bucket_name, Key=key)["Body"].read()
        bodies[record.message_id] = (key, body)
        return {"key": key, "size": len(body)}

    fetch = pt.idempotent_function(  # the decorator, applied by hand (see _build_docs)
        data_keyword_argument="record", config=config, persistence_store=dynamodb
    )(fetch_record)

    def lambda_handler(event: dict[str, Any], context: Any) -> Any:
        config.register_lambda_context(context)
        bodies.clear()
        with ThreadPoolExecutor(POWERTOOLS_THREADS) as pool:
            fetched = {
                raw["messageId"]: pool.submit(fetch, record=pt.SQSRecord(raw))
                for raw in event["Records"]
            }
        bundle = _Bundle()
        bundles.append(bundle)

        def record_handler(record: Any) -> None:
            fetched[record.message_id].result()  # re-raises this record's failure
            entry = bodies.pop(record.message_id, None)
            if entry is not None:  # None: completed earlier, so in an earlier bundle
                bundle.add(*entry)

        response = pt.process_partial_response(
            event=event, context=context, processor=processor, record_handler=record_handler
        )
        bundle.upload(s3, dest)
        return response

    return lambda_handler, _powertools_check(bundles)


def _build_floor(endpoint: str, case: Mapping[str, Any]) -> tuple[Any, Any]:
    """Claim, GET, complete per object, ``FLOOR_THREADS`` objects at a time; no bundle."""
    from data_aggregator.idempotency import create_idempotency_table

    table = f"floor-{uuid.uuid4().hex[:10]}"
    create_idempotency_table(client("dynamodb", endpoint), table)
    config = Config(max_pool_connections=FLOOR_THREADS, retries={"mode": "standard"})
    session = boto3.session.Session()
    ddb = session.client("dynamodb", config=config)
    s3 = session.client("s3", config=config)
    fetched: list[int] = []

    def one(message: dict[str, Any]) -> int:
        record = json.loads(message["body"])["Records"][0]["s3"]
        bucket, key = record["bucket"]["name"], unquote_plus(record["object"]["key"])
        item_key = {"object_key": {"S": f"{bucket}/{key}"}}
        now = int(time.time())
        ddb.put_item(
            TableName=table,
            Item={**item_key, "status": {"S": "IN_PROGRESS"}, "expiration": {"N": str(now)}},
            ConditionExpression="attribute_not_exists(object_key)",
        )
        size = len(s3.get_object(Bucket=bucket, Key=key)["Body"].read())
        ddb.update_item(
            TableName=table,
            Key=item_key,
            UpdateExpression="SET #s = :done, expiration = :e",
            ExpressionAttributeNames={"#s": "status"},
            ExpressionAttributeValues={":done": {"S": "COMPLETED"}, ":e": {"N": str(now)}},
        )
        return size

    def handler(event: dict[str, Any], _context: Any) -> Any:
        with ThreadPoolExecutor(FLOOR_THREADS) as pool:
            sizes = list(pool.map(one, event["Records"]))
        fetched.append(len(sizes))
        return {"batchItemFailures": []}

    def check(response: Any, n: int) -> None:
        assert response == {"batchItemFailures": []}, response
        assert fetched[-1] == n, f"{fetched[-1]} of {n} objects fetched"

    return handler, check


BUILDERS: dict[str, Callable[[str, Mapping[str, Any]], tuple[Any, Any]]] = {
    "ours": _build_ours,
    "ours-transact": functools.partial(_build_ours, batch_mode="transact"),
    "ours-statements": functools.partial(_build_ours, batch_mode="statements"),
    "threaded": _build_threaded,
    "docs": _build_docs,
    "floor": _build_floor,
}


def _row_main(args: argparse.Namespace) -> None:
    """One row in this (fresh) process: set up, warm up, time one invocation, report."""
    from data_aggregator import LocalContext

    case = json.loads(Path(args.case).read_text())
    n = args.n
    os.environ["AWS_ENDPOINT_URL"] = args.endpoint
    os.environ["AWS_ENDPOINT_URL_DYNAMODB"] = args.tables_endpoint or args.endpoint
    os.environ["AWS_DEFAULT_REGION"] = REGION
    meter = Meter(args.latency)
    meter.install()
    handler, check = BUILDERS[args.row](args.tables_endpoint or args.endpoint, case)
    warm = _event(case["source"], case["objects"][MAX_OBJECTS:])
    timed = _event(case["source"], case["objects"][:n])

    meter.armed = True
    check(handler(warm, LocalContext.from_timeout(CONTEXT_SECONDS)), WARM_OBJECTS)
    meter.reset()
    context = LocalContext.from_timeout(CONTEXT_SECONDS)
    pids = [int(pid) for pid in str(args.server_pid).split(",") if int(pid)]
    server_started = _servers_cpu(pids)
    cpu_started = time.process_time()
    started = time.perf_counter()
    response = handler(timed, context)
    wall = time.perf_counter() - started
    cpu = time.process_time() - cpu_started
    server_ended = _servers_cpu(pids)
    meter.armed = False
    counts = dict(meter.counts)
    check(response, n)
    result: dict[str, float] = {"wall": wall, "cpu": cpu, "rss": _peak_rss_mb()}
    if server_started is not None and server_ended is not None:
        result["server_cpu"] = server_ended - server_started
    result.update({f"req:{op}": float(count) for op, count in counts.items()})
    sys.stdout.write("\n" + json.dumps(result) + "\n")


# ----------------------------------------------------------------------------- driver


@dataclass
class Sample:
    """One row's figures in one round."""

    wall: float
    cpu_per_1000: float
    server_cpu_per_1000: float | None
    requests_per_object: float
    by_operation: dict[str, float]
    rss: float


@dataclass
class Results:
    """Every sample, by (objects, latency ms, row), one per round."""

    samples: dict[tuple[int, int, str], list[Sample]] = field(default_factory=dict)
    #: Docs-style wall seconds extrapolated from a smaller size, by (n, latency, round).
    extrapolated: dict[tuple[int, int], list[float]] = field(default_factory=dict)

    def add(self, n: int, latency_ms: int, row: str, sample: Sample) -> None:
        self.samples.setdefault((n, latency_ms, row), []).append(sample)


def _measure(
    endpoint: str,
    *,
    tables: str,
    server_pid: str,
    row: str,
    n: int,
    latency_ms: int,
    case_file: str,
) -> Sample:
    raw = run_row(
        [
            __file__,
            "--row",
            ROW_FLAGS[row],
            "--endpoint",
            endpoint,
            "--tables-endpoint",
            tables,
            "--latency",
            str(latency_ms / 1000),
            "--case",
            case_file,
            "--n",
            str(n),
            "--server-pid",
            str(server_pid),
        ],
        f"{row} {n} objects {latency_ms} ms",
    )
    server = raw["server_cpu"] * 1000 / n if "server_cpu" in raw else None
    by_operation = {k.removeprefix("req:"): v / n for k, v in raw.items() if k.startswith("req:")}
    return Sample(
        wall=raw["wall"],
        cpu_per_1000=raw["cpu"] * 1000 / n,
        server_cpu_per_1000=server,
        requests_per_object=sum(by_operation.values()),
        by_operation=by_operation,
        rss=raw["rss"],
    )


def _spread(values: list[float], fmt: str = "{:.2f}") -> str:
    """``median (min-max)``, or the value alone for one round."""
    median = fmt.format(statistics.median(values))
    if len(values) == 1:
        return median
    return f"{median} ({fmt.format(min(values))}-{fmt.format(max(values))})"


@dataclass(frozen=True)
class Target:
    """One target of the issue: a per-round ratio and its bound."""

    name: str
    bound: float
    at_least: bool

    def met(self, value: float) -> bool:
        return value >= self.bound if self.at_least else value <= self.bound

    def text(self) -> str:
        return f"{'>=' if self.at_least else '<='} {self.bound:g}"


def _ratios(results: Results, n: int, latency: int) -> list[tuple[str, list[float], Target | None]]:
    """The comparisons of one case, per round, for each of our rows."""
    s = results.samples
    threaded = s.get((n, latency, THREADED), [])
    floor = s.get((n, latency, FLOOR), [])
    out: list[tuple[str, list[float], Target | None]] = []
    for row, label in (
        (OURS, "ours"),
        (OURS_TRANSACT, "ours (transact claims)"),
        (OURS_STATEMENTS, "ours (statements)"),
    ):
        ours = s.get((n, latency, row), [])
        if not ours:
            continue
        if threaded:
            out.append(
                (
                    f"threaded Powertools time / {label}",
                    [t.wall / o.wall for o, t in zip(ours, threaded, strict=True)],
                    Target("speed-up over threaded Powertools", 1.5, at_least=True),
                )
            )
        if floor:
            out.append(
                (
                    f"{label} time / floor time",
                    [o.wall / f.wall for o, f in zip(ours, floor, strict=True)],
                    Target("time vs floor", 0.8, at_least=False),
                )
            )
        if threaded:
            out.append(
                (
                    f"{label} CPU / threaded Powertools CPU",
                    [o.cpu_per_1000 / t.cpu_per_1000 for o, t in zip(ours, threaded, strict=True)],
                    Target("client CPU", 0.75, at_least=False),
                )
            )
        out.append(
            (
                f"{label} requests per object",
                [o.requests_per_object for o in ours],
                Target("requests per object", 2.1, at_least=False),
            )
        )
    out += _docs_ratios(results, n, latency)
    return out


def _docs_ratios(
    results: Results, n: int, latency: int
) -> list[tuple[str, list[float], Target | None]]:
    """The docs-style handler's time over ours (measured, or extrapolated)."""
    ours = results.samples.get((n, latency, OURS), [])
    docs = results.samples.get((n, latency, DOCS), [])
    if ours and docs:
        return [
            (
                "docs Powertools time / ours",
                [d.wall / o.wall for o, d in zip(ours, docs, strict=True)],
                None,
            )
        ]
    if ours and (n, latency) in results.extrapolated:
        extrapolated = results.extrapolated[n, latency]
        return [
            (
                "docs Powertools time (extrapolated) / ours",
                [d / o.wall for o, d in zip(ours, extrapolated, strict=True)],
                None,
            )
        ]
    return []


def _print(results: Results, sizes: list[int], latencies: list[int], rounds: int) -> None:
    rows: list[list[Any]] = []
    breakdown: list[list[Any]] = []
    for n in sizes:
        for latency in latencies:
            for row in ROWS:
                samples = results.samples.get((n, latency, row))
                if not samples:
                    extrapolated = results.extrapolated.get((n, latency))
                    if row == DOCS and extrapolated:
                        label = f"{row} (extrapolated, not run)"
                        rows.append([f"{n:,}", latency, label, _spread(extrapolated, "{:.1f}")])
                        rows[-1] += ["-"] * 5
                    continue
                walls = [x.wall for x in samples]
                servers = [x.server_cpu_per_1000 for x in samples]
                rows.append(
                    [
                        f"{n:,}",
                        latency,
                        row,
                        _spread(walls),
                        f"{n / statistics.median(walls):,.0f}",
                        _spread([x.cpu_per_1000 for x in samples]),
                        _spread([v for v in servers if v is not None])
                        if None not in servers
                        else "n/a",
                        _spread([x.requests_per_object for x in samples], "{:.3f}"),
                        _spread([x.rss for x in samples], "{:.0f}"),
                    ]
                )
                if latency == latencies[0]:
                    operations = sorted({op for x in samples for op in x.by_operation})
                    per_op = {
                        op: statistics.median(x.by_operation.get(op, 0.0) for x in samples)
                        for op in operations
                    }
                    text = ", ".join(f"{op} {value:.3f}" for op, value in per_op.items())
                    breakdown.append([f"{n:,}", row, text])
    print_table(
        f"One invocation, all objects in one SQS event: median over {rounds} round(s) (min-max)",
        [
            "objects",
            "latency ms",
            "row",
            "wall s",
            "objects/s",
            "client CPU s/1k obj",
            "server CPU s/1k obj",
            "requests/object",
            "peak RSS MiB",
        ],
        rows,
    )
    print_table(
        f"Requests per object by service.operation (at {latencies[0]} ms)",
        ["objects", "row", "requests per object"],
        breakdown,
    )
    targets: list[list[Any]] = []
    for n in sizes:
        for latency in latencies:
            for name, values, target in _ratios(results, n, latency):
                if target is None:
                    targets.append(
                        [f"{n:,}", latency, name, _spread(values), "-", "-", "(no target)"]
                    )
                    continue
                met = sum(target.met(v) for v in values)
                verdict = "PASS" if target.met(statistics.median(values)) else "FAIL"
                targets.append(
                    [
                        f"{n:,}",
                        latency,
                        name,
                        _spread(values),
                        target.text(),
                        f"{met}/{len(values)}",
                        verdict,
                    ]
                )
    print_table(
        "Ratios within each round, median (min-max); targets of issue 12 (PASS: the median "
        "meets it)",
        ["objects", "latency ms", "comparison", "value", "target", "rounds meeting", "verdict"],
        targets,
    )


def _sizes(text: str) -> list[int]:
    if text.strip().lower() in {"", "none"}:
        return []
    return [int(part) for part in text.split(",")]


def _chosen_rows(parser: argparse.ArgumentParser, args: argparse.Namespace) -> tuple[str, ...]:
    """The rows ``--rows`` names, in the table's order (exits on a bad combination)."""
    if args.tables == "moto" and args.s3 != "moto-server":
        parser.error("--tables moto needs --s3 moto-server (the tables live on that server)")
    wanted = set(args.rows.split(","))
    if wanted - set(ROW_FLAGS.values()):
        parser.error(f"--rows: unknown {', '.join(sorted(wanted - set(ROW_FLAGS.values())))}")
    return tuple(row for row in ROWS if ROW_FLAGS[row] in wanted)


def main() -> None:
    """Run every row of every case, ``--rounds`` times, and print the tables."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--objects", default="300,2000", help="sizes, at most 2000")
    parser.add_argument("--latency-ms", default="20,50", help="injected latencies")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--docs-objects",
        default=None,
        help="sizes at which the docs-style Powertools row runs (default: the smallest "
        "size; others are extrapolated from it); 'none' skips it",
    )
    parser.add_argument("--quick", action="store_true", help="100 objects, 20 ms, 1 round")
    parser.add_argument(
        "--rows",
        default=",".join(ROW_FLAGS.values()),
        help=f"the rows to run, comma-separated, of: {', '.join(ROW_FLAGS.values())}",
    )
    parser.add_argument("--row", choices=list(BUILDERS), help=argparse.SUPPRESS)
    parser.add_argument("--endpoint", help=argparse.SUPPRESS)
    parser.add_argument("--latency", type=float, default=0.0, help=argparse.SUPPRESS)
    parser.add_argument("--case", help=argparse.SUPPRESS)
    parser.add_argument("--n", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--server-pid", default="0", help=argparse.SUPPRESS)
    parser.add_argument("--tables-endpoint", default="", help=argparse.SUPPRESS)
    parser.add_argument(
        "--s3",
        choices=S3_SERVERS,
        default="moto-s3",
        help="the S3 server: moto's S3 application alone on a kept-alive server "
        "(default), python -m moto.server as the tests run it (moto-server; the tables of "
        "the earlier runs), or SeaweedFS (the real-servers pair's)",
    )
    parser.add_argument(
        "--tables",
        choices=["dynamodb-local", "moto"],
        default="dynamodb-local",
        help="where the DynamoDB tables live (default: AWS's DynamoDB Local)",
    )
    args = parser.parse_args()
    if args.row:
        _row_main(args)
        return
    rows = _chosen_rows(parser, args)
    _powertools()  # fail now, not after seeding, when it is missing

    if args.quick:
        args.objects, args.latency_ms, args.rounds = "100", "20", 1
    sizes = sorted(_sizes(args.objects))
    if not sizes or max(sizes) > MAX_OBJECTS:
        parser.error(f"--objects: between 1 and {MAX_OBJECTS}")
    latencies = [int(float(x)) for x in args.latency_ms.split(",")]
    docs_sizes = set(_sizes(args.docs_objects) if args.docs_objects is not None else sizes[:1])
    results = Results()
    started = time.perf_counter()
    with (
        s3_server(args.s3) as s3,
        tempfile.TemporaryDirectory() as work,
        contextlib.ExitStack() as stack,
    ):
        endpoint = s3[0]
        print(f"seeding the {args.s3} server ...", flush=True)
        tables, server_pid = _table_server(args.tables, s3, Path(work), stack)
        case = _seed(endpoint)
        case_file = str(Path(work) / "case.json")
        Path(case_file).write_text(json.dumps(case))
        for round_number in range(args.rounds):
            order = rows[round_number % len(rows) :] + rows[: round_number % len(rows)]
            for n in sizes:
                for latency in latencies:
                    for row in order:
                        if row == DOCS and n not in docs_sizes:
                            continue
                        sample = _measure(
                            endpoint,
                            tables=tables,
                            server_pid=server_pid,
                            row=row,
                            n=n,
                            latency_ms=latency,
                            case_file=case_file,
                        )
                        results.add(n, latency, row, sample)
                        print(
                            f"  round {round_number + 1}: {n} objects, {latency} ms, "
                            f"{row}: {sample.wall:.2f} s, "
                            f"{sample.requests_per_object:.2f} requests/object",
                            flush=True,
                        )
                    _extrapolate_docs(results, n, latency, docs_sizes)
    _print(results, sizes, latencies, args.rounds)
    measured = sorted(docs_sizes & set(sizes))
    if any(n not in docs_sizes for n in sizes) and measured:
        print(
            f"\ndocs-style Powertools measured at {', '.join(map(str, measured))} objects only; "
            "larger sizes are extrapolated linearly (--docs-objects to measure them)"
        )
    print(f"\n{os.cpu_count()} CPUs; total benchmark time: {time.perf_counter() - started:.0f} s")


def _table_server(
    where: str, s3: tuple[str, int], work: Path, stack: contextlib.ExitStack
) -> tuple[str, str]:
    """The tables' endpoint and the comma-separated pids of the servers to meter."""
    endpoint, pid = s3
    if where == "moto":
        return endpoint, str(pid)
    from data_aggregator.testing.servers import start_dynamodb_local

    (work / "dynamodb").mkdir()
    local = start_dynamodb_local(work / "dynamodb")
    stack.callback(local.stop)
    return local.endpoint, f"{pid},{local.process.pid}"


def _extrapolate_docs(results: Results, n: int, latency: int, docs_sizes: set[int]) -> None:
    """After a case's rows of a round: the docs-style time at ``n`` from the largest
    measured size below it, in the same round."""
    if n in docs_sizes:
        return
    smaller = [m for m in docs_sizes if m < n and (m, latency, DOCS) in results.samples]
    if not smaller:
        return
    base = max(smaller)
    latest = results.samples[base, latency, DOCS][-1]
    results.extrapolated.setdefault((n, latency), []).append(latest.wall * n / base)


if __name__ == "__main__":
    main()
