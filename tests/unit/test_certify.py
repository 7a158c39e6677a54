"""Certified top-k: whatever the input, the cache's top k equals a float64 reference (ties within 1e-4 aside)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from colpali_milvus.search.certify import certified_search, certified_top_k
from colpali_milvus.search.code_scan import CodeScan, scan
from colpali_milvus.search.maxsim import maxsim_each
from colpali_milvus.store.cache import PageVectorCache


def _reference(query: np.ndarray, pages: list[np.ndarray]) -> np.ndarray:
    """Exhaustive MaxSim in float64: ``(n_pages,)``."""
    query64 = query.astype(np.float64)
    return np.array([(query64 @ page.astype(np.float64).T).max(axis=1).sum() for page in pages])


def _assert_exact_top_k(query: np.ndarray, pages: list[np.ndarray], k: int, *, allowed: set[int] | None = None) -> int:
    cache = PageVectorCache(query.shape[1])
    for i, page in enumerate(pages):
        cache.put(str(i), page, {"page_id": str(i)})
    ids, scores, rows = cache.top_k(query, k, None if allowed is None else {str(i) for i in allowed})

    reference = _reference(query, pages)
    eligible = sorted(allowed) if allowed is not None else list(range(len(pages)))
    expected = sorted((reference[i] for i in eligible), reverse=True)[:k]
    got = [int(page_id) for page_id in ids]
    tolerance = 1e-4 * max(1.0, float(np.abs(reference).max()))
    assert len(got) == len(expected) == len(set(got))
    assert [row["page_id"] for row in rows] == ids
    # Position by position, the same scores: a swap is allowed only between pages tied within 1e-4.
    np.testing.assert_allclose(reference[got], expected, rtol=0, atol=tolerance)
    np.testing.assert_allclose(scores, reference[got], rtol=0, atol=tolerance)
    return cache.last_rescored


@st.composite
def adversarial(draw: st.DrawFn) -> tuple[np.ndarray, list[np.ndarray], int]:
    rng = np.random.default_rng(draw(st.integers(0, 2**31 - 1)))
    dim = draw(st.sampled_from([3, 16, 64]))
    shape = draw(st.sampled_from(["outliers", "near-ties", "negative", "lengths", "scales"]))
    n_pages = draw(st.integers(1, 40))
    lengths = rng.integers(1, 2_000 if shape == "lengths" else 50, n_pages)
    pages = [rng.standard_normal((int(n), dim)).astype(np.float32) for n in lengths]
    query = rng.standard_normal((draw(st.integers(1, 8)), dim)).astype(np.float32)
    if shape == "outliers":  # one long vector in a direction no query vector uses flattens a page's codes
        query[:, 0] = 0
        for page in pages[::2]:
            page[0] = 0
            page[0, 0] = 1_000
    elif shape == "near-ties":
        base = pages[0]
        pages = [base + rng.standard_normal(base.shape).astype(np.float32) * 1e-3 for _ in pages]
    elif shape == "negative":  # every similarity negative, near-tied
        pages = [np.abs(page) + 1 for page in pages]
        query = -np.abs(query)
    elif shape == "scales":
        pages = [page * np.float32(10 ** rng.uniform(-3, 3)) for page in pages]
    return query, pages, draw(st.integers(1, 12))


@settings(max_examples=120, deadline=None)
@given(case=adversarial())
def test_the_certified_top_k_equals_exhaustive_float64_whatever_the_input(
    case: tuple[np.ndarray, list[np.ndarray], int],
) -> None:
    query, pages, k = case
    _assert_exact_top_k(query, pages, k)


def test_half_the_pages_with_a_long_unused_vector_lose_nothing() -> None:
    """The issue's case: the old k + 16 window missed 93 of 200 exhaustive top-5 entries here."""
    rng = np.random.default_rng(7)
    pages = []
    for i in range(200):
        page = rng.standard_normal((60, 32)).astype(np.float32)
        page /= np.linalg.norm(page, axis=1, keepdims=True)
        if i % 2:
            page[0] = 0
            page[0, 0] = 50.0
        pages.append(page)
    for _ in range(10):
        query = pages[int(rng.integers(200))][:8] + rng.normal(scale=0.3, size=(8, 32)).astype(np.float32)
        query[:, 0] = 0
        _assert_exact_top_k(query, pages, 5)


def test_near_ties_hide_no_perfect_page_and_a_filter_is_respected() -> None:
    rng = np.random.default_rng(8)
    template = rng.standard_normal((40, 64)).astype(np.float32)
    template /= np.linalg.norm(template, axis=1, keepdims=True)
    query = template[:8].copy()
    pages = [template + rng.normal(scale=2e-3, size=template.shape).astype(np.float32) for _ in range(120)]
    pages.append(template.copy())  # the one perfect page, among 120 near-ties
    _assert_exact_top_k(query, pages, 5)
    _assert_exact_top_k(query, pages, 3, allowed={1, 5, 7, 119})


