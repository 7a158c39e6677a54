"""Exact top-k by bounds: score pages in the order of an upper bound of their MaxSim, stop once certified.

A nearest-neighbour search of each query vector over all page vectors (in memory or in Milvus)
bounds every page's MaxSim from above. If query vector ``i`` kept its hits down to similarity
``floor[i]`` (its last hit), then a page's best similarity to ``i`` is its best hit when it was
hit, and at most ``floor[i]`` when it was not, since any better vector would have been a hit::

    upper(P) = sum_i ( best hit of P for query vector i   if P was hit by i
                       floor[i]                           otherwise )

The server search path takes its candidates in the order of that bound. The bound holds to the
extent the neighbour search is exact; Milvus's HNSW is approximate and can miss a hit, so the
order is a ranking heuristic there, not a proof (stopping on it lost recall: 0.73 -> 0.23 on the
``needle`` benchmark family at 200 pages).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

__all__ = ["Bounds", "hit_bounds"]


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
