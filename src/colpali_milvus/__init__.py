"""colpali-milvus: find the right PDF page by how it looks.

Pages are rendered to images and embedded by a ColPali-family model into multi-vectors, stored
flattened in Milvus (Lite, server or Zilliz Cloud), gathered by ANN and reranked by exact MaxSim.

``import colpali_milvus`` is cheap: torch, colpali-engine and pymilvus load only when the classes
that need them are first used.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from colpali_milvus.embed.protocol import MultiVectorEmbedder
from colpali_milvus.errors import (
    BrokenDependencyError,
    ColPaliMilvusError,
    DocumentError,
    FilterError,
    IndexMismatchError,
    InvalidInputError,
    MissingDependencyError,
    ModelError,
    StoreConnectionError,
    StoreError,
)
from colpali_milvus.search.maxsim import maxsim
from colpali_milvus.types import IngestReport, Page, PageHit, SkippedFile

if TYPE_CHECKING:
    from colpali_milvus.collection import PageCollection
    from colpali_milvus.embed.colpali import DEFAULT_MODEL, ColPaliEmbedder
    from colpali_milvus.index import ColPaliIndex
    from colpali_milvus.store.milvus import MilvusMultiVectorStore
    from colpali_milvus.store.schema import IndexConfig
    from colpali_milvus.transfer import CopyReport, copy_collection

__version__ = "0.1.0"

__all__ = [
    "BrokenDependencyError",
    "ColPaliEmbedder",
    "ColPaliIndex",
    "ColPaliMilvusError",
    "CopyReport",
    "DEFAULT_MODEL",
    "DocumentError",
    "FilterError",
    "IndexConfig",
    "IndexMismatchError",
    "IngestReport",
    "InvalidInputError",
    "MilvusMultiVectorStore",
    "MissingDependencyError",
    "ModelError",
    "MultiVectorEmbedder",
    "Page",
    "PageCollection",
    "PageHit",
    "SkippedFile",
    "StoreConnectionError",
    "StoreError",
    "__version__",
    "copy_collection",
    "maxsim",
]

# Public names whose modules import pymilvus (or, later, torch): loaded on first access.
_LAZY = {
    "ColPaliEmbedder": "colpali_milvus.embed.colpali",
    "DEFAULT_MODEL": "colpali_milvus.embed.colpali",
    "ColPaliIndex": "colpali_milvus.index",
    "PageCollection": "colpali_milvus.collection",
    "MilvusMultiVectorStore": "colpali_milvus.store.milvus",
    "IndexConfig": "colpali_milvus.store.schema",
    "CopyReport": "colpali_milvus.transfer",
    "copy_collection": "colpali_milvus.transfer",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'colpali_milvus' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
