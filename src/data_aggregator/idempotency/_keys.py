"""The idempotency key of one S3 object version: the seed's formula (private)."""

from __future__ import annotations

import json
from urllib.parse import quote

__all__ = ["make_idempotency_key"]


def make_idempotency_key(key: str, version: str | None, sequencer: str | None) -> str:
    """Return the idempotency key of one S3 object version.

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

    >>> make_idempotency_key("a b.txt", None, "0055AED6DCD90281E5")
    '%7B%22k%22%3A%22a%20b.txt%22%2C%22u%22%3A%220055AED6DCD90281E5%22%7D'
    """
    unique_part = version or sequencer
    raw = json.dumps({"k": key, "u": unique_part}, separators=(",", ":"))
    return quote(raw, safe="")
