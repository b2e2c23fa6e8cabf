"""``data-aggregator inspect``: open a bundle (file or S3), inspect it, print the report."""

from __future__ import annotations

import contextlib
import json
import sys
from typing import TYPE_CHECKING, Any, TextIO

from data_aggregator.cli._common import PROG, CommandError, plural, report_error

if TYPE_CHECKING:
    import argparse
    from collections.abc import Mapping

    from data_aggregator.cli._inspect import InspectResult

__all__ = ["run"]


def _parse_s3_url(url: str) -> tuple[str, str]:
    bucket, _, key = url.removeprefix("s3://").partition("/")
    if not bucket or not key:
        raise CommandError(f"expected s3://bucket/key, got {url!r}")
    return bucket, key


def run(args: argparse.Namespace) -> int:
    """``data-aggregator inspect``: read, verify, maybe extract; exit status 1 on a problem."""
    import tarfile  # noqa: PLC0415
    from pathlib import Path  # noqa: PLC0415

    from data_aggregator.bundle._concat import sidecar_key  # noqa: PLC0415
    from data_aggregator.cli._inspect import inspect_bundle  # noqa: PLC0415

    extract_to = None if args.extract is None else Path(args.extract)
    if extract_to is not None and not hasattr(tarfile, "data_filter"):
        raise CommandError("--extract needs a Python whose tarfile has extraction filters")
    expected: str | None = None
    if args.bundle.startswith("s3://"):
        from data_aggregator.clients import CONTENT_SHA256  # noqa: PLC0415

        bucket, key = _parse_s3_url(args.bundle)
        s3 = _s3_client(args.s3_endpoint_url or args.endpoint_url, args.region)
        obj = s3.open_object(bucket, key, version_id=args.version_id)
        with contextlib.closing(obj.body):
            sidecar = _sidecar(args, s3) or _described_sidecar(
                s3, bucket, key, obj.metadata, args.sidecar_prefix
            )
            expected = obj.metadata.get(CONTENT_SHA256)
            if expected is None:  # multipart uploads carry it as a tag, of this same version
                tags = s3.get_object_tags(bucket, key, version_id=obj.version_id)
                expected = tags.get(CONTENT_SHA256)
            result = inspect_bundle(
                obj.body,
                expected_sha256=expected,
                check_sha256=True,
                extract_to=extract_to,
                sidecar=sidecar,
                bundle_key=key,
            )
    else:
        if args.version_id is not None:
            raise CommandError("--version-id applies to s3:// bundles only")
        if args.sidecar_prefix:
            raise CommandError("--sidecar-prefix applies to s3:// bundles only (use --sidecar)")
        sidecar_path = Path(sidecar_key(args.bundle))
        sidecar = _sidecar(args, None) or (
            sidecar_path.read_bytes() if sidecar_path.is_file() else None
        )
        try:
            handle = Path(args.bundle).open("rb")  # noqa: SIM115 - closed below
        except OSError as exc:
            raise CommandError(f"cannot open {args.bundle}: {exc.strerror or exc}") from None
        with handle:
            result = inspect_bundle(handle, extract_to=extract_to, sidecar=sidecar)
    if args.json:
        json.dump(_inspect_json(args, result, expected), sys.stdout, indent=2, ensure_ascii=False)
        sys.stdout.write("\n")
    else:
        _render_inspect(args, result, sys.stdout)
    for problem in result.problems:
        report_error(PROG, problem)
    return 0 if result.ok else 1


def _sidecar(args: argparse.Namespace, s3: Any) -> bytes | None:
    """The sidecar named by ``--sidecar`` (a path or an s3:// URL), if any."""
    location: str | None = args.sidecar
    if location is None:
        return None
    if location.startswith("s3://"):
        from data_aggregator.exceptions import S3ObjectNotFoundError  # noqa: PLC0415

        bucket, key = _parse_s3_url(location)
        client = s3 or _s3_client(args.s3_endpoint_url or args.endpoint_url, args.region)
        try:
            obj = client.open_object(bucket, key)
        except S3ObjectNotFoundError:
            raise CommandError(f"no sidecar at {location}") from None
        with contextlib.closing(obj.body):
            data: bytes = obj.body.read()
        return data
    from pathlib import Path  # noqa: PLC0415

    try:
        return Path(location).read_bytes()
    except OSError as exc:
        raise CommandError(f"cannot open {location}: {exc.strerror or exc}") from None


def _described_sidecar(
    s3: Any, bucket: str, key: str, metadata: Mapping[str, str], prefix: str
) -> bytes | None:
    """The sidecar of the S3 bundle ``key``: where its metadata says, else (a bundle
    written before bundles described themselves) under ``prefix``, then next to it;
    ``None`` for a tar bundle, or an undescribed bundle without a sidecar."""
    from data_aggregator.bundle._metadata import BundleDescription  # noqa: PLC0415
    from data_aggregator.bundle._verify import read_sidecar, sidecar_candidates  # noqa: PLC0415
    from data_aggregator.config import BundleFormat  # noqa: PLC0415
    from data_aggregator.exceptions import BundleError  # noqa: PLC0415

    try:
        description = BundleDescription.from_metadata(metadata)
    except BundleError as exc:
        raise CommandError(f"s3://{bucket}/{key}: {exc.message}") from None
    candidates = sidecar_candidates(key, description, prefix)
    found = read_sidecar(s3, bucket, candidates)
    if found.data is None and description.bundle_format is BundleFormat.CONCAT:
        where = ", ".join(f"s3://{bucket}/{candidate}" for candidate in candidates)
        denied = (
            ""
            if found.denied_key is None
            else f" (access denied at s3://{bucket}/{found.denied_key}: it may be there, "
            "unreadable; without s3:ListBucket a missing object answers 403 too)"
        )
        raise CommandError(f"concat bundle (by its metadata) without a sidecar at {where}{denied}")
    return found.data


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
        "format": result.bundle_format,
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
    layout = "" if result.bundle_format == "tar" else f"{result.bundle_format} (sidecar manifest), "
    out.write(
        f"{args.bundle}: {layout}{result.codec}, {result.size:,} bytes, sha256 {result.sha256}\n"
    )
    if manifest is not None:
        out.write(
            f"bundle key {manifest.bundle_key}, created {manifest.created_at}, "
            f"{plural(len(manifest.members), 'member')}\n"
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
                f"OK: extracted {plural(len(result.extracted), 'member')} into {args.extract}\n"
            )
        else:
            out.write("OK: every checksum matches\n")
    else:
        out.write(
            f"FAILED: {plural(len(result.problems), 'problem')} (on stderr)"
            + (", nothing extracted" if args.extract else "")
            + "\n"
        )
