"""Compressed output of one bundle stream, coalesced into pieces (private).

The common part of `data_aggregator.bundle._tar.TarStream` and
`data_aggregator.bundle._concat.ConcatStream`: uncompressed bytes in, the codec's output
handed to ``write`` in pieces of about ``buffer_size`` bytes (larger when a single
compressed chunk is larger), with both byte counts kept.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Callable

    from data_aggregator.bundle._codecs import Compressor

__all__ = ["OUTPUT_BUFFER_SIZE", "CompressedOutput"]

#: Compressed output is coalesced up to this many bytes before ``write`` is called.
OUTPUT_BUFFER_SIZE = 256 * 1024


class CompressedOutput:
    """Compress what `_raw` is given and hand the output to ``write``, coalesced.

    Args:
        write: Receives compressed output, in pieces of about ``buffer_size`` bytes (larger
            when a single input chunk is larger).
        compressor: The bundle's codec.
        buffer_size: Output is coalesced up to this many bytes before ``write`` is called.
    """

    def __init__(
        self,
        write: Callable[[bytes], object],
        compressor: Compressor,
        buffer_size: int = OUTPUT_BUFFER_SIZE,
    ) -> None:
        self._write = write
        self._compressor = compressor
        self._buffer = bytearray()
        self._buffer_size = buffer_size
        #: Uncompressed bytes written so far (the tar stream's, or the concatenation's).
        self.tar_bytes = 0
        #: Compressed bytes handed to ``write`` so far.
        self.output_bytes = 0

    def _emit(self, data: bytes) -> None:
        if not data:
            return
        if len(data) >= self._buffer_size:
            self._drain()
            self._send(data)
            return
        self._buffer += data
        if len(self._buffer) >= self._buffer_size:
            self._drain()

    def _drain(self) -> None:
        if self._buffer:
            data = bytes(self._buffer)
            self._buffer.clear()
            self._send(data)

    def _send(self, data: bytes) -> None:
        self._write(data)
        self.output_bytes += len(data)

    def _raw(self, data: bytes) -> None:
        self.tar_bytes += len(data)
        self._emit(self._compressor.compress(data))
