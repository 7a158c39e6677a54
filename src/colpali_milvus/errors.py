"""The one exception tree of colpali-milvus.

Every error the library raises on purpose derives from :class:`ColPaliMilvusError`, so callers can
catch one type; the original cause (a pymilvus, pdf2image or transformers error) is always chained
as ``__cause__``::

    ColPaliMilvusError
    ├── InvalidInputError        (also ValueError)  bad argument: empty query, k <= 0, wrong dim, NaN
    │   └── FilterError                             a metadata filter that cannot be expressed safely
    ├── DocumentError                               a file that cannot be read or rendered
    ├── ModelError                                  a checkpoint that cannot be recognised or loaded
    ├── MissingDependencyError   (also ImportError) an optional extra is not installed
    │   └── BrokenDependencyError                  ...or is installed but fails to import
    └── StoreError                                  Milvus failed (pymilvus errors are translated here)
        ├── StoreConnectionError                    the server or Lite file cannot be reached/opened
        └── IndexMismatchError                      the collection was built with another model/dim/schema
"""

from __future__ import annotations

__all__ = [
    "BrokenDependencyError",
    "ColPaliMilvusError",
    "DocumentError",
    "FilterError",
    "IndexMismatchError",
    "InvalidInputError",
    "MissingDependencyError",
    "ModelError",
    "StoreConnectionError",
    "StoreError",
]


class ColPaliMilvusError(Exception):
    """Base class of every error raised by colpali-milvus."""


class InvalidInputError(ColPaliMilvusError, ValueError):
    """An argument is out of range or malformed (empty query, k <= 0, wrong dim, NaN vectors)."""


class FilterError(InvalidInputError):
    """A metadata filter uses an unknown operator, an unsafe key or an unsupported value type."""


class DocumentError(ColPaliMilvusError):
    """A PDF or image file cannot be read, decrypted or rendered."""


class ModelError(ColPaliMilvusError):
    """A checkpoint is not a supported multi-vector model, or failed to load."""


class MissingDependencyError(ColPaliMilvusError, ImportError):
    """An optional dependency (an extra) is needed for this feature but not installed.

    Its subclass :class:`BrokenDependencyError` says that the dependency *is* installed but fails
    to import; ``except MissingDependencyError`` catches both.
    """

    def __init__(self, package: str, extra: str, message: str | None = None) -> None:
        super().__init__(
            message
            or f'{package!r} is required for this feature; install it with `pip install "colpali-milvus[{extra}]"`'
        )
        self.package = package
        self.extra = extra


class BrokenDependencyError(MissingDependencyError):
    """An optional dependency is installed but fails to import (a build or version mismatch, a
    package it needs that is missing, a library that does not load).

    The message names the deepest cause of the failure (``cause``: the end of the exception chain
    that starts at ``__cause__``, the error the import raised) and its fix (``fix``), which is
    rarely "install the extra" again.
    """

    def __init__(self, package: str, extra: str, *, cause: BaseException, fix: str) -> None:
        first_line = next((line.strip() for line in str(cause).splitlines() if line.strip()), "")
        super().__init__(
            package,
            extra,
            f"{package!r} is installed but fails to import: {type(cause).__name__}: {first_line[:500]}. {fix}",
        )
        self.cause = cause
        self.fix = fix


class StoreError(ColPaliMilvusError):
    """Milvus rejected or failed an operation."""


class StoreConnectionError(StoreError):
    """The Milvus server is unreachable, or the Milvus Lite file cannot be opened."""


class IndexMismatchError(StoreError):
    """An existing collection was built with another model, vector dim or schema version."""
