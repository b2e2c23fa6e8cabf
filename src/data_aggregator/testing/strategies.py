"""Hypothesis strategies for S3 keys and S3 notification records.

Needs hypothesis: ``pip install 's3-data-aggregator[testing]'``.

* Keys S3 accepts ([`s3_keys`][data_aggregator.testing.strategies.s3_keys],
  [`event_keys`][data_aggregator.testing.strategies.event_keys]): non-empty valid UTF-8 of at
  most 1024 bytes, stressing form encoding, NFC/NFD twins, emoji.
* Adversarial key text for sanitizers
  ([`adversarial_s3_keys`][data_aggregator.testing.strategies.adversarial_s3_keys],
  [`any_s3_key_text`][data_aggregator.testing.strategies.any_s3_key_text]): traversal,
  percent-escapes (nested, invalid, overlong), Windows prefixes and device names, control /
  format / surrogate characters, fullwidth forms, keys a few bytes either side of the 1024-byte
  limit. Not all of it is a key S3 would store: that is the point.
* Records ([`s3_event_records`][data_aggregator.testing.strategies.s3_event_records]) built with
  [`data_aggregator.testing.s3_record`][data_aggregator.testing.s3_record].
"""

from __future__ import annotations

import re
import unicodedata
from typing import TYPE_CHECKING
from urllib.parse import quote

try:
    from hypothesis import strategies as st
except ImportError as exc:  # pragma: no cover - depends on the environment
    msg = (
        "data_aggregator.testing.strategies needs hypothesis: "
        "pip install 's3-data-aggregator[testing]'"
    )
    raise ImportError(msg, name=exc.name) from exc

from data_aggregator.testing._events import s3_record

if TYPE_CHECKING:
    from data_aggregator.schemas import S3EventRecord

__all__ = [
    "EVENT_KEY_ATOMS",
    "MAX_KEY_BYTES",
    "S3_KEY_ATOMS",
    "adversarial_s3_keys",
    "any_s3_key_text",
    "event_keys",
    "is_valid_s3_key",
    "nfc_nfd_twins",
    "percent_encode",
    "s3_event_records",
    "s3_keys",
    "s3_keys_near_limit",
    "s3_record",
    "safe_s3_keys",
    "safe_s3_segments",
    "text_with_surrogates",
    "windows_prefixes",
]

#: The longest key S3 stores, in UTF-8 bytes.
MAX_KEY_BYTES = 1024

#: Pieces that exercise every canonicalisation step and every rejection rule of
#: ``sanitize_s3_key``: separators, dots, percent-escapes (nested, invalid, overlong),
#: Windows prefixes and device names, control / format / surrogate characters, fullwidth
#: and other compatibility forms, decomposable characters, whitespace, plain text.
S3_KEY_ATOMS: tuple[str, ...] = (
    # separators and dots
    "/", "//", "\\", "\\\\", ".", "..", "...", "./", "../", "..\\", "/.", "/..",
    # percent-encoding
    "%", "%%", "%4", "%2e", "%2E", "%2f", "%2F", "%5c", "%5C", "%25", "%252e", "%252f",
    "%25252e", "%2525252e", "%00", "%0a", "%ff", "%C0%AE", "%e2%80%8b", "%3a", "%41",
    "%c3%a9", "100%", "+",
    # Windows prefixes and device names
    "C:", "c:", "C:/", "z:\\", "\\\\?\\", "\\\\?\\UNC\\", "\\\\.\\", "//?/", "//server/share/",
    "CON", "con", "Nul", "aux.txt", "COM1", "lpt9", "com0", "conin$", "PRN.", "nul ", "con:",
    # control, format, surrogate and separator characters
    "\x00", "\x1f", "\x7f", "\x85", "\t", "\n", "\u200b", "\u200d", "\u202e", "\ufeff",
    "\u00ad", "\u2028", "\u2029", "\ud800", "\udfff",
    # fullwidth and compatibility forms that NFKC turns into syntax
    "\uff05", "\uff0e", "\uff0f", "\uff3c", "\uff1a", "\uff12\uff45", "\uff12\uff26",
    "\u2024", "\u2025", "\u2026", "\ufe52", "\ufe30", "\u2100", "\uff23\uff1a",
    "\uff23\uff2f\uff2e", "COM\u00b9",
    # decomposable and compatibility characters
    "e\u0301", "\u00e9", "A\u030a", "\u212b", "\ufb01", "\u2460", "\u337f", "\ufdfa",
    # whitespace
    " ", "\u00a0", "\u3000", "\u1680",
    # ordinary text
    "a", "b", "x.txt", "logs", "2024", "\u65e5\u672c\u8a9e", "\U0001f600", "\u00df",
)  # fmt: skip

