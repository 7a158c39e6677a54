"""MilvusMultiVectorStore: page multi-vectors in Milvus Lite, a Milvus server or Zilliz Cloud.

The front class of the store. It validates, picks **one** search path when it opens, and delegates;
it never talks to pymilvus itself. The parts, each importing only those below it::

    milvus.py (this front class: validate, write in order, exact MaxSim -> PageHit)
      ├── cached_path.py / server_path.py   (SearchPath: where candidates and vectors come from)
      │     └── reads.py, cache.py          (whole, digest-verified pages; the in-process copy)
      ├── collections.py                     (create / open / check; recorded model, dim, version)
      ├── rows.py, filters.py, schema.py     (one row builder; safe filters; the one column list)
      ├── shared.py                          (one write lock and one copy per collection per process)
      └── connection.py → lite.py            (the only pymilvus importer; Lite's lock, paths, noise)
"""

from __future__ import annotations

import logging
import re
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from os import PathLike
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from colpali_milvus.errors import InvalidInputError
from colpali_milvus.store import lite, packed, reads, shared
from colpali_milvus.store.cached_path import CachedPath, SharedCopy
from colpali_milvus.store.collections import (
    CollectionNames,
    claim_model,
    claim_pool_factor,
    new_generation,
    open_collections,
)
from colpali_milvus.store.connection import MilvusConnection, redact_uri
from colpali_milvus.store.filters import Filter, compile_filter, join_clauses
from colpali_milvus.store.packed import insert_packed
from colpali_milvus.store.rows import (
    as_vectors,
    build_records,
    hit_metadata,
    page_row,
    stored_page,
    summary_rows,
    vector_rows,
)
from colpali_milvus.store.scan_path import PackedScanPath
from colpali_milvus.store.schema import PACKED, IndexConfig
from colpali_milvus.store.search_path import SearchPath
from colpali_milvus.store.server_path import ServerPath
from colpali_milvus.types import PageHit, StoredPage

__all__ = ["DEFAULT_CODES_BUDGET", "MilvusMultiVectorStore", "StoreInfo"]

logger = logging.getLogger(__name__)

FloatArray = npt.NDArray[np.float32]

#: Bytes of codes a server's default (``cache=None``) may hold in a serving process.
DEFAULT_CODES_BUDGET = 2 * 2**30
#: Codes held per vector element: the scan's int8 layer and the refinement's (see search/code_scan.py).
CODE_BYTES_PER_ELEMENT = 2


@dataclass(frozen=True, slots=True)
class StoreInfo:
    """What a store holds and how it was built."""

    collection_name: str
    backend: str  # "milvus-lite" or "milvus"
    model_name: str | None
    dim: int
    schema_version: int  # as the collection records it (a version 4 Lite file still opens)
    pages: int
    vectors: int  # vectors stored (flattened layout: rows, as Milvus counts them; packed: the pages' counts)
    index_type: str  # of the per-vector ANN index (flattened layout); "" for the packed layout, which has none
    indexed_vectors: int | None = None  # rows the ANN index covers (a server builds it asynchronously)
    pending_index_vectors: int | None = None
    # "cached" (codes and floats held), "codes" (a server's codes held, floats read from Milvus),
    # "server" (nothing held: the server's ANN, approximate) or "scan" (Lite, cache=False)
    search_path: str = ""
    pool_factor: int | None = None  # token pooling of the stored pages (1: none; None: not recorded)
    layout: str = ""  # "packed" (Milvus Lite) or "flattened" (servers), see store/schema.py


