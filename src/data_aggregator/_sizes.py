"""Sizes every layer shares: the mebibyte, S3's limits, and the tuning knobs' defaults.

Private and free of imports, so that the configuration, the schemas, the S3 client and the
bundle engine can all read the same numbers without importing one another. The public
names are re-exported where users look for them: ``data_aggregator.config.MIB``,
``data_aggregator.clients.MIN_PART_SIZE`` ...
"""

from __future__ import annotations

from typing import Final

__all__ = [
    "DEFAULT_FETCH_CONCURRENCY",
    "DEFAULT_IN_FLIGHT_MB",
    "DEFAULT_PART_SIZE_MB",
    "DEFAULT_UPLOAD_CONCURRENCY",
    "MAX_COMPRESSION_THREADS",
    "MAX_OBJECT_SIZE",
    "MAX_PARTS",
    "MAX_PART_SIZE",
    "MAX_USER_METADATA_BYTES",
    "MIB",
    "MIN_PART_SIZE",
]

#: One mebibyte (1,048,576 bytes): every ``*_MB`` setting is a number of MiB.
MIB: Final = 1024 * 1024
#: S3's smallest part (all but the last part of a multipart upload).
MIN_PART_SIZE: Final = 5 * MIB
#: S3's largest part: 5 GiB.
MAX_PART_SIZE: Final = 5 * 1024 * MIB
#: S3 accepts at most this many parts in one multipart upload.
MAX_PARTS: Final = 10_000
#: S3's largest object: 5 TiB.
MAX_OBJECT_SIZE: Final = 5 * 1024 * 1024 * MIB
#: S3's limit on an object's user metadata (``x-amz-meta-*``): the UTF-8 bytes of every key
#: and value, summed.
MAX_USER_METADATA_BYTES: Final = 2048

# The tuning knobs' defaults: `AppConfig` (FETCH_CONCURRENCY ...) and the components that
# take the knob directly (`BundleEngine`, `MultipartWriter`, the S3 client's pool) read them.
#: Objects fetched at once by the bundle engine.
DEFAULT_FETCH_CONCURRENCY: Final = 32
#: Parts uploaded at once by the multipart writer.
DEFAULT_UPLOAD_CONCURRENCY: Final = 4
#: Multipart part size, MiB.
DEFAULT_PART_SIZE_MB: Final = 16
#: Bytes of fetched bodies the bundle engine holds at once, MiB.
DEFAULT_IN_FLIGHT_MB: Final = 64
#: The most compression threads a bundle may use (``COMPRESSION_THREADS``).
MAX_COMPRESSION_THREADS: Final = 64
