"""The idempotency key of one S3 object (private).

Two formulas, one choice:

* `make_content_key(bucket, key, etag, size)`: the key of an object by its content (the
  bucket, the exact key, and the ETag and size that witness its bytes). Every path that
  announces an object knows these four: an S3 or EventBridge event, a Step Functions
  Map item, a listing. It is the record key whenever the ETag and size are known.
* `make_idempotency_key(key, version, sequencer)`: the seed's formula, byte for byte,
  for a record that does not carry its ETag or size.

`object_idempotency_key` chooses between them and `record_idempotency_key` applies it to
a parsed record: the processor, the crash-recovery locator and the backfill all go
through it (``docs/idempotency.md``).
"""

from __future__ import annotations

import hashlib
import json
from typing import TYPE_CHECKING
from urllib.parse import quote

if TYPE_CHECKING:
    from data_aggregator.bundle import ManifestMember
    from data_aggregator.schemas import S3EventNotificationRecord

__all__ = [
    "CONTENT_KEY_MAX_BYTES",
    "make_content_key",
    "make_idempotency_key",
    "member_idempotency_keys",
    "object_idempotency_key",
    "record_idempotency_key",
]

#: The longest content key kept readable: DynamoDB's limit for a partition key (bytes of
#: UTF-8; a content key is ASCII). A longer one names the bucket and a SHA-256 instead.
CONTENT_KEY_MAX_BYTES = 2048


def make_idempotency_key(key: str, version: str | None, sequencer: str | None) -> str:
    """Return the idempotency key of one S3 object version: the seed's formula.

    Args:
        key: The exact S3 object key (``record.s3.object.original_key``, decoded once),
            not the sanitized archive name: two keys that sanitize alike are different
            objects.
        version: The object's ``versionId`` in a versioned bucket, else ``None``.
        sequencer: The event's ``sequencer``; it tells apart successive writes of the
            same key in an unversioned bucket.

    The formula is the conventions' one, byte for byte: JSON ``{"k": key, "u": version or
    sequencer}`` with compact separators (non-ASCII escaped as ``\\uXXXX``), then
    percent-quoted with ``safe=""``. The result is pure ASCII and contains no ``/``.

    The processor keys a record with it only when the record has no ETag or no size
    ([`object_idempotency_key`][data_aggregator.idempotency.object_idempotency_key]).

    >>> make_idempotency_key("a b.txt", None, "0055AED6DCD90281E5")
    '%7B%22k%22%3A%22a%20b.txt%22%2C%22u%22%3A%220055AED6DCD90281E5%22%7D'
    """
    unique_part = version or sequencer
    raw = json.dumps({"k": key, "u": unique_part}, separators=(",", ":"))
    return quote(raw, safe="")


def make_content_key(bucket: str, key: str, etag: str, size: int) -> str:
    """Return the content key of an object: the same bucket, key and bytes, the same key.

    Args:
        bucket: The source bucket: the same key and bytes in two buckets are two objects.
        key: The exact S3 object key (``original_key``), as for `make_idempotency_key`.
        etag: The object's ETag; surrounding double quotes (as listings and
            ``GetObject`` write it) are ignored.
        size: The object's size in bytes.

    JSON ``{"b": bucket, "k": key, "e": etag, "z": size}`` with compact separators
    (non-ASCII escaped as ``\\uXXXX``), percent-quoted with ``safe=""``: pure ASCII, no
    ``/``, and never equal to a `make_idempotency_key` result (which starts with
    ``{"k"``). When that is longer than `CONTENT_KEY_MAX_BYTES` (a long key of non-ASCII
    characters can reach about 4 KiB), the content key is ``{"b": bucket, "h": digest}``,
    encoded the same way, where ``digest`` is the SHA-256 hex digest of the long form: at
    most a few hundred bytes for any valid bucket name, so every content key fits a
    DynamoDB partition key (and, starting with ``%7B``, never looks like the ``sha256:``
    form the DynamoDB store gives an over-long seed key).

    >>> make_content_key("logs", "a b.txt", '"e1"', 7)
    '%7B%22b%22%3A%22logs%22%2C%22k%22%3A%22a%20b.txt%22%2C%22e%22%3A%22e1%22%2C%22z%22%3A7%7D'
    """
    raw = json.dumps(
        {"b": bucket, "k": key, "e": etag.strip('"'), "z": size}, separators=(",", ":")
    )
    quoted = quote(raw, safe="")
    if len(quoted) > CONTENT_KEY_MAX_BYTES:
        digest = hashlib.sha256(quoted.encode("ascii")).hexdigest()
        return quote(json.dumps({"b": bucket, "h": digest}, separators=(",", ":")), safe="")
    return quoted


def object_idempotency_key(
    bucket: str,
    key: str,
    *,
    version_id: str | None,
    sequencer: str | None,
    etag: str | None,
    size: int | None,
) -> str:
    """Return the idempotency key of one object, whichever path announced it.

    The content key (`make_content_key`) when the ETag and the size are known, which
    every ``ObjectCreated`` event, Map item and listing has; else the seed's key
    (`make_idempotency_key` of the key, version id and sequencer). A blank ETag (``""``
    or ``'""'``) counts as unknown.
    """
    tag = etag.strip('"') if etag else ""
    if tag and size is not None:
        return make_content_key(bucket, key, tag, size)
    return make_idempotency_key(key, version_id, sequencer)


def record_idempotency_key(record: S3EventNotificationRecord) -> str:
    """Return the idempotency key of a parsed S3 record (`object_idempotency_key` of its
    bucket, exact key, version id, sequencer, ETag and size): the key the processor claims.
    """
    obj = record.s3.object
    return object_idempotency_key(
        record.s3.bucket.name,
        obj.original_key,
        version_id=record.version_id,
        sequencer=record.sequencer,
        etag=record.e_tag,
        size=obj.size,
    )


def member_idempotency_keys(member: ManifestMember) -> frozenset[str]:
    """Return the keys under which a bundle member may have been claimed.

    A member's manifest entry names its bucket, exact key, version id, sequencer, ETag
    and size, so its `object_idempotency_key` is the key the processor claimed it under.
    The manifest's ETag is the one S3 answered when the object was read, also when the
    event had none; so the seed's key (`make_idempotency_key` of key, version id and
    sequencer), under which such a record was claimed, is included too.
    """
    seed = make_idempotency_key(member.key, member.version_id, member.sequencer)
    content = object_idempotency_key(
        member.bucket,
        member.key,
        version_id=member.version_id,
        sequencer=member.sequencer,
        etag=member.etag,
        size=member.size,
    )
    return frozenset((content, seed))
