"""``BUNDLE_FORMAT=concat`` through the real processor over the S3 and DynamoDB servers.

Bundles are read back from S3 as a query engine would (``gzip`` line by line), and against
their sidecar manifests; crash recovery reads the sidecar; ``inspect`` reads both.
"""

from __future__ import annotations

import gzip
import io
import json
from typing import TYPE_CHECKING, Any

import pytest

from data_aggregator.bundle import read_bundle_manifest
from data_aggregator.bundle._concat import sidecar_key
from data_aggregator.cli import main
from data_aggregator.clients import S3Client
from data_aggregator.config import BundleFormat
from data_aggregator.exceptions import ErrorCode, S3ObjectNotFoundError
from data_aggregator.processor import Outcome, Reason
from tests.docs_support import python_block_containing
from tests.integration._processor_env import Crash, CrashOnComplete, env_factory
from tests.processor_support import (
    assert_bundled_once,
    failed_ids,
    occurrences,
    s3_body,
    sqs_batch,
)

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from botocore.awsrequest import AWSPreparedRequest
    from mypy_boto3_s3 import S3Client as Boto3S3Client

    from tests.integration._processor_env import ProcessorEnv

pytestmark = pytest.mark.integration

LINES = [
    b'{"level":"info","msg":"started"}\n',
    b'{"level":"warn","msg":"caf\xc3\xa9 \xe2\x98\x95"}',  # UTF-8, no final newline
    b'{"a":1}\n{"a":2}\n',
]


@pytest.fixture
def make_env(
    s3_endpoint: str,
    dynamodb_endpoint: str,
    s3_client: Boto3S3Client,
    make_bucket: Callable[..., str],
) -> Iterator[Callable[..., ProcessorEnv]]:
    """A factory of concat processors on fresh buckets and a fresh table."""
    factory = env_factory(s3_endpoint, dynamodb_endpoint, s3_client, make_bucket)
    make = next(factory)
    yield lambda **kwargs: make(bundle_format=BundleFormat.CONCAT, **kwargs)
    for _ in factory:  # the factory's clean-up
        pass


def _only_bundle_key(env: ProcessorEnv) -> str:
    listing = env.s3.list_objects_v2(Bucket=env.dest)
    keys = [e["Key"] for e in listing.get("Contents", []) if not e["Key"].endswith(".json")]
    assert len(keys) == 1
    return keys[0]


def test_a_line_reader_sees_exactly_the_source_lines(make_env: Callable[..., ProcessorEnv]) -> None:
    """A bundle read with Python's gzip line by line (as Athena reads a ``.log.gz``) gives
    back every source line in order, one newline added where a source lacked it, and no
    tar header bytes; the sidecar lists each member's offset and SHA-256."""
    env = make_env()
    objects = [env.put(f"app/{i}.json", data) for i, data in enumerate(LINES)]
    assert env.handle(sqs_batch([s3_body(o.record()) for o in objects])) == {
        "batchItemFailures": []
    }
    key = _only_bundle_key(env)
    assert key.endswith(".log.gz")
    raw = env.s3.get_object(Bucket=env.dest, Key=key)["Body"].read()
    with gzip.open(io.BytesIO(raw), "rb") as lines:
        read = list(lines)
    expected = [line for data in LINES for line in data.splitlines(keepends=True)]
    expected = [line if line.endswith(b"\n") else line + b"\n" for line in expected]
    assert read == expected
    text = b"".join(read)
    assert b"ustar" not in text
    assert b"manifest.json" not in text
    assert b"\0" not in text
    sidecar = json.loads(env.s3.get_object(Bucket=env.dest, Key=sidecar_key(key))["Body"].read())
    assert sidecar["format"] == "concat"
    assert [m["newline_added"] for m in sidecar["members"]] == [False, True, False]
    assert_bundled_once(env.bundles(), objects)


