"""Property tests for sanitize_s3_key: every key is either refused or made safe."""

from __future__ import annotations

import io
import re
import tarfile
import tempfile
import unicodedata
from pathlib import Path, PurePosixPath

from hypothesis import event, example, given
from hypothesis import strategies as st

from data_aggregator.exceptions import ValidationError
from data_aggregator.security import MAX_KEY_BYTES, MAX_ROUNDS, sanitize_s3_key
from tests.strategies import (
    SEED_KEY_ERROR_CODES,
    adversarial_s3_keys,
    any_s3_key_text,
    percent_encode,
    safe_s3_keys,
    windows_prefixes,
)

_BAD_CATEGORIES = {"Cc", "Cf", "Cs"}
_DRIVE = re.compile(r"[A-Za-z]:")
_PAYLOAD = b"member bytes\n"


def _outcome(key: object) -> str:
    """The sanitized name, or the error code prefixed with '!'."""
    try:
        return sanitize_s3_key(key)
    except ValidationError as error:
        return "!" + error.error_code


def _assert_safe_name(name: str) -> None:
    assert name
    assert not name.startswith("/")
    assert not PurePosixPath(name).is_absolute()
    assert not _DRIVE.match(name)
    assert "\\" not in name
    for segment in name.split("/"):
        assert segment not in {"", ".", ".."}
    for char in name:
        assert unicodedata.category(char) not in _BAD_CATEGORIES
    assert len(name.encode("utf-8")) <= MAX_KEY_BYTES


def _attempt(key: object) -> str | ValidationError:
    """The sanitized name, or the ValidationError raised."""
    try:
        return sanitize_s3_key(key)
    except ValidationError as error:
        return error


@given(any_s3_key_text())
def test_every_key_is_refused_with_a_seed_code_or_made_safe(key: str) -> None:
    """Any text is refused with a seed code and a short hint, or becomes a safe idempotent name."""
    result = _attempt(key)
    if isinstance(result, ValidationError):
        event(f"refused {result.error_code}")
        assert result.error_code in SEED_KEY_ERROR_CODES
        assert set(result.context) <= {"key_hint", "segment_index"}
        assert result.context["key_hint"] == repr(key[:64])
        return
    event("accepted")
    _assert_safe_name(result)
    assert sanitize_s3_key(result) == result


@given(st.one_of(st.binary(), st.integers(), st.none(), st.lists(st.text()), st.floats()))
def test_non_strings_are_refused_by_type(key: object) -> None:
    """Every non-str key is refused with INVALID_S3_KEY_TYPE."""
    assert _outcome(key) == "!INVALID_S3_KEY_TYPE"


@given(
    st.one_of(
        safe_s3_keys(),
        st.tuples(windows_prefixes(), safe_s3_keys()).map("".join),
        adversarial_s3_keys(max_atoms=6),
    )
)
def test_accepted_names_extract_inside_the_target_directory(key: str) -> None:
    """A tar member named by an accepted name extracts inside the target under the 'data' filter."""
    try:
        name = sanitize_s3_key(key)
    except ValidationError:
        event("refused")
        return
    event("accepted")
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        info = tarfile.TarInfo(name)
        info.size = len(_PAYLOAD)
        tar.addfile(info, io.BytesIO(_PAYLOAD))
    buffer.seek(0)
    with tempfile.TemporaryDirectory() as tmp, tarfile.open(fileobj=buffer) as tar:
        target = Path(tmp).resolve()
        tar.extractall(target, filter="data")
        extracted = (target / name).resolve()
        assert extracted.is_relative_to(target)
        assert extracted != target
        assert extracted.read_bytes() == _PAYLOAD


@given(safe_s3_keys())
def test_safe_keys_are_unchanged(key: str) -> None:
    """Relative keys of ordinary NFKC-stable segments come back exactly as given."""
    assert sanitize_s3_key(key) == key


@given(safe_s3_keys(), st.integers(min_value=1, max_value=MAX_ROUNDS + 1))
def test_percent_encoding_is_decoded_up_to_the_bound(key: str, times: int) -> None:
    """Up to MAX_ROUNDS - 1 encodings are undone; more are refused with INVALID_S3_KEY_FORMAT."""
    encoded = percent_encode(key + "/x", times)
    if len(encoded.encode()) > MAX_KEY_BYTES:
        assert _outcome(encoded) == "!INVALID_S3_KEY_LENGTH"
    elif times < MAX_ROUNDS:
        assert _outcome(encoded) == key + "/x"
    else:
        assert _outcome(encoded) == "!INVALID_S3_KEY_FORMAT"


@given(windows_prefixes(), safe_s3_keys())
@example("\\\\?\\", "UNC")
@example("\\\\?\\", "unc/a")
@example("//?/unc/", "UNC/a")
def test_windows_prefixes_are_stripped(prefix: str, key: str) -> None:
    """Drive, long-path and leading-slash prefixes vanish without a trace."""
    first, _, rest = key.partition("/")
    if prefix == "\\\\?\\" and first.upper() == "UNC":
        # "\\?\UNC\" is the long UNC prefix: its "UNC" segment goes with it.
        assert _outcome(prefix + key) == (rest or "!UNSAFE_S3_KEY_PATH")
    else:
        assert sanitize_s3_key(prefix + key) == key


@given(st.one_of(st.text(max_size=40), adversarial_s3_keys(max_atoms=8)))
def test_normalization_forms_have_the_same_outcome(key: str) -> None:
    """NFC, NFD, NFKC and NFKD spellings of a key are sanitized alike (or refused alike)."""
    forms = {form: unicodedata.normalize(form, key) for form in ("NFC", "NFD", "NFKC", "NFKD")}
    if any(
        len(spelling.encode("utf-8", "surrogatepass")) > MAX_KEY_BYTES
        for spelling in forms.values()
    ):
        return
    outcomes = {_outcome(spelling) for spelling in forms.values()}
    assert len(outcomes) == 1


@given(
    st.lists(safe_s3_keys(max_segments=2), min_size=1, max_size=3),
    st.sampled_from(["..", "%2e%2e", "%252e%252e", "\uff0e\uff0e", "\u2025"]),
)
def test_dotdot_anywhere_is_refused(parts: list[str], dotdot: str) -> None:
    """A '..' segment in any spelling and position is UNSAFE_S3_KEY_PATH."""
    for position in range(len(parts) + 1):
        key = "/".join([*parts[:position], dotdot, *parts[position:]])
        assert _outcome(key) == "!UNSAFE_S3_KEY_PATH"
