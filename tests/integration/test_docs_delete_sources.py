"""The example of ``docs/delete-sources.md``, run as the page shows it."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest

from tests.docs_support import python_block_containing

if TYPE_CHECKING:
    from collections.abc import Callable

    from data_aggregator.testing.pytest_plugin import AggregatorEnv

pytestmark = pytest.mark.integration

PAGE = "docs/delete-sources.md"


def _example() -> Callable[..., None]:
    source = python_block_containing(PAGE, "def test_only_the_bundled_version_is_deleted")
    namespace: dict[str, Any] = {}
    exec(compile(source, PAGE, "exec"), namespace)  # noqa: S102 - our own docs
    test: Callable[..., None] = namespace["test_only_the_bundled_version_is_deleted"]
    return test


def test_the_delete_sources_example_passes(
    make_aggregator_env: Callable[..., AggregatorEnv],
) -> None:
    """The page's test function, executed with this suite's ``make_aggregator_env``."""
    _example()(make_aggregator_env)


def test_the_delete_sources_example_fails_with_the_option_off(
    make_aggregator_env: Callable[..., AggregatorEnv],
) -> None:
    """Not vacuous: with DELETE_SOURCES forced off, the page's assertions fail."""

    def without_deletes(**options: Any) -> AggregatorEnv:
        return make_aggregator_env(**{**options, "delete_sources": False})

    with pytest.raises(AssertionError):
        _example()(without_deletes)
