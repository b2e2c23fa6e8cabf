"""Opening, checking and reading source objects for the bundle engine.

Private. Every deterministic check (existence, ETag, size) happens when the object is
opened, before a single byte reaches a bundle: `open_checked` raises
`Rejected` carrying the outcome status. Reading then only has transport failures
left, plus a body that ends early or runs long, which `read_exact` detects.
"""

from __future__ import annotations

import contextlib
import hashlib
import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from data_aggregator.bundle._types import OutcomeStatus
from data_aggregator.exceptions import (
    DataAggregatorError,
    ErrorCode,
    S3IntegrityError,
    S3ObjectNotFoundError,
    S3ObjectSupersededError,
    S3ServiceError,
    TransientError,
)

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from datetime import datetime

    from data_aggregator.bundle._types import (
        BundleSource,
        ObjectBody,
        ObjectSource,
        ReadableStream,
    )

__all__ = [
    "Budget",
    "Fetched",
    "Rejected",
    "classify",
    "normalize_etag",
    "open_checked",
    "prefetch",
]


class Rejected(Exception):  # noqa: N818 - an internal signal, not an error users see
    """Internal: an object that will not be bundled, with its status and error."""

    def __init__(
        self, status: OutcomeStatus, error: DataAggregatorError | None, etag: str | None = None
    ) -> None:
        super().__init__(status.value)
        self.status = status
        self.error = error
        self.etag = etag


