"""Retrieval metrics of one ranked list against judgments, and against exhaustive MaxSim. Pure functions.

Against the judgments (``grades`` maps page id to a grade > 0; unlisted pages are not relevant):

* **nDCG@k**, with the exponential gain ``2**grade - 1`` and the discount ``log2(rank + 1)`` (rank
  1-based), over the ideal ordering of *all* judged pages; with binary grades it is the same as the
  linear gain. 0 when no page is judged relevant. Any non-negative integer grade is taken, as
  trec_eval does: the gains of a ranking and of its ideal are both computed divided by
  ``2**G`` (``G`` the highest judged grade), which cancels in their ratio, so a grade of 1024 or
  more (whose gain is past a float's range) gives the exact nDCG rather than an overflow.
* **recall@k**: the share of the judged pages found in the top ``k``.
* **reciprocal rank**: ``1 / rank`` of the first judged page in the ranking (0 if none); its mean over
  queries is MRR (cut at the ranking's length).
* **hit@k**: 1 if a judged page is in the top ``k``.

A ranking is taken as given: the store returns pages best first, and how it orders equal scores is
part of what is measured.

Against exhaustive MaxSim (exact scores of every page, ``reference`` sorted best first), where ties
must not count as misses: the reference top ``k`` is any set of ``k`` pages whose scores are all at
least its ``k``-th score ``s_k`` (within ``rtol`` relative). **exact recall@k** is the largest overlap
of the engine's top ``k`` with such a set: the engine's pages scoring above ``s_k`` plus as many of
those tied at ``s_k`` as the places left; **agreement@k** is whether that overlap is all ``k``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

from colpali_milvus.errors import InvalidInputError

__all__ = [
    "DEFAULT_RTOL",
    "agrees_at_k",
    "dcg",
    "exact_recall_at_k",
    "hit_at_k",
    "ndcg_at_k",
    "recall_at_k",
    "reciprocal_rank",
]

#: Relative tolerance below which two MaxSim scores count as tied (float32 sums in another order).
DEFAULT_RTOL = 1e-5


def dcg(grades: Sequence[float]) -> float:
    """Discounted cumulative gain of grades in rank order: ``sum((2**g - 1) / log2(rank + 1))``.

    ``math.inf`` when the sum is past a float's range (grades from about 1024 up); ``ndcg_at_k``
    is exact for those too.
    """
    top = _top_grade(grades)
    try:
        return math.ldexp(_dcg_over_2_to_the(top, grades), top)
    except OverflowError:
        return math.inf


def ndcg_at_k(ranking: Sequence[str], grades: Mapping[str, int], k: int) -> float:
    """nDCG of the top ``k`` of ``ranking`` (distinct page ids, best first)."""
    _check_k(k)
    ideal_grades = sorted((g for g in grades.values() if g > 0), reverse=True)[:k]
    top = _top_grade(ideal_grades)
    ideal = _dcg_over_2_to_the(top, ideal_grades)
    if ideal == 0:
        return 0.0
    return _dcg_over_2_to_the(top, [grades.get(page, 0) for page in ranking[:k]]) / ideal


def _top_grade(grades: Sequence[float]) -> int:
    """The scale ``G`` of the gains: the highest grade rounded up (0 for none)."""
    if not all((isinstance(grade, int) or math.isfinite(grade)) and grade >= 0 for grade in grades):
        raise InvalidInputError(f"grades must be finite and non-negative, got {list(grades)!r}")
    return math.ceil(max(grades, default=0))


def _dcg_over_2_to_the(top: int, grades: Sequence[float]) -> float:
    """``dcg(grades) / 2**top`` without computing ``2**grade`` itself (``top`` at least every grade)."""
    floor = _power_of_2(-top)
    return math.fsum(
        (_power_of_2(grade - top) - floor) / math.log2(rank + 1) for rank, grade in enumerate(grades, start=1)
    )


def _power_of_2(exponent: float) -> float:
    """``2.0 ** exponent`` for ``exponent <= 0``: 0.0 below the smallest float, even for a huge integer."""
    return 0.0 if exponent < -1100 else 2.0**exponent


def recall_at_k(ranking: Sequence[str], grades: Mapping[str, int], k: int) -> float:
    """Share of the judged pages in the top ``k`` of ``ranking``."""
    _check_k(k)
    relevant = {page for page, grade in grades.items() if grade > 0}
    if not relevant:
        return 0.0
    return len(relevant.intersection(ranking[:k])) / len(relevant)


def reciprocal_rank(ranking: Sequence[str], grades: Mapping[str, int]) -> float:
    """``1 / rank`` of the first judged page in ``ranking`` (1-based), 0 if none is there."""
    for rank, page in enumerate(ranking, start=1):
        if grades.get(page, 0) > 0:
            return 1.0 / rank
    return 0.0


def hit_at_k(ranking: Sequence[str], grades: Mapping[str, int], k: int = 1) -> float:
    """1.0 if a judged page is in the top ``k`` of ``ranking``, else 0.0."""
    _check_k(k)
    return 1.0 if any(grades.get(page, 0) > 0 for page in ranking[:k]) else 0.0


def exact_recall_at_k(
    engine_scores: Sequence[float], reference: Sequence[float], k: int, *, rtol: float = DEFAULT_RTOL
) -> float:
    """Share of the exhaustive top ``k`` that the engine's top ``k`` recovers, ties at the ``k``-th score agreeing.

    Args:
        engine_scores: the exact MaxSim score of each page the engine returned, in its order.
        reference: the best exact scores of the collection, best first (at least ``k`` of them when
            it holds ``k`` pages).
        k: the cut-off.
        rtol: relative tolerance within which scores are tied.
    """
    _check_k(k)
    places = min(k, len(reference))
    if places == 0:
        return 1.0
    threshold = reference[places - 1]
    tolerance = rtol * max(1.0, abs(threshold))
    above = sum(score > threshold + tolerance for score in reference[:places])  # every page above s_k
    found_above = sum(score > threshold + tolerance for score in engine_scores[:k])
    found_tied = sum(abs(score - threshold) <= tolerance for score in engine_scores[:k])
    return (min(found_above, above) + min(found_tied, places - above)) / places


def agrees_at_k(
    engine_scores: Sequence[float], reference: Sequence[float], k: int, *, rtol: float = DEFAULT_RTOL
) -> bool:
    """Whether the engine's top ``k`` is an exhaustive top ``k`` (any order, ties at the ``k``-th score agreeing)."""
    return exact_recall_at_k(engine_scores, reference, k, rtol=rtol) == 1.0


def _check_k(k: int) -> None:
    if isinstance(k, bool) or not isinstance(k, int) or k <= 0:
        raise InvalidInputError(f"k must be a positive integer, got {k!r}")
