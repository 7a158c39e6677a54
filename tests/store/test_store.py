"""MilvusMultiVectorStore on a real Milvus Lite file, without any model."""

from __future__ import annotations

import importlib
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from colpali_milvus import (
    IndexMismatchError,
    InvalidInputError,
    MilvusMultiVectorStore,
    StoreError,
    maxsim,
)
from colpali_milvus.store import lite
from colpali_milvus.store.packed import packed_rows
from colpali_milvus.store.rows import build_records, vector_rows
from colpali_milvus.store.schema import SCHEMA_VERSION
from helpers import unit_vectors
from targets import StoreTarget, store_target

connection_module = importlib.import_module("colpali_milvus.store.connection")
DIM = 16


@pytest.fixture(
    params=[
        pytest.param(("lite", True), id="lite-cache"),
        pytest.param(("lite", False), id="lite-ann"),
        pytest.param(("server", False), id="server", marks=pytest.mark.server),
        pytest.param(("server", "codes"), id="server-codes", marks=pytest.mark.server),
    ]
)
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[MilvusMultiVectorStore]:
    """Every store test runs on both search paths (in-process cache, Milvus ANN + fetch) and on a real server."""
    kind, cache = request.param
    for target in store_target(kind, request, tmp_path):
        with target.open("test", dim=DIM, model_name="test/colour-embedder", cache=cache) as s:
            yield s


def planted_corpus(rng: np.random.Generator, n_pages: int = 12, n_vectors: int = 40) -> list[np.ndarray]:
    return [unit_vectors(rng, n_vectors, DIM) for _ in range(n_pages)]


def test_search_finds_the_planted_page_with_exact_maxsim(store: MilvusMultiVectorStore) -> None:
    rng = np.random.default_rng(0)
    pages = planted_corpus(rng)
    ids = store.add(pages, [{"source": f"doc{i}.pdf", "page": i + 1, "topic": i % 3} for i in range(len(pages))])
    query = pages[5][[1, 7, 30]] + rng.normal(scale=0.05, size=(3, DIM)).astype(np.float32)

    hits = store.search(query, k=4)

    exact = maxsim(query, pages)
    assert hits[0].page_id == ids[5]
    assert [hit.page_id for hit in hits] == [ids[i] for i in np.argsort(-exact)[:4]]
    for hit in hits:
        assert hit.score == pytest.approx(float(exact[ids.index(hit.page_id)]), abs=1e-4)
    assert hits[0].metadata == {"source": "doc5.pdf", "page": 6, "page_label": "6", "doc_id": "", "topic": 2}
    assert [hit.score for hit in hits] == sorted((hit.score for hit in hits), reverse=True)


