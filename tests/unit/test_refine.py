"""The refinement: two int8 layers per page score every page within its (much tighter) proven bound."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from colpali_milvus.search.code_scan import FINE_STEPS, CodeScan, encode_page, encode_query, scan
from colpali_milvus.search.refine import refine_pages, tighten


def _exact64(query: np.ndarray, page: np.ndarray) -> float:
    """MaxSim by its definition, in float64."""
    return float((query.astype(np.float64) @ page.astype(np.float64).T).max(axis=1).sum())


def _refined_by_definition(query: np.ndarray, page: np.ndarray) -> float:
    """``s sum_i t_i / 254 max_j (254 a.c + b.c + a.d)``, in int64 straight from the codes."""
    coded, page_code = encode_query(query), encode_page(page)
    n_q = coded.n_q
    coarse, fine = coded.codes[:n_q].astype(np.int64), coded.codes[n_q:].astype(np.int64)  # (n_q, dim) each
    first, second = page_code.codes.astype(np.int64).T, page_code.fine.astype(np.int64).T  # (dim, n) each
    values = FINE_STEPS * (coarse @ first) + fine @ first + coarse @ second  # (n_q, n)
    return float((coded.scales / FINE_STEPS * values.max(axis=1)).sum() * page_code.scale)


@st.composite
def corpora(draw: st.DrawFn) -> tuple[list[np.ndarray], np.ndarray, int]:
    """Pages of 1 to 2,000 vectors at scales 1e-3..1e3, outliers, near-ties, negative similarities."""
    rng = np.random.default_rng(draw(st.integers(0, 2**31 - 1)))
    dim = draw(st.sampled_from([2, 16, 128]))
    pages: list[np.ndarray] = []
    for _ in range(draw(st.integers(1, 8))):
        length = int(rng.integers(1, 2_000)) if rng.random() < 0.2 else int(rng.integers(1, 40))
        page = rng.standard_normal((length, dim)) * float(10 ** rng.uniform(-3, 3))
        if rng.random() < 0.3:
            page[0] *= 1_000  # an outlier coarsens the page's scale
        if pages and rng.random() < 0.3:
            page = pages[-1] + rng.standard_normal(pages[-1].shape) * 1e-4 * float(np.abs(pages[-1]).max())
        pages.append(page.astype(np.float32))
    query = rng.standard_normal((draw(st.integers(1, 9)), dim)) * float(10 ** rng.uniform(-3, 3))
    if rng.random() < 0.3:  # every similarity negative
        query = -np.abs(query)
        pages = [np.abs(page) for page in pages]
    return pages, query.astype(np.float32), draw(st.integers(1, 600))


@settings(max_examples=80, deadline=None)
@given(corpus=corpora(), data=st.data())
def test_every_refined_score_lies_within_its_bound_of_exact_maxsim(
    corpus: tuple[list[np.ndarray], np.ndarray, int], data: st.DataObject
) -> None:
    pages, query, block_rows = corpus
    codes = CodeScan(query.shape[1], block_rows=block_rows)
    for i, vectors in enumerate(pages):
        codes.put(str(i), vectors)
    blocks = codes.seal()
    located = [(b, slot) for b, block in enumerate(blocks) for slot in range(len(block.keys))]
    asked = data.draw(st.permutations(located))  # any order, pages of several blocks mixed

    scores, bounds = refine_pages(encode_query(query), blocks, asked)

    for (b, slot), score, bound in zip(asked, scores, bounds, strict=True):
        page = pages[int(blocks[b].keys[slot])]
        assert score == pytest.approx(_refined_by_definition(query, page), rel=1e-9, abs=1e-300)
        assert abs(score - _exact64(query, page)) <= bound
        assert bound >= 0


def test_on_unit_vectors_the_refined_bound_is_under_a_fiftieth_of_the_scans() -> None:
    rng = np.random.default_rng(5)
    pages = rng.standard_normal((6, 300, 128))
    pages /= np.linalg.norm(pages, axis=2, keepdims=True)
    query = rng.standard_normal((16, 128))
    query /= np.linalg.norm(query, axis=1, keepdims=True)
    codes = CodeScan(128)
    for i, page in enumerate(pages.astype(np.float32)):
        codes.put(str(i), page)
    blocks = codes.seal()
    coded = encode_query(query.astype(np.float32))

    result = scan(coded, blocks)
    _, bounds = refine_pages(coded, blocks, [(0, slot) for slot in range(len(blocks[0].keys))])

    assert np.all(bounds < result.bounds / 50)  # ~1/80 here


def test_wide_vectors_combine_the_layers_in_int64() -> None:
    page = np.ones((2, 2_048), np.float32)  # every first-layer code 127: (254 + 2) * 127^2 * 2048 > 2^31
    page[1] = -1
    page[0, 1] = 0.999  # and a non-zero second layer
    query = np.ones((2, 2_048), np.float32)
    codes = CodeScan(2_048)
    codes.put("p", page)

    scores, bounds = refine_pages(encode_query(query), codes.seal(), [(0, 0)])

    assert scores[0] == pytest.approx(_refined_by_definition(query, page), rel=1e-12)
    assert abs(scores[0] - _exact64(query, page)) <= bounds[0] < 1e-2


def test_tighten_refines_best_bound_first_and_stops_once_the_rest_cannot_enter() -> None:
    rng = np.random.default_rng(6)
    template = rng.standard_normal((50, 64)).astype(np.float32)
    template /= np.linalg.norm(template, axis=1, keepdims=True)
    pages = [template + rng.normal(scale=1e-3, size=template.shape).astype(np.float32) for _ in range(60)]
    pages += [rng.standard_normal((50, 64)).astype(np.float32) * 0.1 for _ in range(200)]  # far below
    query = template[:8].copy()
    codes = CodeScan(64)
    for i, page in enumerate(pages):
        codes.put(str(i), page)
    blocks = codes.seal()
    coded = encode_query(query)
    result = scan(coded, blocks)

    refined = tighten(coded, blocks, result, result.upper, 5, batch=8)

    exact = np.array([_exact64(query, pages[int(key)]) for key in result.keys])
    assert np.all(exact <= refined.upper) and np.all(refined.upper <= result.upper)
    assert 60 <= refined.refined < 100  # every near-tie, none of the far pages but one batch
    kth = np.sort(exact)[-5]
    assert np.count_nonzero(refined.upper >= kth) < np.count_nonzero(result.upper >= kth)
    # A filter: pages at -inf are never refined, and k covering every eligible page refines nothing.
    upper = result.upper.copy()
    upper[3:] = -np.inf
    assert tighten(coded, blocks, result, upper, 3).refined == 0
    assert np.array_equal(tighten(coded, blocks, result, upper, 2).upper[3:], upper[3:])
