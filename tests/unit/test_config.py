"""Tests for data_aggregator.config: defaults, environment parsing, validation, errors."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, get_args

import pydantic
import pytest

from data_aggregator.config import (
    MIB,
    AppConfig,
    BundleFormat,
    Codec,
    IdempotencyBatchMode,
    get_config,
)
from data_aggregator.exceptions import ConfigurationError
from tests.strategies import CONFIG_INT_RANGES, config_bounds

if TYPE_CHECKING:
    from collections.abc import Iterator

BASE = {"DISTRIBUTION_BUCKET_NAME": "dest-bucket"}
DOCS = Path(__file__).resolve().parents[2] / "docs" / "configuration.md"

# env name, field, default
DEFAULTS: list[tuple[str, str, Any]] = [
    ("IDEMPOTENCY_TABLE_NAME", "idempotency_table_name", None),
    ("SERVICE_NAME", "service_name", "data-aggregator"),
    ("ENVIRONMENT", "environment", "dev"),
    ("IDEMPOTENCY_TTL_DAYS", "idempotency_ttl_days", 7),
    ("SPOOL_FILE_MAX_SIZE_MB", "spool_file_max_size_mb", 64),
    ("TIMEOUT_GUARD_THRESHOLD_SECONDS", "timeout_guard_threshold_seconds", 30.0),
    ("MAX_BUNDLE_ON_DISK_MB", "max_bundle_on_disk_mb", 400),
    ("LOG_LEVEL", "log_level", "INFO"),
    ("BUNDLE_PREFIX", "bundle_prefix", ""),
    ("BUNDLE_FORMAT", "bundle_format", BundleFormat.TAR),
    ("SIDECAR_PREFIX", "sidecar_prefix", ""),
    ("BUNDLE_CODEC", "bundle_codec", Codec.GZIP),
    ("COMPRESSION_LEVEL", "compression_level", None),
    ("COMPRESSION_THREADS", "compression_threads", None),
    ("MAX_BUNDLE_SIZE_MB", "max_bundle_size_mb", 5120),
    ("FETCH_CONCURRENCY", "fetch_concurrency", 32),
    ("UPLOAD_CONCURRENCY", "upload_concurrency", 4),
    ("MULTIPART_PART_SIZE_MB", "multipart_part_size_mb", 16),
    ("IN_FLIGHT_BYTES_MB", "in_flight_bytes_mb", 64),
    ("SOURCE_BUCKET_ALLOWLIST", "source_bucket_allowlist", frozenset()),
    ("ACCEPTED_EVENT_PREFIXES", "accepted_event_prefixes", ("ObjectCreated:",)),
    ("KMS_KEY_ID", "kms_key_id", None),
    ("EXPECTED_BUCKET_OWNER", "expected_bucket_owner", None),
    ("DELETE_SOURCES", "delete_sources", False),
    ("IDEMPOTENCY_PARTITION_KEY", "idempotency_partition_key", "object_key"),
    ("IDEMPOTENCY_BATCH_MODE", "idempotency_batch_mode", "auto"),
    ("LEASE_MARGIN_SECONDS", "lease_margin_seconds", 10.0),
    ("METRICS_ENABLED", "metrics_enabled", True),
    ("METRICS_NAMESPACE", "metrics_namespace", "DataAggregator"),
]
ALL_ENV_NAMES = ["DISTRIBUTION_BUCKET_NAME", *(env for env, _, _ in DEFAULTS)]

KMS_ARN = "arn:aws:kms:eu-west-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"

# env name, field, value as set, value read
FROM_ENV: list[tuple[str, str, str, Any]] = [
    ("DISTRIBUTION_BUCKET_NAME", "distribution_bucket_name", "my.dest-bucket", "my.dest-bucket"),
    ("IDEMPOTENCY_TABLE_NAME", "idempotency_table_name", "Idem_Table-1.x", "Idem_Table-1.x"),
    ("SERVICE_NAME", "service_name", "svc.name_1", "svc.name_1"),
    ("ENVIRONMENT", "environment", "prod", "prod"),
    ("IDEMPOTENCY_TTL_DAYS", "idempotency_ttl_days", "30", 30),
    ("SPOOL_FILE_MAX_SIZE_MB", "spool_file_max_size_mb", "128", 128),
    ("TIMEOUT_GUARD_THRESHOLD_SECONDS", "timeout_guard_threshold_seconds", "12.5", 12.5),
    ("MAX_BUNDLE_ON_DISK_MB", "max_bundle_on_disk_mb", "1024", 1024),
    ("LOG_LEVEL", "log_level", "debug", "DEBUG"),
    ("BUNDLE_PREFIX", "bundle_prefix", "bundles/logs", "bundles/logs/"),
    ("BUNDLE_FORMAT", "bundle_format", "Concat", BundleFormat.CONCAT),
    ("SIDECAR_PREFIX", "sidecar_prefix", "manifests", "manifests/"),
    ("BUNDLE_CODEC", "bundle_codec", "ZSTD", Codec.ZSTD),
    ("COMPRESSION_LEVEL", "compression_level", "9", 9),
    ("COMPRESSION_THREADS", "compression_threads", "2", 2),
    ("MAX_BUNDLE_SIZE_MB", "max_bundle_size_mb", "100", 100),
    ("FETCH_CONCURRENCY", "fetch_concurrency", "64", 64),
    ("UPLOAD_CONCURRENCY", "upload_concurrency", "8", 8),
    ("MULTIPART_PART_SIZE_MB", "multipart_part_size_mb", "32", 32),
    ("IN_FLIGHT_BYTES_MB", "in_flight_bytes_mb", "256", 256),
    (
        "SOURCE_BUCKET_ALLOWLIST",
        "source_bucket_allowlist",
        "b1-bucket, Legacy_Bucket ,b1-bucket,",
        frozenset({"b1-bucket", "Legacy_Bucket"}),
    ),
    (
        "ACCEPTED_EVENT_PREFIXES",
        "accepted_event_prefixes",
        "ObjectCreated:Put, s3:ObjectRestore:*",
        ("ObjectCreated:Put", "ObjectRestore:"),
    ),
    ("KMS_KEY_ID", "kms_key_id", KMS_ARN, KMS_ARN),
    ("EXPECTED_BUCKET_OWNER", "expected_bucket_owner", "123456789012", "123456789012"),
    ("DELETE_SOURCES", "delete_sources", "yes", True),
    ("IDEMPOTENCY_PARTITION_KEY", "idempotency_partition_key", "pk", "pk"),
    ("IDEMPOTENCY_BATCH_MODE", "idempotency_batch_mode", "Statements", "statements"),
    ("LEASE_MARGIN_SECONDS", "lease_margin_seconds", "0", 0.0),
    ("METRICS_ENABLED", "metrics_enabled", "off", False),
    ("METRICS_NAMESPACE", "metrics_namespace", "My/App: Bundles#1", "My/App: Bundles#1"),
]

# The limits of the integer settings, read from the bounds AppConfig declares (the only
# place they are written; test_every_limit_is_documented holds the documentation to them).
LIMITS = CONFIG_INT_RANGES
PART_MB = LIMITS["MULTIPART_PART_SIZE_MB"]
DISK_MB = LIMITS["MAX_BUNDLE_ON_DISK_MB"]


def beyond(env: str) -> list[str]:
    """A number setting's values one step outside its limits."""
    low, high = LIMITS[env]
    return [str(low - 1), str(high + 1)]


