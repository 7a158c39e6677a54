"""Create, open and check the collections of a store; what they record about themselves.

A collection records its schema version, layout (see :mod:`.schema`), dim and model as properties
of the pages collection, and a store refuses to open one that disagrees. A new store is packed on
Milvus Lite and flattened on a server. On a server, every write also records a new
*generation* token there, so a process holding a copy of the pages can tell cheaply that another
process changed them.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass

from colpali_milvus.errors import IndexMismatchError, StoreError
from colpali_milvus.store.connection import MilvusConnection
from colpali_milvus.store.schema import (
    FLATTENED,
    PACKED,
    PACKED_FIELDS_SPEC,
    PAGE_FIELDS_SPEC,
    PAGE_ROW_FIELDS,
    SCALAR_INDEX_TYPES,
    SCALAR_INDEXED_FIELDS,
    SCHEMA_VERSION,
    SHARDED_PAGE_FIELDS_SPEC,
    SHARDED_PAGE_ROW_FIELDS,
    SUMMARY_FIELDS_SPEC,
    VECTOR_FIELDS_SPEC,
    FieldSpec,
    IndexConfig,
    field_kind,
)

__all__ = [
    "DEFAULT_DIM",
    "CollectionNames",
    "OpenedCollection",
    "claim_model",
    "create_packed_shard",
    "reading_older_lite_files",
    "claim_pool_factor",
    "new_generation",
    "open_collections",
    "read_generation",
]

logger = logging.getLogger(__name__)

DEFAULT_DIM = 128
_PREFIX = "colpali_milvus."


@dataclass(frozen=True, slots=True)
class CollectionNames:
    """The Milvus collections behind a store named ``name``, in its layout."""

    name: str
    layout: str = FLATTENED
    #: Flattened layout only: each page's float vectors are also kept as packed rows (server collections
    #: record it; older ones have none), which read back ~2x faster than a page's ~1,000 vector rows.
    packed_floats: bool = False
    #: Packed layout, schema 5: the packed rows are split into shards (``packed_shard``), and each page
    #: row records its shard. A version 4 Lite file has one unbounded shard and page rows without one.
    sharded: bool = False

    @property
    def all(self) -> tuple[str, ...]:
        """Every collection, in the order a page's rows leave them: its commit marker first."""
        if self.layout == PACKED:
            return (self.pages, self.packed)
        return (self.pages, self.vectors, self.summaries, *((self.packed,) if self.packed_floats else ()))

    @property
    def floats_from_packed(self) -> bool:
        """Whether a page's float vectors are read from its packed rows (else from its vector rows)."""
        return self.layout == PACKED or self.packed_floats

    @property
    def vectors(self) -> str:
        return f"{self.name}_vectors"

    @property
    def pages(self) -> str:
        return f"{self.name}_pages"

    @property
    def summaries(self) -> str:
        return f"{self.name}_summaries"

    @property
    def packed(self) -> str:
        """The packed rows' collection (the first shard, where the layout is sharded)."""
        return f"{self.name}_packed"

    def packed_shard(self, shard: int) -> str:
        """Shard ``shard`` of the packed rows: ``<name>_packed``, ``<name>_packed_1``, ..."""
        return self.packed if shard == 0 else f"{self.name}_packed_{shard}"

    @property
    def page_fields(self) -> tuple[FieldSpec, ...]:
        return SHARDED_PAGE_FIELDS_SPEC if self.sharded else PAGE_FIELDS_SPEC

    @property
    def page_row_fields(self) -> tuple[str, ...]:
        """What is read back of a page row: every column but the pooled vector."""
        return SHARDED_PAGE_ROW_FIELDS if self.sharded else PAGE_ROW_FIELDS

    def in_layout(self, layout: str, *, packed_floats: bool = False, sharded: bool = False) -> CollectionNames:
        return CollectionNames(self.name, layout, packed_floats and layout == FLATTENED, sharded and layout == PACKED)


