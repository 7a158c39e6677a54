"""First stage: turn per-query-vector ANN hits into a short, ranked list of candidate pages."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

__all__ = ["rank_candidates"]


def rank_candidates(hits_per_query_vector: Sequence[Iterable[tuple[str, float]]], limit: int) -> list[str]:
    """Rank pages by a partial MaxSim computed from ANN hits alone; keep the best ``limit``.

    Each element of ``hits_per_query_vector`` is the ANN result of one query vector as
    ``(page_id, similarity)`` pairs. A page's partial score sums, over query vectors, its best
    similarity among that vector's hits (0 where the page was not hit): a lower bound of its exact
    MaxSim when similarities are non-negative, good enough to choose which pages to rerank exactly.
    Ties keep first-seen order, so the result is deterministic.
    """
    if limit <= 0:
        return []
    partial: dict[str, float] = {}
    for hits in hits_per_query_vector:
        best: dict[str, float] = {}
        for page_id, similarity in hits:
            if similarity > best.get(page_id, float("-inf")):
                best[page_id] = similarity
        for page_id, similarity in best.items():
            partial[page_id] = partial.get(page_id, 0.0) + similarity
    ranked = sorted(partial, key=partial.__getitem__, reverse=True)  # stable: ties keep insertion order
    return ranked[:limit]
