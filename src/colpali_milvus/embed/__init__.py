"""Embedders: the two-method protocol, the family registry, the colpali-engine embedder and a lazy one.

Importing this package is cheap; torch and colpali-engine load only when a
:class:`ColPaliEmbedder` is created.
"""

from colpali_milvus.embed.colpali import DEFAULT_MODEL, ColPaliEmbedder
from colpali_milvus.embed.lazy import LazyEmbedder
from colpali_milvus.embed.protocol import MultiVectorEmbedder, embedder_name
from colpali_milvus.embed.registry import FAMILIES, ModelFamily, resolve_family

__all__ = [
    "DEFAULT_MODEL",
    "FAMILIES",
    "ColPaliEmbedder",
    "LazyEmbedder",
    "ModelFamily",
    "MultiVectorEmbedder",
    "embedder_name",
    "resolve_family",
]
