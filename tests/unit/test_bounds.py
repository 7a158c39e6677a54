"""Bound-ordered exact top-k: hand-computed bounds, and exactness whenever the neighbour search is exact."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from colpali_milvus.search.bounds import certified_top_k, hit_bounds
from colpali_milvus.search.maxsim import maxsim
from colpali_milvus.search.token_index import TokenIndex


def test_hit_bounds_by_hand() -> None:
    # Query vector 0 kept hits down to 0.5, query vector 1 down to 0.2.
    hits = [[("a", 0.9), ("b", 0.5), ("a", 0.6)], [("b", 0.7), ("c", 0.2)]]
    bounds = hit_bounds(hits, [0.5, 0.2])
    assert bounds.floor == pytest.approx(0.7)
    # a: 0.9 + floor 0.2; b: 0.5 + 0.7; c: floor 0.5 + 0.2.
    assert bounds.upper == pytest.approx({"a": 1.1, "b": 1.2, "c": 0.7})
    assert bounds.order == ["b", "a", "c"]


def test_hit_bounds_needs_one_floor_per_query_vector() -> None:
    with pytest.raises(ValueError, match="one floor per query vector"):
        hit_bounds([[("a", 1.0)]], [])


def test_stops_once_the_kth_score_reaches_the_next_bound() -> None:
    exact = {"a": 5.0, "b": 4.0, "c": 1.0, "d": 0.5}
    asked: list[list[str]] = []

    def score(ids: list[str]) -> np.ndarray:
        asked.append(ids)
        return np.array([exact[i] for i in ids], dtype=np.float32)

    ordered = [("a", 6.0), ("b", 4.5), ("c", 3.9), ("d", 3.0)]
    top = certified_top_k(ordered, score, 2, budget=10, batch=2)
    assert top.page_ids == ["a", "b"] and top.scores == [5.0, 4.0]
    assert top.certified and top.scored == 2 and asked == [["a", "b"]]  # 4.0 >= 3.9: c and d never read


def test_budget_caps_the_pages_scored_and_is_not_certified() -> None:
    def score(ids: list[str]) -> np.ndarray:
        return np.zeros(len(ids), dtype=np.float32)

    ordered = [(str(i), 10.0) for i in range(50)]
    top = certified_top_k(ordered, score, 3, budget=7, batch=4)
    assert top.scored == 7 and not top.certified and len(top.page_ids) == 3


def test_without_early_stop_the_whole_budget_is_scored() -> None:
    def score(ids: list[str]) -> np.ndarray:
        return np.full(len(ids), 100.0, dtype=np.float32)

    ordered = [(str(i), 1.0) for i in range(20)]
    assert certified_top_k(ordered, score, 1, budget=12, batch=5, stop_early=False).scored == 12


def test_missing_pages_never_count_and_duplicates_are_scored_once() -> None:
    calls: list[str] = []

    def score(ids: list[str]) -> np.ndarray:
        calls.extend(ids)
        return np.array([-np.inf if i == "gone" else 1.0 for i in ids], dtype=np.float32)

    top = certified_top_k([("gone", 9.0), ("a", 8.0), ("a", 8.0), ("b", 7.0)], score, 5, budget=10, batch=3)
    assert top.page_ids == ["a", "b"] and sorted(calls) == ["a", "b", "gone"]


def _exact_hits(
    query: np.ndarray, pages: list[np.ndarray], depth: int
) -> tuple[list[list[tuple[str, float]]], list[float]]:
    """Each query vector's ``depth`` nearest page vectors, by brute force."""
    flat = np.concatenate(pages)
    owner = np.repeat(np.arange(len(pages)), [p.shape[0] for p in pages])
    sims = query @ flat.T  # (n_q, rows)
    hits, floors = [], []
    for row in sims:
        top = np.argsort(-row, kind="stable")[:depth]
        hits.append([(str(owner[i]), float(row[i])) for i in top])
        floors.append(float(row[top[-1]]))
    return hits, floors


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 2**31 - 1),
    n_pages=st.integers(1, 40),
    k=st.integers(1, 6),
    depth=st.integers(1, 30),
    batch=st.integers(1, 8),
)
def test_with_exact_neighbours_the_certified_top_k_is_the_exhaustive_top_k(
    seed: int, n_pages: int, k: int, depth: int, batch: int
) -> None:
    rng = np.random.default_rng(seed)
    pages = [rng.standard_normal((int(rng.integers(1, 12)), 8)).astype(np.float32) for _ in range(n_pages)]
    query = rng.standard_normal((3, 8)).astype(np.float32)
    exhaustive = maxsim(query, pages)
    hits, floors = _exact_hits(query, pages, depth)
    bounds = hit_bounds(hits, floors)
    unhit = [(str(i), bounds.floor) for i in range(n_pages) if str(i) not in bounds.upper]
    ordered = [(page_id, bounds.upper[page_id]) for page_id in bounds.order] + unhit

    def score(ids: list[str]) -> np.ndarray:
        return exhaustive[[int(i) for i in ids]]

    top = certified_top_k(ordered, score, k, budget=n_pages, batch=batch, covers_all=True)
    assert top.certified
    expected = np.sort(exhaustive)[::-1][: min(k, n_pages)]
    np.testing.assert_allclose(top.scores, expected, rtol=1e-5, atol=1e-5)
    for page_id in top.page_ids:  # every bound really bounds
        assert exhaustive[int(page_id)] <= bounds.upper.get(page_id, bounds.floor) + 1e-4


