"""Example tests for sanitize_s3_key: each pins one documented outcome."""

from __future__ import annotations

import pytest

from data_aggregator.exceptions import ValidationError, ValidationErrorCode
from data_aggregator.security import (
    MAX_KEY_BYTES,
    MAX_ROUNDS,
    MAX_SEGMENT_BYTES,
    sanitize_s3_key,
)

TYPE = ValidationErrorCode.INVALID_S3_KEY_TYPE.value
FORMAT = ValidationErrorCode.INVALID_S3_KEY_FORMAT.value
LENGTH = ValidationErrorCode.INVALID_S3_KEY_LENGTH.value
CHARACTER = ValidationErrorCode.INVALID_S3_KEY_CHARACTER.value
UNSAFE = ValidationErrorCode.UNSAFE_S3_KEY_PATH.value


def refusal(key: object) -> ValidationError:
    """Sanitize ``key`` expecting a refusal, and return the error."""
    with pytest.raises(ValidationError) as info:
        sanitize_s3_key(key)
    return info.value


# ----------------------------------------------------------------------------- accepted


@pytest.mark.parametrize(
    "key",
    [
        "logs/2024/01/a b+c.txt",
        "file.txt",
        "a/b/c/d.json.gz",
        "2024-01-01T00:00:00Z/reading.csv",
        "with~tilde/and,comma;semi@at=eq!(x)[y]{z}#hash$&'.txt",
        "trailing.dot./name.",
        ".hidden/.config",
        "console.log/connection/auxiliary/nul_check/com10/lpt",
        "?/query",
    ],
)
def test_normal_keys_are_unchanged(key: str) -> None:
    """Ordinary keys, including spaces, '+', colons mid-path and near-device names, pass as-is."""
    assert sanitize_s3_key(key) == key


@pytest.mark.parametrize(
    "key",
    ["\U0001f600/\U0001f680.txt", "\u65e5\u672c\u8a9e/\u6587\u4ef6.txt", "caf\u00e9/\u00df"],
)
def test_unicode_is_kept(key: str) -> None:
    """Emoji, CJK and accented letters in NFC form come back unchanged."""
    assert sanitize_s3_key(key) == key


def test_percent_without_hex_is_literal() -> None:
    """A '%' not followed by two hex digits is kept literally."""
    assert sanitize_s3_key("100% done.txt") == "100% done.txt"
    assert sanitize_s3_key("50%off/%zz/%4") == "50%off/%zz/%4"


def test_plus_is_not_a_space() -> None:
    """'+' is never turned into a space: the caller already form-decoded the key once."""
    assert sanitize_s3_key("a+b/c%2Bd") == "a+b/c+d"


def test_percent_escapes_are_decoded() -> None:
    """Percent-escapes are decoded, multi-byte UTF-8 sequences included."""
    assert sanitize_s3_key("red%20flower.jpg") == "red flower.jpg"
    assert sanitize_s3_key("caf%C3%A9") == "caf\u00e9"


def test_encoded_slash_becomes_a_separator() -> None:
    """'%2F' and '%5C' decode to separators like '/' and '\\'."""
    assert sanitize_s3_key("a%2Fb%5cc") == "a/b/c"


def test_nested_encoding_within_bound_is_decoded() -> None:
    """Up to MAX_ROUNDS - 1 levels of percent-encoding are decoded to the fixed point."""
    assert MAX_ROUNDS == 4
    assert sanitize_s3_key("a%25252Fb") == "a/b"


@pytest.mark.parametrize(
    ("key", "expected"),
    [
        ("C:\\Windows\\System32\\x.dll", "Windows/System32/x.dll"),
        ("c:/data/x", "data/x"),
        ("C:x", "x"),
        ("\\\\?\\C:\\x", "x"),
        ("\\\\?\\UNC\\server\\share\\x", "server/share/x"),
        ("\\\\.\\pipe\\x", "pipe/x"),
        ("\\\\server\\share\\x", "server/share/x"),
        ("//server/share/x", "server/share/x"),
        ("\uff23\uff1a\uff3cx", "x"),
    ],
)
def test_drive_and_long_path_prefixes_are_stripped(key: str, expected: str) -> None:
    """Drive letters, '\\\\?\\' and '\\\\?\\UNC\\' prefixes and UNC leading slashes go."""
    assert sanitize_s3_key(key) == expected


def test_drive_only_at_start_is_stripped() -> None:
    """A 'C:' that is not at the start of the key is an ordinary part of a name."""
    assert sanitize_s3_key("a/C:/b") == "a/C:/b"


@pytest.mark.parametrize(
    ("key", "expected"),
    [
        ("/a/b", "a/b"),
        ("///a/b///", "a/b"),
        ("a/b/", "a/b"),
        ("\\a\\b\\", "a/b"),
    ],
)
def test_leading_and_trailing_slashes_are_stripped(key: str, expected: str) -> None:
    """Leading and trailing separators are removed, so the name is relative."""
    assert sanitize_s3_key(key) == expected


