"""One run of the bundle engine: the single writer, rollover, outcomes.

Private; `data_aggregator.bundle.BundleEngine` builds a `BundleRunner` per
call of ``run``. Threads: the caller's thread is the only writer (tar, compressor, sink);
the `PrefetchWindow` (``_window.py``) fetches bodies ahead of it, in input order and
within ``in_flight_bytes``, once the run's `Admission` (if any) admits them. Members are
written in input order, each into the bundle its `BundlePlan` numbers (``_plan.py``).
An object larger than ``in_flight_bytes`` (or of unknown size) is not prefetched: the
writer opens it when its turn comes, checks ETag and size, and streams it chunk by chunk
straight into the tar.

In a concat bundle every member must be UTF-8 text: a prefetched body is checked whole
before any of it is written (an object that fails is refused alone, nothing of it enters
the bundle); a streamed body is checked chunk by chunk before each chunk is written, and
since the plan gives a streamed concat member a bundle of its own, a failure discards only
that bundle.

Failures end where they are decided: a source object's as its outcome (`Rejected`), the
sink's as `SinkFailure` (the bundle is aborted, the run stops), a ``bundle_key`` that
raises as `_BundleKeyFailure` (the next bundle is never opened, the run stops).
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from typing import TYPE_CHECKING

from data_aggregator import _deadline
from data_aggregator.bundle._concat import Utf8Check
from data_aggregator.bundle._fetch import (
    Fetched,
    Rejected,
    normalize_etag,
    open_checked,
    read_exact,
)
from data_aggregator.bundle._manifest import ManifestMember
from data_aggregator.bundle._tar import member_header
from data_aggregator.bundle._types import BundleRun, ObjectOutcome, OutcomeStatus, StopReason
from data_aggregator.bundle._window import PrefetchWindow
from data_aggregator.bundle._writer import OpenBundle, SinkFailure, upload_error
from data_aggregator.config import BundleFormat
from data_aggregator.exceptions import (
    BundleUploadError,
    DataAggregatorError,
    ErrorCode,
    ObjectNotTextError,
)

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from data_aggregator.bundle._admission import Admission
    from data_aggregator.bundle._codecs import CodecSpec
    from data_aggregator.bundle._plan import BundlePlan, Item
    from data_aggregator.bundle._types import (
        BundleSink,
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
    bundle_format: BundleFormat = BundleFormat.TAR
    sidecar_prefix: str = ""

    @property
    def concat(self) -> bool:
        """Whether bundles are concat (UTF-8 text members, no tar headers)."""
        return self.bundle_format is BundleFormat.CONCAT

    def now(self) -> datetime:
        """The clock's time, in UTC."""
        return datetime.fromtimestamp(self.clock(), timezone.utc)


def _check_text(check: Utf8Check, chunk: bytes, *, last: bool) -> None:
    """Check a streamed chunk before it is written (the last one completely).

    Raises:
        Rejected: the bytes are not UTF-8 (refused; the caller discards the bundle).
    """
    try:
        check.feed(chunk)
        if last:
            check.finish()
    except ObjectNotTextError as exc:
        raise Rejected(OutcomeStatus.REFUSED, exc) from None


class _BundleKeyFailure(Exception):  # noqa: N818 - internal signal
    """Internal: ``bundle_key(n)`` raised, so bundle ``n`` cannot be opened."""

    def __init__(self, number: int, cause: Exception) -> None:
        super().__init__(type(cause).__name__)
        self.number = number
        self.cause = cause


