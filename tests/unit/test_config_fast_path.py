"""`AppConfig.from_env`'s fast path makes exactly what pydantic's validation makes.

``_fast_config`` builds the configuration with ``model_construct`` after applying the
model's own rules, so that a cold start does not build AppConfig's validator. It must
never accept what pydantic refuses, and what it accepts must be the same configuration
(same values, same types, same fields set). Errors always come from pydantic.
"""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import pydantic
import pytest
from hypothesis import given
from hypothesis import strategies as st

from data_aggregator.config import _SETTINGS, ENVIRONMENT_VARIABLES, AppConfig, _fast_config
from data_aggregator.exceptions import ConfigurationError
from tests.strategies import valid_config_environments


def parsed(env: dict[str, str]) -> dict[str, object] | None:
    """What ``from_env`` hands to validation; ``None`` when a value does not even parse."""
    data: dict[str, object] = {}
    for field, setting in _SETTINGS.items():
        raw = env.get(setting.env)
        if raw is None or not raw.strip():
            continue
        try:
            data[field] = setting.parse(raw.strip())
        except ValueError:
            return None
    return data


def check(env: dict[str, str]) -> str:
    """Compare both paths: ``"fast"`` (same config), ``"slow"`` (the fast path stepped
    aside) or ``"refused"`` (pydantic refuses, and so did the fast path)."""
    data = parsed(env)
    if data is None:
        return "refused"
    fast = _fast_config(AppConfig, data)
    try:
        slow = AppConfig.model_validate(data)
    except ConfigurationError:
        assert fast is None, "the fast path accepted a configuration pydantic refuses"
        return "refused"
    if fast is None:
        return "slow"
    assert repr(fast) == repr(slow)
    assert fast == slow
    assert fast.model_fields_set == slow.model_fields_set
    for name in AppConfig.model_fields:
        mine, theirs = getattr(fast, name), getattr(slow, name)
        assert type(mine) is type(theirs), name
        assert mine == theirs, name
    assert fast.to_env() == slow.to_env()
    return "fast"


@given(valid_config_environments())
def test_valid_environments_take_the_fast_path(env: dict[str, str]) -> None:
    """Every valid environment is built by the fast path, identically."""
    assert check(env) == "fast"


#: Odd values for any variable: out of range, wrong kind, blank-ish, near the limits.
ODD_VALUES = st.one_of(
    st.sampled_from(
        [
            "0",
            "-1",
            "1",
            "5",
            "64",
            "65",
            "900",
            "900.0001",
            "1e999",
            "nan",
            "inf",
            "1.5",
            "true",
            "maybe",
            "gzip",
            "NONE",
            "zstd",
            "debug",
            "statements",
            "AUTO",
            "partiql",
            "a",
            "ab",
            "my-bucket",
            "My_Bucket",
            "10.0.0.1",
            "a..b",
            "AWS/Thing",
            " padded ",
            "s3:ObjectCreated:*",
            "ObjectCreated:,*",
            ",",
            "../x",
            "a//b",
            "123456789012",
            "alias/key",
            "\x00",
        ]
    ),
    st.text(max_size=20),
)


@given(
    valid_config_environments(),
    st.lists(st.tuples(st.sampled_from(ENVIRONMENT_VARIABLES), ODD_VALUES), max_size=3),
)
def test_changed_environments_match(env: dict[str, str], changes: list[tuple[str, str]]) -> None:
    """A valid environment with odd values put in: same config, or pydantic decides."""
    env = dict(env)
    for name, value in changes:
        env[name] = value
    check(env)


def test_the_fast_path_steps_aside_for_fields_it_does_not_know() -> None:
    """A subclass with a field of an unknown kind, or a value of an unexpected type, is
    left to pydantic (which then validates it exactly as before)."""

    class Extended(AppConfig):
        ratio: complex = 0j

    assert _fast_config(Extended, {"distribution_bucket_name": "dest", "ratio": 1j}) is None
    assert (
        _fast_config(AppConfig, {"distribution_bucket_name": "dest", "fetch_concurrency": "8"})
        is None
    )
    assert (
        _fast_config(AppConfig, {"distribution_bucket_name": "dest", "metrics_enabled": 1}) is None
    )
    assert _fast_config(AppConfig, {"fetch_concurrency": 8}) is None  # the bucket is required


def test_from_env_does_not_build_the_validator() -> None:
    """``get_config()`` from a valid environment leaves AppConfig's validator unbuilt and
    pydantic's plugin scan (``importlib.metadata``) unloaded (in a fresh interpreter)."""
    code = (
        "import json, sys\n"
        "from data_aggregator.config import AppConfig, get_config\n"
        "config = get_config()\n"
        "print(json.dumps([config.distribution_bucket_name, AppConfig.__pydantic_complete__,"
        " 'importlib.metadata' in sys.modules]))"
    )
    env = {"DISTRIBUTION_BUCKET_NAME": "dest", "PATH": "/usr/bin:/bin"}
    done = subprocess.run(  # noqa: S603 - our own interpreter
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
        env=env,
    )
    assert json.loads(done.stdout) == ["dest", False, False]


def test_a_refused_environment_still_reports_through_pydantic() -> None:
    """A bad value is reported exactly as before: every problem, named by its variable."""
    try:
        AppConfig.from_env({"DISTRIBUTION_BUCKET_NAME": "Bad_Bucket", "FETCH_CONCURRENCY": "0"})
    except ConfigurationError as exc:
        context: Any = exc.context
        assert context["variables"] == ["DISTRIBUTION_BUCKET_NAME", "FETCH_CONCURRENCY"]
    else:  # pragma: no cover - the assertion above is the test
        raise AssertionError("no ConfigurationError")
    assert isinstance(pydantic.VERSION, str)


@pytest.mark.parametrize(
    "extra",
    [
        {"BUNDLE_CODEC": "gzip", "COMPRESSION_LEVEL": "15"},
        {"BUNDLE_CODEC": "none", "COMPRESSION_LEVEL": "3"},
        {"MULTIPART_PART_SIZE_MB": "100", "MAX_BUNDLE_ON_DISK_MB": "50"},
        {"MAX_BUNDLE_SIZE_MB": "5000000", "MULTIPART_PART_SIZE_MB": "5"},
    ],
)
def test_cross_field_problems_are_left_to_pydantic(extra: dict[str, str]) -> None:
    """Values valid one by one but not together: the fast path refuses them too."""
    assert check({"DISTRIBUTION_BUCKET_NAME": "dest", **extra}) == "refused"
