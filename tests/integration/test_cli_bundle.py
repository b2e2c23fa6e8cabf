"""``data-aggregator bundle`` (backfill) against the S3 and DynamoDB servers over HTTP."""

from __future__ import annotations

import hashlib
import io
import json
import uuid
from collections import Counter
from typing import TYPE_CHECKING, Any

import pytest

from data_aggregator.cli import _bundle as _backfill
from data_aggregator.cli import main
from data_aggregator.cli._inspect import inspect_bundle
from data_aggregator.idempotency import create_idempotency_table
from data_aggregator.processor import ReusableProcessor

if TYPE_CHECKING:
    from collections.abc import Callable
    from datetime import datetime

    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_s3 import S3Client as Boto3S3Client

pytestmark = pytest.mark.integration

OBJECTS = 50
BATCH = 20
#: Awkward keys among the plain ones: spaces, '+', '%', non-ASCII.
SPECIAL = ["in/a b.txt", "in/a+b.txt", "in/100%25.txt", "in/caf\u00e9/\u65e5\u672c.txt"]


class Env:
    """A source bucket with objects, a destination bucket and an idempotency table."""

    def __init__(
        self,
        s3: Boto3S3Client,
        dynamodb: DynamoDBClient,
        make_bucket: Callable[..., str],
        endpoints: tuple[str, str],
        *,
        versioned: bool = False,
    ) -> None:
        self.s3 = s3
        self.s3_endpoint, self.dynamodb_endpoint = endpoints
        self.src = make_bucket("src", versioned=versioned)
        self.dest = make_bucket("dest")
        self.table = f"bf-{uuid.uuid4().hex[:10]}"
        create_idempotency_table(dynamodb, self.table)
        keys = [f"in/obj-{i:03d}.txt" for i in range(OBJECTS - len(SPECIAL))] + SPECIAL
        self.data = {key: f"{key}\n".encode() * (1 + len(key) % 7) for key in keys}
        for key, body in self.data.items():
            s3.put_object(Bucket=self.src, Key=key, Body=body)
        s3.put_object(Bucket=self.src, Key="other/ignored.txt", Body=b"not under the prefix")

    def args(self, *extra: str) -> list[str]:
        """The command line of a backfill of ``in/`` into ``out/``."""
        return [
            "bundle",
            f"s3://{self.src}/in/",
            "--to",
            f"s3://{self.dest}/out",
            "--table",
            self.table,
            "--s3-endpoint-url",
            self.s3_endpoint,
            "--dynamodb-endpoint-url",
            self.dynamodb_endpoint,
            "--region",
            "us-east-1",
            "--batch-size",
            str(BATCH),
            *extra,
        ]

    def bundle_keys(self) -> list[str]:
        """Every object under the destination prefix."""
        pages = self.s3.get_paginator("list_objects_v2").paginate(Bucket=self.dest, Prefix="out/")
        return [item["Key"] for page in pages for item in page.get("Contents", [])]

    def members(self) -> Counter[str]:
        """Source keys over every bundle (verified), after checking each member's bytes."""
        seen: Counter[str] = Counter()
        for key in self.bundle_keys():
            body = self.s3.get_object(Bucket=self.dest, Key=key)["Body"].read()
            result = inspect_bundle(io.BytesIO(body))
            assert result.ok, result.problems
            assert result.manifest is not None
            for member in result.manifest.members:
                assert member.bucket == self.src
                assert member.sha256 == hashlib.sha256(self.data[member.key]).hexdigest()
                seen[member.key] += 1
        return seen


@pytest.fixture
def env(
    s3_client: Boto3S3Client,
    dynamodb_client: DynamoDBClient,
    make_bucket: Callable[..., str],
    s3_endpoint: str,
    dynamodb_endpoint: str,
) -> Env:
    """A fresh backfill environment on the session's servers."""
    return Env(s3_client, dynamodb_client, make_bucket, (s3_endpoint, dynamodb_endpoint))


def test_first_run_bundles_every_object_once(env: Env, capsys: pytest.CaptureFixture[str]) -> None:
    """A first run puts every listed object in exactly one bundle, bytes intact."""
    assert main(env.args()) == 0
    out, err = capsys.readouterr()
    assert f"{OBJECTS} objects listed, {OBJECTS} bundled" in out
    assert len([line for line in err.splitlines() if "chunk" in line]) == 3
    assert env.members() == Counter(env.data.keys())
    assert all(key.startswith("out/") for key in env.bundle_keys())


