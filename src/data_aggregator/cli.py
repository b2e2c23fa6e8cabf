"""The ``data-aggregator`` command line (also ``python -m data_aggregator``).

Subcommands:

* ``demo``: the whole production path (S3 notifications through SQS into
  :class:`~data_aggregator.processor.ReusableProcessor`, a DynamoDB idempotency table,
  bundles written to S3 and verified) on a local S3 from moto, in this process, with no
  AWS account and no network. Install it with ``pip install "data-aggregator[demo]"``.
* ``inspect BUNDLE``: list a bundle's members (local file or ``s3://bucket/key``), verify
  every checksum while streaming it, optionally extract it (``docs/cli.md``).
* ``create-table NAME``: create the DynamoDB idempotency table.
* ``bundle s3://bucket/prefix --to s3://dest/prefix --table NAME``: bundle objects that
  already exist (a backfill, a replay) through the processor and its idempotency table.

Standard library ``argparse`` only; each subcommand is a parser plus a ``_run_*`` function
registered through ``set_defaults(run=...)``, so more subcommands slot in beside ``demo``.

Exit status: 0 on success, 1 on an error or a failed check (one line on stderr), 2 on a
usage error.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import sys
from typing import TYPE_CHECKING, Any, TextIO

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator, Sequence

    from data_aggregator._backfill import BackfillOptions
    from data_aggregator._demo_report import DemoReport
    from data_aggregator._inspect import InspectResult
    from data_aggregator.clients import S3Client
    from data_aggregator.idempotency import IdempotencyStore

__all__ = ["build_parser", "main"]

PROG = "data-aggregator"
_LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
#: Attributes every LogRecord has; anything else on a record came from ``extra``.
_RECORD_FIELDS = frozenset(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {
    "message",
    "asctime",
}


class CommandError(Exception):
    """An error to report to the user as one line; the exit status is 1."""


def _int_in(low: int, high: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
        if not low <= value <= high:
            msg = f"expected an integer from {low} to {high}, got {value}"
            raise argparse.ArgumentTypeError(msg)
        return value

    return parse


def build_parser(prog: str = PROG) -> argparse.ArgumentParser:
    """The argument parser of every subcommand."""
    from data_aggregator._demo_report import (  # noqa: PLC0415 - commands load their parts
        MAX_BATCH_SIZE,
        MAX_OBJECTS,
        MIN_OBJECTS,
    )

    parser = argparse.ArgumentParser(
        prog=prog,
        description="Bundle floods of small S3 objects from an SQS-triggered Lambda.",
    )
    parser.add_argument(
        "--version", action="version", version=f"%(prog)s {_version()}", help="show the version"
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    # Options every subcommand takes (after its name), through argparse's parents.
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--log-level",
        choices=_LOG_LEVELS,
        default="ERROR",
        type=str.upper,
        help="show the library's structured log lines at this level and above on stderr "
        "(default: %(default)s)",
    )
    common.add_argument(
        "--debug", action="store_true", help="show the full traceback when the command fails"
    )

    demo = commands.add_parser(
        "demo",
        parents=[common],
        help="run the whole pipeline on a local S3 from moto (no AWS account needed)",
        description=(
            "Create a source bucket, a destination bucket and the DynamoDB idempotency "
            "table in moto's in-process mock, upload small objects with awkward keys, feed "
            "the SQS batches S3 would send to ReusableProcessor, deliver one batch again, "
            "then read every bundle back and verify it. Needs the 'demo' extra: "
            "pip install 'data-aggregator[demo]'."
        ),
    )
    demo.add_argument(
        "--objects",
        type=_int_in(MIN_OBJECTS, MAX_OBJECTS),
        default=300,
        metavar="N",
        help=f"object versions to upload, {MIN_OBJECTS}-{MAX_OBJECTS} (default: %(default)s)",
    )
    _add_codec(demo)
    demo.add_argument(
        "--batch-size",
        type=_int_in(1, MAX_BATCH_SIZE),
        default=100,
        metavar="N",
        help=(
            "SQS messages per Lambda invocation, 1-10000 as the SQS event source mapping "
            "allows (AWS's default is 10; default here: %(default)s)"
        ),
    )
    demo.add_argument(
        "--json", action="store_true", help="print only a machine-readable JSON summary"
    )
    demo.add_argument(
        "--quiet",
        "-q",
        action="store_true",
        help="print nothing but errors (the exit status tells the result)",
    )
    demo.set_defaults(run=_run_demo)
    _add_inspect(commands, common)
    _add_create_table(commands, common)
    _add_bundle(commands, common)
    return parser


def _add_codec(parser: argparse.ArgumentParser) -> None:
    from data_aggregator.config import Codec  # noqa: PLC0415 - commands load their parts

    parser.add_argument(
        "--codec",
        choices=[codec.value for codec in Codec],
        default=Codec.GZIP.value,
        help="bundle compression; zstd needs the 'zstd' extra (default: %(default)s)",
    )


def _add_aws_options(
    parser: argparse.ArgumentParser, endpoint: str, *, dynamodb: bool = False
) -> None:
    parser.add_argument(
        "--endpoint-url",
        metavar="URL",
        default=None,
        help=f"{endpoint}, e.g. http://127.0.0.1:5000 for moto or another S3-compatible "
        "store (default: AWS, or AWS_ENDPOINT_URL)",
    )
    parser.add_argument(
        "--s3-endpoint-url",
        metavar="URL",
        default=None,
        help="S3 endpoint only, e.g. a SeaweedFS gateway; wins over --endpoint-url "
        "(default: AWS, or AWS_ENDPOINT_URL_S3)",
    )
    if dynamodb:
        parser.add_argument(
            "--dynamodb-endpoint-url",
            metavar="URL",
            default=None,
            help="DynamoDB endpoint only, e.g. DynamoDB Local; wins over --endpoint-url "
            "(default: AWS, or AWS_ENDPOINT_URL_DYNAMODB)",
        )
    parser.add_argument(
        "--region", default=None, help="AWS region (default: the usual AWS configuration)"
    )


def _add_inspect(commands: Any, common: argparse.ArgumentParser) -> None:
    inspect = commands.add_parser(
        "inspect",
        parents=[common],
        help="list a bundle's members and verify every checksum",
        description=(
            "Read a bundle once, as a stream, from a local file or S3: list the members its "
            "manifest.json names, check each member's size and SHA-256 and that manifest and "
            "archive agree, and for s3:// the whole object's SHA-256 against its "
            "content-sha256 metadata (single-part) or tag (multipart). Exit status 1 with "
            "one line per problem on stderr when any check fails."
        ),
    )
    inspect.add_argument(
        "bundle", metavar="BUNDLE", help="a local path or s3://bucket/key of a bundle"
    )
    _add_aws_options(inspect, "S3 endpoint for s3:// bundles")
    inspect.add_argument(
        "--version-id", metavar="ID", default=None, help="read this version of an s3:// bundle"
    )
    inspect.add_argument(
        "--extract",
        metavar="DIR",
        default=None,
        help="also extract the members into DIR (must be empty or missing), with tarfile's "
        "'data' filter; all or nothing: if any check fails, everything written is removed",
    )
    inspect.add_argument(
        "--json", action="store_true", help="print a machine-readable JSON report instead"
    )
    inspect.set_defaults(run=_run_inspect)


def _add_create_table(commands: Any, common: argparse.ArgumentParser) -> None:
    from data_aggregator._idempotency_dynamodb_table import (  # noqa: PLC0415
        add_create_table_options,
    )

    create = commands.add_parser(
        "create-table",
        parents=[common],
        help="create the DynamoDB idempotency table",
        description=(
            "Create the idempotency table: a string partition key, no sort key, on-demand "
            "billing, TTL on 'expiration' (docs/delivery-semantics.md). Waits until it is "
            "active. Credentials come from the usual AWS configuration."
        ),
    )
    create.add_argument("name", metavar="NAME", help="the table's name")
    add_create_table_options(create)
    create.set_defaults(run=_run_create_table)


def _add_bundle(commands: Any, common: argparse.ArgumentParser) -> None:
    bundle = commands.add_parser(
        "bundle",
        parents=[common],
        help="bundle objects that already exist (backfill, replay) with the same idempotency",
        description=(
            "List SOURCE (s3://bucket/prefix, page by page), turn each object into the S3 "
            "notification it would have sent and feed them, --batch-size at a time, to "
            "ReusableProcessor with the DynamoDB idempotency table --table: the same claim, "
            "bundle and complete as the Lambda, so a second run bundles nothing twice and an "
            "interrupted run is resumed by running it again (docs/cli.md). Exit status 1 "
            "with one line per failure class when an object was not bundled."
        ),
    )
    bundle.add_argument("source", metavar="SOURCE", help="s3://bucket[/prefix] to bundle")
    bundle.add_argument(
        "--to",
        required=True,
        metavar="S3URL",
        help="s3://bucket[/prefix] where bundles are written",
    )
    bundle.add_argument(
        "--table", required=True, metavar="NAME", help="the DynamoDB idempotency table"
    )
    _add_aws_options(bundle, "S3 and DynamoDB endpoint", dynamodb=True)
    _add_codec(bundle)
    bundle.add_argument(
        "--max-bundle-mb",
        type=_int_in(1, 5_000_000),
        default=5120,
        metavar="MB",
        help="largest bundle before another is started (default: %(default)s)",
    )
    bundle.add_argument(
        "--batch-size",
        type=_int_in(1, 10_000),
        default=1000,
        metavar="N",
        help="objects per processor call (default: %(default)s)",
    )
    bundle.add_argument(
        "--chunk-seconds",
        type=_int_in(60, 43_200),
        default=600,
        metavar="S",
        help="deadline of each processor call, which bounds its leases (default: %(default)s)",
    )
    bundle.add_argument(
        "--limit",
        type=_int_in(1, 2**62),
        default=None,
        metavar="N",
        help="stop after the first N listed objects (run again to go on)",
    )
    bundle.add_argument("--quiet", "-q", action="store_true", help="print nothing but errors")
    bundle.set_defaults(run=_run_bundle)


def main(argv: Sequence[str] | None = None, *, prog: str = PROG) -> int:
    """Run the command line; return the exit status."""
    parser = build_parser(prog)
    args = parser.parse_args(argv)
    run: Callable[[argparse.Namespace], int] = args.run
    try:
        with _library_logging(args.log_level):
            return run(args)
    except KeyboardInterrupt:
        _error(prog, "interrupted")
        return 130
    except Exception as exc:
        if args.debug:
            raise
        _error(prog, _one_line(exc))
        return 1


class _StructuredFormatter(logging.Formatter):
    """``LEVEL logger: message {"extra": ...}``: the library's structured fields as JSON."""

    def format(self, record: logging.LogRecord) -> str:
        extra = {k: v for k, v in vars(record).items() if k not in _RECORD_FIELDS}
        line = f"{record.levelname} {record.name}: {record.getMessage()}"
        if extra:
            line += " " + json.dumps(extra, default=str, ensure_ascii=False)
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


