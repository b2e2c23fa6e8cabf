"""Turn S3 object keys into safe archive member names.

An S3 key is an arbitrary UTF-8 string of up to 1024 bytes chosen by whoever uploads the
object. Used as it is for a tar member name, a crafted key (``../../etc/cron.d/x``,
``%2e%2e/x``, ``C:\\Windows\\x``, ``CON``, a key full of control characters ...) could make
whoever extracts the bundle write outside the target directory, clobber another member,
or break the consumer's tools. [`sanitize_s3_key`][data_aggregator.security.sanitize_s3_key]
turns a key into a relative POSIX path that is safe to extract, or refuses it with a
[`ValidationError`][data_aggregator.exceptions.ValidationError].

The sanitized name is only ever an archive member name: S3 calls must use the exact
original key. See ``docs/security.md`` for the full rules and examples.
"""

from __future__ import annotations

import re
import unicodedata

from data_aggregator.exceptions import ValidationError, ValidationErrorCode

__all__ = [
    "MAX_KEY_BYTES",
    "MAX_ROUNDS",
    "MAX_SEGMENT_BYTES",
    "sanitize_s3_key",
]

#: Longest key accepted, in UTF-8 bytes, both as received and once canonicalised (S3's limit).
MAX_KEY_BYTES = 1024
#: Longest single path segment, in UTF-8 bytes (``NAME_MAX`` on common filesystems).
MAX_SEGMENT_BYTES = 255
#: Canonicalisation rounds allowed; the last one must leave the key unchanged, so at most
#: ``MAX_ROUNDS - 1`` rounds may rewrite it (three levels of percent-encoding).
MAX_ROUNDS = 4

_HINT_CHARS = 64

# A run of consecutive %XX escapes, decoded together so multi-byte UTF-8 sequences survive.
_PERCENT_RUN = re.compile(r"(?:%[0-9A-Fa-f]{2})+")
# Windows long-path / device-namespace prefixes once "\" became "/": \\?\, \\.\, \\?\UNC\.
_LONG_PREFIX = re.compile(r"/{2,}[?.](?:/+|\Z)(?:UNC(?:/+|\Z))?", re.IGNORECASE)
# A drive designator at the start of the first segment: "C:" (then "C:/x" or "C:x").
_DRIVE = re.compile(r"[A-Za-z]:")
# Windows reserved device names, alone or followed by spaces then an extension, a stream
# (":") or trailing dots: CON, con.txt, Nul., "aux .log", COM1:, LPT9.tar.gz ...
_DEVICE = re.compile(
    r"(?:CON|PRN|AUX|NUL|COM[0-9]|LPT[0-9]|CONIN\$|CONOUT\$) *(?:[.:]|\Z)",
    re.IGNORECASE | re.ASCII,
)
_ASCII_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_NON_ASCII = re.compile(r"[^\x00-\x7f]")
# Control, format, surrogate, line and paragraph separator characters.
_BAD_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Zl", "Zp"})


class _InvalidUtf8Error(Exception):
    """Percent-decoding produced bytes that are not valid UTF-8 (internal signal)."""


def _decode_run(match: re.Match[str]) -> str:
    raw = bytes.fromhex(match.group().replace("%", ""))
    try:
        return raw.decode("utf-8")  # strict: no overlong forms, no encoded surrogates
    except UnicodeDecodeError as exc:
        raise _InvalidUtf8Error from exc


def _structure(text: str) -> str:
    """Strip Windows prefixes and drop empty and ``.`` segments (idempotent on its own)."""
    if text.startswith("//"):
        prefix = _LONG_PREFIX.match(text)
        if prefix is not None:
            text = text[prefix.end() :]
    segments = [segment for segment in text.split("/") if segment and segment != "."]
    while segments and _DRIVE.match(segments[0]):
        rest = segments[0][2:]
        if rest and rest != ".":
            segments[0] = rest
        else:
            del segments[0]
    return "/".join(segments)


def _canonical_round(text: str) -> str:
    """One round: NFKC, percent-decode once, ``\\`` to ``/``, strip prefixes, drop segments."""
    if not text.isascii():  # NFKC leaves ASCII unchanged
        text = unicodedata.normalize("NFKC", text)
    if "%" in text:
        text = _PERCENT_RUN.sub(_decode_run, text)
    if "\\" in text:
        text = text.replace("\\", "/")
    return _structure(text)


def _utf8_len(text: str) -> int:
    if text.isascii():
        return len(text)
    return len(text.encode("utf-8", "surrogatepass"))


def _refuse(
    message: str, code: ValidationErrorCode, key: str, segment_index: int | None = None
) -> ValidationError:
    context: dict[str, object] = {"key_hint": repr(key[:_HINT_CHARS])}
    if segment_index is not None:
        context["segment_index"] = segment_index
    return ValidationError(message, code, context)


def _bad_character(text: str) -> int | None:
    """Index of the first control, format, surrogate or line-separator character, if any."""
    found = _ASCII_CONTROL.search(text)
    first = found.start() if found is not None else None
    if not text.isascii():
        for char in set(_NON_ASCII.findall(text)):
            if unicodedata.category(char) in _BAD_CATEGORIES:
                index = text.index(char)
                first = index if first is None else min(first, index)
    return first


