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