@pytest.mark.parametrize(
    ("key", "expected"),
    [("a//b", "a/b"), ("a/./b", "a/b"), ("./a/.//./b/.", "a/b"), ("a/%2e/b", "a/b")],
)
def test_empty_and_dot_segments_are_dropped(key: str, expected: str) -> None:
    """Empty and '.' segments (also encoded) are dropped."""
    assert sanitize_s3_key(key) == expected


def test_backslash_is_a_separator() -> None:
    """'\\' is turned into '/'."""
    assert sanitize_s3_key("a\\b\\c.txt") == "a/b/c.txt"


def test_nfkc_normalisation() -> None:
    """Keys are NFKC-normalised: decomposed and compatibility forms are folded."""
    assert sanitize_s3_key("cafe\u0301") == "caf\u00e9"
    assert sanitize_s3_key("\ufb01le") == "file"
    assert sanitize_s3_key("a\uff0fb") == "a/b"


def test_fullwidth_percent_is_decoded() -> None:
    """Fullwidth percent and digits ('%41' in fullwidth forms) become '%41' under NFKC, then 'A'."""
    assert sanitize_s3_key("\uff05\uff14\uff11") == "A"


def test_result_is_idempotent_on_examples() -> None:
    """Sanitizing a sanitized name gives the same name."""
    for key in ["/a//b/", "C:\\x", "%2541", "\uff05\uff14\uff11/b", "\u2100"]:
        once = sanitize_s3_key(key)
        assert sanitize_s3_key(once) == once


# ----------------------------------------------------------------------------- refused


@pytest.mark.parametrize("key", [b"a.txt", None, 42, ["a"], bytearray(b"a")])
def test_non_string_is_refused(key: object) -> None:
    """Anything but a str is refused with INVALID_S3_KEY_TYPE."""
    error = refusal(key)
    assert error.error_code == TYPE
    assert error.context == {"key_type": type(key).__name__}


def test_empty_key_is_invalid_format() -> None:
    """The empty string alone is INVALID_S3_KEY_FORMAT (the seed's code for it)."""
    assert refusal("").error_code == FORMAT


@pytest.mark.parametrize(
    "key", [".", "/", "//", "./.", "\\", "C:", "C:/./", "%2F", "%2F%2F", "\\\\?\\"]
)
def test_key_resolving_to_nothing_is_an_unsafe_path(key: str) -> None:
    """A non-empty key of only separators, dots and prefixes is UNSAFE_S3_KEY_PATH (the seed)."""
    assert refusal(key).error_code == UNSAFE


@pytest.mark.parametrize(
    "key",
    [
        "..",
        "a/../b",
        "a/..",
        "..\\x",
        "%2e%2e/x",
        "%2E%2E%2Fx",
        "%252e%252e/x",
        "%25252e%25252e/x",
        "\uff0e\uff0e/x",
        "\u2025/x",
        "\u2024\u2024/x",
        "\ufe52\ufe52/x",
        "\ufe30/x",
        "C:..",
    ],
)
def test_dotdot_is_refused(key: str) -> None:
    """'..' segments are UNSAFE_S3_KEY_PATH, however they are spelled."""
    assert refusal(key).error_code == UNSAFE


@pytest.mark.parametrize("key", ["...", "a/..../b", "\u2026", "a/\ufe19"])
def test_dots_only_segment_is_refused(key: str) -> None:
    """Segments made only of dots are UNSAFE_S3_KEY_PATH (Windows trims trailing dots)."""
    assert refusal(key).error_code == UNSAFE


@pytest.mark.parametrize(
    "key",
    [
        "CON",
        "con",
        "a/PRN/b",
        "aux",
        "NUL",
        "COM1",
        "com9",
        "COM0",
        "LPT1",
        "lpt9",
        "CONIN$",
        "conout$",
        "con.txt",
        "nul.tar.gz",
        "con.",
        "Con..",
        "aux .log",
        "com1:stream",
        "COM\u00b9",
        "\uff23\uff2f\uff2e",
    ],
)
def test_windows_device_names_are_refused(key: str) -> None:
    """Windows device names, any case, with an extension, stream, dots or spaces, are UNSAFE."""
    assert refusal(key).error_code == UNSAFE


def test_device_name_with_trailing_space_is_refused_as_unsafe() -> None:
    """'CON ' is refused as a device name rather than as whitespace padding."""
    assert refusal("a/CON /b").error_code == UNSAFE


