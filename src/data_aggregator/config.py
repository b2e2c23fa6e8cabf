"""Configuration: environment variables, validated once at start-up.

[`AppConfig`][data_aggregator.config.AppConfig] is a frozen pydantic model. Build it from the
environment with [`AppConfig.from_env`][data_aggregator.config.AppConfig.from_env] (or the
cached [`get_config`][data_aggregator.config.get_config]), or directly in code with snake_case
field names:

```python
config = get_config()                                   # reads os.environ once
config = AppConfig(distribution_bucket_name="dest")     # tests, scripts, other hosts
```

Every value is checked before anything runs. All bad values are reported together in one
[`ConfigurationError`][data_aggregator.exceptions.ConfigurationError] whose message names each bad
environment variable (or field, when built in code) and what it accepts, and whose
``context["variables"]`` lists those names. Blank environment values count as unset.

Sizes named ``*_MB`` are mebibytes (1 MiB = 1,048,576 bytes). The reference table of every
variable is ``docs/configuration.md``.
"""

from __future__ import annotations

import functools
import math
import os
import re
from dataclasses import dataclass
from enum import Enum
from typing import TYPE_CHECKING, Any, Literal, NamedTuple, get_args

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator
from pydantic import ValidationError as PydanticValidationError

from data_aggregator import _sizes
from data_aggregator._sizes import MAX_PARTS as S3_MAX_PARTS
from data_aggregator._sizes import MIB
from data_aggregator.exceptions import ConfigurationError, ErrorCode

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator, Mapping

    from pydantic import ModelWrapValidatorHandler

__all__ = [
    "ENVIRONMENT_VARIABLES",
    "MIB",
    "S3_MAX_PARTS",
    "AppConfig",
    "BundleFormat",
    "Codec",
    "IdempotencyBatchMode",
    "LogLevel",
    "get_config",
    "normalise_key_prefix",
    "resolve_bundle_format",
]

LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"]

#: ``IDEMPOTENCY_BATCH_MODE``: how the default DynamoDB store sends its writes. ``"auto"``
#: picks ``"statements"`` on AWS's own DynamoDB endpoints and ``"hybrid"`` on any other
#: (an emulator); the others are the store's ``BatchMode`` values, which a test keeps equal.
IdempotencyBatchMode = Literal["auto", "single", "hybrid", "transact", "statements"]


class Codec(str, Enum):
    """Compression applied to the tar stream of a bundle."""

    GZIP = "gzip"
    ZSTD = "zstd"
    NONE = "none"

    @property
    def level_range(self) -> tuple[int, int] | None:
        """Inclusive range of compression levels, or ``None`` when levels do not apply."""
        return _LEVEL_RANGES.get(self)

    @property
    def default_level(self) -> int | None:
        """Level used when ``COMPRESSION_LEVEL`` is unset (gzip 6, zstd 3, none ``None``)."""
        return _DEFAULT_LEVELS.get(self)


class BundleFormat(str, Enum):
    """How a bundle lays out its members (``docs/bundle-format.md``)."""

    #: A POSIX tar stream, ``manifest.json`` its last member (the default).
    TAR = "tar"
    #: The members' bytes concatenated, each ending in a newline, for line readers (Athena,
    #: Glue, Spark); the manifest is a sidecar object ``<bundle key>.manifest.json``.
    #: Members must be UTF-8 text.
    CONCAT = "concat"


_LEVEL_RANGES = {Codec.GZIP: (1, 9), Codec.ZSTD: (1, 22)}
_DEFAULT_LEVELS = {Codec.GZIP: 6, Codec.ZSTD: 3}

# ----------------------------------------------------------------------- env parsing

_INT = re.compile(r"[+-]?[0-9]{1,30}")
_FLOAT = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]{1,4})?")
_TRUE = frozenset({"true", "1", "yes", "on"})
_FALSE = frozenset({"false", "0", "no", "off"})


def _parse_str(raw: str) -> str:
    return raw


def _parse_int(raw: str) -> int:
    if not _INT.fullmatch(raw):
        raise ValueError(raw)
    return int(raw)


def _parse_float(raw: str) -> float:
    if not _FLOAT.fullmatch(raw):
        raise ValueError(raw)
    return float(raw)


def _parse_bool(raw: str) -> bool:
    lowered = raw.lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise ValueError(raw)


def _parse_list(raw: str) -> tuple[str, ...]:
    items = tuple(item.strip() for item in raw.split(",") if item.strip())
    if not items:  # e.g. " , ": not blank, yet names nothing; never read it as "unset"
        raise ValueError(raw)
    return items


@dataclass(frozen=True)
class _EnvInput:
    """What `AppConfig.from_env` hands to validation besides the parsed values."""

    raw: Mapping[str, str]  # field -> the environment value as given
    parse_failures: tuple[str, ...]  # fields whose value could not even be parsed


