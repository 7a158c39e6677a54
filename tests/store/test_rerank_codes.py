"""The server search path ranks candidates on int8 codes; the final scores stay exact float MaxSim.

The codes live in the summaries collection beside the page centroids.

Codes are derived data: a page whose codes are missing, made from other vectors (another
digest) or damaged is still found, ranked on its float vectors instead.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from colpali_milvus import IndexMismatchError, maxsim
from colpali_milvus.search import codes
from colpali_milvus.store import collections
from colpali_milvus.store.schema import CODE_ROW_FIELDS, FLATTENED
from helpers import unit_vectors
from targets import BACKENDS, StoreTarget, store_target

DIM = 32


@pytest.fixture(params=BACKENDS)
def uncached(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[StoreTarget]:
    # The rerank codes live in the flattened layout's summaries: on Lite, build that layout (a server's).
    monkeypatch.setattr(collections, "_NEW_LITE_LAYOUT", FLATTENED)
    yield from store_target(request.param, request, tmp_path)


def _corpus(seed: int, n_pages: int = 30, n_vectors: int = 40) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [unit_vectors(rng, n_vectors, DIM) for _ in range(n_pages)]


def _code_rows(store: object, page_id: str) -> list[dict[str, object]]:
    connection = store.connection  # type: ignore[attr-defined]
    where = f'page_id == "{page_id}" and part >= 0'  # the summary rows that carry codes
    return connection.query(store._names.summaries, where, list(CODE_ROW_FIELDS), limit=100)  # type: ignore[attr-defined]


def test_hits_and_scores_equal_exhaustive_maxsim(uncached: StoreTarget) -> None:
    pages = _corpus(1)
    ids = [f"p{i}" for i in range(len(pages))]
    rng = np.random.default_rng(2)
    with uncached.open(dim=DIM, cache=False) as store:
        store.add(pages, ids=ids)
        assert len(_code_rows(store, "p0")) == 1  # 40 x 32 codes fit one row
        for target in (3, 17, 29):
            query = pages[target][:6] + 0.05 * unit_vectors(rng, 6, DIM)
            exact = maxsim(query, pages)
            hits = store.search(query, k=5)
            assert [hit.page_id for hit in hits] == [ids[i] for i in np.argsort(-exact, kind="stable")[:5]]
            assert np.allclose([hit.score for hit in hits], np.sort(exact)[::-1][:5], atol=1e-4)


def test_pages_with_missing_stale_or_damaged_codes_are_still_found_and_scored_exactly(
    uncached: StoreTarget, caplog: pytest.LogCaptureFixture
) -> None:
    pages = _corpus(3)
    ids = [f"p{i}" for i in range(len(pages))]
    with uncached.open(dim=DIM, cache=False) as store:
        store.add(pages, ids=ids)
        connection, collection = store.connection, store._names.summaries
        # p1: no codes at all. p2: codes of other vectors, under another digest. p3: codes that do not decode.
        connection.delete_ids([collection], ["p1", "p2", "p3"])
        lying = codes.to_chunks(codes.encode(-pages[2]))
        damaged = "!" * 40
        connection.insert(
            collection,
            [
                {
                    "page_id": "p2",
                    "part": 0,
                    "parts": 1,
                    "digest": "stale",
                    "codes": lying[0],
                    "centroid": [1.0] + [0.0] * (DIM - 1),
                },
                {
                    "page_id": "p3",
                    "part": 0,
                    "parts": 1,
                    "digest": _digest(store, "p3"),
                    "codes": damaged,
                    "centroid": [1.0] + [0.0] * (DIM - 1),
                },
            ],
        )
        for target in (1, 2, 3):
            query = pages[target][:8]
            hits = store.search(query, k=3)
            assert hits[0].page_id == f"p{target}"
            assert hits[0].score == pytest.approx(float(maxsim(query, [pages[target]])[0]), abs=1e-4)
    assert any("do not decode" in record.getMessage() for record in caplog.records)


def _digest(store: object, page_id: str) -> str:
    from colpali_milvus.store import reads

    rows = reads.page_rows(store.connection, store._names, [page_id], fields=("page_id", "digest"))  # type: ignore[attr-defined]
    return str(rows[page_id]["digest"])


def test_replacing_and_deleting_a_page_replace_and_delete_its_codes(uncached: StoreTarget) -> None:
    first, second = _corpus(4, n_pages=2, n_vectors=1_500)  # 1,500 x 32 codes span two rows
    with uncached.open(dim=DIM, cache=False) as store:
        store.add([first], ids=["p"])
        store.add([second, *_corpus(5, n_pages=5)], ids=["p", "a", "b", "c", "d", "e"])
        rows = _code_rows(store, "p")
        assert sorted(int(row["part"]) for row in rows) == [0, 1]
        assert {row["digest"] for row in rows} == {_digest(store, "p")}
        hits = store.search(second[:5], k=1)
        assert hits[0].page_id == "p"
        assert hits[0].score == pytest.approx(float(maxsim(second[:5], [second])[0]), abs=1e-4)
        store.delete(page_ids=["p"])
        assert _code_rows(store, "p") == []


def test_a_collection_without_its_summaries_collection_is_refused(uncached: StoreTarget) -> None:
    with uncached.open(dim=DIM) as store:
        store.add(_corpus(6, n_pages=2), ids=["a", "b"])
        store.connection.drop(store._names.summaries)
    with pytest.raises(IndexMismatchError, match="incomplete"):
        uncached.open(dim=DIM)
