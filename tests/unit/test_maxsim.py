from __future__ import annotations

import importlib

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from colpali_milvus.search import maxsim, maxsim_flat
from colpali_milvus.search.maxsim import maxsim_each

# The package re-exports the function `maxsim`, which shadows the submodule of the same name.
maxsim_module = importlib.import_module("colpali_milvus.search.maxsim")


def naive_maxsim(query: np.ndarray, page: np.ndarray) -> float:
    return float(sum(max(float(q @ p) for p in page) for q in query))


@settings(max_examples=60, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    n_query=st.integers(1, 12),
    lengths=st.lists(st.integers(1, 40), min_size=1, max_size=8),
    dim=st.integers(1, 24),
)
def test_maxsim_equals_a_naive_loop(seed: int, n_query: int, lengths: list[int], dim: int) -> None:
    rng = np.random.default_rng(seed)
    query = rng.normal(size=(n_query, dim)).astype(np.float32)
    pages = [rng.normal(size=(n, dim)).astype(np.float32) for n in lengths]

    scores = maxsim(query, pages)

    assert scores.shape == (len(pages),)
    assert scores.dtype == np.float32
    np.testing.assert_allclose(scores, [naive_maxsim(query, page) for page in pages], rtol=1e-4, atol=1e-4)


def test_maxsim_negative_similarities_are_not_clipped_to_zero() -> None:
    query = np.array([[1.0, 0.0]], np.float32)
    page = np.array([[-1.0, 0.0], [-0.5, 0.0]], np.float32)
    assert maxsim(query, [page])[0] == pytest.approx(-0.5)


def test_blocks_split_between_pages_give_the_same_scores(monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(0)
    query = rng.normal(size=(5, 8)).astype(np.float32)
    pages = [rng.normal(size=(n, 8)).astype(np.float32) for n in (3, 50, 1, 17, 9)]
    expected = maxsim(query, pages)

    monkeypatch.setattr(maxsim_module, "_ROWS_PER_BLOCK", 7)  # forces one block per page or two
    # float32 sums of other block shapes take other BLAS kernels: equal to float32 rounding, not bitwise.
    np.testing.assert_allclose(maxsim(query, pages), expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("torch_loaded", [False, True])
def test_the_product_is_the_same_with_and_without_torch_loaded(
    torch_loaded: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    import sys

    if torch_loaded:
        pytest.importorskip("torch")
    else:
        monkeypatch.delitem(sys.modules, "torch", raising=False)
    rng = np.random.default_rng(4)
    query = rng.normal(size=(6, 16)).astype(np.float32)
    pages = [rng.normal(size=(n, 16)).astype(np.float32)[::-1] for n in (4, 30, 2)]  # negative strides too
    vectors = np.concatenate(pages)[:, ::2]  # a non-contiguous view
    expected = [naive_maxsim(query[:, ::2], vectors[a:b]) for a, b in ((0, 4), (4, 34), (34, 36))]
    scores = maxsim_flat(query[:, ::2], vectors, np.array([0, 4, 34]))
    np.testing.assert_allclose(scores, expected, rtol=1e-4, atol=1e-4)


def test_empty_inputs_and_bad_offsets() -> None:
    query = np.ones((2, 4), np.float32)
    assert maxsim(query, []).shape == (0,)
    assert maxsim_flat(query, np.ones((0, 4), np.float32), np.empty(0, np.int64)).shape == (0,)
    with pytest.raises(ValueError, match="offsets"):
        maxsim_flat(query, np.ones((3, 4), np.float32), np.array([0, 3]))  # second page empty
    with pytest.raises(ValueError, match="offsets"):
        maxsim_flat(query, np.ones((3, 4), np.float32), np.array([1]))


def test_maxsim_equals_colpali_engine_score_multi_vector() -> None:
    torch = pytest.importorskip("torch")
    utils = pytest.importorskip("colpali_engine.utils.processing_utils")
    rng = np.random.default_rng(7)

    def normed(n: int) -> np.ndarray:
        vectors = rng.normal(size=(n, 128)).astype(np.float32)
        return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)

    queries = [normed(n) for n in (20, 13, 31)]
    # Pages of one length: colpali-engine zero-pads ragged batches, which is where the two can differ
    # (see the module docstring); with real ColPali pages (all ~1,030 vectors) lengths are equal.
    pages = [normed(1030) for _ in range(6)]
    expected = utils.BaseVisualRetrieverProcessor.score_multi_vector(
        [torch.from_numpy(q) for q in queries], [torch.from_numpy(p) for p in pages], device="cpu"
    ).numpy()

    ours = np.stack([maxsim(q, pages) for q in queries])

    np.testing.assert_allclose(ours, expected, rtol=1e-5, atol=1e-4)


def test_ragged_pages_match_colpali_engine_when_best_similarities_are_positive() -> None:
    torch = pytest.importorskip("torch")
    utils = pytest.importorskip("colpali_engine.utils.processing_utils")
    rng = np.random.default_rng(3)
    # All-positive vectors: every best similarity is positive, so zero padding cannot win a max.
    queries = [np.abs(rng.normal(size=(n, 16))).astype(np.float32) for n in (4, 9)]
    pages = [np.abs(rng.normal(size=(n, 16))).astype(np.float32) for n in (3, 40, 11)]
    expected = utils.BaseVisualRetrieverProcessor.score_multi_vector(
        [torch.from_numpy(q) for q in queries], [torch.from_numpy(p) for p in pages], device="cpu"
    ).numpy()

    np.testing.assert_allclose(np.stack([maxsim(q, pages) for q in queries]), expected, rtol=1e-5)


def test_maxsim_each_gives_the_numbers_maxsim_flat_gives() -> None:
    rng = np.random.default_rng(11)
    query = rng.standard_normal((7, 24)).astype(np.float32)
    pages = [rng.standard_normal((int(n), 24)).astype(np.float32) for n in rng.integers(1, 90, 12)]
    np.testing.assert_array_equal(maxsim_each(query, pages), maxsim(query, pages).astype(np.float64))