_ENV_INPUT = "data_aggregator.config.env_input"


class _Bounds(NamedTuple):
    """The limits of a number setting, as its ``Field(ge=/gt=, le=)`` declares them."""

    low: float
    high: float
    #: ``ge`` (the lowest value is allowed) rather than ``gt``.
    low_allowed: bool


def _integers(unit: str = "") -> Callable[[_Bounds], str]:
    """What an integer setting accepts, said from its bounds: ``an integer from 1 to 365``."""
    suffix = f" ({unit})" if unit else ""

    def allowed(bounds: _Bounds) -> str:
        return f"an integer from {bounds.low} to {bounds.high}{suffix}"

    return allowed


def _seconds(bounds: _Bounds) -> str:
    """What a duration setting accepts, said from its bounds."""
    if bounds.low_allowed:
        return f"a number of seconds from {bounds.low} to {bounds.high}"
    return f"a number of seconds greater than {bounds.low} and at most {bounds.high}"


@dataclass(frozen=True)
class _Setting:
    env: str
    #: What the value may be, as error messages say it; a number setting says it from the
    #: bounds of its ``Field``, which are then the only place its limits are written.
    allowed: str | Callable[[_Bounds], str]
    parse: Callable[[str], object] = _parse_str


@dataclass(frozen=True)
class _Chars:
    """A string of ``low``-``high`` characters, each in the regex class ``char_class``."""

    char_class: str
    low: int
    high: int

    @functools.cached_property
    def _pattern(self) -> re.Pattern[str]:
        return re.compile(f"[{self.char_class}]{{{self.low},{self.high}}}")

    def fullmatch(self, value: str) -> bool:
        return self._pattern.fullmatch(value) is not None

    @property
    def length(self) -> str:
        """The length rule as messages say it: ``3-255 characters``."""
        return f"{self.low}-{self.high} characters"


# The limits of the string settings, each written once: the checks below and the messages
# of `_SETTINGS` both read them (the number settings' limits are their `Field` bounds).
_NAME_CHARS = "A-Z a-z 0-9 . _ -"
_NAMES = {
    "service_name": _Chars("A-Za-z0-9._-", 1, 128),
    "environment": _Chars("A-Za-z0-9._-", 1, 64),
}
_BUCKET_LENGTH = (3, 63)
_TABLE = _Chars("A-Za-z0-9_.-", 3, 255)
_LEGACY_BUCKET = _Chars("A-Za-z0-9._-", 3, 255)
_KMS_KEY = _Chars("A-Za-z0-9:/_+=.@-", 1, 2048)
_NAMESPACE = _Chars("A-Za-z0-9 ._/#:-", 1, 255)
_MAX_PREFIX_LENGTH = 512
#: What a key prefix (``BUNDLE_PREFIX``, ``SIDECAR_PREFIX``) may be: `normalise_key_prefix`.
_PREFIX_RULE = (
    f"an S3 key prefix of at most {_MAX_PREFIX_LENGTH} characters (a trailing '/' is "
    "added): no leading '/', no empty, '.' or '..' segment, no control characters"
)
_MAX_PARTITION_KEY_BYTES = 255
_BUCKET_RULE = (
    f"a valid S3 bucket name: {_BUCKET_LENGTH[0]}-{_BUCKET_LENGTH[1]} characters of lowercase "
    "letters, digits, '.' and '-', starting and ending with a letter or digit, no '..', not an "
    "IP address"
)
_LEVELS = (
    ", ".join(f"{codec.value}: {low}-{high}" for codec, (low, high) in _LEVEL_RANGES.items())
    + f", unset for {Codec.NONE.value}"
)

