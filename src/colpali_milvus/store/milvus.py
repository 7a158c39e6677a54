"""MilvusMultiVectorStore: page multi-vectors in Milvus Lite, a Milvus server or Zilliz Cloud.

This is the only module that imports pymilvus; its errors are translated into
:class:`~colpali_milvus.errors.StoreError` here and nowhere else.
"""

from __future__ import annotations

import logging
import math
import re
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from os import PathLike
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import numpy.typing as npt

from colpali_milvus.errors import (
    IndexMismatchError,
    InvalidInputError,
    StoreConnectionError,
    StoreError,
)
from colpali_milvus.search.candidates import rank_candidates
from colpali_milvus.search.maxsim import maxsim_flat, page_offsets
from colpali_milvus.search.pooling import DEFAULT_CENTROIDS
from colpali_milvus.store.cache import PageVectorCache
from colpali_milvus.store.filters import Filter, compile_filter
from colpali_milvus.store.lite import (
    LITE_LOCK_FILE,
    hold_lite_database,
    is_lite_uri,
    lite_file_locked,
    normalise_uri,
    release_lite_database,
)
from colpali_milvus.store.schema import (
    MAX_ID_LENGTH,
    MAX_LABEL_LENGTH,
    MAX_SOURCE_LENGTH,
    MAX_TEXT_LENGTH,
    PAGE_FIELDS_SPEC,
    SCALAR_INDEX_TYPES,
    SCALAR_INDEXED_FIELDS,
    SCHEMA_VERSION,
    VECTOR_FIELDS_SPEC,
    FieldSpec,
    IndexConfig,
)
from colpali_milvus.types import PAGE_FIELDS, PageHit

__all__ = ["MilvusMultiVectorStore", "StoreInfo"]

logger = logging.getLogger(__name__)

T = TypeVar("T")
FloatArray = npt.NDArray[np.float32]

DEFAULT_DIM = 128
# A Milvus server returns at most this many rows per query (offset + limit); Lite has no cap, but
# one code path for both keeps the behaviour the same everywhere.
QUERY_WINDOW = 16_384
_INSERT_BATCH_ROWS = 4_096
_ID_BATCH = 1_000  # ids per `in [...]` expression
_PROPERTY_PREFIX = "colpali_milvus."
SERVER_RERANK_DEPTH = 96
# With the cache, exact reranking is cheap and centroid scores separate fewer pages as the corpus
# grows: on 4,000 ColPali-shaped pages 96 candidates kept 95% of the exact top 5, 192 kept 99.5%.
_CACHE_DEPTH_MIN, _CACHE_DEPTH_MAX, _CACHE_DEPTH_FRACTION = 128, 1024, 20
_FIRST_BACKOFF_S = 0.5
_MAX_BACKOFF_S = 8.0


@dataclass(frozen=True, slots=True)
class StoreInfo:
    """What a store holds and how it was built."""

    collection_name: str
    backend: str  # "milvus-lite" or "milvus"
    model_name: str | None
    dim: int
    schema_version: int
    pages: int
    vectors: int  # vector rows, as Milvus counts them
    index_type: str
    indexed_vectors: int | None = None  # rows the ANN index covers (a server builds it asynchronously)
    pending_index_vectors: int | None = None