# env name, bad values, a fragment of the allowed values the message must show (None: the
# limits of a number setting, as the message states them)
BAD: list[tuple[str, list[str], str | None]] = [
    (
        "DISTRIBUTION_BUCKET_NAME",
        ["ab", "Upper", "under_score", "-dash", "dot.", "a..b", "192.168.1.1", "x" * 64, "s3://b"],
        "3-63 characters",
    ),
    ("IDEMPOTENCY_TABLE_NAME", ["ab", "bad name", "t/able", "x" * 256], "3-255 characters"),
    ("SERVICE_NAME", ["has space", "a/b", "x" * 129], "1-128 characters"),
    ("ENVIRONMENT", ["pr@d", "x" * 65], "1-64 characters"),
    ("IDEMPOTENCY_TTL_DAYS", [*beyond("IDEMPOTENCY_TTL_DAYS"), "-1", "abc", "7.5", "1e9"], None),
    (
        "SPOOL_FILE_MAX_SIZE_MB",
        [
            *beyond("SPOOL_FILE_MAX_SIZE_MB"),
            "abc",
            "-1",
            "1e9",
            "64MB",
            "6 4",
            "0x10",
            "\uff11\uff12",
        ],
        None,
    ),
    (
        "TIMEOUT_GUARD_THRESHOLD_SECONDS",
        ["0", "-1", "900.5", "nan", "inf", "abc", "1_0", "30s"],
        None,
    ),
    ("MAX_BUNDLE_ON_DISK_MB", [*beyond("MAX_BUNDLE_ON_DISK_MB"), "x"], None),
    ("LOG_LEVEL", ["verbose", "WARN", "10", "TRACE"], "DEBUG, INFO, WARNING, ERROR, CRITICAL"),
    (
        "BUNDLE_PREFIX",
        ["/abs", "a/../b", "..", "a//b", "./a", "x" * 512, "a\x00b", "a\nb"],
        "at most 512 characters",
    ),
    ("BUNDLE_FORMAT", ["zip", "jsonl", "tar.gz", "lines"], "tar, concat"),
    ("SIDECAR_PREFIX", ["/abs", "a/../b", "a//b", "x" * 512, "a\x00b"], "at most 512 characters"),
    ("BUNDLE_CODEC", ["bz2", "gz", "lz4", "true"], "gzip, zstd, none"),
    ("COMPRESSION_LEVEL", [*beyond("COMPRESSION_LEVEL"), "-1", "fast", "3.5"], None),
    ("COMPRESSION_THREADS", [*beyond("COMPRESSION_THREADS"), "auto", "2.0"], None),
    ("MAX_BUNDLE_SIZE_MB", [*beyond("MAX_BUNDLE_SIZE_MB"), "big"], None),
    ("FETCH_CONCURRENCY", [*beyond("FETCH_CONCURRENCY"), "x"], None),
    ("UPLOAD_CONCURRENCY", [*beyond("UPLOAD_CONCURRENCY"), "4.0"], None),
    ("MULTIPART_PART_SIZE_MB", [*beyond("MULTIPART_PART_SIZE_MB"), "0"], None),
    ("IN_FLIGHT_BYTES_MB", [*beyond("IN_FLIGHT_BYTES_MB"), "-5"], None),
    (
        "SOURCE_BUCKET_ALLOWLIST",
        ["ok-bucket,a b", ",", " , ,", "ab", "bucket/path", "ok-bucket,s3://x"],
        "comma-separated list of bucket names",
    ),
    (
        "ACCEPTED_EVENT_PREFIXES",
        [",", "*", "s3:*", "Object Created", "ObjectCreated:,bad-name"],
        "event name prefixes",
    ),
    ("KMS_KEY_ID", ["has space", "x" * 2049, "key\x00id"], "KMS key id"),
    (
        "EXPECTED_BUCKET_OWNER",
        ["12345", "1234567890123", "abcdefghijkl", "12345678901x"],
        "exactly 12 digits",
    ),
    ("IDEMPOTENCY_PARTITION_KEY", ["x" * 256, "a\tb", "\u00e9" * 128], "1-255 UTF-8 bytes"),
    (
        "IDEMPOTENCY_BATCH_MODE",
        ["partiql", "batch", "transaction", "statement", "auto,hybrid"],
        "auto, single, hybrid, transact, statements",
    ),
    ("DELETE_SOURCES", ["maybe", "2", "delete"], "true/false"),
    ("LEASE_MARGIN_SECONDS", ["-1", "300.5", "nan", "abc"], None),
    ("METRICS_ENABLED", ["maybe", "2", "tru", "enabled"], "true/false"),
    ("METRICS_NAMESPACE", ["AWS/S3", "bad|ns", "x" * 256], "not starting with 'AWS/'"),
]