def test_second_run_bundles_nothing(env: Env, capsys: pytest.CaptureFixture[str]) -> None:
    """A second run finds every object already bundled and writes no bundle."""
    assert main(env.args()) == 0
    before = env.bundle_keys()
    capsys.readouterr()
    assert main(env.args("--quiet")) == 0
    out, err = capsys.readouterr()
    assert (out, err) == ("", "")
    assert env.bundle_keys() == before
    assert env.members() == Counter(env.data.keys())


def test_a_large_listing_prints_the_step_functions_route_once(
    env: Env, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Past the object threshold the run says, once, how to fan the backfill out on a
    Distributed Map, and goes on; below it (the default, here) it says nothing."""
    assert main(env.args("--limit", "5")) == 0
    assert "Distributed Map" not in capsys.readouterr().err
    monkeypatch.setattr(_backfill, "MAP_HINT_OBJECTS", 10)
    assert main(env.args()) == 0
    _, err = capsys.readouterr()
    hints = [line for line in err.splitlines() if "Distributed Map" in line]
    assert len(hints) == 1
    assert "11 objects" in hints[0]
    assert "docs/backfill-step-functions.md" in hints[0]
    assert env.members() == Counter(env.data.keys())


def test_a_large_limit_prints_the_route_before_listing(
    env: Env, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A ``--limit`` above the threshold is the estimate: the route comes first, once;
    ``--quiet`` keeps it quiet."""
    monkeypatch.setattr(_backfill, "MAP_HINT_OBJECTS", 10)
    assert main(env.args("--limit", "30")) == 0
    lines = capsys.readouterr().err.splitlines()
    assert "--limit 30" in lines[0]
    assert sum("Distributed Map" in line for line in lines) == 1
    assert main(env.args("--limit", "30", "--quiet")) == 0
    assert capsys.readouterr().err == ""


def test_limit_then_rerun_resumes(env: Env, capsys: pytest.CaptureFixture[str]) -> None:
    """A run stopped by ``--limit`` and a full re-run leave every object in one bundle."""
    assert main(env.args("--limit", "30")) == 0
    assert "30 objects listed, 30 bundled" in capsys.readouterr().out
    assert main(env.args()) == 0
    assert "20 bundled into 2 bundles, 30 already bundled" in capsys.readouterr().out
    assert env.members() == Counter(env.data.keys())


def test_failure_after_first_chunk_then_rerun(
    env: Env, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Bundle-key failures after the first chunk are exit 1; a re-run completes the rest."""

    class Failing(ReusableProcessor):
        def bundle_key(self, number: int, *, request_id: str, now: datetime) -> str:
            if not request_id.endswith("-1"):
                raise RuntimeError("injected")
            return super().bundle_key(number, request_id=request_id, now=now)

    monkeypatch.setattr(_backfill, "ReusableProcessor", Failing)
    assert main(env.args()) == 1
    err = [line for line in capsys.readouterr().err.splitlines() if "error:" in line]
    assert err == ["data-aggregator: error: 30 objects failed (hook_failed); run again to retry"]
    assert env.members() == Counter(sorted(env.data)[:BATCH])
    monkeypatch.undo()
    assert main(env.args()) == 0
    assert "30 bundled into 2 bundles, 20 already bundled" in capsys.readouterr().out
    assert env.members() == Counter(env.data.keys())


def test_crash_mid_run_then_rerun(
    env: Env, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A crash in the second chunk is one error line; the re-run bundles each object once."""
    real = ReusableProcessor.process
    calls: list[int] = []

    def process(self: ReusableProcessor, event: Any, context: Any) -> Any:
        calls.append(1)
        if len(calls) == 2:
            raise RuntimeError("injected crash")
        return real(self, event, context)

    monkeypatch.setattr(ReusableProcessor, "process", process)
    assert main(env.args()) == 1
    err = [line for line in capsys.readouterr().err.splitlines() if "error:" in line]
    assert len(err) == 1
    assert "injected crash" in err[0]
    monkeypatch.undo()
    assert main(env.args()) == 0
    assert env.members() == Counter(env.data.keys())


def test_versioned_source_uses_version_ids(
    s3_client: Boto3S3Client,
    dynamodb_client: DynamoDBClient,
    make_bucket: Callable[..., str],
    s3_endpoint: str,
    dynamodb_endpoint: str,
) -> None:
    """In a versioned bucket each member records the version id of the latest version."""
    endpoints = (s3_endpoint, dynamodb_endpoint)
    env = Env(s3_client, dynamodb_client, make_bucket, endpoints, versioned=True)
    key = "in/obj-000.txt"
    env.data[key] = b"second version\n"
    latest = s3_client.put_object(Bucket=env.src, Key=key, Body=env.data[key])["VersionId"]
    assert main(env.args("--quiet")) == 0
    assert env.members() == Counter(env.data.keys())
    (bundle,) = [k for k in env.bundle_keys() if k][:1]
    body = s3_client.get_object(Bucket=env.dest, Key=bundle)["Body"].read()
    manifest = inspect_bundle(io.BytesIO(body)).manifest
    assert manifest is not None
    versions = {m.key: m.version_id for m in manifest.members}
    assert versions.get(key, latest) == latest
    assert all(v for v in versions.values())


@pytest.mark.parametrize(
    ("change", "needle"),
    [
        (("--to", "dest-bucket/out"), "destination (--to) must be s3://bucket[/prefix]"),
        (("--to", "s3://no-such-bucket-xyz/out"), "destination bucket"),
        (("--table", "no-such-table"), "does not exist"),
    ],
)
def test_bad_destination_or_table_is_one_line(
    env: Env, capsys: pytest.CaptureFixture[str], change: tuple[str, str], needle: str
) -> None:
    """A bad ``--to`` or a missing table is one error line, exit 1, and nothing written."""
    args = env.args()
    args[args.index(change[0]) + 1] = change[1]
    assert main(args) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert needle in err[0]
    assert env.bundle_keys() == []


@pytest.mark.parametrize(
    "bad_key",
    [
        pytest.param(
            "in/../../etc/passwd",
            marks=pytest.mark.moto_only(reason="SeaweedFS refuses keys with '..'; S3 takes them"),
        ),
        "in/logs/CON",
    ],
)
def test_permanently_refused_object_is_named_and_not_retried(
    env: Env, bad_key: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """A key refused for good is reported by key and code, every run, with no "run again"."""
    env.s3.put_object(Bucket=env.src, Key=bad_key, Body=b"root:x:0:0")
    listed = [item["Key"] for item in env.s3.list_objects_v2(Bucket=env.src)["Contents"]]
    assert bad_key in listed  # the server kept the key as given
    for _ in range(2):
        assert main(env.args()) == 1
        err = [line for line in capsys.readouterr().err.splitlines() if "error:" in line]
        assert err == [
            f"data-aggregator: error: refused 's3://{env.src}/{bad_key}' "
            "(UNSAFE_S3_KEY_PATH); running again will not help"
        ]
    assert env.members() == Counter(env.data.keys())


def test_delete_sources_removes_what_was_bundled(
    env: Env, capsys: pytest.CaptureFixture[str]
) -> None:
    """``--delete-sources``: every bundled object under the prefix is deleted, the one
    outside it stays, and a second run finds nothing left to bundle."""
    assert main(env.args("--quiet", "--delete-sources")) == 0
    assert env.members() == Counter(env.data.keys())
    remaining = env.s3.list_objects_v2(Bucket=env.src).get("Contents", [])
    assert [item["Key"] for item in remaining] == ["other/ignored.txt"]
    assert main(env.args("--quiet", "--delete-sources")) == 0
    assert capsys.readouterr() == ("", "")
    assert env.members() == Counter(env.data.keys())


def test_concat_with_a_sidecar_prefix(env: Env, capsys: pytest.CaptureFixture[str]) -> None:
    """``--format concat --sidecar-prefix manifests`` puts the bundles under ``--to`` and
    only their sidecars under ``manifests/`` (as SIDECAR_PREFIX); ``inspect`` finds each
    sidecar from its bundle's metadata, and a re-run bundles nothing twice."""
    argv = env.args("--format", "concat", "--sidecar-prefix", "manifests")
    assert main(argv) == 0
    keys = env.bundle_keys()
    assert keys
    assert all(key.endswith(".log.gz") for key in keys)
    listing = env.s3.list_objects_v2(Bucket=env.dest, Prefix="manifests/")
    sidecars = {item["Key"] for item in listing.get("Contents", [])}
    assert sidecars == {f"manifests/{key}.manifest.json" for key in keys}
    seen: Counter[str] = Counter()
    for key in keys:
        url = f"s3://{env.dest}/{key}"
        capsys.readouterr()
        assert main(["inspect", url, "--json", "--s3-endpoint-url", env.s3_endpoint]) == 0
        report = json.loads(capsys.readouterr().out)
        assert (report["ok"], report["format"]) == (True, "concat")
        seen.update(member["key"] for member in report["members"])
    assert seen == Counter(env.data.keys())
    assert main(argv) == 0
    assert f"0 bundled into 0 bundles, {OBJECTS} already bundled" in capsys.readouterr().out
    assert len(env.bundle_keys()) == len(keys)
