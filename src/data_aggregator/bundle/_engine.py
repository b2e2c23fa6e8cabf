"""The bundle engine: fetch, tar, compress, upload (private)."""

from __future__ import annotations

import time
import uuid
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Protocol

from data_aggregator._sizes import (
    DEFAULT_FETCH_CONCURRENCY,
    DEFAULT_IN_FLIGHT_MB,
    MAX_USER_METADATA_BYTES,
    MIB,
)
from data_aggregator.bundle import _runner
from data_aggregator.bundle._codecs import resolve_codec as _resolve_codec
from data_aggregator.bundle._metadata import MAX_DESCRIPTION_BYTES, RESERVED_METADATA
from data_aggregator.bundle._naming import bundle_extension
from data_aggregator.bundle._plan import BundlePlan, plan_sources
from data_aggregator.bundle._types import (
    BundleRun,
    BundleSink,
    BundleSource,
    BundleUpload,
    ObjectSource,
    UploadReceipt,
)
from data_aggregator.config import (
    BundleFormat,
    Codec,
    normalise_key_prefix,
    resolve_bundle_format,
)
from data_aggregator.exceptions import (
    ConfigurationError,
    ErrorCode,
    ValidationError,
    ValidationErrorCode,
)
from data_aggregator.security import sanitize_s3_key

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping, Sequence
    from typing import Any

    from typing_extensions import Unpack

    from data_aggregator.bundle._admission import Admission
    from data_aggregator.bundle._types import BundleSummary
    from data_aggregator.clients import MultipartWriter, S3Client, WriterOptions
    from data_aggregator.config import AppConfig

__all__ = [
    "BundleEngine",
    "BundleSettings",
    "MultipartSink",
    "make_bundle_key_factory",
]


class BundleSettings(Protocol):
    """The settings [`BundleEngine.from_config`][data_aggregator.bundle.BundleEngine.from_config]
    reads (``AppConfig`` provides them)."""

    @property
    def bundle_codec(self) -> Codec: ...
    @property
    def effective_compression_level(self) -> int | None: ...
    @property
    def fetch_concurrency(self) -> int: ...
    @property
    def in_flight_bytes(self) -> int: ...
    @property
    def max_bundle_size_bytes(self) -> int: ...


def _utcnow() -> datetime:
    return datetime.now(timezone.utc)


def make_bundle_key_factory(
    *,
    extension: str,
    prefix: str = "",
    request_id: str | None = None,
    now: datetime | None = None,
) -> Callable[[int], str]:
    """The default bundle naming: ``<prefix>YYYY/MM/DD/HH/bundle-<request id>-<n><ext>``.

    Args:
        extension: The codec's extension (``BundleEngine.extension``: ``.tar.gz`` ...).
        prefix: Key prefix; a ``/`` is added when missing. Not checked as
            ``BUNDLE_PREFIX`` is
            ([`normalise_key_prefix`][data_aggregator.config.normalise_key_prefix]):
            this public factory has always taken any prefix (``/out``, ``a//b``, which S3
            accepts in a key), and the processor passes ``AppConfig.bundle_prefix``,
            already normalised by that rule.
        request_id: The invocation's request id; a random UUID when omitted.
        now: The time whose UTC hour names the folder; the current time when omitted.

    Returns:
        ``bundle_key(n)`` for ``n`` = 1, 2, ... (one per bundle of a run).
    """
    # Only the trailing "/" of normalise_key_prefix: its checks would refuse prefixes this
    # factory has always accepted (see the docstring).
    if prefix and not prefix.endswith("/"):
        prefix += "/"
    moment = (now or _utcnow()).astimezone(timezone.utc)
    rid = request_id or uuid.uuid4().hex
    folder = moment.strftime("%Y/%m/%d/%H")

    def bundle_key(number: int) -> str:
        return f"{prefix}{folder}/bundle-{rid}-{number}{extension}"

    return bundle_key


def _always() -> bool:
    return True