class Budget:
    """Bytes of prefetched-but-unwritten bodies: taken before reading, given back when
    written. Shared by the writer and at most one worker that takes it chunk by chunk."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.used = 0
        self._cond = threading.Condition()

    def try_take(self, amount: int) -> bool:
        """Take ``amount`` if it fits now (always, when nothing is taken)."""
        with self._cond:
            if self.used and self.used + amount > self.limit:
                return False
            self.used += amount
            return True

    def take(self, amount: int, cancelled: threading.Event) -> bool:
        """Wait until ``amount`` fits, then take it; ``False`` if cancelled meanwhile."""
        with self._cond:
            while self.used and self.used + amount > self.limit:
                if cancelled.is_set():
                    return False
                self._cond.wait(0.05)
            self.used += amount
            return True

    def give(self, amount: int) -> None:
        """Give back ``amount`` and wake a waiting taker."""
        if amount:
            with self._cond:
                self.used -= amount
                self._cond.notify_all()


@dataclass(slots=True)
class Fetched:
    """A body read whole into memory, checked and hashed."""

    chunks: list[bytes]
    size: int
    sha256: str
    etag: str | None
    last_modified: datetime | None = None
    #: Budget the worker took itself (progressive prefetch); the writer gives it back.
    charge: int = field(default=0)


def normalize_etag(etag: str | None) -> str | None:
    """An ETag without quotes (``None`` for a missing or empty one)."""
    if not etag:
        return None
    return etag.strip('"') or None


def _context(source: BundleSource) -> dict[str, object]:
    return {"bucket": source.bucket, "key": source.key, "version_id": source.version_id}


def classify(exc: BaseException, source: BundleSource) -> Rejected:
    """Map an error raised while opening or reading ``source`` to an outcome."""
    if isinstance(exc, Rejected):
        return exc
    if isinstance(exc, S3ObjectNotFoundError):
        return Rejected(OutcomeStatus.NOT_FOUND, exc)
    if isinstance(exc, S3ObjectSupersededError):
        return Rejected(OutcomeStatus.SUPERSEDED, exc)
    if isinstance(exc, TransientError):
        return Rejected(OutcomeStatus.FAILED_RETRYABLE, exc)
    if isinstance(exc, DataAggregatorError):
        return Rejected(OutcomeStatus.REFUSED, exc)
    # Untyped failures (a connection reset a custom source did not translate ...) are
    # treated as transient: retrying is the safe choice, the redrive limit bounds it.
    wrapped = S3ServiceError(
        "reading the source object failed",
        ErrorCode.S3_READ_FAILED,
        {**_context(source), "cause": type(exc).__name__},
        operation="GetObject",
    )
    return Rejected(OutcomeStatus.FAILED_RETRYABLE, wrapped)


def _mismatch(source: BundleSource, what: str, expected: object, actual: object) -> Rejected:
    context = {**_context(source), "expected": expected, "actual": actual}
    if source.version_id is None and (what == "ETag" or source.etag is None):
        # Nothing pins the object: the key now holds another one, covered by its own event.
        error: DataAggregatorError = S3ObjectSupersededError(
            f"object {what} differs from the event's: the key was overwritten",
            f"{what.upper()}_MISMATCH",
            context,
            operation="GetObject",
        )
        return Rejected(OutcomeStatus.SUPERSEDED, error)
    error = S3IntegrityError(
        f"object {what} contradicts the event", f"{what.upper()}_MISMATCH", context
    )
    return Rejected(OutcomeStatus.REFUSED, error)


def open_checked(source: ObjectSource, item: BundleSource) -> ObjectBody:
    """Open ``item`` (``If-Match`` its ETag) and check ETag and size before any read.

    Raises:
        Rejected: not found, superseded, refused or a retryable failure.
    """
    expected_etag = normalize_etag(item.etag)
    try:
        opened = source.open_object(
            item.bucket, item.key, version_id=item.version_id, if_match=expected_etag
        )
    except Exception as exc:
        raise classify(exc, item) from exc
    actual_etag = normalize_etag(opened.etag)
    try:
        if expected_etag is not None and actual_etag is not None and actual_etag != expected_etag:
            raise _mismatch(item, "ETag", expected_etag, actual_etag)
        if item.size is not None and opened.content_length != item.size:
            raise _mismatch(item, "size", item.size, opened.content_length)
    except Rejected as rejected:
        rejected.etag = actual_etag
        _close_quietly(opened.body)
        raise
    return opened


def _close_quietly(body: ReadableStream) -> None:
    with contextlib.suppress(Exception):  # the connection is being discarded anyway
        body.close()


def read_exact(
    body: ReadableStream,
    size: int,
    source: BundleSource,
    chunk_size: int,
    *,
    cancelled: threading.Event | None = None,
    reserve: Callable[[int], bool] | None = None,
) -> Iterator[bytes]:
    """Yield exactly ``size`` bytes of ``body`` in chunks, then check it has ended.

    ``reserve(n)`` is called before reading each chunk of ``n`` bytes; ``False`` stops.

    Raises:
        Rejected: the body ended early (retryable) or ran long (refused), a read failed,
            or ``cancelled`` was set or ``reserve`` refused (not attempted).
    """
    left = size
    try:
        while left:
            amount = min(chunk_size, left)
            if (cancelled is not None and cancelled.is_set()) or (
                reserve is not None and not reserve(amount)
            ):
                raise Rejected(OutcomeStatus.NOT_ATTEMPTED, None)
            chunk = body.read(amount)
            if not chunk:
                raise Rejected(
                    OutcomeStatus.FAILED_RETRYABLE,
                    S3ServiceError(
                        "object body ended before its announced size",
                        ErrorCode.S3_BODY_TRUNCATED,
                        {**_context(source), "expected": size, "received": size - left},
                        operation="GetObject",
                    ),
                )
            left -= len(chunk)
            yield chunk
        if body.read(1):
            raise Rejected(
                OutcomeStatus.REFUSED,
                S3IntegrityError(
                    "object body is longer than its announced size",
                    ErrorCode.S3_BODY_TOO_LONG,
                    {**_context(source), "expected": size},
                ),
            )
    except Rejected:
        raise
    except Exception as exc:
        raise classify(exc, source) from exc


def prefetch(
    source: ObjectSource,
    item: BundleSource,
    chunk_size: int,
    cancelled: threading.Event,
    *,
    budget: Budget | None = None,
    taken_all: threading.Event | None = None,
) -> Fetched | Rejected:
    """Worker task: open, read whole, hash. Never raises (returns the rejection).

    With ``budget``, the body's bytes are taken from it chunk by chunk before each read
    (progressive prefetch: the next object fills as the writer frees memory); on failure
    they are given back. ``taken_all`` is set when this task no longer takes budget.
    """
    taken = 0

    def reserve(amount: int) -> bool:
        nonlocal taken
        if budget is None:
            return True
        if not budget.take(amount, cancelled):
            return False
        taken += amount
        return True

    try:
        if cancelled.is_set():
            return Rejected(OutcomeStatus.NOT_ATTEMPTED, None)
        try:
            opened = open_checked(source, item)
        except Rejected as rejected:
            return rejected
        etag = normalize_etag(opened.etag) or normalize_etag(item.etag)
        try:
            digest = hashlib.sha256()
            chunks: list[bytes] = []
            size = opened.content_length
            for chunk in read_exact(
                opened.body, size, item, chunk_size, cancelled=cancelled, reserve=reserve
            ):
                digest.update(chunk)
                chunks.append(chunk)
        except Rejected as rejected:
            rejected.etag = etag
            if budget is not None:
                budget.give(taken)
            return rejected
        finally:
            _close_quietly(opened.body)
    finally:
        if taken_all is not None:
            taken_all.set()
    return Fetched(
        chunks=chunks,
        size=opened.content_length,
        sha256=digest.hexdigest(),
        etag=etag,
        last_modified=opened.last_modified,
        charge=taken,
    )
