"""A streaming S3 upload as a binary file object, with parts uploaded in parallel.

[`MultipartWriter`][data_aggregator.clients.MultipartWriter] is an `io.BufferedIOBase` you
``write()`` to (a tar or gzip stream, for instance). Bytes are cut into parts, each buffered in a
`SpooledTemporaryFile` (memory up to the spool threshold, then disk), and
uploaded by a small thread pool while the caller keeps writing. At most
``max_concurrency`` parts are in flight; a caller that gets ahead blocks in ``write()``,
so memory plus disk stay within about ``max_concurrency + 1`` parts.

* A stream that fits in one part (zero bytes included) is sent as one ``PutObject``.
* Every request carries an S3 SHA-256 checksum S3 verifies on receipt; the writer also
  keeps the SHA-256 of the whole stream and records it as ``content-sha256`` (metadata for
  a single ``PutObject``, a tag for multipart uploads, whose metadata is fixed before the
  first byte is known; see ``docs/clients.md``).
* Any failure aborts: ``__exit__`` with an exception, a failed part (the typed error is
  raised by the next ``write()``/``close()``), a failed completion. In-flight parts are
  waited for first, so ``AbortMultipartUpload`` leaves nothing behind.

Part sizes follow [`part_size_for`][data_aggregator.clients.part_size_for]: the requested
size, clamped to S3's 5 MiB-5 GiB, doubling every `PARTS_PER_DOUBLING` parts, so an unknown-size
stream of up to 5 TiB never needs more than 10,000 parts.

Why not s3transfer's managed upload (``upload_fileobj``)? It returns neither the ETag nor
the VersionId of what it wrote (boto/s3transfer#82, boto/boto3#2861), buffers parts of a
non-seekable stream in memory only (no spill to disk), keeps a fixed part size for streams
of unknown size (so it fails past 10,000 parts), and cannot take our own per-part checksum.
"""

from __future__ import annotations

import base64
import hashlib
import io
import logging
import sys
from concurrent.futures import Future, ThreadPoolExecutor, wait
from enum import Enum
from typing import TYPE_CHECKING, Any, TypedDict

from data_aggregator import _deadline
from data_aggregator._sizes import (
    DEFAULT_PART_SIZE_MB,
    DEFAULT_UPLOAD_CONCURRENCY,
    MAX_OBJECT_SIZE,
    MAX_PARTS,
    MIB,
)
from data_aggregator.clients import _part_uploads, _types
from data_aggregator.clients._part_uploads import (
    WriterStats,
    clamp_part_size,
    part_size_for,
)
from data_aggregator.clients._types import (
    UploadResult,
)
from data_aggregator.exceptions import (
    DataAggregatorError,
    DeadlineExceededError,
    ErrorCode,
    S3Error,
    ValidationError,
    ValidationErrorCode,
)

if TYPE_CHECKING:
    from collections.abc import Mapping
    from tempfile import SpooledTemporaryFile
    from types import TracebackType

    from typing_extensions import Buffer, Self

    from data_aggregator.clients._s3 import S3Client

__all__ = ["MultipartWriter", "WriterOptions", "WriterState"]

logger = logging.getLogger(__name__)


class WriterOptions(TypedDict, total=False):
    """How a [`MultipartWriter`][data_aggregator.clients.MultipartWriter] cuts and uploads
    a stream: its keyword arguments of that name, for code that opens writers on behalf of
    others ([`MultipartSink`][data_aggregator.bundle.MultipartSink]). A key left out takes
    the writer's default."""

    part_size: int
    max_concurrency: int
    spool_max_size: int | None
    spool_dir: str | None


class WriterState(Enum):
    """Life cycle of a [`MultipartWriter`][data_aggregator.clients.MultipartWriter]."""

    OPEN = "open"
    COMPLETED = "completed"
    ABORTED = "aborted"


