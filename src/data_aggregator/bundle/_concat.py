"""The line-oriented bundle layout (``BUNDLE_FORMAT=concat``): writer side.

Private. A concat bundle is the members' bytes one after the other, each followed by a
newline unless it already ends in one (an empty member adds nothing), compressed with the
bundle's codec: what Athena, Glue or Spark read as lines of a ``.log.gz`` object. There is
no header and no manifest inside the stream; the manifest is the sidecar object
``<SIDECAR_PREFIX><bundle key>.manifest.json`` (`sidecar_key`), whose entries carry each member's
``offset`` in the uncompressed stream, its ``size`` (the source's bytes, newline not
counted) and ``newline_added``.

`ConcatStream` has the interface of `data_aggregator.bundle._tar.TarStream` that the bundle
writer uses, so `data_aggregator.bundle._writer.OpenBundle` writes either. `Utf8Check`
checks a member's bytes as they come (an incremental decoder): members must be UTF-8 text.
"""

from __future__ import annotations

import codecs
from typing import TYPE_CHECKING

from data_aggregator.bundle._output import OUTPUT_BUFFER_SIZE, CompressedOutput
from data_aggregator.exceptions import ErrorCode, ObjectNotTextError

if TYPE_CHECKING:
    from collections.abc import Callable

    from data_aggregator.bundle._codecs import Compressor
    from data_aggregator.bundle._types import BundleSource

__all__ = ["SIDECAR_SUFFIX", "ConcatStream", "Utf8Check", "planned_concat_bytes", "sidecar_key"]

#: Appended to a concat bundle's key to name its manifest object.
SIDECAR_SUFFIX = ".manifest.json"
#: The sidecar's content type.
SIDECAR_CONTENT_TYPE = "application/json"
_NEWLINE = b"\n"


def sidecar_key(bundle_key: str, prefix: str = "") -> str:
    """The key of the manifest of the concat bundle ``bundle_key``: ``<prefix><bundle
    key>.manifest.json`` (``prefix`` is ``SIDECAR_PREFIX``; empty: next to the bundle)."""
    return prefix + bundle_key + SIDECAR_SUFFIX


def planned_concat_bytes(size: int) -> int:
    """The most stream bytes a member of ``size`` bytes takes (its newline included)."""
    return size + 1 if size else 0


class Utf8Check:
    """Checks that the bytes fed to it, in order, are UTF-8 (a sequence may span chunks).

    Raises `ObjectNotTextError` from `feed` or `finish` at the first invalid sequence.
    """

    def __init__(self, source: BundleSource) -> None:
        self._source = source
        self._decoder = codecs.getincrementaldecoder("utf-8")("strict")
        self._seen = 0

    def feed(self, chunk: bytes) -> None:
        """Check the next bytes (an incomplete sequence at the end waits for the next)."""
        self._check(chunk, final=False)
        self._seen += len(chunk)

    def finish(self) -> None:
        """Check that the bytes did not end inside a sequence."""
        self._check(b"", final=True)

    def _check(self, chunk: bytes, *, final: bool) -> None:
        pending = len(self._decoder.getstate()[0])  # bytes of a sequence begun earlier
        try:
            self._decoder.decode(chunk, final)
        except UnicodeDecodeError as exc:
            raise ObjectNotTextError(
                "object is not UTF-8 text, which BUNDLE_FORMAT=concat requires",
                ErrorCode.OBJECT_NOT_TEXT,
                {
                    "bucket": self._source.bucket,
                    "key": self._source.key,
                    "version_id": self._source.version_id,
                    "offset": max(self._seen - pending + exc.start, 0),
                    "reason": exc.reason,
                },
            ) from None


class ConcatStream(CompressedOutput):
    """Write one concat bundle, compressed, into ``write``.

    Same interface as `TarStream` (``begin_member`` with a header, which is ignored here,
    ``write_data``, ``add_member``, ``finish``, ``tar_bytes``): the writer drives both
    alike. ``members`` records ``(offset, newline_added)`` per completed member. Arguments
    as `CompressedOutput`.
    """

    def __init__(
        self,
        write: Callable[[bytes], object],
        compressor: Compressor,
        buffer_size: int = OUTPUT_BUFFER_SIZE,
    ) -> None:
        super().__init__(write, compressor, buffer_size)
        #: ``(offset, newline_added)`` of each completed member, in order.
        self.members: list[tuple[int, bool]] = []
        self._member_left = 0
        self._member_offset = 0
        self._last_byte = b""
        self.finished = False

    def begin_member(self, header: bytes, size: int) -> None:
        """Start a member of ``size`` bytes (``header`` is the tar layout's; ignored)."""
        if self._member_left or self.finished:
            msg = "previous member incomplete or bundle finished"
            raise RuntimeError(msg)
        self._member_offset = self.tar_bytes
        self._member_left = size
        self._last_byte = b""
        if size == 0:
            self._end_member()

    def write_data(self, data: bytes) -> None:
        """Append member bytes; never more than announced."""
        if len(data) > self._member_left:
            msg = "member data longer than announced"
            raise RuntimeError(msg)
        if not data:
            return
        self._raw(data)
        self._last_byte = data[-1:]
        self._member_left -= len(data)
        if self._member_left == 0:
            self._end_member()

    def _end_member(self) -> None:
        added = bool(self._last_byte) and self._last_byte != _NEWLINE
        if added:
            self._raw(_NEWLINE)
        self.members.append((self._member_offset, added))

    @property
    def member_open(self) -> bool:
        """Whether the current member still expects bytes."""
        return self._member_left > 0

    def add_member(self, header: bytes, data: bytes) -> None:
        """Write a whole member whose bytes are in hand."""
        self.begin_member(header, len(data))
        self.write_data(data)

    def finish(self) -> None:
        """Flush the compressor (a concat bundle has no trailer of its own)."""
        if self._member_left:
            msg = "cannot finish the bundle inside a member"
            raise RuntimeError(msg)
        self._emit(self._compressor.flush())
        self._drain()
        self.finished = True