def test_an_object_that_is_not_utf8_fails_alone(make_env: Callable[..., ProcessorEnv]) -> None:
    """A binary object is refused with OBJECT_NOT_TEXT and its message reported for a retry
    (then the DLQ); the rest of the batch is bundled, and nothing of it is in the bundle."""
    env = make_env()
    good = [env.put(f"ok/{i}.log", data) for i, data in enumerate(LINES)]
    bad = env.put("bad/blob.bin", b"text then \xff\xfe binary\n")
    event = sqs_batch([s3_body(o.record()) for o in [good[0], bad, *good[1:]]])
    response = env.handle(event)
    assert len(failed_ids(response)) == 1
    (failed,) = [r for r in env.last.records if r.outcome is Outcome.FAILED]
    assert failed.reason is Reason.REFUSED
    assert failed.error is not None
    assert failed.error.error_code == ErrorCode.OBJECT_NOT_TEXT
    assert failed.record is not None
    assert failed.record.s3.object.original_key == "bad/blob.bin"
    assert env.last.count(Outcome.BUNDLED) == 3
    assert_bundled_once(env.bundles(), good)


def test_a_streamed_object_that_is_not_utf8_spoils_only_its_own_bundle(
    make_env: Callable[..., ProcessorEnv],
) -> None:
    """Objects larger than the in-flight budget are streamed; one whose bad bytes come
    after its first chunk was written fails alone: its own bundle is discarded, the
    others are bundled and no multipart upload is left open."""
    env = make_env(in_flight_bytes_mb=1)
    big_ok = env.put("big/ok.log", b"x" * (1024 * 1024 + 10) + b"\n")
    big_bad = env.put("big/bad.log", b"y" * (1024 * 1024 + 10) + b"\xc3(\n")
    small = env.put("small/a.log", LINES[0])
    response = env.handle(sqs_batch([s3_body(o.record()) for o in [small, big_bad, big_ok]]))
    assert len(failed_ids(response)) == 1
    (failed,) = [r for r in env.last.records if r.outcome is Outcome.FAILED]
    assert failed.error is not None
    assert failed.error.error_code == ErrorCode.OBJECT_NOT_TEXT
    assert failed.error.context["offset"] == 1024 * 1024 + 10
    assert_bundled_once(env.bundles(), [small, big_ok])
    assert env.open_multipart_uploads() == []
    assert len(env.sidecars()) == 2


def test_crash_between_sidecar_and_bundle_reads_as_not_committed(
    make_env: Callable[..., ProcessorEnv],
) -> None:
    """Killed after the sidecar is stored and before the bundle: once the leases end, the
    locator finds a sidecar without its bundle (not committed) and the redelivery
    bundles each object once; the orphan sidecar is not a bundle."""
    env = make_env(lease_margin_seconds=10.0)
    objects = [env.put(f"dying/{i}.log", LINES[i]) for i in range(3)]
    dying = [True]

    def kill(request: AWSPreparedRequest, **_: Any) -> None:
        if dying[0] and not request.url.split("?")[0].endswith(".manifest.json"):
            raise Crash

    env.processor_s3.meta.events.register("before-send.s3.PutObject", kill)
    event = sqs_batch([s3_body(o.record()) for o in objects])
    with pytest.raises(Crash):
        env.processor.handle(event, env.context(60))
    (orphan,) = env.sidecars()
    assert env.bundles() == []
    s3 = S3Client(env.s3)
    with pytest.raises(S3ObjectNotFoundError):
        read_bundle_manifest(
            s3, env.dest, orphan.removesuffix(".manifest.json"), bundle_format="concat"
        )
    dying[0] = False
    env.clock.advance(71)
    assert env.handle(event) == {"batchItemFailures": []}
    assert env.last.count(Outcome.BUNDLED) == 3
    assert_bundled_once(env.bundles(), objects)
    assert max(occurrences(env.bundles()).values()) == 1


