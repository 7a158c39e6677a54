"""Exact exhaustive MaxSim over every stored page: the reference the engine's candidates are measured by.

Pages are streamed in batches (``store.page_ids()`` then ``store.get_vectors(batch)``), so memory
holds one batch of vectors and, per query, the best ``depth`` pages so far. Several queries are
scored per matrix product (their vectors side by side), which reads each batch of page vectors once
per group of queries instead of once per query.

On the cached path (Milvus Lite's default) the vectors come from the in-process copy; on a server
every page's vectors are fetched once, which takes as long as reading the whole collection.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from colpali_milvus.errors import InvalidInputError

if TYPE_CHECKING:
    from colpali_milvus.store.milvus import MilvusMultiVectorStore

__all__ = ["ExactRanking", "exhaustive_search", "maxsim_many"]

FloatArray = npt.NDArray[np.float32]

#: Bounds the (rows x query columns) similarity block held at once: 2**24 float32 = 64 MiB.
_CELLS_PER_BLOCK = 1 << 24
#: Query vectors scored side by side in one product.
_COLUMNS_PER_GROUP = 256


@dataclass(frozen=True)
class ExactRanking:
    """One query's exhaustive result: the best ``depth`` pages, and the exact scores of the pages asked for.

    Ties are broken by page id, so the ranking is the same on every run.
    """

    page_ids: tuple[str, ...]
    scores: tuple[float, ...]
    wanted: dict[str, float] = field(default_factory=dict)


def maxsim_many(queries: Sequence[FloatArray], vectors: FloatArray, offsets: npt.NDArray[np.int64]) -> FloatArray:
    """MaxSim of each query against each page stored back to back: ``(n_queries, n_pages)``.

    Row ``i`` equals ``maxsim_flat(queries[i], vectors, offsets)`` (up to float32 rounding); queries
    are scored in groups of about 256 vectors per matrix product.
    """
    n_pages = len(offsets)
    scores = np.empty((len(queries), n_pages), dtype=np.float32)
    if n_pages == 0 or not queries:
        return scores
    vectors = np.asarray(vectors, dtype=np.float32)
    ends = np.append(offsets[1:], vectors.shape[0])
    for first, last in _groups([len(q) for q in queries], _COLUMNS_PER_GROUP):
        block_queries = np.concatenate([np.asarray(q, dtype=np.float32) for q in queries[first:last]])
        columns = np.cumsum([0, *(len(q) for q in queries[first : last - 1])])  # each query's first column
        rows_per_block = max(1, _CELLS_PER_BLOCK // block_queries.shape[0])
        page = 0
        while page < n_pages:
            # Whole pages until the block holds about rows_per_block rows (at least one page).
            stop = max(page + 1, int(np.searchsorted(ends, offsets[page] + rows_per_block, side="right")))
            start_row, end_row = int(offsets[page]), int(ends[stop - 1])
            sims = vectors[start_row:end_row] @ block_queries.T  # (rows, columns)
            best = np.maximum.reduceat(sims, offsets[page:stop] - start_row, axis=0)  # (pages, columns)
            scores[first:last, page:stop] = np.add.reduceat(best, columns, axis=1).T
            page = stop
    return scores


def _groups(lengths: Sequence[int], budget: int) -> list[tuple[int, int]]:
    """Consecutive ``[first, last)`` runs whose lengths sum to at most ``budget`` (at least one each)."""
    groups: list[tuple[int, int]] = []
    first, total = 0, 0
    for i, length in enumerate(lengths):
        if i > first and total + length > budget:
            groups.append((first, i))
            first, total = i, 0
        total += length
    groups.append((first, len(lengths)))
    return groups


def exhaustive_search(
    store: MilvusMultiVectorStore,
    queries: Sequence[FloatArray],
    depth: int,
    *,
    wanted: Sequence[Collection[str]] | None = None,
    batch_pages: int = 64,
    progress: Callable[[int, int], None] | None = None,
) -> list[ExactRanking]:
    """The best ``depth`` pages of every stored page for each query, by exact MaxSim, plus wanted scores.

    Args:
        store: the collection to score, every committed page of it.
        queries: ``(n_q, dim)`` arrays.
        depth: how many of the best pages to keep per query.
        wanted: per query, page ids whose exact scores to report too (e.g. what an engine returned).
        batch_pages: pages read and scored per step (bounds memory).
        progress: called as ``progress(pages_done, pages_total)`` after each batch.
    """
    if depth <= 0 or batch_pages <= 0:
        raise InvalidInputError("depth and batch_pages must be positive")
    ids = sorted(store.page_ids())  # ties are broken by page id: position in this order
    n_q = len(queries)
    best_scores = np.full((n_q, 0), -np.inf, dtype=np.float32)
    best_index = np.zeros((n_q, 0), dtype=np.int64)
    asked: dict[str, list[int]] = {}
    for query, pages in enumerate(wanted or []):
        for page_id in pages:
            asked.setdefault(page_id, []).append(query)
    found: list[dict[str, float]] = [{} for _ in range(n_q)]
    done = 0
    for first in range(0, len(ids), batch_pages):
        batch = ids[first : first + batch_pages]
        vectors = store.get_vectors(batch)
        present = [(first + i, page_id) for i, page_id in enumerate(batch) if page_id in vectors]
        if present:
            arrays = [vectors[page_id] for _, page_id in present]
            lengths = np.fromiter((len(a) for a in arrays), dtype=np.int64, count=len(arrays))
            offsets = np.concatenate(([0], np.cumsum(lengths)[:-1])).astype(np.int64)
            scores = maxsim_many(queries, np.concatenate(arrays), offsets)  # (n_q, pages)
            positions = np.array([position for position, _ in present], dtype=np.int64)
            best_scores, best_index = _merge(best_scores, best_index, scores, positions, depth)
            for column, (_, page_id) in enumerate(present):
                for query in asked.get(page_id, ()):
                    found[query][page_id] = float(scores[query, column])
        done += len(batch)
        if progress is not None:
            progress(done, len(ids))
    return [
        ExactRanking(
            page_ids=tuple(ids[i] for i in best_index[query]),
            scores=tuple(float(s) for s in best_scores[query]),
            wanted=found[query],
        )
        for query in range(n_q)
    ]


def _merge(
    scores: FloatArray,
    index: npt.NDArray[np.int64],
    new_scores: FloatArray,
    new_positions: npt.NDArray[np.int64],
    depth: int,
) -> tuple[FloatArray, npt.NDArray[np.int64]]:
    """The best ``depth`` of the kept and the new pages per query: higher score first, then lower position."""
    all_scores = np.concatenate([scores, new_scores], axis=1)
    all_index = np.concatenate([index, np.broadcast_to(new_positions, new_scores.shape)], axis=1)
    order = np.lexsort((all_index, -all_scores), axis=-1)[:, :depth]
    return np.take_along_axis(all_scores, order, axis=1), np.take_along_axis(all_index, order, axis=1)
