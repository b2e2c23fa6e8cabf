"""Compression codecs for bundle tar streams: gzip, zstd (optional extra) and none.

Private: `data_aggregator.bundle` is the public face. A codec is resolved once into a
`CodecSpec` (name, level, threads, file extension, content type); each bundle then gets a
fresh incremental compressor from `new_compressor`, and `open_decompressed`
reads a bundle back (used by the bundle reader, `data_aggregator.bundle._reader`).

With more than one thread, a bundle starts as one ordinary compressed stream and, once
`PARALLEL_AFTER` bytes of tar have gone in, ends that stream and compresses the rest in
independent blocks of `BLOCK_SIZE` bytes on a thread pool (zlib and zstd release the GIL),
written in order: a multi-member gzip file, or a multi-frame zstd file, which every reader
reads as one stream (`BlockCompressor`). A bundle smaller than `PARALLEL_AFTER`, and every
bundle with one thread, is byte for byte what a single compressor writes.

``zstandard`` is imported lazily, so the zstd extra costs nothing unless it is used, and a
missing package is reported as a `ConfigurationError` that names the extra.

gzip is written with ``zlib-ng`` (a dependency: a faster implementation of the same
deflate format, about twice the throughput per core at the same level) when its compiled
module for this Python and platform is installed, else with Python's ``zlib``;
`CodecSpec.gzip_library` says which.
Both write standard gzip; the bytes differ between the two, never between runs of one.
"""

from __future__ import annotations

import gzip
import importlib
import importlib.util
import io
import logging
import math
import os
import threading
import zlib
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Literal, Protocol, cast

from data_aggregator._sizes import MAX_COMPRESSION_THREADS, MIB
from data_aggregator.config import Codec
from data_aggregator.exceptions import ConfigurationError, ErrorCode

if TYPE_CHECKING:
    from collections.abc import Callable
    from concurrent.futures import Future
    from types import ModuleType

__all__ = [
    "BLOCK_SIZE",
    "PARALLEL_AFTER",
    "BlockCompressor",
    "CodecSpec",
    "Compressor",
    "GzipLibrary",
    "available_cpus",
    "detect_codec",
    "new_compressor",
    "open_decompressed",
    "resolve_codec",
]

logger = logging.getLogger("data_aggregator.bundle")

#: Uncompressed bytes per independent block once a bundle compresses in parallel. Measured
#: (docs/performance.md): gzip-6 throughput is flat from 512 KiB to 4 MiB blocks and zstd-3
#: is fastest at 0.5-1 MiB; 1 MiB blocks cost gzip 0.3 % of size on log text (2 MiB: 0.15 %)
#: and keep memory at (threads + 2) MiB of input.
BLOCK_SIZE = MIB
#: Tar bytes a bundle writes as one ordinary stream before it switches to blocks: below
#: about 4 MiB, blocks on two threads were no faster than one stream (gzip-6, 2 cores), and
#: a bundle that never switches is byte for byte what one compressor writes.
PARALLEL_AFTER = 4 * MIB
#: The most threads the automatic count picks (Lambda offers up to 6 vCPUs): memory is
#: about (threads + 2) MiB of input plus the compressed blocks, so a large host outside
#: Lambda does not multiply it; set ``COMPRESSION_THREADS`` to go beyond.
MAX_AUTO_COMPRESSION_THREADS = 8
_CGROUP_V2_CPU_MAX = Path("/sys/fs/cgroup/cpu.max")
_CGROUP_V1_QUOTA = Path("/sys/fs/cgroup/cpu/cpu.cfs_quota_us")
_CGROUP_V1_PERIOD = Path("/sys/fs/cgroup/cpu/cpu.cfs_period_us")

_EXTENSIONS = {Codec.GZIP: ".tar.gz", Codec.ZSTD: ".tar.zst", Codec.NONE: ".tar"}
_CONTENT_TYPES = {
    Codec.GZIP: "application/gzip",
    Codec.ZSTD: "application/zstd",
    Codec.NONE: "application/x-tar",
}
_GZIP_MAGIC = b"\x1f\x8b"
_ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
# zlib's window bits for a gzip container (16 + 15). zlib writes a fixed header: no file
# name and mtime 0, so the same tar stream always compresses to the same bytes.
_GZIP_WBITS = 31