@contextlib.contextmanager
def _library_logging(level: str) -> Iterator[None]:
    """Send ``data_aggregator`` log records at ``level`` and above to stderr, then undo it.

    Without this, Python's last-resort handler would print bare warning messages (the
    demo's refused traversal key, say) without their structured fields.
    """
    logger = logging.getLogger("data_aggregator")
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_StructuredFormatter())
    previous = logger.level
    logger.addHandler(handler)
    logger.setLevel(level)
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(previous)


def _version() -> str:
    from data_aggregator import __version__  # noqa: PLC0415

    return __version__


def _one_line(exc: BaseException) -> str:
    from data_aggregator._demo_report import DemoError  # noqa: PLC0415
    from data_aggregator.exceptions import DataAggregatorError  # noqa: PLC0415

    text = "; ".join(line.strip("- ") for line in str(exc).splitlines() if line.strip())
    if isinstance(exc, (CommandError, DemoError)):
        return text
    if isinstance(exc, DataAggregatorError):
        return f"{exc.error_code}: {text}"
    return f"{type(exc).__name__}: {text} (run with --debug for the traceback)"


def _error(prog: str, message: str) -> None:
    sys.stderr.write(f"{prog}: error: {message}\n")


# --------------------------------------------------------------------------- demo


def _run_demo(args: argparse.Namespace) -> int:
    from data_aggregator._demo import DemoOptions, preflight, run_demo  # noqa: PLC0415

    options = DemoOptions(objects=args.objects, codec=args.codec, batch_size=args.batch_size)
    preflight(options)
    chatty = not (args.json or args.quiet)
    out = sys.stdout

    def progress(line: str) -> None:
        if chatty:
            out.write(f"  {line}\n")
            out.flush()

    if chatty:
        out.write(
            f"data-aggregator demo: {options.objects} objects, {options.codec}, "
            f"{options.batch_size} SQS messages per invocation, "
            "moto in this process (no AWS account, no network)\n"
        )
    report = run_demo(options, progress)
    if args.json:
        json.dump(report.to_json(), out, indent=2, ensure_ascii=False)
        out.write("\n")
    elif chatty:
        _render(report, out)
    if report.problems:
        raise CommandError(f"check failed: {report.problems[0]}")
    return 0


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}{'s' * (count != 1)}"


