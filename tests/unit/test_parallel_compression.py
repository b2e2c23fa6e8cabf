"""Parallel compression: multi-member gzip and multi-frame zstd bundles, read as one stream.

No wall-clock assertions: what is checked is the bytes (readable by ``tar``, ``gzip``,
Python and `verify_bundle`; identical to one compressor's when they should be) and the
bound on blocks in flight.
"""

from __future__ import annotations

import gzip
import hashlib
import importlib.util
import io
import itertools
import random
import shutil
import subprocess
import sys
import tarfile
import threading
import time
import zlib
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from data_aggregator._sizes import MAX_COMPRESSION_THREADS
from data_aggregator.bundle import BundleEngine, BundleSource, OutcomeStatus, _codecs, verify_bundle
from data_aggregator.bundle._codecs import (
    BlockCompressor,
    _cgroup_cpus,
    available_cpus,
    new_compressor,
    open_decompressed,
    resolve_codec,
)
from data_aggregator.clients import MIB
from data_aggregator.config import AppConfig, Codec
from data_aggregator.exceptions import ConfigurationError
from tests.bundle_fakes import FIXED_TIME, MemorySink, MemorySource

if TYPE_CHECKING:
    from pathlib import Path

HAS_ZSTD = importlib.util.find_spec("zstandard") is not None


def _importable(name: str) -> bool:
    try:
        importlib.import_module(name)
    except ImportError:
        return False
    return True


HAS_ZLIB_NG = _importable("zlib_ng.zlib_ng")
GZIP_LIBRARIES = [
    "zlib",
    pytest.param(
        "zlib-ng", marks=pytest.mark.skipif(not HAS_ZLIB_NG, reason="zlib-ng is not installed")
    ),
]
CODECS = [
    "gzip",
    pytest.param(
        "zstd", marks=pytest.mark.skipif(not HAS_ZSTD, reason="zstandard is not installed")
    ),
]
#: Small blocks so that a few hundred KiB make many members.
SMALL = {"block_size": 16 * 1024, "parallel_after": 40 * 1024}


def _semi_compressible(seed: int, size: int) -> bytes:
    """Random words: compressible, but not trivially."""
    rng = random.Random(seed)
    words = [rng.randbytes(rng.randint(2, 9)).hex().encode() for _ in range(300)]
    out = bytearray()
    while len(out) < size:
        out += rng.choice(words) + b" "
    return bytes(out[:size])


def _objects(count: int, size: int) -> tuple[MemorySource, list[BundleSource]]:
    source = MemorySource()
    sources = []
    for i in range(count):
        data = _semi_compressible(i, size + i * 997)
        etag = source.put("b", f"dir/obj-{i:03d}.log", data)
        sources.append(BundleSource("b", f"dir/obj-{i:03d}.log", len(data), etag=etag, token=i))
    return source, sources


def _engine(source: MemorySource, sink: MemorySink, codec: str, threads: int, **spec: Any) -> Any:
    engine = BundleEngine(
        source, sink, codec=codec, compression_threads=threads, clock=FIXED_TIME.timestamp
    )
    engine.codec = replace(engine.codec, **spec)
    return engine


def _bundle(codec: str, threads: int, count: int = 12, size: int = 40_000, **spec: Any) -> bytes:
    source, sources = _objects(count, size)
    sink = MemorySink()
    run = _engine(source, sink, codec, threads, **spec).run(
        sources, bundle_key=lambda n: f"bundle-{n}"
    )
    assert run.counts()[OutcomeStatus.BUNDLED] == count
    assert len(run.bundles) == 1
    data = sink.objects["bundle-1"]
    receipt = run.bundles[0].receipt
    assert (receipt.size, receipt.sha256) == (len(data), hashlib.sha256(data).hexdigest())
    return data


def _gzip_members(data: bytes) -> int:
    """How many gzip members ``data`` holds (each decoded on its own)."""
    count = 0
    while data:
        member = zlib.decompressobj(31)
        member.decompress(data)
        assert member.eof
        data = member.unused_data
        count += 1
    return count


def _zstd_frames(data: bytes) -> int:
    import zstandard

    count = 0
    while data:
        frame = zstandard.ZstdDecompressor().decompressobj()
        frame.decompress(data)
        data = frame.unused_data
        count += 1
    return count


def _tar_bytes(data: bytes, codec: str) -> bytes:
    return open_decompressed(io.BytesIO(data), codec).read()


# --------------------------------------------------------------------------- the engine


