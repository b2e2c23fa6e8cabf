"""Each public module's ``__all__`` is sorted and names exactly what the module defines.

Modelled on httpx's ``tests/test_exported_members.py``. "Defines" is read from the module's
source: top-level functions, classes and assignments with public names (a module's
``logger`` aside), names imported from private implementation modules, everything a
package's ``__init__`` imports (it is a face), and the names a lazy face loads on first
use. Names a plain module imports from another public module are that module's, and names
under ``if TYPE_CHECKING:`` exist only for type checkers.
"""

from __future__ import annotations

import ast
import importlib
import pkgutil
from pathlib import Path

import pytest

import data_aggregator


def _public_modules() -> list[str]:
    """Every module of the package whose dotted path has no private part."""
    found = ["data_aggregator"]
    for info in pkgutil.walk_packages(data_aggregator.__path__, "data_aggregator."):
        if not any(part.startswith("_") for part in info.name.split(".")):
            found.append(info.name)
    return sorted(found)


def _is_reexport_source(module: str | None, level: int, *, package: bool) -> bool:
    """True where an import re-exports: from a private module, or into a package's face.

    A package ``__init__`` is a face: it re-exports names from anywhere in the library. A
    plain module re-exports only what it takes from private implementation modules.
    """
    if module is None:  # "from . import x"
        return False
    parts = module.split(".")
    if level == 0 and parts[0] != "data_aggregator":
        return False  # the standard library or a third party
    return package or any(part.startswith("_") for part in parts)


def _is_logger(node: ast.stmt) -> bool:
    """``logger = logging.getLogger(...)``: a module's logger is not part of its API."""
    value = getattr(node, "value", None)
    return (
        isinstance(value, ast.Call)
        and isinstance(value.func, (ast.Attribute, ast.Name))
        and getattr(value.func, "attr", getattr(value.func, "id", "")) == "getLogger"
    )


def _is_type_checking_block(node: ast.stmt) -> bool:
    return isinstance(node, ast.If) and (
        (isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING")
        or (isinstance(node.test, ast.Attribute) and node.test.attr == "TYPE_CHECKING")
    )


def _targets(node: ast.stmt) -> list[str]:
    if isinstance(node, ast.Assign):
        return [t.id for t in node.targets if isinstance(t, ast.Name)]
    if isinstance(node, (ast.AnnAssign, ast.AugAssign)) and isinstance(node.target, ast.Name):
        return [node.target.id]
    return []


def _lazy_names(node: ast.stmt) -> list[str]:
    """The keys of a ``_LAZY = {...}`` table (names a PEP 562 face loads on demand)."""
    if _targets(node) == ["_LAZY"]:
        value = node.value if isinstance(node, (ast.Assign, ast.AnnAssign)) else None
        if isinstance(value, ast.Dict):
            return [
                k.value
                for k in value.keys
                if isinstance(k, ast.Constant) and isinstance(k.value, str)
            ]
    return []


def defined_names(module_name: str) -> set[str]:
    """The public names ``module_name`` defines, read from its source."""
    module = importlib.import_module(module_name)
    assert module.__file__ is not None
    path = Path(module.__file__)
    package = path.name == "__init__.py"
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names: set[str] = set()
    for node in tree.body:
        if _is_type_checking_block(node):
            continue
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, ast.ImportFrom) and _is_reexport_source(
            node.module, node.level, package=package
        ):
            names.update(alias.asname or alias.name for alias in node.names)
        if not _is_logger(node):
            names.update(_targets(node))
        names.update(_lazy_names(node))
    names.discard("__all__")
    # A pytest plugin's hooks are module-level functions pytest finds by name, not API.
    names = {n for n in names if not n.startswith("pytest_")}
    if "__getattr__" in names and module_name == "data_aggregator":
        names.add("__version__")  # served by the lazy face
    return {n for n in names if not n.startswith("_") or n == "__version__"}


PUBLIC_MODULES = _public_modules()


def isort_order(name: str) -> tuple[int, str]:
    """ruff's RUF022 order: CONSTANTS, then Classes, then everything else, each by code point."""
    group = 0 if name.isupper() and len(name) > 1 else 1 if name[0].isupper() else 2
    return group, name


def test_the_public_modules_are_found() -> None:
    """The walk sees the seed's public modules (a guard against testing nothing)."""
    for seed in ("schemas", "exceptions", "config", "clients", "security", "idempotency"):
        assert f"data_aggregator.{seed}" in PUBLIC_MODULES


@pytest.mark.parametrize("module_name", PUBLIC_MODULES)
def test_all_is_sorted_and_equals_the_defined_names(module_name: str) -> None:
    """``__all__`` is sorted, every name in it resolves, and it lists what the module defines."""
    module = importlib.import_module(module_name)
    exported = list(getattr(module, "__all__", []))
    assert exported == sorted(exported, key=isort_order)
    assert sorted(defined_names(module_name), key=isort_order) == exported
    for name in exported:
        getattr(module, name)
