"""Stateful property test: random sequences of writes, reopens and searches against an in-memory model.

Hypothesis drives a real store (Milvus Lite with and without the vector cache, its packed rows in
shards of three pages, and the real server) through adds, replacements (with the same number of
vectors too), deletes by page id, source and filter, reopens, and a second store object writing to
the same collection, and checks every search against exact MaxSim computed with numpy on a plain
dict of what should be stored.
"""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    precondition,
    rule,
    run_state_machine_as_test,
)

from colpali_milvus import MilvusMultiVectorStore
from colpali_milvus.store import packed
from helpers import assert_valid_top_k
from targets import store_target

pytestmark = pytest.mark.slow  # full-budget property test, ~60-70 s per path; the fast tier leaves it out

DIM = 8
MAX_PAGES = 24  # small: a search without the cache gathers candidates from (nearly) every page
SOURCES = ["a.pdf", "b.pdf", "c.pdf"]
MODEL = "test/state-machine"

# Filters the machine searches, counts and deletes with, each with its meaning on the reference metadata.
Predicate = Callable[[Mapping[str, Any]], bool]
FILTERS: list[tuple[dict[str, Any], Predicate]] = [
    *(({"group": g}, lambda m, g=g: m["group"] == g) for g in range(3)),
    *(({"source": s}, lambda m, s=s: m["source"] == s) for s in SOURCES),
    *(({"page": {"$gte": n}}, lambda m, n=n: m["page"] >= n) for n in (2, 5, 8)),
    ({"page": [1, 3, 5]}, lambda m: m["page"] in (1, 3, 5)),
    ({"group": {"$ne": 1}}, lambda m: m["group"] != 1),
    ({"source": {"$nin": ["a.pdf"]}}, lambda m: m["source"] != "a.pdf"),
    (
        {"$or": [{"source": "b.pdf"}, {"page": {"$lt": 3}}]},
        lambda m: m["source"] == "b.pdf" or m["page"] < 3,
    ),
    (
        {"$and": [{"group": {"$gte": 1}}, {"source": ["a.pdf", "c.pdf"]}]},
        lambda m: m["group"] >= 1 and m["source"] in ("a.pdf", "c.pdf"),
    ),
]
FILTER_INDEX = st.integers(0, len(FILTERS) - 1)


def unit_vectors(seed: int, n: int) -> np.ndarray:
    vectors = np.random.default_rng(seed).normal(size=(n, DIM)).astype(np.float32)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


@dataclass
class Page:
    vectors: np.ndarray
    metadata: dict[str, Any]
    text: str

    def hit_metadata(self) -> dict[str, Any]:
        """The metadata a hit on this page must carry (typed columns filled in)."""
        return {**self.metadata, "page_label": str(self.metadata["page"]), "doc_id": ""}


def exact_maxsim(query: np.ndarray, page: np.ndarray) -> float:
    sims = query.astype(np.float64) @ page.astype(np.float64).T
    return float(sims.max(axis=1).sum())


# (backend, cache, examples, steps per example). A new collection costs ~2.5 s, a step ~0.05 s on
# Milvus Lite and ~0.4 s on the server (strong consistency waits), so the server runs fewer steps.
PATHS = [
    pytest.param(("lite", True, 12, 50), id="lite-cache"),
    pytest.param(("lite", False, 12, 50), id="lite-ann"),
    pytest.param(("server", False, 4, 25), id="server", marks=pytest.mark.server),
    pytest.param(("server", "codes", 4, 25), id="server-codes", marks=pytest.mark.server),
]


