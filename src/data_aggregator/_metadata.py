"""What the installed distribution says about itself (private)."""

from __future__ import annotations

__all__ = ["DISTRIBUTION", "read_version"]

#: The distribution users install; the import name is ``data_aggregator``.
DISTRIBUTION = "s3-data-aggregator"


def read_version() -> str:
    """The installed distribution's version (``0.0.0+unknown`` from a bare source tree)."""
    # importlib.metadata costs ~35 ms to import: only pay it when the version is asked for.
    from importlib.metadata import PackageNotFoundError, version  # noqa: PLC0415

    try:
        return version(DISTRIBUTION)
    except PackageNotFoundError:  # pragma: no cover - only when run from a bare source tree
        return "0.0.0+unknown"
