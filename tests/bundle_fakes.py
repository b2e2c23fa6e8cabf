"""In-memory stand-ins for the bundle engine's source and sink (no S3 involved)."""

from __future__ import annotations

import hashlib
import io
import threading
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import TYPE_CHECKING

from data_aggregator.bundle import UploadReceipt
from data_aggregator.exceptions import (
    S3AccessDeniedError,
    S3ObjectNotFoundError,
    S3ObjectSupersededError,
)

if TYPE_CHECKING:
    from collections.abc import Mapping

FIXED_TIME = datetime(2024, 5, 1, 12, 30, tzinfo=timezone.utc)


@dataclass(frozen=True, slots=True)
class MemoryObject:
    """An opened in-memory object (satisfies ``ObjectBody``)."""

    body: io.BytesIO
    content_length: int
    etag: str | None
    last_modified: datetime | None
    metadata: Mapping[str, str] = field(default_factory=dict)


@dataclass
class MemorySource:
    """Objects keyed by (bucket, key, version id); the latest version is under ``None``."""

    objects: dict[tuple[str, str, str | None], bytes] = field(default_factory=dict)
    opened: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def put(self, bucket: str, key: str, data: bytes, version_id: str | None = None) -> str:
        """Store ``data`` (also as the latest version) and return its ETag."""
        self.objects[(bucket, key, version_id)] = data
        self.objects[(bucket, key, None)] = data
        return etag_of(data)

    def open_object(
        self,
        bucket: str,
        key: str,
        *,
        version_id: str | None = None,
        if_match: str | None = None,
    ) -> MemoryObject:
        """Open an object like ``S3Client.open_object`` does."""
        with self._lock:
            self.opened += 1
        data = self.objects.get((bucket, key, version_id))
        if data is None:
            raise S3ObjectNotFoundError("no such key", context={"bucket": bucket})
        etag = etag_of(data)
        if if_match is not None and if_match.strip('"') != etag:
            raise S3ObjectSupersededError("precondition failed", context={"bucket": bucket})
        return MemoryObject(io.BytesIO(data), len(data), etag, FIXED_TIME)


def etag_of(data: bytes) -> str:
    """The single-part S3 ETag of ``data``."""
    return hashlib.md5(data, usedforsecurity=False).hexdigest()


class MemoryUpload:
    """One upload into a :class:`MemorySink`."""

    def __init__(self, sink: MemorySink, key: str, metadata: Mapping[str, str]) -> None:
        self.sink = sink
        self.key = key
        self.metadata = dict(metadata)
        self.buffer = io.BytesIO()
        self.aborted = False

    def write(self, data: bytes, /) -> int:
        """Append bytes, failing when the sink says so."""
        if self.sink.fail_after_bytes is not None and (
            self.buffer.tell() + len(data) > self.sink.fail_after_bytes
        ):
            msg = "injected sink failure"
            raise OSError(msg)
        return self.buffer.write(data)

    def commit(self) -> UploadReceipt:
        """Store the bytes under ``key``."""
        if self.sink.fail_commit:
            msg = "injected commit failure"
            raise OSError(msg)
        data = self.buffer.getvalue()
        self.sink.objects[self.key] = data
        self.sink.metadata[self.key] = self.metadata
        return UploadReceipt(self.key, len(data), hashlib.sha256(data).hexdigest())

    def abort(self) -> None:
        """Forget the bytes."""
        self.aborted = True
        self.sink.aborted.append(self.key)


@dataclass
class MemorySink:
    """Bundles land in ``objects`` (their user metadata in ``metadata``); ``fail_*``
    inject failures."""

    objects: dict[str, bytes] = field(default_factory=dict)
    metadata: dict[str, dict[str, str]] = field(default_factory=dict)
    aborted: list[str] = field(default_factory=list)
    fail_after_bytes: int | None = None
    fail_commit: bool = False

    def open_upload(
        self, key: str, *, content_type: str, metadata: Mapping[str, str]
    ) -> MemoryUpload:
        """Start an upload for ``key``."""
        del content_type
        return MemoryUpload(self, key, metadata)

    def as_source(self, *, described: bool = True, listable: bool = True) -> SinkAsSource:
        """What the sink stored, read back as an object source (with its metadata unless
        ``described`` is false: a bundle written before bundles described themselves; a
        missing object answers 403 unless ``listable``, as without ``s3:ListBucket``)."""
        return SinkAsSource(self, described=described, listable=listable)


class SinkAsSource:
    """Reads back what a `MemorySink` stored, as an object source (``S3Client``-like:
    opened objects carry their user metadata)."""

    def __init__(self, sink: MemorySink, *, described: bool = True, listable: bool = True) -> None:
        self.sink = sink
        self.described = described
        self.listable = listable
        self.opened: list[str] = []

    def open_object(self, bucket: str, key: str, **_: object) -> MemoryObject:
        """Open a stored object; `S3ObjectNotFoundError` if there is none
        (`S3AccessDeniedError` unless ``listable``)."""
        self.opened.append(key)
        data = self.sink.objects.get(key)
        if data is None:
            if not self.listable:
                raise S3AccessDeniedError(f"access denied: {key}", context={"bucket": bucket})
            raise S3ObjectNotFoundError("no such key", context={"bucket": bucket})
        metadata = self.sink.metadata.get(key, {}) if self.described else {}
        return MemoryObject(io.BytesIO(data), len(data), etag_of(data), FIXED_TIME, metadata)
