"""``examples/backfill.yaml`` agrees with the library: the error names its Retry matches,
the BatchInput field the Map envelope reads, and the handler it deploys.

(cfn-lint checks the template's CloudFormation and the state machine's structure in CI.)
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml  # type: ignore[import-untyped]  # no stubs; cfn-lint and mkdocs bring it

from data_aggregator.exceptions import MapBatchFailedError, MapBatchRefusedError
from data_aggregator.schemas import MAP_BUCKET_FIELD

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def _any_tag(loader: Any, _suffix: str, node: Any) -> Any:
    if isinstance(node, yaml.ScalarNode):
        return loader.construct_scalar(node)
    if isinstance(node, yaml.SequenceNode):
        return loader.construct_sequence(node)
    return loader.construct_mapping(node)


#: YAML with CloudFormation's short tags (``!Ref``, ``!Sub`` ...) read as plain values.
_CfnLoader: Any = type("_CfnLoader", (yaml.SafeLoader,), {})
_CfnLoader.add_multi_constructor("!", _any_tag)


def _template() -> dict[str, Any]:
    text = (EXAMPLES / "backfill.yaml").read_text(encoding="utf-8")
    loaded = yaml.load(text, Loader=_CfnLoader)  # noqa: S506 - a SafeLoader subclass
    assert isinstance(loaded, dict)
    return loaded


def _map_state() -> dict[str, Any]:
    definition = _template()["Resources"]["BackfillStateMachine"]["Properties"]["Definition"]
    state = definition["States"][definition["StartAt"]]
    assert state["Type"] == "Map"
    return dict(state)


def test_the_map_reads_a_listing_in_batches_with_the_bucket_in_batch_input() -> None:
    """ListObjectsV2 items, batched, with the source bucket where the envelope looks."""
    state = _map_state()
    assert state["ItemReader"]["Resource"] == "arn:aws:states:::s3:listObjectsV2"
    batcher = state["ItemBatcher"]
    assert batcher["BatchInput"] == {MAP_BUCKET_FIELD: "${SourceBucket}"}
    assert batcher["MaxInputBytesPerBatch"] <= 256 * 1024
    assert state["ItemProcessor"]["ProcessorConfig"]["Mode"] == "DISTRIBUTED"
    assert 0 < state["ToleratedFailurePercentage"] < 100
    assert "ResultWriter" in state


def test_the_retry_names_the_retryable_error_and_not_the_refused_one() -> None:
    """Step Functions matches the exception's class name: the Retry names
    MapBatchFailedError, and leaves MapBatchRefusedError (and States.ALL) out."""
    processor = _map_state()["ItemProcessor"]
    task = processor["States"][processor["StartAt"]]
    retried = [name for retrier in task["Retry"] for name in retrier["ErrorEquals"]]
    assert MapBatchFailedError.__name__ in retried
    assert MapBatchRefusedError.__name__ not in retried
    assert "States.ALL" not in retried
    assert task["Parameters"]["Payload.$"] == "$"  # the batch itself is the event


def test_the_function_is_the_example_handler() -> None:
    """The backfill deploys ``handler.py``, the live stack's function."""
    function = _template()["Resources"]["BackfillFunction"]["Properties"]
    module, _, name = function["Handler"].partition(".")
    assert (EXAMPLES / f"{module}.py").is_file()
    assert f"def {name}(" in (EXAMPLES / f"{module}.py").read_text(encoding="utf-8")