@pytest.mark.parametrize("sidecar_prefix", ["", "manifests"])
def test_crash_after_both_writes_is_recovered_from_the_sidecar(
    make_env: Callable[..., ProcessorEnv], sidecar_prefix: str
) -> None:
    """Killed after the bundle is stored, before complete: the redelivery reads the
    sidecar (next to the bundle, or under SIDECAR_PREFIX), checks the bundle against it
    and finds the records there (RECOVERED)."""
    env = make_env(
        store_class=CrashOnComplete, lease_margin_seconds=10.0, sidecar_prefix=sidecar_prefix
    )
    assert isinstance(env.store, CrashOnComplete)
    objects = [env.put(f"crash/{i}.log", LINES[i]) for i in range(3)]
    event = sqs_batch([s3_body(o.record()) for o in objects])
    with pytest.raises(Crash):
        env.processor.handle(event, env.context(60))
    (crashed,) = env.bundles()
    (sidecar,) = env.sidecars()
    assert sidecar == f"{sidecar_prefix}{'/' if sidecar_prefix else ''}{crashed.key}.manifest.json"
    env.store.crash = False
    env.clock.advance(71)
    assert env.handle(event) == {"batchItemFailures": []}
    assert {(r.outcome, r.reason) for r in env.last.records} == {
        (Outcome.DUPLICATE, Reason.RECOVERED)
    }
    assert {r.bundle_key for r in env.last.records} == {crashed.key}
    assert_bundled_once(env.bundles(), objects)


def test_inspect_reads_a_concat_bundle_from_s3(
    make_env: Callable[..., ProcessorEnv],
    s3_endpoint: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """``data-aggregator inspect s3://...`` finds the sidecar, checks every member and the
    bundle's content-sha256, and reports the concat format."""
    env = make_env()
    objects = [env.put(f"app/{i}.json", data) for i, data in enumerate(LINES)]
    env.handle(sqs_batch([s3_body(o.record()) for o in objects]))
    key = _only_bundle_key(env)
    status = main(["inspect", f"s3://{env.dest}/{key}", "--json", "--endpoint-url", s3_endpoint])
    report = json.loads(capsys.readouterr().out)
    assert (status, report["ok"], report["format"]) == (0, True, "concat")
    assert [m["key"] for m in report["members"]] == [o.key for o in objects]
    assert report["sha256"] == report["content_sha256"]


def test_sidecar_prefix_keeps_the_bundle_folder_to_bundles(
    make_env: Callable[..., ProcessorEnv],
    s3_endpoint: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """With SIDECAR_PREFIX the bundle prefix holds only bundles (what a query engine's
    table location must hold); ``inspect`` finds the sidecar from the bundle's metadata,
    and ``--sidecar`` names it explicitly."""
    env = make_env(bundle_prefix="logs", sidecar_prefix="manifests")
    objects = [env.put(f"app/{i}.json", data) for i, data in enumerate(LINES)]
    assert env.handle(sqs_batch([s3_body(o.record()) for o in objects])) == {
        "batchItemFailures": []
    }
    listing = env.s3.list_objects_v2(Bucket=env.dest, Prefix="logs/")
    (key,) = [entry["Key"] for entry in listing.get("Contents", [])]
    assert key.endswith(".log.gz")
    assert env.sidecars() == [f"manifests/{key}.manifest.json"]
    assert_bundled_once(env.bundles(), objects)
    namespace: dict[str, Any] = {}
    source = python_block_containing("docs/bundle-format.md", "def sources_of(")
    exec(compile(source, "docs/bundle-format.md", "exec"), namespace)  # noqa: S102
    found = namespace["sources_of"](S3Client(env.s3), env.dest, key)
    assert found == [f"s3://{o.bucket}/{o.key}" for o in objects]
    url = f"s3://{env.dest}/{key}"
    head = env.s3.head_object(Bucket=env.dest, Key=key)
    assert head["Metadata"]["aggregator-format"] == "concat"
    assert head["Metadata"]["aggregator-sidecar"] == f"manifests/{key}.manifest.json"
    assert main(["inspect", url, "--endpoint-url", s3_endpoint]) == 0
    assert "concat (sidecar manifest)" in capsys.readouterr().out
    sidecar = f"s3://{env.dest}/manifests/{key}.manifest.json"
    status = main(["inspect", url, "--sidecar", sidecar, "--endpoint-url", s3_endpoint])
    assert status == 0
    assert "concat (sidecar manifest)" in capsys.readouterr().out
