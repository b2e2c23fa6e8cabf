"""Reusable S3 operations over a caller-supplied or default boto3 client (seed path).

[`S3Client`][data_aggregator.clients.S3Client] is built once per Lambda container and shared by
threads (boto3 clients are thread-safe). Every call

* adds ``ExpectedBucketOwner`` when one is configured,
* turns botocore/urllib3 failures into the typed errors of
  [`data_aggregator.exceptions`][data_aggregator.exceptions] (see
  [`translate_s3_error`][data_aggregator.clients.translate_s3_error]), with ``bucket``, ``key``
  and ``operation`` in ``context`` and never a body,
* and, for writes, adds SSE-KMS (``ServerSideEncryption="aws:kms"`` + ``SSEKMSKeyId``)
  when a KMS key is configured, plus a SHA-256 checksum S3 verifies on receipt.

Reads return typed results ([`S3Object`][data_aggregator.clients.S3Object],
[`S3ObjectInfo`][data_aggregator.clients.S3ObjectInfo],
[`S3ListEntry`][data_aggregator.clients.S3ListEntry]); the body of
[`S3Client.open_object`][data_aggregator.clients.S3Client.open_object] is an
[`S3BodyStream`][data_aggregator.clients.S3BodyStream] whose read errors are typed too.
Streaming uploads of unknown size: [`MultipartWriter`][data_aggregator.clients.MultipartWriter].

Every client built or wrapped here gets botocore hooks
([`add_deadline_hooks`][data_aggregator.clients.add_deadline_hooks]) so that no request is
sent, and no retry slept for, past the invocation's deadline.

boto3 is imported only when a default client is built, so importing this module is cheap.
"""

from __future__ import annotations

from data_aggregator._sizes import (
    MAX_OBJECT_SIZE,
    MAX_PART_SIZE,
    MAX_PARTS,
    MIB,
    MIN_PART_SIZE,
)
from data_aggregator.clients._deadline_hooks import add_deadline_hooks
from data_aggregator.clients._errors import S3BodyStream, translate_s3_error
from data_aggregator.clients._multipart import MultipartWriter, WriterOptions, WriterState
from data_aggregator.clients._part_uploads import (
    PARTS_PER_DOUBLING,
    WriterStats,
    clamp_part_size,
    part_size_for,
)
from data_aggregator.clients._s3 import (
    DEFAULT_POOL_CONNECTIONS,
    RetryMode,
    S3Client,
    build_boto3_s3_client,
    connection_pool_size,
)
from data_aggregator.clients._types import (
    ALLOWED_UPLOAD_ARGS,
    CONTENT_SHA256,
    MAX_DELETE_KEYS,
    MAX_TAGS,
    CompletedPart,
    DeleteResult,
    DeleteStatus,
    ObjectToDelete,
    S3ClientSettings,
    S3ListEntry,
    S3Object,
    S3ObjectInfo,
    UploadResult,
    parse_tagging,
    validate_upload_args,
)

__all__ = [
    "ALLOWED_UPLOAD_ARGS",
    "CONTENT_SHA256",
    "DEFAULT_POOL_CONNECTIONS",
    "MAX_DELETE_KEYS",
    "MAX_OBJECT_SIZE",
    "MAX_PARTS",
    "MAX_PART_SIZE",
    "MAX_TAGS",
    "MIB",
    "MIN_PART_SIZE",
    "PARTS_PER_DOUBLING",
    "CompletedPart",
    "DeleteResult",
    "DeleteStatus",
    "MultipartWriter",
    "ObjectToDelete",
    "RetryMode",
    "S3BodyStream",
    "S3Client",
    "S3ClientSettings",
    "S3ListEntry",
    "S3Object",
    "S3ObjectInfo",
    "UploadResult",
    "WriterOptions",
    "WriterState",
    "WriterStats",
    "add_deadline_hooks",
    "build_boto3_s3_client",
    "clamp_part_size",
    "connection_pool_size",
    "parse_tagging",
    "part_size_for",
    "translate_s3_error",
    "validate_upload_args",
]