#: One entry per field, in documentation order: environment name, what it accepts, parser.
_SETTINGS: dict[str, _Setting] = {
    "distribution_bucket_name": _Setting("DISTRIBUTION_BUCKET_NAME", _BUCKET_RULE),
    "idempotency_table_name": _Setting(
        "IDEMPOTENCY_TABLE_NAME", f"a DynamoDB table name: {_TABLE.length} A-Z a-z 0-9 _ . -"
    ),
    "service_name": _Setting("SERVICE_NAME", f"{_NAMES['service_name'].length} {_NAME_CHARS}"),
    "environment": _Setting("ENVIRONMENT", f"{_NAMES['environment'].length} {_NAME_CHARS}"),
    "idempotency_ttl_days": _Setting("IDEMPOTENCY_TTL_DAYS", _integers("days"), _parse_int),
    "spool_file_max_size_mb": _Setting("SPOOL_FILE_MAX_SIZE_MB", _integers("MiB"), _parse_int),
    "timeout_guard_threshold_seconds": _Setting(
        "TIMEOUT_GUARD_THRESHOLD_SECONDS", _seconds, _parse_float
    ),
    "max_bundle_on_disk_mb": _Setting("MAX_BUNDLE_ON_DISK_MB", _integers("MiB"), _parse_int),
    "log_level": _Setting("LOG_LEVEL", "one of DEBUG, INFO, WARNING, ERROR, CRITICAL (any case)"),
    "bundle_prefix": _Setting("BUNDLE_PREFIX", _PREFIX_RULE),
    "bundle_format": _Setting("BUNDLE_FORMAT", "one of tar, concat"),
    "sidecar_prefix": _Setting("SIDECAR_PREFIX", _PREFIX_RULE),
    "bundle_codec": _Setting("BUNDLE_CODEC", "one of gzip, zstd, none"),
    "compression_level": _Setting("COMPRESSION_LEVEL", _integers(_LEVELS), _parse_int),
    "compression_threads": _Setting(
        "COMPRESSION_THREADS", _integers("unset: the CPUs the function may use"), _parse_int
    ),
    "max_bundle_size_mb": _Setting("MAX_BUNDLE_SIZE_MB", _integers("MiB"), _parse_int),
    "fetch_concurrency": _Setting("FETCH_CONCURRENCY", _integers(), _parse_int),
    "upload_concurrency": _Setting("UPLOAD_CONCURRENCY", _integers(), _parse_int),
    "multipart_part_size_mb": _Setting("MULTIPART_PART_SIZE_MB", _integers("MiB"), _parse_int),
    "in_flight_bytes_mb": _Setting("IN_FLIGHT_BYTES_MB", _integers("MiB"), _parse_int),
    "source_bucket_allowlist": _Setting(
        "SOURCE_BUCKET_ALLOWLIST",
        f"a comma-separated list of bucket names, each {_LEGACY_BUCKET.length} A-Z a-z 0-9 . _ -",
        _parse_list,
    ),
    "accepted_event_prefixes": _Setting(
        "ACCEPTED_EVENT_PREFIXES",
        "a comma-separated list of S3 event name prefixes such as ObjectCreated: "
        "(letters, digits and ':'; a leading 's3:' and a trailing '*' are dropped)",
        _parse_list,
    ),
    "kms_key_id": _Setting(
        "KMS_KEY_ID", f"a KMS key id, key ARN, alias or alias ARN ({_KMS_KEY.length})"
    ),
    "expected_bucket_owner": _Setting(
        "EXPECTED_BUCKET_OWNER", "an AWS account id: exactly 12 digits"
    ),
    "delete_sources": _Setting(
        "DELETE_SOURCES", "true/false, 1/0, yes/no or on/off (any case)", _parse_bool
    ),
    "idempotency_partition_key": _Setting(
        "IDEMPOTENCY_PARTITION_KEY",
        f"an attribute name of 1-{_MAX_PARTITION_KEY_BYTES} UTF-8 bytes, printable, no "
        "surrounding spaces",
    ),
    "idempotency_batch_mode": _Setting(
        "IDEMPOTENCY_BATCH_MODE",
        f"one of {', '.join(get_args(IdempotencyBatchMode))} (any case)",
    ),
    "lease_margin_seconds": _Setting("LEASE_MARGIN_SECONDS", _seconds, _parse_float),
    "metrics_enabled": _Setting(
        "METRICS_ENABLED", "true/false, 1/0, yes/no or on/off (any case)", _parse_bool
    ),
    "metrics_namespace": _Setting(
        "METRICS_NAMESPACE",
        f"a CloudWatch namespace: {_NAMESPACE.length} A-Z a-z 0-9 space . _ - / # :, "
        "not starting with 'AWS/'",
    ),
}

#: Every environment variable `AppConfig.from_env` reads, in declaration order.
ENVIRONMENT_VARIABLES: tuple[str, ...] = tuple(setting.env for setting in _SETTINGS.values())

# ----------------------------------------------------------------------- field rules

_BUCKET = re.compile(r"[a-z0-9](?:[a-z0-9.-]*[a-z0-9])?")
_IPV4 = re.compile(r"[0-9]{1,3}(?:\.[0-9]{1,3}){3}")
_EVENT_PREFIX = re.compile(r"[A-Za-z0-9:]{1,128}")
_ACCOUNT = re.compile(r"[0-9]{12}")
#: The lowest and highest compression level of any codec: COMPRESSION_LEVEL's own bounds.
_LEVEL_BOUNDS = (
    min(low for low, _ in _LEVEL_RANGES.values()),
    max(high for _, high in _LEVEL_RANGES.values()),
)