# env name, lowest usable, highest usable, extra variables that keep the extremes consistent
# (MAX_BUNDLE_ON_DISK_MB's own limits start lower, but the disk must hold one part)
INT_RANGES: list[tuple[str, int, int, dict[str, str]]] = [
    ("IDEMPOTENCY_TTL_DAYS", *LIMITS["IDEMPOTENCY_TTL_DAYS"], {}),
    ("SPOOL_FILE_MAX_SIZE_MB", *LIMITS["SPOOL_FILE_MAX_SIZE_MB"], {}),
    ("MAX_BUNDLE_ON_DISK_MB", PART_MB[0], DISK_MB[1], {"MULTIPART_PART_SIZE_MB": str(PART_MB[0])}),
    (
        "MAX_BUNDLE_SIZE_MB",
        *LIMITS["MAX_BUNDLE_SIZE_MB"],
        {"MULTIPART_PART_SIZE_MB": "500", "MAX_BUNDLE_ON_DISK_MB": "500"},
    ),
    ("FETCH_CONCURRENCY", *LIMITS["FETCH_CONCURRENCY"], {}),
    ("UPLOAD_CONCURRENCY", *LIMITS["UPLOAD_CONCURRENCY"], {}),
    ("MULTIPART_PART_SIZE_MB", *PART_MB, {"MAX_BUNDLE_ON_DISK_MB": str(DISK_MB[1])}),
    ("IN_FLIGHT_BYTES_MB", *LIMITS["IN_FLIGHT_BYTES_MB"], {}),
    ("COMPRESSION_LEVEL", *LIMITS["COMPRESSION_LEVEL"], {"BUNDLE_CODEC": "zstd"}),
    ("COMPRESSION_THREADS", *LIMITS["COMPRESSION_THREADS"], {}),
]


def stated_limits(env: str) -> str:
    """How an error message states a number setting's limits: ``from 1 to 365``."""
    limits = config_bounds(env.lower())
    if limits.low_allowed:
        return f"from {limits.low} to {limits.high}"
    return f"greater than {limits.low} and at most {limits.high}"


BAD_CASES = [
    pytest.param(env, value, allowed, id=f"{env}={value[:12]!r}")
    for env, values, allowed in BAD
    for value in values
]


def config_error(environ: dict[str, str]) -> ConfigurationError:
    with pytest.raises(ConfigurationError) as info:
        AppConfig.from_env(environ)
    return info.value


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[pytest.MonkeyPatch]:
    """Remove every configuration variable from os.environ and reset get_config's cache."""
    for name in ALL_ENV_NAMES:
        monkeypatch.delenv(name, raising=False)
    get_config.cache_clear()
    yield monkeypatch
    get_config.cache_clear()


# --------------------------------------------------------------------------- defaults


@pytest.mark.parametrize(("env", "field", "default"), DEFAULTS, ids=[d[0] for d in DEFAULTS])
def test_default_values(env: str, field: str, default: Any) -> None:
    """Every optional setting has its documented default, in code and from the environment."""
    assert getattr(AppConfig(distribution_bucket_name="dest-bucket"), field) == default
    assert getattr(AppConfig.from_env(BASE), field) == default


