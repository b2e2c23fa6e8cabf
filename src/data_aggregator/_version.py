"""``data_aggregator.__version__``: the installed distribution's version (private).

A module of its own so that the package face loads it like any other lazy name:
``importlib.metadata`` costs about 35 ms to import, paid only when the version is asked for.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

__all__ = ["__version__"]

try:
    __version__ = version("s3-data-aggregator")
except PackageNotFoundError:  # pragma: no cover - only when run from a bare source tree
    __version__ = "0.0.0+unknown"
