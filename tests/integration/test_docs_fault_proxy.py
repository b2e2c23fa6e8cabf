"""The FaultProxy example of ``docs/testing.md``, run as the page shows it."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest

from tests.docs_support import python_block_containing

if TYPE_CHECKING:
    from data_aggregator.testing.pytest_plugin import AggregatorEnv

pytestmark = pytest.mark.integration


def test_the_fault_proxy_example_passes(aggregator_env: AggregatorEnv) -> None:
    """The page's test function, executed with this suite's ``aggregator_env``."""
    source = python_block_containing("docs/testing.md", "FaultProxy(env.s3_endpoint_url")
    namespace: dict[str, Any] = {}
    exec(compile(source, "docs/testing.md", "exec"), namespace)  # noqa: S102 - our own docs
    namespace["test_reads_get_through_a_throttling_storm"](aggregator_env)