def _short(text: str, limit: int = 48) -> str:
    half = (limit - 3) // 2
    return text if len(text) <= limit else f"{text[:half]}...{text[-half:]}"


def _table(rows: Sequence[Sequence[object]], out: TextIO) -> None:
    cells = [[str(cell) for cell in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(cells[0]))]
    for row in cells:
        left = row[0].ljust(widths[0])
        rest = "  ".join(cell.rjust(width) for cell, width in zip(row[1:], widths[1:], strict=True))
        out.write(f"  {left}  {rest}\n")


def _render(report: DemoReport, out: TextIO) -> None:
    from data_aggregator._demo import event_key  # noqa: PLC0415
    from data_aggregator._demo_report import TRAVERSAL_KEY  # noqa: PLC0415
    from data_aggregator.processor import Outcome  # noqa: PLC0415

    out.write("\nBundles (read back from S3 and checked with verify_bundle)\n")
    for bundle in report.bundles:
        out.write(f"  {bundle.key}\n")
        out.write(
            f"      {_plural(len(bundle.manifest.members), 'member')}, {bundle.size:,} bytes, "
            f"sha256 {bundle.sha256}\n"
        )

    out.write("\nAwkward keys: exact S3 key, as the event carries it, name in the bundle\n")
    names = {(m.key, m.version_id): m.name for b in report.bundles for m in b.manifest.members}
    refused = {obj.key: code for obj, code in report.refused()}
    for obj in report.uploaded:
        if obj.note is None:
            continue
        name = names.get((obj.key, obj.version_id))
        outcome = f"-> {_short(name)}" if name else f"-> REFUSED ({refused.get(obj.key)})"
        out.write(f"  {_short(obj.key)!r}  ({obj.note})\n")
        out.write(f"      event {_short(event_key(obj.key))}  {outcome}\n")

    out.write("\nSummary\n")
    header = ("invocation", "messages", "bundled", "duplicates", "skipped", "failed")
    rows: list[Sequence[object]] = [(*header, "batchItemFailures", "bundles")]
    for inv in report.invocations:
        result = inv.result
        rows.append(
            (
                inv.label,
                inv.messages,
                result.count(Outcome.BUNDLED),
                result.count(Outcome.DUPLICATE),
                result.count(Outcome.SKIPPED),
                result.count(Outcome.FAILED),
                len(result.failed_message_ids),
                len(result.bundles),
            )
        )
    totals = report.totals()
    rows.append(
        (
            "total",
            sum(inv.messages for inv in report.invocations),
            totals["bundled"],
            totals["duplicates"],
            totals["skipped"],
            totals["failed"],
            totals["batch_item_failures"],
            len(report.bundles),
        )
    )
    _table(rows, out)
    if report.problems:
        out.write("\nChecks FAILED:\n")
        out.writelines(f"  - {problem}\n" for problem in report.problems)
        return
    bundled = len(report.uploaded) - 1
    out.write(
        f"\nOK: {bundled} of {len(report.uploaded)} object versions are each in exactly one of "
        f"{_plural(len(report.bundles), 'verified bundle')};\n"
        f"    {TRAVERSAL_KEY!r} was refused, its message left to SQS (retries, then the DLQ);\n"
        "    every redelivered notification was dropped as a duplicate; the s3:TestEvent "
        "was skipped.\n"
    )