@pytest.mark.parametrize("codec", CODECS)
def test_round_trip_through_the_engine(codec: str) -> None:
    """A parallel bundle has many members or frames, passes `verify_bundle`, and extracts
    with Python's tarfile to the source bytes."""
    source, sources = _objects(12, 40_000)
    data = _bundle(codec, threads=3, **SMALL)
    members = _gzip_members(data) if codec == "gzip" else _zstd_frames(data)
    assert members > 10
    manifest = verify_bundle(io.BytesIO(data))
    assert [m.key for m in manifest.members] == [s.key for s in sources]
    with tarfile.open(fileobj=io.BytesIO(_tar_bytes(data, codec)), mode="r:") as archive:
        for member, src in zip(manifest.members, sources, strict=True):
            handle = archive.extractfile(member.name)
            assert handle is not None
            assert handle.read() == source.objects[(src.bucket, src.key, None)]


def test_python_gzip_and_tarfile_read_a_multi_member_bundle() -> None:
    """``gzip.decompress`` and ``tarfile.open(mode="r:gz")`` read every member as one file."""
    data = _bundle("gzip", threads=2, **SMALL)
    assert _gzip_members(data) > 10
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as archive:
        names = archive.getnames()
    assert names[-1] == "manifest.json"
    assert len(names) == 13
    assert gzip.decompress(data) == _tar_bytes(data, "gzip")


@pytest.mark.skipif(shutil.which("tar") is None, reason="no tar")
@pytest.mark.skipif(shutil.which("gzip") is None, reason="no gzip")
def test_real_tar_and_gzip_read_a_multi_member_bundle(tmp_path: Path) -> None:
    """``gzip -t`` passes and GNU ``tar xzf`` extracts every member byte for byte."""
    source, sources = _objects(12, 40_000)
    data = _bundle("gzip", threads=2, **SMALL)
    path = tmp_path / "bundle.tar.gz"
    path.write_bytes(data)
    subprocess.run(["gzip", "-t", str(path)], check=True)  # noqa: S603, S607 - the real tool
    out = tmp_path / "out"
    out.mkdir()
    subprocess.run(["tar", "xzf", str(path), "-C", str(out)], check=True)  # noqa: S603, S607
    manifest = verify_bundle(io.BytesIO(data))
    for member, src in zip(manifest.members, sources, strict=True):
        assert (out / member.name).read_bytes() == source.objects[(src.bucket, src.key, None)]
    assert (out / "manifest.json").is_file()


@pytest.mark.skipif(not HAS_ZSTD or shutil.which("zstd") is None, reason="no zstd")
def test_real_zstd_reads_a_multi_frame_bundle(tmp_path: Path) -> None:
    """``zstd -t`` passes, ``zstd -dc`` gives the whole tar stream and ``tar --zstd``
    extracts every member."""
    data = _bundle("zstd", threads=2, **SMALL)
    path = tmp_path / "bundle.tar.zst"
    path.write_bytes(data)
    subprocess.run(["zstd", "-q", "-t", str(path)], check=True)  # noqa: S603, S607
    done = subprocess.run(  # noqa: S603 - the real tool
        ["zstd", "-q", "-dc", str(path)],  # noqa: S607
        check=True,
        capture_output=True,
    )
    assert done.stdout == _tar_bytes(data, "zstd")
    out = tmp_path / "out"
    out.mkdir()
    subprocess.run(["tar", "--zstd", "-xf", str(path), "-C", str(out)], check=True)  # noqa: S603, S607
    assert len(list(out.rglob("*.log"))) == 12


@pytest.mark.parametrize("codec", CODECS)
def test_one_thread_is_one_stream(codec: str) -> None:
    """One thread writes one member (frame), byte for byte what one compressor writes
    over the whole tar stream in one call, as before parallel compression existed."""
    data = _bundle(codec, threads=1, **SMALL)
    tar = _tar_bytes(data, codec)
    if codec == "gzip":
        one = _codecs.new_compressor(resolve_codec("gzip"))  # zlib, or zlib-ng if installed
        assert data == one.compress(tar) + one.flush()
        assert _gzip_members(data) == 1
    else:
        import zstandard

        one_frame = zstandard.ZstdCompressor(level=3, write_checksum=True).compressobj()
        assert data == one_frame.compress(tar) + one_frame.flush()
        assert _zstd_frames(data) == 1


@pytest.mark.parametrize("codec", CODECS)
def test_a_bundle_under_the_switch_point_is_unchanged(codec: str) -> None:
    """With the default switch point (4 MiB), a small bundle on four threads is byte for
    byte the one-thread bundle."""
    assert _bundle(codec, threads=4) == _bundle(codec, threads=1)