def test_defaults_cover_every_field() -> None:
    """The tables in this file name every field of AppConfig exactly once."""
    fields = {field for _, field, _ in DEFAULTS} | {"distribution_bucket_name"}
    assert fields == set(AppConfig.model_fields)
    assert {env for env, _, _, _ in FROM_ENV} == set(ALL_ENV_NAMES)
    assert {env for env, _, _ in BAD} == set(ALL_ENV_NAMES)


def test_distribution_bucket_is_required() -> None:
    """A missing destination bucket is refused with the variable named."""
    error = config_error({})
    assert error.context["variables"] == ["DISTRIBUTION_BUCKET_NAME"]
    assert "DISTRIBUTION_BUCKET_NAME is not set" in error.message


# --------------------------------------------------------------------------- reading


@pytest.mark.parametrize(
    ("env", "field", "raw", "expected"), FROM_ENV, ids=[case[0] for case in FROM_ENV]
)
def test_reads_each_variable(env: str, field: str, raw: str, expected: Any) -> None:
    """Every variable is read from the environment and converted to its field's type."""
    config = AppConfig.from_env({**BASE, env: raw})
    assert getattr(config, field) == expected


@pytest.mark.parametrize("env", ALL_ENV_NAMES[1:])
@pytest.mark.parametrize("blank", ["", "   ", "\t\n"])
def test_blank_value_means_default(env: str, blank: str) -> None:
    """A blank or whitespace-only value counts as unset and yields the default."""
    assert AppConfig.from_env({**BASE, env: blank}) == AppConfig.from_env(BASE)


def test_values_are_stripped() -> None:
    """Surrounding whitespace around a value is ignored."""
    config = AppConfig.from_env({**BASE, "SPOOL_FILE_MAX_SIZE_MB": " 32\n", "LOG_LEVEL": " info"})
    assert (config.spool_file_max_size_mb, config.log_level) == (32, "INFO")


def test_unrelated_variables_are_ignored() -> None:
    """Variables the library does not own do not affect or break the configuration."""
    assert AppConfig.from_env({**BASE, "PATH": "/bin", "AWS_REGION": "x"}) == AppConfig.from_env(
        BASE
    )


@pytest.mark.parametrize(
    ("raw", "expected"),
    [(t, True) for t in ("true", "TRUE", "1", "yes", "On")]
    + [(f, False) for f in ("false", "False", "0", "no", "OFF")],
)
def test_boolean_spellings(raw: str, expected: bool) -> None:
    """METRICS_ENABLED accepts true/false, 1/0, yes/no and on/off in any case."""
    assert AppConfig.from_env({**BASE, "METRICS_ENABLED": raw}).metrics_enabled is expected


def test_number_spellings() -> None:
    """Signed integers and plain or exponent decimals are read as numbers."""
    config = AppConfig.from_env(
        {
            **BASE,
            "FETCH_CONCURRENCY": "+16",
            "TIMEOUT_GUARD_THRESHOLD_SECONDS": "2.5e1",
            "LEASE_MARGIN_SECONDS": ".5",
        }
    )
    assert config.fetch_concurrency == 16
    assert config.timeout_guard_threshold_seconds == 25.0
    assert config.lease_margin_seconds == 0.5


def test_seed_variables_still_work() -> None:
    """The nine variable names of the seed conventions are read as before."""
    config = AppConfig.from_env(
        {
            "DISTRIBUTION_BUCKET_NAME": "dest-bucket",
            "IDEMPOTENCY_TABLE_NAME": "idem",
            "SERVICE_NAME": "bundler",
            "ENVIRONMENT": "prod",
            "IDEMPOTENCY_TTL_DAYS": "3",
            "SPOOL_FILE_MAX_SIZE_MB": "32",
            "TIMEOUT_GUARD_THRESHOLD_SECONDS": "45",
            "MAX_BUNDLE_ON_DISK_MB": "450",
            "LOG_LEVEL": "warning",
        }
    )
    assert config.idempotency_table_name == "idem"
    assert config.spool_file_max_size_bytes == 32 * MIB
    assert config.timeout_guard_threshold_ms == 45_000
    assert config.log_level == "WARNING"


@pytest.mark.parametrize("mode", get_args(IdempotencyBatchMode))
def test_batch_mode_in_any_case(mode: IdempotencyBatchMode) -> None:
    """IDEMPOTENCY_BATCH_MODE takes each mode in any case, from the environment and in code,
    and stores it lower-case."""
    assert AppConfig.from_env({**BASE, "IDEMPOTENCY_BATCH_MODE": mode.upper()}) == AppConfig(
        distribution_bucket_name="dest-bucket", idempotency_batch_mode=mode
    )
    in_code = AppConfig.model_validate(
        {"distribution_bucket_name": "dest-bucket", "idempotency_batch_mode": mode.title()}
    )
    assert in_code.idempotency_batch_mode == mode


def test_event_prefixes_are_deduplicated_in_order() -> None:
    """Repeated or equivalent event prefixes collapse to one, keeping the first position."""
    config = AppConfig.from_env(
        {**BASE, "ACCEPTED_EVENT_PREFIXES": "ObjectRemoved:,s3:ObjectCreated:*,ObjectRemoved:*"}
    )
    assert config.accepted_event_prefixes == ("ObjectRemoved:", "ObjectCreated:")


