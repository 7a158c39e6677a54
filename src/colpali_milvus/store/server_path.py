"""The server search path: candidate pages from ANN in Milvus, scored exactly in bound order.

One ANN request carries every query vector; its hits bound every page's MaxSim from above (see
:mod:`~colpali_milvus.search.bounds`), and ``rerank_depth`` pages are read back and scored exactly,
best bound first, one query window at a time. The ANN index is approximate (HNSW), so its bounds
only order the pages: stopping on them lost recall on near-tied pages (issue 10's ``needle``
corpus), so every search reads its whole depth. Pages that no query vector hit follow in the
order of a search of the pages' pooled vectors, so a search returns ``k`` pages whenever ``k``
pages match. Nothing is kept between searches: other processes may write to a server's collection at any
time.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from colpali_milvus.search.bounds import certified_top_k, hit_bounds
from colpali_milvus.search.candidates import rank_candidates
from colpali_milvus.search.maxsim import maxsim_flat, page_offsets
from colpali_milvus.store import reads
from colpali_milvus.store.collections import CollectionNames
from colpali_milvus.store.connection import MilvusConnection, in_ids
from colpali_milvus.store.rows import PageRecord
from colpali_milvus.store.schema import IndexConfig
from colpali_milvus.store.search_path import Candidates

__all__ = ["SERVER_RERANK_DEPTH", "ServerPath"]

FloatArray = npt.NDArray[np.float32]

SERVER_RERANK_DEPTH = 96  # the most pages one search reads back
_READ_BATCH = 15  # pages read back and scored per step (about one query window of ColPali pages)
_MAX_SEARCH_LIMIT = 16_384  # a server's top-k cap
# A Strong read waits for the server's next time tick: 0.2-0.4 s per request on Milvus 2.3, which a
# search pays on every request. Session reads see every write of this process at once, and other
# processes' writes once the server has applied them (a page seen half-applied fails its digest
# and is skipped, never scored on part of its vectors).
SEARCH_CONSISTENCY = "Session"


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
        budget = min(max(k, self._rerank_depth), _MAX_SEARCH_LIMIT)
        ann_filter = ""
        if where:
            allowed = reads.page_ids(self._connection, self._names, where, consistency=SEARCH_CONSISTENCY)
            if not allowed:
                return _empty(self._dim)
            ann_filter = in_ids(allowed)
        hits = self._search_vectors(query, ann_filter)
        floors = [min((similarity for _, similarity in row), default=0.0) for row in hits]
        bounds = hit_bounds(hits, floors)

        def ordered() -> Iterator[tuple[str, float]]:
            yield from ((page_id, bounds.upper[page_id]) for page_id in bounds.order)
            # Pages no query vector hit: in the order of their pooled vectors (one more request).
            pooled = rank_candidates(self._search_pooled(query, where, budget), budget)
            yield from ((page_id, bounds.floor) for page_id in pooled if page_id not in bounds.upper)

        pages: dict[str, tuple[dict[str, Any], FloatArray]] = {}

        def score(page_ids: list[str]) -> npt.NDArray[np.float32]:
            consistency = SEARCH_CONSISTENCY
            rows = reads.page_rows(self._connection, self._names, page_ids, consistency=consistency)  # committed only
            vectors = reads.page_vectors(self._connection, self._names, rows, self._dim, consistency=consistency)
            pages.update((page_id, (rows[page_id], vectors[page_id])) for page_id in vectors)
            found = [page_id for page_id in page_ids if page_id in vectors]
            blocks = [vectors[page_id] for page_id in found]
            exact = maxsim_flat(query, np.concatenate(blocks), page_offsets(blocks)) if blocks else np.empty(0)
            by_id = dict(zip(found, exact.tolist(), strict=True))
            return np.array([by_id.get(page_id, -np.inf) for page_id in page_ids], dtype=np.float32)

        best = certified_top_k(ordered(), score, k, budget=budget, batch=_READ_BATCH, stop_early=False)
        if not best.page_ids:
            return _empty(self._dim)
        blocks = [pages[page_id][1] for page_id in best.page_ids]
        return Candidates(
            best.page_ids,
            np.concatenate(blocks),
            page_offsets(blocks),
            [pages[page_id][0] for page_id in best.page_ids],
        )

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
            collection,
            query.tolist(),
            field=field,
            limit=limit,
            where=where,
            params=params,
            consistency=SEARCH_CONSISTENCY,
        )
        return [[(str(hit["entity"]["page_id"]), float(hit["distance"])) for hit in hits] for hits in results]


def _empty(dim: int) -> Candidates:
    return Candidates([], np.empty((0, dim), np.float32), np.empty(0, np.int64), [])