@pytest.mark.parametrize(
    "key", [" a", "a ", "a/ b", "a /b", "x/ /y", "\u3000a", "a\u00a0", "a/\u1680b"]
)
def test_whitespace_padded_segment_is_refused(key: str) -> None:
    """A segment starting or ending with whitespace is INVALID_S3_KEY_FORMAT."""
    assert refusal(key).error_code == FORMAT


@pytest.mark.parametrize(
    "key",
    [
        "a\x00b",
        "a\tb",
        "a/b\n",
        "\x7f",
        "a\x85b",
        "a%00b",
        "a%0Ab",
        "zero\u200bwidth",
        "bidi\u202eoverride",
        "\ufeffbom",
        "soft\u00adhyphen",
        "a%E2%80%8Bb",
        "line\u2028sep",
        "lone\ud800surrogate",
    ],
)
def test_control_format_and_surrogate_characters_are_refused(key: str) -> None:
    """Cc, Cf, Cs, Zl and Zp characters, also percent-encoded, are INVALID_S3_KEY_CHARACTER."""
    assert refusal(key).error_code == CHARACTER


@pytest.mark.parametrize("key", ["%ff", "a%C0%AE%C0%AE/x", "%C3", "%ED%A0%80", "%C3x%A9"])
def test_percent_escapes_that_are_not_utf8_are_refused(key: str) -> None:
    """Escapes that are not UTF-8 (overlong, truncated, surrogate) are INVALID_S3_KEY_CHARACTER."""
    assert refusal(key).error_code == CHARACTER


@pytest.mark.parametrize("key", ["%2525252e%2525252e/x", "a%2525252Fb", "%25252525"])
def test_excess_encoding_is_refused(key: str) -> None:
    """A key still percent-decodable after MAX_ROUNDS rounds is INVALID_S3_KEY_FORMAT."""
    assert refusal(key).error_code == FORMAT


def test_length_limit_is_exactly_1024_bytes() -> None:
    """1024 UTF-8 bytes are accepted and 1025 are refused with INVALID_S3_KEY_LENGTH."""
    segment = "a" * 254
    key = "/".join([segment] * 4) + "/" + "b" * (MAX_KEY_BYTES - 4 * 255)
    assert len(key.encode()) == MAX_KEY_BYTES
    assert sanitize_s3_key(key) == key
    assert refusal(key + "c").error_code == LENGTH


def test_length_counts_utf8_bytes() -> None:
    """The limit is in UTF-8 bytes, not characters: 342 three-byte characters are too many."""
    key = "/".join(["\u65e5" * 85] * 4)
    assert len(key.encode()) == 1023
    assert sanitize_s3_key(key) == key
    assert refusal(key + "\u00e9").error_code == LENGTH


def test_length_is_checked_after_canonicalisation() -> None:
    """A short key that NFKC expands beyond 1024 bytes is refused."""
    key = "/".join(["\ufdfa" * 7] * 5)
    assert len(key.encode()) < MAX_KEY_BYTES
    assert refusal(key).error_code == LENGTH


def test_long_key_that_shrinks_is_still_refused_on_input_length() -> None:
    """The input itself may not exceed 1024 bytes, even if it would decode shorter."""
    assert refusal("%41" * 400).error_code == LENGTH


def test_segment_limit_is_255_bytes() -> None:
    """A segment of 255 UTF-8 bytes is accepted, 256 is INVALID_S3_KEY_LENGTH."""
    assert sanitize_s3_key("d/" + "a" * MAX_SEGMENT_BYTES) == "d/" + "a" * MAX_SEGMENT_BYTES
    error = refusal("d/" + "a" * (MAX_SEGMENT_BYTES + 1))
    assert error.error_code == LENGTH
    assert error.context["segment_index"] == 1


# ----------------------------------------------------------------------------- context


def test_context_holds_only_a_truncated_hint() -> None:
    """Error context has the repr of the key's first 64 characters and the segment index."""
    key = "x" * 100 + "/../" + "y" * 100
    error = refusal(key)
    assert error.error_code == UNSAFE
    assert error.context == {"key_hint": repr("x" * 64), "segment_index": 1}


def test_context_hint_escapes_control_characters() -> None:
    """The hint is a repr, so control characters cannot forge log lines."""
    error = refusal("a\nFAKE LOG LINE")
    assert error.context["key_hint"] == repr("a\nFAKE LOG LINE")
    assert "\n" not in error.context["key_hint"]


def test_context_survives_to_dict() -> None:
    """The hint is neither redacted nor dropped by to_dict()."""
    payload = refusal("a/../b").to_dict()
    assert payload["error_code"] == UNSAFE
    assert payload["context"] == {"key_hint": "'a/../b'", "segment_index": 1}
    assert payload["retryable"] is False


def test_message_does_not_contain_the_key() -> None:
    """The human-readable message never repeats the key."""
    error = refusal("secret-looking-name/../x")
    assert "secret-looking-name" not in str(error)