#: Pieces of event keys that stress the "decode exactly once" rule: form-encoding syntax
#: (``+``, ``%``, literal escapes, double escapes), spaces, NFC/NFD twins, emoji, and the
#: characters S3 notifications percent-encode.
EVENT_KEY_ATOMS: tuple[str, ...] = (
    "+", "%", "%2B", "%252B", "%20", "%2F", "%%", "%zz", "+%2B+", " ", "  ", "a", "B", "0",
    "/", "log", ".json", "\u00e9", "e\u0301", "\u00c5", "A\u030a", "\U0001f4c8", "\U0001f600",
    "\u65e5\u672c", "~", "*", ":", "=", "&", "?", "#", "@", ";", ",", "'", "(", ")", "!",
)  # fmt: skip

_DEVICE_NAME = re.compile(
    r"(?:CON|PRN|AUX|NUL|COM[0-9]|LPT[0-9]|CONIN\$|CONOUT\$) *(?:[.:]|\Z)", re.I | re.A
)
# NFKC-stable characters with no special meaning to sanitize_s3_key (no "%", "\", ":").
_SAFE_ALPHABET = (
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
    "-_.+=,;@~!$&'()[]{}# \u00e9\u00df\u03a9\u65e5\u672c\u8a9e\U0001f600"
)


def is_valid_s3_key(key: str) -> bool:
    """Whether S3 could store ``key``: non-empty, valid UTF-8, at most 1024 bytes."""
    try:
        return 0 < len(key.encode("utf-8")) <= MAX_KEY_BYTES
    except UnicodeEncodeError:  # lone surrogates
        return False


# ----------------------------------------------------------------------------- adversarial


def text_with_surrogates() -> st.SearchStrategy[str]:
    """Any text, lone surrogates included (``st.text()`` leaves them out)."""
    return st.text(st.characters(exclude_categories=()))


def adversarial_s3_keys(max_atoms: int = 12) -> st.SearchStrategy[str]:
    """Keys glued together from `S3_KEY_ATOMS` and short arbitrary text."""
    piece = st.one_of(
        st.sampled_from(S3_KEY_ATOMS),
        st.sampled_from(S3_KEY_ATOMS),
        st.text(max_size=4),
    )
    return st.lists(piece, max_size=max_atoms).map("".join)


def safe_s3_segments() -> st.SearchStrategy[str]:
    """One path segment that ``sanitize_s3_key`` must leave unchanged."""
    return st.text(_SAFE_ALPHABET, min_size=1, max_size=20).filter(
        lambda s: s == s.strip() and s.strip(".") != "" and not _DEVICE_NAME.match(s)
    )


def safe_s3_keys(max_segments: int = 6) -> st.SearchStrategy[str]:
    """Relative keys made of safe segments: ``sanitize_s3_key`` returns them as they are."""
    return st.lists(safe_s3_segments(), min_size=1, max_size=max_segments).map("/".join)


def percent_encode(key: str, times: int) -> str:
    """``key`` percent-encoded ``times`` times over, every character but unreserved ones.

    Lone surrogates are encoded as their (invalid) UTF-8 bytes rather than refused.
    """
    for _ in range(times):
        key = quote(key, safe="", errors="surrogatepass")
    return key


def windows_prefixes() -> st.SearchStrategy[str]:
    """Drive and long-path prefixes that ``sanitize_s3_key`` strips without a trace."""
    return st.sampled_from(
        [
            "/", "//", "\\", "C:", "c:/", "Z:\\", "\\\\?\\", "\\\\?\\C:\\", "\\\\?\\UNC\\",
            "\\\\.\\", "//?/unc/", "\uff23\uff1a\uff3c", "%2F", "C:%5C", "./", "C:/./",
        ]
    )  # fmt: skip


