"""Imports of optional dependencies, turned into one clear error when an extra is missing."""

from __future__ import annotations

import importlib
from types import ModuleType

from colpali_milvus.errors import MissingDependencyError


def require(module: str, *, extra: str, package: str | None = None) -> ModuleType:
    """Import ``module`` or raise :class:`MissingDependencyError` naming the extra to install."""
    try:
        return importlib.import_module(module)
    except ImportError as error:
        raise MissingDependencyError(package or module.split(".")[0], extra) from error
