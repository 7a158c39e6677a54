from __future__ import annotations

import numpy as np

from colpali_milvus.search import maxsim
from colpali_milvus.search.pooling import pool_page
from colpali_milvus.store.cache import PageVectorCache
from colpali_milvus.store.rows import vector_digest
from helpers import unit_vectors


def test_pooling_is_deterministic_normalised_and_keeps_rare_content() -> None:
    rng = np.random.default_rng(0)
    background = unit_vectors(rng, 1, 32)
    rare = unit_vectors(rng, 1, 32)
    page = np.concatenate([np.repeat(background, 500, axis=0), rare]) + rng.normal(scale=0.01, size=(501, 32))

    centroids = pool_page(page.astype(np.float32), n_centroids=8)

    assert centroids.shape == (8, 32)
    np.testing.assert_allclose(np.linalg.norm(centroids, axis=1), 1.0, atol=1e-5)
    np.testing.assert_array_equal(centroids, pool_page(page.astype(np.float32), n_centroids=8))
    assert (centroids @ rare[0]).max() > 0.99  # the single content patch kept its own centroid


def test_small_pages_keep_their_vectors() -> None:
    rng = np.random.default_rng(1)
    page = unit_vectors(rng, 5, 16)
    np.testing.assert_allclose(pool_page(page, n_centroids=32), page, atol=1e-6)


def test_cache_candidates_gather_and_remove() -> None:
    rng = np.random.default_rng(2)
    cache = PageVectorCache(16)
    pages = {f"p{i}": unit_vectors(rng, 30, 16) for i in range(10)}
    for page_id, vectors in pages.items():
        cache.put(page_id, vectors, {"page_id": page_id, "n_vectors": 30, "digest": vector_digest(vectors)})
    query = pages["p6"][:3]

    candidates = cache.candidates(query, limit=3)
    assert candidates[0] == "p6" and len(candidates) == 3
    assert cache.candidates(query, limit=3, allowed={"p1", "p2"}) in (["p1", "p2"], ["p2", "p1"])
    assert cache.candidates(query, limit=50, allowed=set()) == []

    ids, vectors, offsets, rows = cache.gather(["p6", "missing", "p1"])
    assert ids == ["p6", "p1"] and [row["page_id"] for row in rows] == ids
    assert vectors.shape == (60, 16) and offsets.tolist() == [0, 30]
    np.testing.assert_allclose(maxsim(query, [vectors[:30]]), maxsim(query, [pages["p6"]]))

    cache.remove(["p6"])
    assert "p6" not in cache and len(cache) == 9
    assert "p6" not in cache.candidates(query, limit=10)