@dataclass(frozen=True, slots=True)
class OpenedCollection:
    names: CollectionNames  # in the layout the collection was found or created in
    dim: int
    model_name: str | None
    created: bool
    pool_factor: int | None = None  # recorded by the first embedder that wrote to it (1: no pooling)
    schema_version: int = SCHEMA_VERSION  # as recorded (an older layout that still opens keeps its own)


# The layout of a new Lite collection. Tests switch it to FLATTENED to exercise the server layout (and
# the files of schema version 3) on Milvus Lite, without a server.
_NEW_LITE_LAYOUT = PACKED
# Whether a new Lite collection splits its packed rows into shards (schema 5). Tests switch it off to make
# the Lite files of schema version 4, which still open (one unbounded shard).
_NEW_LITE_SHARDED = True
# Whether a new server collection keeps each page's floats packed too. Tests switch it off to make the
# server collections of earlier builds, which still open (their floats are read from the vector rows).
_NEW_SERVER_PACKED_FLOATS = True
_older_lite_allowed: ContextVar[bool] = ContextVar("older_lite_allowed", default=False)


@contextmanager
def reading_older_lite_files() -> Iterator[None]:
    """Within this block, stores open a Milvus Lite collection of schema version 3 (``copy`` reads them)."""
    token = _older_lite_allowed.set(True)
    try:
        yield
    finally:
        _older_lite_allowed.reset(token)


def open_collections(
    connection: MilvusConnection,
    names: CollectionNames,
    *,
    dim: int | None,
    model_name: str | None,
    index: IndexConfig,
    create: bool,
) -> OpenedCollection:
    """Open the collections (checking what they record) or create them. On a server all are loaded;
    on Milvus Lite only the page rows, the rest on first use (see :meth:`MilvusConnection.load`)."""
    if connection.has_collection(names.pages):
        return _check_existing(connection, names, dim, model_name)
    present = [
        name
        for name in {*names.in_layout(FLATTENED, packed_floats=True).all, *names.in_layout(PACKED).all}
        if connection.has_collection(name)
    ]
    if present:
        raise IndexMismatchError(
            f"collection {names.name!r} is incomplete (it has {', '.join(sorted(present))} but no {names.pages!r})"
        )
    if not create:
        raise StoreError(f"there is no collection {names.name!r} at {connection.display_uri}")
    dim = dim or DEFAULT_DIM
    # Servers keep each page's floats packed too: the rows a codes-mode search reads.
    layout, packed_floats = (_NEW_LITE_LAYOUT, False) if connection.is_lite else (FLATTENED, _NEW_SERVER_PACKED_FLOATS)
    names = names.in_layout(layout, packed_floats=packed_floats, sharded=_NEW_LITE_SHARDED)
    _create(connection, names, dim, model_name, index)
    return OpenedCollection(names, dim, model_name, created=True)


def claim_model(connection: MilvusConnection, names: CollectionNames, recorded: str | None, model_name: str) -> None:
    """Record ``model_name`` if the collection has none yet; refuse a different one."""
    if recorded == model_name:
        return
    if recorded is not None:
        raise IndexMismatchError(
            f"collection {names.name!r} was built with model {recorded!r}, not {model_name!r}; "
            "use another collection_name or the original model"
        )
    connection.set_properties(names.pages, {f"{_PREFIX}model": model_name})


def claim_pool_factor(
    connection: MilvusConnection, names: CollectionNames, recorded: int | None, pool_factor: int
) -> None:
    """Record the token-pooling factor if none is yet; refuse another (pooled and unpooled pages never mix)."""
    if recorded == pool_factor:
        return
    if recorded is not None:
        raise IndexMismatchError(
            f"collection {names.name!r} holds pages embedded with pool factor {recorded}, not {pool_factor}; "
            "use another collection_name or the same pool factor"
        )
    connection.set_properties(names.pages, {f"{_PREFIX}pool_factor": str(pool_factor)})


