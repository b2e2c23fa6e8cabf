"""``data-aggregator demo``: run the demo and print its report (the command's side)."""

from __future__ import annotations

import json
import shlex
import sys
from typing import TYPE_CHECKING, TextIO

from data_aggregator.cli._common import CommandError, plural

if TYPE_CHECKING:
    import argparse
    from collections.abc import Sequence

    from data_aggregator.cli._demo_report import DemoReport

__all__ = ["run"]


def run(args: argparse.Namespace) -> int:
    """``data-aggregator demo``: run it, print its report; exit status 0 when it holds."""
    from data_aggregator.cli._demo import DemoOptions, preflight, run_demo  # noqa: PLC0415

    options = DemoOptions(
        objects=args.objects, codec=args.codec, batch_size=args.batch_size, keep_dir=args.keep
    )
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
    if report.kept is not None and chatty:
        out.write(f"\nKept a bundle: {report.kept}\n")
        out.write(f"Try: {args.prog} inspect {shlex.quote(report.kept)}\n")
    if report.problems:
        raise CommandError(f"check failed: {report.problems[0]}")
    return 0


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
    from data_aggregator.cli._demo import event_key  # noqa: PLC0415
    from data_aggregator.cli._demo_report import TRAVERSAL_KEY  # noqa: PLC0415
    from data_aggregator.processor import Outcome  # noqa: PLC0415

    out.write("\nBundles (read back from S3 and checked with verify_bundle)\n")
    for bundle in report.bundles:
        out.write(f"  {bundle.key}\n")
        out.write(
            f"      {plural(len(bundle.manifest.members), 'member')}, {bundle.size:,} bytes, "
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
        f"{plural(len(report.bundles), 'verified bundle')};\n"
        f"    {TRAVERSAL_KEY!r} was refused, its message left to SQS (retries, then the DLQ);\n"
        "    every redelivered notification was dropped as a duplicate; the s3:TestEvent "
        "was skipped.\n"
    )
