"""Concat bundles (``BUNDLE_FORMAT=concat``) with in-memory sources and sinks: the newline
rule, the UTF-8 check, the sidecar and its commit order, the reader's checks, inspect."""

from __future__ import annotations

import gzip
import io
import json
from typing import TYPE_CHECKING, Any

import pytest

from data_aggregator.bundle import (
    BundleEngine,
    BundleSource,
    OutcomeStatus,
    read_bundle_manifest,
    verify_bundle,
)
from data_aggregator.bundle._codecs import open_decompressed
from data_aggregator.bundle._concat import Utf8Check, sidecar_key
from data_aggregator.cli._inspect import inspect_bundle
from data_aggregator.config import AppConfig, BundleFormat
from data_aggregator.exceptions import (
    BundleError,
    ConfigurationError,
    ErrorCode,
    ObjectNotTextError,
    S3ObjectNotFoundError,
)
from tests.bundle_fakes import FIXED_TIME, MemorySink, MemorySource, MemoryUpload

if TYPE_CHECKING:
    from collections.abc import Mapping
    from pathlib import Path

    from data_aggregator.bundle import BundleRun
    from data_aggregator.bundle._manifest import BundleManifest

KEY = "out/bundle-{}.log.gz"


def _sources(source: MemorySource, bodies: list[bytes], prefix: str = "k") -> list[BundleSource]:
    result = []
    for i, data in enumerate(bodies):
        key = f"{prefix}{i:03d}.log"
        etag = source.put("b", key, data)
        result.append(BundleSource("b", key, len(data), etag=etag, token=i))
    return result


def _run(
    bodies: list[bytes], sink: MemorySink | None = None, **kw: Any
) -> tuple[BundleRun, MemorySink, MemorySource]:
    source, sink = MemorySource(), sink or MemorySink()
    engine = BundleEngine(source, sink, bundle_format="concat", clock=FIXED_TIME.timestamp, **kw)
    return engine.run(_sources(source, bodies), bundle_key=KEY.format), sink, source


def _verify(sink: MemorySink, number: int = 1) -> BundleManifest:
    key = KEY.format(number)
    return verify_bundle(
        io.BytesIO(sink.objects[key]), sidecar=sink.objects[sidecar_key(key)], bundle_key=key
    )


def _stream(sink: MemorySink, number: int = 1) -> bytes:
    return open_decompressed(io.BytesIO(sink.objects[KEY.format(number)])).read()


def test_each_member_ends_in_exactly_one_newline_and_offsets_cut_it_back() -> None:
    """A newline is added only where a member lacks one (none for an empty member); the
    sidecar's offsets and sizes cut every member's exact bytes out of the stream."""
    bodies = [b"a\n", b"b", b"", b"c\r\n", b"d\n\n", "é".encode()]
    run, sink, _ = _run(bodies)
    assert all(outcome.bundled for outcome in run.outcomes)
    stream = _stream(sink)
    assert stream == b"a\nb\nc\r\nd\n\n\xc3\xa9\n"
    manifest = _verify(sink)
    assert manifest.bundle_format is BundleFormat.CONCAT
    assert [m.newline_added for m in manifest.members] == [False, True, False, False, False, True]
    for member, body in zip(manifest.members, bodies, strict=True):
        assert member.offset is not None
        assert stream[member.offset : member.offset + member.size] == body
    assert run.bundles[0].tar_size == len(stream)


def test_the_sidecar_is_stored_before_the_hook_and_the_bundle_commit() -> None:
    """Order of the writes: every byte of the bundle, the sidecar committed, then
    ``before_commit`` (the processor's deadline gate), then the bundle's final request."""
    events: list[str] = []

    class Recording(MemoryUpload):
        def commit(self) -> Any:
            events.append(f"commit {self.key}")
            return super().commit()

    class RecordingSink(MemorySink):
        def open_upload(
            self, key: str, *, content_type: str, metadata: Mapping[str, str]
        ) -> MemoryUpload:
            events.append(f"open {key} {content_type}")
            return Recording(self, key, metadata)

    source, sink = MemorySource(), RecordingSink()
    engine = BundleEngine(source, sink, bundle_format="concat", clock=FIXED_TIME.timestamp)
    key = KEY.format(1)
    engine.run(
        _sources(source, [b"x\n"]),
        bundle_key=KEY.format,
        before_commit=lambda k, tokens: events.append(f"hook {k} {list(tokens)}"),
    )
    assert events == [
        f"open {key} application/gzip",
        f"open {sidecar_key(key)} application/json",
        f"commit {sidecar_key(key)}",
        f"hook {key} [0]",
        f"commit {key}",
    ]