@pytest.mark.parametrize(
    ("raw", "expected"), [("a/b/", "a/b/"), ("x", "x/"), ("2024.v1", "2024.v1/")]
)
def test_bundle_prefix_gets_one_trailing_slash(raw: str, expected: str) -> None:
    """A non-empty BUNDLE_PREFIX ends with exactly one '/'."""
    assert AppConfig.from_env({**BASE, "BUNDLE_PREFIX": raw}).bundle_prefix == expected


def test_directory_bucket_name_is_a_valid_destination() -> None:
    """An S3 Express directory bucket name passes the destination bucket rules."""
    name = "bundles--usw2-az1--x-s3"
    assert AppConfig.from_env({"DISTRIBUTION_BUCKET_NAME": name}).distribution_bucket_name == name


# --------------------------------------------------------------------------- refusals


@pytest.mark.parametrize(("env", "value", "allowed"), BAD_CASES)
def test_bad_value_is_refused(env: str, value: str, allowed: str | None) -> None:
    """A bad value is refused with one error naming the variable and its allowed values."""
    environ = {**BASE, env: value}
    error = config_error(environ)
    assert error.error_code == "CONFIGURATION_ERROR"
    assert error.context["variables"] == [env]
    assert error.context["variable"] == env
    assert error.context["source"] == "environment"
    assert f"{env}=" in error.message
    assert (allowed or stated_limits(env)) in error.message


@pytest.mark.parametrize(
    ("env", "low", "high", "extra"), INT_RANGES, ids=[r[0] for r in INT_RANGES]
)
def test_integer_range_boundaries(env: str, low: int, high: int, extra: dict[str, str]) -> None:
    """Integer settings accept both ends of their usable range and refuse one step beyond."""
    field = env.lower()
    for good in (low, high):
        assert getattr(AppConfig.from_env({**BASE, **extra, env: str(good)}), field) == good
    for bad in (low - 1, high + 1):
        assert env in config_error({**BASE, **extra, env: str(bad)}).context["variables"]


@pytest.mark.parametrize("env", ["TIMEOUT_GUARD_THRESHOLD_SECONDS", "LEASE_MARGIN_SECONDS"])
def test_float_range_boundaries(env: str) -> None:
    """Second-valued settings accept their range's ends and refuse values just outside
    (an excluded lower bound is refused itself)."""
    limits = config_bounds(env.lower())
    lowest = limits.low if limits.low_allowed else limits.low + 0.001
    below = limits.low - 0.001 if limits.low_allowed else limits.low
    for value in (lowest, limits.high):
        assert getattr(AppConfig.from_env({**BASE, env: repr(value)}), env.lower()) == value
    for value in (below, limits.high + 0.001):
        assert config_error({**BASE, env: repr(value)}).context["variables"] == [env]


def test_all_bad_variables_reported_together() -> None:
    """Several bad variables produce one error that lists every one of them, in order."""
    error = config_error(
        {
            "DISTRIBUTION_BUCKET_NAME": "Bad_Bucket",
            "SPOOL_FILE_MAX_SIZE_MB": "abc",
            "LOG_LEVEL": "verbose",
            "METRICS_ENABLED": "maybe",
            "FETCH_CONCURRENCY": "0",
        }
    )
    expected = [
        "DISTRIBUTION_BUCKET_NAME",
        "SPOOL_FILE_MAX_SIZE_MB",
        "LOG_LEVEL",
        "FETCH_CONCURRENCY",
        "METRICS_ENABLED",
    ]
    assert error.context["variables"] == expected
    assert error.message.startswith("Invalid data_aggregator configuration in the environment")
    assert "(5 problems)" in error.message
    assert len(error.context["problems"]) == 5
    for name in expected:
        assert f"- {name}=" in error.message


def test_missing_bucket_reported_with_other_problems() -> None:
    """A missing required variable is reported alongside unparsable ones."""
    error = config_error({"IDEMPOTENCY_TTL_DAYS": "week"})
    assert error.context["variables"] == ["DISTRIBUTION_BUCKET_NAME", "IDEMPOTENCY_TTL_DAYS"]


def test_error_echoes_the_bad_value_briefly() -> None:
    """The message quotes the value as given, shortened when long."""
    error = config_error({**BASE, "KMS_KEY_ID": "bad key " * 100})
    line = error.context["problems"][0]
    assert line.startswith("KMS_KEY_ID='bad key bad key")
    assert len(line) < 250


def test_error_to_dict_is_log_ready() -> None:
    """The configuration error serialises with its code and the bad variable names."""
    payload = config_error({**BASE, "UPLOAD_CONCURRENCY": "lots"}).to_dict()
    assert payload["error_code"] == "CONFIGURATION_ERROR"
    assert payload["retryable"] is False
    assert payload["context"]["variables"] == ["UPLOAD_CONCURRENCY"]


# --------------------------------------------------------------------------- cross-field


@pytest.mark.parametrize(
    ("codec", "level", "effective"),
    [
        ("gzip", None, 6),
        ("gzip", "1", 1),
        ("gzip", "9", 9),
        ("zstd", None, 3),
        ("zstd", "22", 22),
        ("none", None, None),
    ],
)
def test_compression_level_per_codec(codec: str, level: str | None, effective: int | None) -> None:
    """Each codec accepts its own level range and defaults to its usual level."""
    environ = {**BASE, "BUNDLE_CODEC": codec}
    if level is not None:
        environ["COMPRESSION_LEVEL"] = level
    assert AppConfig.from_env(environ).effective_compression_level == effective