class MultipartWriter(io.BufferedIOBase):
    """Write a stream of unknown size to ``s3://bucket/key``, parts uploaded in parallel.

    Use it as a context manager: leaving the block normally completes the upload, leaving
    it with an exception aborts it. The result is in
    [`result`][data_aggregator.clients.MultipartWriter.result] after
    [`close`][data_aggregator.clients.MultipartWriter.close] (or returned by
    [`finish`][data_aggregator.clients.MultipartWriter.finish]).

    Args:
        s3: The client (its owner, KMS key and error mapping apply to every request).
        bucket: Destination bucket.
        key: Destination key.
        extra_args: Upload arguments (``ContentType``, ``Metadata``, ``Tagging`` ...),
            checked against `ALLOWED_UPLOAD_ARGS`.
        part_size: Base part size in bytes, clamped by
            [`clamp_part_size`][data_aggregator.clients.clamp_part_size] and grown by
            [`part_size_for`][data_aggregator.clients.part_size_for].
        max_concurrency: Parts uploaded at once.
        spool_max_size: In-memory size of a part buffer before it spills to disk;
            ``None``: the part size (memory only).
        spool_dir: Directory of spilled buffers (default: `tempfile`'s, ``/tmp``).
        tag_sha256: Tag multipart objects with ``content-sha256`` after completion.

    Raises:
        ValidationError: invalid ``extra_args``, or ``Tagging`` leaving no room for the
            ``content-sha256`` tag.
    """

    def __init__(
        self,
        s3: S3Client,
        bucket: str,
        key: str,
        *,
        extra_args: Mapping[str, Any] | None = None,
        part_size: int = DEFAULT_PART_SIZE_MB * MIB,
        max_concurrency: int = DEFAULT_UPLOAD_CONCURRENCY,
        spool_max_size: int | None = None,
        spool_dir: str | None = None,
        tag_sha256: bool = True,
    ) -> None:
        super().__init__()
        # "Closed" until fully built, so that __del__ of a half-built writer does nothing.
        self._state = WriterState.ABORTED
        self._s3 = s3
        self.bucket = bucket
        self.key = key
        self._extra_args = _types.validate_upload_args(extra_args)
        self._tags = _types.parse_tagging(self._extra_args.get("Tagging"))
        if tag_sha256 and len(self._tags) >= _types.MAX_TAGS:
            room = _types.MAX_TAGS - 1
            msg = f"Tagging has {len(self._tags)} tags; at most {room} leave room for"
            msg += f" the {_types.CONTENT_SHA256!r} tag (or pass tag_sha256=False)"
            raise ValidationError(
                msg, ValidationErrorCode.INVALID_UPLOAD_ARGUMENT, {"argument": "Tagging"}
            )
        self._tag_sha256 = tag_sha256
        self._part_size = clamp_part_size(part_size)
        self._max_concurrency = max(1, max_concurrency)
        self._spool_max_size = spool_max_size or self._part_size
        self._spool_dir = spool_dir

        self._sha256 = hashlib.sha256()
        self._size = 0
        self._current: _part_uploads.PartBuffer | None = None
        self._upload_id: str | None = None
        self._executor: ThreadPoolExecutor | None = None
        self._futures: list[Future[_types.CompletedPart | None]] = []
        self._uploads = _part_uploads.PartUploader(s3, bucket, key, self._max_concurrency)
        self._result: UploadResult | None = None
        self._state = WriterState.OPEN

    # ------------------------------------------------------------------ io.IOBase

    @property
    def closed(self) -> bool:
        """``True`` once the upload completed or was aborted."""
        return self._state is not WriterState.OPEN

    @property
    def state(self) -> WriterState:
        """Where the writer is in its life cycle."""
        return self._state

    @property
    def mode(self) -> str:
        """Always ``"wb"``."""
        return "wb"

    def writable(self) -> bool:
        """Return ``True``: the writer accepts bytes until closed."""
        return True

    def readable(self) -> bool:
        """Return ``False``: the writer cannot be read."""
        return False

    def seekable(self) -> bool:
        """Return ``False``: the writer is append-only."""
        return False

    def tell(self) -> int:
        """Number of bytes written so far."""
        return self._size

    def flush(self) -> None:
        """Do nothing (parts are uploaded as they fill); raise if closed, as files do."""
        self._check_open()

    def write(self, data: Buffer) -> int:
        """Append ``data`` (any bytes-like object); return its length.

        Blocks while ``max_concurrency`` parts are already uploading.

        Raises:
            S3Error: a typed error of a failed part upload or of
                ``CreateMultipartUpload``; the upload has been aborted.
            ValueError: the writer is closed.
        """
        self._check_open()
        self._raise_if_failed()
        view = memoryview(data).cast("B")
        count = view.nbytes
        if not count:
            return 0
        try:
            if self._size + count > MAX_OBJECT_SIZE:
                msg = f"s3://{self.bucket}/{self.key} would exceed S3's 5 TiB object limit"
                raise S3Error(msg, ErrorCode.S3_OBJECT_TOO_LARGE, self._context())
            self._sha256.update(view)
            offset = 0
            while offset < count:
                part = self._current
                if part is None or part.full:
                    if part is not None:
                        self._submit_current()
                    part = self._new_part()
                offset += part.write(view[offset:])
            self._size += count
        except BaseException:
            self._abort_quietly()
            raise
        return count

    def close(self) -> None:
        """Finish the upload (complete it, or send the single ``PutObject``).

        Idempotent. On failure the upload is aborted and the typed error raised; the
        writer is closed either way.
        """
        if self.closed:
            return
        try:
            self._raise_if_failed()
            if self._upload_id is None:
                self._result = self._put_single()
            else:
                self._result = self._complete()
        except BaseException:
            self._abort_quietly()
            raise
        finally:
            self._release_resources()
        self._state = WriterState.COMPLETED

    def prepare_commit(self) -> None:
        """Upload every buffered part and wait for all parts, so that `finish` only sends
        the final request (``CompleteMultipartUpload``, or the single ``PutObject`` of a
        small object, which has nothing to prepare). The wait ends at the current
        invocation deadline, if any.

        Raises:
            DeadlineExceededError: the deadline passed before every part was uploaded
                (the upload is aborted).
            S3Error: a part failed (the upload is aborted).
        """
        self._check_open()
        if self._upload_id is None:
            return
        try:
            self._submit_current()
            _done, running = wait(self._futures, timeout=_deadline.wait_timeout())
            if running:
                raise DeadlineExceededError(
                    "the bundle's parts were not uploaded before the deadline",
                    context={"operation": "UploadPart", "parts_running": len(running)},
                )
            self._raise_if_failed()
        except BaseException:
            self._abort_quietly()
            raise

    def finish(self) -> UploadResult:
        """Close the writer and return what was uploaded."""
        self.close()
        if self._result is None:
            msg = f"the upload of s3://{self.bucket}/{self.key} was aborted"
            raise S3Error(msg, ErrorCode.S3_UPLOAD_ABORTED, self._context())
        return self._result

    def abort(self) -> None:
        """Discard everything: buffered bytes and uploaded parts. No-op once closed.

        Raises:
            S3Error: ``AbortMultipartUpload`` failed (parts may remain until a bucket
                lifecycle rule removes them).
        """
        if self.closed:
            return
        error = self._abort()
        if error is not None:
            raise error

    @property
    def result(self) -> UploadResult | None:
        """The finished upload, once [`close`][data_aggregator.clients.MultipartWriter.close]
        succeeded."""
        return self._result

    @property
    def upload_id(self) -> str | None:
        """The multipart upload id, while one is open."""
        return self._upload_id

    @property
    def stats(self) -> WriterStats:
        """A snapshot of the writer's counters."""
        return self._uploads.stats()

    def __enter__(self) -> Self:
        self._check_open()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if exc_type is None:
            self.close()
        else:
            self._abort_quietly()

    def __del__(self) -> None:
        # Never complete a half-written stream on garbage collection (io.IOBase would call
        # close()): abort it instead.
        if getattr(self, "_state", None) is WriterState.OPEN and not sys.is_finalizing():
            logger.warning("MultipartWriter collected while open: aborting", extra=self._context())
            try:
                self._abort_quietly()
            except Exception:  # nothing may escape a finalizer
                logger.exception("abort on collection failed", extra=self._context())

    def __repr__(self) -> str:
        return (
            f"MultipartWriter(bucket={self.bucket!r}, key={self.key!r}, "
            f"state={self._state.value!r}, bytes={self._size})"
        )

    # ------------------------------------------------------------------ parts

    def _check_open(self) -> None:
        if self.closed:
            msg = f"I/O operation on a {self._state.value} MultipartWriter"
            raise ValueError(msg)

    def _context(self, **extra: Any) -> dict[str, Any]:
        return {"bucket": self.bucket, "key": self.key, "upload_id": self._upload_id, **extra}

    def _new_part(self) -> _part_uploads.PartBuffer:
        if self._uploads.parts_started >= MAX_PARTS:  # unreachable below 5 TiB: a guard
            msg = f"s3://{self.bucket}/{self.key} would need more than {MAX_PARTS} parts"
            raise S3Error(msg, ErrorCode.S3_TOO_MANY_PARTS, self._context())
        number = self._uploads.buffer_opened()
        try:
            part = _part_uploads.PartBuffer(
                number,
                part_size_for(number, self._part_size),
                self._spool_max_size,
                self._spool_dir,
            )
        except BaseException:
            self._uploads.buffer_closed()
            raise
        self._current = part
        return part

    def _submit_current(self) -> None:
        """Hand the current (full) part to an upload thread, blocking for a free slot."""
        part = self._current
        if part is None:
            return
        if self._upload_id is None:
            self._upload_id = self._s3.create_multipart_upload(
                self.bucket, self.key, extra_args=self._extra_args
            )
            logger.debug("multipart upload created", extra=self._context())
        uploads = self._uploads
        # Blocks while max_concurrency parts are in flight, at most until the deadline.
        if not uploads.slots.acquire(timeout=_deadline.wait_timeout()):
            raise DeadlineExceededError(
                "no part upload finished before the deadline",
                context={"operation": "UploadPart", "parts_running": len(self._futures)},
            )
        if uploads.failure is not None:
            uploads.slots.release()
            self._raise_if_failed()
        if self._executor is None:
            self._executor = ThreadPoolExecutor(
                max_workers=self._max_concurrency, thread_name_prefix="data-aggregator-mpu"
            )
        uploads.started()
        try:
            # The caller's deadline goes with the part: no request past it, in any thread.
            future = _deadline.submit(self._executor, uploads.upload, part, self._upload_id)
        except BaseException:
            uploads.not_started()
            raise
        self._current = None
        self._futures.append(future)

    # ------------------------------------------------------------------ finishing

    def _put_single(self) -> UploadResult:
        part = self._current
        body: bytes | SpooledTemporaryFile[bytes] = b""
        if part is not None:
            part.spool.seek(0)
            body = part.spool
        result = self._s3.put_object(
            self.bucket,
            self.key,
            body,
            extra_args=self._extra_args,
            sha256=self._sha256.digest(),
            content_length=self._size,
        )
        logger.debug("single-part upload done", extra=self._context(size=self._size))
        return result

    def _complete(self) -> UploadResult:
        upload_id = self._upload_id
        assert upload_id is not None  # noqa: S101 - guarded by the caller
        self._submit_current()
        wait(self._futures)
        self._raise_if_failed()
        parts = [part for future in self._futures if (part := future.result()) is not None]
        etag, version_id = self._s3.complete_multipart_upload(
            self.bucket, self.key, upload_id=upload_id, parts=parts
        )
        self._upload_id = None  # completed: nothing left to abort
        sha256 = self._sha256.hexdigest()
        tagged = self._tag_sha256 and self._tag(sha256, version_id)
        digests = b"".join(base64.b64decode(part.checksum_sha256) for part in parts)
        composite = base64.b64encode(hashlib.sha256(digests).digest()).decode("ascii")
        logger.debug(
            "multipart upload completed",
            extra=self._context(size=self._size, parts=len(parts)),
        )
        return UploadResult(
            bucket=self.bucket,
            key=self.key,
            etag=etag,
            version_id=version_id,
            size=self._size,
            sha256=sha256,
            checksum_sha256=f"{composite}-{len(parts)}",
            parts=len(parts),
            multipart=True,
            sha256_tagged=tagged,
        )

    def _tag(self, sha256: str, version_id: str | None) -> bool:
        """Best effort: the object is complete and durable whether or not this succeeds."""
        tags = {**self._tags, _types.CONTENT_SHA256: sha256}
        try:
            self._s3.put_object_tags(self.bucket, self.key, tags, version_id=version_id)
        except DataAggregatorError as exc:  # S3 errors, or past the deadline
            logger.warning(
                "could not tag the uploaded object with its SHA-256",
                extra={"error": exc.to_dict()},
            )
            return False
        return True

    # ------------------------------------------------------------------ failure

    def _raise_if_failed(self) -> None:
        failure = self._uploads.failure
        if failure is None:
            return
        failed_part = self._uploads.failed_part
        abort_error = self._abort()
        context = self._context(part_number=failed_part, upload_aborted=abort_error is None)
        if isinstance(failure, DataAggregatorError):
            for name, value in context.items():
                failure.context.setdefault(name, value)
            raise failure
        msg = f"uploading part {failed_part} of s3://{self.bucket}/{self.key} failed"
        raise S3Error(msg, ErrorCode.S3_UPLOAD_FAILED, context, operation="UploadPart") from failure

    def _abort_quietly(self) -> None:
        if self.closed:
            return
        error = self._abort()
        if error is not None:
            logger.error("aborting the multipart upload failed", extra={"error": error.to_dict()})

    def _abort(self) -> DataAggregatorError | None:
        """Stop, wait for in-flight parts (until the current deadline, if any), abort the
        upload; return the abort's error. A part still running at the deadline is left
        behind: it may land after the abort, for the bucket's lifecycle rule to remove."""
        self._state = WriterState.ABORTED
        self._uploads.cancelled.set()
        _done, running = wait(self._futures, timeout=_deadline.wait_timeout())
        self._release_resources(wait_for_parts=not running)
        upload_id, self._upload_id = self._upload_id, None
        if upload_id is None:
            return None
        try:
            self._s3.abort_multipart_upload(self.bucket, self.key, upload_id=upload_id)
        except DataAggregatorError as exc:  # S3 errors, or past the deadline
            exc.context.setdefault("upload_id", upload_id)
            return exc
        logger.info("multipart upload aborted", extra=self._context(aborted_upload=upload_id))
        return None

    def _release_resources(self, *, wait_for_parts: bool = True) -> None:
        if self._current is not None:
            self._current.close()
            self._current = None
            self._uploads.buffer_closed()
        if self._executor is not None:
            self._executor.shutdown(wait=wait_for_parts, cancel_futures=not wait_for_parts)
            self._executor = None
