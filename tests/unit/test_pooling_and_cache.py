from __future__ import annotations

import numpy as np
import pytest

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


def test_cache_top_k_filters_and_remove() -> None:
    rng = np.random.default_rng(2)
    cache = PageVectorCache(16)
    pages = {f"p{i}": unit_vectors(rng, 30, 16) for i in range(10)}
    for page_id, vectors in pages.items():
        cache.put(page_id, vectors, {"page_id": page_id, "n_vectors": 30, "digest": vector_digest(vectors)})
    query = pages["p6"][:3]

    ids, scores, rows = cache.top_k(query, 3)
    assert ids[0] == "p6" and len(ids) == 3 and [row["page_id"] for row in rows] == ids
    assert scores[0] == pytest.approx(float(maxsim(query, [pages["p6"]])[0]), abs=1e-5)
    assert scores == sorted(scores, reverse=True)
    assert set(cache.top_k(query, 3, allowed={"p1", "p2"})[0]) == {"p1", "p2"}
    assert cache.top_k(query, 50, allowed=set()) == ([], [], [])
    assert len(cache.top_k(query, 50)[0]) == 10

    cache.remove(["p6"])
    assert "p6" not in cache and len(cache) == 9
    assert "p6" not in cache.top_k(query, 10)[0]
