"""MaxSim upper bounds from nearest-neighbour hits: by hand, and valid whenever the neighbour search is exact."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from colpali_milvus.search.bounds import hit_bounds
from colpali_milvus.search.maxsim import maxsim


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
    depth=st.integers(1, 30),
)
def test_with_exact_neighbours_every_page_is_bounded(seed: int, n_pages: int, depth: int) -> None:
    rng = np.random.default_rng(seed)
    pages = [rng.standard_normal((int(rng.integers(1, 12)), 8)).astype(np.float32) for _ in range(n_pages)]
    query = rng.standard_normal((3, 8)).astype(np.float32)
    exhaustive = maxsim(query, pages)
    hits, floors = _exact_hits(query, pages, depth)
    bounds = hit_bounds(hits, floors)
    for page in range(n_pages):  # every bound really bounds
        assert exhaustive[page] <= bounds.upper.get(str(page), bounds.floor) + 1e-4
