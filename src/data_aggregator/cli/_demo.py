"""``data-aggregator demo``: the whole production path against a local S3 from moto.

Private; `data_aggregator.cli` runs it and renders its
`DemoReport`. Everything
happens in this process, inside ``moto.mock_aws()``: no AWS account, no network, no
server. The run

1. creates a versioned source bucket, a destination bucket and the idempotency table
   (`create_idempotency_table`, so the processor uses a
   real `DynamoDBIdempotencyStore` over moto's
   DynamoDB, not the in-memory store);
2. uploads ``objects`` small objects, a dozen of them with awkward keys (`AWKWARD`);
3. builds the SQS messages S3 would send with `data_aggregator.testing` (one classic
   notification per message, the key form-encoded, an ``s3:TestEvent`` first) and feeds them to a
   `ReusableProcessor` in batches, one invocation each;
4. delivers the acknowledged messages of the first batch again (SQS delivers at least
   once): each must come back a duplicate;
5. reads every bundle back and checks it with `verify_bundle`
   and its recorded SHA-256, and checks that every uploaded object is in exactly one bundle
   but the traversal attempt, which must be refused and reported to SQS.

Environment variables are restored afterwards, and moto's mock ends with the run.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import importlib
import io
import os
import random
import tempfile
from datetime import datetime, timezone
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

import boto3

from data_aggregator.bundle import verify_bundle
from data_aggregator.bundle._codecs import resolve_codec
from data_aggregator.cli._demo_report import (
    AWKWARD,
    DESTINATION_BUCKET,
    MAX_BATCH_SIZE,
    MAX_OBJECTS,
    MIN_OBJECTS,
    REGION,
    SOURCE_BUCKET,
    TABLE_NAME,
    TRAVERSAL_KEY,
    DemoError,
    DemoOptions,
    DemoReport,
    Invocation,
    UploadedObject,
    VerifiedBundle,
    check_report,
)
from data_aggregator.clients import S3Client, build_boto3_s3_client, connection_pool_size
from data_aggregator.config import AppConfig, Codec
from data_aggregator.context import LocalContext
from data_aggregator.exceptions import DataAggregatorError
from data_aggregator.idempotency import (
    DynamoDBIdempotencyStore,
    S3ManifestBundleLocator,
    create_idempotency_table,
)
from data_aggregator.processor import Outcome, ReusableProcessor
from data_aggregator.testing import (
    encode_event_key,
    s3_notification,
    s3_record,
    s3_test_event,
    sqs_message,
)

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator, Sequence

    from mypy_boto3_s3 import S3Client as Boto3S3Client

    from data_aggregator.schemas import SQSRecord

__all__ = [
    "AWKWARD",
    "MAX_BATCH_SIZE",
    "MAX_OBJECTS",
    "MIN_OBJECTS",
    "TRAVERSAL_KEY",
    "DemoError",
    "DemoOptions",
    "DemoReport",
    "event_key",
    "preflight",
    "run_demo",
]

#: A Lambda's longest run; the processor's timeout guard is measured against it.
_INVOCATION_SECONDS = 900.0
_QUEUE_ARN = f"arn:aws:sqs:{REGION}:123456789012:demo-queue"

#: ``key`` as a classic S3 notification carries it: form-encoded, ``/`` kept.
event_key = encode_event_key


# --------------------------------------------------------------------------- the run


def preflight(options: DemoOptions) -> Callable[[], contextlib.AbstractContextManager[Any]]:
    """Check what the demo needs before it starts; return ``moto.mock_aws``.

    Raises:
        DemoError: moto is not installed, or the options are out of range.
        ConfigurationError: the codec cannot be used (zstd without its extra).
    """
    if not MIN_OBJECTS <= options.objects <= MAX_OBJECTS:
        msg = f"--objects must be from {MIN_OBJECTS} to {MAX_OBJECTS}, got {options.objects}"
        raise DemoError(msg)
    if not 1 <= options.batch_size <= MAX_BATCH_SIZE:
        msg = f"--batch-size must be from 1 to {MAX_BATCH_SIZE}, got {options.batch_size}"
        raise DemoError(msg)
    resolve_codec(options.codec)
    if options.keep_dir is not None:
        _check_keep_dir(options.keep_dir)
    try:
        moto = importlib.import_module("moto")
    except ImportError:
        msg = "the demo needs moto, which is not installed: pip install 's3-data-aggregator[demo]'"
        raise DemoError(msg) from None
    mock: Callable[[], contextlib.AbstractContextManager[Any]] = moto.mock_aws
    return mock


def run_demo(options: DemoOptions, progress: Callable[[str], None] = lambda _: None) -> DemoReport:
    """Run the demo end to end inside ``moto.mock_aws()``; see the module docstring.

    Raises:
        DemoError: see `preflight`; or a bundle read back does not verify.
        DataAggregatorError: the library refused the set-up.
    """
    mock_aws = preflight(options)
    config = AppConfig(
        distribution_bucket_name=DESTINATION_BUCKET,
        idempotency_table_name=TABLE_NAME,
        bundle_codec=Codec(options.codec),
        source_bucket_allowlist=frozenset({SOURCE_BUCKET}),
        fetch_concurrency=16,
        metrics_enabled=False,
        # mock_aws answers on AWS's own endpoint names, where "auto" means the PartiQL
        # statements, which moto cannot run: the demo writes as it always has.
        idempotency_batch_mode="hybrid",
    )
    with _sandboxed_aws_environment(), mock_aws():
        session = boto3.session.Session(region_name=REGION)
        raw_s3 = session.client("s3")
        dynamodb = session.client("dynamodb")
        progress(f"moto: creating s3://{SOURCE_BUCKET} (versioned), s3://{DESTINATION_BUCKET}")
        raw_s3.create_bucket(Bucket=SOURCE_BUCKET)
        raw_s3.put_bucket_versioning(
            Bucket=SOURCE_BUCKET, VersioningConfiguration={"Status": "Enabled"}
        )
        raw_s3.create_bucket(Bucket=DESTINATION_BUCKET)
        progress(f"moto: creating DynamoDB table {TABLE_NAME} (create_idempotency_table)")
        create_idempotency_table(dynamodb, TABLE_NAME)

        pool = connection_pool_size(config)
        s3 = S3Client.from_config(
            config, build_boto3_s3_client(session=session, max_pool_connections=pool)
        )
        locator = S3ManifestBundleLocator(DESTINATION_BUCKET, client=s3)
        store = DynamoDBIdempotencyStore.from_config(
            config, client=dynamodb, bundle_locator=locator
        )
        processor = ReusableProcessor(config, s3_client=s3, store=store)

        uploaded = _upload(raw_s3, options.objects)
        progress(f"uploaded {len(uploaded)} object versions ({len(AWKWARD)} with awkward keys)")
        messages = [_test_event_message()] + [_message(obj) for obj in uploaded]
        invocations = _invoke(processor, messages, options.batch_size, progress)
        bundles, richest = _read_back(raw_s3, s3, invocations, config.bundle_codec)
    kept = _keep(richest, options.keep_dir) if options.keep_dir is not None else None
    report = DemoReport(
        options, tuple(uploaded), len(messages), invocations, bundles, (), kept=kept
    )
    return dataclasses.replace(report, problems=check_report(report))


@contextlib.contextmanager
def _sandboxed_aws_environment() -> Iterator[None]:
    """Fake credentials, a fixed region, no profile/config/endpoint; restored on exit.

    Whatever the caller's shell says about AWS (a profile, ``AWS_ENDPOINT_URL``, a config
    file with endpoints), the demo's clients must talk to moto's mock and nothing else.
    """
    saved = {name: value for name, value in os.environ.items() if name.startswith("AWS_")}
    for name in saved:
        del os.environ[name]
    os.environ.update(
        {
            "AWS_ACCESS_KEY_ID": "demo",
            "AWS_SECRET_ACCESS_KEY": "demo",
            "AWS_DEFAULT_REGION": REGION,
            "AWS_CONFIG_FILE": os.devnull,
            "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
            "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS": "true",
        }
    )
    try:
        yield
    finally:
        for name in [name for name in os.environ if name.startswith("AWS_")]:
            del os.environ[name]
        os.environ.update(saved)


def _upload(client: Boto3S3Client, count: int) -> list[UploadedObject]:
    rng = random.Random(20240501)  # noqa: S311 - demo content, not cryptography
    plan: list[tuple[str, str | None]] = list(AWKWARD)
    plan += [
        (f"logs/2024/05/01/host-{n % 7:02d}/event-{n:05d}.log", None)
        for n in range(count - len(AWKWARD))
    ]
    uploaded: list[UploadedObject] = []
    for index, (key, note) in enumerate(plan):
        lines = rng.randint(4, 40)
        body = "".join(
            f"2024-05-01T00:{index % 60:02d}:{line % 60:02d}Z level=info object={index} "
            f"line={line} value={rng.random():.6f}\n"
            for line in range(lines)
        ).encode()
        response = client.put_object(Bucket=SOURCE_BUCKET, Key=key, Body=body)
        uploaded.append(
            UploadedObject(
                key=key,
                version_id=response.get("VersionId"),
                etag=response["ETag"].strip('"'),
                size=len(body),
                note=note,
            )
        )
    return uploaded


def _test_event_message() -> SQSRecord:
    """What S3 sends once when a notification is configured (acknowledged, skipped)."""
    return sqs_message(s3_test_event(SOURCE_BUCKET), queue_arn=_QUEUE_ARN)


def _message(obj: UploadedObject) -> SQSRecord:
    """A classic S3 notification: one record, the key form-encoded as S3 sends it."""
    record = s3_record(
        SOURCE_BUCKET,
        obj.key,
        size=obj.size,
        etag=obj.etag,
        version_id=obj.version_id,
        sequencer=hashlib.sha256(obj.message_id.encode()).hexdigest()[:18].upper(),
        event_time=datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.000Z"),
        region=REGION,
        configuration_id="demo-notification",
    )
    return sqs_message(s3_notification([record]), message_id=obj.message_id, queue_arn=_QUEUE_ARN)


def _invoke(
    processor: ReusableProcessor,
    messages: Sequence[SQSRecord],
    batch_size: int,
    progress: Callable[[str], None],
) -> tuple[Invocation, ...]:
    batches = [messages[i : i + batch_size] for i in range(0, len(messages), batch_size)]
    invocations: list[Invocation] = []
    for number, batch in enumerate(batches, 1):
        noun = "message" if len(batch) == 1 else "messages"
        progress(f"invocation {number}/{len(batches)}: {len(batch)} SQS {noun}")
        result = processor.process(
            {"Records": list(batch)}, LocalContext.from_timeout(_INVOCATION_SECONDS)
        )
        invocations.append(Invocation(f"batch {number}", len(batch), result))
    # SQS delivers at least once: notifications already acknowledged may come back. Take
    # those of the first batch that bundled any (batch 1 unless batches are tiny).
    number, batch, bundled = next(
        (n, b, ids)
        for n, (b, inv) in enumerate(zip(batches, invocations, strict=True), 1)
        if (ids := {r.message_id for r in inv.result.records if r.outcome is Outcome.BUNDLED})
    )
    again = [
        sqs_message(m["body"], message_id=m["messageId"], queue_arn=_QUEUE_ARN, receive_count=2)
        for m in batch
        if m["messageId"] in bundled
    ]
    progress(f"redelivery: {len(again)} notifications acknowledged in batch {number} again")
    result = processor.process({"Records": again}, LocalContext.from_timeout(_INVOCATION_SECONDS))
    invocations.append(Invocation(f"batch {number} again", len(again), result, redelivery=True))
    return tuple(invocations)


def _check_keep_dir(directory: str) -> None:
    """Create ``--keep``'s directory now, so a bad path fails before the demo runs."""
    target = Path(directory)
    try:
        target.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=target):
            pass
    except OSError as exc:
        msg = f"--keep {directory}: cannot write there ({exc.strerror or exc})"
        raise DemoError(msg) from None