def test_a_refused_commit_leaves_a_sidecar_that_reads_as_not_committed() -> None:
    """When ``before_commit`` refuses, the bundle is aborted: the sidecar stored before it
    stays, and reading the bundle's manifest says the bundle does not exist."""

    def refuse(key: str, tokens: object) -> None:
        raise RuntimeError(key)

    source, sink = MemorySource(), MemorySink()
    engine = BundleEngine(source, sink, bundle_format="concat", clock=FIXED_TIME.timestamp)
    run = engine.run(_sources(source, [b"x\n"]), bundle_key=KEY.format, before_commit=refuse)
    assert [o.status for o in run.outcomes] == [OutcomeStatus.FAILED_RETRYABLE]
    assert list(sink.objects) == [sidecar_key(KEY.format(1))]
    with pytest.raises(S3ObjectNotFoundError):
        read_bundle_manifest(
            sink.as_source(), "dest", KEY.format(1), bundle_format=BundleFormat.CONCAT
        )


def test_a_sidecar_that_cannot_be_stored_aborts_the_bundle() -> None:
    """A failed sidecar upload is an upload failure: the bundle is aborted, its objects
    are retryable, nothing is stored."""

    class FailingSidecarSink(MemorySink):
        def open_upload(
            self, key: str, *, content_type: str, metadata: Mapping[str, str]
        ) -> MemoryUpload:
            if key.endswith(".manifest.json"):
                msg = "no sidecar"
                raise OSError(msg)
            return super().open_upload(key, content_type=content_type, metadata=metadata)

    run, sink, _ = _run([b"x\n", b"y\n"], sink=FailingSidecarSink())
    assert {o.status for o in run.outcomes} == {OutcomeStatus.FAILED_RETRYABLE}
    assert {o.error.error_code for o in run.outcomes if o.error} == {ErrorCode.BUNDLE_UPLOAD_FAILED}
    assert sink.objects == {}
    assert sink.aborted == [KEY.format(1)]


def test_a_prefetched_object_that_is_not_utf8_fails_alone() -> None:
    """A binary object is refused with OBJECT_NOT_TEXT (not retryable) before any of its
    bytes is written; the others are bundled."""
    run, sink, _ = _run([b"one\n", b"\x00ok\n\xff", b"three\n"])
    statuses = [o.status for o in run.outcomes]
    assert statuses == [OutcomeStatus.BUNDLED, OutcomeStatus.REFUSED, OutcomeStatus.BUNDLED]
    error = run.outcomes[1].error
    assert isinstance(error, ObjectNotTextError)
    assert error.error_code == ErrorCode.OBJECT_NOT_TEXT
    assert not error.retryable
    assert error.context["offset"] == 4
    assert _stream(sink) == b"one\nthree\n"
    assert [m.key for m in _verify(sink).members] == ["k000.log", "k002.log"]


def test_a_streamed_object_that_is_not_utf8_discards_only_its_own_bundle() -> None:
    """Members larger than the in-flight budget are streamed, each in a bundle of its own
    (the plan says so): a bad byte after the first chunk aborts that bundle only."""
    bodies = [b"small\n", b"a" * 40 + b"\xe2\x82", b"b" * 40 + b"\n", b"tail\n"]
    run, sink, _ = _run(bodies, in_flight_bytes=32, chunk_size=16)
    statuses = [o.status for o in run.outcomes]
    assert statuses == [
        OutcomeStatus.BUNDLED,
        OutcomeStatus.REFUSED,
        OutcomeStatus.BUNDLED,
        OutcomeStatus.BUNDLED,
    ]
    assert run.outcomes[1].error is not None
    assert run.outcomes[1].error.context["offset"] == 40
    keys = {o.bundle_key for o in run.outcomes if o.bundled}
    assert keys == {KEY.format(1), KEY.format(3), KEY.format(4)}
    assert sink.aborted == [KEY.format(2)]
    assert _stream(sink, 3) == b"b" * 40 + b"\n"


def test_a_sequence_split_across_chunks_is_text() -> None:
    """The UTF-8 check is incremental: a multi-byte character cut by a chunk boundary
    passes, streamed or prefetched."""
    body = ("x" * 15 + "€" + "y" * 15 + "😀\n").encode()
    for in_flight in (8, 1 << 20):
        run, sink, _ = _run([body], in_flight_bytes=in_flight, chunk_size=16)
        assert run.outcomes[0].bundled
        assert _stream(sink) == body


