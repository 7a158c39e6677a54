"""The exhaustive reference equals plain numpy MaxSim over the stored vectors, ties broken by page id."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest
from eval_data import unit_rows

from colpali_milvus import MilvusMultiVectorStore
from colpali_milvus.eval import exhaustive, exhaustive_search, maxsim_many
from colpali_milvus.search.maxsim import maxsim_flat, page_offsets


def naive_maxsim(query: np.ndarray, page: np.ndarray) -> float:
    """MaxSim by its definition, in float64: sum over query vectors of the best dot product."""
    return float(sum(max(float(np.dot(q, p)) for p in page.astype(np.float64)) for q in query.astype(np.float64)))


@pytest.mark.parametrize("small_blocks", [False, True])
def test_maxsim_many_equals_maxsim_flat_and_the_definition(small_blocks: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    if small_blocks:  # several query groups and page blocks, so that every boundary is crossed
        monkeypatch.setattr(exhaustive, "_COLUMNS_PER_GROUP", 5)
        monkeypatch.setattr(exhaustive, "_CELLS_PER_BLOCK", 40)
    rng = np.random.default_rng(1)
    pages = [unit_rows(rng, int(n), 8) for n in rng.integers(1, 9, size=23)]
    queries = [unit_rows(rng, int(n), 8) for n in rng.integers(1, 7, size=9)]
    vectors, offsets = np.concatenate(pages), page_offsets(pages)

    scores = maxsim_many(queries, vectors, offsets)

    assert scores.shape == (9, 23) and scores.dtype == np.float32
    for i, query in enumerate(queries):
        np.testing.assert_allclose(scores[i], maxsim_flat(query, vectors, offsets), rtol=1e-5, atol=1e-6)
        expected = [naive_maxsim(query, page) for page in pages]
        np.testing.assert_allclose(scores[i], expected, rtol=1e-5, atol=1e-5)
    assert maxsim_many([], vectors, offsets).shape == (0, 23)


@pytest.fixture(scope="module")
def random_store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[MilvusMultiVectorStore, dict]]:
    """25 pages of 1-6 random unit vectors; pages d0..d2 are copies of r0 (exact ties)."""
    rng = np.random.default_rng(7)
    pages = {f"r{i}": unit_rows(rng, int(rng.integers(1, 7)), 8) for i in range(22)}
    pages.update({f"d{i}": pages["r0"].copy() for i in range(3)})
    store = MilvusMultiVectorStore(tmp_path_factory.mktemp("exhaustive") / "x.db", collection_name="r", dim=8)
    store.add(list(pages.values()), ids=list(pages))
    try:
        yield store, pages
    finally:
        store.close()


def test_exhaustive_search_streams_pages_and_equals_numpy(random_store: tuple[MilvusMultiVectorStore, dict]) -> None:
    store, pages = random_store
    rng = np.random.default_rng(3)
    queries = [pages["r0"][:2].copy(), *(unit_rows(rng, int(n), 8) for n in (1, 3, 5))]
    wanted = [{"r5", "d2"}, set(), {"r1"}, {"unknown"}]
    batches: list[tuple[int, int]] = []

    rankings = exhaustive_search(
        store, queries, depth=6, wanted=wanted, batch_pages=4, progress=lambda d, t: batches.append((d, t))
    )

    assert batches[-1] == (25, 25) and len(batches) == 7  # 4 pages at a time
    ids = sorted(pages)
    for query, ranking, asked in zip(queries, rankings, wanted, strict=True):
        exact = {page_id: naive_maxsim(query, pages[page_id]) for page_id in ids}
        # best first; equal scores (the copies of r0) in page id order
        expected = sorted(ids, key=lambda page_id: (-round(exact[page_id], 5), page_id))[:6]
        assert list(ranking.page_ids) == expected
        np.testing.assert_allclose(ranking.scores, [exact[p] for p in expected], rtol=1e-5, atol=1e-5)
        assert set(ranking.wanted) == asked - {"unknown"}
        for page_id, score in ranking.wanted.items():
            assert score == pytest.approx(exact[page_id], rel=1e-5, abs=1e-5)
    # the first query is r0's own vectors: r0 and its three copies tie at the top, in id order
    assert rankings[0].page_ids[:4] == ("d0", "d1", "d2", "r0")
    assert len(set(rankings[0].scores[:4])) == 1