def test_token_index_exact_search_matches_brute_force_and_forgets_removed_pages() -> None:
    rng = np.random.default_rng(3)
    pages = {slot: rng.standard_normal((30, 16)).astype(np.float32) for slot in (4, 9, 17)}
    index = TokenIndex(16)
    for slot, vectors in pages.items():
        index.add(slot, vectors)
    assert index.exact and len(index) == 90
    query = rng.standard_normal((2, 16)).astype(np.float32)
    slots, sims = index.search(query, 5)
    flat = np.concatenate(list(pages.values()))
    owner = np.repeat(list(pages), 30)
    brute = query @ flat.T
    for row in range(2):
        top = np.argsort(-brute[row])[:5]
        np.testing.assert_allclose(sims[row], brute[row, top], rtol=1e-4, atol=1e-4)
        assert slots[row].tolist() == owner[top].tolist()
    index.remove([9])
    assert len(index) == 60
    slots, _ = index.search(query, 60)
    assert 9 not in set(slots.ravel().tolist())
    restored = TokenIndex.from_bytes(index.to_bytes(), 16, index.trained_at)
    assert len(restored) == 60
    np.testing.assert_array_equal(restored.search(query, 7)[0], index.search(query, 7)[0])


def test_token_index_trains_an_ivf_past_its_threshold(monkeypatch: pytest.MonkeyPatch) -> None:
    import colpali_milvus.search.token_index as token_index

    monkeypatch.setattr(token_index, "TRAIN_AT", 3_000)
    monkeypatch.setattr(token_index, "_MIN_LISTS", 16)
    rng = np.random.default_rng(5)
    unit = rng.standard_normal((4_000, 16)).astype(np.float32)
    unit /= np.linalg.norm(unit, axis=1, keepdims=True)
    pages = [(slot, unit[slot * 100 : (slot + 1) * 100]) for slot in range(40)]
    index = TokenIndex(16, probes=1_024)  # every list: only the 8-bit codes approximate
    assert index.needs_rebuild(4_000) and not index.needs_rebuild(2_000)
    index.rebuild(pages)
    assert not index.exact and index.trained_at == 4_000 and len(index) == 4_000
    # A page vector's own id is its nearest neighbour (8-bit codes keep that much).
    slots, _ = index.search(pages[7][1][:5], 1)
    assert slots[:, 0].tolist() == [7] * 5
    assert index.needs_rebuild(16_000) and not index.needs_rebuild(8_000)
