"""The int8 code scan: its proven error bound, its kernels, its padding, and its blocks under writes."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

import colpali_milvus.search.code_scan as code_scan
from colpali_milvus.search.code_scan import FINE_STEPS, CodeBlock, CodeScan, encode_page, encode_query, scan


def _exact64(query: np.ndarray, page: np.ndarray) -> float:
    """MaxSim by its definition, in float64."""
    return float((query.astype(np.float64) @ page.astype(np.float64).T).max(axis=1).sum())


def _code_maxsim(query: np.ndarray, page: np.ndarray) -> float:
    """The scan's score of one page, computed directly from its definition."""
    coded, page_code = encode_query(query), encode_page(page)
    products = coded.codes.astype(np.int64) @ page_code.codes.astype(np.int64).T  # (2 n_q, n)
    n_q = coded.n_q
    best = (products[:n_q] * FINE_STEPS + products[n_q:]).max(axis=1)  # (n_q,)
    return float((coded.scales / FINE_STEPS * best).sum() * page_code.scale)


def _pages(draw: st.DrawFn, dim: int) -> list[np.ndarray]:
    """Pages of 1 to 60 vectors of any scale, some with a long outlier vector, some near-duplicates."""
    rng = np.random.default_rng(draw(st.integers(0, 2**31 - 1)))
    pages = []
    for _ in range(draw(st.integers(1, 10))):
        page = rng.standard_normal((int(rng.integers(1, 60)), dim)) * float(10 ** rng.uniform(-3, 2))
        if rng.random() < 0.3:
            page[0] *= 1_000  # an outlier coarsens the page's scale
        if pages and rng.random() < 0.3:
            page = pages[-1] + rng.standard_normal(pages[-1].shape) * 1e-4  # a near-tie
        pages.append(page.astype(np.float32))
    return pages


@st.composite
def corpora(draw: st.DrawFn) -> tuple[list[np.ndarray], np.ndarray, int]:
    dim = draw(st.sampled_from([4, 16, 128]))
    pages = _pages(draw, dim)
    rng = np.random.default_rng(draw(st.integers(0, 2**31 - 1)))
    query = rng.standard_normal((draw(st.integers(1, 9)), dim)) * float(10 ** rng.uniform(-2, 2))
    if rng.random() < 0.3:
        query = -np.abs(query)  # negative similarities everywhere on positive pages
        pages = [np.abs(page) for page in pages]
    return pages, query.astype(np.float32), draw(st.integers(1, 200))


@settings(max_examples=80, deadline=None)
@given(corpus=corpora())
def test_every_code_score_lies_within_its_bound_of_exact_maxsim(
    corpus: tuple[list[np.ndarray], np.ndarray, int],
) -> None:
    pages, query, block_rows = corpus
    codes = CodeScan(query.shape[1], block_rows=block_rows)
    for i, vectors in enumerate(pages):
        codes.put(str(i), vectors)

    result = scan(query, codes.seal())

    assert sorted(result.keys) == sorted(str(i) for i in range(len(pages)))
    for key, score, bound in zip(result.keys, result.scores, result.bounds, strict=True):
        page = pages[int(key)]
        assert score == pytest.approx(_code_maxsim(query, page), rel=1e-9, abs=1e-12)
        assert abs(score - _exact64(query, page)) <= bound
        assert bound >= 0


def test_the_bound_follows_the_scales_an_outlier_widens_only_its_own_page() -> None:
    rng = np.random.default_rng(3)
    plain = rng.standard_normal((40, 128)).astype(np.float32)
    outlier = plain.copy()
    outlier[0] = 0
    outlier[0, 0] = 500.0  # a long vector in a direction the query does not use
    query = rng.standard_normal((16, 128)).astype(np.float32)
    query[:, 0] = 0
    codes = CodeScan(128)
    codes.put("plain", plain)
    codes.put("outlier", outlier)

    result = scan(query, codes.seal())
    bound = dict(zip(result.keys, result.bounds.tolist(), strict=True))

    assert bound["outlier"] > 50 * bound["plain"]  # its codes flattened to ~0: rescored, never hidden
    assert bound["plain"] < 0.05 * abs(_exact64(query, plain))


def test_a_block_pads_a_page_with_its_own_vector_so_negative_scores_stay_exact() -> None:
    rng = np.random.default_rng(1)
    short, long = rng.standard_normal((2, 8)).astype(np.float32), rng.standard_normal((3, 8)).astype(np.float32)
    short[:] = -np.abs(short)  # every similarity negative: a zero pad would win the max
    query = np.abs(rng.standard_normal((3, 8))).astype(np.float32)
    block = CodeBlock.pack([("short", encode_page(short)), ("long", encode_page(long))])
    assert block.width == 3 and block.lengths.tolist() == [2, 3]

    result = scan(query, [block])

    assert result.scores[0] == pytest.approx(_code_maxsim(query, short), rel=1e-9)
    assert result.scores[0] < 0
    np.testing.assert_array_equal(block.page(0).codes, encode_page(short).codes)


