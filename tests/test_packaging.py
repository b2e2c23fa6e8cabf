"""Packaging: the distribution a user installs exposes the seed's public API."""

from __future__ import annotations

import importlib
import importlib.metadata
import os
import re
from pathlib import Path

import pytest

import data_aggregator

SEED_IMPORTS = [
    ("data_aggregator.schemas", "S3EventRecord"),
    ("data_aggregator.schemas", "S3EventNotificationRecord"),
    ("data_aggregator.exceptions", "S3TimeoutError"),
    ("data_aggregator.exceptions", "DataAggregatorError"),
    ("data_aggregator.config", "AppConfig"),
    ("data_aggregator.config", "get_config"),
    ("data_aggregator.security", "sanitize_s3_key"),
    ("data_aggregator.clients", "S3Client"),
    ("data_aggregator.idempotency", "make_idempotency_key"),
]


def test_version_comes_from_package_metadata() -> None:
    """__version__ is the installed distribution's version, not a second hard-coded copy."""
    assert data_aggregator.__version__ == importlib.metadata.version("s3-data-aggregator")


def test_py_typed_marker_ships() -> None:
    """The installed package carries py.typed so users' type checkers read our hints."""
    assert (Path(data_aggregator.__file__).parent / "py.typed").is_file()


@pytest.mark.parametrize(("module", "name"), SEED_IMPORTS)
def test_seed_import_paths(module: str, name: str) -> None:
    """Every import path named by the user's conventions gives the object that the seed
    module (or one of its private parts) defines under that name, not a copy or a shim."""
    found = getattr(importlib.import_module(module), name)
    assert found.__name__ == name
    assert found.__module__ == module or found.__module__.startswith(f"{module}._")
    assert getattr(importlib.import_module(found.__module__), name) is found


def test_all_is_sorted_and_resolvable() -> None:
    """The top-level __all__ is sorted and each name is the object of the module it names."""
    assert data_aggregator.__all__ == sorted(data_aggregator.__all__)
    table: dict[str, str] = data_aggregator._LAZY
    for name in data_aggregator.__all__:
        assert getattr(data_aggregator, name) is getattr(importlib.import_module(table[name]), name)


def test_unknown_attribute_raises_attribute_error() -> None:
    """A misspelt name fails like any module attribute, not with an ImportError."""
    with pytest.raises(AttributeError, match="no_such_name"):
        _ = data_aggregator.no_such_name


@pytest.mark.skipif(
    os.environ.get("DATA_AGGREGATOR_EXPECT_INSTALLED") != "1",
    reason="only CI installs the built wheel",
)
def test_ci_runs_against_the_installed_wheel() -> None:
    """In CI the package under test is the installed wheel, not the src/ tree."""
    assert "site-packages" in Path(data_aggregator.__file__).parts


#: An install hint or metadata lookup that names the wrong distribution: the public index's
#: ``data-aggregator`` is an unrelated project with the same import name.
_WRONG_DISTRIBUTION = re.compile(
    r"(?:pip install|uv add|uv pip install|poetry add)\s+(?:-{1,2}\S+\s+)*[\"']?"
    r"data-aggregator\b"
    r"|(?<![\w.-])data-aggregator(?:\[|[<>=!~]=|>|<)"
    r"|^data-aggregator\s*$"
    r"|(?:version|distribution|metadata)\(\s*[\"']data-aggregator[\"']"
)


def test_distribution_name_is_s3_data_aggregator() -> None:
    """The installed metadata names the distribution ``s3-data-aggregator``."""
    meta = importlib.metadata.metadata("s3-data-aggregator")
    assert meta["Name"] == "s3-data-aggregator"
    with pytest.raises(importlib.metadata.PackageNotFoundError):
        importlib.metadata.distribution("data-aggregator")  # the unrelated namesake


def _offenders(name: str, text: str) -> list[str]:
    return [
        f"{name}:{line_no}: {line.strip()}"
        for line_no, line in enumerate(text.splitlines(), 1)
        if _WRONG_DISTRIBUTION.search(line)
    ]


def test_no_string_in_the_package_names_the_wrong_distribution() -> None:
    """No install hint or metadata lookup in the installed package says ``data-aggregator``."""
    package = Path(data_aggregator.__file__).parent
    offenders = [
        offender
        for path in sorted(package.rglob("*.py"))
        for offender in _offenders(str(path.relative_to(package)), path.read_text("utf-8"))
    ]
    assert offenders == []


def test_the_long_description_names_the_right_distribution() -> None:
    """The README shipped in the metadata has no install hint for ``data-aggregator``."""
    description = importlib.metadata.metadata("s3-data-aggregator")["Description"] or ""
    if not description:  # the long description is METADATA's body, not a header
        dist = importlib.metadata.distribution("s3-data-aggregator")
        description = (dist.read_text("METADATA") or "").partition("\n\n")[2]
    assert "pip install s3-data-aggregator" in description
    assert _offenders("METADATA", description) == []


@pytest.mark.parametrize("folder", ["docs", "examples"])
def test_docs_and_examples_name_the_right_distribution(folder: str) -> None:
    """The pages and examples of a checkout say ``s3-data-aggregator`` where they mean it."""
    root = Path(__file__).resolve().parents[1] / folder
    if not root.is_dir():
        pytest.skip(f"{folder}/ is not in this tree (an sdist's tests, say)")
    offenders = [
        offender
        for path in sorted(root.rglob("*"))
        if path.suffix in {".md", ".py", ".txt", ".yaml", ".toml"}
        for offender in _offenders(str(path.relative_to(root)), path.read_text("utf-8"))
    ]
    assert offenders == []


@pytest.mark.parametrize(
    "line",
    [
        "pip install data-aggregator",
        "pip install -U 'data-aggregator'",
        "pip install 'data-aggregator[demo]'",
        'msg = "needs data-aggregator[zstd]"',
        'version("data-aggregator")',
        "uv add data-aggregator",
        "data-aggregator>=0.1",
    ],
)
def test_wrong_distribution_pattern_catches_old_hints(line: str) -> None:
    """The scan above recognises each form the old name took in install hints."""
    assert _WRONG_DISTRIBUTION.search(line)


@pytest.mark.parametrize(
    "line",
    [
        "pip install 's3-data-aggregator[demo]'",
        "`pip install s3-data-aggregator` installs the `data-aggregator` command",
        "data-aggregator demo --keep ./bundles",
        'PROG = "data-aggregator"',
    ],
)
def test_wrong_distribution_pattern_spares_the_command_name(line: str) -> None:
    """The command is still called ``data-aggregator``; only distribution names are flagged."""
    assert not _WRONG_DISTRIBUTION.search(line)