def test_a_page_is_scored_on_all_of_its_vectors_never_a_window(
    store: MilvusMultiVectorStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    rng = np.random.default_rng(1)
    # The best match for the query sits at the very end of a long page.
    long_page = unit_vectors(rng, 300, DIM)
    others = planted_corpus(rng, n_pages=3, n_vectors=30)
    query = long_page[-3:].copy()
    ids = store.add([long_page, *others], [{"page": i + 1} for i in range(4)])
    monkeypatch.setattr(connection_module, "QUERY_WINDOW", 64)  # like the tutorial's 1,000-row cap, but smaller

    hits = store.search(query, k=4)

    by_id = {hit.page_id: hit.score for hit in hits}
    assert by_id[ids[0]] == pytest.approx(float(maxsim(query, [long_page])[0]), abs=1e-4)
    assert by_id[ids[0]] == pytest.approx(3.0, abs=1e-3)
    assert store.get_vectors([ids[0]])[ids[0]].shape == (300, DIM)
    np.testing.assert_allclose(store.get_vectors([ids[0]])[ids[0]], long_page, atol=1e-6)


def test_filters_reach_the_ann_stage(store: MilvusMultiVectorStore) -> None:
    rng = np.random.default_rng(2)
    pages = planted_corpus(rng)
    tricky = 'a"b\\c [x] or page > 0.pdf'
    metadatas = [
        {"source": tricky if i == 3 else f"doc{i}.pdf", "page": i + 1, "topic": i % 3, "lang": "en" if i < 6 else "fr"}
        for i in range(len(pages))
    ]
    ids = store.add(pages, metadatas)
    query = pages[3][:4]

    assert [hit.page_id for hit in store.search(query, k=3, filter={"source": tricky})] == [ids[3]]
    only_fr = store.search(query, k=12, filter={"lang": "fr"})
    assert {hit.metadata["lang"] for hit in only_fr} == {"fr"}
    assert len(only_fr) == 6
    pages_1_2 = store.search(query, k=12, filter={"page": [1, 2]})
    assert sorted(hit.page for hit in pages_1_2) == [1, 2]
    either = store.search(query, k=12, filter={"$or": [{"topic": 0}, {"page": {"$gte": 12}}]})
    assert {hit.page for hit in either} == {1, 4, 7, 10, 12}
    raw = store.search(query, k=12, expr="page <= 2")
    assert sorted(hit.page for hit in raw) == [1, 2]
    assert store.search(query, k=3, filter={"source": '" or source != "'}) == []


def test_count_info_delete_and_page_ids(store: MilvusMultiVectorStore) -> None:
    rng = np.random.default_rng(3)
    pages = planted_corpus(rng, n_pages=6, n_vectors=10)
    ids = store.add(pages, [{"source": f"doc{i % 2}.pdf", "page": i + 1, "doc_id": f"d{i % 2}"} for i in range(6)])

    info = store.info()
    assert (info.pages, info.vectors, info.dim, info.schema_version) == (6, 60, DIM, SCHEMA_VERSION)
    assert info.backend == ("milvus-lite" if store.is_lite else "milvus")
    assert store.count({"source": "doc0.pdf"}) == 3

    deleted = store.delete("doc0.pdf")
    assert sorted(deleted) == sorted(ids[0::2])
    assert store.count() == 3
    assert store.info().vectors == 30
    assert store.delete(doc_ids=["d1"])
    assert store.count() == 0
    assert store.delete(page_ids=[]) == []
    with pytest.raises(InvalidInputError):
        store.delete()


def test_adding_an_existing_id_replaces_the_page(store: MilvusMultiVectorStore) -> None:
    rng = np.random.default_rng(4)
    first, second = unit_vectors(rng, 10, DIM), unit_vectors(rng, 25, DIM)
    store.add([first], [{"page": 1}], ids=["same-id"])
    store.add([second], [{"page": 2}], ids=["same-id"])

    assert store.count() == 1
    assert store.info().vectors == 25
    assert store.get_vectors(["same-id"])["same-id"].shape == (25, DIM)
    assert store.search(second[:2], k=1)[0].metadata["page"] == 2


def uncommitted_rows(store: MilvusMultiVectorStore, page_id: str, vectors: np.ndarray) -> Iterator[dict[str, Any]]:
    """The rows that hold a page's vectors in the store's layout, without the page row that commits them."""
    records = build_records([vectors], None, [page_id], None, store.dim)
    return packed_rows(records) if store.layout == "packed" else vector_rows(records)


def test_pages_without_a_commit_marker_are_never_returned(store: MilvusMultiVectorStore) -> None:
    rng = np.random.default_rng(5)
    committed = unit_vectors(rng, 10, DIM)
    store.add([committed], [{"page": 1}], ids=["committed"])
    # Vector rows of a page whose page row was never written (as after a crash mid-ingestion).
    orphan = unit_vectors(rng, 10, DIM)
    store.connection.insert(store.vectors_collection, uncommitted_rows(store, "orphan", orphan))

    hits = store.search(orphan[:3], k=5)

    assert [hit.page_id for hit in hits] == ["committed"]
    assert store.existing_page_ids(["committed", "orphan"]) == {"committed"}

    # A re-run after the crash opens the store anew and ingests the page again: no duplicate rows.
    cached = {"cached": True, "codes": "codes"}.get(store.info().search_path, False)
    store.close()
    cache_file = lite.cache_file(store.uri, store.collection_name)
    if cache_file is not None:
        shutil.rmtree(cache_file, ignore_errors=True)  # a crashed process never saves its cache
    with MilvusMultiVectorStore(store.uri, collection_name=store.collection_name, cache=cached) as rerun:
        rerun.add([orphan], [{"page": 2}], ids=["orphan"])
        assert rerun.info().vectors == 20
        assert rerun.search(orphan[:3], k=1)[0].page_id == "orphan"


@pytest.mark.parametrize(
    ("vectors", "message"),
    [
        (np.zeros((0, DIM), np.float32), "non-empty"),
        (np.zeros((3, DIM + 1), np.float32), "dim"),
        (np.full((3, DIM), np.nan, np.float32), "NaN"),
        (np.zeros(DIM, np.float32), "non-empty"),
    ],
)
def test_bad_vectors_are_refused_before_reaching_milvus(
    store: MilvusMultiVectorStore, vectors: np.ndarray, message: str
) -> None:
    with pytest.raises(InvalidInputError, match=message):
        store.add([vectors])
    with pytest.raises(InvalidInputError, match=message):
        store.search(vectors)
    assert store.count() == 0


def test_bad_arguments_are_refused(store: MilvusMultiVectorStore) -> None:
    query = np.ones((2, DIM), np.float32)
    for k in (0, -1, 1.5, True):
        with pytest.raises(InvalidInputError):
            store.search(query, k=k)  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError):
        store.add([query], [{}, {}])
    with pytest.raises(InvalidInputError):
        store.add([query, query], ids=["x", "x"])
    with pytest.raises(InvalidInputError):
        store.add([query], [{"page": "one"}])
    with pytest.raises(InvalidInputError):
        store.add([query], [{"when": object()}])
    with pytest.raises(InvalidInputError):
        MilvusMultiVectorStore("x.db", collection_name="bad-name")


def test_raw_expressions_that_milvus_rejects_raise_store_error(store: MilvusMultiVectorStore) -> None:
    store.add([np.ones((2, DIM), np.float32)])
    with pytest.raises(StoreError) as raised:
        store.search(np.ones((1, DIM), np.float32), expr="no_such_field == 1")
    assert raised.value.__cause__ is not None