class BundleEngine:
    """Reusable bundler: build once (per container), call
    [`run`][data_aggregator.bundle.BundleEngine.run] per batch.

    Args:
        source: Opens objects; [`S3Client`][data_aggregator.clients.S3Client] fits. Must be
            thread-safe (called from the fetch workers).
        sink: Opens one upload per bundle (the multipart writer adapter).
        codec: ``gzip`` (default), ``zstd`` (needs ``s3-data-aggregator[zstd]``) or ``none``.
        bundle_format: ``tar`` (default) or ``concat``: the members' bytes concatenated,
            each ending in a newline, the manifest a sidecar object
            ``<bundle key>.manifest.json``; every member must be UTF-8 text (an object
            that is not is ``REFUSED`` with ``OBJECT_NOT_TEXT``, alone).
        sidecar_prefix: Concat bundles: the sidecar of bundle ``K`` is
            ``<sidecar_prefix>K.manifest.json`` (empty, the default: next to the bundle;
            a prefix keeps sidecars out of a query engine's table location). Checked and
            given its trailing ``/`` as ``SIDECAR_PREFIX`` is
            ([`normalise_key_prefix`][data_aggregator.config.normalise_key_prefix]):
            ``"manifests"`` is ``"manifests/"``. Every bundle records its sidecar's key
            in its metadata, so readers need not know it.
        compression_level: gzip 1-9 (default 6), zstd 1-22 (default 3); ``None`` for the
            codec's default.
        compression_threads: Threads compressing one bundle; ``None`` (default): the CPUs
            this process may use (the CPU count or the cgroup's CPU quota, whichever is
            smaller). With more than one, a bundle past its first 4 MiB of tar is
            compressed in independent 1 MiB blocks in parallel: a multi-member gzip or
            multi-frame zstd stream, which every reader reads as one. ``1``: one ordinary
            stream, as before.
        gzip_library: ``"zlib"`` or ``"zlib-ng"`` (a dependency); ``None``
            (default): ``zlib-ng`` when its compiled module for this Python and
            platform is installed, else Python's ``zlib``.
        fetch_concurrency: Worker threads fetching bodies ahead of the writer.
        in_flight_bytes: Budget for prefetched-but-unwritten bodies; larger objects are
            streamed straight into the bundle.
        max_bundle_size_bytes: Roll over to a new bundle before the tar stream (members,
            manifest and padding, before compression) would pass this; ``None``: no limit.
            A single member larger than the limit gets a bundle of its own.
        chunk_size: Read size for bodies.
        sanitize: Turns keys (or requested names) into safe member names.
        clock: The current time in seconds since the epoch, like ``time.time`` (the
            bundles' ``created_at`` and the default key folder).

    Raises:
        ConfigurationError: an invalid codec, level, limit or sidecar prefix.
    """

    def __init__(
        self,
        source: ObjectSource,
        sink: BundleSink,
        *,
        codec: Codec | str = Codec.GZIP,
        bundle_format: BundleFormat | str = BundleFormat.TAR,
        sidecar_prefix: str = "",
        compression_level: int | None = None,
        compression_threads: int | None = None,
        gzip_library: str | None = None,
        fetch_concurrency: int = DEFAULT_FETCH_CONCURRENCY,
        in_flight_bytes: int = DEFAULT_IN_FLIGHT_MB * MIB,
        max_bundle_size_bytes: int | None = None,
        chunk_size: int = MIB,
        sanitize: Callable[[str], str] = sanitize_s3_key,
        clock: Callable[[], float] = time.time,
    ) -> None:
        for name, value in (
            ("fetch_concurrency", fetch_concurrency),
            ("in_flight_bytes", in_flight_bytes),
            ("chunk_size", chunk_size),
            ("max_bundle_size_bytes", max_bundle_size_bytes or 1),
        ):
            if value < 1:
                raise ConfigurationError(
                    f"{name} must be at least 1",
                    ErrorCode.INVALID_BUNDLE_SETTING,
                    {"variable": name},
                )
        self.codec = _resolve_codec(
            codec, compression_level, threads=compression_threads, gzip_library=gzip_library
        )
        self.bundle_format = resolve_bundle_format(bundle_format)
        self.sidecar_prefix = normalise_key_prefix(sidecar_prefix, variable="sidecar_prefix")
        self._source = source
        self._sink = sink
        self.fetch_concurrency = fetch_concurrency
        self.in_flight_bytes = in_flight_bytes
        self.max_bundle_size_bytes = max_bundle_size_bytes
        self.chunk_size = chunk_size
        self._sanitize = sanitize
        self._clock = clock

    @classmethod
    def from_config(
        cls,
        config: BundleSettings,
        source: ObjectSource,
        sink: BundleSink,
        *,
        sanitize: Callable[[str], str] = sanitize_s3_key,
        clock: Callable[[], float] = time.time,
    ) -> BundleEngine:
        """Build an engine from ``AppConfig`` (or anything with the same attributes; one
        without ``compression_threads`` gets the automatic thread count, one without
        ``bundle_format`` writes tar, one without ``sidecar_prefix`` puts sidecars next to
        their bundles)."""
        return cls(
            source,
            sink,
            codec=config.bundle_codec,
            bundle_format=getattr(config, "bundle_format", BundleFormat.TAR),
            sidecar_prefix=getattr(config, "sidecar_prefix", ""),
            compression_level=config.effective_compression_level,
            compression_threads=getattr(config, "compression_threads", None),
            fetch_concurrency=config.fetch_concurrency,
            in_flight_bytes=config.in_flight_bytes,
            max_bundle_size_bytes=config.max_bundle_size_bytes,
            sanitize=sanitize,
            clock=clock,
        )

    def _utc_now(self) -> datetime:
        return datetime.fromtimestamp(self._clock(), timezone.utc)

    @property
    def extension(self) -> str:
        """File extension of this engine's bundles: ``.tar.gz``, ``.tar.zst`` or ``.tar``;
        ``.log.gz``, ``.log.zst`` or ``.log`` for concat bundles."""
        return bundle_extension(self.bundle_format, self.codec)

    def plan(self, sources: Sequence[BundleSource]) -> BundlePlan:
        """Name ``sources`` and number their bundles, as a `run` of them would.

        Every member name is sanitized and made unique over all the sources; sources are
        cut into bundles wherever the next member would take the tar stream past
        ``max_bundle_size_bytes`` (counted with a small slack and the manifest of the
        longest key S3 allows, so a planned bundle never overflows). A run of the plan
        puts each object in its planned bundle or in none. Sources whose name the
        sanitizer refuses are in ``refused``.
        """
        return plan_sources(
            sources,
            sanitize=self._sanitize,
            in_flight_bytes=self.in_flight_bytes,
            max_bundle_size_bytes=self.max_bundle_size_bytes,
            bundle_format=self.bundle_format,
        )

    def run(
        self,
        sources: Sequence[BundleSource] | BundlePlan,
        *,
        bundle_key: Callable[[int], str] | None = None,
        should_continue: Callable[[], bool] | None = None,
        before_commit: Callable[[str, Sequence[object]], None] | None = None,
        after_commit: Callable[[BundleSummary, Sequence[object]], None] | None = None,
        admission: Admission | None = None,
    ) -> BundleRun:
        """Bundle ``sources``; return one outcome per input, in input order.

        Args:
            sources: Objects to bundle, in the order their members should appear, or the
                [`plan`][data_aggregator.bundle.BundleEngine.plan] of them.
            bundle_key: Key of bundle ``n`` (1, 2, ...); default
                [`make_bundle_key_factory`][data_aggregator.bundle.make_bundle_key_factory] with
                a random request id. If it raises, bundle ``n`` is never opened: the run
                stops (``StopReason.BUNDLE_KEY_FAILED``), the object that would have opened
                it and every later one are ``NOT_ATTEMPTED``, earlier bundles are kept.
            should_continue: Asked (on the caller's thread) before each object and while
                waiting for a fetch or an admission; ``False`` finishes and uploads the
                open bundle and leaves the rest ``NOT_ATTEMPTED`` (fetches still running
                are abandoned, not awaited).
            before_commit: Called as ``before_commit(bundle_key, tokens)`` once a bundle's
                bytes are all written and before its upload is committed, with the
                ``token`` of each member in order (e.g. to mark the records "pending in
                this bundle" in the idempotency store). If it raises, the upload is aborted,
                the bundle's objects are ``FAILED_RETRYABLE`` with error code
                ``BUNDLE_COMMIT_HOOK_FAILED`` (the hook's own code in
                ``context["cause_code"]``) and the run stops, as for an upload failure.
                It runs after every byte, parts included, is uploaded: only the final
                request (``PutObject`` or ``CompleteMultipartUpload``) follows it.
            after_commit: Called as ``after_commit(summary, tokens)`` once a bundle is
                durably stored, with its members' tokens in order (e.g. to complete the
                records while the run goes on). An exception is logged, not raised.
            admission: Which sources the run may write, decided while it runs (see
                [`Admission`][data_aggregator.bundle.Admission]); the run waits, in input
                order, for each to be admitted or withdrawn. ``None``: every source.

        Per-object, upload and ``bundle_key`` failures are reported as outcomes (and
        ``stop_reason``), each decided where it happens. Only unexpected errors
        (bugs, ``KeyboardInterrupt``) propagate, after the open upload has been aborted.
        """
        settings = _runner.RunSettings(
            source=self._source,
            sink=self._sink,
            codec=self.codec,
            fetch_concurrency=self.fetch_concurrency,
            in_flight_bytes=self.in_flight_bytes,
            max_bundle_size_bytes=self.max_bundle_size_bytes,
            chunk_size=self.chunk_size,
            sanitize=self._sanitize,
            clock=self._clock,
            bundle_format=self.bundle_format,
            sidecar_prefix=self.sidecar_prefix,
        )
        keys = bundle_key or make_bundle_key_factory(extension=self.extension, now=self._utc_now())
        plan = sources if isinstance(sources, BundlePlan) else self.plan(sources)
        if admission is not None and len(admission) != len(plan.sources):
            raise ConfigurationError(
                "the admission must cover every source of the run",
                ErrorCode.INVALID_BUNDLE_SETTING,
                {"variable": "admission", "sources": len(plan.sources)},
            )
        runner = _runner.BundleRunner(
            settings,
            plan,
            keys,
            should_continue or _always,
            before_commit,
            admission=admission,
            after_commit=after_commit,
        )
        return runner.execute()


