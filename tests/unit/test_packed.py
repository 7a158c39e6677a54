"""The packed layout's encoding: lossless for any float32, half the bytes for bfloat16 values."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from colpali_milvus.store import packed
from colpali_milvus.store.packed import PART_CHARS, decode, encode, packed_rows
from colpali_milvus.store.rows import build_records

finite32 = st.floats(width=32, allow_nan=False, allow_infinity=False)


@settings(max_examples=200, deadline=None)
@given(hnp.arrays(np.float32, hnp.array_shapes(min_dims=2, max_dims=2, min_side=1, max_side=40), elements=finite32))
def test_any_float32_page_comes_back_bit_for_bit(vectors: np.ndarray) -> None:
    encoding, text = encode(vectors)
    back = decode(encoding, text, vectors.shape[0], vectors.shape[1])
    np.testing.assert_array_equal(back.view(np.uint32), vectors.view(np.uint32))  # -0.0 and subnormals too


def test_bfloat16_values_take_half_the_bytes_and_others_do_not() -> None:
    rng = np.random.default_rng(0)
    vectors = rng.standard_normal((30, 16)).astype(np.float32)
    as_bf16 = (vectors.view(np.uint32) & 0xFFFF0000).view(np.float32)  # what a bfloat16 model emits, widened
    encoding, text = encode(as_bf16)
    assert encoding == "bf16"
    assert len(text) == pytest.approx(30 * 16 * 2 * 4 / 3, abs=4)
    np.testing.assert_array_equal(decode(encoding, text, 30, 16), as_bf16)
    assert encode(vectors)[0] == "f32"


@pytest.mark.parametrize(
    ("encoding", "text", "n", "dim", "message"),
    [
        ("f32", "AAAA", 1, 1, "bytes are not"),  # 3 bytes: not one float
        ("f32", "not base64!", 1, 1, "base64"),
        ("f64", "AAAAAA==", 1, 1, "unknown vector encoding"),
        ("f32", "AAAAAA==", 0, 1, "bytes are not"),
    ],
)
def test_text_that_is_not_the_stated_vectors_is_refused(
    encoding: str, text: str, n: int, dim: int, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        decode(encoding, text, n, dim)


def test_a_page_longer_than_one_row_is_cut_into_parts_that_join_back() -> None:
    rng = np.random.default_rng(1)
    vectors = rng.standard_normal((300, 128)).astype(np.float32)  # 153,600 bytes: 204,800 characters
    rows = list(packed_rows(build_records([vectors], None, ["p"], None, 128)))
    assert [row["part"] for row in rows] == list(range(4)) and {row["parts"] for row in rows} == {4}
    assert all(len(row["blob"]) <= PART_CHARS for row in rows)
    text = "".join(row["blob"] for row in rows)
    np.testing.assert_array_equal(decode(rows[0]["encoding"], text, 300, 128), vectors)


@settings(max_examples=60, deadline=None)
@given(
    counts=st.lists(st.integers(1, 3000), max_size=80),
    dim=st.sampled_from([16, 128]),
    parallel=st.integers(1, 4),
)
def test_reads_are_split_into_requests_whose_rows_fit_a_window(counts: list[int], dim: int, parallel: int) -> None:
    """A request whose rows fit the window is one plain query (no key-ordered paging, ~200 ms a window on 2.3.5)."""
    rows = {f"p{i}": {"n_vectors": n} for i, n in enumerate(counts)}
    groups = list(packed._requests(rows, dim, parallel))
    assert [page_id for group in groups for page_id in group] == list(rows)  # every page once, in order
    for group in groups:
        written = [len(encode(np.ones((rows[pid]["n_vectors"], dim), np.float32) / 3)[1]) for pid in group]
        parts = sum(-(-length // PART_CHARS) for length in written)
        assert parts <= packed._ROWS_PER_READ or len(group) == 1
        assert len(group) <= max(1, -(-len(rows) // parallel))