# --------------------------------------------------------------------------- create-table


def _run_create_table(args: argparse.Namespace) -> int:
    from data_aggregator._idempotency_dynamodb_table import run_create_table  # noqa: PLC0415

    return run_create_table(args.name, args, sys.stdout)


# --------------------------------------------------------------------------- bundle


def _run_bundle(args: argparse.Namespace) -> int:
    from data_aggregator._backfill import (  # noqa: PLC0415
        BackfillError,
        BackfillOptions,
        parse_s3_url,
        run_backfill,
    )

    try:
        src_bucket, src_prefix = parse_s3_url(args.source, "SOURCE")
        dest_bucket, dest_prefix = parse_s3_url(args.to, "the destination (--to)")
        options = BackfillOptions(
            source_bucket=src_bucket,
            source_prefix=src_prefix,
            dest_bucket=dest_bucket,
            dest_prefix=dest_prefix,
            table=args.table,
            codec=args.codec,
            max_bundle_mb=args.max_bundle_mb,
            batch_size=args.batch_size,
            chunk_seconds=args.chunk_seconds,
            limit=args.limit,
        )
    except BackfillError as exc:
        raise CommandError(str(exc)) from None
    s3, store = _backfill_clients(
        options,
        args.s3_endpoint_url or args.endpoint_url,
        args.dynamodb_endpoint_url or args.endpoint_url,
        args.region,
    )

    def progress(line: str) -> None:
        if not args.quiet:
            sys.stderr.write(f"{PROG} bundle: {line}\n")
            sys.stderr.flush()

    totals = run_backfill(options, s3=s3, store=store, progress=progress)
    if not args.quiet:
        sys.stdout.write(
            f"{args.source} -> {args.to}: {_plural(totals.listed, 'object')} listed, "
            f"{totals.bundled} bundled into {_plural(len(totals.bundles), 'bundle')}, "
            f"{totals.duplicates} already bundled, {totals.not_bundled} not bundled\n"
        )
    for problem, count in sorted(totals.problems.items()):
        outcome, _, reason = problem.partition(" ")
        _error(PROG, f"{_plural(count, 'object')} {outcome} ({reason}); run again to retry")
    return 0 if not totals.problems else 1


