"""Milvus Lite's packed rows in shards (schema 5): a writer or a rebuild holds one shard's rows, not all.

Shards are made tiny here (a few pages each) so that adds, replacements, deletes, reopens and
rebuilds all cross them; every answer is checked against a float64 reference.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from colpali_milvus import MilvusMultiVectorStore
from colpali_milvus.store import collections, lite, packed
from colpali_milvus.store.schema import SHARDED_PAGE_ROW_FIELDS
from helpers import unit_vectors

DIM = 8
SHARD_ROWS = 3  # pages of DIM 8 take one packed row each: a new shard every three pages


@pytest.fixture(autouse=True)
def tiny_shards(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(packed, "SHARD_ROWS", SHARD_ROWS)


def exact_top(query: np.ndarray, pages: dict[str, np.ndarray], k: int) -> list[str]:
    scores = {
        pid: float((query.astype(np.float64) @ v.astype(np.float64).T).max(axis=1).sum()) for pid, v in pages.items()
    }
    return sorted(scores, key=lambda pid: (-scores[pid], pid))[:k]


def shard_rows(store: MilvusMultiVectorStore) -> dict[int, set[str]]:
    """The page ids whose packed rows each shard holds, read from the shards themselves."""
    found: dict[int, set[str]] = {}
    names = store._names
    for shard in range(packed.shard_count(store.connection, names)):
        rows = store.connection.query_all(names.packed_shard(shard), "", ["page_id"], primary="pk")
        found[shard] = {str(row["page_id"]) for row in rows}
    return found


def open_shards(store: MilvusMultiVectorStore) -> list[int]:
    names = store._names
    count = packed.shard_count(store.connection, names)
    return [s for s in range(count) if lite.collection_open(store.uri, names.packed_shard(s))]


def test_pages_spread_over_shards_read_back_exactly_and_only_the_last_shard_stays_open(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    uri = str(tmp_path / "lite.db")
    pages = {f"p{i}": unit_vectors(rng, int(rng.integers(1, 9)), DIM) for i in range(14)}
    with MilvusMultiVectorStore(uri, collection_name="docs", dim=DIM) as store:
        ids = list(pages)
        for start in range(0, len(ids), 4):  # batches that straddle shard boundaries
            store.add([pages[pid] for pid in ids[start : start + 4]], ids=ids[start : start + 4])
        assert store._names.sharded
        assert open_shards(store) == [4]  # the writer moved on from the others and unloaded them
        held = shard_rows(store)  # (reads every shard: loads them all)
        assert len(held) == 5 and all(len(pids) <= SHARD_ROWS for pids in held.values())
        recorded = store.connection.query_all(
            store.pages_collection, "", list(SHARDED_PAGE_ROW_FIELDS), primary="page_id"
        )
        for row in recorded:  # each page's rows are in the one shard its page row names
            assert [s for s, pids in held.items() if row["page_id"] in pids] == [row["shard"]]
        store.connection.unload(*(store._names.packed_shard(s) for s in range(4)))

        # A replacement and deletes of pages in earlier shards: their rows go, the new version lands last
        pages["p1"] = unit_vectors(rng, 5, DIM)
        store.add([pages["p1"]], ids=["p1"])
        assert sorted(store.delete(page_ids=["p4", "p9"])) == ["p4", "p9"]
        del pages["p4"], pages["p9"]
        last = packed.shard_count(store.connection, store._names) - 1
        assert open_shards(store) == [last]  # the shards the delete touched were unloaded again
        held = shard_rows(store)
        assert "p1" not in held[0] and "p1" in held[last]
        assert not any({"p4", "p9"} & pids for pids in held.values())

        for _ in range(5):
            query = unit_vectors(rng, 3, DIM)
            assert [hit.page_id for hit in store.search(query, k=5)] == exact_top(query, pages, 5)
        vectors = store.get_vectors(list(pages))
        for pid, page in pages.items():
            np.testing.assert_array_equal(vectors[pid], page)
        assert store.info().vectors == sum(len(v) for v in pages.values())

    # A rebuild from Milvus (the saved copy gone) scans shard by shard; so does a store holding nothing
    shutil.rmtree(lite.cache_file(lite.normalise_uri(uri), "docs"))
    for cache in (True, False):
        with MilvusMultiVectorStore(uri, collection_name="docs", cache=cache) as store:
            query = unit_vectors(rng, 3, DIM)
            assert [hit.page_id for hit in store.search(query, k=5)] == exact_top(query, pages, 5)
            assert open_shards(store) == [packed.shard_count(store.connection, store._names) - 1]
            if cache:
                assert store.search_path.loaded_from == "milvus"

    # A reopened writer carries on in the last shard
    with MilvusMultiVectorStore(uri, collection_name="docs") as store:
        before = packed.shard_count(store.connection, store._names)
        pages["new"] = unit_vectors(rng, 2, DIM)
        store.add([pages["new"]], ids=["new"])
        assert packed.shard_count(store.connection, store._names) in (before, before + 1)
        np.testing.assert_array_equal(store.get_vectors(["new"])["new"], pages["new"])
        store.drop()
        assert not any(store.connection.has_collection(store._names.packed_shard(s)) for s in range(before + 1))


def test_a_version_4_lite_file_keeps_one_unbounded_shard(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(1)
    uri = str(tmp_path / "v4.db")
    pages = {f"p{i}": unit_vectors(rng, 3, DIM) for i in range(8)}
    with monkeypatch.context() as patch:
        patch.setattr(collections, "_NEW_LITE_SHARDED", False)
        with MilvusMultiVectorStore(uri, collection_name="docs", dim=DIM) as store:
            store.add(list(pages.values())[:4], ids=list(pages)[:4])
            store.connection.set_properties(store.pages_collection, {"colpali_milvus.schema_version": "4"})
    with MilvusMultiVectorStore(uri, collection_name="docs") as store:
        assert store.layout == "packed" and not store._names.sharded and store.info().schema_version == 4
        store.add(list(pages.values())[4:], ids=list(pages)[4:])
        assert packed.shard_count(store.connection, store._names) == 1
        assert shard_rows(store)[0] == set(pages)
        query = unit_vectors(rng, 2, DIM)
        assert [hit.page_id for hit in store.search(query, k=3)] == exact_top(query, pages, 3)
