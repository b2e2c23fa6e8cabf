"""PEP 562 lazy attributes for the package faces (private).

A face lists its public names in a table, name -> module; `lazy_attributes` makes the
face's ``__getattr__`` and ``__dir__`` from it, so that a name is imported on first access
only (a cheap ``import data_aggregator`` on a Lambda cold start, no boto3 until a
DynamoDB store is asked for).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping, MutableMapping

__all__ = ["lazy_attributes"]


def lazy_attributes(
    namespace: MutableMapping[str, Any], table: Mapping[str, str]
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """The ``__getattr__`` and ``__dir__`` of a face whose ``globals()`` is ``namespace``.

    ``__getattr__(name)`` imports ``table[name]``, keeps the attribute in ``namespace`` (so
    the next access is an ordinary lookup) and returns it; a name not in ``table`` raises
    ``AttributeError`` like any module. ``__dir__()`` lists ``namespace`` and ``table``.
    """
    face = namespace["__name__"]

    def __getattr__(name: str) -> Any:  # noqa: N807 - a module's __getattr__
        module_name = table.get(name)
        if module_name is None:
            msg = f"module {face!r} has no attribute {name!r}"
            raise AttributeError(msg)
        import importlib  # noqa: PLC0415 - deferred: keeps the cold-start import small

        value = getattr(importlib.import_module(module_name), name)
        namespace[name] = value
        return value

    def __dir__() -> list[str]:  # noqa: N807 - a module's __dir__
        return sorted(set(namespace) | set(table))

    return __getattr__, __dir__
