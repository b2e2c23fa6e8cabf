"""``import data_aggregator`` stays cheap: public names resolve lazily, optional parts stay out.

Each check runs in a fresh interpreter, since this test process has imported everything.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

import data_aggregator

#: Never loaded by importing the package or the processor: optional or command-line parts.
OPTIONAL = (
    "zstandard",
    "moto",
    "data_aggregator.cli",
    "data_aggregator.cli._demo",
    "data_aggregator.idempotency._dynamodb",
    "data_aggregator.testing",
)


def loaded_after(statement: str) -> set[str]:
    """The modules a fresh interpreter has loaded after running ``statement``."""
    code = f"{statement}\nimport json, sys\nprint(json.dumps(sorted(sys.modules)))"
    done = subprocess.run(  # noqa: S603 - our own interpreter
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    )
    return set(json.loads(done.stdout.splitlines()[-1]))


def test_bare_import_loads_neither_pydantic_nor_boto3() -> None:
    """``import data_aggregator`` loads only the exceptions: no pydantic, boto3 or metadata."""
    loaded = loaded_after("import data_aggregator")
    heavy = {"pydantic", "boto3", "botocore", "importlib.metadata", *OPTIONAL}
    assert not heavy & loaded


@pytest.mark.parametrize(
    "statement",
    ["from data_aggregator import ReusableProcessor", "import data_aggregator.processor"],
)
def test_handler_import_leaves_optional_parts_out(statement: str) -> None:
    """The handler's import loads no zstd, moto, CLI, DynamoDB store or testing helpers."""
    assert not set(OPTIONAL) & loaded_after(statement)


def test_lazy_names_are_the_modules_own_objects() -> None:
    """A lazily re-exported name is the very object its module defines."""
    import data_aggregator.context
    import data_aggregator.processor

    assert data_aggregator.ReusableProcessor is data_aggregator.processor.ReusableProcessor
    assert data_aggregator.LocalContext is data_aggregator.context.LocalContext
    assert "ReusableProcessor" in dir(data_aggregator)


def test_type_checking_block_matches_the_lazy_table() -> None:
    """Type checkers see every lazy name, re-exported explicitly from the module ``_LAZY``
    loads it from, and nothing else; ``__all__`` is the lazy table's names."""
    source = Path(data_aggregator.__file__).read_text(encoding="utf-8")
    tree = ast.parse(source)
    block = next(
        node
        for node in tree.body
        if isinstance(node, ast.If)
        and isinstance(node.test, ast.Name)
        and node.test.id == "TYPE_CHECKING"
    )
    typed = {
        alias.name: (node.module, alias.asname)
        for node in block.body
        if isinstance(node, ast.ImportFrom)
        for alias in node.names
    }
    assert typed == {name: (module, name) for name, module in data_aggregator._LAZY.items()}
    assert data_aggregator.__all__ == list(data_aggregator._LAZY)
    assert not [node for node in tree.body if isinstance(node, ast.Import)]
    eager = {node.module for node in tree.body if isinstance(node, ast.ImportFrom)}
    assert eager == {"__future__", "typing", "data_aggregator"}  # _lazy; names load lazily


#: What a Lambda's module-level construction and first invocation never need.
NOT_FOR_THE_FIRST_CALL = (
    *(name for name in OPTIONAL if name != "data_aggregator.idempotency._dynamodb"),
    "argparse",  # create-table's parser
    "data_aggregator.bundle._reader",  # verification, inspection, crash recovery
    "data_aggregator.idempotency._memory",  # tests and local runs
)


def test_a_handler_module_builds_no_pydantic_validator_and_loads_only_what_it_uses() -> None:
    """The docs' handler module (``Bundler(get_config())`` at module level, default
    DynamoDB store and S3 client) loads none of the parts the first invocation does not
    use, builds neither AppConfig's nor the event models' pydantic validator, and makes
    its two boto3 clients from one session."""
    code = """
import os
os.environ.update(
    DISTRIBUTION_BUCKET_NAME="dest", IDEMPOTENCY_TABLE_NAME="table",
    AWS_DEFAULT_REGION="us-east-1", AWS_ACCESS_KEY_ID="x", AWS_SECRET_ACCESS_KEY="y",
)
from data_aggregator import ReusableProcessor, get_config

class Bundler(ReusableProcessor):
    pass

processor = Bundler(get_config())
from data_aggregator.config import AppConfig
from data_aggregator.schemas import S3EventNotificationRecord
from data_aggregator.schemas import parse_event
import json
record = {
    "eventVersion": "2.1", "eventSource": "aws:s3", "awsRegion": "us-east-1",
    "eventTime": "2024-01-01T00:00:00.000Z", "eventName": "ObjectCreated:Put",
    "s3": {"bucket": {"name": "src"}, "object": {"key": "a+b.txt", "size": 3}},
}
message = {
    "messageId": "m1", "receiptHandle": "h", "eventSource": "aws:sqs",
    "body": json.dumps({"Records": [record]}), "attributes": {}, "messageAttributes": {},
    "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:q", "awsRegion": "us-east-1",
}
parsed = parse_event({"Records": [message]})
assert parsed[0].records[0].s3.object.original_key == "a b.txt"
built = [AppConfig.__pydantic_complete__, S3EventNotificationRecord.__pydantic_complete__]
s3_loader = processor.s3._client._loader
store_loader = processor.store.client._loader
print(repr(built + [s3_loader is store_loader]))
"""
    done = subprocess.run(  # noqa: S603 - our own interpreter
        [sys.executable, "-c", code + "\nimport json, sys\nprint(json.dumps(sorted(sys.modules)))"],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    flags, modules = done.stdout.splitlines()[-2:]
    assert flags == "[False, False, True]"
    assert not set(NOT_FOR_THE_FIRST_CALL) & set(json.loads(modules))
