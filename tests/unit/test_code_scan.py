"""The int8 code scan: its error bound against exact MaxSim, its two kernels, and its blocks under writes."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

import colpali_milvus.search.code_scan as code_scan
from colpali_milvus.search.code_scan import CodeBlock, CodeScan, encode_page, encode_query, scan
from colpali_milvus.search.maxsim import maxsim


def _code_maxsim(query: np.ndarray, page: np.ndarray) -> float:
    """The scan's score of one page, computed directly from its definition."""
    query_codes, query_scales = encode_query(query)
    page_codes, page_scale = encode_page(page)
    best = (query_codes.astype(np.int64) @ page_codes.astype(np.int64).T).max(axis=1)  # (n_q,)
    return float((query_scales * best).sum() * page_scale)


def _error_bound(query: np.ndarray, page: np.ndarray) -> float:
    """|exact - code| MaxSim: each side rounds to half a step, summed over the query vectors."""
    _, query_scales = encode_query(query)
    _, page_scale = encode_page(page)
    dim = query.shape[1]
    page_l1 = float(np.abs(page).sum(axis=1).max()) + dim * page_scale / 2
    per_vector = np.abs(query).sum(axis=1) * page_scale / 2 + page_l1 * query_scales / 2  # (n_q,)
    return float(per_vector.sum())


@settings(max_examples=60, deadline=None)
@given(
    seed=st.integers(0, 2**31 - 1),
    n_pages=st.integers(1, 12),
    dim=st.sampled_from([4, 16, 128]),
    n_q=st.integers(1, 9),
    block_rows=st.integers(1, 200),
)
def test_scan_scores_every_page_within_the_rounding_bound(
    seed: int, n_pages: int, dim: int, n_q: int, block_rows: int
) -> None:
    rng = np.random.default_rng(seed)
    pages = {f"p{i}": rng.standard_normal((int(rng.integers(1, 40)), dim)).astype(np.float32) for i in range(n_pages)}
    query = rng.standard_normal((n_q, dim)).astype(np.float32)
    codes = CodeScan(dim, block_rows=block_rows)
    for key, vectors in pages.items():
        codes.put(key, vectors)

    keys, scores = scan(query, codes.seal())

    assert sorted(keys) == sorted(pages)
    exact = maxsim(query, [pages[key] for key in keys])
    for key, score, exact_score in zip(keys, scores, exact, strict=True):
        assert score == pytest.approx(_code_maxsim(query, pages[key]), rel=1e-5, abs=1e-5)
        assert abs(score - exact_score) <= _error_bound(query, pages[key]) * (1 + 1e-4) + 1e-5


def test_on_unit_vectors_the_code_ranking_keeps_the_exact_top_five_in_its_top_eight() -> None:
    rng = np.random.default_rng(0)
    pages = rng.standard_normal((300, 200, 128)).astype(np.float32)
    pages /= np.linalg.norm(pages, axis=2, keepdims=True)
    codes = CodeScan(128)
    for i, page in enumerate(pages):
        codes.put(str(i), page)
    blocks = codes.seal()
    for _ in range(10):
        query = pages[int(rng.integers(300)), :16] + rng.normal(scale=0.5, size=(16, 128)).astype(np.float32)
        query /= np.linalg.norm(query, axis=1, keepdims=True)
        keys, scores = scan(query, blocks)
        exact = maxsim(query, list(pages))
        code_top = {int(keys[i]) for i in np.argsort(-scores)[:8]}
        assert set(np.argsort(-exact)[:5].tolist()) <= code_top


def test_padding_repeats_a_real_vector_so_short_pages_score_exactly_as_alone() -> None:
    rng = np.random.default_rng(1)
    short, long = rng.standard_normal((2, 8)).astype(np.float32), rng.standard_normal((50, 8)).astype(np.float32)
    short[:] = -np.abs(short)  # every similarity negative: a zero pad would win the max
    query = np.abs(rng.standard_normal((3, 8))).astype(np.float32)
    block = CodeBlock.pack([("short", *encode_page(short)), ("long", *encode_page(long))])
    assert block.width == 50 and block.lengths.tolist() == [2, 50]
    _, scores = scan(query, [block])
    assert scores[0] == pytest.approx(_code_maxsim(query, short), rel=1e-6)
    assert scores[0] < 0
    np.testing.assert_array_equal(block.page(0)[0], encode_page(short)[0])


def test_the_blas_kernel_gives_the_same_integers_as_the_int8_kernel() -> None:
    pytest.importorskip("torch")
    rng = np.random.default_rng(2)
    left = rng.integers(-127, 128, (7, 384), dtype=np.int8)
    right = rng.integers(-127, 128, (384, 333), dtype=np.int8)
    expected = left.astype(np.int64) @ right.astype(np.int64)
    assert code_scan._int8_product() is not code_scan._by_blas  # torch's kernel works here
    np.testing.assert_array_equal(code_scan._int8_product()(left, right), expected)
    np.testing.assert_array_equal(code_scan._by_blas(left, right), expected)


def test_all_zero_pages_and_queries_score_zero() -> None:
    codes = CodeScan(4)
    codes.put("zero", np.zeros((3, 4), np.float32))
    codes.put("one", np.eye(4, dtype=np.float32))
    keys, scores = scan(np.zeros((2, 4), np.float32), codes.seal())
    assert dict(zip(keys, scores.tolist(), strict=True)) == {"zero": 0.0, "one": 0.0}
    keys, scores = scan(np.eye(4, dtype=np.float32)[:2], codes.seal())
    assert dict(zip(keys, scores.tolist(), strict=True)) == pytest.approx({"zero": 0.0, "one": 2.0})


class CodeScanMachine(RuleBasedStateMachine):
    """Puts, replaces and removes in any order, sealing in between: the blocks hold exactly the model."""

    def __init__(self) -> None:
        super().__init__()
        self.rng = np.random.default_rng(0)
        self.codes = CodeScan(6, block_rows=24)
        self.model: dict[str, np.ndarray] = {}
        self.query = self.rng.standard_normal((3, 6)).astype(np.float32)

    @rule(key=st.sampled_from("abcdefghij"), n=st.integers(1, 30))
    def put(self, key: str, n: int) -> None:
        vectors = self.rng.standard_normal((n, 6)).astype(np.float32)
        self.codes.put(key, vectors)
        self.model[key] = vectors

    @precondition(lambda self: bool(self.model))
    @rule(data=st.data())
    def remove(self, data: st.DataObject) -> None:
        key = data.draw(st.sampled_from(sorted(self.model)))
        self.codes.remove([key, "never-written"])
        del self.model[key]

    @rule()
    def seal(self) -> None:
        blocks = self.codes.seal()
        part_full = [block for block in blocks if block.codes.shape[1] < self.codes.block_rows // 2]
        assert len(part_full) <= 1 and (not part_full or part_full[0] is blocks[-1])

    @invariant()
    def scan_sees_exactly_the_model(self) -> None:
        assert len(self.codes) == len(self.model)
        keys, scores = scan(self.query, self.codes.seal())
        assert sorted(keys) == sorted(self.model)
        for key, score in zip(keys, scores, strict=True):
            assert score == pytest.approx(_code_maxsim(self.query, self.model[key]), rel=1e-5, abs=1e-5)


TestCodeScanMachine = CodeScanMachine.TestCase
TestCodeScanMachine.settings = settings(max_examples=40, stateful_step_count=25, deadline=None)