def sanitize_s3_key(key: object) -> str:
    """Return ``key`` as a safe, relative POSIX archive member name.

    The key is canonicalised first, then validated. One canonicalisation round is:
    NFKC normalisation; one percent-decoding pass (``%XX`` only, ``+`` stays ``+``);
    ``\\`` to ``/``; Windows prefixes stripped (``\\\\?\\``, ``\\\\?\\UNC\\``, ``\\\\.\\``,
    leading slashes, a drive ``C:`` at the start); empty and ``.`` segments dropped. Rounds
    repeat until the key stops changing, at most `MAX_ROUNDS` times. The fixed point
    is then validated, so the function is idempotent:
    ``sanitize_s3_key(sanitize_s3_key(k)) == sanitize_s3_key(k)``.

    Args:
        key: The exact S3 object key (already form-decoded once from the event).

    Returns:
        A non-empty relative path of ``/``-separated segments, none empty, ``.`` or made of
        dots only, with no control or format characters, at most `MAX_KEY_BYTES`
        UTF-8 bytes in all and `MAX_SEGMENT_BYTES` per segment.

    Raises:
        ValidationError: ``error_code`` is ``INVALID_S3_KEY_TYPE`` (not a ``str``),
            ``INVALID_S3_KEY_LENGTH`` (too long, whole or one segment),
            ``INVALID_S3_KEY_CHARACTER`` (control, format, surrogate or line-separator
            characters, or percent-escapes that are not UTF-8),
            ``INVALID_S3_KEY_FORMAT`` (the empty string, a segment padded with
            whitespace, or still changing after `MAX_ROUNDS` rounds) or
            ``UNSAFE_S3_KEY_PATH`` (a non-empty key that resolves to nothing, such as ``.``,
            ``/``, ``//``, ``C:`` or ``%2F``; a ``..`` or dots-only segment; a Windows
            device name).
            ``context`` holds only ``key_hint`` (the repr of the first 64 characters) and,
            when one segment is at fault, its ``segment_index``.
    """
    if not isinstance(key, str):
        raise ValidationError(
            "S3 key must be a string",
            ValidationErrorCode.INVALID_S3_KEY_TYPE,
            {"key_type": type(key).__name__},
        )
    if len(key) > MAX_KEY_BYTES or _utf8_len(key) > MAX_KEY_BYTES:
        raise _refuse(
            f"S3 key is longer than {MAX_KEY_BYTES} UTF-8 bytes",
            ValidationErrorCode.INVALID_S3_KEY_LENGTH,
            key,
        )

    current = key
    try:
        for _ in range(MAX_ROUNDS):
            following = _canonical_round(current)
            if following == current:
                break
            current = following
        else:
            raise _refuse(
                f"S3 key still changes after {MAX_ROUNDS} canonicalisation rounds "
                "(excess percent-encoding)",
                ValidationErrorCode.INVALID_S3_KEY_FORMAT,
                key,
            )
    except _InvalidUtf8Error:
        raise _refuse(
            "S3 key has percent-escapes that do not decode to UTF-8",
            ValidationErrorCode.INVALID_S3_KEY_CHARACTER,
            key,
        ) from None

    if not key:
        raise _refuse("S3 key is empty", ValidationErrorCode.INVALID_S3_KEY_FORMAT, key)
    if not current:
        # The seed's code for ".", "/" and "//": a path that names no file is an unsafe path.
        raise _refuse(
            "S3 key resolves to nothing (only separators, dots and prefixes)",
            ValidationErrorCode.UNSAFE_S3_KEY_PATH,
            key,
        )
    segments = current.split("/")
    bad = _bad_character(current)
    if bad is not None:
        raise _refuse(
            "S3 key contains a control, format, surrogate or line-separator character",
            ValidationErrorCode.INVALID_S3_KEY_CHARACTER,
            key,
            current.count("/", 0, bad),
        )
    total = _utf8_len(current)
    if total > MAX_KEY_BYTES:
        raise _refuse(
            f"S3 key is longer than {MAX_KEY_BYTES} UTF-8 bytes once canonicalised",
            ValidationErrorCode.INVALID_S3_KEY_LENGTH,
            key,
        )
    check_lengths = total > MAX_SEGMENT_BYTES
    for index, segment in enumerate(segments):
        if segment.strip(".") == "":
            raise _refuse(
                "S3 key contains a '..' (or dots-only) segment",
                ValidationErrorCode.UNSAFE_S3_KEY_PATH,
                key,
                index,
            )
        if _DEVICE.match(segment):
            raise _refuse(
                "S3 key contains a Windows device name",
                ValidationErrorCode.UNSAFE_S3_KEY_PATH,
                key,
                index,
            )
        if segment[0].isspace() or segment[-1].isspace():
            raise _refuse(
                "S3 key contains a segment that starts or ends with whitespace",
                ValidationErrorCode.INVALID_S3_KEY_FORMAT,
                key,
                index,
            )
        if check_lengths and _utf8_len(segment) > MAX_SEGMENT_BYTES:
            raise _refuse(
                f"S3 key has a segment longer than {MAX_SEGMENT_BYTES} UTF-8 bytes",
                ValidationErrorCode.INVALID_S3_KEY_LENGTH,
                key,
                index,
            )
    return current