def _keep(bundle: tuple[str, bytes] | None, directory: str) -> str | None:
    """Write ``bundle`` (key, bytes) into ``directory`` under its file name; return the path."""
    if bundle is None:
        return None
    key, body = bundle
    target = Path(directory)
    try:
        target.mkdir(parents=True, exist_ok=True)
        path = target / PurePosixPath(key).name
        path.write_bytes(body)
    except OSError as exc:
        msg = f"--keep {directory}: cannot write the bundle there ({exc.strerror or exc})"
        raise DemoError(msg) from None
    return str(path)


def _read_back(
    raw_s3: Boto3S3Client, s3: S3Client, invocations: Sequence[Invocation], codec: Codec
) -> tuple[tuple[VerifiedBundle, ...], tuple[str, bytes] | None]:
    """Every bundle, read back and verified; and the one with the most members, with its bytes."""
    verified: list[VerifiedBundle] = []
    richest: tuple[str, bytes] | None = None
    most = -1
    for invocation in invocations:
        for bundle in invocation.result.bundles:
            body = raw_s3.get_object(Bucket=DESTINATION_BUCKET, Key=bundle.key)["Body"].read()
            digest = hashlib.sha256(body).hexdigest()
            recorded = s3.get_content_sha256(DESTINATION_BUCKET, bundle.key)
            if recorded != digest:
                msg = f"bundle {bundle.key}: SHA-256 {digest} but recorded {recorded}"
                raise DemoError(msg)
            try:
                manifest = verify_bundle(io.BytesIO(body), codec)
            except DataAggregatorError as exc:
                msg = f"bundle {bundle.key} does not verify: {exc}"
                raise DemoError(msg) from exc
            verified.append(VerifiedBundle(bundle.key, len(body), digest, manifest))
            if len(manifest.members) > most:
                most, richest = len(manifest.members), (bundle.key, body)
    return tuple(verified), richest
