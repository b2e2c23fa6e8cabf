"""Compression codecs for bundle tar streams: gzip, zstd (optional extra) and none.

Private: `data_aggregator.bundle` is the public face. A codec is resolved once into a
`CodecSpec` (name, level, file extension, content type); each bundle then gets a
fresh incremental compressor from `new_compressor`, and `open_decompressed`
reads a bundle back (used by the bundle reader, `data_aggregator.bundle._reader`).

``zstandard`` is imported lazily, so the zstd extra costs nothing unless it is used, and a
missing package is reported as a `ConfigurationError` that names the extra.
"""

from __future__ import annotations

import gzip
import importlib
import io
import zlib
from dataclasses import dataclass
from enum import Enum
from typing import IO, TYPE_CHECKING, Any, Protocol, cast

from data_aggregator.config import Codec
from data_aggregator.exceptions import ConfigurationError, ErrorCode

if TYPE_CHECKING:
    from types import ModuleType

__all__ = [
    "CodecSpec",
    "Compressor",
    "detect_codec",
    "new_compressor",
    "open_decompressed",
    "resolve_codec",
]

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


class Compressor(Protocol):
    """An incremental compressor: ``compress`` pieces, then ``flush`` once at the end."""

    def compress(self, data: bytes, /) -> bytes: ...

    def flush(self) -> bytes: ...


class _Identity:
    """The ``none`` codec: bytes pass through unchanged."""

    def compress(self, data: bytes, /) -> bytes:
        return data

    def flush(self) -> bytes:
        return b""


@dataclass(frozen=True, slots=True)
class CodecSpec:
    """A resolved codec: which one, at which level, and how its bundles are named and typed."""

    codec: Codec
    level: int | None
    extension: str
    content_type: str


def _zstandard() -> ModuleType:
    try:
        return importlib.import_module("zstandard")
    except ImportError as exc:
        raise ConfigurationError(
            "the zstd codec needs the 'zstandard' package: pip install 's3-data-aggregator[zstd]'",
            ErrorCode.ZSTD_NOT_INSTALLED,
            {"variable": "BUNDLE_CODEC", "extra": "s3-data-aggregator[zstd]"},
        ) from exc


def resolve_codec(codec: Codec | str, level: int | None = None) -> CodecSpec:
    """Validate ``codec`` and ``level`` (``None``: the codec's default) into a spec.

    Raises:
        ConfigurationError: an unknown codec, a level outside the codec's range, a level
            given for ``none``, or zstd without the ``zstandard`` package installed.
    """
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
    return CodecSpec(resolved, level, _EXTENSIONS[resolved], _CONTENT_TYPES[resolved])


def new_compressor(spec: CodecSpec) -> Compressor:
    """A fresh incremental compressor for one bundle."""
    if spec.codec is Codec.GZIP:
        return zlib.compressobj(spec.level or 6, zlib.DEFLATED, _GZIP_WBITS)
    if spec.codec is Codec.ZSTD:
        zstd: Any = _zstandard()
        compressor: Compressor = zstd.ZstdCompressor(
            level=spec.level or 3, write_checksum=True
        ).compressobj()
        return compressor
    return _Identity()


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
        reader: IO[bytes] = zstd.ZstdDecompressor().stream_reader(fileobj, closefd=False)
        return reader
    return fileobj
