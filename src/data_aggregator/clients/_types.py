"""Types shared by the S3 client and the multipart writer: results, settings, allowlist.

Private: the public names are re-exported by `data_aggregator.clients`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import TYPE_CHECKING, Any, Final, Protocol
from urllib.parse import parse_qsl

from data_aggregator.exceptions import ValidationError, ValidationErrorCode

if TYPE_CHECKING:
    from collections.abc import Mapping
    from datetime import datetime

    from data_aggregator.clients._errors import S3BodyStream
    from data_aggregator.exceptions import DataAggregatorError

__all__ = [
    "ALLOWED_UPLOAD_ARGS",
    "CONTENT_SHA256",
    "MAX_DELETE_KEYS",
    "MAX_TAGS",
    "CompletedPart",
    "DeleteResult",
    "DeleteStatus",
    "ObjectToDelete",
    "S3ClientSettings",
    "S3ListEntry",
    "S3Object",
    "S3ObjectInfo",
    "UploadResult",
    "parse_tagging",
    "validate_upload_args",
]

#: Metadata key (``x-amz-meta-content-sha256``) and tag key holding the object's hex SHA-256.
CONTENT_SHA256: Final = "content-sha256"
#: Objects one ``DeleteObjects`` request may name (S3's limit).
MAX_DELETE_KEYS: Final = 1000
#: S3 allows at most 10 tags per object; the SHA-256 tag of a multipart upload needs one.
MAX_TAGS: Final = 10

#: Extra arguments accepted by uploads (``PutObject`` / ``CreateMultipartUpload``). Bucket,
#: key, body, checksums, encryption and bucket owner are set by the client itself.
ALLOWED_UPLOAD_ARGS: Final = frozenset(
    {
        "BucketKeyEnabled",
        "CacheControl",
        "ContentDisposition",
        "ContentEncoding",
        "ContentLanguage",
        "ContentType",
        "Expires",
        "Metadata",
        "ObjectLockLegalHoldStatus",
        "ObjectLockMode",
        "ObjectLockRetainUntilDate",
        "SSEKMSEncryptionContext",
        "StorageClass",
        "Tagging",
        "WebsiteRedirectLocation",
    }
)


def validate_upload_args(extra_args: Mapping[str, Any] | None) -> dict[str, Any]:
    """Check ``extra_args`` against `ALLOWED_UPLOAD_ARGS` and return a copy.

    Raises:
        ValidationError: (``error_code="INVALID_UPLOAD_ARGUMENT"``) naming the unknown
            argument and listing the allowed ones, or when ``Metadata``/``Tagging`` try to
            set the reserved ``content-sha256`` key.
    """
    args = dict(extra_args or {})
    allowed = ", ".join(sorted(ALLOWED_UPLOAD_ARGS))
    for name in args:
        if name not in ALLOWED_UPLOAD_ARGS:
            msg = f"Invalid upload argument {name!r}; allowed arguments are: {allowed}"
            raise ValidationError(
                msg,
                ValidationErrorCode.INVALID_UPLOAD_ARGUMENT,
                {"argument": name, "allowed": allowed},
            )
    metadata = args.get("Metadata") or {}
    if any(str(k).lower() == CONTENT_SHA256 for k in metadata):
        msg = f"Metadata key {CONTENT_SHA256!r} is reserved: the client sets it"
        raise ValidationError(
            msg, ValidationErrorCode.INVALID_UPLOAD_ARGUMENT, {"argument": "Metadata"}
        )
    if CONTENT_SHA256 in parse_tagging(args.get("Tagging")):
        msg = f"Tag {CONTENT_SHA256!r} is reserved: the client sets it"
        raise ValidationError(
            msg, ValidationErrorCode.INVALID_UPLOAD_ARGUMENT, {"argument": "Tagging"}
        )
    return args


def parse_tagging(tagging: str | None) -> dict[str, str]:
    """Parse an S3 ``Tagging`` header value (``k1=v1&k2=v2``, URL-encoded) into a dict."""
    if not tagging:
        return {}
    return dict(parse_qsl(tagging, keep_blank_values=True))


# --------------------------------------------------------------------------- results


@dataclass(frozen=True, slots=True)
class S3ObjectInfo:
    """What ``HeadObject`` says about an object. ``etag`` is without quotes."""

    bucket: str
    key: str
    content_length: int
    etag: str
    version_id: str | None
    last_modified: datetime | None
    content_type: str | None = None
    metadata: Mapping[str, str] = field(default_factory=dict)
    checksum_sha256: str | None = None


@dataclass(frozen=True, slots=True, eq=False)
class S3Object:
    """An open object: its [`S3BodyStream`][data_aggregator.clients.S3BodyStream] plus what
    ``GetObject`` returned.

    Use it as a context manager (or call ``body.close()``) to release the connection.
    """

    bucket: str
    key: str
    body: S3BodyStream
    content_length: int
    etag: str
    version_id: str | None
    last_modified: datetime | None
    content_type: str | None = None
    metadata: Mapping[str, str] = field(default_factory=dict)

    def __enter__(self) -> S3Object:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.body.close()


@dataclass(frozen=True, slots=True)
class S3ListEntry:
    """One object of a listing. ``etag`` is without quotes."""

    key: str
    size: int
    etag: str
    last_modified: datetime | None
    storage_class: str | None = None


@dataclass(frozen=True, slots=True)
class CompletedPart:
    """A part accepted by ``UploadPart``: what ``CompleteMultipartUpload`` needs back."""

    part_number: int
    etag: str
    checksum_sha256: str
    size: int


@dataclass(frozen=True, slots=True)
class UploadResult:
    """A finished upload (single ``PutObject`` or multipart).

    Attributes:
        sha256: hex SHA-256 of the whole object, computed while writing.
        checksum_sha256: the S3 checksum: base64 SHA-256 of the object for a single
            ``PutObject``; ``<base64 SHA-256 of the part digests>-<parts>`` (S3's
            composite form) for a multipart upload.
        parts: number of parts (1 for a single ``PutObject``).
        multipart: whether a multipart upload was used.
        sha256_tagged: for multipart uploads, whether the ``content-sha256`` tag was set
            (single-part objects carry it as metadata instead).
    """

    bucket: str
    key: str
    etag: str
    version_id: str | None
    size: int
    sha256: str
    checksum_sha256: str
    parts: int
    multipart: bool
    sha256_tagged: bool = False


class S3ClientSettings(Protocol):
    """The settings [`S3Client.from_config`][data_aggregator.clients.S3Client.from_config] reads
    (``AppConfig`` provides them)."""

    @property
    def expected_bucket_owner(self) -> str | None: ...
    @property
    def kms_key_id(self) -> str | None: ...
    @property
    def fetch_concurrency(self) -> int: ...
    @property
    def upload_concurrency(self) -> int: ...


@dataclass(frozen=True, slots=True)
class ObjectToDelete:
    """One object to delete, and the condition that protects it.

    Attributes:
        key: The exact S3 key.
        version_id: Delete exactly this version (versioned buckets); no condition is
            needed, a version never changes.
        etag: Without ``version_id``: delete only while the key still holds the object
            with this ETag (quotes optional), S3's conditional delete.
    """

    key: str
    version_id: str | None = None
    etag: str | None = None


class DeleteStatus(str, Enum):
    """What ``DeleteObjects`` did with one object."""

    #: Deleted (the version, or the object whose ETag matched).
    DELETED = "deleted"
    #: Kept: the key holds another object than the one named (``PreconditionFailed``).
    CHANGED = "changed"
    #: Nothing to delete: the key (``NoSuchKey``) or version is gone already.
    GONE = "gone"
    #: Not deleted: the request or this key failed (``error``/``code`` say why).
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class DeleteResult:
    """The answer for one [`ObjectToDelete`][data_aggregator.clients.ObjectToDelete].

    ``code`` is S3's per-key error code; ``error`` the typed error when the whole request
    failed (access denied, throttling, the invocation's deadline ...).
    """

    target: ObjectToDelete
    status: DeleteStatus
    code: str | None = None
    error: DataAggregatorError | None = None
