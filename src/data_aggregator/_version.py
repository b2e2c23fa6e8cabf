"""``data_aggregator.__version__``: the installed distribution's version (private).

A module of its own so that the package face loads it like any other lazy name:
``importlib.metadata`` costs about 35 ms to import, paid only when the version is asked for.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

__all__ = ["DISTRIBUTION", "__version__"]

#: The distribution users install; the import name is ``data_aggregator``. The unrelated
#: ``data-aggregator`` distribution on the package index uses the same import name.
DISTRIBUTION = "s3-data-aggregator"

try:
    __version__ = version(DISTRIBUTION)
except PackageNotFoundError:  # pragma: no cover - only when run from a bare source tree
    __version__ = "0.0.0+unknown"