@pytest.mark.parametrize(
    ("codec", "level", "fragment"),
    [
        ("gzip", "10", "from 1 to 9 when BUNDLE_CODEC=gzip"),
        ("gzip", "22", "from 1 to 9 when BUNDLE_CODEC=gzip"),
        ("none", "1", "must be unset when BUNDLE_CODEC=none"),
    ],
)
def test_compression_level_outside_codec_range(codec: str, level: str, fragment: str) -> None:
    """A level the chosen codec does not support is refused naming both variables."""
    error = config_error({**BASE, "BUNDLE_CODEC": codec, "COMPRESSION_LEVEL": level})
    assert error.context["variables"] == ["COMPRESSION_LEVEL", "BUNDLE_CODEC"]
    assert fragment in error.message


def test_part_larger_than_disk_bound_is_refused() -> None:
    """A multipart part that cannot fit in the local disk bound is refused."""
    error = config_error({**BASE, "MULTIPART_PART_SIZE_MB": "500", "MAX_BUNDLE_ON_DISK_MB": "400"})
    assert error.context["variables"] == ["MULTIPART_PART_SIZE_MB", "MAX_BUNDLE_ON_DISK_MB"]
    assert "MULTIPART_PART_SIZE_MB=500 is larger than MAX_BUNDLE_ON_DISK_MB=400" in error.message


def test_part_equal_to_disk_bound_is_accepted() -> None:
    """A part exactly as large as the disk bound is allowed."""
    config = AppConfig.from_env({**BASE, "MULTIPART_PART_SIZE_MB": "400"})
    assert config.multipart_part_size_bytes == config.max_bundle_on_disk_bytes


def test_bundle_beyond_ten_thousand_parts_is_refused() -> None:
    """A bundle size that needs more than S3's 10,000 parts is refused."""
    error = config_error({**BASE, "MAX_BUNDLE_SIZE_MB": "160001"})
    assert error.context["variables"] == ["MAX_BUNDLE_SIZE_MB", "MULTIPART_PART_SIZE_MB"]
    assert "expected at most 160000" in error.message
    assert AppConfig.from_env({**BASE, "MAX_BUNDLE_SIZE_MB": "160000"}).max_bundle_size_mb == 160000


def test_spool_larger_than_disk_bound_is_accepted() -> None:
    """A spool threshold above the disk bound is consistent (the spool is memory) and allowed."""
    config = AppConfig.from_env(
        {**BASE, "SPOOL_FILE_MAX_SIZE_MB": "1024", "MAX_BUNDLE_ON_DISK_MB": "100"}
    )
    assert config.spool_file_max_size_mb > config.max_bundle_on_disk_mb


def test_cross_field_checks_wait_for_valid_fields() -> None:
    """When a field is invalid, only field problems are reported, not derived conflicts."""
    error = config_error({**BASE, "BUNDLE_CODEC": "bz2", "COMPRESSION_LEVEL": "12"})
    assert error.context["variables"] == ["BUNDLE_CODEC"]


# --------------------------------------------------------------------------- derived


def test_derived_values() -> None:
    """Derived byte, millisecond and second values follow from their settings (MB = MiB)."""
    config = AppConfig.from_env(
        {
            **BASE,
            "SPOOL_FILE_MAX_SIZE_MB": "2",
            "TIMEOUT_GUARD_THRESHOLD_SECONDS": "12.345",
            "MAX_BUNDLE_ON_DISK_MB": "300",
            "IDEMPOTENCY_TTL_DAYS": "2",
            "MAX_BUNDLE_SIZE_MB": "1000",
            "MULTIPART_PART_SIZE_MB": "8",
            "IN_FLIGHT_BYTES_MB": "128",
            "BUNDLE_CODEC": "zstd",
            "COMPRESSION_LEVEL": "19",
        }
    )
    assert config.spool_file_max_size_bytes == 2 * 1024 * 1024
    assert config.timeout_guard_threshold_ms == 12_345
    assert config.max_bundle_on_disk_bytes == 300 * MIB
    assert config.idempotency_ttl_seconds == 2 * 86_400
    assert config.max_bundle_size_bytes == 1000 * MIB
    assert config.multipart_part_size_bytes == 8 * MIB
    assert config.in_flight_bytes == 128 * MIB
    assert config.effective_compression_level == 19


def test_default_derived_values() -> None:
    """The defaults give the documented derived values."""
    config = AppConfig(distribution_bucket_name="dest-bucket")
    assert config.spool_file_max_size_bytes == 64 * MIB
    assert config.timeout_guard_threshold_ms == 30_000
    assert config.max_bundle_on_disk_bytes == 400 * MIB
    assert config.idempotency_ttl_seconds == 7 * 86_400
    assert config.max_bundle_size_bytes == 5120 * MIB
    assert config.multipart_part_size_bytes == 16 * MIB
    assert config.in_flight_bytes == 64 * MIB
    assert config.effective_compression_level == 6


