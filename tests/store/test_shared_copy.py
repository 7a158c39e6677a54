"""Every store in a process keeps the shared copy current, whichever search path it uses itself."""

from __future__ import annotations

import numpy as np

from colpali_milvus.store.milvus import MilvusMultiVectorStore


def test_an_uncached_stores_writes_reach_a_cached_store_of_the_same_lite_file(lite_uri: str) -> None:
    rng = np.random.default_rng(0)
    first, second, third = (rng.standard_normal((4, 8)).astype(np.float32) for _ in range(3))
    with MilvusMultiVectorStore(lite_uri, dim=8) as cached, MilvusMultiVectorStore(lite_uri, cache=False) as plain:
        cached.add([first], ids=["a"])
        assert [hit.page_id for hit in cached.search(first, k=3)] == ["a"]  # the copy is filled

        plain.add([second], ids=["b"])  # added by the other store
        plain.add([third], ids=["a"])  # replaced by it
        assert cached.existing_page_ids(["a", "b"]) == {"a", "b"}
        np.testing.assert_array_equal(cached.get_vectors(["a"])["a"], third)
        assert cached.search(third, k=1)[0].score == plain.search(third, k=1)[0].score

        assert plain.delete(page_ids=["b"]) == ["b"]  # deleted by it
        assert [hit.page_id for hit in cached.search(second, k=3)] == ["a"]
        assert cached.existing_page_ids(["b"]) == set()

    with MilvusMultiVectorStore(lite_uri) as reopened:  # and the saved file says the same
        assert reopened.page_ids() == ["a"]
        np.testing.assert_array_equal(reopened.get_vectors(["a"])["a"], third)
