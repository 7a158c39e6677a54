"""A Lite store reopened to serve reads its page rows and its saved copy, never the per-vector rows.

Milvus Lite reads every row of a collection into the process that first touches it (~2 MB and
~10 ms per ColPali page as per-vector rows), so a serving process must not touch them at all.
"""

from __future__ import annotations

import numpy as np
import pytest

from colpali_milvus import MilvusMultiVectorStore, StoreError
from colpali_milvus.store import lite, packed
from colpali_milvus.store.connection import MilvusConnection
from colpali_milvus.store.packed import packed_rows
from colpali_milvus.store.rows import build_records
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


def test_a_session_that_starts_with_a_write_still_reads_the_saved_copy(lite_uri: str, loaded: list[str]) -> None:
    rng = np.random.default_rng(5)
    pages = [unit_vectors(rng, 5, DIM) for _ in range(5)]
    with MilvusMultiVectorStore(lite_uri, collection_name="c", dim=DIM) as store:
        store.add(pages[:4], ids=[f"p{i}" for i in range(4)])
    with MilvusMultiVectorStore(lite_uri, collection_name="c") as store:
        store.add([pages[4]], ids=["p4"])
        store.delete(page_ids=["p0"])
        assert store.search_path.loaded_from == "file"  # type: ignore[attr-defined]  # not rebuilt from Milvus
        assert [store.search(page[:2], k=1)[0].page_id for page in pages[1:]] == ["p1", "p2", "p3", "p4"]


def test_rows_written_twice_for_one_page_are_one_page_without_a_cache(
    lite_uri: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A retried write (an add that failed before its commit marker, then ran again) may leave two row sets."""
    monkeypatch.setattr(packed, "_ROWS_PER_READ", 2)  # the two sets arrive in different windows
    rng = np.random.default_rng(6)
    pages = [unit_vectors(rng, 5, DIM) for _ in range(3)]
    with MilvusMultiVectorStore(lite_uri, collection_name="c", dim=DIM, cache=False) as store:
        store.add(pages, ids=["a", "b", "c"])
        records = build_records([pages[1]], None, ["b"], None, DIM)
        store.connection.insert(store.vectors_collection, packed_rows(records))  # the same page's rows again
        hits = store.search(pages[1][:2], k=3)
        assert hits[0].page_id == "b"
        assert len(hits) == len({hit.page_id for hit in hits}) == 3


def test_an_add_that_failed_before_its_commit_markers_leaves_no_second_copy(
    lite_uri: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    rng = np.random.default_rng(7)
    page = unit_vectors(rng, 5, DIM)
    with MilvusMultiVectorStore(lite_uri, collection_name="c", dim=DIM) as store:
        original = MilvusConnection.insert

        def fail_on_page_rows(self: MilvusConnection, collection: str, rows: object, **kwargs: object) -> None:
            raise StoreError("the server went away")

        monkeypatch.setattr(MilvusConnection, "insert", fail_on_page_rows)
        with pytest.raises(StoreError):
            store.add([page], ids=["p"])  # the packed rows are written, the page row is not
        monkeypatch.setattr(MilvusConnection, "insert", original)
        store.add([page], ids=["p"])
        assert store.info().vectors == 5  # the first attempt's rows were cleared, not doubled
