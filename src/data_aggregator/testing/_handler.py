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

from data_aggregator.config import ENVIRONMENT_VARIABLES, get_config

if TYPE_CHECKING:
    from collections.abc import Iterator, Mapping
    from types import ModuleType

__all__ = ["import_handler", "use_environment"]

#: Removed while an environment is applied, unless it sets them: a developer's profile,
#: endpoints and AWS configuration files must never reach the code under test, nor must
#: any library setting left in the shell.
_MASKED = (
    "AWS_PROFILE",
    "AWS_ENDPOINT_URL",
    "AWS_ENDPOINT_URL_S3",
    "AWS_ENDPOINT_URL_DYNAMODB",
    "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS",
    *ENVIRONMENT_VARIABLES,
)
#: Set while an environment is applied, unless it sets them: no AWS configuration or
#: credentials file of the developer's is read.
_ISOLATED = {"AWS_CONFIG_FILE": os.devnull, "AWS_SHARED_CREDENTIALS_FILE": os.devnull}


@contextlib.contextmanager
def use_environment(environ: Mapping[str, str]) -> Iterator[None]:
    """Apply ``environ`` to ``os.environ`` and clear ``get_config()``'s cache, then undo both.

    For the duration, every library setting ``environ`` does not name is unset, and so are
    ``AWS_PROFILE`` and the ``AWS_ENDPOINT_URL*`` variables; ``AWS_CONFIG_FILE`` and
    ``AWS_SHARED_CREDENTIALS_FILE`` point at an empty file: the code under test sees
    ``environ`` and nothing of the developer's shell or AWS configuration.
    On exit (also when the body raises) every variable gets its previous value back (or
    is removed) and the cache is cleared again, so the next ``get_config()`` reads the
    restored environment.

    Args:
        environ: The variables to set, e.g. ``aggregator_env.environ`` from the pytest
            plugin (configuration, endpoint, region, fake credentials).
    """
    saved = {name: os.environ.get(name) for name in (*environ, *_MASKED, *_ISOLATED)}
    try:
        for name in _MASKED:
            os.environ.pop(name, None)
        os.environ.update(_ISOLATED)
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
            ``"my_service.handler"``), re-imported even if already loaded, together with
            every other module of its top-level package (``my_service`` and all its
            submodules), so no module of the package keeps state built under an earlier
            environment; or the path of a ``.py`` file, loaded under a unique module name.

    Returns:
        The freshly executed module.

    Raises:
        ModuleNotFoundError: no such module or file.
    """
    if isinstance(target, str) and not target.endswith(".py"):
        package = target.partition(".")[0]
        for name in [n for n in sys.modules if n == package or n.startswith(f"{package}.")]:
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
    # Registered before it runs, as the import system does (dataclasses and pickle look
    # the module up by name); forgotten again if running it fails.
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[name]
        raise
    return module
