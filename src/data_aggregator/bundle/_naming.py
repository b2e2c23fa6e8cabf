"""Deterministic, collision-free member names for the objects of one bundle run.

Private; the rule is documented in ``docs/bundle-format.md`` ("Member names"). In short:

* Every object starts from its *base name*: its sanitized key (or the caller's name, itself
  sanitized). Names are compared *folded*: NFC-normalised and case-folded, because bundles
  are extracted on case-insensitive filesystems too (macOS, Windows).
* Objects whose folded base names are equal form a group. The member that sorts first by
  identity ``(bucket, key, version_id, sequencer, occurrence)`` keeps the plain name; the
  others are renamed. ``manifest.json`` is reserved: no object keeps it.
* A plain name that is also a *directory* of another name (``a`` next to ``a/b``) is
  renamed too, since one path cannot be both a file and a directory on disk.
* Renaming inserts ``~`` and 8 hex digits before the extension of the segment at fault
  (``a.txt`` -> ``a~3f2c9d1e.txt``, ``logs.tar.gz`` -> ``logs~3f2c9d1e.tar.gz``). The digits
  come from SHA-256 of the object's identity, so a name depends only on the set of objects,
  not on their arrival order. A renamed name that still clashes (a key crafted to look
  like a renamed one) is hashed again with an attempt counter.

``occurrence`` counts exact duplicates (same bucket, key, version and sequencer) in input
order, so duplicated inputs still get distinct names.
"""

from __future__ import annotations

import hashlib
import json
import unicodedata
from dataclasses import dataclass
from typing import TYPE_CHECKING

from data_aggregator.config import BundleFormat, Codec
from data_aggregator.exceptions import BundleError, ErrorCode, ValidationError

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from data_aggregator.bundle._codecs import CodecSpec

__all__ = [
    "MANIFEST_NAME",
    "NameRequest",
    "assign_member_names",
    "bundle_content_type",
    "bundle_extension",
    "fold_name",
]

MANIFEST_NAME = "manifest.json"
#: Extensions of concat bundles, by codec: lines of text, compressed.
_CONCAT_EXTENSIONS = {Codec.GZIP: ".log.gz", Codec.ZSTD: ".log.zst", Codec.NONE: ".log"}
_TEXT_CONTENT_TYPE = "text/plain; charset=utf-8"
SUFFIX_SEPARATOR = "~"
_DIGEST_CHARS = 8
_MAX_EXTENSION_CHARS = 16
_MAX_SEGMENT_BYTES = 255
_MAX_NAME_BYTES = 1024
_MAX_ATTEMPTS = 64


@dataclass(frozen=True, slots=True)
class NameRequest:
    """One object to name: its safe base name and its identity."""

    base: str
    bucket: str
    key: str
    version_id: str | None
    sequencer: str | None


def bundle_extension(bundle_format: BundleFormat, codec: CodecSpec) -> str:
    """The file extension of a bundle: ``.tar.gz``, ``.tar.zst``, ``.tar`` (tar) or
    ``.log.gz``, ``.log.zst``, ``.log`` (concat). A ``bundle_key`` hook may name bundles
    otherwise (``.jsonl.gz`` for JSON lines, say)."""
    if bundle_format is BundleFormat.TAR:
        return codec.extension
    return _CONCAT_EXTENSIONS[codec.codec]


def bundle_content_type(bundle_format: BundleFormat, codec: CodecSpec) -> str:
    """The ``Content-Type`` of a bundle: the codec's, or UTF-8 text for an uncompressed
    concat bundle."""
    if bundle_format is BundleFormat.CONCAT and codec.codec is Codec.NONE:
        return _TEXT_CONTENT_TYPE
    return codec.content_type


def fold_name(name: str) -> str:
    """The comparison form of a name: NFC, case-folded, NFC again."""
    return unicodedata.normalize("NFC", unicodedata.normalize("NFC", name).casefold())


def _prefixes(folded: str) -> list[str]:
    """Folded directory paths that ``folded`` lives in: ``a/b/c`` -> ``a``, ``a/b``."""
    parts = folded.split("/")
    return ["/".join(parts[:i]) for i in range(1, len(parts))]


def _split_extension(segment: str) -> tuple[str, str]:
    dot = segment.rfind(".")
    if dot <= 0 or len(segment) - dot > _MAX_EXTENSION_CHARS:
        return segment, ""
    stem, ext = segment[:dot], segment[dot:]
    if len(stem) > 4 and stem[-4:].lower() == ".tar":  # keep .tar.gz and friends together
        stem, ext = stem[:-4], stem[-4:] + ext
    return stem, ext


def _utf8(text: str) -> int:
    return len(text.encode("utf-8"))