def normalise_key_prefix(prefix: str, *, variable: str = "prefix") -> str:
    """A key prefix as ``BUNDLE_PREFIX`` and ``SIDECAR_PREFIX`` take it: ``""`` stays
    ``""``; any other prefix ends in exactly one ``/`` (added when missing), so that
    ``prefix + key`` puts the key under a folder (``manifests`` -> ``manifests/``).

    Every entry point that takes such a prefix (`AppConfig`, ``BundleEngine``,
    ``read_bundle_manifest``, ``S3ManifestBundleLocator``, the CLI) goes through this one
    function, so they all name the same objects.

    Args:
        prefix: The prefix as given.
        variable: The setting's name, for the error.

    Raises:
        ConfigurationError: longer than 512 characters, a leading ``/``, an empty,
            ``.`` or ``..`` segment, or a control character (``context["variable"]``
            is ``variable``).
    """
    if not prefix:
        return prefix
    normal = prefix if prefix.endswith("/") else f"{prefix}/"
    if not (
        len(normal) <= _MAX_PREFIX_LENGTH
        and prefix.isprintable()
        and all(segment not in {"", ".", ".."} for segment in normal[:-1].split("/"))
    ):
        raise ConfigurationError(
            f"{variable} must be {_PREFIX_RULE}",
            context={"variable": variable, "value": repr(prefix)[:64]},
        )
    return normal


def resolve_bundle_format(value: BundleFormat | str) -> BundleFormat:
    """``value`` as a `BundleFormat`, in any case (``"CONCAT"`` is ``concat``): the one
    rule of every entry point that takes a bundle format (``BundleEngine``,
    ``read_bundle_manifest``, ``S3ManifestBundleLocator``).

    Raises:
        ConfigurationError: ``INVALID_BUNDLE_SETTING``: not ``tar`` or ``concat``
            (``context["variable"]`` is ``bundle_format``).
    """
    try:
        return BundleFormat(value.value if isinstance(value, BundleFormat) else value.lower())
    except (ValueError, AttributeError):
        raise ConfigurationError(
            "bundle_format must be one of tar, concat",
            ErrorCode.INVALID_BUNDLE_SETTING,
            {"variable": "bundle_format", "value": repr(value)[:64]},
        ) from None


def _check(ok: bool) -> None:
    # The message is not shown: AppConfig reports the setting's allowed values instead.
    if not ok:
        raise ValueError("invalid value")


def _is_bucket_name(name: str) -> bool:
    low, high = _BUCKET_LENGTH
    return (
        low <= len(name) <= high
        and bool(_BUCKET.fullmatch(name))
        and ".." not in name
        and not _IPV4.fullmatch(name)
    )