def _backfill_clients(
    options: BackfillOptions,
    s3_endpoint_url: str | None,
    dynamodb_endpoint_url: str | None,
    region: str | None,
) -> tuple[S3Client, IdempotencyStore]:
    """The S3 client and the DynamoDB store of ``bundle``, after checking both ends exist."""
    import boto3  # noqa: PLC0415
    from botocore.config import Config  # noqa: PLC0415
    from botocore.exceptions import ClientError  # noqa: PLC0415

    from data_aggregator._backfill import build_config  # noqa: PLC0415
    from data_aggregator.clients import S3Client  # noqa: PLC0415
    from data_aggregator.idempotency import (  # noqa: PLC0415
        DynamoDBIdempotencyStore,
        S3ManifestBundleLocator,
    )

    config = build_config(options)
    session = boto3.session.Session(region_name=region)
    retries = Config(
        retries={"mode": "adaptive", "total_max_attempts": 5},
        max_pool_connections=config.fetch_concurrency + config.upload_concurrency + 4,
    )
    s3 = S3Client.from_config(
        config, session.client("s3", endpoint_url=s3_endpoint_url, config=retries)
    )
    dynamodb = session.client("dynamodb", endpoint_url=dynamodb_endpoint_url, config=retries)
    checks = (
        (f"source bucket {options.source_bucket!r}", s3.client.head_bucket, options.source_bucket),
        (
            f"destination bucket {options.dest_bucket!r} (--to)",
            s3.client.head_bucket,
            options.dest_bucket,
        ),
    )
    for what, check, bucket in checks:
        try:
            check(Bucket=bucket)
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "error")
            raise CommandError(f"{what} is not usable ({code})") from None
    try:
        dynamodb.describe_table(TableName=options.table)
    except ClientError as exc:
        code = exc.response.get("Error", {}).get("Code", "error")
        if code == "ResourceNotFoundException":
            msg = (
                f"idempotency table {options.table!r} does not exist "
                f"(create it with: {PROG} create-table {options.table})"
            )
            raise CommandError(msg) from None
        raise CommandError(f"idempotency table {options.table!r} is not usable ({code})") from None
    locator = S3ManifestBundleLocator(options.dest_bucket, client=s3.client)
    store = DynamoDBIdempotencyStore.from_config(config, client=dynamodb, bundle_locator=locator)
    return s3, store


# --------------------------------------------------------------------------- inspect


def _parse_s3_url(url: str) -> tuple[str, str]:
    bucket, _, key = url.removeprefix("s3://").partition("/")
    if not bucket or not key:
        raise CommandError(f"expected s3://bucket/key, got {url!r}")
    return bucket, key


