"""``cache="codes"``: a server's serving process holds every page's int8 codes, reads floats only to rescore.

The default on a server while the codes fit ``codes_budget``; exact top k (certified), coherent with
other writers through the generation token, and a page changed between sync and rescoring makes
the copy sync and the search run again instead of scoring stale vectors.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from colpali_milvus import InvalidInputError, MilvusMultiVectorStore, maxsim
from colpali_milvus.store import cache as cache_module
from colpali_milvus.store import collections as collections_module
from colpali_milvus.store import packed as packed_module
from colpali_milvus.store import reads
from colpali_milvus.store.cache import PageVectorCache
from colpali_milvus.store.float_file import StalePagesError
from colpali_milvus.store.milvus_floats import MilvusFloats
from colpali_milvus.store.rows import vector_digest
from helpers import unit_vectors
from targets import StoreTarget, store_target

DIM = 16


def corpus(seed: int, n_pages: int = 30) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [unit_vectors(rng, 5 + (i * 7) % 40, DIM) for i in range(n_pages)]


def exhaustive_top(query: np.ndarray, pages: dict[str, np.ndarray], k: int) -> list[tuple[str, float]]:
    """float64 reference: every page's MaxSim, best first."""
    scores = {
        pid: float((query.astype(np.float64) @ v.astype(np.float64).T).max(axis=1).sum()) for pid, v in pages.items()
    }
    return sorted(scores.items(), key=lambda item: -item[1])[:k]


class _Unseen:
    """A write that this process's shared copy does not hear of."""

    def before_write(self) -> None: ...

    def written(self, records: object) -> None: ...

    def deleted(self, page_ids: object) -> None: ...