def test_tiny_timeout_guard_is_at_least_one_millisecond() -> None:
    """A sub-millisecond threshold still guards: it rounds to 1 ms, never 0."""
    config = AppConfig(distribution_bucket_name="dest-bucket", timeout_guard_threshold_seconds=1e-6)
    assert config.timeout_guard_threshold_ms == 1


def test_codec_levels() -> None:
    """Codec exposes its level range and default level."""
    assert (Codec.GZIP.level_range, Codec.GZIP.default_level) == ((1, 9), 6)
    assert (Codec.ZSTD.level_range, Codec.ZSTD.default_level) == ((1, 22), 3)
    assert (Codec.NONE.level_range, Codec.NONE.default_level) == (None, None)


# --------------------------------------------------------------------------- to_env


def full_config() -> AppConfig:
    return AppConfig.from_env({env: raw for env, _, raw, _ in FROM_ENV})


def test_round_trip_defaults() -> None:
    """from_env(to_env()) rebuilds a default configuration exactly."""
    config = AppConfig(distribution_bucket_name="dest-bucket")
    assert AppConfig.from_env(config.to_env()) == config


def test_round_trip_every_variable_set() -> None:
    """from_env(to_env()) rebuilds a configuration that sets every variable."""
    config = full_config()
    env = config.to_env()
    assert set(env) == set(ALL_ENV_NAMES)
    assert AppConfig.from_env(env) == config


def test_to_env_leaves_none_unset() -> None:
    """Settings whose value is None are absent from to_env()."""
    env = AppConfig(distribution_bucket_name="dest-bucket").to_env()
    for name in (
        "IDEMPOTENCY_TABLE_NAME",
        "COMPRESSION_LEVEL",
        "COMPRESSION_THREADS",
        "KMS_KEY_ID",
    ):
        assert name not in env
    assert env["METRICS_ENABLED"] == "true"
    assert env["BUNDLE_CODEC"] == "gzip"


def test_to_env_renders_collections() -> None:
    """Sets render sorted and comma-separated; tuples keep their order."""
    config = AppConfig(
        distribution_bucket_name="dest-bucket",
        source_bucket_allowlist=frozenset({"zeta-bucket", "alpha-bucket"}),
        accepted_event_prefixes=("ObjectRemoved:", "ObjectCreated:"),
    )
    env = config.to_env()
    assert env["SOURCE_BUCKET_ALLOWLIST"] == "alpha-bucket,zeta-bucket"
    assert env["ACCEPTED_EVENT_PREFIXES"] == "ObjectRemoved:,ObjectCreated:"


def test_every_variable_is_documented() -> None:
    """docs/configuration.md has a reference row for every environment variable."""
    text = DOCS.read_text(encoding="utf-8")
    for name in ALL_ENV_NAMES:
        assert f"| `{name}` |" in text, name


def documented_allowed(name: str) -> str:
    """The "allowed" cell of ``name``'s row in the reference tables of the documentation."""
    for line in DOCS.read_text(encoding="utf-8").splitlines():
        if line.startswith(f"| `{name}` |"):
            return line.split(" | ")[4]
    raise AssertionError(name)


@pytest.mark.parametrize(
    "env",
    [*CONFIG_INT_RANGES, "TIMEOUT_GUARD_THRESHOLD_SECONDS", "LEASE_MARGIN_SECONDS"],
)
def test_every_limit_is_documented(env: str) -> None:
    """The reference tables state each number setting's limits as AppConfig declares them."""
    limits = config_bounds(env.lower())
    if limits.low_allowed:
        expected = f"{limits.low}\u2013{limits.high}"
    else:
        expected = f"greater than {limits.low}, at most {limits.high}"
    assert expected in documented_allowed(env)


@pytest.mark.parametrize(
    "environ",
    [
        {"SPOOL_FILE_MAX_SIZE_MB": "abc", "METRICS_ENABLED": "maybe"},
        {**BASE, "MULTIPART_PART_SIZE_MB": "500"},
    ],
)
def test_documented_errors_are_the_real_ones(environ: dict[str, str]) -> None:
    """The messages the documentation shows under "Errors" are the ones raised, verbatim."""
    message = config_error(environ).message
    assert f"```text\n{message}\n```" in DOCS.read_text(encoding="utf-8")


# --------------------------------------------------------------------------- in code


def test_construct_in_code() -> None:
    """AppConfig is built in code with snake_case names and typed values."""
    config = AppConfig(
        distribution_bucket_name="dest-bucket",
        bundle_codec=Codec.ZSTD,
        compression_level=10,
        source_bucket_allowlist=frozenset({"src-bucket"}),
        metrics_enabled=False,
    )
    assert config.effective_compression_level == 10
    assert config.source_bucket_allowlist == frozenset({"src-bucket"})
    assert config == AppConfig.from_env(config.to_env())


def test_in_code_values_are_normalised_like_env() -> None:
    """Case and prefix normalisation apply to values given in code too."""
    config = AppConfig.model_validate(
        {
            "distribution_bucket_name": "dest-bucket",
            "log_level": "debug",
            "bundle_codec": "ZSTD",
            "bundle_prefix": "out",
        }
    )
    assert (config.log_level, config.bundle_codec, config.bundle_prefix) == (
        "DEBUG",
        Codec.ZSTD,
        "out/",
    )


