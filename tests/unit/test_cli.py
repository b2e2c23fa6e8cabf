"""The ``data-aggregator`` command line and its ``demo`` (moto in-process, no network).

The demo enters ``moto.mock_aws()``, which resets moto's in-process backends when it starts
and ends; the integration suite's in-process moto server runs before these tests and keeps
no state across tests, so the two do not meet.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Any

import boto3
import pytest
from botocore.awsrequest import AWSResponse
from botocore.compat import HTTPHeaders

import data_aggregator
from data_aggregator.cli import build_parser, main
from data_aggregator.cli._demo import AWKWARD, MIN_OBJECTS, TRAVERSAL_KEY
from data_aggregator.idempotency import _table
from data_aggregator.idempotency import main as idempotency_main
from tests.unit.test_cli_inspect import write_many_member_bundle

if TYPE_CHECKING:
    import argparse

EXPECT_INSTALLED = os.environ.get("DATA_AGGREGATOR_EXPECT_INSTALLED") == "1"


def run_json(capsys: pytest.CaptureFixture[str], *args: str) -> dict[str, Any]:
    """Run ``data-aggregator demo --json`` in-process and return the parsed summary."""
    assert main(["demo", "--json", *args]) == 0
    captured = capsys.readouterr()
    assert captured.err == ""
    summary: dict[str, Any] = json.loads(captured.out)
    return summary


@pytest.fixture(scope="module")
def summary_40() -> dict[str, Any]:
    """The JSON summary of one 40-object demo run, shared by the checks below."""
    with pytest.MonkeyPatch.context() as patch:
        output: list[str] = []
        patch.setattr(sys, "stdout", _Collect(output))
        assert main(["demo", "--objects", "40", "--json"]) == 0
    summary: dict[str, Any] = json.loads("".join(output))
    return summary


class _Collect:
    """A minimal text stream that keeps what is written (module fixtures have no capsys)."""

    def __init__(self, sink: list[str]) -> None:
        self.sink = sink

    def write(self, text: str) -> int:
        self.sink.append(text)
        return len(text)

    def flush(self) -> None:
        """Nothing to flush."""


def test_demo_bundles_every_uploaded_object_exactly_once(summary_40: dict[str, Any]) -> None:
    """Across the manifests read back, each uploaded version is in one bundle; none extra."""
    assert summary_40["ok"] is True
    assert summary_40["problems"] == []
    uploaded = [(o["key"], o["version_id"]) for o in summary_40["uploaded"]]
    assert len(uploaded) == 40
    assert len(set(uploaded)) == 40  # two versions of one key are two objects
    members = Counter(
        (m["key"], m["version_id"]) for b in summary_40["bundles"] for m in b["manifest"]
    )
    expected = Counter(item for item in uploaded if item[0] != TRAVERSAL_KEY)
    assert members == expected
    assert sum(b["members"] for b in summary_40["bundles"]) == 39
    assert summary_40["totals"]["bundled"] == 39
    names = [m["name"] for b in summary_40["bundles"] for m in b["manifest"]]
    assert all(not n.startswith("/") and ".." not in n.split("/") for n in names)


def test_demo_refuses_the_traversal_key_and_fails_its_message(summary_40: dict[str, Any]) -> None:
    """The ``../../etc/passwd`` object is refused and its message is left to SQS to retry."""
    assert [r["key"] for r in summary_40["refused"]] == [TRAVERSAL_KEY]
    refused = summary_40["refused"][0]
    assert refused["error_code"] == "UNSAFE_S3_KEY_PATH"
    first = summary_40["invocations"][0]
    assert first["batch_item_failures"] == [refused["message_id"]]
    assert summary_40["totals"]["failed"] == 1
    assert summary_40["totals"]["batch_item_failures"] == 1


def test_demo_redelivery_is_all_duplicates(summary_40: dict[str, Any]) -> None:
    """The redelivered batch bundles nothing: every notification is a duplicate."""
    *firsts, again = summary_40["invocations"]
    assert again["redelivery"] is True
    assert not any(inv["redelivery"] for inv in firsts)
    assert again["messages"] > 0
    assert again["duplicates"] == again["messages"]
    assert (again["bundled"], again["failed"], again["skipped"]) == (0, 0, 0)
    assert again["bundles"] == []
    assert again["batch_item_failures"] == []
    assert summary_40["totals"]["duplicates"] == again["messages"]


def test_demo_summary_counts_add_up(summary_40: dict[str, Any]) -> None:
    """Totals equal the per-invocation sums; the s3:TestEvent is the one skipped message."""
    invocations = summary_40["invocations"]
    for field in ("bundled", "duplicates", "skipped", "failed"):
        assert summary_40["totals"][field] == sum(inv[field] for inv in invocations)
    assert summary_40["totals"]["skipped"] == 1
    assert summary_40["messages"] == 41  # 40 notifications and the s3:TestEvent
    assert sum(inv["messages"] for inv in invocations[:-1]) == 41
    keys = [key for inv in invocations for key in inv["bundles"]]
    assert keys == [b["key"] for b in summary_40["bundles"]]
    for bundle in summary_40["bundles"]:
        assert bundle["key"].endswith(".tar.gz")
        assert len(bundle["sha256"]) == 64
        assert bundle["size"] > 0


def test_demo_shows_every_awkward_key(summary_40: dict[str, Any]) -> None:
    """Every awkward key of the catalogue is uploaded (the versioned key twice)."""
    keys = Counter(o["key"] for o in summary_40["uploaded"])
    for key, _note in AWKWARD:
        assert keys[key] == sum(1 for k, _ in AWKWARD if k == key)


def test_demo_restores_the_environment_and_ends_the_mock(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """After the demo, os.environ and logging are as they were and boto3 is not mocked."""
    monkeypatch.setenv("AWS_PROFILE", "someone-elses-profile")
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
    before = dict(os.environ)
    library_logger = logging.getLogger("data_aggregator")
    logging_before = (library_logger.level, list(library_logger.handlers))
    argv = ["demo", "--objects", str(MIN_OBJECTS), "--quiet", "--batch-size", "5"]
    assert main([*argv, "--log-level", "debug"]) == 0
    assert capsys.readouterr().out == ""
    assert dict(os.environ) == before
    assert (library_logger.level, list(library_logger.handlers)) == logging_before
    monkeypatch.delenv("AWS_PROFILE")
    monkeypatch.delenv("AWS_ENDPOINT_URL")

    # moto's stubber answers before-send first when active; ours answers only if it is not.
    client = boto3.client(
        "s3",
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        endpoint_url="https://s3.us-east-1.amazonaws.com",
    )
    answer: Any = _fake_list_buckets  # botocore's stubs type handlers as returning None
    client.meta.events.register("before-send", answer)
    names = [bucket["Name"] for bucket in client.list_buckets()["Buckets"]]
    assert names == ["answered-without-moto"]


def _fake_list_buckets(**_: Any) -> AWSResponse:
    xml = (
        b'<?xml version="1.0" encoding="UTF-8"?><ListAllMyBucketsResult>'
        b"<Owner><ID>x</ID></Owner><Buckets><Bucket><Name>answered-without-moto</Name>"
        b"<CreationDate>2024-01-01T00:00:00.000Z</CreationDate></Bucket></Buckets>"
        b"</ListAllMyBucketsResult>"
    )
    return AWSResponse("https://s3.amazonaws.com/", 200, HTTPHeaders(), _Raw(xml))


class _Raw:
    def __init__(self, body: bytes) -> None:
        self.body = body

    def stream(self, *_: Any, **__: Any) -> Any:
        yield self.body


def test_text_report_names_bundles_and_the_summary(capsys: pytest.CaptureFixture[str]) -> None:
    """Without --json the demo prints each bundle's key, members, size and sha256 and a table."""
    assert main(["demo", "--objects", "20", "--codec", "none"]) == 0
    out = capsys.readouterr().out
    assert ".tar\n" in out
    assert "sha256 " in out
    assert "batchItemFailures" in out
    assert "REFUSED (UNSAFE_S3_KEY_PATH)" in out
    assert "OK: 19 of 20 object versions" in out


