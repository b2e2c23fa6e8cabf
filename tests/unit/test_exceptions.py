"""Tests for data_aggregator.exceptions: codes, retryability, and safe to_dict()."""

from __future__ import annotations

import ast
import json
import pickle
import re
from pathlib import Path

import pytest

import data_aggregator
from data_aggregator import exceptions as exc
from data_aggregator.exceptions import (
    ConfigurationError,
    DataAggregatorError,
    ErrorCode,
    EventParseError,
    IdempotencyConfigurationError,
    IdempotencyStoreError,
    S3AccessDeniedError,
    S3Error,
    S3ThrottlingError,
    S3TimeoutError,
    TransientError,
    ValidationError,
    ValidationErrorCode,
)

ALL_ERRORS = [
    getattr(exc, name)
    for name in exc.__all__
    if isinstance(getattr(exc, name), type) and issubclass(getattr(exc, name), Exception)
]


def test_every_error_derives_from_the_root() -> None:
    """Every exported exception class shares the one root, so one except catches all."""
    assert ALL_ERRORS
    for cls in ALL_ERRORS:
        assert issubclass(cls, DataAggregatorError), cls


def test_error_codes_are_stable_and_unique() -> None:
    """Each exception class has its own upper-case error code."""
    codes = [cls.default_code for cls in ALL_ERRORS]
    assert len(codes) == len(set(codes))
    for code in codes:
        assert code == code.upper()
        assert code.replace("_", "").isalnum()


def test_seed_timeout_signature_and_context() -> None:
    """S3TimeoutError takes the conventions' keyword arguments and is retryable."""
    error = S3TimeoutError(
        operation="GetObject",
        timeout_seconds=30.0,
        context={"bucket": "landing-bucket", "key": "file.txt"},
    )
    assert error.retryable is True
    assert isinstance(error, TransientError)
    assert isinstance(error, S3Error)
    assert error.error_code == "S3_TIMEOUT"
    assert error.operation == "GetObject"
    assert error.timeout_seconds == 30.0
    payload = error.to_dict()
    assert payload["context"] == {
        "bucket": "landing-bucket",
        "key": "file.txt",
        "timeout_seconds": 30.0,
        "operation": "GetObject",
    }
    assert "GetObject" in payload["message"]
    assert "30" in payload["message"]


@pytest.mark.parametrize(
    ("cls", "retryable"),
    [
        (S3ThrottlingError, True),
        (exc.S3ServiceError, True),
        (IdempotencyStoreError, True),
        (S3AccessDeniedError, False),
        (exc.S3ObjectNotFoundError, False),
        (exc.S3ObjectSupersededError, False),
        (exc.S3IntegrityError, False),
        (ValidationError, False),
        (ConfigurationError, False),
        (exc.BundleError, False),
        (exc.LeaseLostError, False),
    ],
)
def test_retryable_branches(cls: type[DataAggregatorError], retryable: bool) -> None:
    """Transient failures are retryable and catchable as TransientError; others are not."""
    error = cls("boom")
    assert error.retryable is retryable
    assert isinstance(error, TransientError) is retryable


def test_idempotency_configuration_error_is_a_configuration_error() -> None:
    """A missing table is both an idempotency error and a configuration error."""
    error = IdempotencyConfigurationError("table missing")
    assert isinstance(error, ConfigurationError)
    assert isinstance(error, exc.IdempotencyError)
    assert error.error_code == "IDEMPOTENCY_CONFIGURATION_ERROR"


def test_validation_error_accepts_enum_or_string_codes() -> None:
    """ValidationError stores the seed code as a plain string whichever form is passed."""
    by_enum = ValidationError("bad", ValidationErrorCode.UNSAFE_S3_KEY_PATH)
    by_str = ValidationError("bad", "INVALID_S3_KEY_LENGTH")
    assert by_enum.error_code == "UNSAFE_S3_KEY_PATH"
    assert type(by_enum.error_code) is str
    assert by_str.error_code == "INVALID_S3_KEY_LENGTH"
    assert ValidationError("bad").error_code == "VALIDATION_ERROR"
    assert EventParseError("bad").error_code == "INVALID_EVENT"


def test_seed_validation_codes_exist() -> None:
    """The five key codes named by the contract are part of ValidationErrorCode."""
    for code in (
        "INVALID_S3_KEY_TYPE",
        "INVALID_S3_KEY_FORMAT",
        "INVALID_S3_KEY_LENGTH",
        "INVALID_S3_KEY_CHARACTER",
        "UNSAFE_S3_KEY_PATH",
    ):
        assert ValidationErrorCode(code).value == code


def test_to_dict_redacts_credentials_and_contents() -> None:
    """Secrets and object bodies never reach to_dict(), whatever key or type holds them."""
    error = DataAggregatorError(
        "failed",
        context={
            "bucket": "b",
            "aws_secret_access_key": "wJalrXUtnFEMI/K7MDENG",
            "SessionToken": "FwoGZXIvYXdzE",
            "Authorization": "AWS4-HMAC-SHA256 Credential=x",
            "password": "hunter2",
            "body": "the object bytes",
            "raw": b"\x00\x01secret bytes",
            "nested": {"token": "abc", "ok": 1},
        },
    )
    payload = error.to_dict()
    text = json.dumps(payload)
    for secret in ("wJalrXUtnFEMI", "FwoGZXIvYXdzE", "Credential=x", "hunter2", "object bytes"):
        assert secret not in text
    assert "secret bytes" not in text
    assert payload["context"]["bucket"] == "b"
    assert payload["context"]["raw"] == "<14 bytes redacted>"
    assert payload["context"]["nested"] == {"token": "[REDACTED]", "ok": 1}


