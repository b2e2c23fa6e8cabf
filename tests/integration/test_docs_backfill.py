"""The sample of ``docs/backfill-step-functions.md``, run as the page shows it."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest

from tests.docs_support import python_block_containing

if TYPE_CHECKING:
    from data_aggregator.testing.pytest_plugin import AggregatorEnv

PAGE = "docs/backfill-step-functions.md"
PLACEHOLDER = '"my-landing-bucket"'

pytestmark = pytest.mark.integration


def test_the_page_sample_bundles_a_map_batch_once(
    handler_env: AggregatorEnv, capsys: pytest.CaptureFixture[str]
) -> None:
    """The sample's Map batch, built from a listing, bundles the prefix's objects; the same
    batch again bundles nothing, as its comments say."""
    sample = python_block_containing(PAGE, '"BatchInput"')
    assert sample.count(PLACEHOLDER) == 1
    for name in ("a.log", "b c.log", "d+e.log"):
        handler_env.s3.put_object(
            Bucket=handler_env.source_bucket, Key=f"logs/{name}", Body=name.encode()
        )
    handler_env.s3.put_object(Bucket=handler_env.source_bucket, Key="other.log", Body=b"no")
    namespace: dict[str, Any] = {}

    exec(  # noqa: S102 - the documentation's own sample
        sample.replace(PLACEHOLDER, repr(handler_env.source_bucket)), namespace
    )

    first, again = namespace["first"], namespace["again"]
    assert (first["items"], first["bundled"], first["duplicates"]) == (3, 3, 0)
    assert (again["items"], again["bundled"], again["duplicates"]) == (3, 0, 3)
    assert first["batchItemFailures"] == again["batchItemFailures"] == []
    bundles = handler_env.s3.list_objects_v2(Bucket=handler_env.destination_bucket)
    assert [entry["Key"] for entry in bundles["Contents"]] == first["bundles"]
    printed = [line for line in capsys.readouterr().out.splitlines() if "batchItemFailures" in line]
    assert printed == [str(first), str(again)]
