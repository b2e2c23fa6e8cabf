"""S3 operations for the library: an `S3Client` over boto3 (private)."""

from __future__ import annotations

import base64
import hashlib
import logging
from contextlib import contextmanager
from typing import IO, TYPE_CHECKING, Any, Literal, TypeAlias

from data_aggregator._sizes import DEFAULT_FETCH_CONCURRENCY, DEFAULT_UPLOAD_CONCURRENCY, MIB
from data_aggregator.clients._deadline_hooks import add_deadline_hooks
from data_aggregator.clients._errors import S3BodyStream, translate_s3_error
from data_aggregator.clients._types import (
    CONTENT_SHA256,
    MAX_DELETE_KEYS,
    CompletedPart,
    DeleteResult,
    DeleteStatus,
    ObjectToDelete,
    S3ClientSettings,
    S3ListEntry,
    S3Object,
    S3ObjectInfo,
    UploadResult,
    validate_upload_args,
)
from data_aggregator.exceptions import ConfigurationError, DataAggregatorError

if TYPE_CHECKING:
    from collections.abc import Iterator, Mapping, Sequence

    from boto3.session import Session
    from botocore.session import Session as BotocoreSession
    from mypy_boto3_s3 import S3Client as Boto3S3Client
    from mypy_boto3_s3.type_defs import ObjectIdentifierTypeDef, TagTypeDef

__all__ = [
    "DEFAULT_POOL_CONNECTIONS",
    "RetryMode",
    "S3Client",
    "build_boto3_s3_client",
    "connection_pool_size",
]

logger = logging.getLogger(__name__)

#: botocore's retry modes (``Config(retries={"mode": ...})``).
RetryMode: TypeAlias = Literal["standard", "adaptive", "legacy"]

#: Connections beyond one per fetch and upload thread: heads, listings, tags, completions.
_SPARE_CONNECTIONS = 4
#: Connections of the default client's pool: one per default fetch and upload thread, and
#: the spares (see `connection_pool_size`).
DEFAULT_POOL_CONNECTIONS = (
    DEFAULT_FETCH_CONCURRENCY + DEFAULT_UPLOAD_CONCURRENCY + _SPARE_CONNECTIONS
)


def _strip_etag(etag: str | None) -> str:
    return (etag or "").strip('"')


def _quote_etag(etag: str) -> str:
    if etag == "*" or etag.startswith(("W/", '"')):
        return etag
    return f'"{etag}"'


def _described(response: Mapping[str, Any], version_id: str | None) -> dict[str, Any]:
    """The fields ``GetObject`` and ``HeadObject`` answers share (ETag without quotes)."""
    return {
        "content_length": int(response.get("ContentLength", 0)),
        "etag": _strip_etag(response.get("ETag")),
        "version_id": response.get("VersionId") or version_id,
        "last_modified": response.get("LastModified"),
        "content_type": response.get("ContentType"),
        "metadata": dict(response.get("Metadata") or {}),
    }


#: ``DeleteObjects`` per-key error codes: the condition failed (the key holds another
#: object), or there is nothing to delete.
_CHANGED_CODES = frozenset({"PreconditionFailed", "412"})
_GONE_CODES = frozenset({"NoSuchKey", "NoSuchVersion", "404"})
#: `DeleteResult.code` of an object S3's ``DeleteObjects`` answer did not account for.
_NOT_ANSWERED = "NOT_ANSWERED"


def _identifier(target: ObjectToDelete) -> ObjectIdentifierTypeDef:
    """A version is deleted by its id alone (S3's conditions look at the current version
    only); an object without one, only while its ETag matches."""
    identifier: ObjectIdentifierTypeDef = {"Key": target.key}
    if target.version_id:
        identifier["VersionId"] = target.version_id
    elif target.etag:
        identifier["ETag"] = _quote_etag(target.etag)
    return identifier


def _b64(digest: bytes) -> str:
    return base64.b64encode(digest).decode("ascii")


# --------------------------------------------------------------------------- client


def connection_pool_size(settings: S3ClientSettings) -> int:
    """Connections an S3 client needs for ``settings``: one per fetch and upload thread,
    plus a few for the calls in between (heads, listings, tags, completions)."""
    return settings.fetch_concurrency + settings.upload_concurrency + _SPARE_CONNECTIONS


