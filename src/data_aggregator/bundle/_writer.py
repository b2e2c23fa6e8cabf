"""One bundle being written: a tar (or concat) stream into an upload, its manifest, commit
or abort.

A tar bundle ends with ``manifest.json``. A concat bundle's manifest is a sidecar object
(``<key>.manifest.json``, under the sidecar prefix), stored *before* the bundle: the order
is "every part of the bundle uploaded, the sidecar stored, ``before_commit``, the bundle
committed", so the bundle's own final request stays the last write and the one the
caller's gate guards. A sidecar without its bundle means "not committed" (readers treat
the bundle as absent).
Every bundle's upload carries user metadata naming its format and, for concat, its
sidecar's key (``_metadata.py``), so readers find the sidecar whatever their settings.

Private; used by `data_aggregator.bundle._runner`. Any failure of the sink (or of the
compressor in front of it) surfaces as `SinkFailure`, a failure of the ``before_commit``
hook as its subclass `CommitHookFailure`, so the run can tell them from a failure of a
source object; the class decides the error code recorded on the bundle's objects.
"""

from __future__ import annotations

import functools
import inspect
import logging
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, ClassVar

from data_aggregator.bundle._codecs import BlockCompressor, new_compressor
from data_aggregator.bundle._concat import SIDECAR_CONTENT_TYPE, ConcatStream, sidecar_key
from data_aggregator.bundle._manifest import (
    MANIFEST_NAME,
    ManifestMember,
    manifest_overhead,
    render_manifest,
)
from data_aggregator.bundle._metadata import bundle_metadata
from data_aggregator.bundle._naming import bundle_content_type
from data_aggregator.bundle._tar import TarStream, member_header
from data_aggregator.bundle._types import BundleSummary
from data_aggregator.config import BundleFormat
from data_aggregator.exceptions import BundleUploadError, ErrorCode

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping, Sequence
    from datetime import datetime

    from data_aggregator.bundle._codecs import CodecSpec, Compressor
    from data_aggregator.bundle._types import BundleSink, BundleUpload

__all__ = ["CommitHookFailure", "OpenBundle", "PendingMember", "SinkFailure", "upload_error"]

logger = logging.getLogger("data_aggregator.bundle")


class SinkFailure(Exception):  # noqa: N818 - internal signal
    """Internal: the sink or the compressor raised; the bundle cannot be stored."""

    #: The error code recorded on the bundle's objects.
    error_code: ClassVar[str] = ErrorCode.BUNDLE_UPLOAD_FAILED

    def __init__(self, cause: BaseException) -> None:
        super().__init__(type(cause).__name__)
        self.cause = cause


class CommitHookFailure(SinkFailure):
    """Internal: the caller's ``before_commit`` hook raised; the upload is not committed."""

    error_code = ErrorCode.BUNDLE_COMMIT_HOOK_FAILED


def upload_error(failure: SinkFailure, key: str | None = None) -> BundleUploadError:
    """The error recorded on every object of a bundle that could not be stored."""
    cause = failure.cause
    return BundleUploadError(
        "bundle upload failed",
        failure.error_code,
        {
            "bundle_key": key,
            "cause": type(cause).__name__,
            "cause_code": getattr(cause, "error_code", None),
        },
    )


def open_upload(
    sink: BundleSink, key: str, *, content_type: str, metadata: Mapping[str, str]
) -> BundleUpload:
    """``sink.open_upload(key, content_type=..., metadata=...)``, or without ``metadata``
    for a sink written before 0.2 (whose ``open_upload`` has no such parameter): its
    bundles then carry no metadata, and recovery reads them by the reader's own settings,
    as before (logged once per sink class)."""
    if _takes_metadata(sink):
        return sink.open_upload(key, content_type=content_type, metadata=metadata)
    return sink.open_upload(key, content_type=content_type)  # type: ignore[call-arg]


def _takes_metadata(sink: object) -> bool:
    """Whether ``sink.open_upload`` accepts ``metadata=`` (or any keyword).

    A method the sink's class defines is read once per function (a bounded cache); one
    set on the instance or forwarded by ``__getattr__`` (a wrapper, a ``MagicMock``,
    whose class is made per instance) is read at each call, so nothing is kept per
    instance.
    """
    method = getattr(sink, "open_upload", None)
    function = getattr(method, "__func__", None)
    if function is not None and function is getattr(type(sink), "open_upload", None):
        takes = _function_takes_metadata(function)
    else:
        takes = _accepts_metadata(method)
    if not takes:
        _warn_without_metadata(f"{type(sink).__module__}.{type(sink).__qualname__}")
    return takes


def _accepts_metadata(method: object) -> bool:
    try:
        parameters = inspect.signature(method).parameters.values()  # type: ignore[arg-type]
    except (TypeError, ValueError, AttributeError):  # no signature: assume the current protocol
        return True
    return any(
        parameter.name == "metadata" or parameter.kind is inspect.Parameter.VAR_KEYWORD
        for parameter in parameters
    )


@functools.lru_cache(maxsize=64)
def _function_takes_metadata(function: Callable[..., object]) -> bool:
    return _accepts_metadata(function)


@functools.lru_cache(maxsize=64)
def _warn_without_metadata(sink_name: str) -> None:
    logger.warning(
        "%s.open_upload takes no metadata: its bundles do not record their format "
        "(add a 'metadata' keyword parameter and store it as the object's user metadata)",
        sink_name,
    )


@dataclass(slots=True)
class PendingMember:
    """A member written (or being written) into a bundle that is not committed yet."""

    index: int
    token: object
    entry: ManifestMember


