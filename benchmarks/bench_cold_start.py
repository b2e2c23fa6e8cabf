"""Cold start: a fresh interpreter to the first completed ``handle()``, ours vs Powertools.

Run (prints the tables; about two minutes with the defaults on 2 cores)::

    pip install -r benchmarks/requirements.txt     # aws-lambda-powertools, benchmarks only
    python benchmarks/bench_cold_start.py          # 11 runs per row; 0 and 20 ms
    python benchmarks/bench_cold_start.py --runs 21 --latency-ms 20

``aws-lambda-powertools`` is never a dependency of the package; without it the benchmark
stops at once and says how to install it.

**Set-up.** One moto server (S3 and DynamoDB) on 127.0.0.1 for the whole run, behind the
library's `FaultProxy`, which adds the injected latency (0 or 20 ms) to every request and
counts them. The source bucket, the distribution bucket and one idempotency table per
row are made once; every run puts a fresh source object, so that no run is a duplicate of
an earlier one (ours keys the table on the object, Powertools on the message id, also
fresh).

**A run** is a fresh ``python -c`` that reads a 1-message SQS event (the Lambda runtime
has parsed it before the handler runs), then imports a handler module written as a user
writes it (imports, then the processor built at module level), then calls its
``handler(event, context)`` once and checks the answer: no failed message and the object
in a bundle. Measured inside the child (``time.perf_counter``, ``time.process_time``):
**import** (the module's import statements), **init** (its module-level construction),
**first call** (the ``handler`` call), and **CPU** (``resource.getrusage``: the whole
process up to the answer, interpreter start-up included); outside: **to answer** (from
starting the process to the answer, on the same monotonic clock) and **to exit**. Every
module's compiled bytecode is read from a private cache filled by an untimed warm-up run
per row, as a deployment built with ``pip install`` has it.

**Rows**, interleaved run by run (the order rotated by one each run):

* ``ours``: ``class Bundler(ReusableProcessor)`` with nothing overridden,
  ``Bundler(get_config())`` at module level (default DynamoDB store, S3 client, gzip);
* ``powertools``: the hand-written handler of ``bench_invocation.py``: ``BatchProcessor``
  and ``process_partial_response``, the record handler under ``@idempotent_function``
  on a ``DynamoDBPersistenceLayer`` keyed on ``messageId``, the object appended to a
  ``tarfile`` ``w:gz`` in a ``SpooledTemporaryFile``, one ``upload_fileobj``;
* ``boto3 only``: the same work with plain boto3 and no framework (a conditional
  ``PutItem``, ``GetObject``, the tar, one ``PutObject``, an ``UpdateItem``): a floor.

**Target** (issue 14): ours' median time to answer at most 1.0x Powertools', the ratio
taken per pair of runs (run *i* of ours against run *i* of Powertools) and reported as
median (min-max).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _harness import REGION, client, moto_server, print_table
from bench_import import bytecode_env

OURS, POWERTOOLS, BOTO3 = "ours", "powertools", "boto3 only"
ROWS = (OURS, POWERTOOLS, BOTO3)
MODULES = {OURS: "handler_ours", POWERTOOLS: "handler_powertools", BOTO3: "handler_boto3"}
SOURCE, DEST = "cold-landing", "cold-distribution"
TARGET = 1.0
MISSING_POWERTOOLS = (
    "aws-lambda-powertools is not installed: the benchmark compares against it. Install it "
    "into the benchmark environment only: pip install -r benchmarks/requirements.txt"
)

# ----------------------------------------------------------------------------- handlers
# Each handler module marks the end of its imports with ``IMPORTED``: (perf_counter,
# process_time) after the import statements, before the module-level construction.

HANDLER_OURS = '''
import time

from data_aggregator import ReusableProcessor, get_config

IMPORTED = (time.perf_counter(), time.process_time())


class Bundler(ReusableProcessor):
    """A user's bundler with nothing overridden."""


processor = Bundler(get_config())


def handler(event, context):
    return processor.handle(event, context)


def bundled():
    return sum(1 for r in processor.last_result.records if r.outcome.value == "bundled")