def build_boto3_s3_client(
    *,
    session: Session | BotocoreSession | None = None,
    max_pool_connections: int = DEFAULT_POOL_CONNECTIONS,
    max_attempts: int = 5,
    connect_timeout: float = 5.0,
    read_timeout: float = 60.0,
    retry_mode: RetryMode = "standard",
) -> Boto3S3Client:
    """Build the default boto3 S3 client.

    botocore's ``standard`` retry mode (``retry_mode``; see ``docs/clients.md`` for why not
    ``adaptive``), TCP keep-alive and a connection pool large enough for every fetch and
    upload thread. The endpoint comes from the usual boto3 configuration, including
    ``AWS_ENDPOINT_URL`` / ``AWS_ENDPOINT_URL_S3``.
    """
    from botocore.config import Config  # noqa: PLC0415 - deferred: keeps this module cheap

    config = Config(
        retries={"mode": retry_mode, "total_max_attempts": max_attempts},
        max_pool_connections=max_pool_connections,
        connect_timeout=connect_timeout,
        read_timeout=read_timeout,
        tcp_keepalive=True,
    )
    made: Boto3S3Client = new_client(session, "s3", config)
    return made


def new_client(session: Session | BotocoreSession | None, service: str, config: Any) -> Any:
    """A client of ``service`` with ``config``: from a boto3 ``session`` (``client``), from
    a botocore session (``create_client``: the same client class, without boto3's extras
    such as the S3 transfer methods, which the library does not use, and without importing
    boto3 and s3transfer, about 40 ms of a cold start), or from a new boto3 session."""
    if session is None:
        import boto3  # noqa: PLC0415 - deferred: keeps importing this module cheap

        session = boto3.session.Session()
    if hasattr(session, "create_client"):
        return session.create_client(service, config=config)
    return session.client(service, config=config)  # type: ignore[call-overload]


