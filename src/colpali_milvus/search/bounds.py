"""Exact top-k by bounds: score pages in the order of an upper bound of their MaxSim, stop once certified.

A nearest-neighbour search of each query vector over all page vectors (in memory or in Milvus)
bounds every page's MaxSim from above. If query vector ``i`` kept its hits down to similarity
``floor[i]`` (its last hit), then a page's best similarity to ``i`` is its best hit when it was
hit, and at most ``floor[i]`` when it was not, since any better vector would have been a hit::

    upper(P) = sum_i ( best hit of P for query vector i   if P was hit by i
                       floor[i]                           otherwise )

Pages are then scored exactly, in batches, in decreasing order of that bound; once the ``k``-th
best exact score reaches the next page's bound, no unscored page can enter the top ``k``: the
result is the exact top ``k``. The bound holds to the extent the neighbour search is exact (an
approximate index can miss a hit), and a budget caps the pages scored when bounds are loose (near
ties across many pages), so the result is *certified* only when the stop rule fired.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

__all__ = ["Bounds", "TopK", "certified_top_k", "hit_bounds"]


@dataclass(frozen=True, slots=True)
class Bounds:
    """Upper bounds of pages' MaxSim from nearest-neighbour hits."""

    order: list[str]  # the pages some query vector hit, highest bound first (ties: first hit first)
    upper: dict[str, float]  # their bounds
    floor: float  # the bound of every page no query vector hit


def hit_bounds(hits_per_query_vector: Sequence[Iterable[tuple[str, float]]], floors: Sequence[float]) -> Bounds:
    """Bounds from each query vector's hits ``(page_id, similarity)`` and the similarity of its last hit.

    ``floors[i]`` must bound the similarity of query vector ``i`` to every vector it did not hit
    (its last hit's similarity for a search that returned its full limit).
    """
    if len(hits_per_query_vector) != len(floors):
        raise ValueError("one floor per query vector")
    floor_total = float(np.sum(np.asarray(floors, dtype=np.float64)))
    gain: dict[str, float] = {}  # sum over hitting query vectors of (best hit - floor)
    for hits, floor in zip(hits_per_query_vector, floors, strict=True):
        best: dict[str, float] = {}
        for page_id, similarity in hits:
            if similarity > best.get(page_id, -np.inf):
                best[page_id] = similarity
        for page_id, similarity in best.items():
            gain[page_id] = gain.get(page_id, 0.0) + max(0.0, similarity - floor)
    order = sorted(gain, key=gain.__getitem__, reverse=True)  # stable: ties keep first-hit order
    return Bounds(order, {page_id: floor_total + gain[page_id] for page_id in order}, floor_total)


@dataclass(frozen=True, slots=True)
class TopK:
    """The best pages found, best first, with their exact scores."""

    page_ids: list[str]
    scores: list[float]
    scored: int  # pages scored exactly
    certified: bool  # the stop rule proved that no unscored page can enter the top k


def certified_top_k(
    ordered: Iterable[tuple[str, float]],
    score: Callable[[list[str]], npt.NDArray[np.float32]],
    k: int,
    *,
    budget: int,
    batch: int,
    covers_all: bool = False,
    stop_early: bool = True,
) -> TopK:
    """Score ``ordered`` pages (``(page_id, upper bound)``, bound non-increasing) until the top ``k`` is certified.

    ``ordered`` may be lazy: it is consumed only as far as needed. ``score(page_ids)`` returns their
    exact scores (``-inf`` for a page that turned out not to exist, which then never counts). Stops
    when the ``k``-th best exact score is at least the next page's bound (certified), when
    ``ordered`` runs out (certified if ``covers_all``: it listed every page), or after ``budget``
    pages (not certified). ``stop_early=False`` ignores the bounds (when they come from an
    approximate neighbour search they only order the pages) and scores up to ``budget`` pages.
    """
    scored: dict[str, float] = {}
    pending = iter(ordered)
    upcoming = next(pending, None)
    certified = False
    while upcoming is not None and len(scored) < budget:
        if stop_early and len(scored) >= k and _kth(scored, k) >= upcoming[1]:
            certified = True
            break
        take: list[str] = []
        while upcoming is not None and len(take) < min(batch, budget - len(scored)):
            if upcoming[0] not in scored and upcoming[0] not in take:
                take.append(upcoming[0])
            upcoming = next(pending, None)
        for page_id, value in zip(take, score(take), strict=True):
            scored[page_id] = float(value)
    if upcoming is None and covers_all:
        certified = True  # every page was scored
    found = [page_id for page_id in scored if np.isfinite(scored[page_id])]
    best = sorted(found, key=scored.__getitem__, reverse=True)[:k]  # stable: ties keep bound order
    return TopK(best, [scored[page_id] for page_id in best], len(scored), certified)


def _kth(scored: dict[str, float], k: int) -> float:
    values = np.fromiter(scored.values(), dtype=np.float64, count=len(scored))
    return float(np.partition(values, len(values) - k)[len(values) - k])