class MilvusMultiVectorStore:
    """Page multi-vectors, flattened into Milvus: one row per page vector.

    Args:
        uri: a ``*.db`` path for Milvus Lite (embedded, the default), or ``http://host:19530`` for a
            Milvus server / cluster, or a Zilliz Cloud endpoint. Same code for all.
        token: ``"user:password"`` or an API key for a server or Zilliz Cloud. Never logged.
        collection_name: prefix of the two collections (``<name>_vectors``, ``<name>_pages``).
        dim: vector dimension; ``None`` takes the existing collection's, or 128 for a new one.
        model_name: the embedding model; recorded in a new collection and checked on reopen.
        index: ANN index of the vectors collection.
        candidates_per_vector: ANN hits gathered per query vector in the first stage (without cache).
        rerank_depth: how many candidate pages (at least ``k``) are rescored by exact MaxSim. ``None``
            (default): with the cache, it grows with the searched pages (1 in 20, at least 128, at
            most 1,024), since centroid scores separate fewer pages as the corpus grows; without the
            cache, where every candidate's vectors are fetched from the server, 96.
        cache: keep an in-process copy of the pages' vectors and search it instead of issuing Milvus
            requests (see :mod:`colpali_milvus.store.cache`). ``None`` (default) turns it on for Milvus
            Lite, which one process owns, and off for a server, which other processes may write to.
        n_centroids: centroids per page that the cache uses to gather candidates.
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
        uri: str | PathLike[str] = "milvus.db",
        *,
        token: str | None = None,
        collection_name: str = "colpali",
        dim: int | None = None,
        model_name: str | None = None,
        index: IndexConfig | None = None,
        candidates_per_vector: int = 50,
        rerank_depth: int | None = None,
        cache: bool | None = None,
        n_centroids: int = DEFAULT_CENTROIDS,
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
        self.uri = normalise_uri(uri)
        self.collection_name = collection_name
        self.vectors_collection = f"{collection_name}_vectors"
        self.pages_collection = f"{collection_name}_pages"
        use_cache = self.is_lite if cache is None else cache
        self.index = index or (IndexConfig.flat() if use_cache else IndexConfig())
        self.candidates_per_vector = candidates_per_vector
        self.rerank_depth = rerank_depth
        self._timeout = timeout
        self.retry_timeout = 0.0 if self.is_lite else float(retry_timeout)  # Lite runs in-process
        self._closed = False
        self._client = self._connect(token, db_name)
        self._dim, self._model_name, created = self._open_or_create(dim, model_name, create)
        self._cache = PageVectorCache(self._dim, n_centroids=n_centroids) if use_cache else None
        self._cache_loaded = created  # a new collection's cache is complete from the start
        self._cache_lock = threading.Lock()
        self._saved_cache_version = 0

    # -- public API -------------------------------------------------------------------------

    @property
    def is_lite(self) -> bool:
        return is_lite_uri(self.uri)

    @property
    def dim(self) -> int:
        return self._dim

    @property
    def model_name(self) -> str | None:
        return self._model_name

    @property
    def display_uri(self) -> str:
        """The uri without credentials, safe to log and show."""
        return _redact_uri(self.uri)

    def __repr__(self) -> str:  # never shows the token
        return (
            f"{type(self).__name__}(uri={self.display_uri!r}, "
            f"collection_name={self.collection_name!r}, dim={self._dim}, model_name={self._model_name!r})"
        )

    def claim_model(self, model_name: str) -> None:
        """Record ``model_name`` if the collection has none yet; refuse a different one."""
        if self._model_name == model_name:
            return
        if self._model_name is not None:
            raise IndexMismatchError(
                f"collection {self.collection_name!r} was built with model {self._model_name!r}, "
                f"not {model_name!r}; use another collection_name or the original model"
            )
        self._call(
            "record the model name",
            lambda: self._client.alter_collection_properties(
                self.pages_collection, properties={f"{_PROPERTY_PREFIX}model": model_name}
            ),
        )
        self._model_name = model_name

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
        replaced. Returns the page ids (new uuids where ``ids`` is not given).
        """
        n_pages = len(vectors)
        metadatas = list(metadatas) if metadatas is not None else [{} for _ in range(n_pages)]
        ids = list(ids) if ids is not None else [uuid.uuid4().hex for _ in range(n_pages)]
        texts = list(texts) if texts is not None else ["" for _ in range(n_pages)]
        if not (len(metadatas) == len(ids) == len(texts) == n_pages):
            raise InvalidInputError("vectors, metadatas, ids and texts must have the same length")
        if len(set(ids)) != len(ids):
            raise InvalidInputError("page ids must be unique within one add()")
        pages = [self._validate_page_vectors(v, f"page {i}") for i, v in enumerate(vectors)]
        columns = [_page_columns(metadata) for metadata in metadatas]
        for page_id in ids:
            if not isinstance(page_id, str) or not page_id or len(page_id.encode()) > MAX_ID_LENGTH:
                raise InvalidInputError(f"page ids must be non-empty strings of <= {MAX_ID_LENGTH} bytes")
        if not pages:
            return []

        # Clear every row of these ids first: a replaced page, or vector rows orphaned by a crash
        # before their commit marker, must not mix with the new rows. With the cache, committed ids
        # are known in memory and orphans were removed when it was loaded, so only replaced pages
        # cost a delete (a filtered delete scans every row on Milvus Lite).
        if self._cache is not None:
            cache = self._loaded_cache()
            self._delete_page_ids([page_id for page_id in ids if page_id in cache])
        else:
            self._delete_page_ids(ids)
        self._forget_cache_file()

        vector_rows = (
            {"page_id": page_id, "seq_id": seq, "vector": vector}
            for page_id, page in zip(ids, pages, strict=True)
            for seq, vector in enumerate(page.tolist())  # plain lists insert fastest
        )
        self._insert(self.vectors_collection, vector_rows)
        # Page rows last: they are the commit markers that make pages visible to search.
        page_rows = (
            {
                "page_id": page_id,
                **page_columns,
                "text": _truncate_utf8(text, MAX_TEXT_LENGTH),
                "n_vectors": int(page.shape[0]),
                "pooled": _pooled(page),
            }
            for page_id, page, page_columns, text in zip(ids, pages, columns, texts, strict=True)
        )
        # Upserted, not inserted: a Milvus server keeps both rows of a duplicated primary key and
        # answers queries and searches from different ones, so a retried or concurrent write of
        # the same page must not leave two page rows.
        self._insert(self.pages_collection, page_rows, upsert=True)
        if self._cache is not None:
            for page_id, page, page_columns, text in zip(ids, pages, columns, texts, strict=True):
                row = {"page_id": page_id, **page_columns, "text": text, "n_vectors": int(page.shape[0])}
                self._cache.put(page_id, page, row)
        return ids

    def search(
        self,
        query_vectors: FloatArray,
        k: int = 5,
        filter: Filter | None = None,
        *,
        expr: str | None = None,
    ) -> list[PageHit]:
        """The ``k`` best pages for a ``(n_q, dim)`` query, best first.

        Candidates come from one ANN request holding every query vector; each candidate is then
        scored by exact MaxSim over **all** of its vectors. ``filter`` is a structured filter (see
        :mod:`colpali_milvus.store.filters`); ``expr`` is a raw Milvus expression, ANDed with it,
        for callers who need the full Milvus language and accept responsibility for escaping.
        """
        query = self._validate_query(query_vectors)
        if not isinstance(k, int) or isinstance(k, bool) or k <= 0:
            raise InvalidInputError(f"k must be a positive integer, got {k!r}")
        where = _and(compile_filter(filter), expr)
        if self._cache is not None:
            cache = self._loaded_cache()
            allowed = set(self.page_ids(expr=where)) if where else None
            depth = max(
                k, self.rerank_depth or _cache_rerank_depth(len(allowed) if allowed is not None else len(cache))
            )
            candidate_ids = cache.candidates(query, depth, allowed)
            page_ids, vectors, offsets = cache.gather(candidate_ids)
            rows: Mapping[str, Mapping[str, Any]] = {page_id: cache.row(page_id) for page_id in page_ids}
        else:
            allowed_ids = self.page_ids(expr=where) if where else None
            if allowed_ids is not None and not allowed_ids:
                return []
            ann_filter = _in("page_id", allowed_ids) if allowed_ids else ""
            depth = max(k, self.rerank_depth or SERVER_RERANK_DEPTH)
            candidate_ids = rank_candidates(self._ann_hits(query, ann_filter), depth)
            rows = self._page_rows(candidate_ids)
            page_ids, vectors, offsets = self._fetch_vectors(rows)
        if not page_ids:
            return []
        scores = maxsim_flat(query, vectors, offsets)  # (n_pages,)
        best = np.argsort(-scores, kind="stable")[:k]
        return [
            PageHit(
                page_id=page_ids[i],
                score=float(scores[i]),
                metadata=_hit_metadata(rows[page_ids[i]]),
                text=str(rows[page_ids[i]].get("text") or ""),
            )
            for i in best
        ]

    def get_vectors(self, page_ids: Sequence[str]) -> dict[str, FloatArray]:
        """All stored vectors of the given (committed) pages, in sequence order."""
        if self._cache is not None:
            cache = self._loaded_cache()
            return {page_id: cache.vectors(page_id) for page_id in page_ids if page_id in cache}
        pages = self._page_rows(list(page_ids))
        found, vectors, offsets = self._fetch_vectors(pages)
        ends = [*offsets[1:].tolist(), vectors.shape[0]]
        return {page_id: vectors[start:end] for page_id, start, end in zip(found, offsets, ends, strict=True)}

    def existing_page_ids(self, page_ids: Sequence[str]) -> set[str]:
        """The subset of ``page_ids`` that are stored (committed)."""
        if self._cache is not None:
            cache = self._loaded_cache()
            return {page_id for page_id in page_ids if page_id in cache}
        found: set[str] = set()
        for batch in _batches(list(dict.fromkeys(page_ids)), _ID_BATCH):
            rows = self._query(self.pages_collection, _in("page_id", batch), ["page_id"], limit=len(batch))
            found.update(str(row["page_id"]) for row in rows)
        return found

    def page_ids(self, filter: Filter | None = None, *, expr: str | None = None) -> list[str]:
        """Ids of every stored page matching the filter (all pages without one)."""
        where = _and(compile_filter(filter), expr)
        return [str(row["page_id"]) for row in self._query_all(self.pages_collection, where, ["page_id"])]

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
        if source is None and doc_ids is None and page_ids is None and not filter:
            raise InvalidInputError("delete() needs a source, doc_ids, page_ids or filter")
        if (doc_ids is not None and not doc_ids) or (page_ids is not None and not page_ids):
            return []
        clauses: dict[str, Any] = dict(filter or {})
        if source is not None:
            clauses["source"] = str(source)
        if doc_ids is not None:
            clauses["doc_id"] = {"$in": list(doc_ids)}
        if page_ids is not None:
            clauses["page_id"] = {"$in": list(page_ids)}
        targets = self.page_ids(clauses)
        self._delete_page_ids(targets)
        return targets

    def count(self, filter: Filter | None = None) -> int:
        """Number of stored pages (matching ``filter``)."""
        return self._count(self.pages_collection, compile_filter(filter))

    def info(self) -> StoreInfo:
        index = self._vector_index_description()
        return StoreInfo(
            collection_name=self.collection_name,
            backend="milvus-lite" if self.is_lite else "milvus",
            model_name=self._model_name,
            dim=self._dim,
            schema_version=SCHEMA_VERSION,
            pages=self._count(self.pages_collection, ""),
            vectors=self._count(self.vectors_collection, ""),
            index_type=str(index.get("index_type") or self.index.index_type),
            indexed_vectors=_optional_int(index.get("indexed_rows")),
            pending_index_vectors=_optional_int(index.get("pending_index_rows")),
        )

    def flush(self) -> None:
        """Seal what was inserted so a server builds its ANN index over it (``info()`` shows progress).

        Never needed for correctness: unsealed rows are searched by brute force until indexed.
        """
        for name in (self.vectors_collection, self.pages_collection):
            self._call("flush", partial(self._client.flush, name))

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

    def drop(self) -> None:
        """Drop both collections (every page, irreversibly)."""
        for name in (self.pages_collection, self.vectors_collection):
            if self._call("drop the collections", partial(self._client.has_collection, name)):
                self._call("drop the collections", partial(self._client.drop_collection, name))

    def close(self) -> None:
        """Close the connection; for Milvus Lite also save the vector cache for a fast reopen."""
        cache, path = self._cache, self._cache_file()
        if cache is not None and path is not None and self._cache_loaded and cache.version != self._saved_cache_version:
            try:
                cache.save(path)
                self._saved_cache_version = cache.version
            except OSError:  # only costs a slower reopen
                logger.warning("could not save the vector cache to %s", path, exc_info=True)
        if not self._closed:
            self._disconnect()

    def _disconnect(self) -> None:
        """Close the client and, for Milvus Lite, release the file for other processes."""
        self._closed = True
        with self._translate("close the connection"):
            self._client.close()
        if self.is_lite:
            release_lite_database(self.uri)

    def __enter__(self) -> MilvusMultiVectorStore:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- connection and schema --------------------------------------------------------------

    def _connect(self, token: str | None, db_name: str | None) -> Any:
        from pymilvus import MilvusClient

        kwargs: dict[str, Any] = {"uri": self.uri}
        if token:
            kwargs["token"] = token
        if db_name:
            kwargs["db_name"] = db_name
        if self._timeout is not None:
            kwargs["timeout"] = self._timeout
        if self.is_lite:
            Path(self.uri).expanduser().parent.mkdir(parents=True, exist_ok=True)
        try:
            client = MilvusClient(**kwargs)
        except Exception as error:
            if self.is_lite and lite_file_locked(Path(self.uri)):
                raise StoreConnectionError(
                    f"the Milvus Lite database {self.uri} is open in another process (it holds "
                    f"{Path(self.uri) / LITE_LOCK_FILE}); Milvus Lite allows one process per database: "
                    "close the other process, or use a Milvus server for shared access"
                ) from None
            message = _scrub_text(getattr(error, "message", None) or str(error), token)
            raise StoreConnectionError(
                f"cannot connect to Milvus at {_redact_uri(self.uri)}: {type(error).__name__}: {message}"
            ) from _scrub(error, token)
        if self.is_lite:
            hold_lite_database(self.uri)
        return client

    def _open_or_create(self, dim: int | None, model_name: str | None, create: bool) -> tuple[int, str | None, bool]:
        has_pages = self._call("open the collections", partial(self._client.has_collection, self.pages_collection))
        has_vectors = self._call("open the collections", partial(self._client.has_collection, self.vectors_collection))
        if has_pages and has_vectors:
            return (*self._check_existing(dim, model_name), False)
        if has_pages or has_vectors:
            raise IndexMismatchError(
                f"collection {self.collection_name!r} is incomplete (only one of "
                f"{self.pages_collection!r}, {self.vectors_collection!r} exists)"
            )
        if not create:
            self._disconnect()
            raise StoreError(f"there is no collection {self.collection_name!r} at {_redact_uri(self.uri)}")
        dim = dim or DEFAULT_DIM
        self._create(dim, model_name)
        return dim, model_name, True

    def _create(self, dim: int, model_name: str | None) -> None:
        # Every index is built before the first load: a Milvus 2.3 server accepts a new index on a
        # loaded collection, then refuses to load that collection again ("can't change the index").
        with self._translate("create the collections"):
            for collection, fields, auto_id in (
                (self.vectors_collection, VECTOR_FIELDS_SPEC, True),
                (self.pages_collection, PAGE_FIELDS_SPEC, False),
            ):
                schema = _build_schema(fields, dim, auto_id=auto_id)
                self._client.create_collection(collection, schema=schema, consistency_level="Strong")
            vector_index = self._client.prepare_index_params()
            vector_index.add_index(
                field_name="vector",
                index_type=self.index.index_type,
                metric_type=self.index.metric_type,
                params=dict(self.index.build_params),
            )
            self._client.create_index(self.vectors_collection, vector_index)
            pooled_index = self._client.prepare_index_params()
            pooled_index.add_index(field_name="pooled", index_type="FLAT", metric_type="IP")
            self._client.create_index(self.pages_collection, pooled_index)
        has_inverted = self._server_version() >= (2, 4)  # older servers know only the per-type indexes
        for kind, collection in (("vectors", self.vectors_collection), ("pages", self.pages_collection)):
            for field_name in SCALAR_INDEXED_FIELDS[kind]:
                index_types = SCALAR_INDEX_TYPES[_field_kind(field_name)]
                self._create_scalar_index(collection, field_name, index_types if has_inverted else index_types[1:])
        with self._translate("create the collections"):
            for collection in (self.vectors_collection, self.pages_collection):
                self._client.load_collection(collection)
            # Recorded last: a collection with these properties is complete.
            properties = {
                f"{_PROPERTY_PREFIX}schema_version": str(SCHEMA_VERSION),
                f"{_PROPERTY_PREFIX}dim": str(dim),
            }
            if model_name:
                properties[f"{_PROPERTY_PREFIX}model"] = model_name
            self._client.alter_collection_properties(self.pages_collection, properties=properties)
        logger.info("created collections %s and %s (dim=%d)", self.vectors_collection, self.pages_collection, dim)

    def _create_scalar_index(self, collection: str, field_name: str, index_types: Sequence[str]) -> None:
        """The first of ``index_types`` this Milvus accepts for the field, or none (filters still work)."""
        from pymilvus.exceptions import MilvusException

        for index_type in index_types:
            params = self._client.prepare_index_params()
            params.add_index(field_name=field_name, index_type=index_type, index_name=f"{field_name}_idx")
            try:
                self._client.create_index(collection, params)
            except MilvusException as error:
                logger.debug("%s index on %s.%s refused: %s", index_type, collection, field_name, error)
                continue
            logger.debug("%s index on %s.%s", index_type, collection, field_name)
            return
        logger.info("no scalar index on %s.%s: this Milvus accepts none of %s", collection, field_name, index_types)

    def _server_version(self) -> tuple[int, int]:
        """``(major, minor)`` of a Milvus server; Milvus Lite and unknown versions count as current."""
        if self.is_lite:
            return (99, 0)
        version = str(self._call("read the server version", self._client.get_server_version))
        match = re.match(r"v?(\d+)\.(\d+)", version)
        return (int(match.group(1)), int(match.group(2))) if match else (99, 0)

    def _vector_index_description(self) -> dict[str, Any]:
        try:
            description = self._call(
                "describe the index", lambda: self._client.describe_index(self.vectors_collection, "vector")
            )
        except StoreError:
            return {}
        return dict(description or {})

    def _check_existing(self, dim: int | None, model_name: str | None) -> tuple[int, str | None]:
        def read_settings() -> dict[str, Any]:
            description: dict[str, Any] = self._client.describe_collection(self.pages_collection)
            for name in (self.vectors_collection, self.pages_collection):
                self._client.load_collection(name)
            return description

        description = self._call("read the collection settings", read_settings)
        properties = {
            key[len(_PROPERTY_PREFIX) :]: value
            for key, value in (description.get("properties") or {}).items()
            if key.startswith(_PROPERTY_PREFIX)
        }
        recorded_version = properties.get("schema_version")
        if recorded_version != str(SCHEMA_VERSION):
            raise IndexMismatchError(
                f"collection {self.collection_name!r} has schema version {recorded_version!r}; this "
                f"colpali-milvus writes version {SCHEMA_VERSION} (re-index into a new collection)"
            )
        recorded_dim = int(properties["dim"])
        if dim is not None and dim != recorded_dim:
            raise IndexMismatchError(f"collection {self.collection_name!r} holds {recorded_dim}-d vectors, not {dim}-d")
        recorded_model = properties.get("model") or None
        if model_name and recorded_model and model_name != recorded_model:
            raise IndexMismatchError(
                f"collection {self.collection_name!r} was built with model {recorded_model!r}, "
                f"not {model_name!r}; use another collection_name or the original model"
            )
        if model_name and not recorded_model:
            self._model_name = None
            self._dim = recorded_dim
            self.claim_model(model_name)
            return recorded_dim, model_name
        return recorded_dim, recorded_model

    # -- search stages ----------------------------------------------------------------------

    def _ann_hits(self, query: FloatArray, where: str) -> list[list[tuple[str, float]]]:
        """One ANN request for all query vectors: per query vector, ``(page_id, similarity)`` hits."""
        limit = self.candidates_per_vector
        params = dict(self.index.search_params)
        if "ef" in params:
            params["ef"] = max(int(params["ef"]), limit)  # HNSW needs ef >= limit
        results = self._call(
            "search",
            lambda: self._client.search(
                self.vectors_collection,
                data=query.tolist(),
                limit=limit,
                filter=where,
                output_fields=["page_id"],
                search_params={"metric_type": self.index.metric_type, "params": params},
            ),
        )
        return [[(str(hit["entity"]["page_id"]), float(hit["distance"])) for hit in hits] for hits in results]

    def _page_rows(self, page_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        """Committed page rows by id, in the order of ``page_ids`` (uncommitted ids are dropped)."""
        fields = ["page_id", *PAGE_FIELDS, "metadata", "text", "n_vectors"]
        found: dict[str, dict[str, Any]] = {}
        for batch in _batches(list(page_ids), _ID_BATCH):
            for row in self._query(self.pages_collection, _in("page_id", batch), fields, limit=len(batch)):
                found[str(row["page_id"])] = row
        return {page_id: found[page_id] for page_id in page_ids if page_id in found}

    def _fetch_vectors(
        self, pages: Mapping[str, Mapping[str, Any]]
    ) -> tuple[list[str], FloatArray, npt.NDArray[np.int64]]:
        """Every vector of every given page, page after page: ``(ids, (rows, dim), offsets)``.

        Pages are fetched in groups whose rows usually fit one query window, paged by primary key
        so no result is ever cut short. A vector row written twice (a retried or concurrent write)
        counts once; a page whose stored vectors differ from its recorded count is skipped, never
        scored on a subset.
        """
        by_page: dict[str, dict[int, list[float]]] = {page_id: {} for page_id in pages}
        fields = ["page_id", "seq_id", "vector"]
        for group in _windows(pages):
            for batch in self._iter_rows(self.vectors_collection, _in("page_id", group), fields):
                for row in batch:
                    by_page[str(row["page_id"])][int(row["seq_id"])] = row["vector"]

        ids: list[str] = []
        blocks: list[FloatArray] = []
        for page_id, page_rows in by_page.items():
            expected = int(pages[page_id]["n_vectors"])
            if sorted(page_rows) != list(range(expected)):
                logger.warning("skipping page %s: %d of %d vectors stored", page_id, len(page_rows), expected)
                continue
            ids.append(page_id)
            blocks.append(np.asarray([page_rows[seq] for seq in range(expected)], dtype=np.float32))
        if not blocks:
            return [], np.empty((0, self._dim), dtype=np.float32), np.empty(0, dtype=np.int64)
        return ids, np.concatenate(blocks), page_offsets(blocks)

    def _loaded_cache(self) -> PageVectorCache:
        """The vector cache, read back from Milvus on first use after opening an existing collection."""
        assert self._cache is not None
        if not self._cache_loaded:
            with self._cache_lock:
                if not self._cache_loaded:
                    self._fill_cache(self._cache)
                    self._cache_loaded = True
        return self._cache

    def _cache_file(self) -> Path | None:
        """Where a Milvus Lite store keeps its vector cache between runs: ``<file>.cache/<collection>.npz``."""
        return Path(f"{self.uri}.cache") / f"{self.collection_name}.npz" if self.is_lite else None

    def _forget_cache_file(self) -> None:
        """Delete the saved cache before the collection changes, so a crash cannot leave it stale."""
        path = self._cache_file()
        if path is not None and self._cache is not None:
            path.unlink(missing_ok=True)
            self._saved_cache_version = -1

    def _fill_cache(self, cache: PageVectorCache) -> None:
        fields = ["page_id", *PAGE_FIELDS, "metadata", "text", "n_vectors"]
        rows = {str(row["page_id"]): row for row in self._query_all(self.pages_collection, "", fields)}
        path = self._cache_file()
        if path is not None and path.is_file() and cache.load(path, rows):
            self._saved_cache_version = cache.version
            logger.info("loaded %d pages into the vector cache from %s", len(cache), path)
            return
        buffers = {page_id: np.empty((int(row["n_vectors"]), self._dim), np.float32) for page_id, row in rows.items()}
        filled: dict[str, set[int]] = {page_id: set() for page_id in rows}  # seq ids, duplicates counted once
        orphans: set[str] = set()
        for batch in self._iter_rows(self.vectors_collection, "", ["page_id", "seq_id", "vector"]):
            for row in batch:
                page_id, seq = str(row["page_id"]), int(row["seq_id"])
                buffer = buffers.get(page_id)
                if buffer is None:
                    orphans.add(page_id)  # vector rows whose page was never committed (a crash)
                elif 0 <= seq < buffer.shape[0]:
                    buffer[seq] = row["vector"]
                    filled[page_id].add(seq)
        if orphans:
            logger.info("removing the vector rows of %d uncommitted pages", len(orphans))
            for orphan_batch in _batches(sorted(orphans), _ID_BATCH):
                where = _in("page_id", orphan_batch)
                self._call("delete", partial(self._client.delete, self.vectors_collection, filter=where))
        for page_id, buffer in buffers.items():
            if len(filled[page_id]) != buffer.shape[0]:
                logger.warning("skipping page %s: %d of %d vectors stored", page_id, len(filled[page_id]), len(buffer))
                continue
            cache.put(page_id, buffer, rows[page_id])
        logger.info("loaded %d pages (%.0f MiB) into the vector cache", len(cache), cache.nbytes / 2**20)

    # -- validation -------------------------------------------------------------------------

    def _validate_page_vectors(self, vectors: Any, what: str) -> FloatArray:
        array = np.asarray(vectors, dtype=np.float32)
        if array.ndim != 2 or array.shape[0] == 0:
            raise InvalidInputError(f"{what}: expected a non-empty (n, {self._dim}) array, got shape {array.shape}")
        if array.shape[1] != self._dim:
            raise InvalidInputError(f"{what}: vectors have dim {array.shape[1]}, the collection holds {self._dim}")
        if not np.isfinite(array).all():
            raise InvalidInputError(f"{what}: vectors contain NaN or infinity")
        return array

    def _validate_query(self, query_vectors: Any) -> FloatArray:
        return self._validate_page_vectors(query_vectors, "query")

    # -- pymilvus plumbing ------------------------------------------------------------------

    @contextmanager
    def _translate(self, operation: str) -> Iterator[None]:
        """Translate pymilvus and transport errors into the library's StoreError tree."""
        from pymilvus.exceptions import MilvusException

        try:
            yield
        except MilvusException as error:
            message = getattr(error, "message", None) or str(error)
            error_type = StoreConnectionError if _looks_like_connection_error(error) else StoreError
            raise error_type(
                f"Milvus could not {operation} on {self.collection_name!r} at {_redact_uri(self.uri)}: {message}"
            ) from error
        except (ConnectionError, TimeoutError, OSError) as error:
            raise StoreConnectionError(
                f"Milvus could not {operation} on {self.collection_name!r} at {_redact_uri(self.uri)}: {error}"
            ) from error

    def _call(self, operation: str, request: Callable[[], T]) -> T:
        """Run one pymilvus request with its errors translated; retry it while the server is unavailable.

        A server that restarts or fails over refuses connections for seconds, then reloads its
        collections for a few more; such faults are retried with exponential backoff until
        ``retry_timeout`` is spent, then raised. Every request sent through here is safe to repeat:
        reads and deletes are idempotent, page rows are upserted, and a vector row written twice is
        read once.
        """
        deadline = time.monotonic() + self.retry_timeout
        backoff = _FIRST_BACKOFF_S
        attempt = 1
        while True:
            try:
                with self._translate(operation):
                    return request()
            except StoreError as error:
                recovering = _is_recovering(error.__cause__)
                if not (recovering or isinstance(error, StoreConnectionError)) or time.monotonic() + backoff > deadline:
                    raise
                logger.warning("attempt %d failed (%s); retrying in %.1f s", attempt, error, backoff)
                time.sleep(backoff)
                backoff = min(2 * backoff, _MAX_BACKOFF_S)
                attempt += 1
                if recovering:
                    self._reload()

    def _reload(self) -> None:
        """Ask a restarted server to load the collections (it reloads them by itself, this only hurries it)."""
        from pymilvus.exceptions import MilvusException

        for name in (self.vectors_collection, self.pages_collection):
            try:
                self._client.load_collection(name)
            except MilvusException as error:
                logger.debug("reloading %s: %s", name, error)

    def _query(self, collection: str, where: str, fields: list[str], limit: int) -> list[dict[str, Any]]:
        return self._call(
            "query", lambda: list(self._client.query(collection, filter=where, output_fields=fields, limit=limit))
        )

    def _query_all(self, collection: str, where: str, fields: list[str]) -> list[dict[str, Any]]:
        """All matching rows, paged by primary key so no server result window is exceeded."""
        return [row for batch in self._iter_rows(collection, where, fields) for row in batch]

    def _iter_rows(self, collection: str, where: str, fields: list[str]) -> Iterator[list[dict[str, Any]]]:
        """Matching rows in batches of at most one query window, in primary key order."""
        primary = "page_id" if collection == self.pages_collection else "pk"
        last: Any = None
        while True:
            bound = "" if last is None else f"{primary} > {_scalar_literal(last)}"
            batch = self._query(collection, _and(where, bound), list({primary, *fields}), QUERY_WINDOW)
            if not batch:
                return
            batch.sort(key=lambda row: row[primary])
            yield batch
            if len(batch) < QUERY_WINDOW:
                return
            last = batch[-1][primary]

    def _count(self, collection: str, where: str) -> int:
        result = self._call(
            "count rows", lambda: self._client.query(collection, filter=where, output_fields=["count(*)"])
        )
        return int(result[0]["count(*)"])

    def _insert(self, collection: str, rows: Iterator[dict[str, Any]], *, upsert: bool = False) -> None:
        batch: list[dict[str, Any]] = []
        for row in rows:
            batch.append(row)
            if len(batch) == _INSERT_BATCH_ROWS:
                self._insert_batch(collection, batch, upsert=upsert)
                batch = []
        if batch:
            self._insert_batch(collection, batch, upsert=upsert)

    def _insert_batch(self, collection: str, batch: list[dict[str, Any]], *, upsert: bool = False) -> None:
        write = self._client.upsert if upsert else self._client.insert
        self._call("upsert" if upsert else "insert", lambda: write(collection, batch))

    def _delete_page_ids(self, page_ids: Sequence[str]) -> None:
        # Page rows first: the pages stop being visible before their vectors go.
        if self._cache is not None:
            self._cache.remove(page_ids)
            self._forget_cache_file()
        for batch in _batches(list(page_ids), _ID_BATCH):
            where = _in("page_id", batch)
            self._call("delete", partial(self._client.delete, self.pages_collection, filter=where))
            self._call("delete", partial(self._client.delete, self.vectors_collection, filter=where))


# -- helpers (pure) -------------------------------------------------------------------------


def _build_schema(fields: Sequence[FieldSpec], dim: int, *, auto_id: bool) -> Any:
    from pymilvus import DataType, MilvusClient

    schema = MilvusClient.create_schema(auto_id=auto_id, enable_dynamic_field=False)
    for spec in fields:
        params = dict(spec.params)
        if spec.kind.endswith("_VECTOR"):
            params["dim"] = dim
        schema.add_field(spec.name, getattr(DataType, spec.kind), is_primary=spec.is_primary, **params)
    return schema


def _page_columns(metadata: Mapping[str, Any]) -> dict[str, Any]:
    """Split a metadata dict into typed page columns and the JSON ``metadata`` column."""
    if not isinstance(metadata, Mapping):
        raise InvalidInputError(f"metadata must be a mapping, got {type(metadata).__name__}")
    source = metadata.get("source", "")
    page = metadata.get("page", 0)
    if isinstance(page, bool) or not isinstance(page, int | np.integer):
        raise InvalidInputError(f"metadata 'page' must be an int, got {page!r}")
    label = metadata.get("page_label")
    doc_id, source = str(metadata.get("doc_id", "")), str(source)
    if len(source.encode()) > MAX_SOURCE_LENGTH:
        raise InvalidInputError(f"source is longer than {MAX_SOURCE_LENGTH} bytes")
    if len(doc_id.encode()) > MAX_ID_LENGTH:
        raise InvalidInputError(f"doc_id is longer than {MAX_ID_LENGTH} bytes")
    page_label = str(label) if label is not None else (str(page) if page else "")
    columns: dict[str, Any] = {
        "doc_id": doc_id,
        "source": source,
        "page": int(page),
        "page_label": _truncate_utf8(page_label, MAX_LABEL_LENGTH),
    }
    extra = {key: value for key, value in metadata.items() if key not in PAGE_FIELDS}
    for key in extra:
        if not isinstance(key, str):
            raise InvalidInputError(f"metadata keys must be strings, got {key!r}")
    columns["metadata"] = _json_safe(extra)
    return columns


def _json_safe(value: Any) -> Any:
    """Metadata as plain JSON values (numpy scalars unwrapped, paths as strings); rejects the rest."""
    if isinstance(value, Mapping):
        return {str(key): _json_safe(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(item) for item in value]
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, PathLike):
        return str(value)
    if isinstance(value, float) and not math.isfinite(value):
        raise InvalidInputError("metadata values must be finite numbers")
    if value is None or isinstance(value, str | int | float | bool):
        return value
    raise InvalidInputError(f"metadata values must be JSON values, got {type(value).__name__}")


def _hit_metadata(row: Mapping[str, Any]) -> dict[str, Any]:
    metadata = dict(row.get("metadata") or {})
    metadata.update({name: row[name] for name in PAGE_FIELDS if name in row})
    return metadata


def _pooled(page: FloatArray) -> list[float]:
    mean = page.mean(axis=0)
    norm = float(np.linalg.norm(mean))
    pooled: list[float] = (mean / norm if norm > 0 else mean).tolist()
    return pooled


def _truncate_utf8(text: str, max_bytes: int) -> str:
    encoded = text.encode("utf-8")
    if len(encoded) <= max_bytes:
        return text
    return encoded[:max_bytes].decode("utf-8", errors="ignore")


def _scalar_literal(value: Any) -> str:
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return str(int(value))


def _in(field: str, values: Sequence[str]) -> str:
    return compile_filter({field: {"$in": list(values)}})


def _and(*clauses: str | None) -> str:
    present = [clause for clause in clauses if clause]
    if len(present) <= 1:
        return present[0] if present else ""
    return " and ".join(f"({clause})" for clause in present)


def _batches(items: list[T], size: int) -> Iterator[list[T]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _windows(pages: Mapping[str, Mapping[str, Any]]) -> Iterator[list[str]]:
    """Group page ids so each group's vector rows fit one query window (a big page goes alone)."""
    group: list[str] = []
    rows = 0
    for page_id, row in pages.items():
        n = int(row["n_vectors"])
        if group and (rows + n > QUERY_WINDOW or len(group) == _ID_BATCH):
            yield group
            group, rows = [], 0
        group.append(page_id)
        rows += n
    if group:
        yield group


def _cache_rerank_depth(n_pages: int) -> int:
    """Candidates reranked exactly out of ``n_pages``: 1 in 20, within [128, 1024]."""
    return min(_CACHE_DEPTH_MAX, max(_CACHE_DEPTH_MIN, math.ceil(n_pages / _CACHE_DEPTH_FRACTION)))


def _field_kind(name: str) -> str:
    return next(spec.kind for spec in (*VECTOR_FIELDS_SPEC, *PAGE_FIELDS_SPEC) if spec.name == name)


def _optional_int(value: Any) -> int | None:
    return None if value is None else int(value)


def _redact_uri(uri: str) -> str:
    """The uri without any ``user:password@`` part."""
    return re.sub(r"(://)[^/@]*@", r"\1***@", uri)


def _looks_like_connection_error(error: Exception) -> bool:
    text = str(error).lower()
    return any(word in text for word in ("unavailable", "connect", "deadline", "timeout", "closed"))


# What a Milvus server answers while it recovers from a restart: collections and shard leaders come
# back a few seconds after the server accepts connections again.
_RECOVERING = ("not loaded", "no available shard", "shard leader", "not ready", "channel not available", "recovering")


def _is_recovering(error: BaseException | None) -> bool:
    text = str(error).lower() if error is not None else ""
    return any(phrase in text for phrase in _RECOVERING)


def _scrub(error: BaseException, token: str | None) -> BaseException:
    """Replace an exception whose message contains the token by one that does not."""
    if token and token in str(error):
        return StoreConnectionError(_scrub_text(str(error), token))
    return error


def _scrub_text(text: str, token: str | None) -> str:
    return text.replace(token, "***") if token else text
