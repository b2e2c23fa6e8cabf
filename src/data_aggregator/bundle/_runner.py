"""One run of the bundle engine: the prefetch window, the single writer, rollover, outcomes.

Private; `data_aggregator.bundle.BundleEngine` builds a `BundleRunner` per
call of ``run``. Threads: the caller's thread is the only writer (tar, compressor, sink);
a pool of ``fetch_concurrency`` workers only opens, reads and hashes object bodies.

Ordering and memory: members are written in input order. The writer dispatches fetches in
input order too, as far ahead as two bounds allow: at most ``4 * fetch_concurrency`` items
ahead, and the sizes of prefetched-but-unwritten bodies summing to at most
``in_flight_bytes`` (budget is given back chunk by chunk as bytes are written). Because
budget is only ever taken in input order, the item the writer waits for always has its
budget: no deadlock. An object larger than ``in_flight_bytes`` (or of unknown size) is not
prefetched: the writer opens it when its turn comes, checks ETag and size, and streams it
chunk by chunk straight into the tar.

Failures end where they are decided: a source object's as its outcome (`Rejected`), the
sink's as `SinkFailure` (the bundle is aborted, the run stops), a ``bundle_key`` that
raises as `_BundleKeyFailure` (the next bundle is never opened, the run stops).
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from typing import TYPE_CHECKING

from data_aggregator.bundle._fetch import (
    Budget,
    Fetched,
    Rejected,
    normalize_etag,
    open_checked,
    prefetch,
    read_exact,
)
from data_aggregator.bundle._manifest import ManifestMember
from data_aggregator.bundle._naming import NameRequest, assign_member_names
from data_aggregator.bundle._tar import member_header
from data_aggregator.bundle._types import (
    BundleRun,
    ObjectOutcome,
    OutcomeStatus,
    StopReason,
)
from data_aggregator.bundle._writer import OpenBundle, SinkFailure, upload_error
from data_aggregator.exceptions import (
    BundleUploadError,
    DataAggregatorError,
    ValidationError,
)

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from data_aggregator.bundle._codecs import CodecSpec
    from data_aggregator.bundle._types import (
        BundleSink,
        BundleSource,
        BundleSummary,
        ObjectSource,
    )

__all__ = ["BundleRunner", "RunSettings"]

logger = logging.getLogger("data_aggregator.bundle")

_SHA256_PLACEHOLDER = "0" * 64


@dataclass(frozen=True, slots=True)
class RunSettings:
    """Engine settings a run needs."""

    source: ObjectSource
    sink: BundleSink
    codec: CodecSpec
    fetch_concurrency: int
    in_flight_bytes: int
    max_bundle_size_bytes: int | None
    chunk_size: int
    sanitize: Callable[[str], str]
    clock: Callable[[], float]

    def now(self) -> datetime:
        """The clock's time, in UTC."""
        return datetime.fromtimestamp(self.clock(), timezone.utc)


class _BundleKeyFailure(Exception):  # noqa: N818 - internal signal
    """Internal: ``bundle_key(n)`` raised, so bundle ``n`` cannot be opened."""

    def __init__(self, number: int, cause: Exception) -> None:
        super().__init__(type(cause).__name__)
        self.number = number
        self.cause = cause


@dataclass(slots=True)
class _Item:
    index: int
    source: BundleSource
    name: str
    streamed: bool


