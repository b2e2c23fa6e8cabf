"""A forward-only POSIX (PAX) tar stream writer with deterministic headers.

Private. `TarStream` writes member headers, member bytes and the end-of-archive
marker through a `Compressor` into a ``write`` callable
(the bundle sink), coalescing small outputs. It never seeks and never reads back, so the
bundle can stream into a multipart upload. It is not thread-safe: one writer per bundle.

Headers are produced by `tarfile.TarInfo.tobuf` in PAX format, with fixed fields:
mode ``0o644``, uid/gid ``0``, empty uname/gname, type "regular file", integer mtime.
Long or non-ASCII names get a PAX ``path`` record; sizes of 8 GiB and more a PAX ``size``.
"""

from __future__ import annotations

import tarfile
from typing import TYPE_CHECKING

from data_aggregator.bundle._output import OUTPUT_BUFFER_SIZE, CompressedOutput

if TYPE_CHECKING:
    from collections.abc import Callable

    from data_aggregator.bundle._codecs import Compressor

__all__ = ["BLOCK", "RECORD", "TarStream", "member_header", "padding"]

BLOCK = tarfile.BLOCKSIZE  # 512
RECORD = tarfile.RECORDSIZE  # 10240: GNU tar and Python pad the archive to whole records
_MODE = 0o644
_MAX_MTIME = 8**11 - 1  # largest mtime that fits the ustar field without a PAX record


def member_header(name: str, size: int, mtime: int) -> bytes:
    """The header block(s) of a regular-file member, PAX records included when needed."""
    info = tarfile.TarInfo(name)
    info.size = size
    info.mtime = min(max(int(mtime), 0), _MAX_MTIME)
    info.mode = _MODE
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    info.type = tarfile.REGTYPE
    return info.tobuf(tarfile.PAX_FORMAT, "utf-8", "strict")


def padding(size: int) -> int:
    """Zero bytes that follow ``size`` bytes of member data to fill the last block."""
    return -size % BLOCK


class TarStream(CompressedOutput):
    """Write one tar archive, compressed, into ``write`` (arguments as `CompressedOutput`)."""

    def __init__(
        self,
        write: Callable[[bytes], object],
        compressor: Compressor,
        buffer_size: int = OUTPUT_BUFFER_SIZE,
    ) -> None:
        super().__init__(write, compressor, buffer_size)
        self._member_left = 0
        self._member_pad = 0
        self.finished = False

    # ------------------------------------------------------------------ members

    def begin_member(self, header: bytes, size: int) -> None:
        """Start a member: ``header`` from `member_header` announcing ``size`` bytes."""
        if self._member_left or self.finished:
            msg = "previous member incomplete or archive finished"
            raise RuntimeError(msg)
        self._raw(header)
        self._member_left = size
        self._member_pad = padding(size)
        if size == 0:
            self._end_member()

    def write_data(self, data: bytes) -> None:
        """Append member bytes; never more than the header announced."""
        if len(data) > self._member_left:
            msg = "member data longer than its header announced"
            raise RuntimeError(msg)
        if not data:
            return
        self._raw(data)
        self._member_left -= len(data)
        if self._member_left == 0:
            self._end_member()

    def _end_member(self) -> None:
        if self._member_pad:
            self._raw(bytes(self._member_pad))
        self._member_pad = 0

    @property
    def member_open(self) -> bool:
        """Whether the current member still expects bytes."""
        return self._member_left > 0

    def add_member(self, header: bytes, data: bytes) -> None:
        """Write a whole member whose bytes are in hand."""
        self.begin_member(header, len(data))
        self.write_data(data)

    def finish(self) -> None:
        """Write the end-of-archive marker and record padding, flush the compressor."""
        if self._member_left:
            msg = "cannot finish the archive inside a member"
            raise RuntimeError(msg)
        end = 2 * BLOCK
        end += -(self.tar_bytes + end) % RECORD
        self._raw(bytes(end))
        self._emit(self._compressor.flush())
        self._drain()
        self.finished = True
