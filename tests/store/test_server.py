"""What only a real Milvus server shows: its result window, duplicate keys, async index builds,
scalar index types, restarts, and the same answers as Milvus Lite (the congruence test)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from colpali_milvus import StoreConnectionError, maxsim
from colpali_milvus.store import connection as store_module
from colpali_milvus.store.server_path import ServerPath
from helpers import unit_vectors
from milvus_server import EmbeddedMilvus
from targets import StoreTarget, store_target

pytestmark = pytest.mark.server
DIM = 16


@pytest.fixture
def server(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[StoreTarget]:
    yield from store_target("server", request, tmp_path)


def corpus(seed: int, n_pages: int = 40, n_vectors: int = 30) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [unit_vectors(rng, n_vectors + i % 7, DIM) for i in range(n_pages)]


def test_a_server_and_milvus_lite_give_the_same_hits_and_scores(server: StoreTarget, tmp_path: Path) -> None:
    pages = corpus(seed=1)
    metadatas = [{"source": f"doc{i % 5}.pdf", "page": i + 1, "team": ["a", "b"][i % 2]} for i in range(len(pages))]
    ids = [f"p{i}" for i in range(len(pages))]
    rng = np.random.default_rng(2)
    queries = [pages[i][:5] + rng.normal(scale=0.2, size=(5, DIM)).astype(np.float32) for i in (0, 9, 23, 37)]
    filters: list[dict[str, Any] | None] = [None, {"team": "b"}, {"source": {"$in": ["doc1.pdf", "doc3.pdf"]}}]
    lite = StoreTarget("lite", str(tmp_path / "lite.db"))

    answers = []
    for target, cache in ((lite, True), (lite, False), (server, False), (server, "codes")):
        with target.open(f"congruence_{cache}", dim=DIM, cache=cache) as store:
            store.add(pages, metadatas, ids=ids)
            answers.append([store.search(q, k=8, filter=f) for q in queries for f in filters])

    exact = [maxsim(q, pages) for q in queries for _ in filters]
    for lite_hits, server_hits in zip(answers[0], answers[2], strict=True):
        assert [h.page_id for h in server_hits] == [h.page_id for h in lite_hits]
        assert [h.score for h in server_hits] == pytest.approx([h.score for h in lite_hits], abs=1e-4)
        assert [h.metadata for h in server_hits] == [h.metadata for h in lite_hits]
    for codes_hits, lite_hits in zip(answers[3], answers[0], strict=True):  # the server's exact mode
        assert [h.page_id for h in codes_hits] == [h.page_id for h in lite_hits]
        assert [h.score for h in codes_hits] == pytest.approx([h.score for h in lite_hits], abs=1e-4)
    for ann_hits, cache_hits in zip(answers[1], answers[0], strict=True):
        assert [h.page_id for h in ann_hits] == [h.page_id for h in cache_hits]
    for hits, scores in zip(answers[2], exact, strict=True):
        for hit in hits:
            assert hit.score == pytest.approx(float(scores[ids.index(hit.page_id)]), abs=1e-4)


def test_fetches_larger_than_the_server_result_window_are_paged(server: StoreTarget) -> None:
    """A real server refuses queries past 16,384 rows; one page and one listing both exceed that."""
    rng = np.random.default_rng(3)
    huge_page = unit_vectors(rng, store_module.QUERY_WINDOW + 3_000, DIM)
    small_pages = [unit_vectors(rng, 1, DIM) for _ in range(store_module.QUERY_WINDOW + 500)]
    with server.open("window", dim=DIM, cache=False) as store:
        store.add([huge_page], [{"source": "huge.pdf", "page": 1}], ids=["huge"])
        store.flush()  # seal segments, so the paged reads cross segment boundaries
        store.add(small_pages, [{"source": "small.pdf", "page": i + 1} for i in range(len(small_pages))])

        np.testing.assert_allclose(store.get_vectors(["huge"])["huge"], huge_page, atol=1e-6)
        hits = store.search(huge_page[-4:], k=1)
        assert (hits[0].page_id, hits[0].score) == ("huge", pytest.approx(4.0, abs=1e-3))
        assert store.count() == len(small_pages) + 1
        ids = store.page_ids({"source": "small.pdf"})
        assert len(ids) == len(set(ids)) == len(small_pages)
        assert len(store.delete("small.pdf")) == len(small_pages)
        assert store.count() == 1


def test_a_page_written_twice_concurrently_is_one_page(server: StoreTarget, monkeypatch: pytest.MonkeyPatch) -> None:
    """Two writers racing on one page: both clear it first, then both insert. A server keeps both
    copies of a duplicated primary key (count, query and search each see a different one)."""
    rng = np.random.default_rng(4)
    page, other = unit_vectors(rng, 20, DIM), unit_vectors(rng, 20, DIM)
    with server.open("dup", dim=DIM, cache=False) as first, server.open("dup", cache=False) as second:
        first.add([other], [{"page": 2}], ids=["other"])
        monkeypatch.setattr(ServerPath, "ids_to_clear", lambda self, ids: [])  # the race: neither sees the other
        first.add([page], [{"page": 1, "writer": 1}], ids=["same"])
        second.add([page], [{"page": 1, "writer": 2}], ids=["same"])

        assert first.count() == 2
        assert first.info().vectors == 60  # the vector rows really are there twice
        hits = first.search(page[:3], k=5)
        assert [hit.page_id for hit in hits].count("same") == 1
        assert hits[0].page_id == "same"
        assert hits[0].score == pytest.approx(float(maxsim(page[:3], [page])[0]), abs=1e-4)
        assert first.get_vectors(["same"])["same"].shape == (20, DIM)


def test_index_builds_are_asynchronous_and_search_works_throughout(server: StoreTarget) -> None:
    pages = corpus(seed=5, n_pages=60, n_vectors=40)
    with server.open("async", dim=DIM, cache=False) as store:
        ids = store.add(pages)
        assert store.search(pages[7][:3], k=1)[0].page_id == ids[7]  # before any index exists

        info = store.wait_for_index(timeout=120)

        assert info.index_type == "HNSW"
        assert info.indexed_vectors == info.vectors == sum(len(p) for p in pages)
        assert info.pending_index_vectors == 0
        assert store.search(pages[7][:3], k=1)[0].page_id == ids[7]


def test_scalar_indexes_fall_back_to_what_the_server_supports(server: StoreTarget) -> None:
    with server.open("scalar", dim=DIM) as store:
        vector_indexes = set(store.connection.list_indexes(store.vectors_collection))
        page_indexes = set(store.connection.list_indexes(store.pages_collection))
        version = store.connection.server_version()
        source_index = store.connection.describe_index(store.pages_collection, "source_idx")
    assert {"vector", "page_id_idx"} <= vector_indexes
    assert {"pooled", "doc_id_idx", "source_idx"} <= page_indexes
    assert source_index["index_type"] == ("INVERTED" if version >= (2, 4) else "Trie")


# -- faults: these stop the shared server and bring it back ---------------------------------------


@pytest.fixture
def embedded(milvus_server: object) -> EmbeddedMilvus:
    if not isinstance(milvus_server, EmbeddedMilvus):
        pytest.skip("restarts need the embedded test server")
    return milvus_server


def test_a_server_that_is_down_fails_within_the_retry_budget(server: StoreTarget, embedded: EmbeddedMilvus) -> None:
    page = unit_vectors(np.random.default_rng(6), 10, DIM)
    with server.open("down", dim=DIM, cache=False, retry_timeout=3) as store:
        store.add([page], ids=["p"])
        embedded.stop(crash=True)
        try:
            started = time.monotonic()
            with pytest.raises(StoreConnectionError, match="could not search"):
                store.search(page[:2], k=1)
            assert time.monotonic() - started < 3 + 10  # the budget, plus one request timing out
        finally:
            embedded.start()
        assert store.search(page[:2], k=1)[0].page_id == "p"  # the same store works again


def test_a_server_restart_mid_run_is_retried_and_loses_nothing(server: StoreTarget, embedded: EmbeddedMilvus) -> None:
    """Searches and ingestion keep going while the server is killed and restarted: every search
    answers with the right page (never an empty or partial result) and every page lands."""
    pages = corpus(seed=7, n_pages=30, n_vectors=20)
    failures: list[BaseException] = []
    answers: list[bool] = []
    stop = threading.Event()
    with server.open("restart", dim=DIM, cache=False, retry_timeout=120) as store:
        store.add(pages[:10], ids=[f"p{i}" for i in range(10)])

        def search_loop() -> None:
            i = 0
            while not stop.is_set():
                try:
                    hits = store.search(pages[i % 10][:3], k=1)
                    answers.append(bool(hits) and hits[0].page_id == f"p{i % 10}")
                except BaseException as error:  # recorded, then asserted on below
                    failures.append(error)
                i += 1

        def ingest_loop() -> None:
            try:
                for i in range(10, 30):
                    store.add([pages[i]], ids=[f"p{i}"])
                    time.sleep(0.3)
            except BaseException as error:
                failures.append(error)

        threads = [threading.Thread(target=search_loop), threading.Thread(target=ingest_loop)]
        for thread in threads:
            thread.start()
        time.sleep(1.5)
        embedded.restart(crash=True)
        threads[1].join(timeout=240)
        time.sleep(1.0)
        stop.set()
        threads[0].join(timeout=240)

        assert failures == []
        assert answers and all(answers)
        assert store.count() == 30
        for i in (10, 20, 29):
            assert store.search(pages[i][:3], k=1)[0].page_id == f"p{i}"
