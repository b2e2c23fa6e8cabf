"""Public data types and protocols of the bundle engine (re-exported by ``bundle``)."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import TYPE_CHECKING, Protocol

from data_aggregator.exceptions import ErrorCode, ValidationError

if TYPE_CHECKING:
    from collections.abc import Mapping
    from datetime import datetime

    from data_aggregator.exceptions import DataAggregatorError

__all__ = [
    "BundleRun",
    "BundleSink",
    "BundleSource",
    "BundleSummary",
    "BundleUpload",
    "ObjectBody",
    "ObjectOutcome",
    "ObjectSource",
    "OutcomeStatus",
    "ReadableStream",
    "StopReason",
    "UploadReceipt",
]


class OutcomeStatus(str, Enum):
    """What happened to one source object. Every input gets exactly one status."""

    #: In an uploaded (committed) bundle; see ``bundle_key``, ``member_name``, ``sha256``.
    BUNDLED = "bundled"
    #: The object, or the requested version, no longer exists (deleted before the fetch).
    NOT_FOUND = "not_found"
    #: The key now holds a different object (ETag precondition failed, or an unpinned
    #: object whose size differs from the event's): a newer event covers it.
    SUPERSEDED = "superseded"
    #: Will never work as it is: unsafe key, access denied, the pinned version's size or
    #: ETag contradicts the event. ``error`` says which.
    REFUSED = "refused"
    #: May work later: throttling, 5xx, timeouts, a broken body, or a bundle that could
    #: not be uploaded. Nothing of it was delivered.
    FAILED_RETRYABLE = "failed_retryable"
    #: Never tried: ``should_continue()`` said stop, or an upload failure or a failed
    #: ``bundle_key`` ended the run.
    NOT_ATTEMPTED = "not_attempted"


class StopReason(str, Enum):
    """Why a run ended before trying every input."""

    #: ``should_continue()`` returned ``False`` (the timeout guard).
    CALLER = "caller"
    #: The sink failed (upload could not be opened, written or completed).
    UPLOAD_FAILED = "upload_failed"
    #: ``bundle_key(n)`` raised: bundle ``n`` was never opened (earlier bundles are kept).
    BUNDLE_KEY_FAILED = "bundle_key_failed"


@dataclass(frozen=True, slots=True)
class BundleSource:
    """One object to bundle.

    Attributes:
        bucket: Source bucket.
        key: The exact S3 key (as decoded once from the event), used for the S3 calls.
        size: Size announced by the event; the body must have exactly this many bytes.
            ``None`` accepts whatever ``Content-Length`` the GET returns.
        version_id: Fetch this version rather than the latest.
        etag: Expected ETag (quotes optional): sent as ``If-Match`` and compared to the
            response's.
        sequencer: The event's sequencer (recorded in the manifest, used for naming).
        name: Member name wanted for it (e.g. the record's sanitized key or a hook's
            result); ``None`` sanitizes ``key``. Either way the name goes through the
            sanitizer and the collision rule.
        token: Anything the caller wants back in the outcome (an SQS message id ...).
    """

    bucket: str
    key: str
    size: int | None = None
    version_id: str | None = None
    etag: str | None = None
    sequencer: str | None = None
    name: str | None = None
    token: object = None

    def __post_init__(self) -> None:
        size: object = self.size
        if size is not None and (not isinstance(size, int) or isinstance(size, bool) or size < 0):
            raise ValidationError(
                "BundleSource.size must be a non-negative integer or None",
                ErrorCode.INVALID_BUNDLE_SOURCE,
                {"bucket": self.bucket, "size": repr(self.size)},
            )


@dataclass(frozen=True, slots=True)
class ObjectOutcome:
    """The outcome of one input, at ``index`` in the ``sources`` given to ``run``.

    ``bundle_key``, ``member_name``, ``sha256`` and ``size`` are set only for
    `OutcomeStatus.BUNDLED`; ``etag`` whenever the object was opened; ``error``
    for every status but ``BUNDLED`` and ``NOT_ATTEMPTED``.
    """

    index: int
    source: BundleSource
    status: OutcomeStatus
    bundle_key: str | None = None
    member_name: str | None = None
    sha256: str | None = None
    size: int | None = None
    etag: str | None = None
    error: DataAggregatorError | None = None

    @property
    def token(self) -> object:
        """The source's ``token``."""
        return self.source.token

    @property
    def bundled(self) -> bool:
        """Whether the object is in an uploaded bundle."""
        return self.status is OutcomeStatus.BUNDLED