'''

HANDLER_POWERTOOLS = """
import io
import os
import tarfile
import time
import uuid
from tempfile import SpooledTemporaryFile

import boto3
from aws_lambda_powertools.utilities.batch import (
    BatchProcessor,
    EventType,
    process_partial_response,
)
from aws_lambda_powertools.utilities.data_classes import S3Event
from aws_lambda_powertools.utilities.idempotency import (
    DynamoDBPersistenceLayer,
    IdempotencyConfig,
    idempotent_function,
)

IMPORTED = (time.perf_counter(), time.process_time())

processor = BatchProcessor(event_type=EventType.SQS)
persistence = DynamoDBPersistenceLayer(table_name=os.environ["POWERTOOLS_TABLE"])
config = IdempotencyConfig(event_key_jmespath="messageId")
s3 = boto3.client("s3")
DEST = os.environ["DISTRIBUTION_BUCKET_NAME"]
members = []


class Bundle:
    def __init__(self):
        self.spool = SpooledTemporaryFile(max_size=64 * 1024 * 1024, mode="w+b")
        self.archive = tarfile.open(fileobj=self.spool, mode="w:gz")

    def add(self, key, body):
        info = tarfile.TarInfo(key)
        info.size = len(body)
        info.mtime = int(time.time())
        self.archive.addfile(info, io.BytesIO(body))
        members.append(key)

    def upload(self):
        self.archive.close()
        self.spool.seek(0)
        s3.upload_fileobj(self.spool, DEST, f"powertools/{uuid.uuid4()}.tar.gz")
        self.spool.close()


bundle = None


@idempotent_function(data_keyword_argument="record", config=config, persistence_store=persistence)
def record_handler(record):
    event = S3Event(record.json_body)
    key = event.object_key
    body = s3.get_object(Bucket=event.bucket_name, Key=key)["Body"].read()
    bundle.add(key, body)
    return {"key": key, "size": len(body)}


def handler(event, context):
    global bundle
    config.register_lambda_context(context)
    bundle = Bundle()
    response = process_partial_response(
        event=event, context=context, processor=processor, record_handler=record_handler
    )
    bundle.upload()
    return response


def bundled():
    return len(members)
"""

HANDLER_BOTO3 = """
import io
import json
import os
import tarfile
import time
import uuid
from tempfile import SpooledTemporaryFile
from urllib.parse import unquote_plus

import boto3

IMPORTED = (time.perf_counter(), time.process_time())

s3 = boto3.client("s3")
ddb = boto3.client("dynamodb")
TABLE = os.environ["IDEMPOTENCY_TABLE_NAME"]
DEST = os.environ["DISTRIBUTION_BUCKET_NAME"]
members = []


def handler(event, context):
    spool = SpooledTemporaryFile(max_size=64 * 1024 * 1024, mode="w+b")
    archive = tarfile.open(fileobj=spool, mode="w:gz")
    done = []
    for message in event["Records"]:
        for record in json.loads(message["body"])["Records"]:
            bucket = record["s3"]["bucket"]["name"]
            key = unquote_plus(record["s3"]["object"]["key"])
            item = {"object_key": {"S": f"{bucket}/{key}"}}
            expires = {"N": str(int(time.time()) + 86400)}
            ddb.put_item(
                TableName=TABLE,
                Item={**item, "status": {"S": "IN_PROGRESS"}, "expiration": expires},
                ConditionExpression="attribute_not_exists(object_key)",
            )
            body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
            info = tarfile.TarInfo(key)
            info.size = len(body)
            archive.addfile(info, io.BytesIO(body))
            done.append((item, expires, key))
    archive.close()
    spool.seek(0)
    s3.put_object(Bucket=DEST, Key=f"boto3/{uuid.uuid4()}.tar.gz", Body=spool.read())
    for item, expires, key in done:
        ddb.update_item(
            TableName=TABLE,
            Key=item,
            UpdateExpression="SET #s = :done, expiration = :e",
            ExpressionAttributeNames={"#s": "status"},
            ExpressionAttributeValues={":done": {"S": "COMPLETED"}, ":e": expires},
        )
        members.append(key)
    return {"batchItemFailures": []}


def bundled():
    return len(members)
"""

SOURCES = {OURS: HANDLER_OURS, POWERTOOLS: HANDLER_POWERTOOLS, BOTO3: HANDLER_BOTO3}

#: The child: what the Lambda runtime does before and around the handler, timed.
CHILD = textwrap.dedent(
    """
    import time
    STARTED = (time.perf_counter(), time.process_time())
    import json, os, resource, sys
    event = json.loads(os.environ["BENCH_EVENT"])

    class Context:
        aws_request_id = os.environ["BENCH_REQUEST_ID"]
        function_name = "cold-start"
        memory_limit_in_mb = 1024
        invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:cold-start"
        _deadline = time.monotonic() + 60

        def get_remaining_time_in_millis(self):
            return int((self._deadline - time.monotonic()) * 1000)

    context = Context()
    BEFORE = (time.perf_counter(), time.process_time())
    module = __import__(os.environ["BENCH_MODULE"])
    BUILT = (time.perf_counter(), time.process_time())
    response = module.handler(event, context)
    ANSWERED = (time.perf_counter(), time.process_time())
    usage = resource.getrusage(resource.RUSAGE_SELF)
    assert response == {"batchItemFailures": []}, response
    assert module.bundled() == 1, module.bundled()
    print(json.dumps({
        "started": STARTED[0],
        "answered": ANSWERED[0],
        "import": module.IMPORTED[0] - BEFORE[0],
        "init": BUILT[0] - module.IMPORTED[0],
        "call": ANSWERED[0] - BUILT[0],
        "import_cpu": module.IMPORTED[1] - BEFORE[1],
        "init_cpu": BUILT[1] - module.IMPORTED[1],
        "call_cpu": ANSWERED[1] - BUILT[1],
        "cpu": usage.ru_utime + usage.ru_stime,
    }))
    """
)


# ----------------------------------------------------------------------------- set-up


def _powertools_table(ddb: Any) -> str:
    """A table as Powertools' docs create it: partition key ``id``, TTL ``expiration``."""
    table = f"powertools-{uuid.uuid4().hex[:10]}"
    ddb.create_table(
        TableName=table,
        AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
        KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
        BillingMode="PAY_PER_REQUEST",
    )
    return table


def _event(key: str, size: int, etag: str) -> dict[str, Any]:
    """The SQS event announcing one fresh object: one message, one S3 record."""
    from data_aggregator.testing import s3_notification, s3_record, sqs_event, sqs_message

    record = s3_record(SOURCE, key, size=size, etag=etag, sequencer=uuid.uuid4().hex[:18])
    return dict(sqs_event([sqs_message(s3_notification([record]))]))


class Bench:
    """The moto server's buckets and tables, and one run of a row."""

    def __init__(self, endpoint: str, proxy_url: str, work: Path, env: dict[str, str]) -> None:
        from data_aggregator.idempotency import create_idempotency_table

        self.s3 = client("s3", endpoint)
        ddb = client("dynamodb", endpoint)
        self.s3.create_bucket(Bucket=SOURCE)
        self.s3.create_bucket(Bucket=DEST)
        ours_table = f"ours-{uuid.uuid4().hex[:10]}"
        create_idempotency_table(ddb, ours_table)
        for row, source in SOURCES.items():
            (work / f"{MODULES[row]}.py").write_text(source.lstrip())
        self.env = {
            **env,
            "PYTHONPATH": str(work),
            "AWS_ENDPOINT_URL": proxy_url,
            "AWS_DEFAULT_REGION": REGION,
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",  # moto's fake credentials
            "DISTRIBUTION_BUCKET_NAME": DEST,
            "IDEMPOTENCY_TABLE_NAME": ours_table,
            "POWERTOOLS_TABLE": _powertools_table(ddb),
            "METRICS_ENABLED": "false",
        }
        self.rng = random.Random(14)

    def run(self, row: str) -> dict[str, float]:
        """One fresh process of ``row`` on a fresh object; its figures."""
        body = bytes(self.rng.getrandbits(8) for _ in range(2048))
        key = f"landing/{uuid.uuid4().hex}.bin"
        etag = self.s3.put_object(Bucket=SOURCE, Key=key, Body=body)["ETag"].strip('"')
        env = {
            **self.env,
            "BENCH_MODULE": MODULES[row],
            "BENCH_EVENT": json.dumps(_event(key, len(body), etag)),
            "BENCH_REQUEST_ID": str(uuid.uuid4()),
        }
        spawned = time.perf_counter()
        done = subprocess.run(  # noqa: S603 - our own interpreter and code
            [sys.executable, "-c", CHILD], env=env, capture_output=True, text=True, check=False
        )
        exited = time.perf_counter()
        if done.returncode != 0:
            sys.stderr.write(done.stderr)
            msg = f"row {row} failed"
            raise RuntimeError(msg)
        figures: dict[str, float] = json.loads(done.stdout.strip().splitlines()[-1])
        figures["to_answer"] = figures["answered"] - spawned
        figures["to_exit"] = exited - spawned
        figures["startup"] = figures["started"] - spawned
        return figures


# ----------------------------------------------------------------------------- report


def _ms(values: list[float]) -> str:
    """``median (min-max)`` in milliseconds."""
    ms = [v * 1000 for v in values]
    return f"{statistics.median(ms):.0f} ({min(ms):.0f}-{max(ms):.0f})"


def _ratio(values: list[float]) -> str:
    return f"{statistics.median(values):.2f} ({min(values):.2f}-{max(values):.2f})"


def _print(results: dict[tuple[int, str], list[dict[str, float]]], latencies: list[int]) -> None:
    rows: list[list[Any]] = []
    for latency in latencies:
        for row in ROWS:
            runs = results[latency, row]
            rows.append(
                [
                    latency,
                    row,
                    _ms([r["to_answer"] for r in runs]),
                    _ms([r["import"] for r in runs]),
                    _ms([r["init"] for r in runs]),
                    _ms([r["call"] for r in runs]),
                    _ms([r["cpu"] for r in runs]),
                    _ms([r["import_cpu"] + r["init_cpu"] for r in runs]),
                    _ms([r["call_cpu"] for r in runs]),
                    _ms([r["to_exit"] for r in runs]),
                    f"{statistics.median(r['requests'] for r in runs):.0f}",
                ]
            )
    runs_per_row = len(results[latencies[0], OURS])
    print_table(
        f"Cold start to the first answer, ms: median (min-max) over {runs_per_row} runs",
        [
            "latency ms",
            "row",
            "to answer",
            "import",
            "init",
            "first call",
            "CPU",
            "CPU import+init",
            "CPU call",
            "to exit",
            "requests",
        ],
        rows,
    )
    ratios: list[list[Any]] = []
    for latency in latencies:
        ours = results[latency, OURS]
        for other in (POWERTOOLS, BOTO3):
            theirs = results[latency, other]
            per_pair = [o["to_answer"] / t["to_answer"] for o, t in zip(ours, theirs, strict=True)]
            cpu = [o["cpu"] / t["cpu"] for o, t in zip(ours, theirs, strict=True)]
            medians = statistics.median(r["to_answer"] for r in ours) / statistics.median(
                r["to_answer"] for r in theirs
            )
            if other == POWERTOOLS:
                met = sum(value <= TARGET for value in per_pair)
                verdict = (
                    f"{'PASS' if medians <= TARGET else 'FAIL'} (<= {TARGET:g}; "
                    f"{met}/{len(per_pair)} pairs)"
                )
            else:
                verdict = "(floor, no target)"
            ratios.append(
                [
                    latency,
                    f"ours / {other}",
                    _ratio(per_pair),
                    f"{medians:.2f}",
                    _ratio(cpu),
                    verdict,
                ]
            )
    print_table(
        "Ratios: per pair of runs, median (min-max); of the medians; target of issue 14",
        ["latency ms", "comparison", "to answer", "of medians", "CPU", "verdict"],
        ratios,
    )


# ----------------------------------------------------------------------------- driver


def main() -> None:
    """Run every row ``--runs`` times per latency, interleaved; print the tables."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--runs", type=int, default=11, help="runs per row and latency")
    parser.add_argument("--latency-ms", default="0,20", help="injected latencies, ms")
    args = parser.parse_args()
    if importlib.util.find_spec("aws_lambda_powertools") is None:  # benchmarks only
        raise SystemExit(MISSING_POWERTOOLS)
    from data_aggregator.testing import FaultProxy

    latencies = [int(value) for value in args.latency_ms.split(",")]
    results: dict[tuple[int, str], list[dict[str, float]]] = {}
    started = time.perf_counter()
    with (
        moto_server() as endpoint,
        FaultProxy(endpoint) as proxy,
        tempfile.TemporaryDirectory(prefix="bench-cold-") as work,
    ):
        bench = Bench(endpoint, proxy.endpoint_url, Path(work), bytecode_env("cached", work))
        for row in ROWS:  # untimed: fill the bytecode cache, warm the OS page cache
            bench.run(row)
        for latency in latencies:
            proxy.latency = latency / 1000
            for run in range(args.runs):
                shift = run % len(ROWS)
                for row in ROWS[shift:] + ROWS[:shift]:
                    proxy.reset_counts()
                    figures = bench.run(row)
                    figures["requests"] = sum(c.received for c in proxy.counts().values())
                    results.setdefault((latency, row), []).append(figures)
                print(
                    f"  {latency} ms, run {run + 1}/{args.runs}: "
                    + ", ".join(
                        f"{row} {results[latency, row][-1]['to_answer'] * 1000:.0f} ms"
                        for row in ROWS
                    ),
                    flush=True,
                )
    _print(results, latencies)
    print(
        f"\n{os.cpu_count()} CPUs; Python {sys.version.split()[0]}; "
        f"total benchmark time: {time.perf_counter() - started:.0f} s"
    )


if __name__ == "__main__":
    main()
