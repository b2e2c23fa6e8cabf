"""Test a user's handler module: apply an environment, then import the module fresh.

A Lambda handler module builds its processor at import time
(``processor = LogBundler(get_config())``), from the environment and a cached
``get_config()``. A test must therefore set the environment, forget the cached
configuration, and import the module again, in that order; these two helpers do it.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import os
import sys
import uuid
from pathlib import Path
from typing import TYPE_CHECKING

from data_aggregator.config import get_config

if TYPE_CHECKING:
    from collections.abc import Iterator, Mapping
    from types import ModuleType

__all__ = ["import_handler", "use_environment"]

#: Removed while an environment is applied: a developer's profile must never be used.
_MASKED = ("AWS_PROFILE",)


@contextlib.contextmanager
def use_environment(environ: Mapping[str, str]) -> Iterator[None]:
    """Apply ``environ`` to ``os.environ`` and clear ``get_config()``'s cache, then undo both.

    ``AWS_PROFILE`` is removed for the duration, so that nothing reaches a real account.
    On exit every variable gets its previous value back (or is removed) and the cache is
    cleared again, so the next ``get_config()`` reads the restored environment.

    Args:
        environ: The variables to set, e.g. ``aggregator_env.environ`` from the pytest
            plugin (configuration, endpoint, region, fake credentials).
    """
    saved = {name: os.environ.get(name) for name in (*environ, *_MASKED)}
    try:
        for name in _MASKED:
            os.environ.pop(name, None)
        os.environ.update(environ)
        get_config.cache_clear()
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        get_config.cache_clear()


def import_handler(target: str | os.PathLike[str]) -> ModuleType:
    """Import a handler module afresh, so its module-level code runs again now.

    Call it after the environment is applied (``use_environment`` or the plugin's
    ``handler_env`` fixture): the module's ``get_config()`` then reads that environment.

    Args:
        target: A module name importable from ``sys.path`` (``"handler"``,
            ``"my_service.handler"``), re-imported even if already loaded; or the path
            of a ``.py`` file, loaded under a unique module name.

    Returns:
        The freshly executed module.

    Raises:
        ModuleNotFoundError: no such module or file.
    """
    if isinstance(target, str) and not target.endswith(".py"):
        for name in [n for n in sys.modules if n == target or n.startswith(f"{target}.")]:
            del sys.modules[name]
        importlib.invalidate_caches()
        return importlib.import_module(target)
    path = Path(target).resolve()
    if not path.is_file():
        msg = f"no handler module at {path}"
        raise ModuleNotFoundError(msg, path=str(path))
    name = f"{path.stem}_{uuid.uuid4().hex}"
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:  # pragma: no cover - a .py file always has one
        msg = f"cannot import {path}"
        raise ModuleNotFoundError(msg, path=str(path))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