class MilvusMultiVectorStore:
    """Page multi-vectors in Milvus: one row per page vector on a server, a few packed rows per page on Lite.

    The two layouts (see :mod:`colpali_milvus.store.schema`) answer every call the same way. On a
    server the vectors are flattened, the Milvus ColPali tutorial's layout, whose per-vector ANN is
    the first stage when nothing is held; Milvus Lite holds every row in this process, so there a
    page's vectors are packed into a few rows and searched through the in-process codes.

    Args:
        uri: a ``*.db`` path for Milvus Lite (embedded, the default), or ``http://host:19530`` for a
            Milvus server / cluster, or a Zilliz Cloud endpoint. Same code for all.
        token: ``"user:password"`` or an API key for a server or Zilliz Cloud. Never logged.
        collection_name: prefix of the collections (``<name>_pages`` and, on a server,
            ``<name>_vectors`` and ``<name>_summaries``; on Milvus Lite ``<name>_packed``).
        dim: vector dimension; ``None`` takes the existing collection's, or 128 for a new one.
        model_name: the embedding model; recorded in a new collection and checked on reopen.
        index: ANN index of the vectors collection (and of the page centroids in the summaries collection).
        candidates_per_vector: ANN hits gathered per query vector from the page vectors and from the
            page centroids in the first stage (without cache).
        rerank_depth: with the cache, the fewest pages rescored by exact MaxSim: every page is scored
            on its int8 codes with a proven error bound, and pages are rescored in bound order until
            the top ``k`` is certified exact (``None``, the default: as many as that takes). Without
            the cache, how many ANN candidates are ranked on their int8 codes read from the server
            (the best ``k + 3`` are rescored exactly); ``None``: 96.
        cache: what this process holds to search (see :mod:`colpali_milvus.store.cached_path`).
            On Milvus Lite, which one process owns, the default holds every page's int8 codes in
            memory and the float vectors in a mapped file beside the database (``True`` and
            ``"codes"`` mean the same there); ``False`` reads and scores every page at every search.
            On a server: ``"codes"`` holds every page's int8 codes (~0.26 MB per 1,030 x 128 page),
            scans them all and reads from Milvus only the float vectors of the few pages it rescores:
            exact top ``k``. ``True`` also holds the float vectors (~0.5 MB more per page).
            ``False`` holds nothing: the server's per-vector ANN finds candidates, which is
            approximate. ``None`` (default) is ``"codes"`` while the codes fit ``codes_budget``,
            else ``False``; one log line says which and why. Held copies are re-checked against
            Milvus (a generation token) before each read, so other writers are seen.
        codes_budget: bytes of codes a server's default ``cache=None`` may hold (default 2 GiB,
            ~8,000 pages of 1,030 x 128); decided when the store opens.
        db_name: the Milvus database (server only).
        timeout: seconds one request may take before it fails.
        retry_timeout: for a server, how long (seconds) to keep retrying a request that failed
            because the server could not be reached (a restart, a failover, a network blip), with
            exponential backoff; then the error is raised. ``0`` fails at once. Errors that are not
            about reaching the server (a bad expression, a schema mismatch) are never retried.
        create: create the collections when they do not exist (else raise :class:`StoreError`).
    """

    def __init__(
        self,
        uri: str | PathLike[str] = "colpali.db",
        *,
        token: str | None = None,
        collection_name: str = "colpali",
        dim: int | None = None,
        model_name: str | None = None,
        index: IndexConfig | None = None,
        candidates_per_vector: int = 100,
        rerank_depth: int | None = None,
        cache: bool | Literal["codes"] | None = None,
        codes_budget: int = DEFAULT_CODES_BUDGET,
        db_name: str | None = None,
        timeout: float | None = None,
        retry_timeout: float = 30.0,
        create: bool = True,
    ) -> None:
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]{0,200}", collection_name):
            raise InvalidInputError(f"collection_name must be an identifier, got {collection_name!r}")
        if dim is not None and dim <= 0:
            raise InvalidInputError(f"dim must be positive, got {dim}")
        if candidates_per_vector <= 0 or (rerank_depth is not None and rerank_depth <= 0):
            raise InvalidInputError("candidates_per_vector and rerank_depth must be positive")
        if not retry_timeout >= 0:
            raise InvalidInputError(f"retry_timeout must be >= 0, got {retry_timeout!r}")
        if not (cache is None or isinstance(cache, bool) or cache == "codes"):
            raise InvalidInputError(f'cache must be None, True, False or "codes", got {cache!r}')
        if isinstance(codes_budget, bool) or not isinstance(codes_budget, int) or codes_budget < 0:
            raise InvalidInputError(f"codes_budget must be a number of bytes >= 0, got {codes_budget!r}")
        self.collection_name = collection_name
        self._names = CollectionNames(collection_name)
        self._connection = MilvusConnection(
            uri, token=token, db_name=db_name, timeout=timeout, retry_timeout=retry_timeout
        )
        # Milvus Lite is one process per file: this process is its only writer.
        exclusive = self._connection.is_lite
        # Exact scans of a held copy need no ANN; a server collection keeps one for the nothing-held path.
        self.index = index or (
            IndexConfig.flat() if cache is True or (cache is not False and exclusive) else IndexConfig()
        )
        self._closed = False
        self._unfinished: set[str] = set()  # ids of an add that failed before its commit markers
        self._shared: shared.SharedCollection | None = None
        try:  # a store that fails to open must not keep the Lite file locked
            opened = open_collections(
                self._connection, self._names, dim=dim, model_name=model_name, index=self.index, create=create
            )
            self._dim, self._model_name, self._pool_factor = opened.dim, opened.model_name, opened.pool_factor
            self._schema_version = opened.schema_version
            self._names = opened.names  # in the collection's layout
            self._connection.reload_on_recovery(*self._names.all)
            self._shared = shared.attach((*self._connection.identity, collection_name))
            cache_file = lite.cache_file(self._connection.uri, collection_name) if exclusive else None
            self._copy = SharedCopy(self._shared, cache_file)
            self._announce_writes = not exclusive
            held = self._held(cache, codes_budget)
            self._path: SearchPath
            if held:
                self._path = CachedPath(
                    self._connection,
                    self._names,
                    self._shared,
                    dim=self._dim,
                    exclusive=exclusive,
                    created=opened.created,
                    rerank_depth=rerank_depth,
                    cache_file=cache_file,
                    floats_in_milvus=held == "codes" and not exclusive,
                )
            elif self._names.layout == PACKED:
                self._path = PackedScanPath(self._connection, self._names, dim=self._dim)
            else:
                self._path = ServerPath(
                    self._connection,
                    self._names,
                    dim=self._dim,
                    index=self.index,
                    candidates_per_vector=candidates_per_vector,
                    rerank_depth=rerank_depth,
                )
        except BaseException:
            if self._shared is not None:
                shared.detach(self._shared)
            self._closed = True
            self._connection.close()
            raise

    # -- properties ---------------------------------------------------------------------------

    @property
    def uri(self) -> str:
        return self._connection.uri

    @property
    def is_lite(self) -> bool:
        return self._connection.is_lite

    @property
    def dim(self) -> int:
        return self._dim

    @property
    def model_name(self) -> str | None:
        return self._model_name

    @property
    def vectors_collection(self) -> str:
        """The collection holding the page vectors: ``<name>_vectors`` (flattened) or ``<name>_packed``."""
        return self._names.packed if self._names.layout == PACKED else self._names.vectors

    @property
    def layout(self) -> str:
        """``"packed"`` (Milvus Lite) or ``"flattened"`` (servers: one row per vector, the tutorial's layout)."""
        return self._names.layout

    @property
    def pages_collection(self) -> str:
        return self._names.pages

    @property
    def display_uri(self) -> str:
        """The uri without credentials, safe to log and show."""
        return redact_uri(self.uri)

    @property
    def connection(self) -> MilvusConnection:
        """The Milvus connection (for tests and tools that need a raw request; writes bypass the cache)."""
        return self._connection

    @property
    def search_path(self) -> SearchPath:
        """The one search path this store uses (a ``CachedPath`` or a ``ServerPath``)."""
        return self._path

    def __repr__(self) -> str:  # never shows the token
        return (
            f"{type(self).__name__}(uri={self.display_uri!r}, "
            f"collection_name={self.collection_name!r}, dim={self._dim}, model_name={self._model_name!r})"
        )

    @property
    def pool_factor(self) -> int | None:
        """The token-pooling factor the collection's pages were embedded with (1: none; ``None``: not recorded)."""
        return self._pool_factor

    def claim_model(self, model_name: str, *, pool_factor: int | None = None) -> None:
        """Record ``model_name`` (and the pool factor) if the collection has none yet; refuse different ones.

        ``pool_factor``: the embedder's token-pooling factor (``None`` or 1: no pooling).
        """
        claim_model(self._connection, self._names, self._model_name, model_name)
        self._model_name = model_name
        factor = pool_factor or 1
        claim_pool_factor(self._connection, self._names, self._pool_factor, factor)
        self._pool_factor = factor

    # -- writes -------------------------------------------------------------------------------

    def add(
        self,
        vectors: Sequence[FloatArray],
        metadatas: Sequence[Mapping[str, Any]] | None = None,
        *,
        ids: Sequence[str] | None = None,
        texts: Sequence[str] | None = None,
    ) -> list[str]:
        """Store pages: one ``(n_i, dim)`` array of vectors per page, with its metadata.

        ``source``, ``page``, ``page_label`` and ``doc_id`` in a metadata dict become typed columns;
        other keys are kept as JSON and come back in hits. A page whose id already exists is
        replaced. Everything is validated before the first row is written. Returns the page ids
        (new uuids where ``ids`` is not given).
        """
        ids = list(ids) if ids is not None else [uuid.uuid4().hex for _ in range(len(vectors))]
        records = build_records(vectors, metadatas, ids, texts, self._dim)
        if not records:
            return []
        with self._write_lock():
            self._path.before_write()
            self._copy.before_write()
            # Clear every row of these ids first: a replaced page, or vector rows orphaned by a
            # crash (or a failed add of this store) before their commit marker, must not mix with the new rows.
            to_clear = set(self._path.ids_to_clear(ids)) | self._unfinished.intersection(ids)
            stale = [page_id for page_id in ids if page_id in to_clear]
            if stale:
                self._delete_rows(stale, also_last_shard=True)
                self._copy.deleted(stale)
            self._unfinished.update(ids)  # until their commit markers are written
            if self._names.layout != PACKED:
                self._connection.insert(self._names.vectors, vector_rows(records))
                self._connection.insert(self._names.summaries, summary_rows(records))
            shards = [0] * len(records)
            if self._names.floats_from_packed:
                shards = insert_packed(self._connection, self._names, records, self._shared_state.shard_tail)
            # Page rows last: they are the commit markers that make pages visible to search.
            # Upserted, not inserted: a Milvus server keeps both rows of a duplicated primary key
            # and answers queries and searches from different ones.
            recorded_shards = shards if self._names.sharded else [None] * len(records)
            page_rows = (page_row(record, shard) for record, shard in zip(records, recorded_shards, strict=True))
            self._connection.insert(self._names.pages, page_rows, upsert=True)
            self._unfinished.difference_update(ids)
            self._copy.written(records)
            self._announce()
        return ids

    def delete(
        self,
        source: str | None = None,
        *,
        doc_ids: Sequence[str] | None = None,
        page_ids: Sequence[str] | None = None,
        filter: Filter | None = None,
    ) -> list[str]:
        """Delete pages by source path, document ids, page ids or filter; returns the deleted ids.

        At least one criterion is required (all of them must match), so that a bare ``delete()``
        cannot wipe the collection by accident; use :meth:`drop` for that.
        """
        if source is None and doc_ids is None and page_ids is None and filter is None:
            raise InvalidInputError("delete() needs a source, doc_ids, page_ids or filter")
        where = compile_filter(filter) if filter is not None else ""
        if (doc_ids is not None and not doc_ids) or (page_ids is not None and not page_ids):
            return []
        clauses: dict[str, Any] = {}
        if source is not None:
            clauses["source"] = str(source)
        if doc_ids is not None:
            clauses["doc_id"] = {"$in": list(doc_ids)}
        if page_ids is not None:
            clauses["page_id"] = {"$in": list(page_ids)}
        with self._write_lock():
            targets = reads.page_ids(
                self._connection, self._names, join_clauses(compile_filter(clauses) if clauses else "", where)
            )
            if targets:
                self._path.before_write()
                self._copy.before_write()
                self._delete_rows(targets)
                self._copy.deleted(targets)
                self._announce()
        return targets

    def drop(self) -> None:
        """Drop the store's collections (every page, irreversibly)."""
        with self._write_lock():
            self._copy.before_write()
            self._copy.deleted(self.page_ids())
            shards = packed.shard_count(self._connection, self._names)
            for name in (*self._names.all, *(self._names.packed_shard(shard) for shard in range(1, shards))):
                self._connection.drop(name)
            self._shared_state.shard_tail = packed.ShardTail()

    # -- reads --------------------------------------------------------------------------------

    def search(
        self,
        query_vectors: FloatArray,
        k: int = 5,
        filter: Filter | None = None,
        *,
        expr: str | None = None,
    ) -> list[PageHit]:
        """The ``k`` best pages for a ``(n_q, dim)`` query, best first, scored by exact MaxSim.

        Every returned score is exact MaxSim over **all** of the page's vectors (see the search
        paths for how the ``k`` pages are found). ``filter`` is a structured filter (see
        :mod:`colpali_milvus.store.filters`); ``expr`` is a raw Milvus expression, ANDed with it,
        for callers who need the full Milvus language and accept responsibility for escaping.
        """
        query = as_vectors(query_vectors, self._dim, "query")
        if not isinstance(k, int) or isinstance(k, bool) or k <= 0:
            raise InvalidInputError(f"k must be a positive integer, got {k!r}")
        ranked = self._path.ranked(query, k, join_clauses(compile_filter(filter), expr))
        return [
            PageHit(page_id=page_id, score=score, metadata=hit_metadata(row), text=str(row.get("text") or ""))
            for page_id, score, row in zip(ranked.page_ids, ranked.scores, ranked.rows, strict=True)
        ]

    def get_vectors(self, page_ids: Sequence[str]) -> dict[str, FloatArray]:
        """All stored vectors of the given committed pages, in sequence order (unknown ids are left out)."""
        return self._path.vectors(list(page_ids))

    def get_pages(self, page_ids: Sequence[str]) -> dict[str, StoredPage]:
        """The stored rows (metadata, text, vector count) of the committed pages among ``page_ids``."""
        rows = reads.page_rows(self._connection, self._names, list(page_ids))
        return {page_id: stored_page(row) for page_id, row in rows.items()}

    def page_digests(self, page_ids: Sequence[str]) -> dict[str, str]:
        """The digest of its vectors (``rows.vector_digest``) each committed page among ``page_ids`` records."""
        rows = reads.page_rows(self._connection, self._names, list(page_ids), fields=("page_id", "digest"))
        return {page_id: str(row["digest"]) for page_id, row in rows.items()}

    def existing_page_ids(self, page_ids: Sequence[str]) -> set[str]:
        """The subset of ``page_ids`` that are stored (committed)."""
        return self._path.existing(list(page_ids))

    def page_ids(self, filter: Filter | None = None, *, expr: str | None = None) -> list[str]:
        """Ids of every stored page matching the filter (all pages without one)."""
        return reads.page_ids(self._connection, self._names, join_clauses(compile_filter(filter), expr))

    def count(self, filter: Filter | None = None) -> int:
        """Number of stored pages (matching ``filter``)."""
        return self._connection.count(self._names.pages, compile_filter(filter))

    def info(self) -> StoreInfo:
        packed = self._names.layout == PACKED
        index = {} if packed else self._connection.describe_index(self._names.vectors, "vector")
        return StoreInfo(
            collection_name=self.collection_name,
            backend="milvus-lite" if self.is_lite else "milvus",
            model_name=self._model_name,
            dim=self._dim,
            schema_version=self._schema_version,
            pages=self._connection.count(self._names.pages),
            vectors=self._count_vectors(),
            index_type="" if packed else str(index.get("index_type") or self.index.index_type),
            indexed_vectors=_optional_int(index.get("indexed_rows")),
            pending_index_vectors=_optional_int(index.get("pending_index_rows")),
            search_path=self._path.name,
            pool_factor=self._pool_factor,
            layout=self._names.layout,
        )

    def flush(self) -> None:
        """Seal what was inserted so a server builds its ANN index over it (``info()`` shows progress).

        Never needed for correctness: unsealed rows are searched by brute force until indexed.
        """
        names = self._names.all
        if self._names.sharded:  # the shard being written; flushing the others would load their rows
            names = (self._names.pages, self._names.packed_shard(packed.shard_count(self._connection, self._names) - 1))
        for name in names:
            self._connection.flush(name)

    def wait_for_index(self, timeout: float = 600.0, poll: float = 1.0) -> StoreInfo:
        """Flush, then wait until the server's ANN index covers every vector row (or ``timeout``)."""
        self.flush()
        deadline = time.monotonic() + timeout
        while True:
            info = self.info()
            if not info.pending_index_vectors and (info.indexed_vectors or 0) >= info.vectors:
                return info
            if info.indexed_vectors is None or time.monotonic() > deadline:
                return info  # this backend does not report index progress, or time is up
            time.sleep(poll)

    # -- lifecycle ----------------------------------------------------------------------------

    def close(self) -> None:
        """Close the connection; the last store on a Milvus Lite collection saves its vector cache."""
        if self._closed:
            return
        self._closed = True
        try:
            if self._shared is not None:
                last_user = shared.detach(self._shared)
                self._path.close(last_user=last_user)
        finally:
            self._connection.close()

    def __enter__(self) -> MilvusMultiVectorStore:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- internals ----------------------------------------------------------------------------

    def _held(self, cache: bool | Literal["codes"] | None, codes_budget: int) -> bool | Literal["codes"]:
        """What this process holds to search: ``True`` (codes and floats), ``"codes"`` or ``False`` (nothing)."""
        if self.is_lite:
            return cache is not False  # one process owns the file: codes in memory, floats in a mapped file
        if cache is not None:
            return cache
        vectors = self._count_vectors()
        needed = vectors * self._dim * CODE_BYTES_PER_ELEMENT
        if needed <= codes_budget:
            logger.info(
                "%s: holding the int8 codes of %d vectors (~%.0f MiB, within codes_budget=%.0f MiB) for exact search",
                self.collection_name,
                vectors,
                needed / 2**20,
                codes_budget / 2**20,
            )
            return "codes"
        logger.info(
            "%s: holding nothing: the codes of %d vectors (~%.0f MiB) exceed codes_budget=%.0f MiB; searches use "
            "the server's ANN and are approximate (raise codes_budget, or pass cache='codes', for exact search)",
            self.collection_name,
            vectors,
            needed / 2**20,
            codes_budget / 2**20,
        )
        return False

    def _count_vectors(self) -> int:
        """Vectors stored, as Milvus holds them: rows of the flattened layout, the packed rows' counts."""
        if self._names.layout != PACKED:
            return self._connection.count(self._names.vectors)
        # The page rows' counts: reading the packed rows would load every shard
        counts = self._connection.query_all(self._names.pages, "", ["n_vectors"], primary="page_id")
        return sum(int(row["n_vectors"]) for row in counts)

    def _write_lock(self) -> Any:
        return self._shared_state.write_lock

    @property
    def _shared_state(self) -> shared.SharedCollection:
        assert self._shared is not None
        return self._shared

    def _delete_rows(self, page_ids: list[str], *, also_last_shard: bool = False) -> None:
        """Delete every row of these pages, page rows first: the pages stop being visible before their other rows go.

        Sharded packed rows are deleted from the shard each page row names (a read of the page rows
        first), and with ``also_last_shard`` from the last shard too, where the rows of an add that
        failed before its commit would be.
        """
        if not self._names.sharded:
            self._connection.delete_ids(self._names.all, page_ids)
            return
        recorded = reads.page_rows(self._connection, self._names, page_ids, fields=("page_id", "shard"))
        self._connection.delete_ids((self._names.pages,), page_ids)
        shards = {packed.shard_of(row) for row in recorded.values()}
        packed.delete_packed(self._connection, self._names, page_ids, shards, also_last=also_last_shard)

    def _announce(self) -> None:
        """Tell other processes' cached copies that the collection changed (servers only)."""
        if self._announce_writes:
            new_generation(self._connection, self._names)


def _optional_int(value: Any) -> int | None:
    return None if value is None else int(value)