@dataclass(frozen=True, slots=True)
class UploadReceipt:
    """What a sink reports for a committed bundle object."""

    key: str
    size: int
    sha256: str
    etag: str | None = None
    version_id: str | None = None
    bucket: str | None = None


@dataclass(frozen=True, slots=True)
class BundleSummary:
    """One uploaded bundle: its number ``n``, key, members and upload receipt."""

    number: int
    key: str
    member_names: tuple[str, ...]
    tar_size: int
    created_at: datetime
    receipt: UploadReceipt

    @property
    def member_count(self) -> int:
        """Number of bundled objects (the manifest is not counted)."""
        return len(self.member_names)


@dataclass(frozen=True, slots=True)
class BundleRun:
    """The result of [`BundleEngine.run`][data_aggregator.bundle.BundleEngine.run]: one outcome
    per input, in input order."""

    outcomes: tuple[ObjectOutcome, ...]
    bundles: tuple[BundleSummary, ...]
    stop_reason: StopReason | None = None

    def with_status(self, *statuses: OutcomeStatus) -> tuple[ObjectOutcome, ...]:
        """Outcomes whose status is one of ``statuses``, in input order."""
        return tuple(outcome for outcome in self.outcomes if outcome.status in statuses)

    def counts(self) -> dict[OutcomeStatus, int]:
        """Number of outcomes per status (every status present, zeros included)."""
        counts = dict.fromkeys(OutcomeStatus, 0)
        for outcome in self.outcomes:
            counts[outcome.status] += 1
        return counts


# --------------------------------------------------------------------------- protocols


class ReadableStream(Protocol):
    """A binary body: ``read(n)`` returns at most ``n`` bytes, ``b""`` at the end."""

    def read(self, size: int = -1, /) -> bytes: ...

    def close(self) -> None: ...


class ObjectBody(Protocol):
    """An opened object (``data_aggregator.clients.S3Object`` satisfies it)."""

    @property
    def body(self) -> ReadableStream: ...
    @property
    def content_length(self) -> int: ...
    @property
    def etag(self) -> str | None: ...
    @property
    def last_modified(self) -> datetime | None: ...


class ObjectSource(Protocol):
    """Where bodies come from (``data_aggregator.clients.S3Client`` satisfies it).

    Called from several threads at once. ``open_object`` raises the typed S3 errors:
    ``S3ObjectNotFoundError``, ``S3ObjectSupersededError`` (``if_match`` failed), retryable
    ``TransientError`` subclasses, other ``DataAggregatorError`` for permanent failures.
    Reads of the body may raise the same kinds.
    """

    def open_object(
        self,
        bucket: str,
        key: str,
        *,
        version_id: str | None = None,
        if_match: str | None = None,
    ) -> ObjectBody: ...


class BundleUpload(Protocol):
    """One bundle object being written. Only the engine's thread calls it."""

    def write(self, data: bytes, /) -> object:
        """Append bytes (the compressed bundle, in order)."""

    def commit(self) -> UploadReceipt:
        """Finish the upload; when it returns, the object is durably stored."""

    def abort(self) -> None:
        """Discard everything written; safe to call after a failed ``write``/``commit``."""


class BundleSink(Protocol):
    """Where bundles go: opens one upload per bundle key."""

    def open_upload(
        self, key: str, *, content_type: str, metadata: Mapping[str, str]
    ) -> BundleUpload:
        """Start the object ``key``. ``metadata`` is the object's user metadata (S3's
        ``x-amz-meta-*``): a bundle describes its format and, for a concat bundle, where
        its sidecar is (``docs/bundle-format.md``); a sink that stores objects in S3 must
        store it, so that crash recovery finds the sidecar whatever its own settings."""