@pytest.mark.parametrize(
    ("chunks", "offset"),
    [([b"ab\xc3", b"("], 2), ([b"abc", b"\xff"], 3), ([b"ok\xe2\x82"], 2)],
)
def test_the_utf8_check_reports_where_the_bad_bytes_start(chunks: list[bytes], offset: int) -> None:
    """The error's ``offset`` is the first byte of the invalid (or unfinished) sequence."""
    check = Utf8Check(BundleSource("b", "k"))

    def feed_all() -> None:
        for chunk in chunks:
            check.feed(chunk)
        check.finish()

    with pytest.raises(ObjectNotTextError) as info:
        feed_all()
    assert info.value.context["offset"] == offset


def test_zstd_and_none_codecs_and_their_extensions() -> None:
    """Concat bundles compress with every codec and are named after it."""
    pytest.importorskip("zstandard")
    for codec, extension in (("zstd", ".log.zst"), ("none", ".log"), ("gzip", ".log.gz")):
        source, sink = MemorySource(), MemorySink()
        engine = BundleEngine(source, sink, bundle_format="concat", codec=codec)
        assert engine.extension == extension
        run = engine.run(_sources(source, [b"a", b"b\n"]), bundle_key=f"x{{}}{extension}".format)
        data = sink.objects[f"x1{extension}"]
        assert open_decompressed(io.BytesIO(data)).read() == b"a\nb\n"
        manifest = verify_bundle(
            io.BytesIO(data), sidecar=sink.objects[f"x1{extension}.manifest.json"]
        )
        assert len(manifest.members) == len(run.bundles[0].member_names) == 2


def test_from_config_reads_bundle_format() -> None:
    """``BUNDLE_FORMAT`` reaches the engine; an unknown format is a configuration error."""
    config = AppConfig.model_validate(
        {"distribution_bucket_name": "dest-bucket", "bundle_format": "CONCAT"}
    )
    engine = BundleEngine.from_config(config, MemorySource(), MemorySink())
    assert (engine.bundle_format, engine.extension) == (BundleFormat.CONCAT, ".log.gz")
    with pytest.raises(ConfigurationError):
        BundleEngine(MemorySource(), MemorySink(), bundle_format="zip")


# ------------------------------------------------------------------------ the reader


def _tampered(mutate: Any, stream_edit: Any = None) -> str:
    _, sink, _ = _run([b"alpha\n", b"beta", b"gamma\n"], codec="none")
    key = KEY.format(1)
    document = json.loads(sink.objects[sidecar_key(key)])
    mutate(document)
    data = sink.objects[key] if stream_edit is None else stream_edit(sink.objects[key])
    with pytest.raises(BundleError) as info:
        verify_bundle(
            io.BytesIO(data), "none", sidecar=json.dumps(document).encode(), bundle_key=key
        )
    assert info.value.error_code == ErrorCode.BUNDLE_INVALID
    return info.value.message


def test_the_reader_refuses_every_disagreement() -> None:
    """Wrong SHA-256, offset, newline flag, trailing bytes, truncation, another bundle's
    sidecar, a tar manifest: each is a BUNDLE_INVALID naming the problem."""

    def member(index: int, **fields: Any) -> Any:
        return lambda doc: doc["members"][index].update(fields)

    assert "SHA-256" in _tampered(member(0, sha256="0" * 64))
    assert "offset" in _tampered(member(1, offset=7))
    assert "newline" in _tampered(member(1, newline_added=False))
    assert "goes on" in _tampered(lambda doc: None, lambda data: data + b"extra\n")
    assert "ends after" in _tampered(lambda doc: None, lambda data: data[:8])
    assert "names bundle" in _tampered(lambda doc: doc.update(bundle_key="other"))
    assert "not that of a concat" in _tampered(lambda doc: doc.pop("format"))
    assert "lacks a field" in _tampered(lambda doc: doc["members"][0].pop("offset"))