def test_in_code_errors_name_the_fields() -> None:
    """Bad values given in code raise ConfigurationError naming the field, not the variable."""
    with pytest.raises(ConfigurationError) as info:
        AppConfig.model_validate(
            {"distribution_bucket_name": "x", "fetch_concurrency": "5", "bogus": 1}
        )
    error = info.value
    assert error.context["source"] == "arguments"
    assert error.context["variables"] == ["distribution_bucket_name", "fetch_concurrency", "bogus"]
    low, high = CONFIG_INT_RANGES["FETCH_CONCURRENCY"]
    assert f"fetch_concurrency='5': expected an integer from {low} to {high}" in error.message
    assert "bogus: unknown setting" in error.message


def test_in_code_cross_field_errors_name_the_fields() -> None:
    """Cross-field problems in code name the fields involved."""
    with pytest.raises(ConfigurationError) as info:
        AppConfig(
            distribution_bucket_name="dest-bucket", bundle_codec=Codec.NONE, compression_level=3
        )
    assert info.value.context["variables"] == ["compression_level", "bundle_codec"]


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("spool_file_max_size_mb", True),
        ("spool_file_max_size_mb", 64.0),
        ("metrics_enabled", 1),
        ("timeout_guard_threshold_seconds", float("inf")),
    ],
)
def test_in_code_types_are_strict(field: str, value: object) -> None:
    """Numbers and booleans given in code must have their own type (no silent coercion)."""
    with pytest.raises(ConfigurationError) as info:
        AppConfig.model_validate({"distribution_bucket_name": "dest-bucket", field: value})
    assert info.value.context["variables"] == [field]


def test_not_a_mapping() -> None:
    """Validating something that is not a mapping raises ConfigurationError too."""
    with pytest.raises(ConfigurationError, match="AppConfig"):
        AppConfig.model_validate(5)


def test_frozen() -> None:
    """A configuration cannot be changed after it is built."""
    config = AppConfig(distribution_bucket_name="dest-bucket")
    with pytest.raises(pydantic.ValidationError):
        config.fetch_concurrency = 1  # type: ignore[misc]
    assert config.fetch_concurrency == 32


def test_hashable_and_comparable() -> None:
    """Equal configurations compare and hash equal."""
    first = AppConfig.from_env({**BASE, "SOURCE_BUCKET_ALLOWLIST": "b-one,b-two"})
    second = AppConfig.from_env({**BASE, "SOURCE_BUCKET_ALLOWLIST": "b-two,b-one"})
    assert first == second
    assert hash(first) == hash(second)


def test_repr_shows_only_non_defaults() -> None:
    """repr() is concise: the bucket plus the settings that differ from their defaults."""
    config = AppConfig(distribution_bucket_name="dest-bucket", fetch_concurrency=8)
    assert repr(config) == "AppConfig(distribution_bucket_name='dest-bucket', fetch_concurrency=8)"


# --------------------------------------------------------------------------- get_config


def test_get_config_reads_os_environ_once(clean_env: pytest.MonkeyPatch) -> None:
    """get_config() reads os.environ on first call and returns the same object afterwards."""
    clean_env.setenv("DISTRIBUTION_BUCKET_NAME", "first-bucket")
    first = get_config()
    clean_env.setenv("DISTRIBUTION_BUCKET_NAME", "second-bucket")
    assert get_config() is first
    assert first.distribution_bucket_name == "first-bucket"


def test_get_config_cache_clear_rereads(clean_env: pytest.MonkeyPatch) -> None:
    """get_config.cache_clear() makes the next call read the environment again."""
    clean_env.setenv("DISTRIBUTION_BUCKET_NAME", "first-bucket")
    get_config()
    clean_env.setenv("DISTRIBUTION_BUCKET_NAME", "second-bucket")
    get_config.cache_clear()
    assert get_config().distribution_bucket_name == "second-bucket"


def test_get_config_does_not_cache_failures(clean_env: pytest.MonkeyPatch) -> None:
    """A failed read raises ConfigurationError and the next call tries again."""
    with pytest.raises(ConfigurationError):
        get_config()
    clean_env.setenv("DISTRIBUTION_BUCKET_NAME", "fixed-bucket")
    assert get_config().distribution_bucket_name == "fixed-bucket"


def test_from_env_defaults_to_os_environ(clean_env: pytest.MonkeyPatch) -> None:
    """from_env() without an argument reads os.environ."""
    clean_env.setenv("DISTRIBUTION_BUCKET_NAME", "env-bucket")
    clean_env.setenv("FETCH_CONCURRENCY", "3")
    config = AppConfig.from_env()
    assert (config.distribution_bucket_name, config.fetch_concurrency) == ("env-bucket", 3)


def test_import_does_not_load_boto3() -> None:
    """Importing the configuration module stays cheap: boto3 is not imported."""
    code = (
        "import sys, data_aggregator.config; "
        "sys.exit(1 if {'boto3', 'botocore'} & set(sys.modules) else 0)"
    )
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0  # noqa: S603