@pytest.mark.parametrize("path", PATHS)
def test_random_operations_agree_with_an_in_memory_reference(
    path: tuple[str, bool, int, int], request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    kind, cache, max_examples, steps = path
    monkeypatch.setattr(packed, "SHARD_ROWS", 3)  # Lite: a new shard every few pages, so every rule crosses shards
    targets = store_target(kind, request, tmp_path)
    target = next(targets)
    examples = itertools.count()

    def fresh_location() -> tuple[str, str]:
        """A new, empty collection for each example: a new Lite file, or a new server collection."""
        if kind == "lite":
            return str(tmp_path / f"example{next(examples)}" / "milvus.db"), "sm"
        return target.uri, target.name(f"sm{uuid.uuid4().hex[:8]}")

    class StoreMachine(RuleBasedStateMachine):
        def __init__(self) -> None:
            super().__init__()
            self.uri, self.collection = fresh_location()
            self.stores: list[MilvusMultiVectorStore] = []  # [primary] or [primary, second]
            self.reference: dict[str, Page] = {}
            self.ids = itertools.count()
            self.stores.append(self._open())

        # -- helpers ------------------------------------------------------------------------

        def _open(self) -> MilvusMultiVectorStore:
            return MilvusMultiVectorStore(
                self.uri, collection_name=self.collection, dim=DIM, model_name=MODEL, cache=cache
            )

        def _pick(self, data: st.DataObject) -> MilvusMultiVectorStore:
            if len(self.stores) == 1:
                return self.stores[0]
            return self.stores[data.draw(st.integers(0, len(self.stores) - 1), label="store")]

        def _draw_page(self, data: st.DataObject, n_vectors: int | None = None) -> Page:
            seed = data.draw(st.integers(0, 2**32 - 1), label="seed")
            if n_vectors is None:
                n_vectors = data.draw(st.integers(2, 12), label="n_vectors")
            metadata = {
                "source": data.draw(st.sampled_from(SOURCES), label="source"),
                "page": data.draw(st.integers(1, 9), label="page"),
                "group": data.draw(st.integers(0, 2), label="group"),
            }
            return Page(unit_vectors(seed, n_vectors), metadata, f"text {seed}")

        def _write(self, store: MilvusMultiVectorStore, pages: dict[str, Page]) -> None:
            ids = store.add(
                [page.vectors for page in pages.values()],
                [page.metadata for page in pages.values()],
                ids=list(pages),
                texts=[page.text for page in pages.values()],
            )
            assert ids == list(pages)
            self.reference.update(pages)

        def _new_pages(self, data: st.DataObject, n_pages: int | None = None) -> dict[str, Page]:
            if n_pages is None:
                n_pages = data.draw(st.integers(1, max(1, min(4, MAX_PAGES - len(self.reference)))), label="n_pages")
            pages = {}
            for _ in range(n_pages):
                page = self._draw_page(data)
                if self.reference and data.draw(st.booleans(), label="duplicate an existing page"):
                    original = self.reference[data.draw(st.sampled_from(sorted(self.reference)), label="of")]
                    page.vectors = original.vectors.copy()  # equal scores: ties must be handled
                pages[f"p{next(self.ids)}"] = page
            return pages

        def _replacement(self, data: st.DataObject) -> dict[str, Page]:
            page_id = data.draw(st.sampled_from(sorted(self.reference)), label="replace")
            same_count = data.draw(st.booleans(), label="same number of vectors")
            n_vectors = self.reference[page_id].vectors.shape[0] if same_count else None
            return {page_id: self._draw_page(data, n_vectors)}

        def _matching(self, predicate: Predicate | None) -> set[str]:
            return {
                page_id for page_id, page in self.reference.items() if predicate is None or predicate(page.metadata)
            }

        # -- writes -------------------------------------------------------------------------

        @precondition(lambda self: len(self.reference) < MAX_PAGES)
        @rule(data=st.data())
        def add_pages(self, data: st.DataObject) -> None:
            self._write(self._pick(data), self._new_pages(data))

        @precondition(lambda self: len(self.reference) < MAX_PAGES // 2)
        @rule(data=st.data())
        def fill_up(self, data: st.DataObject) -> None:
            """One bulk add up to MAX_PAGES pages: searches over a full collection are the demanding ones."""
            self._write(self._pick(data), self._new_pages(data, MAX_PAGES - len(self.reference)))

        @precondition(lambda self: self.reference)
        @rule(data=st.data())
        def replace_page(self, data: st.DataObject) -> None:
            self._write(self._pick(data), self._replacement(data))

        @precondition(lambda self: self.reference)
        @rule(data=st.data())
        def delete_page_ids(self, data: st.DataObject) -> None:
            candidates = sorted({*self.reference, "p0", "p-never"})  # some ids that are not stored
            page_ids = data.draw(st.lists(st.sampled_from(candidates), min_size=1, max_size=3, unique=True))
            expected = {page_id for page_id in page_ids if page_id in self.reference}
            deleted = self._pick(data).delete(page_ids=page_ids)
            assert sorted(deleted) == sorted(expected)
            for page_id in expected:
                del self.reference[page_id]

        @rule(data=st.data(), source=st.sampled_from(SOURCES))
        def delete_source(self, data: st.DataObject, source: str) -> None:
            expected = self._matching(lambda m: m["source"] == source)
            assert sorted(self._pick(data).delete(source)) == sorted(expected)
            for page_id in expected:
                del self.reference[page_id]

        @rule(data=st.data(), index=FILTER_INDEX)
        def delete_filter(self, data: st.DataObject, index: int) -> None:
            filter, predicate = FILTERS[index]
            expected = self._matching(predicate)
            assert sorted(self._pick(data).delete(filter=filter)) == sorted(expected)
            for page_id in expected:
                del self.reference[page_id]

        # -- store objects ------------------------------------------------------------------

        @rule(close_second=st.booleans())
        def reopen(self, close_second: bool) -> None:
            """Close the primary store (and maybe the second one) and open the collection anew."""
            for store in list(self.stores if close_second else self.stores[:1]):
                self.stores.remove(store)  # before closing: a store that fails to close is not reused
                store.close()
            self.stores.insert(0, self._open())

        @precondition(lambda self: len(self.stores) == 1)
        @rule(data=st.data())
        def open_second_store_and_write(self, data: st.DataObject) -> None:
            self.stores.append(self._open())
            replace = bool(self.reference) and data.draw(st.booleans(), label="replace an existing page")
            pages = self._replacement(data) if replace else self._new_pages(data)
            self._write(self.stores[1], pages)

        @precondition(lambda self: len(self.stores) == 2)
        @rule()
        def close_second_store(self) -> None:
            self.stores.pop().close()

        # -- reads --------------------------------------------------------------------------

        @rule(
            data=st.data(),
            n_query=st.integers(1, 4),
            k=st.integers(1, 6) | st.just(MAX_PAGES + 5),  # and more than there are pages: all of them
            seed=st.integers(0, 2**32 - 1),
            index=st.none() | FILTER_INDEX,
        )
        def search(self, data: st.DataObject, n_query: int, k: int, seed: int, index: int | None) -> None:
            query = unit_vectors(seed, n_query)
            if self.reference and data.draw(st.booleans(), label="query near a stored page"):
                near = self.reference[data.draw(st.sampled_from(sorted(self.reference)), label="near")].vectors
                rows = np.random.default_rng(seed).integers(0, near.shape[0], size=n_query)
                query = near[rows] + 0.1 * query
            filter, predicate = FILTERS[index] if index is not None else (None, None)
            matching = self._matching(predicate)
            reference = {page_id: exact_maxsim(query, self.reference[page_id].vectors) for page_id in matching}

            hits = self._pick(data).search(query, k=k, filter=filter)

            assert_valid_top_k(hits, reference, k, f"search(k={k}, filter={filter})")
            for hit in hits:
                page = self.reference[hit.page_id]
                assert hit.metadata == page.hit_metadata(), hit.page_id
                assert hit.text == page.text, hit.page_id

        @rule(data=st.data(), index=FILTER_INDEX)
        def check_contents(self, data: st.DataObject, index: int) -> None:
            store = self._pick(data)
            filter, predicate = FILTERS[index]
            assert store.count() == len(self.reference)
            assert store.count(filter) == len(self._matching(predicate)), filter
            assert sorted(store.page_ids()) == sorted(self.reference)
            assert sorted(store.page_ids(filter)) == sorted(self._matching(predicate)), filter
            asked = data.draw(st.lists(st.sampled_from([*sorted(self.reference), "p-never"]), max_size=3, unique=True))
            vectors = store.get_vectors(asked)
            assert sorted(vectors) == sorted(page_id for page_id in asked if page_id in self.reference)
            for page_id, stored in vectors.items():
                expected = self.reference[page_id].vectors
                assert stored.shape == expected.shape, page_id
                np.testing.assert_allclose(stored, expected, atol=1e-6, err_msg=page_id)

        def teardown(self) -> None:
            stores, self.stores = self.stores, []
            errors = []
            for store in stores:  # every store closed, so that the Lite file is released
                try:
                    store.close()
                except Exception as error:  # pragma: no cover - reported below
                    errors.append(error)
            assert not errors, errors

    try:
        run_state_machine_as_test(
            StoreMachine,
            settings=settings(
                max_examples=max_examples,
                stateful_step_count=steps,
                deadline=None,
                database=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
            ),
        )
    finally:
        next(targets, None)  # drops this test's server collections
