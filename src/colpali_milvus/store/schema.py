"""The collections behind one store, described as data: every column list derives from here.

A store has one of two layouts, recorded in its pages collection.

**Flattened** (Milvus servers, the Milvus ColPali tutorial's layout): three collections.
``<name>_vectors`` holds one row per page vector (the flattened multi-vector of the Milvus ColPali
tutorial): page id, position and vector, nothing else. ``<name>_pages`` holds one row per page: its
metadata, text, vector count, content digest and a pooled vector; filters are evaluated there.
``<name>_summaries`` holds what the server search path ranks pages by before it reads any float
vectors: one row per page centroid (:func:`colpali_milvus.search.pooling.pool_page`, searched by
ANN), the first few of which also carry the page's int8 rerank codes
(:mod:`colpali_milvus.search.codes`) as text, and every row the digest of the vectors it was made
from. A server collection also keeps each page's vectors as packed rows in ``<name>_packed`` (as
below; recorded as ``packed_floats``, absent from collections made before): the rows a search reads
for the few pages it rescores, ~2x faster than a page's ~1,000 vector rows. A page row is written
only after all of the page's vector, summary and packed rows, so it doubles as the page's commit
marker: search never returns a page without one, the digest proves which vectors it commits, and
summaries or packed rows whose digest differs are not used.

**Packed** (Milvus Lite, since schema version 4): ``<name>_packed`` holds each page's vectors as a
few rows of base64 text (:mod:`colpali_milvus.store.packed`), ``<name>_pages`` the same page rows as
above. Since version 5 the packed rows are split into *shards* of bounded size (``<name>_packed``,
``<name>_packed_1``, ...), and each page row records the shard that holds its vectors (``shard``),
so that a writer or a rebuild holds one shard's rows in memory at a time, never all of them.
Milvus Lite is a pure-Python engine that holds every row of a collection in the memory of the
process that opens it: one row per vector cost ~2-3 MB and ~10 ms per page, a handful of text rows
per page cost about the vectors' own size. Lite's search path (the in-process codes) never uses
per-vector rows or summaries, so it writes neither.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "CODE_ROW_FIELDS",
    "SUMMARY_FIELDS_SPEC",
    "FILTER_COLUMN_TYPES",
    "INT64_MAX",
    "INT64_MIN",
    "MAX_ID_LENGTH",
    "MAX_LABEL_LENGTH",
    "MAX_SOURCE_LENGTH",
    "MAX_TEXT_LENGTH",
    "METADATA_COLUMNS",
    "PAGE_FIELDS",
    "PAGE_FIELDS_SPEC",
    "PACKED",
    "FLATTENED",
    "PACKED_FIELDS_SPEC",
    "PACKED_ROW_FIELDS",
    "PAGE_ROW_FIELDS",
    "SCALAR_INDEXED_FIELDS",
    "SCALAR_INDEX_TYPES",
    "SCHEMA_VERSION",
    "SHARDED_PAGE_FIELDS_SPEC",
    "SHARDED_PAGE_ROW_FIELDS",
    "VECTOR_FIELDS_SPEC",
    "VECTOR_ROW_FIELDS",
    "FieldSpec",
    "IndexConfig",
]

#: Bumped whenever the collections' layout changes; a store refuses to open another version.
#: 2: page rows carry a digest of their vectors. 3: the summaries collection (centroids, codes).
#: 4: the packed layout on Milvus Lite (a version 3 Lite file is refused, and ``copy`` moves it);
#: a server's flattened layout is unchanged, so version 3 server collections still open.
#: 5: packed rows in shards, the shard recorded on the page row (version 4 Lite files still open,
#: their one shard unbounded; a server's layout is unchanged).
SCHEMA_VERSION = 5
FLATTENED, PACKED = "flattened", "packed"

MAX_ID_LENGTH = 128
MAX_SOURCE_LENGTH = 4096
MAX_LABEL_LENGTH = 256
MAX_TEXT_LENGTH = 65535  # Milvus's VARCHAR limit, in bytes
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1  # what Milvus INT64 columns and JSON numbers hold


@dataclass(frozen=True, slots=True)
class FieldSpec:
    name: str
    kind: str  # a pymilvus DataType member name
    params: dict[str, Any] = field(default_factory=dict)
    is_primary: bool = False
    python_type: type | None = None  # for typed metadata columns: what a value (and a filter literal) must be


#: Metadata keys stored as typed columns (the rest of a page's metadata lives in the JSON column).
METADATA_COLUMNS = (
    FieldSpec("source", "VARCHAR", {"max_length": MAX_SOURCE_LENGTH}, python_type=str),
    FieldSpec("page", "INT64", python_type=int),
    FieldSpec("page_label", "VARCHAR", {"max_length": MAX_LABEL_LENGTH}, python_type=str),
    FieldSpec("doc_id", "VARCHAR", {"max_length": MAX_ID_LENGTH}, python_type=str),
)

# Lean on purpose: a page has ~1,000 of these rows, so every column costs a thousandfold (Milvus Lite
# inserts twice as fast without the page columns). Filters resolve to page ids on the pages collection.
VECTOR_FIELDS_SPEC = (
    FieldSpec("pk", "INT64", is_primary=True),  # auto id
    FieldSpec("page_id", "VARCHAR", {"max_length": MAX_ID_LENGTH}),
    FieldSpec("seq_id", "INT32"),
    FieldSpec("vector", "FLOAT_VECTOR"),  # dim set per store
)

SUMMARY_FIELDS_SPEC = (
    FieldSpec("pk", "INT64", is_primary=True),  # auto id
    FieldSpec("page_id", "VARCHAR", {"max_length": MAX_ID_LENGTH}),
    FieldSpec("part", "INT32"),  # position of this row's chunk in the page's code blob; -1: no chunk
    FieldSpec("parts", "INT32"),  # how many rows the blob spans
    FieldSpec("digest", "VARCHAR", {"max_length": 64}),  # of the float32 vectors this row was made from
    FieldSpec("codes", "VARCHAR", {"max_length": 65_535}),  # base64; "" where part is -1
    FieldSpec("centroid", "FLOAT_VECTOR"),  # one of the page's centroids; dim set per store
)

PACKED_FIELDS_SPEC = (
    FieldSpec("pk", "INT64", is_primary=True),  # auto id
    FieldSpec("page_id", "VARCHAR", {"max_length": MAX_ID_LENGTH}),
    FieldSpec("digest", "VARCHAR", {"max_length": 64}),  # of the float32 vectors the blob holds
    FieldSpec("part", "INT32"),  # position of this row's text in the page's blob
    FieldSpec("parts", "INT32"),  # how many rows the blob spans
    FieldSpec("n_vectors", "INT32"),
    FieldSpec("encoding", "VARCHAR", {"max_length": 16}),  # how the vectors were written (see packed.py)
    FieldSpec("blob", "VARCHAR", {"max_length": 65_535}),  # base64
    FieldSpec("anchor", "FLOAT_VECTOR", {"dim": 2}),  # Milvus wants a vector field in every collection; unused
)

PAGE_FIELDS_SPEC = (
    FieldSpec("page_id", "VARCHAR", {"max_length": MAX_ID_LENGTH}, is_primary=True, python_type=str),
    *METADATA_COLUMNS,
    FieldSpec("metadata", "JSON"),
    FieldSpec("text", "VARCHAR", {"max_length": MAX_TEXT_LENGTH}),
    FieldSpec("n_vectors", "INT64"),
    FieldSpec("digest", "VARCHAR", {"max_length": 64}),  # of the page's float32 vectors, in order
    FieldSpec("pooled", "FLOAT_VECTOR"),  # L2-normalised mean of the page's vectors
)

#: The page rows of a sharded packed collection (schema 5) also say which shard holds the page's vectors.
SHARDED_PAGE_FIELDS_SPEC = (*PAGE_FIELDS_SPEC, FieldSpec("shard", "INT32"))

#: Typed metadata keys, as hits report them.
PAGE_FIELDS: tuple[str, ...] = tuple(spec.name for spec in METADATA_COLUMNS)
#: Columns a structured filter may address directly, with the Python type of their literals.
FILTER_COLUMN_TYPES: dict[str, type] = {
    spec.name: spec.python_type for spec in PAGE_FIELDS_SPEC if spec.python_type is not None
}
#: What is read back of a page row: every column but the pooled vector.
PAGE_ROW_FIELDS: tuple[str, ...] = tuple(spec.name for spec in PAGE_FIELDS_SPEC if not spec.kind.endswith("_VECTOR"))
SHARDED_PAGE_ROW_FIELDS: tuple[str, ...] = (*PAGE_ROW_FIELDS, "shard")
VECTOR_ROW_FIELDS: tuple[str, ...] = ("page_id", "seq_id", "vector")
CODE_ROW_FIELDS: tuple[str, ...] = ("page_id", "part", "parts", "digest", "codes")  # a summary row, less its centroid
PACKED_ROW_FIELDS: tuple[str, ...] = tuple(spec.name for spec in PACKED_FIELDS_SPEC if spec.kind != "FLOAT_VECTOR")


# Scalar indexes that make page-id and source filters cheap on large collections. INVERTED is the
# modern type (Milvus 2.4+, Milvus Lite); Milvus 2.3 servers only know the older per-type ones, and
# a server that knows neither still evaluates the filters, just by scanning.
SCALAR_INDEXED_FIELDS = {
    "vectors": ("page_id",),
    "pages": ("doc_id", "source"),
    "summaries": ("page_id",),
    "packed": ("page_id",),
}
SCALAR_INDEX_TYPES = {
    "VARCHAR": ("INVERTED", "Trie"),
    "INT64": ("INVERTED", "STL_SORT"),
}


def field_kind(name: str) -> str:
    specs = (*VECTOR_FIELDS_SPEC, *SHARDED_PAGE_FIELDS_SPEC, *SUMMARY_FIELDS_SPEC, *PACKED_FIELDS_SPEC)
    return next(spec.kind for spec in specs if spec.name == name)


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