def read_generation(connection: MilvusConnection, names: CollectionNames) -> str:
    return connection.properties(names.pages).get(f"{_PREFIX}generation", "")


def new_generation(connection: MilvusConnection, names: CollectionNames) -> None:
    """Announce a change to other processes holding a copy of the pages."""
    connection.set_properties(names.pages, {f"{_PREFIX}generation": uuid.uuid4().hex})


def _create(
    connection: MilvusConnection, names: CollectionNames, dim: int, model_name: str | None, index: IndexConfig
) -> None:
    # Every index is built before the first load: a Milvus 2.3 server accepts a new index on a
    # loaded collection, then refuses to load that collection again ("can't change the index").
    vector_indexes: tuple[tuple[str, str, str, str, dict[str, object]], ...]
    scalar_indexed: tuple[tuple[str, str], ...]
    if names.layout == PACKED:
        _create_packed(connection, names.packed, dim)
        vector_indexes, scalar_indexed = (), (("pages", names.pages),)
    else:
        connection.create_collection(names.vectors, VECTOR_FIELDS_SPEC, dim, auto_id=True)
        connection.create_collection(names.summaries, SUMMARY_FIELDS_SPEC, dim, auto_id=True)
        vector_indexes = (
            (names.vectors, "vector", index.index_type, index.metric_type, dict(index.build_params)),
            (names.summaries, "centroid", index.index_type, index.metric_type, dict(index.build_params)),
        )
        scalar_indexed = (("vectors", names.vectors), ("pages", names.pages), ("summaries", names.summaries))
        if names.packed_floats:
            _create_packed(connection, names.packed, dim)
    connection.create_collection(names.pages, names.page_fields, dim, auto_id=False)
    _create_indexes(connection, (*vector_indexes, (names.pages, "pooled", "FLAT", "IP", {})), scalar_indexed)
    _load(connection, names)
    # Recorded last: a collection with these properties is complete.
    properties = {
        f"{_PREFIX}schema_version": str(SCHEMA_VERSION),
        f"{_PREFIX}layout": names.layout,
        f"{_PREFIX}dim": str(dim),
    }
    if names.packed_floats:
        properties[f"{_PREFIX}packed_floats"] = "1"
    if model_name:
        properties[f"{_PREFIX}model"] = model_name
    connection.set_properties(names.pages, properties)
    logger.info("created collections %s (%s layout, dim=%d)", ", ".join(names.all), names.layout, dim)


def create_packed_shard(connection: MilvusConnection, names: CollectionNames, shard: int, dim: int) -> str:
    """Create shard ``shard`` of the packed rows (if a crash did not leave it already); returns its name.

    Loaded on first use, like every collection that holds vectors.
    """
    name = names.packed_shard(shard)
    if not connection.has_collection(name):
        _create_packed(connection, name, dim)
    connection.load(name, on_first_use=True)
    return name


def _create_packed(connection: MilvusConnection, name: str, dim: int) -> None:
    """A collection of packed rows with its indexes (before any load: see :func:`_create`)."""
    connection.create_collection(name, PACKED_FIELDS_SPEC, dim, auto_id=True)
    _create_indexes(connection, ((name, "anchor", "FLAT", "IP", {}),), (("packed", name),))


def _create_indexes(
    connection: MilvusConnection,
    vector_indexes: Sequence[tuple[str, str, str, str, dict[str, object]]],
    scalar_indexed: Sequence[tuple[str, str]],
) -> None:
    with connection.translate("create the collections"):
        for collection, field_name, kind, metric, params in vector_indexes:
            if not connection.create_index(collection, field_name, kind, metric_type=metric, params=dict(params)):
                raise StoreError(f"Milvus at {connection.display_uri} refused a {kind} index on {collection}")
    has_inverted = connection.server_version() >= (2, 4)  # older servers know only the per-type indexes
    for kind_name, collection in scalar_indexed:
        for field_name in SCALAR_INDEXED_FIELDS[kind_name]:
            index_types = SCALAR_INDEX_TYPES[field_kind(field_name)]
            _create_scalar_index(connection, collection, field_name, index_types if has_inverted else index_types[1:])


