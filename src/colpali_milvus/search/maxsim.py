"""Exact late-interaction (MaxSim) scoring, vectorised: one matmul and one segment max.

For a query ``Q`` of shape ``(n_q, d)`` and a page ``P`` of shape ``(n_p, d)``::

    MaxSim(Q, P) = sum_i max_j  Q[i] . P[j]

This equals colpali-engine's ``processor.score_multi_vector``, which zero-pads a batch of pages to
one length. Padding can only differ from the definition when every real similarity of a query vector
to a shorter page is negative (a padded zero then wins the max); pages here are never padded, so the
score is always the exact definition.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

__all__ = ["maxsim", "maxsim_each", "maxsim_flat", "page_offsets"]

FloatArray = npt.NDArray[np.float32]

# Bounds the (rows x n_q) similarity block held at once: 2**20 rows x 32 query vectors = 128 MiB.
_ROWS_PER_BLOCK = 1 << 20


def maxsim_flat(query: FloatArray, vectors: FloatArray, offsets: npt.NDArray[np.int64]) -> FloatArray:
    """MaxSim of one query against many pages stored back to back.

    Args:
        query: ``(n_q, d)`` query vectors.
        vectors: ``(n_rows, d)`` all pages' vectors, page after page.
        offsets: ``(n_pages,)`` start row of each page in ``vectors``, strictly increasing, first 0;
            page ``i`` spans ``vectors[offsets[i]:offsets[i + 1]]`` (the last one runs to the end).

    Returns:
        ``(n_pages,)`` float32 scores.
    """
    query = np.asarray(query, dtype=np.float32)
    vectors = np.asarray(vectors, dtype=np.float32)
    offsets = np.asarray(offsets, dtype=np.int64)
    if offsets.size == 0:
        return np.empty(0, dtype=np.float32)
    ends = np.append(offsets[1:], vectors.shape[0])
    if offsets[0] != 0 or np.any(ends <= offsets):
        raise ValueError("offsets must start at 0 and give every page at least one vector")

    scores = np.empty(offsets.size, dtype=np.float32)
    first = 0
    while first < offsets.size:
        # Take whole pages until the block holds about _ROWS_PER_BLOCK rows (at least one page).
        last = int(np.searchsorted(ends, offsets[first] + _ROWS_PER_BLOCK, side="right"))
        last = max(last, first + 1)
        start, stop = int(offsets[first]), int(ends[last - 1])
        sims = _similarities(vectors[start:stop], query)  # (rows, n_q)
        best = np.maximum.reduceat(sims, offsets[first:last] - start, axis=0)  # (pages, n_q)
        scores[first:last] = best.sum(axis=1)  # (pages,)
        first = last
    return scores


def _similarities(vectors: FloatArray, query: FloatArray) -> FloatArray:
    """``(rows, d) x (n_q, d) -> (rows, n_q)``, float32.

    Where torch is already loaded (the embedder, the cached path's code scan) its thread pool does
    the product too: alternating torch's pool with OpenBLAS's, whose threads spin for a while after
    each call, made a cached search on two cores 2-3x slower (21 ms -> 57 ms at 1,000 pages).
    """
    torch = sys.modules.get("torch")
    if torch is None:
        return vectors @ query.T
    product = torch.from_numpy(np.ascontiguousarray(vectors)) @ torch.from_numpy(np.ascontiguousarray(query)).T
    result: FloatArray = product.numpy()
    return result


def maxsim(query: FloatArray, pages: Sequence[FloatArray]) -> FloatArray:
    """MaxSim of one ``(n_q, d)`` query against each ``(n_i, d)`` page; returns ``(n_pages,)``."""
    if len(pages) == 0:
        return np.empty(0, dtype=np.float32)
    return maxsim_flat(query, np.concatenate(pages, axis=0), page_offsets(pages))


def maxsim_each(query: FloatArray, pages: Sequence[FloatArray]) -> npt.NDArray[np.float64]:
    """MaxSim of one ``(n_q, d)`` query against each page, one product per page (no concatenation).

    For a few pages taken from a large arena (the certified rescoring), where copying them back to
    back would cost more than scoring them. Returns ``(n_pages,)`` scores, each the same float32
    number :func:`maxsim_flat` gives.
    """
    query = np.asarray(query, dtype=np.float32)
    scores = np.empty(len(pages), dtype=np.float64)
    for i, page in enumerate(pages):
        best = _similarities(np.asarray(page, dtype=np.float32), query).max(axis=0)  # (n_q,)
        scores[i] = best.sum(dtype=np.float32)
    return scores


def page_offsets(pages: Sequence[npt.NDArray[np.generic]]) -> npt.NDArray[np.int64]:
    """``(n_pages,)`` start row of each page once the pages are concatenated, as ``maxsim_flat`` wants."""
    lengths = np.fromiter((page.shape[0] for page in pages), dtype=np.int64, count=len(pages))
    return np.concatenate(([0], np.cumsum(lengths)[:-1])).astype(np.int64)
