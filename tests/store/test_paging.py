"""Paged reads see every row whatever order the rows were written in (Milvus returns segment order)."""

from __future__ import annotations

import numpy as np
import pytest

from colpali_milvus.store import connection as connection_module
from targets import StoreTarget


@pytest.mark.parametrize("cache", [True, False], ids=["cache", "ann"])
def test_pages_added_out_of_key_order_are_all_read_back_past_the_query_window(
    target: StoreTarget, monkeypatch: pytest.MonkeyPatch, cache: bool
) -> None:
    ids = ["c", "a", "e", "b", "d", "h", "f", "g"]
    rng = np.random.default_rng(0)
    pages = [rng.standard_normal((3, 8)).astype(np.float32) for _ in ids]
    with target.open(dim=8, cache=cache) as store:
        for page_id, page in zip(ids, pages, strict=True):
            store.add([page], ids=[page_id])
    monkeypatch.setattr(connection_module, "QUERY_WINDOW", 2)

    with target.open(dim=8, cache=cache) as store:
        assert sorted(store.page_ids()) == sorted(ids)
        assert sorted(store.get_vectors(ids)) == sorted(ids)
        for page_id, page in zip(ids, pages, strict=True):
            np.testing.assert_array_equal(store.get_vectors([page_id])[page_id], page)
        assert store.search(pages[2], k=1)[0].page_id == "e"


def test_a_server_window_cut_short_is_not_taken_for_the_end() -> None:
    """A 2.3 server under reduce_stop_for_best answers fewer rows than the limit while more match."""
    keys = list(range(1, 30))

    def early_stopping(where: str) -> tuple[list[dict[str, int]], None]:
        above = int(where.rsplit(">", 1)[1]) if ">" in where else 0
        return [{"pk": key} for key in keys if key > above][:3], None  # at most 3 of a 10-row window

    def read(short_may_end: bool) -> list[int]:
        windows = connection_module._by_primary_key("", "pk", early_stopping, 10, short_may_end=short_may_end)
        return [row["pk"] for rows, _ in windows for row in rows]

    assert read(short_may_end=False) == keys  # a server: only an empty window ends
    assert read(short_may_end=True) == keys[:3]  # Milvus Lite: a short window is the last
