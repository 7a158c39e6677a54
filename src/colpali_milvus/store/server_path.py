"""The server search path: candidate pages from ANN in Milvus, their vectors read back whole.

One ANN request carries every query vector; pages are ranked by a partial MaxSim from the hits.
Since a large page can take every hit of every query vector, the ranking is topped up from a search
of the pages' pooled vectors whenever it holds fewer than ``rerank_depth`` committed pages, so a
search returns ``k`` pages whenever ``k`` pages match. Nothing is kept between searches: other
processes may write to a server's collection at any time.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from colpali_milvus.search.candidates import rank_candidates
from colpali_milvus.search.maxsim import page_offsets
from colpali_milvus.store import reads
from colpali_milvus.store.collections import CollectionNames
from colpali_milvus.store.connection import MilvusConnection, in_ids
from colpali_milvus.store.rows import PageRecord
from colpali_milvus.store.schema import IndexConfig
from colpali_milvus.store.search_path import Candidates

__all__ = ["SERVER_RERANK_DEPTH", "ServerPath"]

FloatArray = npt.NDArray[np.float32]

SERVER_RERANK_DEPTH = 96
_MAX_SEARCH_LIMIT = 16_384  # a server's top-k cap


class ServerPath:
    """ANN candidates, then exact vectors fetched in query windows."""

    name = "server"

    def __init__(
        self,
        connection: MilvusConnection,
        names: CollectionNames,
        *,
        dim: int,
        index: IndexConfig,
        candidates_per_vector: int = 50,
        rerank_depth: int | None = None,
    ) -> None:
        self._connection = connection
        self._names = names
        self._dim = dim
        self._index = index
        self._candidates_per_vector = candidates_per_vector
        self._rerank_depth = rerank_depth or SERVER_RERANK_DEPTH

    def candidates(self, query: FloatArray, k: int, where: str) -> Candidates:
        depth = min(max(k, self._rerank_depth), _MAX_SEARCH_LIMIT)
        ann_filter = ""
        if where:
            allowed = reads.page_ids(self._connection, self._names, where)
            if not allowed:
                return _empty(self._dim)
            ann_filter = in_ids(allowed)
        ranked = rank_candidates(self._search_vectors(query, ann_filter), depth)
        rows = reads.page_rows(self._connection, self._names, ranked)  # committed pages only
        if len(rows) < depth:  # a big page took the hits, or few pages matched: top up from page summaries
            pooled = rank_candidates(self._search_pooled(query, where, depth), depth)
            extra = [page_id for page_id in pooled if page_id not in rows][: depth - len(rows)]
            rows.update(reads.page_rows(self._connection, self._names, extra))
        vectors = reads.page_vectors(self._connection, self._names, rows, self._dim)
        ids = [page_id for page_id in rows if page_id in vectors]
        if not ids:
            return _empty(self._dim)
        blocks = [vectors[page_id] for page_id in ids]
        return Candidates(ids, np.concatenate(blocks), page_offsets(blocks), [rows[page_id] for page_id in ids])

    def existing(self, page_ids: Sequence[str]) -> set[str]:
        return set(reads.page_rows(self._connection, self._names, list(page_ids)))

    def vectors(self, page_ids: Sequence[str]) -> dict[str, FloatArray]:
        rows = reads.page_rows(self._connection, self._names, list(page_ids))
        return reads.page_vectors(self._connection, self._names, rows, self._dim)

    def ids_to_clear(self, page_ids: Sequence[str]) -> list[str]:
        return list(page_ids)  # rows of a replaced page, or orphaned by a crash, may exist for any id

    def before_write(self) -> None:
        pass

    def written(self, records: Sequence[PageRecord]) -> None:
        pass

    def deleted(self, page_ids: Sequence[str]) -> None:
        pass

    def close(self, *, last_user: bool) -> None:
        pass

    def _search_vectors(self, query: FloatArray, where: str) -> list[list[tuple[str, float]]]:
        """One ANN request for all query vectors: per query vector, ``(page_id, similarity)`` hits."""
        limit = self._candidates_per_vector
        params = dict(self._index.search_params)
        if "ef" in params:
            params["ef"] = max(int(params["ef"]), limit)  # HNSW needs ef >= limit
        search_params: dict[str, Any] = {"metric_type": self._index.metric_type, "params": params}
        return self._search(self._names.vectors, "vector", query, limit, where, search_params)

    def _search_pooled(self, query: FloatArray, where: str, limit: int) -> list[list[tuple[str, float]]]:
        # The pooled vectors have their own FLAT/IP index (see collections.py).
        return self._search(self._names.pages, "pooled", query, limit, where, {"metric_type": "IP", "params": {}})

    def _search(
        self, collection: str, field: str, query: FloatArray, limit: int, where: str, params: dict[str, Any]
    ) -> list[list[tuple[str, float]]]:
        results = self._connection.search(
            collection, query.tolist(), field=field, limit=limit, where=where, params=params
        )
        return [[(str(hit["entity"]["page_id"]), float(hit["distance"])) for hit in hits] for hits in results]


def _empty(dim: int) -> Candidates:
    return Candidates([], np.empty((0, dim), np.float32), np.empty(0, np.int64), [])
