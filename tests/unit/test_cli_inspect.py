"""``data-aggregator inspect`` on local bundle files written by the real engine."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import pytest

from data_aggregator.bundle import BundleEngine, BundleSource
from data_aggregator.cli import main
from data_aggregator.cli._common import CommandError
from data_aggregator.cli._inspect_command import _described_sidecar
from tests.bundle_fakes import FIXED_TIME, MemorySink, MemorySource

if TYPE_CHECKING:
    from pathlib import Path

OBJECTS = {
    "logs/a.json": b'{"a": 1}\n' * 50,
    "logs/deep/b b+c.txt": b"hello world\n" * 200,
    "top.bin": bytes(range(256)) * 8,
}


def write_bundle(directory: Path, codec: str = "gzip") -> Path:
    """Bundle ``OBJECTS`` with the real engine and save the bundle as a local file."""
    source, sink = MemorySource(), MemorySink()
    sources = []
    for key, data in OBJECTS.items():
        etag = source.put("src", key, data)
        sources.append(BundleSource("src", key, len(data), etag=etag, token=key))
    engine = BundleEngine(source, sink, codec=codec, clock=FIXED_TIME.timestamp)
    run = engine.run(sources, bundle_key=lambda n: f"b-{n}{engine.extension}")
    (summary,) = run.bundles
    path = directory / summary.key
    path.write_bytes(sink.objects[summary.key])
    return path


def write_many_member_bundle(directory: Path, members: int) -> Path:
    """A real gzip bundle of ``members`` small objects (a long ``inspect`` listing)."""
    source, sink = MemorySource(), MemorySink()
    sources = []
    for number in range(members):
        key = f"many/object-{number:06d}.txt"
        etag = source.put("src", key, b"x")
        sources.append(BundleSource("src", key, 1, etag=etag, token=key))
    engine = BundleEngine(source, sink, clock=FIXED_TIME.timestamp)
    run = engine.run(sources, bundle_key=lambda n: f"many-{n}{engine.extension}")
    (summary,) = run.bundles
    path = directory / summary.key
    path.write_bytes(sink.objects[summary.key])
    return path


def test_inspect_lists_members_and_exits_zero(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A sound bundle lists every member with size, hash and source, and exits 0."""
    bundle = write_bundle(tmp_path)
    assert main(["inspect", str(bundle)]) == 0
    out = capsys.readouterr()
    assert out.err == ""
    for key in OBJECTS:
        assert key in out.out
        assert f"s3://src/{key}" in out.out
    assert "OK" in out.out


@pytest.mark.parametrize("codec", ["gzip", "none"])
def test_inspect_json_report(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], codec: str
) -> None:
    """``--json`` reports the manifest's members and no problems."""
    bundle = write_bundle(tmp_path, codec)
    assert main(["inspect", "--json", str(bundle)]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["ok"] is True
    assert report["codec"] == codec
    assert [m["key"] for m in report["members"]] == list(OBJECTS)
    assert [m["size"] for m in report["members"]] == [len(d) for d in OBJECTS.values()]


def test_flipped_member_bytes_fail_naming_the_member(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Bytes flipped inside a member of an uncompressed bundle are a SHA-256 mismatch."""
    bundle = write_bundle(tmp_path, "none")
    data = bytearray(bundle.read_bytes())
    at = data.index(b"hello world")
    data[at : at + 5] = b"HELLO"
    bundle.write_bytes(bytes(data))
    assert main(["inspect", str(bundle)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert "'logs/deep/b b+c.txt'" in err[0]
    assert "SHA-256" in err[0]


def test_truncated_gzip_bundle_fails(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A gzip bundle cut short is reported as truncated, with exit status 1."""
    bundle = write_bundle(tmp_path)
    data = bundle.read_bytes()
    bundle.write_bytes(data[: len(data) - 20])
    assert main(["inspect", str(bundle)]) == 1
    err = capsys.readouterr().err
    assert "truncated" in err


def test_extract_writes_exactly_the_members(tmp_path: Path) -> None:
    """``--extract`` writes every member, and nothing else, inside the directory."""
    bundle = write_bundle(tmp_path)
    target = tmp_path / "out"
    assert main(["inspect", str(bundle), "--extract", str(target)]) == 0
    written = {p.relative_to(target).as_posix() for p in target.rglob("*") if p.is_file()}
    assert written == set(OBJECTS)
    for key, data in OBJECTS.items():
        assert (target / key).read_bytes() == data


def test_extract_of_a_corrupt_bundle_leaves_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """On a mismatch ``--extract`` removes whatever it wrote: all or nothing."""
    bundle = write_bundle(tmp_path, "none")
    data = bytearray(bundle.read_bytes())
    at = data.index(b'{"a": 1}')
    data[at] ^= 0xFF
    bundle.write_bytes(bytes(data))
    target = tmp_path / "out"
    assert main(["inspect", str(bundle), "--extract", str(target)]) == 1
    assert "'logs/a.json'" in capsys.readouterr().err
    assert list(target.iterdir()) == []


def test_extract_refuses_a_non_empty_directory(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``--extract`` into a directory that already holds files is an error."""
    bundle = write_bundle(tmp_path)
    assert main(["inspect", str(bundle), "--extract", str(tmp_path)]) == 1
    assert "not empty" in capsys.readouterr().err


def test_missing_file_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A bundle path that does not exist is one error line and exit status 1."""
    assert main(["inspect", str(tmp_path / "nope.tar.gz")]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert "cannot open" in err[0]


def test_bad_s3_url_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    """An ``s3://`` address without a key is rejected before any request."""
    assert main(["inspect", "s3://bucket-only"]) == 1
    assert "expected s3://bucket/key" in capsys.readouterr().err


@pytest.mark.parametrize("command", ["inspect", "create-table"])
def test_help_documents_every_option(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    """Each new subcommand's ``--help`` describes all its options."""
    with pytest.raises(SystemExit) as exit_info:
        main([command, "--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    options = {
        "inspect": [
            "--endpoint-url",
            "--extract",
            "--json",
            "--region",
            "--version-id",
            "--sidecar-prefix",
        ],
        "create-table": ["--partition-key", "--endpoint-url", "--region", "--exist-ok"],
    }[command]
    for option in options:
        assert option in out


def test_inspect_says_when_a_sidecar_place_answered_403() -> None:
    """An S3 concat bundle whose sidecar is not found, a place having answered 403 (what a
    missing object answers without ``s3:ListBucket``; or an unreadable one): the error
    names that place and says it may be there."""
    source, sink = MemorySource(), MemorySink()
    etag = source.put("src", "a.log", b"a\n")
    BundleEngine(
        source, sink, clock=FIXED_TIME.timestamp, bundle_format="concat", sidecar_prefix="m"
    ).run([BundleSource("src", "a.log", 2, etag=etag, token=0)], bundle_key="b-{}.log.gz".format)
    del sink.objects["m/b-1.log.gz.manifest.json"]
    with pytest.raises(CommandError, match=r"access denied at s3://d/m/b-1\.log\.gz\.manifest"):
        _described_sidecar(
            sink.as_source(listable=False), "d", "b-1.log.gz", sink.metadata["b-1.log.gz"], ""
        )
    with pytest.raises(
        CommandError, match=r"without a sidecar at s3://d/m/b-1\.log\.gz\.manifest\.json$"
    ):
        _described_sidecar(sink.as_source(), "d", "b-1.log.gz", sink.metadata["b-1.log.gz"], "")
