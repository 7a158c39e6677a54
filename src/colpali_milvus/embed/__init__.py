"""Embedders: the two-method protocol, the family registry and the colpali-engine embedder.

Importing this package is cheap; torch and colpali-engine load only when a
:class:`ColPaliEmbedder` is created.
"""

from colpali_milvus.embed.colpali import DEFAULT_MODEL, ColPaliEmbedder
from colpali_milvus.embed.protocol import MultiVectorEmbedder, embedder_name
from colpali_milvus.embed.registry import FAMILIES, ModelFamily, resolve_family

__all__ = [
    "DEFAULT_MODEL",
    "FAMILIES",
    "ColPaliEmbedder",
    "ModelFamily",
    "MultiVectorEmbedder",
    "embedder_name",
    "resolve_family",
]