def test_one_thread_past_the_switch_point_is_unchanged() -> None:
    """One thread never switches, however big the bundle."""
    data = _bundle("gzip", threads=1, count=3, size=2 * MIB, parallel_after=0)
    assert _gzip_members(data) == 1
    parallel = _bundle("gzip", threads=2, count=3, size=2 * MIB)
    assert _gzip_members(parallel) > 1
    assert _tar_bytes(parallel, "gzip") == _tar_bytes(data, "gzip")


class _Recording(BlockCompressor):
    made: list[_Recording]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.closed = False
        type(self).made.append(self)

    def close(self) -> None:
        self.closed = True
        super().close()


@pytest.fixture
def recording(monkeypatch: pytest.MonkeyPatch) -> list[_Recording]:
    made: list[_Recording] = []
    monkeypatch.setattr(_Recording, "made", made, raising=False)
    monkeypatch.setattr(_codecs, "BlockCompressor", _Recording)
    return made


@pytest.mark.parametrize("threads", [2, 3, 5])
def test_engine_keeps_blocks_in_flight_bounded(threads: int, recording: list[_Recording]) -> None:
    """The engine's compressor never has more than ``threads + 1`` blocks in flight."""
    _bundle("gzip", threads=threads, count=6, size=200_000, block_size=8 * 1024, parallel_after=0)
    (compressor,) = recording
    assert compressor.blocks > 100
    assert 1 <= compressor.peak_in_flight <= threads + 1
    assert compressor.closed  # flush released the pool


def test_a_failing_sink_aborts_and_releases_the_pool(recording: list[_Recording]) -> None:
    """A sink failure in the parallel phase aborts the upload and closes the compressor."""
    source, sources = _objects(12, 40_000)
    sink = MemorySink(fail_after_bytes=60_000)
    run = _engine(source, sink, "gzip", 2, **SMALL).run(sources, bundle_key=lambda n: f"b-{n}")
    assert sink.aborted == ["b-1"]
    assert not run.bundles
    (compressor,) = recording
    assert compressor.parallel
    assert compressor.closed


# --------------------------------------------------------------------------- the compressor


def test_blocks_in_flight_never_pass_threads_plus_one() -> None:
    """Counted from outside: blocks started by a worker minus blocks whose output the
    caller has received never pass ``threads + 1``; with slow workers the bound is
    reached."""
    threads = 3
    lock = threading.Lock()
    started = 0

    def slow_block(block: bytes) -> bytes:
        nonlocal started
        with lock:
            started += 1
        time.sleep(0.002)  # slow workers, so the writer has to wait for them
        return block[:1]  # one byte per block: the caller counts blocks returned

    compressor = BlockCompressor(
        _codecs._Identity(), slow_block, threads=threads, block_size=10, parallel_after=0
    )
    compressor.compress(b"")  # switches to blocks
    returned = 0
    worst = 0
    for _ in range(60):
        returned += len(compressor.compress(b"x" * 25))
        with lock:
            worst = max(worst, started - returned)
    returned += len(compressor.flush())
    assert returned == compressor.blocks == 150
    assert worst <= threads + 1
    assert compressor.peak_in_flight == threads + 1


def test_a_failing_block_surfaces_from_compress() -> None:
    """A block that raises makes ``compress`` (or ``flush``) raise the same error."""

    def broken(block: bytes) -> bytes:
        raise MemoryError(len(block))

    compressor = BlockCompressor(
        _codecs._Identity(), broken, threads=2, block_size=4, parallel_after=0
    )
    compressor.compress(b"")

    def feed() -> None:
        for _ in range(10):
            compressor.compress(b"abcdefgh")
        compressor.flush()

    with pytest.raises(MemoryError):
        feed()
    compressor.close()
    compressor.close()  # idempotent


def test_compressor_rejects_bad_settings() -> None:
    with pytest.raises(ValueError, match="threads"):
        BlockCompressor(_codecs._Identity(), bytes, threads=0)