@pytest.fixture
def server(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[StoreTarget]:
    yield from store_target("server", request, tmp_path)


# -- any backend ----------------------------------------------------------------------------


@pytest.mark.parametrize("cache", [1, 0, "floats", "CODES", 2.0])
def test_cache_takes_only_none_true_false_or_codes(lite_uri: str, cache: object) -> None:
    with pytest.raises(InvalidInputError, match="cache must be"):
        MilvusMultiVectorStore(lite_uri, dim=DIM, cache=cache)  # type: ignore[arg-type]


@pytest.mark.parametrize("budget", [-1, 1.5, True])
def test_codes_budget_is_a_number_of_bytes(lite_uri: str, budget: object) -> None:
    with pytest.raises(InvalidInputError, match="codes_budget"):
        MilvusMultiVectorStore(lite_uri, dim=DIM, codes_budget=budget)  # type: ignore[arg-type]


def test_on_lite_codes_is_the_default_copy(lite_uri: str) -> None:
    """Lite's default already holds only codes in memory (floats in a mapped file): "codes" is the same."""
    pages = corpus(1, n_pages=6)
    with MilvusMultiVectorStore(lite_uri, dim=DIM, cache="codes") as store:
        store.add(pages, ids=[f"p{i}" for i in range(6)])
        assert store.info().search_path == "cached"
        assert store.search(pages[3][:2], k=1)[0].page_id == "p3"


def test_floats_read_from_milvus_must_match_the_rows_the_copy_holds(lite_uri: str) -> None:
    """MilvusFloats: a page whose stored vectors no longer hash to the held row is stale, never scored."""
    pages = corpus(2, n_pages=4)
    with MilvusMultiVectorStore(lite_uri, dim=DIM) as store:
        store.add(pages, ids=[f"p{i}" for i in range(4)])
        rows = reads.page_rows(store.connection, store.search_path._names, ["p1", "p2"])  # type: ignore[attr-defined]
        floats = MilvusFloats(store.connection, store.search_path._names, DIM)  # type: ignore[attr-defined]
        got = floats.get_many(rows)
        assert got.keys() == {"p1", "p2"}
        np.testing.assert_array_equal(got["p1"], pages[1])
        held = {**rows, "p2": {**rows["p2"], "digest": "0" * 64}}  # the row as it was before a replacement
        with pytest.raises(StalePagesError) as raised:
            floats.get_many(held)
        assert raised.value.page_ids == ["p2"]
        gone = {"p9": {**rows["p1"], "page_id": "p9"}}  # deleted by another writer
        with pytest.raises(StalePagesError):
            floats.get_many(gone)
        assert floats.get_many({}) == {}


def test_a_page_replaced_between_the_scan_and_its_rescoring_is_not_scored(monkeypatch: pytest.MonkeyPatch) -> None:
    """The scan saw one version of a page; its rescoring must not use another (the caller searches again)."""
    cache = PageVectorCache(DIM)
    pages = corpus(8, n_pages=5)
    for i, page in enumerate(pages):
        cache.put(f"p{i}", page, {"digest": f"d{i}"})
    real_search = cache_module.certified_search

    def replaced_mid_search(*args: object, **kwargs: object) -> object:
        cache.put("p1", pages[4], {"digest": "new"})  # a writer between the scan and the rescoring
        return real_search(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(cache_module, "certified_search", replaced_mid_search)
    with pytest.raises(StalePagesError) as raised:
        cache.top_k(pages[1][:3], k=5)  # every page is rescored: p1 among them
    assert raised.value.page_ids == ["p1"]
    monkeypatch.setattr(cache_module, "certified_search", real_search)
    ids, scores, rows = cache.top_k(pages[4][:3], k=2)  # the next search sees p1's new version
    assert set(ids) == {"p1", "p4"} and {row["digest"] for row in rows} == {"new", "d4"}
    assert scores[0] == pytest.approx(scores[1], abs=1e-5)


# -- the real server --------------------------------------------------------------------------


@pytest.mark.server
def test_the_server_default_holds_codes_within_the_budget_else_nothing(
    server: StoreTarget, caplog: pytest.LogCaptureFixture
) -> None:
    pages = corpus(3)
    with server.open(dim=DIM, cache=False) as writer:
        writer.add(pages, ids=[f"p{i}" for i in range(len(pages))])
    n_vectors = sum(len(page) for page in pages)
    with caplog.at_level(logging.INFO, logger="colpali_milvus.store.milvus"):
        with server.open() as default:
            assert default.info().search_path == "codes"
        assert f"holding the int8 codes of {n_vectors} vectors" in caplog.text
        caplog.clear()
        with server.open(codes_budget=n_vectors * DIM * 2 - 1) as over:
            assert over.info().search_path == "server"
        assert "holding nothing" in caplog.text and "approximate" in caplog.text
    with server.open(codes_budget=0, cache="codes") as forced:  # an explicit mode overrides the budget
        assert forced.info().search_path == "codes"
    with server.open(cache=True) as floats:
        assert floats.info().search_path == "cached"


@pytest.mark.server
def test_codes_mode_returns_the_exact_top_k_and_holds_no_floats(server: StoreTarget) -> None:
    pages = corpus(4)
    ids = [f"p{i}" for i in range(len(pages))]
    rng = np.random.default_rng(5)
    with server.open(dim=DIM, cache="codes") as store:
        store.add(pages, ids=ids)
        for seed_page in (0, 7, 19, 29):
            query = pages[seed_page][:4] + rng.normal(scale=0.2, size=(4, DIM)).astype(np.float32)
            hits = store.search(query, k=5)
            reference = exhaustive_top(query, dict(zip(ids, pages, strict=True)), 5)
            assert [hit.page_id for hit in hits] == [pid for pid, _ in reference]
            assert [hit.score for hit in hits] == pytest.approx([score for _, score in reference], abs=1e-4)
        np.testing.assert_allclose(store.get_vectors(["p7"])["p7"], pages[7], atol=1e-6)
        held = store.search_path._state.cache  # type: ignore[attr-defined]
        assert not held.holds_floats and len(held) == len(pages)
        code_bytes = sum(len(page) for page in pages) * DIM * 2  # the two int8 layers
        assert code_bytes <= held.nbytes <= code_bytes * 1.1  # codes only, ~no padding


@pytest.mark.server
@pytest.mark.parametrize("packed_floats", [True, False], ids=["packed-floats", "vector-rows-only"])
def test_floats_are_read_from_packed_rows_where_the_server_collection_has_them(
    server: StoreTarget, monkeypatch: pytest.MonkeyPatch, packed_floats: bool
) -> None:
    """New server collections keep each page's floats packed too (what a codes-mode search reads);
    one made before that has only vector rows, and serves the same exact answers from them."""
    monkeypatch.setattr(collections_module, "_NEW_SERVER_PACKED_FLOATS", packed_floats)
    pages = corpus(11, n_pages=12)
    ids = [f"p{i}" for i in range(len(pages))]
    replacement = unit_vectors(np.random.default_rng(12), 9, DIM)
    with server.open(dim=DIM, cache=False) as writer:
        writer.add(pages, ids=ids)
        writer.delete(page_ids=["p3"])
        writer.add([replacement], ids=["p5"])  # a replaced page: its old packed rows must go
    monkeypatch.setattr(collections_module, "_NEW_SERVER_PACKED_FLOATS", True)  # what a reopen does not change
    expected = {pid: page for pid, page in zip(ids, pages, strict=True) if pid != "p3"} | {"p5": replacement}
    with server.open(cache="codes") as store:
        names = store._names  # type: ignore[attr-defined]
        assert names.packed_floats is packed_floats and (names.packed in names.all) is packed_floats
        if packed_floats:  # none of p3, and only the new version of p5
            stored = store.connection.query_all(names.packed, "", ["page_id", "digest"], primary="pk")
            committed = {(pid, vector_digest(page)) for pid, page in expected.items()}
            assert {(row["page_id"], row["digest"]) for row in stored} == committed
        packed_reads: list[int] = []
        real_packed_vectors = packed_module.packed_vectors
        monkeypatch.setattr(
            packed_module,
            "packed_vectors",
            lambda connection, names, rows, *a, **kw: (
                packed_reads.append(len(rows)) or real_packed_vectors(connection, names, rows, *a, **kw)
            ),
        )
        vectors = store.get_vectors(list(expected))
        for pid, page in expected.items():
            np.testing.assert_array_equal(vectors[pid], page)
        query = pages[7][:3]
        hits = store.search(query, k=4)
        reference = exhaustive_top(query, expected, 4)
        assert [hit.page_id for hit in hits] == [pid for pid, _ in reference]
        assert [hit.score for hit in hits] == pytest.approx([score for _, score in reference], abs=1e-4)
        assert bool(packed_reads) is packed_floats  # the rescored pages' floats came from their packed rows


@pytest.mark.server
def test_a_page_replaced_unannounced_is_synced_before_it_is_scored(
    server: StoreTarget, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Another writer replaced a page after this copy's last sync (its announcement not seen yet)."""
    pages = corpus(6, n_pages=8)
    replacement = unit_vectors(np.random.default_rng(7), 12, DIM)
    with server.open(dim=DIM, cache="codes") as serving, server.open(cache=False) as writer:
        serving.add(pages, ids=[f"p{i}" for i in range(8)])
        serving.search(pages[0][:2], k=1)  # synced
        # As if from another process whose announcement this one has not read yet: the generation
        # token stays, and the write skips this process's shared copy.
        monkeypatch.setattr(writer, "_announce", lambda: None)
        monkeypatch.setattr(writer, "_copy", _Unseen())
        writer.add([replacement], ids=["p2"])
        query = pages[2][:3]  # the old codes put p2 first: it is rescored, and its floats are new
        with caplog.at_level(logging.INFO, logger="colpali_milvus.store.cached_path"):
            hits = serving.search(query, k=8)
        assert "syncing and searching again" in caplog.text
        scores = {hit.page_id: hit.score for hit in hits}
        assert scores["p2"] == pytest.approx(float(maxsim(query, [replacement])[0]), abs=1e-4)
        np.testing.assert_allclose(serving.get_vectors(["p2"])["p2"], replacement, atol=1e-6)


@pytest.mark.server
def test_a_serving_store_outlives_the_store_that_created_the_shared_copy(server: StoreTarget) -> None:
    """A notebook ingests with one store, closes it, and serves with another: floats come through the live one."""
    pages = corpus(9, n_pages=10)
    ingest = server.open(dim=DIM)
    serve = server.open()
    ingest.add(pages, ids=[f"p{i}" for i in range(10)])
    assert serve.info().search_path == "codes"
    ingest.close()
    query = pages[6][:3]
    hits = serve.search(query, k=3)
    assert hits[0].page_id == "p6"
    assert hits[0].score == pytest.approx(float(maxsim(query, [pages[6]])[0]), abs=1e-4)
    np.testing.assert_allclose(serve.get_vectors(["p6"])["p6"], pages[6], atol=1e-6)
    serve.close()
