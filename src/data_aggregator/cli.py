"""The ``data-aggregator`` command line (also ``python -m data_aggregator``).

One subcommand today, ``demo``: the whole production path (S3 notifications through SQS
into :class:`~data_aggregator.processor.ReusableProcessor`, a DynamoDB idempotency table,
bundles written to S3 and verified) on a local S3 from moto, in this process, with no AWS
account and no network. Install it with ``pip install "data-aggregator[demo]"``.

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
from typing import TYPE_CHECKING, TextIO

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator, Sequence

    from data_aggregator._demo_report import DemoReport

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
    demo.add_argument(
        "--codec",
        choices=("gzip", "zstd", "none"),
        default="gzip",
        help="bundle compression; zstd needs the 'zstd' extra (default: %(default)s)",
    )
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
    return parser


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