def _load(connection: MilvusConnection, names: CollectionNames) -> None:
    if connection.is_lite:
        # A serving process whose saved copy verifies reads only the page rows: the rows that hold
        # vectors (what costs Milvus Lite memory and seconds to open) wait for a write or a rebuild.
        connection.load(names.pages)
        connection.load(*names.all[1:], on_first_use=True)
    else:
        connection.load(*names.all)


def _create_scalar_index(
    connection: MilvusConnection, collection: str, field_name: str, index_types: Sequence[str]
) -> None:
    """The first of ``index_types`` this Milvus accepts for the field, or none (filters still work)."""
    for index_type in index_types:
        if connection.create_index(collection, field_name, index_type, index_name=f"{field_name}_idx"):
            logger.debug("%s index on %s.%s", index_type, collection, field_name)
            return
    logger.info("no scalar index on %s.%s: this Milvus accepts none of %s", collection, field_name, index_types)


def _check_existing(
    connection: MilvusConnection, names: CollectionNames, dim: int | None, model_name: str | None
) -> OpenedCollection:
    properties = {
        key[len(_PREFIX) :]: value
        for key, value in connection.properties(names.pages).items()
        if key.startswith(_PREFIX)
    }
    recorded_version = properties.get("schema_version")
    names = names.in_layout(
        properties.get("layout") or FLATTENED,
        packed_floats=properties.get("packed_floats") == "1",
        sharded=recorded_version == str(SCHEMA_VERSION),  # version 4 Lite files have one unbounded shard
    )
    _check_version(connection, names, recorded_version)
    missing = [name for name in names.all if not connection.has_collection(name)]
    if missing:
        raise IndexMismatchError(f"collection {names.name!r} is incomplete ({', '.join(missing)} is missing)")
    recorded_dim = int(properties["dim"])
    if dim is not None and dim != recorded_dim:
        raise IndexMismatchError(f"collection {names.name!r} holds {recorded_dim}-d vectors, not {dim}-d")
    recorded_model = properties.get("model") or None
    if model_name:
        claim_model(connection, names, recorded_model, model_name)
        recorded_model = model_name
    _load(connection, names)
    pool_factor = int(properties["pool_factor"]) if properties.get("pool_factor") else None
    return OpenedCollection(
        names,
        recorded_dim,
        recorded_model,
        created=False,
        pool_factor=pool_factor,
        schema_version=int(recorded_version or SCHEMA_VERSION),
    )


def _check_version(connection: MilvusConnection, names: CollectionNames, recorded: str | None) -> None:
    """Version 5 or 4, or a version 3 collection where its layout is still current (a server; ``copy`` on Lite)."""
    if recorded in (str(SCHEMA_VERSION), "4") and names.layout in (FLATTENED, PACKED):
        return
    if recorded == "3" and names.layout == FLATTENED:
        if not connection.is_lite or _older_lite_allowed.get():
            return
        raise IndexMismatchError(
            f"collection {names.name!r} in the Milvus Lite file {connection.display_uri} has schema version 3 "
            f"(one row per vector); this colpali-milvus stores Lite pages packed (version {SCHEMA_VERSION}), which "
            "is ~4x leaner and faster. Move it without re-embedding: "
            f"`colpali-milvus copy {connection.display_uri} NEW.db --collection {names.name}` "
            "(or copy_collection() in Python), then use NEW.db; or re-index the documents"
        )
    raise IndexMismatchError(
        f"collection {names.name!r} has schema version {recorded!r}; this "
        f"colpali-milvus writes version {SCHEMA_VERSION} (re-index into a new collection)"
    )