class BundleRunner:
    """Bundle ``sources`` once; `execute` returns the `BundleRun`."""

    def __init__(
        self,
        settings: RunSettings,
        plan: BundlePlan,
        bundle_key: Callable[[int], str],
        should_continue: Callable[[], bool],
        before_commit: Callable[[str, Sequence[object]], None] | None = None,
        *,
        admission: Admission | None = None,
        after_commit: Callable[[BundleSummary, Sequence[object]], None] | None = None,
    ) -> None:
        self._settings = settings
        self._before_commit = before_commit
        self._after_commit = after_commit
        self._sources = list(plan.sources)
        self._bundle_key = bundle_key
        self._should_continue = should_continue
        self._admission = admission
        self._outcomes: list[ObjectOutcome | None] = [None] * len(self._sources)
        self._bundle: OpenBundle | None = None
        self._summaries: list[BundleSummary] = []
        self._stop: StopReason | None = None
        for index, error in plan.refused:
            self._set(index, OutcomeStatus.REFUSED, error=error)
        self._items = list(plan.items)
        self._window = PrefetchWindow(
            settings.source,
            self._items,
            fetch_concurrency=settings.fetch_concurrency,
            in_flight_bytes=settings.in_flight_bytes,
            chunk_size=settings.chunk_size,
            admission=admission,
        )

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

    def _reject(self, item: Item, rejected: Rejected) -> None:
        self._set(item.index, rejected.status, error=rejected.error, etag=rejected.etag)

    # ------------------------------------------------------------------ run

    def execute(self) -> BundleRun:
        """Run to the end; per-object problems become outcomes, never exceptions."""
        try:
            self._loop()
            if self._stop is not StopReason.UPLOAD_FAILED:
                self._close_guarded()
        except BaseException:
            self._abort_bundle(
                BundleUploadError("bundle run interrupted", ErrorCode.BUNDLE_INTERRUPTED)
            )
            raise
        finally:
            self._window.close()
        outcomes = tuple(
            outcome or ObjectOutcome(i, self._sources[i], OutcomeStatus.NOT_ATTEMPTED)
            for i, outcome in enumerate(self._outcomes)
        )
        return BundleRun(outcomes, tuple(self._summaries), self._stop)

    def _stopped_by_caller(self) -> None:
        self._stop = StopReason.CALLER
        logger.info(
            "bundle run stopped by should_continue",
            extra={"not_attempted": len(self._items) - self._done_count()},
        )

    def _loop(self) -> None:
        while True:
            self._window.top_up()
            if self._window.exhausted():
                return
            if self._window.is_empty():
                # The next item is not admitted yet: wait for it (or for the caller's stop).
                if not self._window.wait_for_admission(self._should_continue):
                    self._stopped_by_caller()
                    return
                continue
            if not self._should_continue():
                self._stopped_by_caller()
                return
            item, future = self._window.pop()
            try:
                if future is None:
                    self._write_streamed(item)
                else:
                    result = self._window.result(item, future, self._should_continue)
                    if result is None:  # told to stop while the fetch was running
                        self._stopped_by_caller()
                        return
                    if isinstance(result, Rejected):
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
            finally:
                if self._admission is not None:
                    self._admission.finish()

    def _done_count(self) -> int:
        return sum(outcome is not None for outcome in self._outcomes)

    # ------------------------------------------------------------------ members

    def _prepare(
        self, item: Item, size: int, etag: str | None, last_modified: datetime | None
    ) -> tuple[OpenBundle, ManifestMember, bytes]:
        """Roll over when this member is planned for the next bundle.

        Returns the bundle to write to, the member's manifest entry (SHA-256 still a
        placeholder) and its tar header.

        Raises:
            SinkFailure: committing the full bundle or opening the next one failed.
            _BundleKeyFailure: ``bundle_key`` raised for the next bundle.
        """
        moment = last_modified or self._settings.now()
        header = (
            b""
            if self._settings.concat
            else member_header(item.name, size, max(int(moment.timestamp()), 0))
        )
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
        if bundle is not None and bundle.number != item.bundle:
            self._close_guarded(reraise=True)
            bundle = None
        if bundle is None:
            number = item.bundle
            try:
                key = self._bundle_key(number)
            except Exception as exc:
                raise _BundleKeyFailure(number, exc) from exc
            settings = self._settings
            bundle = OpenBundle.open(
                settings.sink,
                number,
                key,
                settings.codec,
                settings.now(),
                bundle_format=settings.bundle_format,
                sidecar_prefix=settings.sidecar_prefix,
            )
            self._bundle = bundle
        return bundle, entry, header

    def _write_prefetched(self, item: Item, fetched: Fetched) -> None:
        try:
            if self._settings.concat:
                check = Utf8Check(item.source)
                try:
                    for chunk in fetched.chunks:
                        check.feed(chunk)
                    check.finish()
                except ObjectNotTextError as exc:  # before any byte is written: it alone fails
                    self._set(item.index, OutcomeStatus.REFUSED, error=exc, etag=fetched.etag)
                    return
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
                self._window.release(item.index, len(chunk))
                self._window.top_up()
        finally:
            self._window.release(item.index)

    def _write_streamed(self, item: Item) -> None:
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
            check = Utf8Check(item.source) if self._settings.concat else None
            written = 0
            bundle.begin_member(item.index, item.source.token, entry, header)
            deadline = _deadline.current()
            try:
                for chunk in read_exact(
                    opened.body,
                    size,
                    item.source,
                    self._settings.chunk_size,
                    # Past the deadline the bundle could not be committed anyway: stop.
                    reserve=None if deadline is None else lambda _n: not deadline.expired(),
                ):
                    written += len(chunk)
                    if check is not None:
                        _check_text(check, chunk, last=written == size)
                    digest.update(chunk)
                    bundle.write(chunk)
                    self._window.top_up()
            except Rejected as rejected:
                # Bytes already in the tar cannot be taken back: drop this whole bundle.
                rejected.etag = etag
                if rejected.status is OutcomeStatus.NOT_ATTEMPTED:  # the deadline passed
                    self._reject(item, rejected)
                    self._abort_bundle(
                        BundleUploadError(
                            "bundle discarded: the deadline passed while a member was written",
                            ErrorCode.BUNDLE_MEMBER_FAILED,
                            {
                                "bundle_key": bundle.key,
                                "member": item.name,
                                "cause_code": ErrorCode.DEADLINE_EXCEEDED,
                            },
                        )
                    )
                    return
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
        if self._after_commit is not None:
            try:
                self._after_commit(summary, [member.token for member in bundle.members])
            except Exception:  # the bundle is stored: the caller's follow-up is its own
                logger.exception("after_commit failed", extra={"bundle_key": bundle.key})

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

    def _poison(self, item: Item, rejected: Rejected) -> None:
        """A streamed member broke mid-way: abort the bundle and carry on with a new one."""
        self._reject(item, rejected)
        key = self._bundle.key if self._bundle is not None else None
        self._abort_bundle(
            BundleUploadError(
                "bundle discarded: another member's body failed while being written",
                ErrorCode.BUNDLE_MEMBER_FAILED,
                {"bundle_key": key, "member": item.name},
            )
        )
