from colpali_milvus.search import rank_candidates


def test_partial_maxsim_sums_best_hit_per_query_vector() -> None:
    hits = [
        [("a", 0.9), ("b", 0.8), ("a", 0.7)],  # a's best for this query vector is 0.9, not 1.6
        [("b", 0.6), ("c", 0.5)],
    ]
    # a: 0.9; b: 0.8 + 0.6 = 1.4; c: 0.5
    assert rank_candidates(hits, limit=10) == ["b", "a", "c"]
    assert rank_candidates(hits, limit=2) == ["b", "a"]


def test_ties_keep_first_seen_order_and_limits() -> None:
    hits = [[("x", 1.0), ("y", 1.0), ("z", 1.0)]]
    assert rank_candidates(hits, limit=3) == ["x", "y", "z"]
    assert rank_candidates(hits, limit=0) == []
    assert rank_candidates([], limit=5) == []
