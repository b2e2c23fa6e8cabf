"""Property tests for data_aggregator.config: round trips and total, typed failure."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from data_aggregator.config import AppConfig
from data_aggregator.exceptions import ConfigurationError
from tests.strategies import CONFIG_INT_RANGES, valid_config_environments

BASE = {"DISTRIBUTION_BUCKET_NAME": "dest-bucket"}

#: Every variable AppConfig reads (the defaults' to_env() plus those that default to None).
ALL_VARIABLES = sorted(
    {
        *AppConfig(distribution_bucket_name="dest-bucket").to_env(),
        "IDEMPOTENCY_TABLE_NAME",
        "COMPRESSION_LEVEL",
        "COMPRESSION_THREADS",
        "KMS_KEY_ID",
        "EXPECTED_BUCKET_OWNER",
    }
)

#: Integer settings whose whole range is valid with every other setting at its default.
_INDEPENDENT_INTS = {
    name: bounds
    for name, bounds in CONFIG_INT_RANGES.items()
    if name
    not in {
        "MAX_BUNDLE_ON_DISK_MB",
        "MAX_BUNDLE_SIZE_MB",
        "MULTIPART_PART_SIZE_MB",
        "COMPRESSION_LEVEL",
    }
}


def from_env(environ: dict[str, str]) -> AppConfig | ConfigurationError:
    """AppConfig.from_env(environ), or the ConfigurationError it raised (others propagate)."""
    try:
        return AppConfig.from_env(environ)
    except ConfigurationError as error:
        return error


def in_code(data: dict[str, object]) -> AppConfig | ConfigurationError:
    """AppConfig.model_validate(data), or the ConfigurationError it raised."""
    try:
        return AppConfig.model_validate(data)
    except ConfigurationError as error:
        return error


@given(valid_config_environments())
def test_valid_environments_round_trip(environ: dict[str, str]) -> None:
    """Any valid environment is accepted and from_env(to_env(cfg)) rebuilds cfg exactly."""
    config = AppConfig.from_env(environ)
    assert AppConfig.from_env(config.to_env()) == config
    for name in CONFIG_INT_RANGES:
        if name in environ:
            assert getattr(config, name.lower()) == int(environ[name])


@given(st.sampled_from(sorted(_INDEPENDENT_INTS)), st.data())
def test_any_in_range_integer_is_accepted(name: str, data: st.DataObject) -> None:
    """Every integer inside a variable's range is accepted and read back unchanged."""
    value = data.draw(st.integers(*_INDEPENDENT_INTS[name]))
    config = AppConfig.from_env({**BASE, name: str(value)})
    assert getattr(config, name.lower()) == value
    assert AppConfig.from_env(config.to_env()) == config


@given(st.sampled_from(sorted(CONFIG_INT_RANGES)), st.one_of(st.text(), st.integers().map(str)))
def test_arbitrary_text_for_integer_variables(name: str, raw: str) -> None:
    """Any string for an integer variable gives a valid config or a ConfigurationError naming it."""
    result = from_env({**BASE, name: raw})
    if isinstance(result, ConfigurationError):
        assert name in result.context["variables"]
    else:
        if raw.strip():
            assert getattr(result, name.lower()) == int(raw.strip())
        assert AppConfig.from_env(result.to_env()) == result


@given(st.sampled_from(ALL_VARIABLES), st.text())
def test_arbitrary_text_for_any_variable(name: str, raw: str) -> None:
    """Any string for any variable gives a round-tripping config or a ConfigurationError."""
    result = from_env({**BASE, name: raw})
    if isinstance(result, ConfigurationError):
        assert name in result.context["variables"]
        assert result.message.startswith("Invalid data_aggregator configuration")
    else:
        assert AppConfig.from_env(result.to_env()) == result


@given(st.dictionaries(st.sampled_from(ALL_VARIABLES), st.text(), max_size=8))
def test_arbitrary_environments_fail_only_with_configuration_error(
    environ: dict[str, str],
) -> None:
    """A whole environment of arbitrary strings never raises anything but ConfigurationError."""
    result = from_env(environ)
    if isinstance(result, ConfigurationError):
        assert result.context["variables"]
        assert set(result.context["variables"]) <= set(ALL_VARIABLES)


@given(
    st.sampled_from(sorted(AppConfig.model_fields)),
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(),
        st.floats(),
        st.text(),
        st.lists(st.text(), max_size=3),
    ),
)
def test_arbitrary_values_in_code_fail_only_with_configuration_error(
    field: str, value: object
) -> None:
    """Any Python value for any field gives a config or a ConfigurationError naming the field."""
    result = in_code({"distribution_bucket_name": "dest-bucket", field: value})
    if isinstance(result, ConfigurationError):
        assert field in result.context["variables"]
