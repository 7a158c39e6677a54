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
    └── StoreError                                  Milvus failed (pymilvus errors are translated here)
        ├── StoreConnectionError                    the server or Lite file cannot be reached/opened
        └── IndexMismatchError                      the collection was built with another model/dim/schema
"""

from __future__ import annotations

__all__ = [
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
    """An optional dependency (an extra) is needed for this feature but not installed."""

    def __init__(self, package: str, extra: str) -> None:
        super().__init__(
            f'{package!r} is required for this feature; install it with `pip install "colpali-milvus[{extra}]"`'
        )
        self.package = package
        self.extra = extra


class StoreError(ColPaliMilvusError):
    """Milvus rejected or failed an operation."""


class StoreConnectionError(StoreError):
    """The Milvus server is unreachable, or the Milvus Lite file cannot be opened."""


class IndexMismatchError(StoreError):
    """An existing collection was built with another model, vector dim or schema version."""
