"""Part sizing and the part buffers / upload threads behind `MultipartWriter`.

Private: the public names are re-exported by `data_aggregator.clients`.
"""

from __future__ import annotations

import base64
import hashlib
import threading
from dataclasses import dataclass
from tempfile import SpooledTemporaryFile
from typing import TYPE_CHECKING, Final

from data_aggregator._sizes import MAX_PART_SIZE, MAX_PARTS, MIB, MIN_PART_SIZE
from data_aggregator.exceptions import ErrorCode, S3IntegrityError

if TYPE_CHECKING:
    from data_aggregator.clients._s3 import S3Client
    from data_aggregator.clients._types import CompletedPart

__all__ = [
    "PARTS_PER_DOUBLING",
    "PartBuffer",
    "PartUploader",
    "WriterStats",
    "clamp_part_size",
    "part_size_for",
]

#: Part size doubles after every this many parts (see `part_size_for`).
PARTS_PER_DOUBLING: Final = 500
_HASH_CHUNK: Final = MIB


def clamp_part_size(requested: int) -> int:
    """Clamp a requested part size to S3's limits (5 MiB to 5 GiB)."""
    return min(max(requested, MIN_PART_SIZE), MAX_PART_SIZE)


def part_size_for(part_number: int, base_part_size: int) -> int:
    """Size of part ``part_number`` (1-based) of a stream of unknown size.

    The rule: ``clamp_part_size(base_part_size) * 2 ** ((part_number - 1) // 500)``,
    capped at 5 GiB. Parts 1-500 have the base size, 501-1000 twice that, and so on. Even
    with the smallest base (5 MiB), 10,000 such parts hold about 26 TiB, more than S3's
    5 TiB object limit; streams below ``500 * base`` (8 GiB at 16 MiB) never grow.
    """
    if not 1 <= part_number <= MAX_PARTS:
        msg = f"part_number must be within 1..{MAX_PARTS}, got {part_number}"
        raise ValueError(msg)
    base = clamp_part_size(base_part_size)
    doublings = (part_number - 1) // PARTS_PER_DOUBLING
    return min(base << doublings, MAX_PART_SIZE)


@dataclass(frozen=True, slots=True)
class WriterStats:
    """Counters of a writer (instrumentation for tests and benchmarks).

    ``peak_parts_buffered`` counts part buffers alive at once (in flight plus the one
    being filled): it is what bounds memory and disk use.
    """

    parts_started: int
    parts_uploaded: int
    parts_in_flight: int
    peak_parts_in_flight: int
    peak_parts_buffered: int


class PartBuffer:
    """One part: a spool being filled, then handed to an upload thread."""

    __slots__ = ("capacity", "number", "size", "spool")

    def __init__(self, number: int, capacity: int, spool_max_size: int, spool_dir: str | None):
        self.number = number
        self.capacity = capacity
        self.size = 0
        self.spool: SpooledTemporaryFile[bytes] = SpooledTemporaryFile(  # noqa: SIM115 - closed by close()
            max_size=spool_max_size, mode="w+b", dir=spool_dir
        )

    @property
    def full(self) -> bool:
        return self.size >= self.capacity

    def write(self, view: memoryview) -> int:
        taken = view[: self.capacity - self.size]
        self.spool.write(taken)
        self.size += taken.nbytes
        return taken.nbytes

    def digest(self) -> bytes:
        """SHA-256 of the part's bytes; leaves the spool positioned at its start."""
        self.spool.seek(0)
        hasher = hashlib.sha256()
        while chunk := self.spool.read(_HASH_CHUNK):
            hasher.update(chunk)
        self.spool.seek(0)
        return hasher.digest()

    def close(self) -> None:
        self.spool.close()


class PartUploader:
    """State shared by a writer and its upload threads.

    Worker threads hold this object, never the writer, so that a writer dropped without
    ``close()`` can be collected (and aborted) while parts are still in flight.
    """

    def __init__(self, s3: S3Client, bucket: str, key: str, max_concurrency: int) -> None:
        self.s3 = s3
        self.bucket = bucket
        self.key = key
        self.slots = threading.BoundedSemaphore(max_concurrency)
        self.cancelled = threading.Event()
        self.lock = threading.Lock()
        self.failure: BaseException | None = None
        self.failed_part: int | None = None
        # Counters, under ``lock``.
        self.parts_started = 0
        self.parts_uploaded = 0
        self.in_flight = 0
        self.buffered = 0
        self.peak_in_flight = 0
        self.peak_buffered = 0

    def buffer_opened(self) -> int:
        """Count a new part buffer; return its part number."""
        with self.lock:
            self.parts_started += 1
            self.buffered += 1
            self.peak_buffered = max(self.peak_buffered, self.buffered)
            return self.parts_started

    def buffer_closed(self) -> None:
        with self.lock:
            self.buffered -= 1

    def started(self) -> None:
        with self.lock:
            self.in_flight += 1
            self.peak_in_flight = max(self.peak_in_flight, self.in_flight)

    def not_started(self) -> None:
        with self.lock:
            self.in_flight -= 1
        self.slots.release()

    def upload(self, part: PartBuffer, upload_id: str) -> CompletedPart | None:
        """Runs in a worker thread: hash the part, upload it, record any failure."""
        try:
            if self.cancelled.is_set():
                return None
            digest = part.digest()
            completed = self.s3.upload_part(
                self.bucket,
                self.key,
                upload_id=upload_id,
                part_number=part.number,
                body=part.spool,
                content_length=part.size,
                sha256=digest,
            )
            if completed.checksum_sha256 != base64.b64encode(digest).decode("ascii"):
                msg = f"S3 returned a different SHA-256 for part {part.number}"
                context = {"bucket": self.bucket, "key": self.key, "part_number": part.number}
                raise S3IntegrityError(msg, ErrorCode.S3_CHECKSUM_MISMATCH, context)
        except BaseException as exc:
            with self.lock:
                if self.failure is None:
                    self.failure = exc
                    self.failed_part = part.number
            raise
        finally:
            part.close()
            with self.lock:
                self.in_flight -= 1
                self.buffered -= 1
            self.slots.release()
        with self.lock:
            self.parts_uploaded += 1
        return completed

    def stats(self) -> WriterStats:
        with self.lock:
            return WriterStats(
                parts_started=self.parts_started,
                parts_uploaded=self.parts_uploaded,
                parts_in_flight=self.in_flight,
                peak_parts_in_flight=self.peak_in_flight,
                peak_parts_buffered=self.peak_buffered,
            )