class _MultipartUpload:
    """`BundleUpload` over a `MultipartWriter`."""

    def __init__(self, writer: MultipartWriter) -> None:
        self._writer = writer

    def write(self, data: bytes, /) -> int:
        return self._writer.write(data)

    def prepare_commit(self) -> None:
        self._writer.prepare_commit()

    def commit(self) -> UploadReceipt:
        result = self._writer.finish()
        return UploadReceipt(
            key=result.key,
            size=result.size,
            sha256=result.sha256,
            etag=result.etag,
            version_id=result.version_id,
            bucket=result.bucket,
        )

    def abort(self) -> None:
        self._writer.abort()


def _extra_metadata_budget() -> int:
    """The most user metadata a sink may add to a bundle's (keys and values, UTF-8): S3's
    limit less the bundle's description at its longest and ``content-sha256`` (which a
    single-part upload carries as metadata)."""
    from data_aggregator.clients import CONTENT_SHA256  # noqa: PLC0415 - lazy

    sha256 = len(CONTENT_SHA256) + 64  # its value: a hex SHA-256
    return MAX_USER_METADATA_BYTES - MAX_DESCRIPTION_BYTES - sha256


def _check_extra_metadata(metadata: Mapping[str, Any]) -> None:
    """Refuse a sink's own metadata that would spoil or crowd out a bundle's description."""
    for key in metadata:
        if str(key).lower() in RESERVED_METADATA:
            raise ValidationError(
                f"Metadata key {key!r} is reserved: the bundle writer sets it",
                ValidationErrorCode.INVALID_UPLOAD_ARGUMENT,
                {"argument": "Metadata", "key": str(key)[:64]},
            )
    size = sum(len(str(key).encode()) + len(str(value).encode()) for key, value in metadata.items())
    budget = _extra_metadata_budget()
    if size > budget:
        raise ValidationError(
            f"Metadata takes {size} bytes, more than the {budget} left beside a bundle's own "
            "metadata (S3 allows 2,048 bytes of user metadata: keys and values, UTF-8)",
            ValidationErrorCode.INVALID_UPLOAD_ARGUMENT,
            {"argument": "Metadata", "bytes": size, "limit": budget},
        )