class AppConfig(BaseModel):
    """Validated settings of one data_aggregator deployment (immutable).

    Build it with [`from_env`][data_aggregator.config.AppConfig.from_env],
    [`get_config`][data_aggregator.config.get_config] or the constructor; every field and
    environment variable is described in ``docs/configuration.md``. Invalid values raise
    [`ConfigurationError`][data_aggregator.exceptions.ConfigurationError] listing every problem
    at once.
    """

    # Built on the first model_validate: from_env's fast path needs no validator.
    model_config = ConfigDict(frozen=True, extra="forbid", defer_build=True)

    # Seed settings.
    distribution_bucket_name: str
    idempotency_table_name: str | None = None
    service_name: str = "data-aggregator"
    environment: str = "dev"
    idempotency_ttl_days: int = Field(default=7, ge=1, le=365, strict=True)
    spool_file_max_size_mb: int = Field(default=64, ge=1, le=10240, strict=True)
    timeout_guard_threshold_seconds: float = Field(
        default=30.0, gt=0, le=900, strict=True, allow_inf_nan=False
    )
    max_bundle_on_disk_mb: int = Field(default=400, ge=1, le=10240, strict=True)
    log_level: LogLevel = "INFO"
    # Bundles.
    bundle_prefix: str = ""
    bundle_format: BundleFormat = BundleFormat.TAR
    sidecar_prefix: str = ""
    bundle_codec: Codec = Codec.GZIP
    compression_level: int | None = Field(
        default=None, ge=_LEVEL_BOUNDS[0], le=_LEVEL_BOUNDS[1], strict=True
    )
    compression_threads: int | None = Field(
        default=None, ge=1, le=_sizes.MAX_COMPRESSION_THREADS, strict=True
    )
    max_bundle_size_mb: int = Field(default=5120, ge=1, le=5_000_000, strict=True)
    fetch_concurrency: int = Field(
        default=_sizes.DEFAULT_FETCH_CONCURRENCY, ge=1, le=256, strict=True
    )
    upload_concurrency: int = Field(
        default=_sizes.DEFAULT_UPLOAD_CONCURRENCY, ge=1, le=64, strict=True
    )
    multipart_part_size_mb: int = Field(
        default=_sizes.DEFAULT_PART_SIZE_MB,
        ge=_sizes.MIN_PART_SIZE // MIB,
        le=_sizes.MAX_PART_SIZE // MIB,
        strict=True,
    )
    in_flight_bytes_mb: int = Field(
        default=_sizes.DEFAULT_IN_FLIGHT_MB, ge=1, le=10240, strict=True
    )
    # Events and S3.
    source_bucket_allowlist: frozenset[str] = frozenset()
    accepted_event_prefixes: tuple[str, ...] = ("ObjectCreated:",)
    kms_key_id: str | None = None
    expected_bucket_owner: str | None = None
    delete_sources: bool = Field(default=False, strict=True)
    # Idempotency and metrics.
    idempotency_partition_key: str = "object_key"
    idempotency_batch_mode: IdempotencyBatchMode = "auto"
    lease_margin_seconds: float = Field(
        default=10.0, ge=0, le=300, strict=True, allow_inf_nan=False
    )
    metrics_enabled: bool = Field(default=True, strict=True)
    metrics_namespace: str = "DataAggregator"

    # ------------------------------------------------------------------ construction

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> AppConfig:
        """Read and validate every setting from ``environ`` (default: ``os.environ``).

        Blank values count as unset. Raises ``ConfigurationError`` naming every bad
        environment variable and the values it accepts.
        """
        source = os.environ if environ is None else environ
        data: dict[str, object] = {}
        raw_values: dict[str, str] = {}
        parse_failures: list[str] = []
        for field, setting in _SETTINGS.items():
            raw = source.get(setting.env)
            if raw is None or not raw.strip():
                continue
            raw_values[field] = raw
            try:
                data[field] = setting.parse(raw.strip())
            except ValueError:
                parse_failures.append(field)
        if not parse_failures:
            fast = _fast_config(cls, data)
            if fast is not None:
                return fast
        context = {_ENV_INPUT: _EnvInput(raw_values, tuple(parse_failures))}
        return cls.model_validate(data, context=context)

    def to_env(self) -> dict[str, str]:
        """Return the environment variables that
        [`from_env`][data_aggregator.config.AppConfig.from_env] turns back into ``self``.

        Settings whose value is ``None`` are left out (unset); every other setting is
        included, defaults too.
        """
        env: dict[str, str] = {}
        for field, setting in _SETTINGS.items():
            value = getattr(self, field)
            if value is not None:
                env[setting.env] = _format(value)
        return env

    # ------------------------------------------------------------------ derived values

    @property
    def spool_file_max_size_bytes(self) -> int:
        """In-memory size of a spool before it spills to disk, in bytes."""
        return self.spool_file_max_size_mb * MIB

    @property
    def timeout_guard_threshold_ms(self) -> int:
        """Remaining-time threshold of the timeout guard, in whole milliseconds (>= 1)."""
        return max(1, round(self.timeout_guard_threshold_seconds * 1000))

    @property
    def max_bundle_on_disk_bytes(self) -> int:
        """Bound on local spool disk use, in bytes."""
        return self.max_bundle_on_disk_mb * MIB

    @property
    def idempotency_ttl_seconds(self) -> int:
        """Lifetime of a completed idempotency record, in seconds."""
        return self.idempotency_ttl_days * 86_400

    @property
    def max_bundle_size_bytes(self) -> int:
        """Size at which a bundle is closed and a new one started, in bytes."""
        return self.max_bundle_size_mb * MIB

    @property
    def multipart_part_size_bytes(self) -> int:
        """Size of one multipart-upload part, in bytes."""
        return self.multipart_part_size_mb * MIB

    @property
    def in_flight_bytes(self) -> int:
        """Memory budget for prefetched object bytes, in bytes."""
        return self.in_flight_bytes_mb * MIB

    @property
    def effective_compression_level(self) -> int | None:
        """``compression_level``, or the codec's default; ``None`` for the ``none`` codec."""
        if self.compression_level is not None:
            return self.compression_level
        return self.bundle_codec.default_level

    # ------------------------------------------------------------------ validation

    @field_validator(
        "log_level", "bundle_format", "bundle_codec", "idempotency_batch_mode", mode="before"
    )
    @classmethod
    def _normalise_case(cls, value: object, info: ValidationInfo) -> object:
        if isinstance(value, str) and not isinstance(value, Enum):
            return value.upper() if info.field_name == "log_level" else value.lower()
        return value

    @field_validator("distribution_bucket_name")
    @classmethod
    def _check_bucket(cls, value: str) -> str:
        _check(_is_bucket_name(value))
        return value

    @field_validator("idempotency_table_name")
    @classmethod
    def _check_table(cls, value: str | None) -> str | None:
        _check(value is None or _TABLE.fullmatch(value))
        return value

    @field_validator("service_name", "environment")
    @classmethod
    def _check_name(cls, value: str, info: ValidationInfo) -> str:
        _check(_NAMES[str(info.field_name)].fullmatch(value))
        return value

    @field_validator("bundle_prefix", "sidecar_prefix")
    @classmethod
    def _check_prefix(cls, value: str) -> str:
        try:
            return normalise_key_prefix(value)
        except ConfigurationError:
            raise ValueError("invalid value") from None

    @field_validator("source_bucket_allowlist")
    @classmethod
    def _check_allowlist(cls, value: frozenset[str]) -> frozenset[str]:
        _check(all(_LEGACY_BUCKET.fullmatch(name) for name in value))
        return value

    @field_validator("accepted_event_prefixes")
    @classmethod
    def _check_event_prefixes(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        prefixes: list[str] = []
        for item in value:
            prefix = item.removeprefix("s3:").removesuffix("*")
            _check(bool(_EVENT_PREFIX.fullmatch(prefix)))
            if prefix not in prefixes:
                prefixes.append(prefix)
        _check(bool(prefixes))
        return tuple(prefixes)

    @field_validator("kms_key_id")
    @classmethod
    def _check_kms_key(cls, value: str | None) -> str | None:
        _check(value is None or _KMS_KEY.fullmatch(value))
        return value

    @field_validator("expected_bucket_owner")
    @classmethod
    def _check_owner(cls, value: str | None) -> str | None:
        _check(value is None or bool(_ACCOUNT.fullmatch(value)))
        return value

    @field_validator("idempotency_partition_key")
    @classmethod
    def _check_partition_key(cls, value: str) -> str:
        size = len(value.encode("utf-8", "surrogatepass"))
        _check(
            1 <= size <= _MAX_PARTITION_KEY_BYTES and value.isprintable() and value == value.strip()
        )
        return value

    @field_validator("metrics_namespace")
    @classmethod
    def _check_namespace(cls, value: str) -> str:
        _check(_NAMESPACE.fullmatch(value) and bool(value.strip()) and not value.startswith("AWS/"))
        return value

    @model_validator(mode="wrap")
    @classmethod
    def _validate_all(
        cls, data: Any, handler: ModelWrapValidatorHandler[AppConfig], info: ValidationInfo
    ) -> AppConfig:
        """Turn every problem, field-level or cross-field, into one ConfigurationError."""
        found = (info.context or {}).get(_ENV_INPUT)
        env_input = found if isinstance(found, _EnvInput) else _EnvInput({}, ())
        from_env = found is env_input
        raw = env_input.raw
        problems = [
            _Problem((field,), _describe(field, repr(raw[field]), from_env=True))
            for field in env_input.parse_failures
        ]
        try:
            config = handler(data)
        except PydanticValidationError as exc:
            problems += list(_field_problems(exc, problems, raw, from_env=from_env))
            raise _configuration_error(problems, from_env=from_env) from None
        if not problems:  # cross-field checks only make sense once every field is valid
            problems.extend(_cross_field_problems(config, from_env=from_env))
        if problems:
            raise _configuration_error(problems, from_env=from_env)
        return config

    def __repr_args__(self) -> Iterator[tuple[str | None, Any]]:
        """Show the required field and the fields that differ from their defaults only."""
        for name, field in type(self).model_fields.items():
            value = getattr(self, name)
            if field.is_required() or value != field.default:
                yield name, value


# --------------------------------------------------------------------------- helpers


def _bounds(field: str) -> _Bounds:
    """The limits of a number setting: what its ``Field(ge=/gt=, le=)`` declares."""
    # pydantic keeps them as annotated_types' Ge, Gt and Le, one attribute each.
    found: dict[str, float] = {}
    for constraint in AppConfig.model_fields[field].metadata:
        for name in ("ge", "gt", "le"):
            if hasattr(constraint, name):
                found[name] = getattr(constraint, name)
    low = found.get("ge", found.get("gt"))
    high = found.get("le")
    if low is None or high is None:
        msg = f"setting {field!r} declares no lower and upper bound"
        raise TypeError(msg)
    return _Bounds(low, high, low_allowed="ge" in found)


#: What each setting accepts, as error messages say it (numbers: from their bounds).
_ALLOWED: dict[str, str] = {
    field: setting.allowed if isinstance(setting.allowed, str) else setting.allowed(_bounds(field))
    for field, setting in _SETTINGS.items()
}


class _Problem(NamedTuple):
    fields: tuple[str, ...]
    message: str


def _name(field: str, *, from_env: bool) -> str:
    setting = _SETTINGS.get(field)
    return setting.env if (from_env and setting is not None) else field


def _describe(field: str, shown: str | None, *, from_env: bool) -> str:
    """One problem line: ``NAME='value': expected <allowed>``."""
    name = _name(field, from_env=from_env)
    setting = _SETTINGS.get(field)
    if setting is None:
        return f"{name}: unknown setting (see docs/configuration.md for the accepted ones)"
    if shown is None:
        return f"{name} is not set: expected {_ALLOWED[field]}"
    if len(shown) > 80:
        shown = f"{shown[:77]}..."
    return f"{name}={shown}: expected {_ALLOWED[field]}"


def _field_problems(
    exc: PydanticValidationError,
    known: list[_Problem],
    raw: Mapping[str, str],
    *,
    from_env: bool,
) -> Iterator[_Problem]:
    """One problem per bad field (a field may carry several pydantic errors)."""
    seen = {field for problem in known for field in problem.fields}
    for error in exc.errors():
        loc = error["loc"]
        if not loc:  # the input as a whole is unusable (not a mapping)
            yield _Problem(("AppConfig",), f"AppConfig: {error['msg']}")
            continue
        field = str(loc[0])
        if field in seen:
            continue
        seen.add(field)
        if error["type"] == "missing":
            shown = None
        elif from_env and field in raw:
            shown = repr(raw[field])
        else:
            shown = repr(error.get("input"))
        yield _Problem((field,), _describe(field, shown, from_env=from_env))


def _cross_field_problems(config: AppConfig, *, from_env: bool) -> Iterator[_Problem]:
    """Combinations of individually valid values that cannot work together."""

    def show(field: str) -> str:
        return f"{_name(field, from_env=from_env)}={_format(getattr(config, field))}"

    codec, level = config.bundle_codec, config.compression_level
    bounds = codec.level_range
    if level is not None and bounds is None:
        yield _Problem(
            ("compression_level", "bundle_codec"),
            f"{show('compression_level')}: must be unset when {show('bundle_codec')} "
            "(no compression, no level)",
        )
    elif level is not None and bounds is not None and not bounds[0] <= level <= bounds[1]:
        yield _Problem(
            ("compression_level", "bundle_codec"),
            f"{show('compression_level')}: expected an integer from {bounds[0]} to "
            f"{bounds[1]} when {show('bundle_codec')}",
        )
    if config.multipart_part_size_mb > config.max_bundle_on_disk_mb:
        yield _Problem(
            ("multipart_part_size_mb", "max_bundle_on_disk_mb"),
            f"{show('multipart_part_size_mb')} is larger than {show('max_bundle_on_disk_mb')}: "
            "a part is spooled on local disk before upload, so it must fit within that bound",
        )
    largest_mb = config.multipart_part_size_mb * S3_MAX_PARTS
    if config.max_bundle_size_mb > largest_mb:
        yield _Problem(
            ("max_bundle_size_mb", "multipart_part_size_mb"),
            f"{show('max_bundle_size_mb')} cannot be uploaded in {S3_MAX_PARTS} parts of "
            f"{show('multipart_part_size_mb')}: expected at most {largest_mb} "
            "(raise the part size or lower the bundle size)",
        )


def _configuration_error(problems: list[_Problem], *, from_env: bool) -> ConfigurationError:
    order = {field: index for index, field in enumerate(_SETTINGS)}
    problems = sorted(problems, key=lambda problem: order.get(problem.fields[0], len(order)))
    names: list[str] = []
    for problem in problems:
        for field in problem.fields:
            name = _name(field, from_env=from_env)
            if name not in names:
                names.append(name)
    messages = [problem.message for problem in problems]
    count = len(messages)
    where = " in the environment" if from_env else ""
    header = f"Invalid data_aggregator configuration{where} ({count} problem{'s' * (count > 1)}):"
    return ConfigurationError(
        "\n".join([header, *(f"- {message}" for message in messages)]),
        context={
            "source": "environment" if from_env else "arguments",
            "variable": names[0],
            "variables": names,
            "problems": messages,
        },
    )


def _format(value: object) -> str:
    """Render one setting the way `AppConfig.from_env` reads it back."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Enum):
        return str(value.value)
    if isinstance(value, frozenset):
        return ",".join(sorted(value))
    if isinstance(value, tuple):
        return ",".join(value)
    if isinstance(value, float):
        return repr(value)
    return str(value)


# ------------------------------------------------------------------ from_env's fast path
# Building AppConfig's pydantic validator costs 20-40 ms of a Lambda's cold start. A valid
# environment does not need it: `_fast_config` applies the model's own rules (each field's
# type and `Field` bounds, its `field_validator`s with their modes, the cross-field checks)
# and builds the config with ``model_construct``. It handles only the kinds of field it
# knows; anything else, and any value a rule refuses, returns ``None``, and pydantic
# validates (and reports) as before. A new field of a known kind needs nothing here.


class _NotFastError(Exception):
    """A field or value the fast path leaves to pydantic."""


class _FastInfo:
    """The part of ``ValidationInfo`` the field validators read."""

    def __init__(self, field_name: str, data: dict[str, object]) -> None:
        self.field_name = field_name
        self.data = data
        self.context = None
        self.mode = "python"
        self.config = None


def _field_validators(cls: type[AppConfig]) -> dict[str, list[tuple[str, Callable[..., Any]]]]:
    """Field name -> ``(mode, bound validator)``, in declaration order."""
    found: dict[str, list[tuple[str, Callable[..., Any]]]] = {}
    for decorator in cls.__pydantic_decorators__.field_validators.values():
        for field in decorator.info.fields:
            found.setdefault(field, []).append((decorator.info.mode, decorator.func))
    return found


def _run(validator: Callable[..., Any], value: object, info: _FastInfo) -> object:
    import inspect  # noqa: PLC0415 - loaded already (dataclasses imports it)

    if len(inspect.signature(validator).parameters) == 1:
        return validator(value)
    return validator(value, info)


def _bounded(value: float, metadata: list[Any]) -> None:
    """Apply a number field's ``Field`` constraints (``strict`` is the exact type check)."""
    for constraint in metadata:
        kind = type(constraint).__name__
        if kind == "Strict":
            continue
        if kind == "AllowInfNan":
            if not constraint.allow_inf_nan and value in (float("inf"), float("-inf")):
                raise _NotFastError
            continue
        checks = {
            "Ge": lambda c: value >= c.ge,
            "Gt": lambda c: value > c.gt,
            "Le": lambda c: value <= c.le,
            "Lt": lambda c: value < c.lt,
        }
        if kind not in checks or not checks[kind](constraint):
            raise _NotFastError


def _typed(annotation: Any, metadata: list[Any], value: object) -> object:
    """``value`` as pydantic validates it into ``annotation``, or `_NotFastError`."""
    import types  # noqa: PLC0415 - loaded already (typing imports it)
    import typing  # noqa: PLC0415

    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin in (types.UnionType, typing.Union) and len(args) == 2 and type(None) in args:
        if value is None:
            return None
        annotation = args[0] if args[1] is type(None) else args[1]
        origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if annotation in (int, float, bool) and type(value) is annotation:
        if annotation is float and math.isnan(value):  # type: ignore[arg-type]
            raise _NotFastError
        if annotation is not bool:
            _bounded(value, metadata)  # type: ignore[arg-type]
        elif metadata and any(type(c).__name__ != "Strict" for c in metadata):
            raise _NotFastError
        return value
    if metadata:
        raise _NotFastError
    if annotation is str and type(value) is str:
        return value
    if origin is Literal and type(value) is str and value in args:
        return value
    if (
        isinstance(annotation, type)
        and issubclass(annotation, Enum)
        and type(value) is str
        and value in annotation._value2member_map_
    ):
        return annotation(value)
    if (
        origin in (frozenset, tuple)
        and args in ((str,), (str, ...))
        and type(value) is tuple
        and all(type(item) is str for item in value)
    ):
        return origin(value)
    raise _NotFastError


def _fast_config(cls: type[AppConfig], data: dict[str, object]) -> AppConfig | None:
    """``cls.model_validate(data)`` for a valid ``data``, without pydantic's validator;
    ``None`` when a value or a field is not one it can vouch for."""
    decorators = cls.__pydantic_decorators__
    if list(decorators.model_validators) != ["_validate_all"] or decorators.root_validators:
        return None
    if any(info.is_required() and name not in data for name, info in cls.model_fields.items()):
        return None
    validators = _field_validators(cls)
    values: dict[str, Any] = {}
    try:
        for field, raw in data.items():
            info = cls.model_fields.get(field)
            if info is None:
                return None
            modes = [mode for mode, _ in validators.get(field, [])]
            if any(mode not in ("before", "after") for mode in modes) or len(modes) > len(
                set(modes)
            ):
                return None
            value = raw
            for mode, validator in validators.get(field, []):
                if mode == "before":
                    value = _run(validator, value, _FastInfo(field, values))
            value = _typed(info.annotation, info.metadata, value)
            for mode, validator in validators.get(field, []):
                if mode == "after":
                    value = _run(validator, value, _FastInfo(field, values))
            values[field] = value
    except Exception:  # noqa: BLE001 - any refusal: pydantic decides and reports
        return None
    config = cls.model_construct(set(data), **values)
    if next(_cross_field_problems(config, from_env=True), None) is not None:
        return None
    return config


@functools.lru_cache(maxsize=1)
def get_config() -> AppConfig:
    """Return ``AppConfig.from_env()``, read once and cached for the process's lifetime.

    Call ``get_config.cache_clear()`` to read the environment again (tests do this after
    changing variables). A failed read is not cached.
    """
    return AppConfig.from_env()
