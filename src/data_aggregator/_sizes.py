"""Sizes every layer shares: the mebibyte and S3's limits on objects and multipart uploads.

Private and free of imports, so that the configuration, the schemas, the S3 client and the
bundle engine can all read the same numbers without importing one another. The public
names are re-exported where users look for them: ``data_aggregator.config.MIB``,
``data_aggregator.clients.MIN_PART_SIZE`` ...
"""

from __future__ import annotations

from typing import Final

__all__ = ["MAX_OBJECT_SIZE", "MAX_PARTS", "MAX_PART_SIZE", "MIB", "MIN_PART_SIZE"]

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