@settings(max_examples=60, deadline=None)
@given(
    codec=st.sampled_from(["gzip", "zstd"] if HAS_ZSTD else ["gzip"]),
    data=st.binary(max_size=6000),
    cuts=st.lists(st.integers(0, 6000), max_size=12),
    threads=st.integers(1, 4),
    block_size=st.integers(1, 700),
    parallel_after=st.integers(0, 2000),
)
def test_round_trip_for_any_split(
    *,
    codec: str,
    data: bytes,
    cuts: list[int],
    threads: int,
    block_size: int,
    parallel_after: int,
) -> None:
    """However the stream is cut into ``compress`` calls, and whatever the block size and
    switch point, decompressing gives the input back; with blocks, the bytes are those of
    one call on any number of threads (blocks start at fixed offsets)."""

    def compress(pieces: list[bytes], thread_count: int) -> bytes:
        spec = replace(
            resolve_codec(codec, threads=thread_count),
            block_size=block_size,
            parallel_after=parallel_after,
        )
        compressor = new_compressor(spec)
        out = b"".join(compressor.compress(piece) for piece in pieces)
        return out + compressor.flush()

    bounds = [0, *sorted(cut for cut in cuts if cut <= len(data)), len(data)]
    out = compress([data[a:b] for a, b in itertools.pairwise(bounds)], threads)
    assert open_decompressed(io.BytesIO(out), codec).read() == data
    if threads >= 2:
        assert out == compress([data], 2)
    if codec == "gzip" and data:
        assert gzip.decompress(bytes(out)) == data


# --------------------------------------------------------------------------- gzip library


@pytest.mark.parametrize("library", GZIP_LIBRARIES)
def test_each_gzip_library_writes_standard_gzip(library: str) -> None:
    """One stream is byte for byte that library's compressor over the whole tar; blocks on
    two threads are members of one gzip file that Python's gzip reads as the same tar."""
    spec = resolve_codec("gzip", gzip_library=library)
    one = _bundle("gzip", threads=1, gzip_library=library)
    tar = _tar_bytes(one, "gzip")
    stream = _codecs.new_compressor(spec)  # the tar in one call: the same bytes
    assert one == stream.compress(tar) + stream.flush()
    assert gzip.decompress(one) == tar
    parallel = _bundle("gzip", threads=2, gzip_library=library, **SMALL)
    assert _gzip_members(parallel) > 1
    assert gzip.decompress(parallel) == tar


@given(
    library=st.sampled_from(["zlib", "zlib-ng"] if HAS_ZLIB_NG else ["zlib"]),
    data=st.binary(max_size=5000),
    cuts=st.lists(st.integers(0, 5000), max_size=12),
    piece=st.integers(1, 700),
)
def test_rechunked_output_depends_on_the_bytes_only(
    library: str, data: bytes, cuts: list[int], piece: int
) -> None:
    """However the stream is cut, the compressor sees the same pieces: same bytes out."""

    def compress(pieces: list[bytes]) -> bytes:
        deflate = _codecs._deflate(library)  # type: ignore[arg-type]
        stream = _codecs._Rechunked(deflate.compressobj(6, deflate.DEFLATED, 31), piece)
        return b"".join(stream.compress(p) for p in pieces) + stream.flush()

    bounds = [0, *sorted(cut for cut in cuts if cut <= len(data)), len(data)]
    out = compress([data[a:b] for a, b in itertools.pairwise(bounds)])
    assert out == compress([data])
    assert gzip.decompress(out) == data


def test_gzip_library_is_zlib_ng_when_installed(monkeypatch: pytest.MonkeyPatch) -> None:
    """Unset, the library is zlib-ng exactly when that package can be imported."""
    expected = "zlib-ng" if HAS_ZLIB_NG else "zlib"
    assert resolve_codec("gzip").gzip_library == expected
    monkeypatch.setitem(sys.modules, "zlib_ng", None)  # as if not installed
    monkeypatch.setitem(sys.modules, "zlib_ng.zlib_ng", None)
    assert resolve_codec("gzip").gzip_library == "zlib"
    assert resolve_codec("gzip", gzip_library="zlib").gzip_library == "zlib"
    with pytest.raises(ConfigurationError) as raised:
        resolve_codec("gzip", gzip_library="zlib-ng")
    assert raised.value.error_code == "ZLIB_NG_NOT_INSTALLED"
    assert "pip install zlib-ng" in str(raised.value)


