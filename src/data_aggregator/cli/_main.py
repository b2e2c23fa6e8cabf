"""The command line's parser and entry point (private)."""

from __future__ import annotations

import argparse
import contextlib
import importlib
import json
import logging
import os
import sys
from typing import TYPE_CHECKING, Any

from data_aggregator._version import DISTRIBUTION
from data_aggregator.cli._common import PROG, CommandError, report_error

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator, Sequence


__all__ = ["build_parser", "main"]

#: Documentation pages, named by title: a wheel's user has no ``docs/`` folder.
_DOCS_PAGE = '"Command line"'
_LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
#: Attributes every LogRecord has; anything else on a record came from ``extra``.
_RECORD_FIELDS = frozenset(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {
    "message",
    "asctime",
}


def _command(module: str) -> Callable[[argparse.Namespace], int]:
    """A subcommand's ``run``, imported from ``data_aggregator.cli.<module>`` when called."""

    def run(args: argparse.Namespace) -> int:
        command = importlib.import_module(f"data_aggregator.cli.{module}")
        status: int = command.run(args)
        return status

    return run


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


def _sidecar_prefix(text: str) -> str:
    """``--sidecar-prefix``: checked and given its trailing ``/`` as ``SIDECAR_PREFIX`` is."""
    from data_aggregator.config import normalise_key_prefix  # noqa: PLC0415
    from data_aggregator.exceptions import ConfigurationError  # noqa: PLC0415

    try:
        return normalise_key_prefix(text, variable="--sidecar-prefix")
    except ConfigurationError as exc:
        raise argparse.ArgumentTypeError(exc.message) from None


def _add_sidecar_prefix(parser: argparse.ArgumentParser, help_text: str) -> None:
    parser.add_argument(
        "--sidecar-prefix",
        type=_sidecar_prefix,
        default="",
        metavar="PREFIX",
        help=f"{help_text}; as SIDECAR_PREFIX: 'manifests' means 'manifests/' (default: none)",
    )


def build_parser(prog: str = PROG) -> argparse.ArgumentParser:
    """The argument parser of every subcommand."""
    from data_aggregator.cli._demo_report import (  # noqa: PLC0415 - commands load their parts
        MAX_BATCH_SIZE,
        MAX_OBJECTS,
        MIN_OBJECTS,
    )

    parser = argparse.ArgumentParser(
        prog=prog,
        description="Bundle floods of small S3 objects from an SQS-triggered Lambda.",
        epilog=f"Documentation: the {_DOCS_PAGE} page of the {DISTRIBUTION} documentation.",
    )
    parser.add_argument(
        "--version", action="version", version=f"{PROG} {_version()}", help="show the version"
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
            "pip install 's3-data-aggregator[demo]'."
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
        "--keep",
        metavar="DIR",
        default=None,
        help="write one bundle the demo produced (the one with the most members) into DIR, "
        "created if missing, and print the inspect command to try on it",
    )
    demo.add_argument(
        "--quiet",
        "-q",
        action="store_true",
        help="print nothing but errors (the exit status tells the result)",
    )
    demo.set_defaults(run=_command("_demo_command"))
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
            "content-sha256 metadata (single-part) or tag (multipart). A concat bundle "
            "(BUNDLE_FORMAT=concat) is read against its sidecar manifest: the one --sidecar "
            "names, else for s3:// the one the bundle's metadata names, else "
            "BUNDLE.manifest.json under --sidecar-prefix or next to it. Exit status 1 with "
            "one line per problem on stderr when any check fails."
        ),
    )
    inspect.add_argument(
        "bundle", metavar="BUNDLE", help="a local path or s3://bucket/key of a bundle"
    )
    inspect.add_argument(
        "--sidecar",
        metavar="MANIFEST",
        default=None,
        help="the sidecar manifest of a concat bundle (local path or s3:// URL), when it is "
        "not BUNDLE.manifest.json and the bundle's metadata does not name it",
    )
    _add_sidecar_prefix(
        inspect,
        "s3:// bundles whose metadata does not name their sidecar (written by an earlier "
        "version): look for PREFIX<key>.manifest.json first, then next to the bundle",
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
    inspect.set_defaults(run=_command("_inspect_command"))


def _add_create_table(commands: Any, common: argparse.ArgumentParser) -> None:
    from data_aggregator.idempotency._table import (  # noqa: PLC0415 - commands load their parts
        add_create_table_command,
    )

    add_create_table_command(commands, parents=[common])


def _add_bundle(commands: Any, common: argparse.ArgumentParser) -> None:
    from data_aggregator.config import AppConfig  # noqa: PLC0415 - commands load their parts
    from data_aggregator.config import _bounds as config_bounds  # noqa: PLC0415

    bundle = commands.add_parser(
        "bundle",
        parents=[common],
        help="bundle objects that already exist (backfill, replay) with the same idempotency",
        description=(
            "List SOURCE (s3://bucket/prefix, page by page), turn each object into the S3 "
            "notification it would have sent and feed them, --batch-size at a time, to "
            "ReusableProcessor with the DynamoDB idempotency table --table: the same claim, "
            "bundle and complete as the Lambda, so a second run bundles nothing twice and an "
            f"interrupted run is resumed by running it again (documentation: {_DOCS_PAGE}). "
            "Exit status 1 when an object was not bundled: one line per object refused for "
            "good (by key, with its error code), one per class of retryable failure."
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
    from data_aggregator.config import BundleFormat  # noqa: PLC0415 - commands load their parts

    bundle.add_argument(
        "--format",
        choices=[layout.value for layout in BundleFormat],
        default=BundleFormat.TAR.value,
        help=(
            "bundle layout: a tar archive, or 'concat': the objects' lines for Athena and "
            "other line readers, the manifest a sidecar <bundle>.manifest.json; every "
            "object must be UTF-8 text (default: %(default)s)"
        ),
    )
    _add_sidecar_prefix(
        bundle,
        "with --format concat: the sidecar of bundle KEY is PREFIX<KEY>.manifest.json in the "
        "--to bucket, outside the bundles' prefix; crash recovery finds it from the bundle's "
        "metadata",
    )
    bundle_mb = config_bounds("max_bundle_size_mb")  # MAX_BUNDLE_SIZE_MB's, like its default
    bundle.add_argument(
        "--max-bundle-mb",
        type=_int_in(int(bundle_mb.low), int(bundle_mb.high)),
        default=AppConfig.model_fields["max_bundle_size_mb"].default,
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
    bundle.add_argument(
        "--delete-sources",
        action="store_true",
        help=(
            "delete each object once its bundle is stored and its record completed: the "
            "version listed, else only while its ETag still matches (DELETE_SOURCES)"
        ),
    )
    bundle.add_argument("--quiet", "-q", action="store_true", help="print nothing but errors")
    bundle.set_defaults(run=_command("_bundle_command"))


def main(argv: Sequence[str] | None = None, *, prog: str = PROG) -> int:
    """Run the command line; return the exit status."""
    parser = build_parser(prog)
    args = parser.parse_args(argv)
    args.prog = prog if argv is not None or not sys.argv[0].endswith(PROG) else sys.argv[0]
    run: Callable[[argparse.Namespace], int] = args.run
    try:
        with _library_logging(args.log_level):
            status = run(args)
    except BrokenPipeError:
        if args.debug:
            raise
        return _stdout_closed()
    except KeyboardInterrupt:
        report_error(prog, "interrupted")
        status = 130
    except Exception as exc:
        if args.debug:
            raise
        report_error(prog, _one_line(exc))
        status = 1
    try:
        sys.stdout.flush()  # on every path: a closed pipe shows here, not at exit
    except BrokenPipeError:
        return _stdout_closed()
    return status


def _stdout_closed() -> int:
    """The reader of stdout went away (``| head``): end quietly, exit status 1.

    Python's documented recipe for ``BrokenPipeError``: point stdout's descriptor at
    devnull, so that the interpreter's final flush cannot fail and print a traceback.
    """
    try:
        fd = sys.stdout.fileno()
    except (AttributeError, OSError, ValueError):  # in-process callers, captured output
        return 1
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, fd)
    finally:
        os.close(devnull)
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
    from data_aggregator._version import __version__  # noqa: PLC0415

    return __version__


def _one_line(exc: BaseException) -> str:
    from data_aggregator.cli._demo_report import DemoError  # noqa: PLC0415
    from data_aggregator.exceptions import DataAggregatorError  # noqa: PLC0415

    lines = (line.strip().removeprefix("- ") for line in str(exc).splitlines())
    text = "; ".join(line for line in lines if line)
    if isinstance(exc, (CommandError, DemoError)):
        return text
    if isinstance(exc, DataAggregatorError):
        return f"{exc.error_code}: {text}"
    return f"{type(exc).__name__}: {text} (run with --debug for the traceback)"