def test_near_ties_are_told_apart_by_the_refinement_not_by_exact_rescoring() -> None:
    """On near-ties the scan's bound keeps most pages in line; the refined bounds leave about k of them."""
    rng = np.random.default_rng(9)
    template = rng.standard_normal((200, 128)).astype(np.float32)
    template /= np.linalg.norm(template, axis=1, keepdims=True)
    pages = [template + rng.normal(scale=3e-3, size=template.shape).astype(np.float32) for _ in range(150)]
    query = template[:16] + rng.normal(scale=0.05, size=(16, 128)).astype(np.float32)
    codes = CodeScan(128)
    for i, page in enumerate(pages):
        codes.put(str(i), page)
    by_scan_alone = certified_top_k(scan(query, codes.seal()).upper, 5, lambda indices: np.zeros(len(indices)))

    rescored = _assert_exact_top_k(query, pages, 5)

    assert by_scan_alone.rescored > 100  # the old proof: nearly every page
    assert rescored < by_scan_alone.rescored
    assert rescored <= 10


def test_certified_search_keeps_the_filter_and_the_fewest_rescored_it_is_asked() -> None:
    rng = np.random.default_rng(10)
    pages = {str(i): rng.standard_normal((int(rng.integers(1, 80)), 32)).astype(np.float32) for i in range(90)}
    query = rng.standard_normal((6, 32)).astype(np.float32)
    codes = CodeScan(32, block_rows=300)
    for key, page in pages.items():
        codes.put(key, page)
    blocks = codes.seal()
    scored: list[str] = []

    def exact(keys: list[str]) -> np.ndarray:
        scored.extend(keys)
        return maxsim_each(query, [pages[key] for key in keys])

    reference = {key: _reference(query, [page])[0] for key, page in pages.items()}
    allowed = {str(i) for i in range(0, 90, 3)}
    top = certified_search(query, blocks, 4, exact, allowed=allowed)
    expected = sorted(allowed, key=lambda key: -reference[key])[:4]
    np.testing.assert_allclose([reference[key] for key in top.keys], [reference[key] for key in expected], atol=1e-4)
    assert set(scored) <= allowed and top.refined <= len(allowed)
    scored.clear()
    deep = certified_search(query, blocks, 4, exact, first=40)
    assert deep.rescored == len(scored) >= 40
    with pytest.raises(ValueError, match="k must be positive"):
        certified_search(query, blocks, 0, exact)


def test_on_unit_pages_the_proof_rescored_a_few_pages_not_all() -> None:
    rng = np.random.default_rng(0)
    pages = list(rng.standard_normal((300, 200, 128)).astype(np.float32))
    pages = [page / np.linalg.norm(page, axis=1, keepdims=True) for page in pages]
    rescored = []
    for _ in range(5):
        query = pages[int(rng.integers(300))][:16] + rng.normal(scale=0.5, size=(16, 128)).astype(np.float32)
        query /= np.linalg.norm(query, axis=1, keepdims=True)
        rescored.append(_assert_exact_top_k(query, pages, 5))
    assert max(rescored) < 100


@settings(max_examples=200, deadline=None)
@given(
    exact=st.lists(st.floats(-1e6, 1e6, allow_nan=False), min_size=1, max_size=60),
    slack=st.lists(st.floats(0, 1e3, allow_nan=False), min_size=60, max_size=60),
    k=st.integers(1, 10),
    first=st.integers(0, 20),
)
def test_certified_top_k_is_the_top_k_for_any_valid_bounds(
    exact: list[float], slack: list[float], k: int, first: int
) -> None:
    scores = np.array(exact)
    upper = scores + np.array(slack[: len(exact)])
    calls: list[int] = []

    def score(indices: list[int]) -> np.ndarray:
        calls.extend(indices)
        return scores[indices]

    top = certified_top_k(upper, k, score, first=first)

    assert len(calls) == len(set(calls)) == top.rescored  # no page scored twice
    assert top.scores == sorted(top.scores, reverse=True)
    assert top.scores == sorted(exact, reverse=True)[:k]
    assert [scores[i] for i in top.indices] == top.scores


def test_an_ineligible_page_is_never_scored() -> None:
    upper = np.array([5.0, -np.inf, 3.0])
    top = certified_top_k(upper, 3, lambda indices: np.array([{0: 4.0, 2: 1.0}[i] for i in indices]))
    assert top.indices == [0, 2] and top.rescored == 2
    with pytest.raises(ValueError, match="k must be positive"):
        certified_top_k(upper, 0, lambda indices: np.zeros(len(indices)))
