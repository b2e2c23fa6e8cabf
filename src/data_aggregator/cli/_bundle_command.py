"""``data-aggregator bundle``: clients, checks and the report around a backfill run."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

from data_aggregator.cli._common import PROG, CommandError, plural, report_error

if TYPE_CHECKING:
    import argparse

    from data_aggregator.cli._bundle import BackfillOptions
    from data_aggregator.clients import S3Client
    from data_aggregator.idempotency import IdempotencyStore

__all__ = ["run"]


def run(args: argparse.Namespace) -> int:
    """``data-aggregator bundle``: backfill a prefix; exit status 1 if anything was left."""
    from data_aggregator.cli._bundle import (  # noqa: PLC0415
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
            bundle_format=args.format,
            sidecar_prefix=args.sidecar_prefix,
            max_bundle_mb=args.max_bundle_mb,
            batch_size=args.batch_size,
            chunk_seconds=args.chunk_seconds,
            limit=args.limit,
            delete_sources=args.delete_sources,
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

    def hint(line: str) -> None:
        if not args.quiet:
            sys.stderr.write(f"{PROG} bundle: {line}\n")
            sys.stderr.flush()

    totals = run_backfill(options, s3=s3, store=store, progress=progress, hint=hint)
    if not args.quiet:
        sys.stdout.write(
            f"{args.source} -> {args.to}: {plural(totals.listed, 'object')} listed, "
            f"{totals.bundled} bundled into {plural(len(totals.bundles), 'bundle')}, "
            f"{totals.duplicates} already bundled, {totals.not_bundled} not bundled\n"
        )
    for refused in totals.refused:
        where = f"s3://{options.source_bucket}/{refused.key}"
        report_error(PROG, f"refused {where!r} ({refused.error_code}); running again will not help")
    unlisted = totals.refused_count - len(totals.refused)
    if unlisted:
        report_error(
            PROG, f"{plural(unlisted, 'more object')} refused; running again will not help"
        )
    for problem, count in sorted(totals.problems.items()):
        outcome, _, reason = problem.partition(" ")
        report_error(PROG, f"{plural(count, 'object')} {outcome} ({reason}); run again to retry")
    return 0 if not totals.not_bundled else 1


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

    from data_aggregator.cli._bundle import build_config  # noqa: PLC0415
    from data_aggregator.clients import S3Client, connection_pool_size  # noqa: PLC0415
    from data_aggregator.idempotency import (  # noqa: PLC0415
        DynamoDBIdempotencyStore,
        S3ManifestBundleLocator,
    )

    config = build_config(options)
    session = boto3.session.Session(region_name=region)
    retries = Config(
        retries={"mode": "standard", "total_max_attempts": 5},  # see docs/clients.md
        max_pool_connections=connection_pool_size(config),
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
    locator = S3ManifestBundleLocator.from_config(config, client=s3)
    store = DynamoDBIdempotencyStore.from_config(config, client=dynamodb, bundle_locator=locator)
    return s3, store
