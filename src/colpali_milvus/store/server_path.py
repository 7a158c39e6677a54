"""The server search path: candidate pages from ANN in Milvus, ranked on codes, scored exactly.

Three steps, each reading less per page than the one before it reads in all:

1. **Candidates.** Two ANN requests carry every query vector: one over the page vectors, whose hits
   bound every page's MaxSim from above (see :mod:`~colpali_milvus.search.bounds`) and find pages
   by single patches, and one over the page centroids (the summaries collection), which finds a
   page by what sets it apart when most of its patches look like every other page's (forms,
   templates: HNSW neighbours of near-duplicate patches miss it). Pages are taken alternately best
   bound first and best centroid MaxSim first, up to ``rerank_depth``. Pages neither request
   reached follow in the order of a search of the pages' pooled vectors, so a search returns ``k``
   pages whenever ``k`` pages match.
2. **Codes.** Each candidate's int8 rerank codes (:mod:`~colpali_milvus.search.codes`, about
   180 kB of text for a ColPali page, against 530 kB of float32 rows that a server returns four
   times slower per byte) give a MaxSim within ~0.01 of the exact one.
3. **Exact.** The best ``k + EXACT_EXTRA`` pages by that score, and any candidate whose codes are
   missing or stale, are read back whole (digest-verified) and scored by exact MaxSim.

Nothing is kept between searches: other processes may write to a server's collection at any time.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from itertools import zip_longest
from typing import Any

import numpy as np
import numpy.typing as npt

from colpali_milvus.search.bounds import hit_bounds
from colpali_milvus.search.candidates import rank_candidates
from colpali_milvus.search.maxsim import maxsim_flat, page_offsets
from colpali_milvus.store import reads
from colpali_milvus.store.collections import CollectionNames
from colpali_milvus.store.connection import MilvusConnection, in_ids
from colpali_milvus.store.reads import SEARCH_CONSISTENCY
from colpali_milvus.store.schema import IndexConfig
from colpali_milvus.store.search_path import RankedPages, ReadsFromMilvus

__all__ = ["EXACT_EXTRA", "SERVER_RERANK_DEPTH", "ServerPath"]

FloatArray = npt.NDArray[np.float32]

SERVER_RERANK_DEPTH = 96  # candidate pages ranked on their codes per search
# Pages beyond k scored exactly: on the benchmark families at 1,000 pages, exhaustive MaxSim's top 5
# always lay within the int8 codes' top 8.
EXACT_EXTRA = 3
_MAX_SEARCH_LIMIT = 16_384  # a server's top-k cap
_RANK_FIELDS = ("page_id", "n_vectors", "digest")  # what ranking on codes needs of a page row


class ServerPath(ReadsFromMilvus):
    """ANN candidates, ranked on their codes; the best few read back and scored exactly."""

    name = "server"

    def __init__(
        self,
        connection: MilvusConnection,
        names: CollectionNames,
        *,
        dim: int,
        index: IndexConfig,
        candidates_per_vector: int = 100,
        rerank_depth: int | None = None,
    ) -> None:
        self._connection = connection
        self._names = names
        self._dim = dim
        self._index = index
        self._candidates_per_vector = candidates_per_vector
        self._rerank_depth = rerank_depth or SERVER_RERANK_DEPTH

    def ranked(self, query: FloatArray, k: int, where: str) -> RankedPages:
        depth = min(max(k, self._rerank_depth), _MAX_SEARCH_LIMIT)
        ann_filter = ""
        if where:
            allowed = reads.page_ids(self._connection, self._names, where, consistency=SEARCH_CONSISTENCY)
            if not allowed:
                return RankedPages([], [], [])
            ann_filter = in_ids(allowed)
        with ThreadPoolExecutor(2) as pool:  # the two ANN requests, at once
            centroid_hits = pool.submit(self._search_centroids, query, ann_filter)
            hits = self._search_vectors(query, ann_filter)
            by_centroids = rank_candidates(centroid_hits.result(), depth)
        bounds = hit_bounds(hits, [min((similarity for _, similarity in row), default=0.0) for row in hits])
        ids = _alternate(bounds.order, by_centroids)[:depth]
        if len(ids) < depth:  # pages no query vector hit, in the order of their pooled vectors
            taken = set(ids)
            pooled = rank_candidates(self._search_pooled(query, where, depth), depth)
            ids += [page_id for page_id in pooled if page_id not in taken][: depth - len(ids)]
        connection, names, consistency = self._connection, self._names, SEARCH_CONSISTENCY
        lean = reads.page_rows(connection, names, ids, fields=_RANK_FIELDS, consistency=consistency)  # committed
        approximate: dict[str, float] = {}
        for batch in reads.iter_page_codes(connection, names, list(lean), self._dim, consistency=consistency):
            usable = [(page_id, vectors) for page_id, digest, vectors in batch if lean[page_id]["digest"] == digest]
            if usable:  # scored while the next batches are read
                blocks = [vectors for _, vectors in usable]
                scores = maxsim_flat(query, np.concatenate(blocks), page_offsets(blocks))  # (pages,)
                approximate.update(zip((page_id for page_id, _ in usable), scores.tolist(), strict=True))
        ranked = sorted(approximate, key=approximate.__getitem__, reverse=True)  # stable: candidate order breaks ties
        exact_ids = [page_id for page_id in lean if page_id not in approximate] + ranked[: k + EXACT_EXTRA]
        rows = reads.page_rows(connection, names, exact_ids, consistency=consistency)
        vectors = reads.page_vectors(
            connection, names, rows, self._dim, consistency=consistency, parallel=reads.PARALLEL_READS
        )
        found = [page_id for page_id in exact_ids if page_id in vectors]
        if not found:
            return RankedPages([], [], [])
        blocks = [vectors[page_id] for page_id in found]
        exact = maxsim_flat(query, np.concatenate(blocks), page_offsets(blocks))  # (pages,)
        best = np.argsort(-exact, kind="stable")[:k]
        return RankedPages([found[i] for i in best], [float(exact[i]) for i in best], [rows[found[i]] for i in best])

    def _search_vectors(self, query: FloatArray, where: str) -> list[list[tuple[str, float]]]:
        """One ANN request for all query vectors: per query vector, ``(page_id, similarity)`` hits."""
        limit = self._candidates_per_vector
        return self._search(self._names.vectors, "vector", query, limit, where, self._ann_params(limit))

    def _search_centroids(self, query: FloatArray, where: str) -> list[list[tuple[str, float]]]:
        limit = self._candidates_per_vector
        return self._search(self._names.summaries, "centroid", query, limit, where, self._ann_params(limit))

    def _ann_params(self, limit: int) -> dict[str, Any]:
        params = dict(self._index.search_params)
        if "ef" in params:
            params["ef"] = max(int(params["ef"]), limit)  # HNSW needs ef >= limit
        return {"metric_type": self._index.metric_type, "params": params}

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


def _alternate(first: list[str], second: list[str]) -> list[str]:
    """Both orders merged by taking from each in turn, each page once (where it first appears)."""
    merged = (page_id for pair in zip_longest(first, second) for page_id in pair if page_id is not None)
    return list(dict.fromkeys(merged))