def test_mixed_page_lengths_cost_a_few_percent_of_padding_not_the_longest_page() -> None:
    rng = np.random.default_rng(4)
    codes = CodeScan(16)
    for i in range(3_000):
        codes.put(f"one{i}", rng.standard_normal((1, 16)).astype(np.float32))
    codes.put("long", rng.standard_normal((2_000, 16)).astype(np.float32))
    for i in range(300):  # and every length in between
        codes.put(f"mid{i}", rng.standard_normal((int(rng.integers(1, 1_500)), 16)).astype(np.float32))

    blocks = codes.seal()

    assert codes.nbytes <= 1.05 * codes.real_nbytes
    assert sum(block.rows for block in blocks) * 16 * 2 == codes.real_nbytes  # two int8 layers
    assert len(blocks) < 200


def test_the_blas_kernel_gives_the_same_integers_as_the_int8_kernel() -> None:
    pytest.importorskip("torch")
    rng = np.random.default_rng(2)
    left = rng.integers(-127, 128, (14, 384), dtype=np.int8)
    right = rng.integers(-127, 128, (384, 333), dtype=np.int8)
    expected = left.astype(np.int64) @ right.astype(np.int64)
    assert code_scan.int8_product() is not code_scan._by_blas  # torch's kernel works here
    np.testing.assert_array_equal(code_scan.int8_product()(left, right), expected)
    np.testing.assert_array_equal(code_scan._by_blas(left, right), expected)


def test_wide_vectors_combine_the_query_layers_without_overflow() -> None:
    page = np.ones((2, 2_048), np.float32)  # every code 127: 254 * 127^2 * 2048 overflows int32
    page[1] = -1
    query = np.ones((2, 2_048), np.float32)
    codes = CodeScan(2_048)
    codes.put("p", page)

    result = scan(query, codes.seal())

    assert result.scores[0] == pytest.approx(_exact64(query, page), rel=1e-9)  # 4096, codes exact
    assert abs(result.scores[0] - _exact64(query, page)) <= result.bounds[0]


def test_all_zero_pages_and_queries_score_zero() -> None:
    codes = CodeScan(4)
    codes.put("zero", np.zeros((3, 4), np.float32))
    codes.put("one", np.eye(4, dtype=np.float32))
    result = scan(np.zeros((2, 4), np.float32), codes.seal())
    assert dict(zip(result.keys, result.scores.tolist(), strict=True)) == {"zero": 0.0, "one": 0.0}
    result = scan(np.eye(4, dtype=np.float32)[:2], codes.seal())
    assert dict(zip(result.keys, result.scores.tolist(), strict=True)) == pytest.approx({"zero": 0.0, "one": 2.0})


def test_pages_written_are_blocked_as_they_come_not_all_at_the_first_search(monkeypatch: pytest.MonkeyPatch) -> None:
    """An ingest must not hold every page's codes twice (loose, then blocked) at its first search."""
    monkeypatch.setattr(code_scan, "LOOSE_PAGES", 4)
    rng = np.random.default_rng(3)
    codes = CodeScan(6, block_rows=24)
    model = {}
    for i in range(11):
        model[f"p{i}"] = rng.standard_normal((int(rng.integers(1, 30)), 6)).astype(np.float32)
        codes.put(f"p{i}", model[f"p{i}"])
        assert len(codes._loose) < 4
    codes.put("p2", model["p2"] * 2)  # a blocked page replaced
    model["p2"] = model["p2"] * 2
    query = rng.standard_normal((3, 6)).astype(np.float32)
    result = scan(query, codes.seal())
    assert sorted(result.keys) == sorted(model)
    for key, score in zip(result.keys, result.scores, strict=True):
        assert score == pytest.approx(_code_maxsim(query, model[key]), rel=1e-9, abs=1e-12)


class CodeScanMachine(RuleBasedStateMachine):
    """Puts, replaces and removes in any order, sealing in between: the blocks hold exactly the model."""

    def __init__(self) -> None:
        super().__init__()
        self.rng = np.random.default_rng(0)
        self.codes = CodeScan(6, block_rows=24)
        self.model: dict[str, np.ndarray] = {}
        self.query = self.rng.standard_normal((3, 6)).astype(np.float32)

    @rule(key=st.sampled_from("abcdefghij"), n=st.sampled_from([1, 2, 3, 20, 21, 30, 40]))
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
        part_full = [block for block in blocks if block.rows < self.codes.block_rows]
        classes = [code_scan.length_class(int(block.lengths[0])) for block in part_full]
        assert len(classes) == len(set(classes))  # at most one part-full block per length class
        for block in blocks:
            assert len({code_scan.length_class(int(length)) for length in block.lengths}) == 1

    @invariant()
    def scan_sees_exactly_the_model(self) -> None:
        assert len(self.codes) == len(self.model)
        result = scan(self.query, self.codes.seal())
        assert sorted(result.keys) == sorted(self.model)
        for key, score in zip(result.keys, result.scores, strict=True):
            assert score == pytest.approx(_code_maxsim(self.query, self.model[key]), rel=1e-9, abs=1e-12)
        for block in self.codes.seal():  # re-blocked pages keep both layers and their norms
            for slot, key in enumerate(block.keys):
                kept, fresh = block.page(slot), encode_page(self.model[key])
                np.testing.assert_array_equal(kept.fine, fresh.fine)
                assert (kept.fine_residual, kept.fine_reach, kept.fine_norm) == pytest.approx(
                    (fresh.fine_residual, fresh.fine_reach, fresh.fine_norm), rel=1e-12
                )


TestCodeScanMachine = CodeScanMachine.TestCase
TestCodeScanMachine.settings = settings(max_examples=40, stateful_step_count=25, deadline=None)