#: The deflate implementation gzip bundles are written with: Python's ``zlib``, or
#: ``zlib-ng`` (a dependency), which `resolve_codec` picks when its compiled module is
#: installed.
GzipLibrary = Literal["zlib", "zlib-ng"]
_GZIP_LIBRARIES: tuple[GzipLibrary, ...] = ("zlib", "zlib-ng")
#: The size of the pieces `_Rechunked` hands zlib-ng.
_RECHUNK = 256 * 1024


class Compressor(Protocol):
    """An incremental compressor: ``compress`` pieces, then ``flush`` once at the end."""

    def compress(self, data: bytes, /) -> bytes: ...

    def flush(self) -> bytes: ...


class _Rechunked:
    """Feeds a compressor the stream cut at fixed offsets: pieces of exactly `_RECHUNK`
    bytes, then the tail at the end.

    zlib-ng, unlike zlib, writes different (equally valid) bytes for the same stream cut
    differently (tar headers, padding, network chunks); cut at fixed offsets, its output
    depends on the bytes alone, so the same input still gives the same bundle.
    """

    def __init__(self, inner: Compressor, piece: int = 0) -> None:
        self._inner = inner
        self._piece = piece or _RECHUNK
        self._pending = bytearray()

    def compress(self, data: bytes, /) -> bytes:
        self._pending += data
        piece = self._piece
        whole = len(self._pending) - len(self._pending) % piece
        if not whole:
            return b""
        with memoryview(self._pending) as view:
            out = b"".join(
                self._inner.compress(view[start : start + piece])  # type: ignore[arg-type]
                for start in range(0, whole, piece)
            )
        del self._pending[:whole]
        return out

    def flush(self) -> bytes:
        tail = self._inner.compress(bytes(self._pending)) if self._pending else b""
        self._pending.clear()
        return tail + self._inner.flush()


class _Identity:
    """The ``none`` codec: bytes pass through unchanged."""

    def compress(self, data: bytes, /) -> bytes:
        return data

    def flush(self) -> bytes:
        return b""


@dataclass(frozen=True, slots=True)
class CodecSpec:
    """A resolved codec: which one, at which level, and how its bundles are named and typed.

    Attributes:
        threads: Compression threads of one bundle (1: one ordinary stream, as always).
        block_size: Uncompressed bytes per independent block when compressing in parallel.
        parallel_after: Tar bytes written as one ordinary stream before switching to
            blocks (bundles smaller than this are never split).
        gzip_library: The deflate implementation of the gzip codec (ignored by the others).
    """

    codec: Codec
    level: int | None
    extension: str
    content_type: str
    threads: int = 1
    block_size: int = BLOCK_SIZE
    parallel_after: int = PARALLEL_AFTER
    gzip_library: GzipLibrary = "zlib"


def _cgroup_cpus(
    cpu_max: Path = _CGROUP_V2_CPU_MAX,
    v1_quota: Path = _CGROUP_V1_QUOTA,
    v1_period: Path = _CGROUP_V1_PERIOD,
) -> int | None:
    """The cgroup's CPU quota in whole CPUs (rounded up), or ``None`` when unlimited or
    unknown. cgroup v2 first (``cpu.max``: ``"<quota> <period>"`` or ``"max <period>"``),
    then v1 (``cpu.cfs_quota_us``, ``-1`` for no limit)."""
    try:
        fields = cpu_max.read_text(encoding="ascii").split()
    except (OSError, ValueError):
        try:
            fields = [
                v1_quota.read_text(encoding="ascii").strip(),
                v1_period.read_text(encoding="ascii").strip(),
            ]
        except (OSError, ValueError):
            return None
    try:
        quota, period = int(fields[0]), int(fields[1])
    except (IndexError, ValueError):  # "max", garbage, a short file
        return None
    if quota <= 0 or period <= 0:
        return None
    return max(1, math.ceil(quota / period))


def available_cpus(cgroup: Callable[[], int | None] = _cgroup_cpus) -> int:
    """CPUs this process may use: the CPUs it may run on (``os.cpu_count()`` where the
    affinity mask is unknown), or the cgroup's CPU quota if smaller; at least 1.

    A fractional quota rounds up (1.5 CPUs: 2 threads keep the quota busy).
    """
    try:
        count = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not on Linux
        count = os.cpu_count() or 1
    quota = cgroup()
    if quota is not None:
        count = min(count, quota)
    return max(1, count)


