"""A Lite store reopened to serve reads its page rows and its saved copy, never the per-vector rows.

Milvus Lite reads every row of a collection into the process that first touches it (~2 MB and
~10 ms per ColPali page as per-vector rows), so a serving process must not touch them at all.
"""

from __future__ import annotations

import numpy as np
import pytest

from colpali_milvus import MilvusMultiVectorStore
from colpali_milvus.store import lite
from colpali_milvus.store.connection import MilvusConnection
from helpers import unit_vectors

DIM = 8


@pytest.fixture
def loaded(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every collection a store asks Milvus to load, in order."""
    names: list[str] = []
    original = MilvusConnection.load

    def spy(self: MilvusConnection, *collections: str, on_first_use: bool = False) -> None:
        if not on_first_use:
            names.extend(collections)
        original(self, *collections, on_first_use=on_first_use)

    monkeypatch.setattr(MilvusConnection, "load", spy)
    return names


@pytest.fixture
def opened_by_lite(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every collection Milvus Lite itself opens (reading all of its rows), whoever asked for it."""
    from milvus_lite.engine import collection as lite_collection

    names: list[str] = []
    original = lite_collection.Collection.__init__

    def spy(self: object, name: str, *args: object, **kwargs: object) -> None:
        names.append(name)
        original(self, name, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(lite_collection.Collection, "__init__", spy)
    return names


def test_a_reopened_store_serves_without_loading_the_vector_rows(
    lite_uri: str, loaded: list[str], opened_by_lite: list[str]
) -> None:
    rng = np.random.default_rng(3)
    pages = [unit_vectors(rng, 6 + i, DIM) for i in range(8)]
    with MilvusMultiVectorStore(lite_uri, collection_name="c", dim=DIM) as store:
        store.add(pages, ids=[f"p{i}" for i in range(8)], metadatas=[{"source": f"s{i % 2}"} for i in range(8)])
    loaded.clear()
    opened_by_lite.clear()

    with MilvusMultiVectorStore(lite_uri, collection_name="c") as store:
        assert store.search(pages[5][:2], k=1)[0].page_id == "p5"
        assert [hit.page_id for hit in store.search(pages[3][:2], k=1, filter={"source": "s1"})] == ["p3"]
        np.testing.assert_array_equal(store.get_vectors(["p2"])["p2"], pages[2])
        assert store.get_pages(["p1"])["p1"].source == "s1"
        assert store.search_path.loaded_from == "file"  # type: ignore[attr-defined]
        assert loaded == ["c_pages"]
        assert opened_by_lite == ["c_pages"]  # not even a listing or a description opened the others

        store.add([pages[0]], ids=["new"])  # a write opens the rest, then works as before
        assert set(loaded) == {"c_pages", "c_packed"}
        assert store.search(pages[0][:3], k=2)[0].page_id in {"p0", "new"}
    with MilvusMultiVectorStore(lite_uri, collection_name="c") as store:
        assert store.count() == 9


def test_without_a_saved_copy_the_vectors_are_read_from_milvus(lite_uri: str, loaded: list[str]) -> None:
    rng = np.random.default_rng(4)
    pages = [unit_vectors(rng, 5, DIM) for _ in range(4)]
    with MilvusMultiVectorStore(lite_uri, collection_name="c", dim=DIM) as store:
        store.add(pages, ids=[f"p{i}" for i in range(4)])
    folder = lite.cache_file(lite.normalise_uri(lite_uri), "c")
    assert folder is not None
    (folder / "index.json").unlink()
    loaded.clear()

    with MilvusMultiVectorStore(lite_uri, collection_name="c") as store:
        assert store.search(pages[2][:2], k=1)[0].page_id == "p2"
        assert store.search_path.loaded_from == "milvus"  # type: ignore[attr-defined]
        assert "c_packed" in loaded
