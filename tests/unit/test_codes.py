"""Rerank codes: int8 with one scale per vector, chunked into VARCHAR-sized base64 text."""

from __future__ import annotations

import binascii

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from colpali_milvus.search import codes
from colpali_milvus.search.maxsim import maxsim
from helpers import unit_vectors


@settings(max_examples=60, deadline=None)
@given(
    arrays(
        np.float32,
        st.tuples(st.integers(1, 40), st.integers(1, 24)),
        elements=st.floats(-1e6, 1e6, width=32, allow_subnormal=False),
    )
)
def test_every_value_comes_back_within_half_a_step_of_its_vectors_scale(vectors: np.ndarray) -> None:
    n, dim = vectors.shape
    blob = codes.encode(vectors)
    assert len(blob) == n * (4 + dim)
    decoded = codes.decode(blob, n, dim)
    step = np.abs(vectors).max(axis=1, keepdims=True) / 127  # (n, 1)
    assert np.all(np.abs(decoded - vectors) <= step / 2 * (1 + 1e-5) + 1e-30)


def test_an_all_zero_vector_decodes_to_zeros() -> None:
    vectors = np.zeros((3, 8), np.float32)
    vectors[1] = 0.5
    decoded = codes.decode(codes.encode(vectors), 3, 8)
    assert np.array_equal(decoded[0], np.zeros(8)) and np.array_equal(decoded[2], np.zeros(8))
    assert np.allclose(decoded[1], 0.5)


@pytest.mark.parametrize("size", [0, 1, 49_148, 49_149, 49_150, 3 * 49_149 + 7])
def test_chunks_fit_a_varchar_and_join_back(size: int) -> None:
    blob = np.random.default_rng(size).bytes(size)
    chunks = codes.to_chunks(blob)
    assert all(len(chunk) <= codes.CHUNK_CHARS <= 65_535 for chunk in chunks)
    assert len(chunks) == -(-size // 49_149)
    assert codes.from_chunks(chunks) == blob


def test_damaged_text_and_wrong_sizes_raise_value_errors() -> None:
    blob = codes.encode(np.ones((4, 8), np.float32))
    with pytest.raises(ValueError, match="cannot hold"):
        codes.decode(blob, 5, 8)
    with pytest.raises(binascii.Error):  # a ValueError
        codes.from_chunks(["not base64!"])


def test_maxsim_on_codes_stays_within_its_error_bound_of_the_exact_score() -> None:
    """|q.(p - p')| <= |q|_1 * step / 2 per query vector, so a page's MaxSim moves by at most the sum."""
    rng = np.random.default_rng(0)
    pages = [unit_vectors(rng, 300, 128) for _ in range(20)]
    query = unit_vectors(rng, 32, 128)
    exact = maxsim(query, pages)
    approximate = maxsim(query, [codes.decode(codes.encode(page), *page.shape) for page in pages])
    bound = sum(np.abs(q).sum() for q in query) * max(np.abs(page).max() for page in pages) / 127 / 2
    assert np.all(np.abs(approximate - exact) <= bound)
    assert np.abs(approximate - exact).max() < 0.02  # ~0.01 in practice: far tighter than the bound
