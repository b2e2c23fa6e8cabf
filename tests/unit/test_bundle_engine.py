"""The bundle engine with in-memory sources and sinks: ordering, limits, failure outcomes."""

from __future__ import annotations

import io
import tarfile
import threading
from typing import TYPE_CHECKING, Any

import pytest

from data_aggregator.bundle import (
    BundleEngine,
    BundleSource,
    MultipartSink,
    OutcomeStatus,
    StopReason,
    make_bundle_key_factory,
    verify_bundle,
)
from data_aggregator.bundle._codecs import resolve_codec
from data_aggregator.clients import MIB
from data_aggregator.config import AppConfig
from data_aggregator.exceptions import (
    BundleError,
    ConfigurationError,
    S3ThrottlingError,
    ValidationError,
)
from tests.bundle_fakes import FIXED_TIME, MemoryObject, MemorySink, MemorySource
from tests.processor_fakes import FakeS3Client

if TYPE_CHECKING:
    from collections.abc import Sequence

    from data_aggregator.bundle import BundleRun

KEY = "bundle-{}.tar.gz"


def _setup(count: int, size: int = 10) -> tuple[MemorySource, list[BundleSource]]:
    source = MemorySource()
    sources = []
    for i in range(count):
        data = bytes([i % 256]) * size
        etag = source.put("b", f"k{i:03d}", data)
        sources.append(BundleSource("b", f"k{i:03d}", size, etag=etag, token=i))
    return source, sources


def _run(
    source: Any, sources: list[BundleSource], sink: MemorySink | None = None, **kw: Any
) -> tuple[BundleRun, MemorySink]:
    sink = sink or MemorySink()
    engine = BundleEngine(source, sink, clock=FIXED_TIME.timestamp, **kw)
    return engine.run(sources, bundle_key=KEY.format), sink


def _statuses(run: BundleRun) -> list[OutcomeStatus]:
    return [o.status for o in run.outcomes]


