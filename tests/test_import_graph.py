"""The package's import graph: imports point down the floors, and no module cycle exists.

Read from the source (every ``import``, including those under ``if TYPE_CHECKING:`` and
inside functions), so that a lazy import cannot hide a circle. ``docs/architecture.md``
describes the floors.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import data_aggregator

PACKAGE = Path(data_aggregator.__file__).parent

#: Floor of each top-level part; a module may import its own floor or lower ones.
FLOORS = {
    "_version": 0,
    "_lazy": 0,
    "_sizes": 0,
    "_deadline": 0,
    "exceptions": 0,
    "context": 0,
    "metrics": 0,
    "security": 0,
    "config": 0,
    "schemas": 1,
    "clients": 1,
    "bundle": 2,
    "idempotency": 2,
    "processor": 3,
    "cli": 4,
    "testing": 4,
    "__init__": 5,
    "__main__": 5,
}


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules() -> dict[str, Path]:
    return {_module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


def _imports(name: str, path: Path, known: set[str]) -> set[str]:
    """The package's modules that ``name`` imports (``from X import y`` counts ``X.y``
    when that is a module, else ``X``)."""
    is_package = path.name == "__init__.py"
    base = name if is_package else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                anchor = base.split(".")
                anchor = anchor[: len(anchor) - (node.level - 1)]
                module = ".".join([*anchor, *([node.module] if node.module else [])])
            else:
                module = node.module or ""
            for alias in node.names:
                candidate = f"{module}.{alias.name}"
                found.add(candidate if candidate in known else module)
    return {m for m in found if m in known and m != name}


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    known = set(modules)
    return {name: _imports(name, path, known) for name, path in modules.items()}


def _part(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


GRAPH = _graph()


def test_the_graph_is_read() -> None:
    """The walk finds the package's parts and their imports (a guard against checking nothing)."""
    assert "data_aggregator.processor" in GRAPH
    assert "data_aggregator.bundle" in GRAPH["data_aggregator.processor._processor"]


@pytest.mark.parametrize("module", sorted(GRAPH))
def test_imports_point_down(module: str) -> None:
    """A module imports only modules on its own floor or below."""
    floor = FLOORS[_part(module)]
    upward = sorted(dep for dep in GRAPH[module] if FLOORS[_part(dep)] > floor)
    assert upward == []


def test_no_module_imports_itself_back() -> None:
    """No cycle of imports between modules (Tarjan's strongly connected components)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for dep in sorted(GRAPH[node]):
            if dep not in index:
                visit(dep)
                low[node] = min(low[node], low[dep])
            elif dep in on_stack:
                low[node] = min(low[node], index[dep])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for node in sorted(GRAPH):
        if node not in index:
            visit(node)
    assert cycles == []