def test_a_zlib_ng_package_without_a_module_for_this_platform_falls_back_to_zlib(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A Lambda package built for another CPU or Python holds zlib-ng's Python files and a
    compiled module this interpreter does not load: unset, gzip is written by Python's
    zlib (not refused at every bundle with ``ZLIB_NG_NOT_INSTALLED``); asked for by
    name, zlib-ng is still refused at configuration time."""
    package = tmp_path / "zlib_ng"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "zlib_ng.cpython-39-sparc-linux-gnu.so").write_bytes(b"")  # not for us
    monkeypatch.syspath_prepend(str(tmp_path))
    for name in [n for n in sys.modules if n == "zlib_ng" or n.startswith("zlib_ng.")]:
        monkeypatch.delitem(sys.modules, name)
    try:
        source = MemorySource()
        etag = source.put("s", "a.log", b"x\n")
        engine = BundleEngine(source, MemorySink(), clock=FIXED_TIME.timestamp)
        run = engine.run([BundleSource("s", "a.log", 2, etag=etag, token=0)])
        assert engine.codec.gzip_library == "zlib"
        assert [outcome.status for outcome in run.outcomes] == [OutcomeStatus.BUNDLED]
        with pytest.raises(ConfigurationError) as raised:
            resolve_codec("gzip", gzip_library="zlib-ng")
        assert raised.value.error_code == "ZLIB_NG_NOT_INSTALLED"
    finally:  # the fake package must not outlive the test
        for name in [n for n in sys.modules if n == "zlib_ng" or n.startswith("zlib_ng.")]:
            del sys.modules[name]


def test_an_unknown_gzip_library_is_refused() -> None:
    with pytest.raises(ConfigurationError) as raised:
        resolve_codec("gzip", gzip_library="isal")
    assert raised.value.error_code == "INVALID_CODEC"


# --------------------------------------------------------------------------- threads


def test_threads_default_to_the_available_cpus() -> None:
    assert resolve_codec("gzip", threads=None).threads == available_cpus()
    assert resolve_codec("gzip").threads == 1
    assert resolve_codec("none", threads=8).threads == 1
    with pytest.raises(ConfigurationError) as raised:
        resolve_codec("gzip", threads=0)
    assert raised.value.error_code == "INVALID_COMPRESSION_THREADS"


def test_engine_threads_from_config() -> None:
    """``COMPRESSION_THREADS`` reaches the engine; unset means the available CPUs."""
    source, sink = MemorySource(), MemorySink()
    config = AppConfig.from_env({"DISTRIBUTION_BUCKET_NAME": "dest", "COMPRESSION_THREADS": "3"})
    assert BundleEngine.from_config(config, source, sink).codec.threads == 3
    default = AppConfig(distribution_bucket_name="dest")
    assert default.compression_threads is None
    assert BundleEngine.from_config(default, source, sink).codec.threads == available_cpus()
    assert BundleEngine(source, sink, codec=Codec.GZIP).codec.threads == available_cpus()


def test_available_cpus_takes_the_smaller_of_count_and_quota() -> None:
    assert available_cpus(lambda: None) >= 1
    assert available_cpus(lambda: 1) == 1
    assert available_cpus(lambda: 10_000) == available_cpus(lambda: None)


@pytest.mark.parametrize(
    ("cpu_max", "expected"),
    [
        ("max 100000\n", None),
        ("200000 100000\n", 2),
        ("150000 100000\n", 2),
        ("50000 100000\n", 1),
        ("600000 100000", 6),
        ("0 100000", None),
        ("garbage", None),
        ("", None),
    ],
)
def test_cgroup_v2_quota(tmp_path: Path, cpu_max: str, expected: int | None) -> None:
    path = tmp_path / "cpu.max"
    path.write_text(cpu_max)
    missing = tmp_path / "absent"
    assert _cgroup_cpus(path, missing, missing) == expected


@pytest.mark.parametrize(
    ("quota", "expected"), [("-1", None), ("300000", 3), ("x", None), (None, None)]
)
def test_cgroup_v1_quota(tmp_path: Path, quota: str | None, expected: int | None) -> None:
    """Without cgroup v2's ``cpu.max``, v1's quota and period; nothing at all is no limit."""
    quota_path, period_path = tmp_path / "quota", tmp_path / "period"
    if quota is not None:
        quota_path.write_text(f"{quota}\n")
        period_path.write_text("100000\n")
    assert _cgroup_cpus(tmp_path / "absent", quota_path, period_path) == expected


def test_the_automatic_thread_count_is_capped(monkeypatch: pytest.MonkeyPatch) -> None:
    """A large host does not multiply the memory: the automatic count stops at the cap."""
    monkeypatch.setattr(_codecs, "available_cpus", lambda: 96)
    assert resolve_codec("gzip", threads=None).threads == _codecs.MAX_AUTO_COMPRESSION_THREADS
    with pytest.raises(ConfigurationError, match="1-64"):
        resolve_codec("gzip", threads=MAX_COMPRESSION_THREADS + 1)