class MultipartSink:
    """Bundles go to ``s3://bucket/<bundle key>`` through
    [`MultipartWriter`][data_aggregator.clients.MultipartWriter].

    Each bundle streams into its own writer: parts upload in parallel while the engine
    keeps writing, the whole-object SHA-256 is recorded (``content-sha256``) and S3
    verifies every part's checksum. A failure aborts the multipart upload.

    Args:
        s3: The destination client (owner check, KMS key).
        bucket: Destination bucket.
        extra_args: More upload arguments (``Metadata``, ``Tagging``, ``StorageClass``
            ...), checked here by
            [`validate_upload_args`][data_aggregator.clients.validate_upload_args].
            ``ContentType`` defaults to the codec's. ``Metadata`` goes on every bundle
            and sidecar beside the bundle's own keys: it may not use those
            (``aggregator-format``, ``aggregator-sidecar``, ``content-sha256``, in any
            case), and must leave them room in S3's 2 KB of user metadata: at most 905
            bytes, keys and values in UTF-8 (2,048 less 1,065 for the bundle's
            description at its longest and 78 for ``content-sha256``).
        **writer_options: How each writer cuts and uploads its bundle (``part_size``,
            ``max_concurrency``, ``spool_max_size``, ``spool_dir``: see
            [`MultipartWriter`][data_aggregator.clients.MultipartWriter]); the writer's
            defaults for those left out.

    Raises:
        ValidationError: ``INVALID_UPLOAD_ARGUMENT``: an upload argument that is not
            allowed, a reserved metadata key, or too much metadata (``context`` names
            the argument).
    """

    def __init__(
        self,
        s3: S3Client,
        bucket: str,
        *,
        extra_args: Mapping[str, Any] | None = None,
        **writer_options: Unpack[WriterOptions],
    ) -> None:
        from data_aggregator.clients import validate_upload_args  # noqa: PLC0415 - lazy

        self.s3 = s3
        self.bucket = bucket
        self._extra_args = validate_upload_args(extra_args)
        _check_extra_metadata(self._extra_args.get("Metadata") or {})
        #: The keyword arguments each writer gets besides the bucket, key and upload arguments.
        self.writer_options = writer_options

    @classmethod
    def from_config(cls, config: AppConfig, s3: S3Client) -> MultipartSink:
        """Bundles go to ``DISTRIBUTION_BUCKET_NAME`` in parts of ``MULTIPART_PART_SIZE_MB``,
        ``UPLOAD_CONCURRENCY`` at a time, each held in memory up to
        ``SPOOL_FILE_MAX_SIZE_MB`` (then on disk)."""
        return cls(
            s3,
            config.distribution_bucket_name,
            part_size=config.multipart_part_size_bytes,
            max_concurrency=config.upload_concurrency,
            spool_max_size=config.spool_file_max_size_bytes,
        )

    def open_upload(
        self, key: str, *, content_type: str, metadata: Mapping[str, str]
    ) -> BundleUpload:
        """Start the upload of one bundle (or sidecar), with ``metadata`` added to the
        ``Metadata`` of ``extra_args`` (the bundle's own keys win)."""
        from data_aggregator.clients import MultipartWriter  # noqa: PLC0415 - lazy

        args = {"ContentType": content_type, **self._extra_args}
        if metadata:
            args["Metadata"] = {**(args.get("Metadata") or {}), **metadata}
        writer = MultipartWriter(self.s3, self.bucket, key, extra_args=args, **self.writer_options)
        return _MultipartUpload(writer)
