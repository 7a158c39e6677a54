"""Paged reads see every row whatever order the rows were written in (Milvus returns segment order)."""

from __future__ import annotations

from collections.abc import Callable

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


def _server_like(keys: list[int], cut_short_to: int) -> Callable[[str, bool], tuple[list[dict[str, int]], None]]:
    """A fetch as a 2.3 server answers: plain queries in segment order (here, reversed) up to the limit;
    key-ordered ones under reduce_stop_for_best cut short at ``cut_short_to`` rows."""
    limit = 10

    def fetch(where: str, ordered: bool) -> tuple[list[dict[str, int]], None]:
        above = int(where.rsplit(">", 1)[1]) if ">" in where else 0
        matching = [key for key in keys if key > above]
        if not ordered:
            return [{"pk": key} for key in reversed(matching)][:limit], None
        return [{"pk": key} for key in matching][: min(limit, cut_short_to)], None

    return fetch


def test_a_server_window_cut_short_is_not_taken_for_the_end() -> None:
    """A 2.3 server under reduce_stop_for_best answers fewer rows than the limit while more match."""
    keys = list(range(1, 30))  # more than a window: the plain first answer is full, so paging starts

    def read(short_may_end: bool) -> list[int]:
        fetch = _server_like(keys, cut_short_to=3)
        windows = connection_module._by_primary_key("", "pk", fetch, 10, short_may_end=short_may_end)
        return [row["pk"] for rows, _ in windows for row in rows]

    assert read(short_may_end=False) == keys  # a server: only an empty window ends
    assert read(short_may_end=True) == keys[:3]  # Milvus Lite: a short window is the last


@pytest.mark.parametrize("n_keys", [0, 1, 9])
def test_a_match_that_fits_one_window_is_one_plain_query(n_keys: int) -> None:
    """The key-ordered flag costs a 2.3 server ~200 ms a request: a match under the limit is read without it."""
    keys = list(range(1, n_keys + 1))
    calls: list[bool] = []
    fetch = _server_like(keys, cut_short_to=3)

    def counted(where: str, ordered: bool) -> tuple[list[dict[str, int]], None]:
        calls.append(ordered)
        return fetch(where, ordered)

    windows = list(connection_module._by_primary_key("", "pk", counted, 10))
    assert sorted(row["pk"] for rows, _ in windows for row in rows) == keys
    assert calls == [False]
    assert len(windows) == (1 if keys else 0)


def test_a_full_plain_answer_is_dropped_and_the_match_paged_in_key_order() -> None:
    keys = list(range(1, 11))  # exactly one window: the plain answer cannot prove it is the whole match
    calls: list[bool] = []
    fetch = _server_like(keys, cut_short_to=10)

    def counted(where: str, ordered: bool) -> tuple[list[dict[str, int]], None]:
        calls.append(ordered)
        return fetch(where, ordered)

    read = [row["pk"] for rows, _ in connection_module._by_primary_key("", "pk", counted, 10) for row in rows]
    assert read == keys  # no row twice, none skipped
    assert calls == [False, True, True]  # the plain answer, the key-ordered window, the empty one that ends