def test_a_tar_bundle_is_not_read_as_concat() -> None:
    """A tar manifest (no ``format``) is refused as a sidecar, and a sidecar is not a tar
    manifest: the formats never pass for each other."""
    source, sink = MemorySource(), MemorySink()
    BundleEngine(source, sink).run(_sources(source, [b"x\n"]), bundle_key="t{}.tar.gz".format)
    _, concat, _ = _run([b"x\n"])
    with pytest.raises(BundleError):
        verify_bundle(
            io.BytesIO(sink.objects["t1.tar.gz"]),
            sidecar=b'{"format_version":1,"bundle_key":"t1.tar.gz","members":[]}',
        )
    with pytest.raises(BundleError):
        verify_bundle(io.BytesIO(concat.objects[KEY.format(1)]))


def test_read_bundle_manifest_reads_either_format() -> None:
    """The one reader of stored bundles: concat through its sidecar, tar through its own
    manifest (also in a concat deployment, for bundles written before the switch)."""
    _, sink, _ = _run([b"x\n", b"y"])
    source = MemorySource()
    BundleEngine(source, sink).run(_sources(source, [b"z"]), bundle_key="t{}.tar.gz".format)
    for described in (True, False):  # with the bundles' metadata, and without (older)
        store = sink.as_source(described=described)
        for layout in ("tar", "concat"):
            concat = read_bundle_manifest(store, "d", KEY.format(1), bundle_format=layout)
            assert [m.size for m in concat.members] == [2, 1]
            tar = read_bundle_manifest(store, "d", "t1.tar.gz", bundle_format=layout)
            assert tar.bundle_format is BundleFormat.TAR


# ------------------------------------------------------------------------ inspect


def test_inspect_extracts_a_concat_bundle(tmp_path: Path) -> None:
    """``inspect`` with the sidecar checks the bundle and extracts each member's exact
    bytes (without the added newline) under its name."""
    bodies = [b"first\n", b"second"]
    _, sink, _ = _run(bodies)
    key = KEY.format(1)
    result = inspect_bundle(
        io.BytesIO(sink.objects[key]),
        sidecar=sink.objects[sidecar_key(key)],
        extract_to=tmp_path / "out",
    )
    assert result.ok, result.problems
    assert result.bundle_format == "concat"
    assert [(tmp_path / "out" / name).read_bytes() for name in result.extracted] == bodies


def test_inspect_refuses_unsafe_names_and_extracts_nothing(tmp_path: Path) -> None:
    """A sidecar naming a member outside the directory is a problem; the extraction is
    all or nothing."""
    _, sink, _ = _run([b"first\n", b"second\n"])
    key = KEY.format(1)
    document = json.loads(sink.objects[sidecar_key(key)])
    document["members"][1]["name"] = "../escape.log"
    result = inspect_bundle(
        io.BytesIO(sink.objects[key]),
        sidecar=json.dumps(document).encode(),
        extract_to=tmp_path / "out",
    )
    assert not result.ok
    assert any("unsafe name" in problem for problem in result.problems)
    assert list((tmp_path / "out").iterdir()) == []
    assert not (tmp_path / "escape.log").exists()


def test_a_gzip_line_reader_sees_no_tar_bytes() -> None:
    """What Athena-style readers get: the source lines, nothing else."""
    bodies = [b'{"n":1}\n{"n":2}\n', b'{"n":3}']
    _, sink, _ = _run(bodies)
    with gzip.open(io.BytesIO(sink.objects[KEY.format(1)]), "rt", encoding="utf-8") as lines:
        assert [json.loads(line) for line in lines] == [{"n": 1}, {"n": 2}, {"n": 3}]


def test_the_docs_bundle_key_hook_names_bundles_jsonl() -> None:
    """The ``bundle_key`` override of docs/bundle-format.md, run as the page shows it."""
    from data_aggregator.processor import ReusableProcessor
    from tests.docs_support import python_block_containing
    from tests.processor_fakes import FakeS3Client

    namespace: dict[str, Any] = {}
    source = python_block_containing("docs/bundle-format.md", "class JsonLinesBundler")
    exec(compile(source, "docs/bundle-format.md", "exec"), namespace)  # noqa: S102
    bundler = namespace["JsonLinesBundler"]
    assert issubclass(bundler, ReusableProcessor)
    config = AppConfig.model_validate(
        {"distribution_bucket_name": "dest-bucket", "bundle_format": "concat"}
    )
    processor = bundler(config, s3_client=FakeS3Client(), store=_memory_store())
    key = processor.bundle_key(2, request_id="rid", now=FIXED_TIME)
    assert key == "2024/05/01/12/bundle-rid-2.jsonl.gz"


def _memory_store() -> Any:
    from data_aggregator.idempotency import InMemoryIdempotencyStore

    return InMemoryIdempotencyStore()