class _TruncatingSource(MemorySource):
    """Announces the right Content-Length but delivers only half the body of ``bad`` keys."""

    bad: frozenset[str] = frozenset()

    def open_object(self, bucket: str, key: str, **kw: Any) -> MemoryObject:
        opened = super().open_object(bucket, key, **kw)
        if key in self.bad:
            data = opened.body.getvalue()
            return MemoryObject(
                io.BytesIO(data[: len(data) // 2]), len(data), opened.etag, opened.last_modified
            )
        return opened


def test_outcomes_follow_input_order_and_keep_tokens() -> None:
    """Every input gets one outcome at its index, with its token, in input order."""
    source, sources = _setup(50)
    run, sink = _run(source, sources, fetch_concurrency=8)
    assert [o.index for o in run.outcomes] == list(range(50))
    assert [o.token for o in run.outcomes] == list(range(50))
    assert _statuses(run) == [OutcomeStatus.BUNDLED] * 50
    manifest = verify_bundle(io.BytesIO(sink.objects["bundle-1.tar.gz"]))
    assert [m.key for m in manifest.members] == [s.key for s in sources]


def test_output_is_deterministic() -> None:
    """The same inputs and clock give byte-identical bundles whatever the concurrency."""
    source, sources = _setup(40, 333)
    first = _run(source, sources, fetch_concurrency=1)[1].objects
    second = _run(source, sources, fetch_concurrency=16)[1].objects
    assert first == second


def test_headers_are_deterministic() -> None:
    """Members carry mode 0644, uid/gid 0, empty owner names and the object's mtime."""
    source, sources = _setup(3)
    _, sink = _run(source, sources, codec="none")
    with tarfile.open(fileobj=io.BytesIO(sink.objects["bundle-1.tar.gz"])) as archive:
        members = archive.getmembers()
    assert members[-1].name == "manifest.json"
    for info in members:
        assert (info.mode, info.uid, info.gid, info.uname, info.gname) == (0o644, 0, 0, "", "")
        assert info.mtime == int(FIXED_TIME.timestamp())


def test_unsafe_key_is_refused() -> None:
    """A key the sanitizer rejects is refused with its validation error; others go on."""
    source, sources = _setup(2)
    source.put("b", "../etc/passwd", b"x")
    run, _ = _run(source, [sources[0], BundleSource("b", "../etc/passwd", 1), sources[1]])
    assert _statuses(run) == [
        OutcomeStatus.BUNDLED,
        OutcomeStatus.REFUSED,
        OutcomeStatus.BUNDLED,
    ]
    error = run.outcomes[1].error
    assert isinstance(error, ValidationError)
    assert error.error_code == "UNSAFE_S3_KEY_PATH"


def test_requested_name_is_used_and_sanitized() -> None:
    """A caller-supplied name replaces the key as member name, after sanitizing."""
    source, _sources = _setup(1)
    named = BundleSource("b", "k000", 10, name="renamed//here.txt")
    run, _ = _run(source, [named])
    assert run.outcomes[0].member_name == "renamed/here.txt"


def test_should_continue_false_at_once_uploads_nothing() -> None:
    """A guard that is already false leaves everything not attempted and uploads nothing."""
    source, sources = _setup(5)
    sink = MemorySink()
    run = BundleEngine(source, sink).run(sources, should_continue=lambda: False)
    assert _statuses(run) == [OutcomeStatus.NOT_ATTEMPTED] * 5
    assert run.stop_reason is StopReason.CALLER
    assert sink.objects == {}


def test_rollover_respects_the_limit() -> None:
    """Bundles roll over before their tar stream passes the limit; each has its manifest."""
    source, sources = _setup(40, 1000)
    run, sink = _run(source, sources, max_bundle_size_bytes=20_000)
    assert len(run.bundles) > 3
    seen = []
    for summary in run.bundles:
        assert summary.tar_size <= 20_000
        manifest = verify_bundle(io.BytesIO(sink.objects[summary.key]))
        assert manifest.bundle_key == summary.key
        seen += [m.key for m in manifest.members]
    assert seen == [s.key for s in sources]


def test_member_larger_than_the_limit_gets_its_own_bundle() -> None:
    """An object bigger than the bundle limit is bundled alone rather than refused."""
    source, sources = _setup(3, 50_000)
    run, _ = _run(source, sources, max_bundle_size_bytes=20_000)
    assert [s.member_count for s in run.bundles] == [1, 1, 1]


def test_large_objects_stream_through() -> None:
    """Objects above the in-flight budget are streamed and bundled intact."""
    source, sources = _setup(6, 300_000)
    run, sink = _run(source, sources, in_flight_bytes=100_000, chunk_size=64 * 1024)
    assert _statuses(run) == [OutcomeStatus.BUNDLED] * 6
    manifest = verify_bundle(io.BytesIO(sink.objects["bundle-1.tar.gz"]))
    assert [m.size for m in manifest.members] == [300_000] * 6


def test_unknown_size_is_taken_from_the_response() -> None:
    """A source without a size is streamed with the size the GET announces."""
    source, _ = _setup(1)
    run, _ = _run(source, [BundleSource("b", "k000")])
    assert run.outcomes[0].status is OutcomeStatus.BUNDLED
    assert run.outcomes[0].size == 10


def test_in_flight_bytes_bound_prefetching() -> None:
    """Bytes fetched but not yet written never exceed the budget (plus output buffering)."""
    written = 0
    worst = 0
    lock = threading.Lock()

    class Counting(MemorySource):
        delivered = 0

        def open_object(self, bucket: str, key: str, **kw: Any) -> MemoryObject:
            nonlocal worst
            opened = super().open_object(bucket, key, **kw)
            with lock:
                self.delivered += opened.content_length
                worst = max(worst, self.delivered - written)
            return opened

    class CountingSink(MemorySink):
        def open_upload(self, key: str, *, content_type: str, metadata: Any) -> Any:
            upload = super().open_upload(key, content_type=content_type, metadata=metadata)
            original = upload.write

            def write(data: bytes, /) -> int:
                nonlocal written
                with lock:
                    written += len(data)
                return original(data)

            upload.write = write  # type: ignore[method-assign]
            return upload

    source = Counting()
    sources = []
    for i in range(60):
        source.put("b", f"k{i}", bytes(100_000))
        sources.append(BundleSource("b", f"k{i}", 100_000))
    budget = 1_000_000
    run, _ = _run(source, sources, sink=CountingSink(), codec="none", in_flight_bytes=budget)
    assert run.counts()[OutcomeStatus.BUNDLED] == 60
    assert worst <= budget + 256 * 1024 + 100_000


def test_size_and_etag_mismatches() -> None:
    """Wrong sizes and ETags are superseded when nothing pins the object, refused otherwise."""
    source, _ = _setup(1)
    etag = source.put("b", "k", b"0123456789")
    sources = [
        BundleSource("b", "k", 5),  # unpinned, other size: overwritten since
        BundleSource("b", "k", 5, etag=etag),  # ETag matches, size does not: event is wrong
        BundleSource("b", "k", 10, etag="0" * 32),  # other ETag: overwritten since
        BundleSource("b", "k", 10, etag=etag),
    ]
    run, _ = _run(source, sources)
    assert _statuses(run) == [
        OutcomeStatus.SUPERSEDED,
        OutcomeStatus.REFUSED,
        OutcomeStatus.SUPERSEDED,
        OutcomeStatus.BUNDLED,
    ]


def test_truncated_prefetched_body_fails_only_itself() -> None:
    """A small body that ends early is failed-retryable; its neighbours are bundled."""
    source = _TruncatingSource()
    source.bad = frozenset({"k1"})
    sources = [BundleSource("b", f"k{i}", 100) for i in range(3)]
    for s in sources:
        source.put("b", s.key, bytes(100))
    run, _ = _run(source, sources)
    assert _statuses(run) == [
        OutcomeStatus.BUNDLED,
        OutcomeStatus.FAILED_RETRYABLE,
        OutcomeStatus.BUNDLED,
    ]
    assert run.outcomes[1].error is not None
    assert run.outcomes[1].error.error_code == "S3_BODY_TRUNCATED"


def test_truncated_streamed_body_discards_its_bundle() -> None:
    """A streamed body that breaks mid-member aborts that bundle; the run continues anew."""
    source = _TruncatingSource()
    source.bad = frozenset({"k2"})
    sources = [BundleSource("b", f"k{i}", 5000) for i in range(5)]
    for s in sources:
        source.put("b", s.key, bytes(5000))
    run, sink = _run(source, sources, in_flight_bytes=1000)
    assert _statuses(run) == [OutcomeStatus.FAILED_RETRYABLE] * 3 + [OutcomeStatus.BUNDLED] * 2
    assert run.outcomes[0].error is not None
    assert run.outcomes[0].error.error_code == "BUNDLE_MEMBER_FAILED"
    assert sink.aborted == ["bundle-1.tar.gz"]
    manifest = verify_bundle(io.BytesIO(sink.objects["bundle-1.tar.gz"]))
    assert [m.key for m in manifest.members] == ["k3", "k4"]


def test_untyped_and_transient_source_errors_are_retryable() -> None:
    """Unknown exceptions and throttling from the source become failed-retryable outcomes."""

    class Flaky(MemorySource):
        def open_object(self, bucket: str, key: str, **kw: Any) -> MemoryObject:
            if key == "k001":
                raise ConnectionResetError
            if key == "k002":
                raise S3ThrottlingError("slow down")
            return super().open_object(bucket, key, **kw)

    flaky = Flaky()
    _, sources = _setup(4)
    flaky.objects = _setup(4)[0].objects
    run, _ = _run(flaky, sources)
    assert _statuses(run) == [
        OutcomeStatus.BUNDLED,
        OutcomeStatus.FAILED_RETRYABLE,
        OutcomeStatus.FAILED_RETRYABLE,
        OutcomeStatus.BUNDLED,
    ]
    assert run.outcomes[1].error is not None
    assert run.outcomes[1].error.error_code == "S3_READ_FAILED"


@pytest.mark.parametrize("failure", ["write", "commit"])
def test_sink_failure_aborts_and_bundles_nothing(failure: str) -> None:
    """A failing write or commit aborts the upload; nothing counts as bundled."""
    source, sources = _setup(20, 2000)
    sink = MemorySink(fail_after_bytes=100 if failure == "write" else None)
    sink.fail_commit = failure == "commit"
    run, _ = _run(source, sources, sink=sink, codec="none")
    assert run.stop_reason is StopReason.UPLOAD_FAILED
    assert not any(o.bundled for o in run.outcomes)
    assert run.counts()[OutcomeStatus.FAILED_RETRYABLE] >= 1
    assert sink.objects == {}
    assert sink.aborted == ["bundle-1.tar.gz"]
    failed = run.with_status(OutcomeStatus.FAILED_RETRYABLE)
    assert all(o.error is not None and o.error.error_code == "BUNDLE_UPLOAD_FAILED" for o in failed)


def test_rollover_commit_failure_stops_the_run() -> None:
    """When closing a full bundle fails, its objects fail and the rest are not attempted."""
    source, sources = _setup(30, 1000)
    sink = MemorySink(fail_commit=True)
    run, _ = _run(source, sources, sink=sink, max_bundle_size_bytes=15_000)
    counts = run.counts()
    assert counts[OutcomeStatus.BUNDLED] == 0
    assert counts[OutcomeStatus.NOT_ATTEMPTED] > 0
    assert counts[OutcomeStatus.FAILED_RETRYABLE] + counts[OutcomeStatus.NOT_ATTEMPTED] == 30


def test_interrupt_aborts_the_open_upload() -> None:
    """An exception escaping the run (a bug, Ctrl-C) aborts the open upload first."""
    source, sources = _setup(10)
    sink = MemorySink()
    calls = iter([True, True, True])

    def guard() -> bool:
        try:
            return next(calls)
        except StopIteration:
            raise KeyboardInterrupt from None

    with pytest.raises(KeyboardInterrupt):
        BundleEngine(source, sink).run(sources, should_continue=guard)
    assert len(sink.aborted) == 1
    assert sink.objects == {}


def test_settings_are_validated() -> None:
    """Bad codecs, levels and limits are configuration errors naming the setting."""
    source, _ = _setup(0)
    with pytest.raises(ConfigurationError):
        BundleEngine(source, MemorySink(), codec="brotli")
    with pytest.raises(ConfigurationError):
        BundleEngine(source, MemorySink(), codec="gzip", compression_level=12)
    with pytest.raises(ConfigurationError):
        BundleEngine(source, MemorySink(), codec="none", compression_level=3)
    with pytest.raises(ConfigurationError):
        BundleEngine(source, MemorySink(), fetch_concurrency=0)
    with pytest.raises(ValidationError):
        BundleSource("b", "k", -1)


def test_missing_zstandard_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without the zstandard package, choosing zstd says which extra to install."""
    import importlib

    real = importlib.import_module

    def fake(name: str, package: str | None = None) -> Any:
        if name == "zstandard":
            raise ImportError(name)
        return real(name, package)

    monkeypatch.setattr(importlib, "import_module", fake)
    with pytest.raises(ConfigurationError, match=r"s3-data-aggregator\[zstd\]"):
        resolve_codec("zstd")


def test_default_bundle_keys() -> None:
    """Default keys follow ``<prefix>YYYY/MM/DD/HH/bundle-<request id>-<n><ext>``."""
    keys = make_bundle_key_factory(
        extension=".tar.zst", prefix="out", request_id="req-1", now=FIXED_TIME
    )
    assert keys(1) == "out/2024/05/01/12/bundle-req-1-1.tar.zst"
    assert keys(2).endswith("-2.tar.zst")


@pytest.mark.parametrize("prefix", ["/out", "a//b", "x/./y"])
def test_the_key_factory_keeps_taking_any_prefix(prefix: str) -> None:
    """The public factory is not held to ``BUNDLE_PREFIX``'s rule (which refuses these):
    it has always taken any prefix, and only adds the trailing ``/``."""
    keys = make_bundle_key_factory(extension=".tar", prefix=prefix, request_id="r", now=FIXED_TIME)
    assert keys(1) == f"{prefix}/2024/05/01/12/bundle-r-1.tar"


def test_from_config_reads_app_config() -> None:
    """``from_config`` takes codec, level, concurrency and limits from ``AppConfig``."""
    config = AppConfig.from_env(
        {
            "DISTRIBUTION_BUCKET_NAME": "dest-bucket",
            "BUNDLE_CODEC": "gzip",
            "COMPRESSION_LEVEL": "9",
            "FETCH_CONCURRENCY": "7",
            "MAX_BUNDLE_SIZE_MB": "3",
        }
    )
    engine = BundleEngine.from_config(config, MemorySource(), MemorySink())
    assert (engine.codec.codec.value, engine.codec.level) == ("gzip", 9)
    assert engine.fetch_concurrency == 7
    assert engine.max_bundle_size_bytes == 3 * MIB
    assert engine.extension == ".tar.gz"


def test_multipart_sink_from_config_passes_the_writer_knobs() -> None:
    """``MultipartSink.from_config`` sends bundles to the distribution bucket, and gives
    each writer the configured part size, upload concurrency and spool size."""
    config = AppConfig.from_env(
        {
            "DISTRIBUTION_BUCKET_NAME": "dest-bucket",
            "MULTIPART_PART_SIZE_MB": "8",
            "UPLOAD_CONCURRENCY": "6",
            "SPOOL_FILE_MAX_SIZE_MB": "3",
        }
    )
    s3 = FakeS3Client()
    sink = MultipartSink.from_config(config, s3)
    assert (sink.s3, sink.bucket) == (s3, "dest-bucket")
    assert sink.writer_options == {
        "part_size": 8 * MIB,
        "max_concurrency": 6,
        "spool_max_size": 3 * MIB,
    }


def test_verify_bundle_rejects_tampering() -> None:
    """A bundle whose member bytes differ from the manifest fails verification."""
    source, sources = _setup(2)
    _, sink = _run(source, sources, codec="none")
    data = bytearray(sink.objects["bundle-1.tar.gz"])
    data[512] ^= 0xFF  # first byte of the first member's data
    with pytest.raises(BundleError) as raised:
        verify_bundle(io.BytesIO(bytes(data)))
    assert raised.value.error_code == "BUNDLE_INVALID"


@pytest.mark.parametrize("stop_after", [None, 2])
def test_objects_near_the_budget_neither_deadlock_nor_leak(stop_after: int | None) -> None:
    """Objects that only fit the budget one or two at a time are fetched progressively;
    the run finishes (or stops cleanly) without hanging."""
    source = MemorySource()
    sizes = [90_000, 60_000, 100_000, 10_000, 100_000, 55_000, 45_000, 100_000]
    sources = []
    for i, size in enumerate(sizes):
        source.put("b", f"k{i}", bytes([i]) * size)
        sources.append(BundleSource("b", f"k{i}", size))
    calls = 0

    def guard() -> bool:
        nonlocal calls
        calls += 1
        return stop_after is None or calls <= stop_after

    outcome: list[BundleRun] = []
    engine = BundleEngine(
        source, MemorySink(), in_flight_bytes=100_000, chunk_size=8192, fetch_concurrency=4
    )
    worker = threading.Thread(
        target=lambda: outcome.append(engine.run(sources, should_continue=guard))
    )
    worker.start()
    worker.join(timeout=20)
    assert not worker.is_alive()
    bundled = outcome[0].counts()[OutcomeStatus.BUNDLED]
    assert bundled == (len(sizes) if stop_after is None else stop_after)


def test_before_commit_sees_each_bundle_before_it_is_stored() -> None:
    """The hook gets every bundle's key and member tokens, in order, before the commit."""
    source, sources = _setup(30, 1000)
    sink = MemorySink()
    seen: list[tuple[str, list[object], bool]] = []

    def hook(key: str, tokens: Sequence[object]) -> None:
        seen.append((key, list(tokens), key in sink.objects))

    engine = BundleEngine(source, sink, max_bundle_size_bytes=15_000)
    run = engine.run(sources, bundle_key=KEY.format, before_commit=hook)
    assert [key for key, _, _ in seen] == [summary.key for summary in run.bundles]
    assert [token for _, tokens, _ in seen for token in tokens] == list(range(30))
    assert not any(stored for _, _, stored in seen)


def test_before_commit_failure_aborts_the_bundle() -> None:
    """A hook that raises aborts the upload: its objects fail, the run stops."""
    source, sources = _setup(5)
    sink = MemorySink()

    def hook(key: str, tokens: Sequence[object]) -> None:
        raise BundleError("store said no", "PENDING_MARK_FAILED")

    run = BundleEngine(source, sink).run(sources, bundle_key=KEY.format, before_commit=hook)
    assert _statuses(run) == [OutcomeStatus.FAILED_RETRYABLE] * 5
    assert run.stop_reason is StopReason.UPLOAD_FAILED
    error = run.outcomes[0].error
    assert error is not None
    assert error.error_code == "BUNDLE_COMMIT_HOOK_FAILED"
    assert error.context["cause_code"] == "PENDING_MARK_FAILED"
    assert sink.objects == {}
    assert sink.aborted == ["bundle-1.tar.gz"]


@pytest.mark.parametrize("streamed", [False, True], ids=["prefetched", "streamed"])
def test_bundle_key_failure_stops_the_run_and_keeps_earlier_bundles(streamed: bool) -> None:
    """bundle_key raising for bundle 2: bundle 1 stays, bundle 2 is never opened, and the
    object that would have opened it and every later one are not attempted."""
    source, sources = _setup(30, 1000)
    sink = MemorySink()

    def bundle_key(number: int) -> str:
        if number == 2:
            raise RuntimeError("no key for bundle 2")
        return KEY.format(number)

    limits: dict[str, Any] = {"max_bundle_size_bytes": 15_000}
    if streamed:
        limits["in_flight_bytes"] = 500  # every 1000-byte body streams into the tar
    engine = BundleEngine(source, sink, **limits)
    run = engine.run(sources, bundle_key=bundle_key)
    assert run.stop_reason is StopReason.BUNDLE_KEY_FAILED
    assert [summary.key for summary in run.bundles] == ["bundle-1.tar.gz"]
    assert list(sink.objects) == ["bundle-1.tar.gz"]
    assert sink.aborted == []
    kept = run.bundles[0].member_count
    assert 0 < kept < 30
    assert _statuses(run) == [OutcomeStatus.BUNDLED] * kept + [OutcomeStatus.NOT_ATTEMPTED] * (
        30 - kept
    )
    assert all(outcome.error is None for outcome in run.outcomes)