def _zstandard() -> ModuleType:
    try:
        return importlib.import_module("zstandard")
    except ImportError as exc:
        raise ConfigurationError(
            "the zstd codec needs the 'zstandard' package: pip install 's3-data-aggregator[zstd]'",
            ErrorCode.ZSTD_NOT_INSTALLED,
            {"variable": "BUNDLE_CODEC", "extra": "s3-data-aggregator[zstd]"},
        ) from exc


def _zlib_ng() -> ModuleType:
    try:
        return importlib.import_module("zlib_ng.zlib_ng")
    except ImportError as exc:
        raise ConfigurationError(
            "gzip_library='zlib-ng' needs the 'zlib-ng' package (a dependency of "
            "s3-data-aggregator: was it installed with --no-deps?): pip install zlib-ng",
            ErrorCode.ZLIB_NG_NOT_INSTALLED,
            {"package": "zlib-ng"},
        ) from exc


def _deflate(library: GzipLibrary) -> ModuleType:
    """The module that writes gzip for ``library`` (``zlib`` or ``zlib_ng.zlib_ng``)."""
    return _zlib_ng() if library == "zlib-ng" else zlib


def _zlib_ng_present() -> bool:
    """Whether zlib-ng's compiled module for this Python and platform is installed: found
    by its file name, not loaded (cold start; it is loaded at the first gzip bundle). The
    package alone is not enough: a Lambda zip built for another CPU, OS or Python holds
    the module under a file name this interpreter does not load."""
    try:
        return importlib.util.find_spec("zlib_ng.zlib_ng") is not None
    except ImportError:  # the package itself cannot be imported
        return False


def _gzip_library(requested: str | None) -> GzipLibrary:
    if requested is None:
        return "zlib-ng" if _zlib_ng_present() else "zlib"
    for library in _GZIP_LIBRARIES:
        if requested == library:
            _deflate(library)  # fail at configuration time, not at the first bundle
            return library
    raise ConfigurationError(
        "unknown gzip library: expected zlib or zlib-ng",
        ErrorCode.INVALID_CODEC,
        {"gzip_library": requested},
    )


def resolve_codec(
    codec: Codec | str,
    level: int | None = None,
    *,
    threads: int | None = 1,
    gzip_library: str | None = None,
) -> CodecSpec:
    """Validate ``codec``, ``level`` (``None``: the codec's default), ``threads``
    (``None``: `available_cpus`) and ``gzip_library`` (``None``: ``zlib-ng`` when its
    compiled module for this Python and platform is installed, else ``zlib``) into a
    spec. ``none`` always gets one thread.

    Raises:
        ConfigurationError: an unknown codec, a level outside the codec's range, a level
            given for ``none``, fewer than one thread, zstd without the ``zstandard``
            package installed, or an unknown or missing gzip library.
    """
    if threads is not None and not 1 <= threads <= MAX_COMPRESSION_THREADS:
        raise ConfigurationError(
            f"compression threads must be 1-{MAX_COMPRESSION_THREADS}",
            ErrorCode.INVALID_COMPRESSION_THREADS,
            {"variable": "COMPRESSION_THREADS", "value": threads},
        )
    try:
        resolved = Codec(codec.value if isinstance(codec, Enum) else str(codec).lower())
    except ValueError:
        raise ConfigurationError(
            "unknown bundle codec: expected one of gzip, zstd, none",
            ErrorCode.INVALID_CODEC,
            {"variable": "BUNDLE_CODEC", "value": str(codec)},
        ) from None
    bounds = resolved.level_range
    if bounds is None:
        if level is not None:
            raise ConfigurationError(
                "the none codec takes no compression level",
                ErrorCode.INVALID_COMPRESSION_LEVEL,
                {"variable": "COMPRESSION_LEVEL", "value": level},
            )
    else:
        level = resolved.default_level if level is None else level
        if level is None or not bounds[0] <= level <= bounds[1]:
            raise ConfigurationError(
                f"compression level for {resolved.value} must be {bounds[0]}-{bounds[1]}",
                ErrorCode.INVALID_COMPRESSION_LEVEL,
                {"variable": "COMPRESSION_LEVEL", "value": level},
            )
    if resolved is Codec.ZSTD:
        _zstandard()  # fail at configuration time, not at the first bundle
    auto = min(available_cpus(), MAX_AUTO_COMPRESSION_THREADS)
    count = 1 if resolved is Codec.NONE else (auto if threads is None else threads)
    return CodecSpec(
        resolved,
        level,
        _EXTENSIONS[resolved],
        _CONTENT_TYPES[resolved],
        threads=count,
        gzip_library=_gzip_library(gzip_library) if resolved is Codec.GZIP else "zlib",
    )


