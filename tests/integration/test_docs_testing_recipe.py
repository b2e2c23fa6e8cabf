"""The handler-testing recipe of ``docs/testing.md``, run verbatim in a project of its own."""

from __future__ import annotations

import os
import subprocess
import sys
from typing import TYPE_CHECKING

import pytest

from data_aggregator.testing.pytest_plugin import BACKEND_ENV
from tests.docs_support import python_block_containing, titled_blocks

if TYPE_CHECKING:
    from pathlib import Path

#: The recipe's project runs on the plugin's default backend, moto, as a user's fresh
#: project does (its subprocess gets neither the backend option nor `BACKEND_ENV`): the
#: real-servers pass would repeat the moto pass exactly, a mypy run included.
pytestmark = pytest.mark.moto_only(reason="the recipe's project runs moto of its own")

PAGE = "docs/testing.md"
RECIPE_FILES = ("handler.py", "conftest.py", "tests/test_handler.py")


def _write_project(root: Path) -> None:
    blocks = titled_blocks(PAGE)
    for name in RECIPE_FILES:
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(blocks[name], encoding="utf-8")


def _run(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "PYTEST_"))}
    env.pop("PYTHONPATH", None)
    env.pop(BACKEND_ENV, None)
    return subprocess.run(  # noqa: S603 - our own interpreter
        [sys.executable, *args], cwd=cwd, env=env, capture_output=True, text=True, check=False
    )


def test_the_recipe_names_its_three_files() -> None:
    """The page carries exactly the recipe's files as titled blocks."""
    assert set(titled_blocks(PAGE)) == set(RECIPE_FILES)


def test_the_recipe_handler_is_the_readme_handler() -> None:
    """The handler the recipe tests is, line for line, the one the README shows."""
    readme = python_block_containing("README.md", "def handler(")
    assert titled_blocks(PAGE)["handler.py"] == readme


@pytest.mark.integration
def test_the_recipe_passes_in_a_fresh_project(tmp_path: Path) -> None:
    """Copied into an empty project, the recipe's test passes on the first run."""
    _write_project(tmp_path)
    done = _run(["-m", "pytest", "-q", "-p", "no:cacheprovider"], tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "1 passed" in done.stdout


@pytest.mark.integration
def test_the_recipe_fails_when_the_handler_misbehaves(tmp_path: Path) -> None:
    """The recipe's test is not vacuous: a handler that bundles nothing makes it fail."""
    _write_project(tmp_path)
    handler = tmp_path / "handler.py"
    handler.write_text(
        handler.read_text().replace('.endswith(".log")', '.endswith(".nothing")'),
        encoding="utf-8",
    )
    done = _run(["-m", "pytest", "-q", "-p", "no:cacheprovider"], tmp_path)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "1 failed" in done.stdout


@pytest.mark.slow
def test_the_recipe_type_checks_strictly(tmp_path: Path) -> None:
    """The recipe's three files pass ``mypy --strict`` as a user would run it."""
    _write_project(tmp_path)
    done = _run(
        ["-m", "mypy", "--strict", "--cache-dir", str(tmp_path / ".mypy"), *RECIPE_FILES],
        tmp_path,
    )
    assert done.returncode == 0, done.stdout + done.stderr