@st.composite
def s3_keys_near_limit(draw: st.DrawFn) -> str:
    """Keys from 1016 to 1032 UTF-8 bytes (the limit is 1024), short or over-long segments."""
    target = draw(st.integers(min_value=1016, max_value=1032))
    unit = draw(
        st.sampled_from(
            ["a", "ab/", "abcdefghij/", "\u00e9/", "\u65e5\u672c/", "\U0001f600x/", "%41/",
             "\ufdfa/", "\u00e9", "\u65e5"]
        )
    )  # fmt: skip
    key = unit * (target // len(unit.encode()) + 1)
    while len(key.encode()) > target:
        key = key[:-1]
    key += "z" * (target - len(key.encode()))
    if key.endswith("/"):
        key = key[:-1] + "z"
    return key


def any_s3_key_text() -> st.SearchStrategy[str]:
    """Arbitrary and targeted key text, valid or not: what a sanitizer must survive."""
    return st.one_of(
        st.text(),
        text_with_surrogates(),
        adversarial_s3_keys(),
        s3_keys_near_limit(),
        st.tuples(windows_prefixes(), adversarial_s3_keys(max_atoms=4)).map("".join),
        st.builds(percent_encode, adversarial_s3_keys(max_atoms=4), st.integers(0, 4)),
    )


# ----------------------------------------------------------------------------- valid keys


def event_keys() -> st.SearchStrategy[str]:
    """Exact S3 keys (non-empty valid UTF-8, at most 1024 bytes) stressing key encoding."""
    glued = st.lists(st.sampled_from(EVENT_KEY_ATOMS), min_size=1, max_size=12).map("".join)
    mixed = st.lists(
        st.one_of(st.sampled_from(EVENT_KEY_ATOMS), st.text(min_size=1, max_size=3)),
        min_size=1,
        max_size=8,
    ).map("".join)
    return st.one_of(glued, mixed, st.text(min_size=1, max_size=40)).filter(is_valid_s3_key)


def nfc_nfd_twins() -> st.SearchStrategy[tuple[str, str]]:
    """Pairs of different keys that are one text: the NFC and the NFD form of each other."""
    return (
        event_keys()
        .map(lambda key: (unicodedata.normalize("NFC", key), unicodedata.normalize("NFD", key)))
        .filter(lambda pair: pair[0] != pair[1] and all(map(is_valid_s3_key, pair)))
    )


def s3_keys() -> st.SearchStrategy[str]:
    """Every kind of key S3 accepts, the adversarial ones included (traversal, control and
    format characters, device names, NFC/NFD twins, keys of up to 1024 bytes)."""
    return st.one_of(
        event_keys(),
        adversarial_s3_keys(),
        s3_keys_near_limit(),
        nfc_nfd_twins().flatmap(st.sampled_from),
    ).filter(is_valid_s3_key)


# ----------------------------------------------------------------------------- records


@st.composite
def s3_event_records(
    draw: st.DrawFn, key: str | None = None, event_name: str = "ObjectCreated:Put"
) -> S3EventRecord:
    """Classic S3 notification records for ``key`` (drawn from
    [`s3_keys`][data_aggregator.testing.strategies.s3_keys] by default), with or without
    size, ETag (multipart too) and version id."""
    if key is None:
        key = draw(s3_keys())
    with_size = draw(st.booleans())
    return s3_record(
        draw(st.from_regex(r"[a-z0-9][a-z0-9-]{1,20}[a-z0-9]", fullmatch=True)),
        key,
        size=draw(st.integers(0, 5 * 1024**4)) if with_size else None,
        etag=(
            draw(st.from_regex(r"[0-9a-f]{32}(-[1-9][0-9]{0,3})?", fullmatch=True))
            if with_size
            else None
        ),
        version_id=(
            draw(st.from_regex(r"[A-Za-z0-9._]{32}", fullmatch=True))
            if draw(st.booleans())
            else None
        ),
        sequencer=draw(st.from_regex(r"[0-9A-F]{16,18}", fullmatch=True)),
        event_name=event_name,
        event_time="2024-01-01T00:00:00.000Z",
    )
