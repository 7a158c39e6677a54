"""Imports of optional dependencies, turned into one clear error that names the cause and the fix.

Two different failures hide behind an ``ImportError``, and they need different fixes:

- **not installed**: the module, or a package above it, is absent (a ``ModuleNotFoundError`` naming
  it): install the extra;
- **installed but broken**: importing it raises anything else: a module *it* needs is missing, a
  version or build mismatch (the classic one is a torchvision built for another torch:
  ``RuntimeError: operator torchvision::nms does not exist``), a shared library that does not load.
  Telling the user to install the extra would only repeat what they did; the message names the
  deepest cause instead (following ``__cause__``/``__context__``, since libraries such as
  transformers re-raise import failures as their own errors) and the fix for it.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import re
from types import ModuleType, TracebackType

from colpali_milvus.errors import BrokenDependencyError, MissingDependencyError

__all__ = ["require"]

# A torchvision whose compiled operators do not load into the installed torch.
_TORCHVISION_OPERATOR = re.compile(r"torchvision::\w+")


def require(module: str, *, extra: str, package: str | None = None) -> ModuleType:
    """Import ``module``, or raise an error that tells "not installed" from "installed but broken".

    Raises:
        MissingDependencyError: ``module`` (or a package above it) is not installed; the message
            names the extra to install.
        BrokenDependencyError: it is installed but importing it fails; the message names the
            deepest cause and how to fix it. A subclass of :class:`MissingDependencyError`, so
            one ``except`` catches both.
    """
    name = package or module.split(".")[0]
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as error:
        if _names_module_or_parent(error.name, module):
            raise MissingDependencyError(name, extra) from error
        raise _broken(name, extra, error) from error
    except Exception as error:  # RuntimeError, OSError, ImportError, AttributeError...: installed, but broken
        raise _broken(name, extra, error) from error


def _names_module_or_parent(missing: str | None, module: str) -> bool:
    """Whether a ``ModuleNotFoundError`` for ``missing`` means ``module`` itself is absent."""
    return missing is not None and (module == missing or module.startswith(missing + "."))


def _broken(package: str, extra: str, error: BaseException) -> BrokenDependencyError:
    cause = root_cause(error)
    return BrokenDependencyError(package, extra, cause=cause, fix=_fix(extra, cause))


def root_cause(error: BaseException) -> BaseException:
    """The deepest exception in the chain: explicit causes first, else the implicit context."""
    seen = {id(error)}
    while True:
        following = error.__cause__
        if following is None and not error.__suppress_context__:
            following = error.__context__
        if following is None or id(following) in seen:
            return error
        seen.add(id(following))
        error = following


def _fix(extra: str, cause: BaseException) -> str:
    if _is_torchvision_mismatch(cause):
        return _torchvision_fix()
    if isinstance(cause, ModuleNotFoundError) and cause.name:
        return (
            f"Fix: the module {cause.name!r} it needs is not installed; install the extra with its requirements: "
            f'`pip install "colpali-milvus[{extra}]"` (an install with `--no-deps` skips them).'
        )
    return (
        "Fix: usually a version or build mismatch between it and a package it needs; `pip check` lists "
        f'version conflicts, and `pip install --upgrade "colpali-milvus[{extra}]"` reinstalls a matching set. '
        "The chained traceback shows where the import fails."
    )


def _is_torchvision_mismatch(cause: BaseException) -> bool:
    if isinstance(cause, ModuleNotFoundError):
        return False
    if _TORCHVISION_OPERATOR.search(str(cause)):
        return True
    return isinstance(cause, (RuntimeError, OSError)) and any(
        str(frame.tb_frame.f_globals.get("__name__", "")).split(".")[0] == "torchvision"
        for frame in _frames(cause.__traceback__)
    )


def _frames(traceback: TracebackType | None) -> list[TracebackType]:
    frames = []
    while traceback is not None:
        frames.append(traceback)
        traceback = traceback.tb_next
    return frames


def _torchvision_fix() -> str:
    torch, torchvision = _installed("torch"), _installed("torchvision")
    wanted = _torch_pin_of_torchvision()
    found = f"torch {torch} and torchvision {torchvision}" if torch and torchvision else "torch and torchvision"
    built_for = f"torch=={wanted} from the same index" if wanted else "the torch build it was compiled against"
    pair = f'"torch==={wanted}" "torchvision=={torchvision}"' if wanted and torchvision else '"torch" "torchvision"'
    return (
        f"Fix: {found} are builds that do not match: torchvision's compiled operators load only into "
        f"{built_for}. Install a matching pair from one source, e.g. `pip install {pair}` (PyPI's builds; "
        "`===` refuses a local `+cpu` build), or CPU builds of both from https://download.pytorch.org/whl/cpu; "
        "in a checkout, `bash scripts/install-dev.sh` installs a matching pair."
    )


def _installed(distribution: str) -> str | None:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return None


def _torch_pin_of_torchvision() -> str | None:
    """The exact torch release the installed torchvision declares (``torch==2.13.0``), if any."""
    try:
        requirements = importlib.metadata.requires("torchvision") or []
    except importlib.metadata.PackageNotFoundError:
        return None
    for requirement in requirements:
        # "torch==2.13.0" or, in older metadata, "torch (==2.13.0)"
        match = re.fullmatch(r"torch\s*\(?\s*==\s*([\w.+!-]+)\s*\)?\s*", requirement.split(";")[0])
        if match:
            return match.group(1)
    return None