@dataclass(slots=True)
class OpenBundle:
    """Bundle number ``number`` under ``key``, open for members."""

    number: int
    key: str
    upload: BundleUpload
    tar: TarStream | ConcatStream
    created_at: datetime
    overhead: int
    compressor: Compressor
    sink: BundleSink
    sidecar_prefix: str = ""
    members: list[PendingMember] = field(default_factory=list)
    manifest_bytes: int = 0

    @property
    def bundle_format(self) -> BundleFormat:
        """The bundle's layout."""
        return BundleFormat.CONCAT if isinstance(self.tar, ConcatStream) else BundleFormat.TAR

    @classmethod
    def open(
        cls,
        sink: BundleSink,
        number: int,
        key: str,
        codec: CodecSpec,
        created_at: datetime,
        *,
        bundle_format: BundleFormat = BundleFormat.TAR,
        sidecar_prefix: str = "",
    ) -> OpenBundle:
        """Open the upload and the tar (or concat) stream.

        Raises:
            SinkFailure: the sink could not open the upload.
        """
        sidecar = sidecar_key(key, sidecar_prefix) if bundle_format is BundleFormat.CONCAT else None
        try:
            upload = open_upload(
                sink,
                key,
                content_type=bundle_content_type(bundle_format, codec),
                metadata=bundle_metadata(bundle_format, sidecar),
            )
        except Exception as exc:
            raise SinkFailure(exc) from exc

        def write(data: bytes) -> None:
            try:
                upload.write(data)
            except Exception as exc:
                raise SinkFailure(exc) from exc

        compressor = new_compressor(codec)
        if bundle_format is BundleFormat.TAR:
            tar: TarStream | ConcatStream = TarStream(write, compressor)
        else:
            tar = ConcatStream(write, compressor)
        return cls(
            number,
            key,
            upload,
            tar,
            created_at,
            manifest_overhead(key),
            compressor,
            sink,
            sidecar_prefix,
        )

    def begin_member(self, index: int, token: object, entry: ManifestMember, header: bytes) -> None:
        """Record the member and write its header (its SHA-256 may be set later)."""
        self.members.append(PendingMember(index, token, entry))
        self.manifest_bytes += len(entry.encoded()) + 2
        try:
            self.tar.begin_member(header, entry.size)
        except SinkFailure:
            raise
        except Exception as exc:  # the compressor: treat like the sink
            raise SinkFailure(exc) from exc

    def write(self, chunk: bytes) -> None:
        """Append bytes of the current member."""
        try:
            self.tar.write_data(chunk)
        except SinkFailure:
            raise
        except Exception as exc:  # the compressor: treat like the sink
            raise SinkFailure(exc) from exc

    def set_sha256(self, sha256: str) -> None:
        """Set the SHA-256 of the last member (once its bytes are all written)."""
        last = self.members[-1]
        last.entry = replace(last.entry, sha256=sha256)

    def commit(
        self, before_commit: Callable[[str, Sequence[object]], None] | None
    ) -> BundleSummary:
        """Write the manifest and the end of the archive, run the hook, commit the upload.

        Raises:
            SinkFailure: anything failed; the caller aborts.
        """
        tar = self.tar
        if isinstance(tar, ConcatStream):
            for member, (offset, added) in zip(self.members, tar.members, strict=True):
                member.entry = replace(member.entry, offset=offset, newline_added=added)
        entries = [member.entry for member in self.members]
        document = render_manifest(self.key, self.created_at, entries, self.bundle_format)
        mtime = int(self.created_at.timestamp())
        try:
            if isinstance(tar, TarStream):
                tar.add_member(member_header(MANIFEST_NAME, len(document), mtime), document)
            tar.finish()
            prepare = getattr(self.upload, "prepare_commit", None)
            if prepare is not None:  # upload every part first: the hook runs last
                prepare()
            if isinstance(tar, ConcatStream):
                self._store_sidecar(document)
            if before_commit is not None:
                tokens = [member.token for member in self.members]
                try:
                    before_commit(self.key, tokens)
                except Exception as exc:
                    raise CommitHookFailure(exc) from exc
            receipt = self.upload.commit()
        except SinkFailure:
            raise
        except Exception as exc:
            raise SinkFailure(exc) from exc
        logger.info(
            "bundle uploaded",
            extra={
                "bundle_key": self.key,
                "members": len(entries),
                "tar_bytes": self.tar.tar_bytes,
                "size": receipt.size,
                "sha256": receipt.sha256,
            },
        )
        return BundleSummary(
            number=self.number,
            key=self.key,
            member_names=tuple(entry.name for entry in entries),
            tar_size=self.tar.tar_bytes,
            created_at=self.created_at,
            receipt=receipt,
        )

    def _store_sidecar(self, document: bytes) -> None:
        """Store a concat bundle's manifest as ``<prefix><key>.manifest.json`` (before the
        bundle).

        Raises:
            SinkFailure: the sidecar could not be stored.
        """
        name = sidecar_key(self.key, self.sidecar_prefix)
        try:
            upload = open_upload(self.sink, name, content_type=SIDECAR_CONTENT_TYPE, metadata={})
        except Exception as exc:
            raise SinkFailure(exc) from exc
        try:
            upload.write(document)
            upload.commit()
        except Exception as exc:
            try:
                upload.abort()
            except Exception:
                logger.exception("aborting a sidecar upload failed", extra={"bundle_key": name})
            raise SinkFailure(exc) from exc

    def abort(self, error_code: str) -> None:
        """Abort the upload (failures to abort are logged, not raised) and release the
        compression threads, if any."""
        if isinstance(self.compressor, BlockCompressor):
            self.compressor.close()
        try:
            self.upload.abort()
        except Exception:
            logger.exception("aborting a bundle upload failed", extra={"bundle_key": self.key})
        logger.warning(
            "bundle aborted",
            extra={"bundle_key": self.key, "members": len(self.members), "error_code": error_code},
        )