def _stream_compressor(spec: CodecSpec) -> Compressor:
    """The single-stream compressor: one gzip member or one zstd frame."""
    if spec.codec is Codec.GZIP:
        deflate = _deflate(spec.gzip_library)
        compressor: Compressor = deflate.compressobj(spec.level or 6, deflate.DEFLATED, _GZIP_WBITS)
        return compressor if spec.gzip_library == "zlib" else _Rechunked(compressor)
    if spec.codec is Codec.ZSTD:
        zstd: Any = _zstandard()
        frames: Compressor = zstd.ZstdCompressor(
            level=spec.level or 3, write_checksum=True
        ).compressobj()
        return frames
    return _Identity()


def _block_function(spec: CodecSpec) -> Callable[[bytes], bytes]:
    """Compress one block into one complete gzip member or zstd frame (thread-safe)."""
    if spec.codec is Codec.GZIP:
        level = spec.level or 6
        deflate = _deflate(spec.gzip_library)

        def gzip_member(block: bytes) -> bytes:
            member = deflate.compressobj(level, deflate.DEFLATED, _GZIP_WBITS)
            data: bytes = member.compress(block) + member.flush()
            return data

        return gzip_member
    zstd: Any = _zstandard()
    local = threading.local()
    zstd_level = spec.level or 3

    def zstd_frame(block: bytes) -> bytes:
        # A ZstdCompressor is not thread-safe: one per worker thread, reused.
        compressor = getattr(local, "compressor", None)
        if compressor is None:
            compressor = zstd.ZstdCompressor(level=zstd_level, write_checksum=True)
            local.compressor = compressor
        frame: bytes = compressor.compress(block)
        return frame

    return zstd_frame


def new_compressor(spec: CodecSpec) -> Compressor:
    """A fresh incremental compressor for one bundle (a `BlockCompressor` when the spec
    has more than one thread)."""
    if spec.threads <= 1 or spec.codec is Codec.NONE:
        return _stream_compressor(spec)
    return BlockCompressor(
        _stream_compressor(spec),
        _block_function(spec),
        threads=spec.threads,
        block_size=spec.block_size,
        parallel_after=spec.parallel_after,
    )


