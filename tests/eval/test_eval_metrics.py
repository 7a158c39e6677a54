"""The metrics against values worked out by hand, ties and graded relevance included."""

from __future__ import annotations

import itertools
import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from colpali_milvus.errors import InvalidInputError
from colpali_milvus.eval.metrics import (
    agrees_at_k,
    dcg,
    exact_recall_at_k,
    hit_at_k,
    ndcg_at_k,
    recall_at_k,
    reciprocal_rank,
)

LOG2_3 = math.log2(3)


def test_dcg_uses_the_exponential_gain_and_log2_discount() -> None:
    # (2^2 - 1)/log2(2) + (2^0 - 1)/log2(3) + (2^1 - 1)/log2(4) = 3 + 0 + 0.5
    assert dcg([2, 0, 1]) == pytest.approx(3.5)


def test_binary_ndcg_by_hand() -> None:
    ranking = ["a", "b", "c"]
    grades = {"b": 1, "d": 1}  # d is judged but never retrieved
    # dcg = 1/log2(3); ideal = 1 + 1/log2(3)
    assert ndcg_at_k(ranking, grades, 3) == pytest.approx((1 / LOG2_3) / (1 + 1 / LOG2_3))
    assert ndcg_at_k(ranking, grades, 1) == 0.0
    assert ndcg_at_k(["b", "d"], grades, 2) == pytest.approx(1.0)


def test_graded_ndcg_by_hand() -> None:
    grades = {"a": 2, "b": 1}
    # ranking b, x, a: dcg = (2^1-1)/1 + (2^2-1)/log2(4) = 1 + 1.5; ideal a, b = 3 + 1/log2(3)
    assert ndcg_at_k(["b", "x", "a"], grades, 3) == pytest.approx(2.5 / (3 + 1 / LOG2_3))
    # the ideal is cut at k too: at k=1 the ideal is a alone (gain 3), b first gives gain 1
    assert ndcg_at_k(["b", "a"], grades, 1) == pytest.approx(1 / 3)
    # the best order scores 1 whatever k is
    assert ndcg_at_k(["a", "b"], grades, 5) == pytest.approx(1.0)


def test_recall_reciprocal_rank_and_hit_by_hand() -> None:
    grades = {"c": 1, "e": 3, "z": 1}
    ranking = ["a", "b", "c", "d", "e"]
    assert recall_at_k(ranking, grades, 2) == 0.0
    assert recall_at_k(ranking, grades, 3) == pytest.approx(1 / 3)
    assert recall_at_k(ranking, grades, 5) == pytest.approx(2 / 3)
    assert recall_at_k(ranking, grades, 50) == pytest.approx(2 / 3)  # k past the ranking's end
    assert reciprocal_rank(ranking, grades) == pytest.approx(1 / 3)
    assert reciprocal_rank(["a", "b"], grades) == 0.0
    assert hit_at_k(ranking, grades, 1) == 0.0
    assert hit_at_k(["e", "a"], grades, 1) == 1.0
    assert hit_at_k(ranking, grades, 3) == 1.0


def test_an_empty_ranking_scores_zero() -> None:
    grades = {"a": 1}
    assert ndcg_at_k([], grades, 5) == recall_at_k([], grades, 5) == reciprocal_rank([], grades) == 0.0
    assert hit_at_k([], grades) == 0.0


def test_k_must_be_positive() -> None:
    for bad in (0, -1, True, 2.5):
        with pytest.raises(InvalidInputError, match="k must be a positive integer"):
            ndcg_at_k(["a"], {"a": 1}, bad)  # type: ignore[arg-type]


# -- against exhaustive MaxSim -----------------------------------------------------------------

REFERENCE = [5.0, 4.0, 3.0, 3.0, 3.0]  # three pages tie for the third place


@pytest.mark.parametrize(
    ("engine", "expected"),
    [
        ([5.0, 4.0, 3.0], 1.0),  # any of the tied pages completes the top 3
        ([4.0, 5.0, 3.0], 1.0),  # order does not matter
        ([5.0, 3.0, 3.0], 2 / 3),  # two tied pages cannot stand in for the missing 4.0
        ([5.0, 4.0, 2.0], 2 / 3),
        ([3.0, 3.0, 3.0], 1 / 3),
        ([5.0, 4.0], 2 / 3),  # fewer hits than k
        ([], 0.0),
    ],
)
def test_exact_recall_counts_ties_at_the_kth_score_as_agreeing(engine: list[float], expected: float) -> None:
    assert exact_recall_at_k(engine, REFERENCE, 3) == pytest.approx(expected)
    assert agrees_at_k(engine, REFERENCE, 3) is (expected == 1.0)


def test_exact_recall_ties_within_the_relative_tolerance() -> None:
    reference = [10.0, 8.0, 7.0]
    assert exact_recall_at_k([10.0, 8.0 - 5e-5], reference, 2) == 1.0  # 8.0 * 1e-5 = 8e-5
    assert exact_recall_at_k([10.0, 8.0 - 5e-4], reference, 2) == 0.5
    assert exact_recall_at_k([10.0, 8.0 - 5e-4], reference, 2, rtol=1e-3) == 1.0


def test_exact_recall_when_the_collection_holds_fewer_pages_than_k() -> None:
    assert exact_recall_at_k([2.0, 1.0], [2.0, 1.0], 5) == 1.0
    assert exact_recall_at_k([2.0], [2.0, 1.0], 5) == 0.5
    assert exact_recall_at_k([], [], 5) == 1.0  # nothing to find


def _brute_force_recall(engine: list[int], scores: dict[int, int], k: int) -> float:
    """The largest overlap of the engine's top k with any valid exhaustive top k, by enumeration."""
    places = min(k, len(scores))
    if places == 0:
        return 1.0
    best = 0
    for chosen in itertools.combinations(scores, places):
        rest = [scores[p] for p in scores if p not in chosen]
        if rest and min(scores[p] for p in chosen) < max(rest):
            continue  # not a top-k: a page left out scores higher than one taken
        best = max(best, len(set(engine[:k]) & set(chosen)))
    return best / places


@given(
    st.lists(st.integers(0, 3), min_size=0, max_size=7),  # small integer scores: many ties
    st.data(),
    st.integers(1, 5),
)
def test_exact_recall_equals_the_best_overlap_over_every_tie_break(
    values: list[int], data: st.DataObject, k: int
) -> None:
    scores = dict(enumerate(values))
    engine = data.draw(st.permutations(list(scores)))[: data.draw(st.integers(0, k))]
    reference = sorted((float(v) for v in values), reverse=True)
    found = exact_recall_at_k([float(scores[p]) for p in engine], reference, k)
    assert found == pytest.approx(_brute_force_recall(engine, scores, k))