def test_reopen_checks_model_dim_and_schema(target: StoreTarget) -> None:
    with target.open(dim=DIM, model_name="m/one") as store:
        store.add([np.ones((2, DIM), np.float32)])

    with target.open() as reopened:
        assert (reopened.dim, reopened.model_name, reopened.count()) == (DIM, "m/one", 1)
    with pytest.raises(IndexMismatchError, match="m/one"):
        target.open(model_name="m/two")
    with pytest.raises(IndexMismatchError, match="16-d"):
        target.open(dim=128)


def test_a_model_name_is_recorded_once_then_enforced(target: StoreTarget) -> None:
    with target.open(dim=DIM) as store:
        assert store.model_name is None
        store.claim_model("m/one")
        store.claim_model("m/one")
        with pytest.raises(IndexMismatchError):
            store.claim_model("m/two")
    with target.open() as reopened:
        assert reopened.model_name == "m/one"


def test_other_schema_versions_are_refused(target: StoreTarget) -> None:
    with target.open(dim=DIM) as store:
        store.connection.set_properties(store.pages_collection, {"colpali_milvus.schema_version": "0"})
    with pytest.raises(IndexMismatchError, match="schema version"):
        target.open()


def test_uris_are_shown_without_credentials() -> None:
    assert connection_module.redact_uri("http://u:p@h:1/x") == "http://***@h:1/x"
    assert connection_module.redact_uri("https://user:secret@host:19530") == "https://***@host:19530"


@pytest.mark.parametrize("cache", [True, False], ids=["cache", "milvus-ann"])
def test_a_reopened_store_searches_what_was_stored(target: StoreTarget, cache: bool) -> None:
    rng = np.random.default_rng(8)
    pages = planted_corpus(rng, n_pages=8, n_vectors=20)
    with target.open(dim=DIM, cache=cache) as store:
        ids = store.add(pages, [{"page": i + 1, "lang": "en"} for i in range(8)], texts=[f"t{i}" for i in range(8)])
        before = store.search(pages[2][:3], k=3)

    with target.open(cache=cache) as reopened:
        after = reopened.search(pages[2][:3], k=3)
        assert [(h.page_id, h.metadata, h.text) for h in after] == [(h.page_id, h.metadata, h.text) for h in before]
        assert [h.score for h in after] == pytest.approx([h.score for h in before], abs=1e-5)
        assert after[0].page_id == ids[2]
        np.testing.assert_allclose(reopened.get_vectors([ids[5]])[ids[5]], pages[5], atol=1e-6)


def test_the_cache_and_milvus_ann_paths_agree(target: StoreTarget) -> None:
    rng = np.random.default_rng(9)
    pages = planted_corpus(rng, n_pages=30, n_vectors=24)
    metadatas = [{"page": i + 1, "group": i % 4} for i in range(30)]
    with target.open(dim=DIM, cache=True) as cached:
        ids = cached.add(pages, metadatas, ids=[f"p{i}" for i in range(30)])
        queries = [pages[i][:4] + rng.normal(scale=0.1, size=(4, DIM)).astype(np.float32) for i in (0, 7, 19)]
        with_cache = [cached.search(q, k=5, filter={"group": {"$ne": 1}}) for q in queries]
    with target.open(cache=False) as direct:
        without = [direct.search(q, k=5, filter={"group": {"$ne": 1}}) for q in queries]
    for a, b in zip(with_cache, without, strict=True):
        assert [h.page_id for h in a] == [h.page_id for h in b]
        assert [h.score for h in a] == pytest.approx([h.score for h in b], abs=1e-5)
    assert ids == [f"p{i}" for i in range(30)]


def test_the_lite_cache_file_speeds_reopen_and_is_never_stale(lite_uri: str) -> None:
    rng = np.random.default_rng(10)
    pages = planted_corpus(rng, n_pages=5, n_vectors=12)
    with MilvusMultiVectorStore(lite_uri, collection_name="c", dim=DIM) as store:
        ids = store.add(pages, ids=[f"p{i}" for i in range(5)])
    cache_file = Path(f"{lite_uri}.cache") / "c" / "index.json"  # the saved copy's commit record
    assert cache_file.is_file()
    saved = cache_file.read_bytes()

    with MilvusMultiVectorStore(lite_uri, collection_name="c") as store:
        assert store.search(pages[1][:2], k=1)[0].page_id == ids[1]
        assert store.search_path.loaded_from == "file"  # vectors came from the file, not from Milvus
        replacement = unit_vectors(rng, 12, DIM)
        store.add([replacement], ids=["p1"])  # same id, same count, other vectors
        assert not cache_file.exists()  # dropped before the change, in case we crash now
    cache_file.write_bytes(saved)  # as if a crash had left the old record behind

    with MilvusMultiVectorStore(lite_uri, collection_name="c") as store:
        np.testing.assert_allclose(store.get_vectors(["p1"])["p1"], replacement, atol=1e-6)
        assert store.search_path.loaded_from == "milvus"  # the stale file failed its digests: rebuilt