def test_missing_moto_is_one_line_naming_the_extra(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without moto the demo exits 1 with one line telling which extra to install."""
    monkeypatch.setitem(sys.modules, "moto", None)
    assert main(["demo"]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.count("\n") == 1
    assert "pip install 's3-data-aggregator[demo]'" in captured.err


def test_missing_zstandard_fails_before_anything_runs(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """``--codec zstd`` without the zstd extra exits 1 with one line, before any upload."""
    monkeypatch.setitem(sys.modules, "zstandard", None)
    assert main(["demo", "--codec", "zstd"]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith("data-aggregator: error: ZSTD_NOT_INSTALLED:")
    assert captured.err.count("\n") == 1


@pytest.mark.parametrize(
    "argv",
    [[], ["demo", "--objects", "3"], ["demo", "--batch-size", "0"], ["demo", "--codec", "lz4"]],
)
def test_usage_errors_exit_2(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    """A missing subcommand or an out-of-range option is a usage error (exit status 2)."""
    with pytest.raises(SystemExit) as exited:
        main(argv)
    assert exited.value.code == 2
    assert "error:" in capsys.readouterr().err


def test_every_option_has_help() -> None:
    """Every option of every subcommand documents itself in --help."""

    def actions(parser: argparse.ArgumentParser) -> list[argparse.Action]:
        found = list(parser._actions)
        for action in parser._actions:
            for sub in getattr(action, "choices", None) or {}:
                if isinstance(action.choices, dict):
                    found += actions(action.choices[sub])
        return found

    options = [a for a in actions(build_parser()) if a.option_strings]
    assert {"--objects", "--codec", "--batch-size", "--json", "--quiet"} <= {
        s for a in options for s in a.option_strings
    }
    assert all(a.help for a in options)


def test_python_dash_m_runs_the_demo() -> None:
    """``python -m data_aggregator demo --objects 20`` exits 0 in a fresh interpreter."""
    done = subprocess.run(
        [sys.executable, "-m", "data_aggregator", "demo", "--objects", "20"],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "OK: 19 of 20 object versions" in done.stdout


def test_console_script_runs_the_demo() -> None:
    """The installed ``data-aggregator`` entry point runs the demo and exits 0."""
    script = Path(sys.executable).with_name("data-aggregator")
    if not script.exists() and not EXPECT_INSTALLED:
        pytest.skip("the console script is not installed in this environment")
    done = subprocess.run(  # noqa: S603 - the package's own entry point
        [str(script), "demo", "--objects", "20", "--json"],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["ok"] is True


def test_log_level_shows_structured_library_logs_on_stderr(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """``--log-level warning`` prints the refused record's log line, with its fields, on stderr."""
    assert main(["demo", "--objects", str(MIN_OBJECTS), "--json", "--log-level", "warning"]) == 0
    captured = capsys.readouterr()
    assert json.loads(captured.out)["ok"] is True
    lines = [line for line in captured.err.splitlines() if "UNSAFE_S3_KEY_PATH" in line]
    assert lines
    assert all(line.startswith("WARNING data_aggregator.") for line in lines)


@pytest.mark.parametrize("prog", ["data-aggregator", "python -m data_aggregator"])
def test_version_names_the_command(prog: str, capsys: pytest.CaptureFixture[str]) -> None:
    """``--version`` prints ``data-aggregator <version>`` however the command was started."""
    with pytest.raises(SystemExit) as exited:
        main(["--version"], prog=prog)
    assert exited.value.code == 0
    assert capsys.readouterr().out == f"data-aggregator {data_aggregator.__version__}\n"


@pytest.mark.parametrize("command", [[], ["demo"], ["inspect"], ["create-table"], ["bundle"]])
def test_help_names_documentation_pages_not_repository_paths(
    command: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    """``--help`` points at documentation pages by title; a wheel's user has no docs/ folder."""
    with pytest.raises(SystemExit):
        main([*command, "--help"])
    text = capsys.readouterr().out
    assert "docs/" not in text
    assert ".md" not in text


def test_top_level_help_names_the_documentation() -> None:
    """The top-level help ends with the documentation's name and the page to read."""
    epilog = build_parser().epilog or ""
    assert '"Command line"' in epilog
    assert "s3-data-aggregator" in epilog


def test_demo_keep_writes_a_bundle_that_inspect_verifies(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``demo --keep DIR`` leaves one bundle in DIR and prints the inspect command for it."""
    keep = tmp_path / "kept"
    assert main(["demo", "--objects", str(MIN_OBJECTS), "--keep", str(keep)]) == 0
    out = capsys.readouterr().out
    (bundle,) = keep.iterdir()
    assert bundle.name.endswith(".tar.gz")
    assert f"Try: data-aggregator inspect {bundle}\n" in out
    assert main(["inspect", str(bundle)]) == 0
    assert "manifest.json" not in capsys.readouterr().err


def test_demo_keep_in_json_names_the_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """With ``--json`` the kept bundle's path is in the summary instead of a printed hint."""
    summary = run_json(capsys, "--objects", str(MIN_OBJECTS), "--keep", str(tmp_path))
    assert summary["kept"] is not None
    assert Path(summary["kept"]).parent == tmp_path
    assert Path(summary["kept"]).is_file()


@pytest.mark.parametrize("unbuffered", [True, False], ids=["unbuffered", "buffered"])
def test_closed_stdout_ends_quietly(tmp_path: Path, unbuffered: bool) -> None:
    """Piped into a reader that stops early (``| head``), the command prints no error line."""
    bundle = write_many_member_bundle(tmp_path, members=3000)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}
    if unbuffered:
        env["PYTHONUNBUFFERED"] = "1"
    with subprocess.Popen(  # noqa: S603 - our own interpreter and package
        [sys.executable, "-m", "data_aggregator", "inspect", str(bundle)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
    ) as proc:
        assert proc.stdout is not None
        assert proc.stderr is not None
        proc.stdout.readline()
        proc.stdout.close()  # as `head -n 1` does
        err = proc.stderr.read()
        status = proc.wait(timeout=120)
    assert err == b""
    assert status == 1


def test_keep_into_an_unwritable_place_fails_before_the_demo_runs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A ``--keep`` path that cannot be written is one error line, and no demo output."""
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    assert main(["demo", "--objects", str(MIN_OBJECTS), "--keep", str(blocker / "x")]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith(f"data-aggregator: error: --keep {blocker / 'x'}: ")


def test_demo_keep_hint_uses_the_command_as_invoked(tmp_path: Path) -> None:
    """Run through a path (an unactivated venv), the hint repeats that path, not a bare name."""
    script = Path(sys.executable).with_name("data-aggregator")
    if not script.exists():
        pytest.skip("the console script is not installed in this environment")
    done = subprocess.run(  # noqa: S603 - the package's own entry point
        [str(script), "demo", "--objects", str(MIN_OBJECTS), "--keep", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert f"Try: {script} inspect {tmp_path}/" in done.stdout


def test_demo_keep_with_quiet_prints_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``--quiet`` means nothing but errors, the kept bundle's hint included."""
    assert main(["demo", "--objects", str(MIN_OBJECTS), "--quiet", "--keep", str(tmp_path)]) == 0
    assert capsys.readouterr().out == ""
    assert len(list(tmp_path.iterdir())) == 1


# --------------------------------------------------------------------------- create-table


@pytest.fixture
def created(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, str, bool]]:
    """The tables ``create-table`` asks for, recorded instead of created."""
    calls: list[tuple[str, str, bool]] = []

    def record(client: Any, table_name: str, partition_key: str, *, exist_ok: bool) -> None:
        calls.append((table_name, partition_key, exist_ok))

    monkeypatch.setattr(_table, "create_idempotency_table", record)
    monkeypatch.delenv("IDEMPOTENCY_TABLE_NAME", raising=False)
    return calls


@pytest.mark.parametrize(
    "argv",
    [
        ["create-table", "t-1"],
        ["create-table", "--table-name", "t-1"],
        ["create-table", "t-1", "--table-name", "t-1"],
    ],
)
def test_both_create_table_commands_are_one(
    argv: list[str], created: list[tuple[str, str, bool]], capsys: pytest.CaptureFixture[str]
) -> None:
    """``data-aggregator create-table`` and ``python -m data_aggregator.idempotency
    create-table`` parse the same arguments the same way and create the same table."""
    options = ["--region", "us-east-1", "--partition-key", "pk", "--exist-ok"]
    assert main([*argv, *options]) == 0
    assert idempotency_main([*argv, *options]) == 0
    assert created == [("t-1", "pk", True)] * 2
    out = capsys.readouterr().out.splitlines()
    assert out == ["table t-1 ready (partition key pk, TTL on expiration)"] * 2


def test_create_table_name_from_the_environment(
    created: list[tuple[str, str, bool]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without NAME or --table-name, the table is IDEMPOTENCY_TABLE_NAME's."""
    monkeypatch.setenv("IDEMPOTENCY_TABLE_NAME", "from-env")
    assert main(["create-table", "--region", "us-east-1"]) == 0
    assert created == [("from-env", "object_key", False)]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["create-table"], "the table's name is required"),
        (["create-table", "a", "--table-name", "b"], "NAME and --table-name name different"),
    ],
)
def test_create_table_without_one_name_is_a_usage_error(
    argv: list[str],
    message: str,
    created: list[tuple[str, str, bool]],
    capsys: pytest.CaptureFixture[str],
) -> None:
    """No table name, or two different ones, is a usage error (status 2) creating nothing."""
    with pytest.raises(SystemExit) as exited:
        main(argv)
    assert exited.value.code == 2
    assert message in capsys.readouterr().err
    assert created == []