def test_to_dict_never_uses_repr_of_arbitrary_objects() -> None:
    """Unknown objects in context appear by type name only, never by their repr."""

    class Leaky:
        def __repr__(self) -> str:
            return "SECRET-REPR"

        __str__ = __repr__

    payload = DataAggregatorError("x", context={"thing": Leaky()}).to_dict()
    assert payload["context"]["thing"] == "<Leaky>"
    assert "SECRET-REPR" not in json.dumps(payload)


def test_to_dict_is_bounded_in_size() -> None:
    """Huge messages, strings, lists, deep nesting and many keys are all cut down."""
    deep: dict[str, object] = {"leaf": 1}
    for _ in range(20):
        deep = {"d": deep}
    context: dict[str, object] = {f"k{i}": "v" * 10_000 for i in range(500)}
    context["k0"] = list(range(10_000))
    context["k1"] = deep
    error = DataAggregatorError("m" * 100_000, context=context)
    payload = error.to_dict()
    assert len(json.dumps(payload)) < 20_000
    assert len(payload["message"]) <= exc.MAX_MESSAGE_CHARS
    assert payload["context"]["_omitted_items"] == 500 - exc.MAX_CONTEXT_ITEMS
    assert len(payload["context"]["k0"]) == exc.MAX_SEQUENCE_ITEMS + 1
    assert len(payload["context"]["k2"]) <= exc.MAX_STRING_CHARS
    assert "<nested value omitted>" in json.dumps(payload["context"]["k1"])


def test_to_dict_is_json_serialisable_and_complete() -> None:
    """to_dict() carries type, code, message, retryable and correlation id."""
    error = S3ThrottlingError("slow down", context={"key": "a"}, correlation_id="req-1")
    payload = json.loads(json.dumps(error.to_dict()))
    assert payload == {
        "error_type": "S3ThrottlingError",
        "error_code": "S3_THROTTLED",
        "message": "slow down",
        "retryable": True,
        "correlation_id": "req-1",
        "context": {"key": "a"},
    }


def test_context_is_copied_not_aliased() -> None:
    """Mutating the caller's mapping afterwards does not change the error."""
    context = {"key": "a"}
    error = DataAggregatorError("x", context=context)
    context["key"] = "b"
    assert error.context == {"key": "a"}


@pytest.mark.parametrize(
    "error",
    [
        S3TimeoutError(operation="GetObject", timeout_seconds=1.5, context={"key": "k"}),
        ValidationError("bad", ValidationErrorCode.UNSAFE_S3_KEY_PATH, {"segment": 1}),
        S3AccessDeniedError("denied", operation="PutObject", correlation_id="c"),
        exc.HookError("bundle_key", "raised", cause=ValueError("no key")),
    ],
)
def test_errors_survive_pickling(error: DataAggregatorError) -> None:
    """Errors cross process pools intact (keyword-only constructors included)."""
    clone = pickle.loads(pickle.dumps(error))  # noqa: S301 - our own data
    assert type(clone) is type(error)
    assert clone.to_dict() == error.to_dict()
    assert str(clone) == str(error)


def test_every_error_code_is_in_the_docs_table() -> None:
    """docs/exceptions.md lists exactly the members of ErrorCode, in its table of codes."""
    page = (Path(__file__).resolve().parents[2] / "docs" / "exceptions.md").read_text()
    section = page.split("## Every error code", 1)[1].split("\n### ", 1)[0]
    documented = re.findall(r"^\| `([A-Z0-9_]+)` \|", section, re.M)
    assert documented == [code.value for code in ErrorCode]


def test_the_library_spells_no_error_code_as_a_bare_string() -> None:
    """Outside the enum, every code the package sets is written as an ErrorCode member."""
    codes = {code.value for code in ErrorCode}
    bare: list[str] = []
    for path in sorted(Path(data_aggregator.__file__).parent.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        enum_lines: set[int] = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.ClassDef) and node.name == "ErrorCode":
                enum_lines = set(range(node.lineno, (node.end_lineno or node.lineno) + 1))
        bare.extend(
            f"{path.name}:{node.lineno} {node.value}"
            for node in ast.walk(tree)
            if isinstance(node, ast.Constant)
            and node.value in codes
            and node.lineno not in enum_lines
        )
    assert bare == []


def test_validation_codes_are_error_codes() -> None:
    """The seed's ValidationErrorCode values are ErrorCode members, not a second spelling."""
    assert {code.value for code in ValidationErrorCode} <= {code.value for code in ErrorCode}


def test_an_enum_code_is_stored_and_serialised_as_its_string() -> None:
    """Raising with ErrorCode.X leaves error_code and to_dict() holding the plain string."""
    error = DataAggregatorError("m", ErrorCode.S3_THROTTLED)
    assert type(error.error_code) is str
    assert error.error_code == "S3_THROTTLED"
    assert error.to_dict()["error_code"] == "S3_THROTTLED"
