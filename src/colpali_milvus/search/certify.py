"""Exact top-k from upper bounds: rescore pages best bound first, stop once no other page can enter.

Given an upper bound of every page's exact score (a code score plus its proven error, see
:mod:`.code_scan`), pages are scored exactly in descending bound order. Once ``k`` pages are scored
and the ``k``-th best exact score is at least the bound of the next page in line, no unscored page
can reach the top ``k``: its exact score is at most its bound, which is at most that of the page in
line. That is the threshold algorithm; bound order scores the fewest pages any proof by these
bounds can (every page whose bound exceeds the final ``k``-th score must be scored by any of them).

A page whose bound is ``-inf`` (filtered out) is never scored.

:func:`certified_search` first tightens the scan's bounds where it matters (:mod:`.refine`): the
pages that could still enter the top ``k`` are scored again on two int8 layers, in batches, with a
bound ~100x tighter, so the exact rescoring is left with the pages that truly compete, usually ``k``.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from colpali_milvus.search.code_scan import CodeBlock, encode_query, scan
from colpali_milvus.search.refine import tighten

__all__ = ["CertifiedPages", "CertifiedTopK", "certified_search", "certified_top_k"]

FloatArray = npt.NDArray[np.float32]
Float64Array = npt.NDArray[np.float64]


@dataclass(frozen=True, slots=True)
class CertifiedTopK:
    """The exact top ``k``: page indices, best first, with their exact scores."""

    indices: list[int]
    scores: list[float]
    rescored: int  # pages scored exactly to prove it


def certified_top_k(
    upper: Float64Array,
    k: int,
    exact_scores: Callable[[list[int]], Float64Array],
    *,
    first: int = 0,
    batch: int = 8,
) -> CertifiedTopK:
    """The ``k`` best pages by exact score, scoring as few as the bounds allow.

    Args:
        upper: ``(n_pages,)`` an upper bound of each page's exact score (``-inf``: not eligible).
        k: how many pages to return (fewer when fewer are eligible).
        exact_scores: the exact scores of the pages at the given indices, ``(len(indices),)``.
        first: pages scored in the first call, at least ``k`` (a caller's minimum rescoring depth).
        batch: pages scored per later call (the stop is checked between calls).
    """
    if k <= 0:
        raise ValueError(f"k must be positive, got {k}")
    upper = np.asarray(upper, dtype=np.float64)
    order = np.argsort(-upper, kind="stable")  # (n_pages,) best bound first
    eligible = int(np.count_nonzero(upper[order] > -np.inf))
    best: list[tuple[float, int, int]] = []  # min-heap of (score, -position, index): the top k so far
    position = 0
    while position < eligible:
        if len(best) == k and best[0][0] >= upper[order[position]]:
            break  # certified: no page from here on can beat the k-th exact score
        size = max(k, first) if position == 0 else batch
        indices = [int(index) for index in order[position : min(position + size, eligible)]]
        for offset, (index, score) in enumerate(zip(indices, exact_scores(indices).tolist(), strict=True)):
            entry = (float(score), -(position + offset), index)  # ties: the earlier page in line wins
            if len(best) < k:
                heapq.heappush(best, entry)
            elif entry > best[0]:
                heapq.heapreplace(best, entry)
        position += len(indices)
    ranked = sorted(best, reverse=True)
    return CertifiedTopK([index for _, _, index in ranked], [score for score, _, _ in ranked], position)


@dataclass(frozen=True, slots=True)
class CertifiedPages:
    """The exact top ``k`` pages by key, best first, with their exact scores."""

    keys: list[str]
    scores: list[float]
    rescored: int  # pages scored exactly to prove it
    refined: int  # pages scored on both int8 layers before that


def certified_search(
    query: FloatArray,
    blocks: Sequence[CodeBlock],
    k: int,
    exact_scores: Callable[[list[str]], Float64Array],
    *,
    allowed: set[str] | None = None,
    first: int = 0,
) -> CertifiedPages:
    """The exact top ``k`` of the pages in ``blocks`` (among ``allowed``): scan, refine, then certify.

    ``exact_scores`` gives the exact MaxSim of the pages with the given keys, ``(len(keys),)``.
    """
    if k <= 0:
        raise ValueError(f"k must be positive, got {k}")
    if allowed is not None:  # a block with no allowed page is not scanned
        blocks = tuple(block for block in blocks if not allowed.isdisjoint(block.keys))
    coded = encode_query(query)
    result = scan(coded, blocks)
    upper = result.upper  # (n_pages,)
    if allowed is not None:
        upper[[key not in allowed for key in result.keys]] = -np.inf
    refined = tighten(coded, blocks, result, upper, k)

    def exact(indices: list[int]) -> Float64Array:
        return exact_scores([result.keys[index] for index in indices])

    # One page per later call: after the refinement the pages in line are few and each one costs.
    top = certified_top_k(refined.upper, k, exact, first=first, batch=1)
    keys = [result.keys[index] for index in top.indices]
    return CertifiedPages(keys, top.scores, top.rescored, refined.refined)