def _digest(request: NameRequest, occurrence: int, segment: int, attempt: int) -> str:
    identity = [
        request.bucket,
        request.key,
        request.version_id or "",
        request.sequencer or "",
        occurrence,
        segment,
        attempt,
    ]
    raw = json.dumps(identity, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    return hashlib.sha256(raw).hexdigest()[:_DIGEST_CHARS]


def _suffixed(base: str, salts: dict[int, str]) -> str:
    """``base`` with ``~digest`` inserted in each salted segment, trimmed to stay in limits."""
    segments = base.split("/")
    for index, digest in salts.items():
        stem, ext = _split_extension(segments[index])
        tail = f"{SUFFIX_SEPARATOR}{digest}{ext}"
        segments[index] = stem + tail
        # Shorten the stem (never the tail) until the segment and the whole name fit.
        while stem and (
            _utf8(segments[index]) > _MAX_SEGMENT_BYTES
            or _utf8("/".join(segments)) > _MAX_NAME_BYTES
        ):
            stem = stem[:-1].rstrip()
            segments[index] = stem + tail
    return "/".join(segments)


class _Taken:
    """Folded file names and directory paths already claimed in the bundle run."""

    def __init__(self) -> None:
        self.files: set[str] = {fold_name(MANIFEST_NAME)}
        self.dirs: set[str] = set()

    def conflict(self, name: str) -> int | None:
        """Index of the segment to rename so ``name`` can be claimed, or ``None`` if free."""
        folded = fold_name(name)
        for index, prefix in enumerate(_prefixes(folded)):
            if prefix in self.files:
                return index
        if folded in self.files or folded in self.dirs:
            return name.count("/")
        return None

    def claim(self, name: str) -> None:
        folded = fold_name(name)
        self.files.add(folded)
        self.dirs.update(_prefixes(folded))


def assign_member_names(
    requests: Sequence[NameRequest], validate: Callable[[str], str]
) -> list[str]:
    """Return one unique, safe member name per request, in the same order.

    Args:
        requests: Objects to name; every ``base`` must already be a sanitized name.
        validate: The sanitizer; a renamed name is kept only if it is a fixed point of it.

    Raises:
        BundleError: no safe unique name was found within the attempt limit (needs keys
            crafted against the rule; never seen in practice).
    """
    occurrences: list[int] = []
    seen: dict[tuple[str, str, str, str], int] = {}
    for request in requests:
        ident = (request.bucket, request.key, request.version_id or "", request.sequencer or "")
        occurrences.append(seen.get(ident, 0))
        seen[ident] = occurrences[-1] + 1

    def order(i: int) -> tuple[str, str, str, str, int]:
        request = requests[i]
        return (
            request.bucket,
            request.key,
            request.version_id or "",
            request.sequencer or "",
            occurrences[i],
        )

    folded = [fold_name(request.base) for request in requests]
    reserved = fold_name(MANIFEST_NAME)
    groups: dict[str, list[int]] = {}
    for i, name in enumerate(folded):
        groups.setdefault(name, []).append(i)

    # Directories every object will need (renaming only changes a last segment, except under
    # the reserved manifest name, whose objects are renamed at the clashing segment).
    needed_dirs: set[str] = set()
    for name in folded:
        prefixes = _prefixes(name)
        if reserved not in prefixes:
            needed_dirs.update(prefixes)

    names: list[str | None] = [None] * len(requests)
    taken = _Taken()
    taken.dirs.update(needed_dirs)
    losers: list[int] = []
    for name, members in groups.items():
        members.sort(key=order)
        winner = members[0]
        if name == reserved or name in needed_dirs or reserved in _prefixes(name):
            losers.extend(members)
        else:
            names[winner] = requests[winner].base
            taken.claim(requests[winner].base)
            losers.extend(members[1:])

    losers.sort(key=lambda i: (folded[i], order(i)))
    for i in losers:
        renamed = _rename(requests[i], occurrences[i], taken, validate)
        taken.claim(renamed)
        names[i] = renamed
    return [name for name in names if name is not None]


def _rename(
    request: NameRequest, occurrence: int, taken: _Taken, validate: Callable[[str], str]
) -> str:
    attempts: dict[int, int] = {}
    candidate = request.base
    for _ in range(_MAX_ATTEMPTS):
        segment = taken.conflict(candidate)
        if segment is None:
            if candidate != request.base and _is_safe(candidate, validate):
                return candidate
            segment = candidate.count("/")
        attempts[segment] = attempts.get(segment, -1) + 1
        salts = {
            index: _digest(request, occurrence, index, attempt)
            for index, attempt in attempts.items()
        }
        candidate = _suffixed(request.base, salts)
    raise BundleError(
        "could not find a unique member name",
        ErrorCode.MEMBER_NAME_EXHAUSTED,
        {"bucket": request.bucket, "key_hint": repr(request.key[:64])},
    )


def _is_safe(name: str, validate: Callable[[str], str]) -> bool:
    try:
        return validate(name) == name
    except ValidationError:
        return False