class S3Client:
    """Reusable S3 operations with typed results and typed errors.

    Args:
        client: A boto3 S3 client to use as is. When omitted, one is built by
            [`build_boto3_s3_client`][data_aggregator.clients.build_boto3_s3_client]
            (standard retries, a pool of ``max_pool_connections``). Either way the client
            gets the deadline hooks of
            [`add_deadline_hooks`][data_aggregator.clients.add_deadline_hooks].
        session: The boto3 (or botocore) session to build the default client from.
        expected_bucket_owner: Account id sent as ``ExpectedBucketOwner`` on every call.
        kms_key_id: KMS key for SSE-KMS on uploads; ``None`` leaves the bucket default.
        max_pool_connections: Connections the threads sharing this client need at once
            ([`connection_pool_size`][data_aggregator.clients.connection_pool_size] of the
            configuration): the pool of the default client. An injected client with a
            smaller pool is used as it is, with a warning.
        max_attempts: Attempts per request of the default client, the first included
            (botocore's ``total_max_attempts``).
        connect_timeout: Connect timeout of the default client, in seconds; an injected
            client's own value is read instead. Reported by
            [`S3TimeoutError`][data_aggregator.exceptions.S3TimeoutError].
        read_timeout: Read timeout of the default client, in seconds; an injected
            client's own value is read instead. Reported by
            [`S3TimeoutError`][data_aggregator.exceptions.S3TimeoutError].
    """

    def __init__(
        self,
        client: Boto3S3Client | None = None,
        *,
        session: Session | BotocoreSession | None = None,
        expected_bucket_owner: str | None = None,
        kms_key_id: str | None = None,
        max_pool_connections: int = DEFAULT_POOL_CONNECTIONS,
        max_attempts: int = 5,
        connect_timeout: float = 5.0,
        read_timeout: float = 60.0,
    ) -> None:
        for name, value in (
            ("max_pool_connections", max_pool_connections),
            ("max_attempts", max_attempts),
        ):
            if value < 1:
                msg = f"{name} must be at least 1, got {value}"
                raise ConfigurationError(msg, context={"variable": name})
        if client is None:
            client = build_boto3_s3_client(
                session=session,
                max_pool_connections=max_pool_connections,
                max_attempts=max_attempts,
                connect_timeout=connect_timeout,
                read_timeout=read_timeout,
            )
        else:
            botocore_config = client.meta.config
            configured = getattr(botocore_config, "max_pool_connections", None)
            if configured is not None and configured < max_pool_connections:
                logger.warning(
                    "boto3 client pool smaller than the configured concurrency",
                    extra={"max_pool_connections": configured, "wanted": max_pool_connections},
                )
            connect_timeout = float(getattr(botocore_config, "connect_timeout", connect_timeout))
            read_timeout = float(getattr(botocore_config, "read_timeout", read_timeout))
        add_deadline_hooks(client)
        self._client = client
        self.expected_bucket_owner = expected_bucket_owner
        self.kms_key_id = kms_key_id
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout

    @classmethod
    def from_config(
        cls,
        config: S3ClientSettings,
        client: Boto3S3Client | None = None,
        *,
        session: Session | BotocoreSession | None = None,
    ) -> S3Client:
        """Build a client from ``AppConfig`` (or anything with the same attributes): its
        bucket owner, KMS key and a pool for its fetch and upload threads; the default
        boto3 client is built from ``session`` when given."""
        return cls(
            client,
            session=session,
            expected_bucket_owner=config.expected_bucket_owner,
            kms_key_id=config.kms_key_id,
            max_pool_connections=connection_pool_size(config),
        )

    @property
    def client(self) -> Boto3S3Client:
        """The underlying boto3 client."""
        return self._client

    # ------------------------------------------------------------------ helpers

    def _owner(self) -> dict[str, Any]:
        if self.expected_bucket_owner:
            return {"ExpectedBucketOwner": self.expected_bucket_owner}
        return {}

    def _encryption(self) -> dict[str, Any]:
        if self.kms_key_id:
            return {"ServerSideEncryption": "aws:kms", "SSEKMSKeyId": self.kms_key_id}
        return {}

    def _kms_context(self) -> dict[str, Any]:
        """Error context of the writes that use the KMS key (its id, never key material)."""
        return {"sse_kms_key_id": self.kms_key_id} if self.kms_key_id else {}

    @contextmanager
    def _translating(
        self,
        operation: str,
        bucket: str,
        key: str | None = None,
        version_id: str | None = None,
        **context: Any,
    ) -> Iterator[None]:
        try:
            yield
        except Exception as exc:
            mapped = translate_s3_error(
                exc,
                operation=operation,
                bucket=bucket,
                key=key,
                version_id=version_id,
                connect_timeout=self.connect_timeout,
                read_timeout=self.read_timeout,
                context=context,
            )
            if mapped is None:
                raise
            raise mapped from exc

    def _read_params(
        self, bucket: str, key: str, version_id: str | None, if_match: str | None
    ) -> dict[str, Any]:
        params: dict[str, Any] = {"Bucket": bucket, "Key": key, **self._owner()}
        if version_id:
            params["VersionId"] = version_id
        if if_match:
            params["IfMatch"] = _quote_etag(if_match)
        return params

    # ------------------------------------------------------------------ reads

    def open_object(
        self,
        bucket: str,
        key: str,
        *,
        version_id: str | None = None,
        if_match: str | None = None,
    ) -> S3Object:
        """Open an object's body by its exact key (``GetObject``).

        Args:
            version_id: Read this version (as announced by the event) rather than the latest.
            if_match: Expected ETag (quoted or not): a different current object raises
                [`S3ObjectSupersededError`][data_aggregator.exceptions.S3ObjectSupersededError].

        Raises:
            S3ObjectNotFoundError: the key or version does not exist (deleted).
            S3ObjectSupersededError: ``if_match`` did not hold (HTTP 412).
            S3AccessDeniedError: access denied (HTTP 403).
            S3ThrottlingError: throttled after the client's retries.
            S3TimeoutError: connect or read timeout.
            S3ServiceError: a server-side or connection failure after the client's retries.
            S3Error: any other S3 client error.
        """
        params = self._read_params(bucket, key, version_id, if_match)
        with self._translating("GetObject", bucket, key, version_id):
            response = self._client.get_object(**params)
        body = S3BodyStream(
            response["Body"],
            operation="GetObject",
            bucket=bucket,
            key=key,
            version_id=version_id,
            connect_timeout=self.connect_timeout,
            read_timeout=self.read_timeout,
        )
        return S3Object(bucket=bucket, key=key, body=body, **_described(response, version_id))

    def head_object(
        self,
        bucket: str,
        key: str,
        *,
        version_id: str | None = None,
        if_match: str | None = None,
        checksum_mode: bool = False,
    ) -> S3ObjectInfo:
        """Describe an object (``HeadObject``) with the same errors as
        [`open_object`][data_aggregator.clients.S3Client.open_object].

        ``checksum_mode=True`` asks S3 for the stored checksum (``checksum_sha256``); for
        SSE-KMS objects that needs ``kms:Decrypt``.
        """
        params = self._read_params(bucket, key, version_id, if_match)
        if checksum_mode:
            params["ChecksumMode"] = "ENABLED"
        with self._translating("HeadObject", bucket, key, version_id):
            response = self._client.head_object(**params)
        return S3ObjectInfo(
            bucket=bucket,
            key=key,
            checksum_sha256=response.get("ChecksumSHA256"),
            **_described(response, version_id),
        )

    def iter_objects(
        self,
        bucket: str,
        prefix: str = "",
        *,
        start_after: str | None = None,
        page_size: int = 1000,
    ) -> Iterator[S3ListEntry]:
        """Yield every object under ``prefix`` (``ListObjectsV2``, page by page, lazily)."""
        params: dict[str, Any] = {"Bucket": bucket, "Prefix": prefix, **self._owner()}
        if start_after:
            params["StartAfter"] = start_after
        paginator = self._client.get_paginator("list_objects_v2")
        pages = iter(paginator.paginate(**params, PaginationConfig={"PageSize": page_size}))
        while True:
            with self._translating("ListObjectsV2", bucket, None, prefix=prefix):
                page = next(pages, None)
            if page is None:
                return
            for item in page.get("Contents", []):
                yield S3ListEntry(
                    key=item["Key"],
                    size=int(item.get("Size", 0)),
                    etag=_strip_etag(item.get("ETag")),
                    last_modified=item.get("LastModified"),
                    storage_class=item.get("StorageClass"),
                )

    def get_object_tags(
        self, bucket: str, key: str, *, version_id: str | None = None
    ) -> dict[str, str]:
        """Return an object's tags (``GetObjectTagging``)."""
        params = self._read_params(bucket, key, version_id, None)
        with self._translating("GetObjectTagging", bucket, key, version_id):
            response = self._client.get_object_tagging(**params)
        return {tag["Key"]: tag["Value"] for tag in response.get("TagSet", [])}

    def get_content_sha256(
        self, bucket: str, key: str, *, version_id: str | None = None
    ) -> str | None:
        """Return the hex SHA-256 recorded by this library for an object, if any.

        Single-part uploads carry it as metadata ``content-sha256``; multipart uploads as
        the tag ``content-sha256`` (see ``docs/clients.md``).
        """
        info = self.head_object(bucket, key, version_id=version_id)
        if CONTENT_SHA256 in info.metadata:
            return info.metadata[CONTENT_SHA256]
        return self.get_object_tags(bucket, key, version_id=version_id).get(CONTENT_SHA256)

    # ------------------------------------------------------------------ writes

    def put_object(
        self,
        bucket: str,
        key: str,
        body: bytes | IO[bytes],
        *,
        extra_args: Mapping[str, Any] | None = None,
        sha256: bytes | None = None,
        content_length: int | None = None,
    ) -> UploadResult:
        """Upload ``body`` in one ``PutObject`` with metadata ``content-sha256`` and an S3
        SHA-256 checksum (S3 rejects the upload if the bytes it received differ).

        Args:
            body: Bytes or a seekable binary file positioned at the start of the data.
            extra_args: Checked by
                [`validate_upload_args`][data_aggregator.clients.validate_upload_args].
            sha256: The body's SHA-256 digest, if already known (else computed here).
            content_length: The body's size, if already known.
        """
        args = validate_upload_args(extra_args)
        if sha256 is None or content_length is None:
            sha256, content_length = _digest_body(body)
        args["Metadata"] = {**(args.get("Metadata") or {}), CONTENT_SHA256: sha256.hex()}
        checksum = _b64(sha256)
        with self._translating("PutObject", bucket, key, **self._kms_context()):
            response = self._client.put_object(
                Bucket=bucket,
                Key=key,
                Body=body,
                ContentLength=content_length,
                ChecksumAlgorithm="SHA256",
                ChecksumSHA256=checksum,
                **args,
                **self._encryption(),
                **self._owner(),
            )
        return UploadResult(
            bucket=bucket,
            key=key,
            etag=_strip_etag(response.get("ETag")),
            version_id=response.get("VersionId"),
            size=content_length,
            sha256=sha256.hex(),
            checksum_sha256=checksum,
            parts=1,
            multipart=False,
        )

    def create_multipart_upload(
        self, bucket: str, key: str, *, extra_args: Mapping[str, Any] | None = None
    ) -> str:
        """Start a multipart upload with SHA-256 part checksums; return its upload id."""
        args = validate_upload_args(extra_args)
        with self._translating("CreateMultipartUpload", bucket, key, **self._kms_context()):
            response = self._client.create_multipart_upload(
                Bucket=bucket,
                Key=key,
                ChecksumAlgorithm="SHA256",
                **args,
                **self._encryption(),
                **self._owner(),
            )
        return response["UploadId"]

    def upload_part(
        self,
        bucket: str,
        key: str,
        *,
        upload_id: str,
        part_number: int,
        body: IO[bytes],
        content_length: int,
        sha256: bytes,
    ) -> CompletedPart:
        """Upload one part (seekable ``body``, so botocore can retry it) with its checksum."""
        checksum = _b64(sha256)
        with self._translating(
            "UploadPart", bucket, key, part_number=part_number, **self._kms_context()
        ):
            response = self._client.upload_part(
                Bucket=bucket,
                Key=key,
                UploadId=upload_id,
                PartNumber=part_number,
                Body=body,
                ContentLength=content_length,
                ChecksumAlgorithm="SHA256",
                ChecksumSHA256=checksum,
                **self._owner(),
            )
        return CompletedPart(
            part_number=part_number,
            etag=response["ETag"],
            checksum_sha256=response.get("ChecksumSHA256") or checksum,
            size=content_length,
        )

    def complete_multipart_upload(
        self, bucket: str, key: str, *, upload_id: str, parts: Sequence[CompletedPart]
    ) -> tuple[str, str | None]:
        """Complete a multipart upload; return ``(etag without quotes, version id)``."""
        ordered = sorted(parts, key=lambda part: part.part_number)
        with self._translating("CompleteMultipartUpload", bucket, key, parts=len(ordered)):
            response = self._client.complete_multipart_upload(
                Bucket=bucket,
                Key=key,
                UploadId=upload_id,
                MultipartUpload={
                    "Parts": [
                        {
                            "PartNumber": part.part_number,
                            "ETag": part.etag,
                            "ChecksumSHA256": part.checksum_sha256,
                        }
                        for part in ordered
                    ]
                },
                **self._owner(),
            )
        return _strip_etag(response.get("ETag")), response.get("VersionId")

    def abort_multipart_upload(self, bucket: str, key: str, *, upload_id: str) -> None:
        """Abort a multipart upload, deleting its stored parts."""
        with self._translating("AbortMultipartUpload", bucket, key):
            self._client.abort_multipart_upload(
                Bucket=bucket, Key=key, UploadId=upload_id, **self._owner()
            )

    def delete_objects(self, bucket: str, objects: Sequence[ObjectToDelete]) -> list[DeleteResult]:
        """Delete ``objects`` with ``DeleteObjects``, at most 1,000 a request, in order.

        Each object is deleted by its version id when it has one, else only if the key
        still holds the object with its ETag (S3's conditional delete; S3 answers
        ``PreconditionFailed`` for that key otherwise). An object with neither is refused
        here (``FAILED``, code ``NO_CONDITION``): an unconditional delete could remove
        an object written after it was read.

        An object is ``DELETED`` only when S3's answer lists it among the deleted (its
        key, and the version id sent); one the answer neither lists nor names in an
        error is ``FAILED`` with code ``NOT_ANSWERED``.

        Never raises for S3 failures: a request that fails (access denied, throttling
        after the client's retries, the invocation's deadline) makes every object it
        named ``FAILED`` with the typed ``error``, and the next request is still tried.
        Returns one result per object, in the order given.
        """
        results: list[DeleteResult] = []
        for start in range(0, len(objects), MAX_DELETE_KEYS):
            results += self._delete_chunk(bucket, objects[start : start + MAX_DELETE_KEYS])
        return results

    def _delete_chunk(self, bucket: str, chunk: Sequence[ObjectToDelete]) -> list[DeleteResult]:
        refused = [t for t in chunk if not t.version_id and not t.etag]
        sent = [t for t in chunk if t.version_id or t.etag]
        outcome: dict[tuple[str, str | None], DeleteResult] = {
            (t.key, t.version_id): DeleteResult(t, DeleteStatus.FAILED, code="NO_CONDITION")
            for t in refused
        }
        if sent:
            try:
                with self._translating("DeleteObjects", bucket, None, objects=len(sent)):
                    response = self._client.delete_objects(
                        Bucket=bucket,
                        Delete={"Objects": [_identifier(t) for t in sent], "Quiet": False},
                        **self._owner(),
                    )
            except DataAggregatorError as error:
                for target in sent:
                    outcome[(target.key, target.version_id)] = DeleteResult(
                        target, DeleteStatus.FAILED, code=error.error_code, error=error
                    )
            else:
                # Deleted only when S3 names it (and the version sent): an object the
                # answer leaves out, or names only in an error that matches nothing we
                # sent, may still exist.
                for target in sent:
                    outcome[(target.key, target.version_id)] = DeleteResult(
                        target, DeleteStatus.FAILED, code=_NOT_ANSWERED
                    )
                by_key: dict[str, list[ObjectToDelete]] = {}
                for target in sent:
                    by_key.setdefault(target.key, []).append(target)
                for deleted in response.get("Deleted", []):
                    key, version_id = deleted.get("Key", ""), deleted.get("VersionId") or None
                    for target in by_key.get(key, ()):
                        if target.version_id in (None, version_id):
                            outcome[(key, target.version_id)] = DeleteResult(
                                target, DeleteStatus.DELETED
                            )
                for entry in response.get("Errors", []):
                    key, version_id = entry.get("Key", ""), entry.get("VersionId") or None
                    code = entry.get("Code", "")
                    status = (
                        DeleteStatus.CHANGED
                        if code in _CHANGED_CODES
                        else DeleteStatus.GONE
                        if code in _GONE_CODES
                        else DeleteStatus.FAILED
                    )
                    # An error without a version id is held against every version of
                    # the key named: never report a delete that may not have happened.
                    for target in sent:
                        if target.key == key and version_id in (None, target.version_id):
                            outcome[(key, target.version_id)] = DeleteResult(
                                target, status, code=code
                            )
        return [outcome[(t.key, t.version_id)] for t in chunk]

    def put_object_tags(
        self,
        bucket: str,
        key: str,
        tags: Mapping[str, str],
        *,
        version_id: str | None = None,
    ) -> None:
        """Replace an object's tag set (``PutObjectTagging``)."""
        params = self._read_params(bucket, key, version_id, None)
        tag_set: list[TagTypeDef] = [{"Key": k, "Value": v} for k, v in tags.items()]
        with self._translating("PutObjectTagging", bucket, key, version_id):
            self._client.put_object_tagging(**params, Tagging={"TagSet": tag_set})


def _digest_body(body: bytes | IO[bytes]) -> tuple[bytes, int]:
    if isinstance(body, bytes):
        return hashlib.sha256(body).digest(), len(body)
    start = body.tell()
    hasher = hashlib.sha256()
    size = 0
    while chunk := body.read(MIB):
        hasher.update(chunk)
        size += len(chunk)
    body.seek(start)
    return hasher.digest(), size
