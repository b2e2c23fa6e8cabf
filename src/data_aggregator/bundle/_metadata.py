"""What a bundle object says about itself in its S3 user metadata: its format and, for a
concat bundle, the key of its sidecar manifest.

Private; the writer (``_writer.py``) stores it when it opens a bundle's upload, and
`data_aggregator.bundle.read_bundle_manifest` (crash recovery) and ``data-aggregator
inspect`` read it back from the ``GetObject`` of the bundle (no extra request), so a
reader finds a concat bundle's sidecar wherever the writer put it, whatever the reader's
own ``BUNDLE_FORMAT`` and ``SIDECAR_PREFIX``. Bundles written before this existed carry
neither key: `BundleDescription.bundle_format` is then ``None`` and readers go by their
configuration (``docs/bundle-format.md``, "The bundle's metadata").
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final
from urllib.parse import quote, unquote

from data_aggregator.bundle._manifest import bundle_problem
from data_aggregator.config import BundleFormat

if TYPE_CHECKING:
    from collections.abc import Mapping

__all__ = [
    "FORMAT_METADATA",
    "MAX_DESCRIPTION_BYTES",
    "MAX_SIDECAR_METADATA",
    "RESERVED_METADATA",
    "SIDECAR_METADATA",
    "BundleDescription",
    "bundle_metadata",
]

logger = logging.getLogger("data_aggregator.bundle")

#: User metadata key (``x-amz-meta-aggregator-format``): the bundle's format, ``tar`` or
#: ``concat``.
FORMAT_METADATA: Final = "aggregator-format"
#: User metadata key (``x-amz-meta-aggregator-sidecar``) of a concat bundle: its sidecar's
#: key in the same bucket, percent-encoded (UTF-8; letters, digits, ``-._~/`` as they are).
SIDECAR_METADATA: Final = "aggregator-sidecar"
#: Longest encoded sidecar key recorded. S3 allows 2 KB of user metadata per object; a
#: key whose encoding is longer is left out, and readers look for the sidecar where their
#: configuration says. Each byte other than a letter, digit or ``-._~/`` (``=``, space,
#: ``+``, ``:``, any non-ASCII byte) takes three characters, so a key of ``n`` bytes
#: ``k`` of which are such bytes is recorded when ``n + 2k <= 1024``.
MAX_SIDECAR_METADATA: Final = 1024
#: The metadata keys of a bundle's description: reserved, in any case, for the writer (a
#: sink's own metadata may not use them).
RESERVED_METADATA: Final = frozenset({FORMAT_METADATA, SIDECAR_METADATA})
#: The most user metadata a bundle's description takes, as S3 counts it (keys and values,
#: UTF-8): a concat bundle naming the longest sidecar key recorded (1,065 bytes).
MAX_DESCRIPTION_BYTES: Final = (
    len(FORMAT_METADATA)
    + max(len(layout.value) for layout in BundleFormat)
    + len(SIDECAR_METADATA)
    + MAX_SIDECAR_METADATA
)


def bundle_metadata(bundle_format: BundleFormat, sidecar_key: str | None) -> dict[str, str]:
    """The user metadata of a bundle of ``bundle_format`` whose sidecar is ``sidecar_key``
    (``None`` for a tar bundle)."""
    metadata = {FORMAT_METADATA: bundle_format.value}
    if sidecar_key is not None:
        encoded = quote(sidecar_key, safe="/")
        if len(encoded) <= MAX_SIDECAR_METADATA:
            metadata[SIDECAR_METADATA] = encoded
        else:
            logger.warning(
                "sidecar key too long for the bundle's metadata: readers use their own "
                "SIDECAR_PREFIX",
                extra={"sidecar_key": sidecar_key[:256], "encoded_length": len(encoded)},
            )
    return metadata


@dataclass(frozen=True, slots=True)
class BundleDescription:
    """What a bundle's metadata says.

    Attributes:
        bundle_format: ``TAR`` or ``CONCAT``; ``None`` when the metadata does not say (a
            bundle written before bundles described themselves, or by another writer).
        sidecar_key: A concat bundle's sidecar key, when recorded.
    """

    bundle_format: BundleFormat | None = None
    sidecar_key: str | None = None

    @classmethod
    def from_metadata(cls, metadata: Mapping[str, str]) -> BundleDescription:
        """Read ``metadata`` (``GetObject``'s ``Metadata``; keys in any case).

        Raises:
            BundleError: ``BUNDLE_INVALID``: a format this library does not know (a newer
                writer's), or a sidecar key that is not percent-encoded UTF-8, or one on a
                bundle that is not concat. Such a bundle cannot be read safely.
        """
        found = {str(key).lower(): value for key, value in metadata.items()}
        written = found.get(FORMAT_METADATA)
        encoded = found.get(SIDECAR_METADATA)
        if written is None:
            return cls()
        try:
            bundle_format = BundleFormat(written.strip().lower())
        except ValueError:
            raise bundle_problem(
                f"the bundle's metadata names format {written[:64]!r}, which this version "
                "cannot read"
            ) from None
        if encoded is None:
            return cls(bundle_format)
        if bundle_format is not BundleFormat.CONCAT:
            raise bundle_problem(f"the bundle's metadata names a sidecar for a {written} bundle")
        try:
            sidecar_key = unquote(encoded.strip(), errors="strict")
        except UnicodeDecodeError:
            sidecar_key = ""
        if not sidecar_key:
            raise bundle_problem(f"the bundle's metadata names no usable sidecar: {encoded[:64]!r}")
        return cls(bundle_format, sidecar_key)
