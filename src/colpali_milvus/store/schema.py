"""The two collections behind one store, described as data.

``<name>_vectors`` holds one row per page vector (the flattened multi-vector of the Milvus ColPali
tutorial): page id, position and vector, nothing else. ``<name>_pages`` holds one row per page: its
metadata, text, vector count and a pooled vector; filters are evaluated there. A page row is written
only after all of the page's vector rows, so it doubles as the page's commit marker: search never
returns a page without one, and so never a page with a subset of its vectors.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "MAX_SOURCE_LENGTH",
    "MAX_TEXT_LENGTH",
    "SCHEMA_VERSION",
    "FieldSpec",
    "IndexConfig",
    "PAGE_FIELDS_SPEC",
    "SCALAR_INDEXED_FIELDS",
    "SCALAR_INDEX_TYPES",
    "VECTOR_FIELDS_SPEC",
]

#: Bumped whenever the collections' layout changes; a store refuses to open another version.
SCHEMA_VERSION = 1

MAX_ID_LENGTH = 128
MAX_SOURCE_LENGTH = 4096
MAX_LABEL_LENGTH = 256
MAX_TEXT_LENGTH = 65535  # Milvus's VARCHAR limit, in bytes


@dataclass(frozen=True, slots=True)
class FieldSpec:
    name: str
    kind: str  # a pymilvus DataType member name
    params: dict[str, Any] = field(default_factory=dict)
    is_primary: bool = False


_PAGE_COLUMNS = (
    FieldSpec("doc_id", "VARCHAR", {"max_length": MAX_ID_LENGTH}),
    FieldSpec("source", "VARCHAR", {"max_length": MAX_SOURCE_LENGTH}),
    FieldSpec("page", "INT64"),
    FieldSpec("page_label", "VARCHAR", {"max_length": MAX_LABEL_LENGTH}),
    FieldSpec("metadata", "JSON"),
)

# Lean on purpose: a page has ~1,000 of these rows, so every column costs a thousandfold (Milvus Lite
# inserts twice as fast without the page columns). Filters resolve to page ids on the pages collection.
VECTOR_FIELDS_SPEC = (
    FieldSpec("pk", "INT64", is_primary=True),  # auto id
    FieldSpec("page_id", "VARCHAR", {"max_length": MAX_ID_LENGTH}),
    FieldSpec("seq_id", "INT32"),
    FieldSpec("vector", "FLOAT_VECTOR"),  # dim set per store
)

PAGE_FIELDS_SPEC = (
    FieldSpec("page_id", "VARCHAR", {"max_length": MAX_ID_LENGTH}, is_primary=True),
    *_PAGE_COLUMNS,
    FieldSpec("text", "VARCHAR", {"max_length": MAX_TEXT_LENGTH}),
    FieldSpec("n_vectors", "INT64"),
    FieldSpec("pooled", "FLOAT_VECTOR"),  # L2-normalised mean of the page's vectors
)


# Scalar indexes that make page-id and source filters cheap on large collections. INVERTED is the
# modern type (Milvus 2.4+, Milvus Lite); Milvus 2.3 servers only know the older per-type ones, and
# a server that knows neither still evaluates the filters, just by scanning.
SCALAR_INDEXED_FIELDS = {
    "vectors": ("page_id",),
    "pages": ("doc_id", "source"),
}
SCALAR_INDEX_TYPES = {
    "VARCHAR": ("INVERTED", "Trie"),
    "INT64": ("INVERTED", "STL_SORT"),
}


@dataclass(frozen=True, slots=True)
class IndexConfig:
    """ANN index of the vectors collection.

    The default HNSW with ``efConstruction=64`` builds far faster than the tutorial's 500 and, since
    every candidate is reranked by exact MaxSim, loses little: the ANN only has to *find* pages.
    """

    index_type: str = "HNSW"
    metric_type: str = "IP"
    build_params: dict[str, Any] = field(default_factory=lambda: {"M": 16, "efConstruction": 64})
    search_params: dict[str, Any] = field(default_factory=lambda: {"ef": 64})

    @classmethod
    def flat(cls) -> IndexConfig:
        """Exact search, nothing to build: the default when searches go through the vector cache."""
        return cls(index_type="FLAT", build_params={}, search_params={})