def _run_inspect(args: argparse.Namespace) -> int:
    import tarfile  # noqa: PLC0415
    from pathlib import Path  # noqa: PLC0415

    from data_aggregator._inspect import inspect_bundle  # noqa: PLC0415

    extract_to = None if args.extract is None else Path(args.extract)
    if extract_to is not None and not hasattr(tarfile, "data_filter"):
        raise CommandError("--extract needs a Python whose tarfile has extraction filters")
    expected: str | None = None
    if args.bundle.startswith("s3://"):
        from data_aggregator.clients import CONTENT_SHA256  # noqa: PLC0415

        bucket, key = _parse_s3_url(args.bundle)
        s3 = _s3_client(args.s3_endpoint_url or args.endpoint_url, args.region)
        obj = s3.open_object(bucket, key, version_id=args.version_id)
        expected = obj.metadata.get(CONTENT_SHA256)
        if expected is None:  # multipart uploads carry it as a tag, of this same version
            tags = s3.get_object_tags(bucket, key, version_id=obj.version_id)
            expected = tags.get(CONTENT_SHA256)
        with contextlib.closing(obj.body):
            result = inspect_bundle(
                obj.body, expected_sha256=expected, check_sha256=True, extract_to=extract_to
            )
    else:
        if args.version_id is not None:
            raise CommandError("--version-id applies to s3:// bundles only")
        try:
            handle = Path(args.bundle).open("rb")  # noqa: SIM115 - closed below
        except OSError as exc:
            raise CommandError(f"cannot open {args.bundle}: {exc.strerror or exc}") from None
        with handle:
            result = inspect_bundle(handle, extract_to=extract_to)
    if args.json:
        json.dump(_inspect_json(args, result, expected), sys.stdout, indent=2, ensure_ascii=False)
        sys.stdout.write("\n")
    else:
        _render_inspect(args, result, sys.stdout)
    for problem in result.problems:
        _error(PROG, problem)
    return 0 if result.ok else 1


def _s3_client(endpoint_url: str | None, region: str | None) -> Any:
    import boto3  # noqa: PLC0415
    from botocore.config import Config  # noqa: PLC0415

    from data_aggregator.clients import S3Client  # noqa: PLC0415

    client = boto3.session.Session().client(
        "s3",
        endpoint_url=endpoint_url,
        region_name=region,
        config=Config(retries={"mode": "standard", "total_max_attempts": 3}),
    )
    return S3Client(client)


def _inspect_json(
    args: argparse.Namespace, result: InspectResult, expected: str | None
) -> dict[str, Any]:
    manifest = result.manifest
    return {
        "bundle": args.bundle,
        "ok": result.ok,
        "problems": result.problems,
        "codec": result.codec,
        "size": result.size,
        "sha256": result.sha256,
        "content_sha256": expected,
        "bundle_key": manifest.bundle_key if manifest else None,
        "created_at": manifest.created_at if manifest else None,
        "members": [m.to_json() for m in manifest.members] if manifest else [],
        "extracted_to": args.extract if result.ok and args.extract else None,
        "extracted": result.extracted,
    }


def _render_inspect(args: argparse.Namespace, result: InspectResult, out: TextIO) -> None:
    manifest = result.manifest
    out.write(f"{args.bundle}: {result.codec}, {result.size:,} bytes, sha256 {result.sha256}\n")
    if manifest is not None:
        out.write(
            f"bundle key {manifest.bundle_key}, created {manifest.created_at}, "
            f"{_plural(len(manifest.members), 'member')}\n"
        )
        rows = [("NAME", "SIZE", "SHA256", "SOURCE", "VERSION")]
        rows.extend(
            (m.name, str(m.size), m.sha256, f"s3://{m.bucket}/{m.key}", m.version_id or "-")
            for m in manifest.members
        )
        widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
        for row in rows:
            cells = [cell.ljust(width) for cell, width in zip(row, widths, strict=True)]
            cells[1] = row[1].rjust(widths[1])
            out.write("  " + "  ".join(cells).rstrip() + "\n")
    if result.ok:
        if args.extract:
            out.write(
                f"OK: extracted {_plural(len(result.extracted), 'member')} into {args.extract}\n"
            )
        else:
            out.write("OK: every checksum matches\n")
    else:
        out.write(
            f"FAILED: {_plural(len(result.problems), 'problem')} (on stderr)"
            + (", nothing extracted" if args.extract else "")
            + "\n"
        )