class BlockCompressor:
    """Compress one stream on ``threads`` threads, as independent blocks written in order.

    The first ``parallel_after`` bytes (at least; the switch happens between two
    ``compress`` calls) go through ``first``, an ordinary incremental compressor, so a
    small bundle is exactly what ``first`` alone writes. Then ``first`` is finished (its
    gzip member or zstd frame closed) and the rest is cut into blocks of ``block_size``
    bytes, each compressed by ``compress_block`` on a thread pool into a complete member
    or frame. Outputs come back in input order.

    Memory is bounded: at most ``threads + 1`` blocks are submitted and not yet returned
    (``peak_in_flight`` records the most seen), plus the block being filled. When the
    bound is reached, ``compress`` waits for the oldest block. These waits have no
    timeout, like every other wait of the bundle writer: a block is a bounded amount of
    CPU work and always finishes; the engine's deadline is the caller's
    ``should_continue`` between objects.

    Not thread-safe: one writer thread calls ``compress``, then ``flush`` once; ``close``
    releases the pool when the bundle is abandoned.
    """

    def __init__(
        self,
        first: Compressor,
        compress_block: Callable[[bytes], bytes],
        *,
        threads: int,
        block_size: int = BLOCK_SIZE,
        parallel_after: int = PARALLEL_AFTER,
    ) -> None:
        if threads < 1 or block_size < 1 or parallel_after < 0:
            msg = "threads and block_size must be at least 1, parallel_after at least 0"
            raise ValueError(msg)
        self._first: Compressor | None = first
        self._compress_block = compress_block
        self.threads = threads
        self.block_size = block_size
        self.parallel_after = parallel_after
        #: Most blocks ever submitted and not yet returned (at most ``threads + 1``).
        self.peak_in_flight = 0
        #: Blocks compressed on the pool so far.
        self.blocks = 0
        self._streamed = 0
        self._pending = bytearray()
        self._futures: deque[Future[bytes]] = deque()
        self._pool: ThreadPoolExecutor | None = None

    @property
    def parallel(self) -> bool:
        """Whether the stream has switched to blocks."""
        return self._first is None

    def compress(self, data: bytes, /) -> bytes:
        """Take ``data``; return the compressed bytes that are ready, in order.

        The switch to blocks happens at exactly ``parallel_after`` bytes of input, so the
        blocks start at fixed offsets of the stream: the output does not depend on how
        the input was cut into calls.
        """
        head = b""
        first = self._first
        if first is not None:
            room = self.parallel_after - self._streamed
            if len(data) < room:
                self._streamed += len(data)
                return first.compress(data)
            head = first.compress(data[:room]) + first.flush()  # the first member ends
            self._streamed += room
            self._first = None
            self._pool = ThreadPoolExecutor(
                self.threads, thread_name_prefix="data-aggregator-compress"
            )
            logger.debug(
                "bundle compression switched to blocks",
                extra={
                    "threads": self.threads,
                    "block_size": self.block_size,
                    "after_bytes": self._streamed,
                },
            )
            data = data[room:]
        outputs: list[bytes] = [head]
        self._pending += data
        size = self.block_size
        while len(self._pending) >= size:
            block = bytes(self._pending[:size])
            del self._pending[:size]
            self._submit(block, outputs)
        while self._futures and self._futures[0].done():
            outputs.append(self._futures.popleft().result())
        return b"".join(outputs)

    def _submit(self, block: bytes, outputs: list[bytes]) -> None:
        while len(self._futures) > self.threads:  # the bound: threads + 1 in flight
            outputs.append(self._futures.popleft().result())
        if self._pool is None:  # pragma: no cover - compress() creates it first
            msg = "compressor is closed"
            raise RuntimeError(msg)
        self._futures.append(self._pool.submit(self._compress_block, block))
        self.blocks += 1
        self.peak_in_flight = max(self.peak_in_flight, len(self._futures))

    def flush(self) -> bytes:
        """Compress what is left, wait for every block; return the rest of the stream."""
        if self._first is not None:
            out = self._first.flush()
            self._first = None
            return out
        outputs: list[bytes] = []
        try:
            if self._pending:
                block = bytes(self._pending)
                self._pending.clear()
                self._submit(block, outputs)
            while self._futures:
                outputs.append(self._futures.popleft().result())
        finally:
            self.close()
        return b"".join(outputs)

    def close(self) -> None:
        """Drop queued blocks and release the pool (idempotent; after a failure)."""
        for future in self._futures:
            future.cancel()
        self._futures.clear()
        self._pending.clear()
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None


def detect_codec(head: bytes) -> Codec:
    """Guess a bundle's codec from its first bytes (magic numbers); tar otherwise."""
    if head.startswith(_GZIP_MAGIC):
        return Codec.GZIP
    if head.startswith(_ZSTD_MAGIC):
        return Codec.ZSTD
    return Codec.NONE


def open_decompressed(fileobj: IO[bytes], codec: Codec | str | None = None) -> IO[bytes]:
    """Wrap a readable bundle so that reading it yields the tar stream.

    With ``codec=None`` the codec is detected from the magic number, which needs a
    seekable ``fileobj`` or one with ``peek`` (any buffered reader).
    """
    if codec is None:
        if isinstance(fileobj, io.BufferedReader):
            head = fileobj.peek(4)[:4]
        else:
            position = fileobj.tell()
            head = fileobj.read(4)
            fileobj.seek(position)
        resolved = detect_codec(head)
    else:
        resolved = Codec(codec.value if isinstance(codec, Enum) else str(codec).lower())
    if resolved is Codec.GZIP:
        return cast("IO[bytes]", gzip.GzipFile(fileobj=fileobj, mode="rb"))
    if resolved is Codec.ZSTD:
        zstd: Any = _zstandard()
        # A bundle may hold several frames (parallel compression): read them all.
        reader: IO[bytes] = zstd.ZstdDecompressor().stream_reader(
            fileobj, closefd=False, read_across_frames=True
        )
        return reader
    return fileobj