class BundleRunner:
    """Bundle ``sources`` once; `execute` returns the `BundleRun`."""

    def __init__(
        self,
        settings: RunSettings,
        sources: Sequence[BundleSource],
        bundle_key: Callable[[int], str],
        should_continue: Callable[[], bool],
        before_commit: Callable[[str, Sequence[object]], None] | None = None,
    ) -> None:
        self._settings = settings
        self._before_commit = before_commit
        self._sources = list(sources)
        self._bundle_key = bundle_key
        self._should_continue = should_continue
        self._outcomes: list[ObjectOutcome | None] = [None] * len(self._sources)
        self._items: list[_Item] = []
        self._window: deque[tuple[_Item, Future[Fetched | Rejected] | None]] = deque()
        self._dispatched = 0
        self._budget = Budget(settings.in_flight_bytes)
        self._charges: dict[int, int] = {}
        self._progressive: threading.Event | None = None
        self._max_ahead = max(4 * settings.fetch_concurrency, 16)
        self._cancelled = threading.Event()
        self._bundle: OpenBundle | None = None
        self._summaries: list[BundleSummary] = []
        self._stop: StopReason | None = None
        workers = max(1, min(settings.fetch_concurrency, len(self._sources)))
        self._pool = ThreadPoolExecutor(workers, thread_name_prefix="bundle-fetch")

    # ------------------------------------------------------------------ planning

    def _plan(self) -> None:
        """Sanitize every name (refusing unsafe ones), then assign unique member names."""
        named: list[tuple[int, str]] = []
        for index, source in enumerate(self._sources):
            try:
                named.append((index, self._settings.sanitize(source.name or source.key)))
            except ValidationError as exc:
                self._set(index, OutcomeStatus.REFUSED, error=exc)
        requests = [
            NameRequest(
                base,
                self._sources[i].bucket,
                self._sources[i].key,
                self._sources[i].version_id,
                self._sources[i].sequencer,
            )
            for i, base in named
        ]
        names = assign_member_names(requests, self._settings.sanitize)
        for (index, _), name in zip(named, names, strict=True):
            source = self._sources[index]
            streamed = source.size is None or source.size > self._settings.in_flight_bytes
            self._items.append(_Item(index, source, name, streamed))

    # ------------------------------------------------------------------ outcomes

    def _set(
        self,
        index: int,
        status: OutcomeStatus,
        *,
        error: DataAggregatorError | None = None,
        etag: str | None = None,
        bundle_key: str | None = None,
        entry: ManifestMember | None = None,
    ) -> None:
        source = self._sources[index]
        if entry is not None:
            outcome = ObjectOutcome(
                index,
                source,
                status,
                bundle_key=bundle_key,
                member_name=entry.name,
                sha256=entry.sha256,
                size=entry.size,
                etag=entry.etag,
            )
        else:
            outcome = ObjectOutcome(index, source, status, etag=etag, error=error)
        self._outcomes[index] = outcome
        if status is not OutcomeStatus.BUNDLED:
            logger.debug(
                "object not bundled",
                extra={
                    "bucket": source.bucket,
                    "key": source.key,
                    "status": status.value,
                    "error_code": error.error_code if error else None,
                },
            )

    def _reject(self, item: _Item, rejected: Rejected) -> None:
        self._set(item.index, rejected.status, error=rejected.error, etag=rejected.etag)

    # ------------------------------------------------------------------ run

    def execute(self) -> BundleRun:
        """Run to the end; per-object problems become outcomes, never exceptions."""
        try:
            self._plan()
            self._loop()
            if self._stop is not StopReason.UPLOAD_FAILED:
                self._close_guarded()
        except BaseException:
            self._abort_bundle(BundleUploadError("bundle run interrupted", "BUNDLE_INTERRUPTED"))
            raise
        finally:
            self._cancelled.set()
            self._pool.shutdown(wait=True, cancel_futures=True)
        outcomes = tuple(
            outcome or ObjectOutcome(i, self._sources[i], OutcomeStatus.NOT_ATTEMPTED)
            for i, outcome in enumerate(self._outcomes)
        )
        return BundleRun(outcomes, tuple(self._summaries), self._stop)

    def _top_up(self) -> None:
        """Dispatch fetches in input order while the window and the byte budget allow."""
        while self._dispatched < len(self._items) and len(self._window) < self._max_ahead:
            item = self._items[self._dispatched]
            if item.streamed:
                self._window.append((item, None))
                self._dispatched += 1
                continue
            if self._progressive is not None and not self._progressive.is_set():
                return  # the progressive item must hold its whole size before the next
            charge = item.source.size or 0
            if self._budget.try_take(charge):
                self._charges[item.index] = charge
                future = self._pool.submit(
                    prefetch,
                    self._settings.source,
                    item.source,
                    self._settings.chunk_size,
                    self._cancelled,
                )
            else:
                # Not enough budget free now: the worker takes it chunk by chunk as the
                # writer frees it. Only this item does so, and every earlier one holds its
                # whole charge, so the writer always gets to free what it waits for.
                self._progressive = threading.Event()
                future = self._pool.submit(
                    prefetch,
                    self._settings.source,
                    item.source,
                    self._settings.chunk_size,
                    self._cancelled,
                    budget=self._budget,
                    taken_all=self._progressive,
                )
            self._window.append((item, future))
            self._dispatched += 1

    def _release(self, index: int, amount: int | None = None) -> None:
        left = self._charges.get(index, 0)
        give = left if amount is None else min(amount, left)
        self._charges[index] = left - give
        self._budget.give(give)

    def _loop(self) -> None:
        while True:
            self._top_up()
            if not self._window:
                return
            if not self._should_continue():
                self._stop = StopReason.CALLER
                logger.info(
                    "bundle run stopped by should_continue",
                    extra={"not_attempted": len(self._items) - self._done_count()},
                )
                return
            item, future = self._window.popleft()
            try:
                if future is None:
                    self._write_streamed(item)
                else:
                    result = future.result()
                    if isinstance(result, Fetched) and result.charge:
                        self._charges[item.index] = result.charge
                    if isinstance(result, Rejected):
                        self._release(item.index)
                        self._reject(item, result)
                    else:
                        self._write_prefetched(item, result)
            except SinkFailure as failure:
                self._fail_bundle(failure)
                if self._outcomes[item.index] is None:
                    self._set(
                        item.index, OutcomeStatus.FAILED_RETRYABLE, error=upload_error(failure)
                    )
                self._stop = StopReason.UPLOAD_FAILED
                return
            except _BundleKeyFailure as failure:
                # No bundle is open (the last one was committed before the key was asked
                # for): this item and the rest stay NOT_ATTEMPTED.
                self._stop = StopReason.BUNDLE_KEY_FAILED
                logger.warning(
                    "bundle run stopped: bundle_key raised",
                    exc_info=failure.cause,
                    extra={
                        "bundle_number": failure.number,
                        "not_attempted": len(self._items) - self._done_count(),
                    },
                )
                return

    def _done_count(self) -> int:
        return sum(outcome is not None for outcome in self._outcomes)

    # ------------------------------------------------------------------ members

    def _prepare(
        self, item: _Item, size: int, etag: str | None, last_modified: datetime | None
    ) -> tuple[OpenBundle, ManifestMember, bytes]:
        """Roll over if this member would overflow the bundle.

        Returns the bundle to write to, the member's manifest entry (SHA-256 still a
        placeholder) and its tar header.

        Raises:
            SinkFailure: committing the full bundle or opening the next one failed.
            _BundleKeyFailure: ``bundle_key`` raised for the next bundle.
        """
        moment = last_modified or self._settings.now()
        header = member_header(item.name, size, max(int(moment.timestamp()), 0))
        entry = ManifestMember(
            name=item.name,
            bucket=item.source.bucket,
            key=item.source.key,
            version_id=item.source.version_id,
            sequencer=item.source.sequencer,
            etag=etag,
            size=size,
            sha256=_SHA256_PLACEHOLDER,
        )
        bundle = self._bundle
        if bundle is not None and not bundle.fits(
            header, size, entry, self._settings.max_bundle_size_bytes
        ):
            self._close_guarded(reraise=True)
            bundle = None
        if bundle is None:
            number = len(self._summaries) + 1
            try:
                key = self._bundle_key(number)
            except Exception as exc:
                raise _BundleKeyFailure(number, exc) from exc
            settings = self._settings
            bundle = OpenBundle.open(settings.sink, number, key, settings.codec, settings.now())
            self._bundle = bundle
        return bundle, entry, header

    def _write_prefetched(self, item: _Item, fetched: Fetched) -> None:
        try:
            bundle, entry, header = self._prepare(
                item, fetched.size, fetched.etag, fetched.last_modified
            )
            entry = replace(entry, sha256=fetched.sha256)
            bundle.begin_member(item.index, item.source.token, entry, header)
            chunks = fetched.chunks
            chunks.reverse()
            while chunks:
                chunk = chunks.pop()
                bundle.write(chunk)
                self._release(item.index, len(chunk))
                self._top_up()
        finally:
            self._release(item.index)

    def _write_streamed(self, item: _Item) -> None:
        try:
            opened = open_checked(self._settings.source, item.source)
        except Rejected as rejected:
            self._reject(item, rejected)
            return
        etag = normalize_etag(opened.etag) or normalize_etag(item.source.etag)
        size = opened.content_length
        try:
            bundle, entry, header = self._prepare(item, size, etag, opened.last_modified)
            digest = hashlib.sha256()
            bundle.begin_member(item.index, item.source.token, entry, header)
            try:
                for chunk in read_exact(opened.body, size, item.source, self._settings.chunk_size):
                    digest.update(chunk)
                    bundle.write(chunk)
                    self._top_up()
            except Rejected as rejected:
                # Bytes already in the tar cannot be taken back: drop this whole bundle.
                rejected.etag = etag
                self._poison(item, rejected)
                return
            bundle.set_sha256(digest.hexdigest())
        finally:
            opened.body.close()

    # ------------------------------------------------------------------ bundles

    def _close_guarded(self, *, reraise: bool = False) -> None:
        """Commit the open bundle; on failure abort it, fail its objects, stop the run."""
        bundle = self._bundle
        if bundle is None:
            return
        try:
            summary = bundle.commit(self._before_commit)
        except SinkFailure as failure:
            self._fail_bundle(failure)
            self._stop = StopReason.UPLOAD_FAILED
            if reraise:
                raise
            return
        self._bundle = None
        self._summaries.append(summary)
        for member in bundle.members:
            self._set(
                member.index, OutcomeStatus.BUNDLED, bundle_key=bundle.key, entry=member.entry
            )

    def _abort_bundle(self, reason: DataAggregatorError) -> None:
        """Abort the open upload; its members become failed-retryable with ``reason``."""
        bundle = self._bundle
        if bundle is None:
            return
        self._bundle = None
        bundle.abort(reason.error_code)
        for member in bundle.members:
            if self._outcomes[member.index] is None:
                self._set(member.index, OutcomeStatus.FAILED_RETRYABLE, error=reason)

    def _fail_bundle(self, failure: SinkFailure) -> None:
        key = self._bundle.key if self._bundle is not None else None
        self._abort_bundle(upload_error(failure, key))

    def _poison(self, item: _Item, rejected: Rejected) -> None:
        """A streamed member broke mid-way: abort the bundle and carry on with a new one."""
        self._reject(item, rejected)
        key = self._bundle.key if self._bundle is not None else None
        self._abort_bundle(
            BundleUploadError(
                "bundle discarded: another member's body failed while being written",
                "BUNDLE_MEMBER_FAILED",
                {"bundle_key": key, "member": item.name},
            )
        )
