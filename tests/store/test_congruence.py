"""Congruence: every search path returns what exact MaxSim over a Python-filtered corpus returns.

One random corpus is loaded into Milvus Lite with the vector cache, Milvus Lite without it, and the
real server. Randomly generated structured filters (every operator, nested ``$and``/``$or``) are
evaluated here in plain Python on the reference metadata; each store must count the same pages and
return a valid exact top-k among them.
"""

from __future__ import annotations

import operator
import random
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import numpy as np
import pytest

from colpali_milvus import FilterError, MilvusMultiVectorStore
from helpers import assert_valid_top_k
from targets import store_target

DIM = 8
MODEL = "test/congruence"
SOURCES = ["a.pdf", "b.pdf", "c.pdf", "d.pdf"]
DOC_IDS = ["d0", "d1", "d2", "d3", "d4"]
CUSTOM_LABELS = ["i", "ii", "iv", "A-1", "A-3"]
LANGS = ["en", "fr"]


def unit_vectors(rng: np.random.Generator, n: int) -> np.ndarray:
    vectors = rng.normal(size=(n, DIM)).astype(np.float32)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def build_corpus(n_pages: int = 40, seed: int = 7) -> tuple[list[str], list[np.ndarray], list[dict[str, Any]]]:
    """Pages of 6-30 vectors; two pages repeat another page's vectors, so some scores tie exactly."""
    rng = np.random.default_rng(seed)
    ids, pages, metadatas = [], [], []
    for i in range(n_pages):
        page = int(rng.integers(1, 11))
        metadata: dict[str, Any] = {
            "source": SOURCES[int(rng.integers(len(SOURCES)))],
            "page": page,
            "doc_id": DOC_IDS[int(rng.integers(len(DOC_IDS)))],
            "group": int(rng.integers(0, 4)),
            "lang": LANGS[int(rng.integers(len(LANGS)))],
            "score": round(float(rng.uniform(0, 1)), 2),
        }
        if rng.random() < 0.3:
            metadata["page_label"] = CUSTOM_LABELS[int(rng.integers(len(CUSTOM_LABELS)))]
        ids.append(f"page{i}")
        pages.append(pages[i - 10].copy() if i in (35, 36) else unit_vectors(rng, int(rng.integers(6, 31))))
        metadatas.append(metadata)
    return ids, pages, metadatas


CORPUS_IDS, CORPUS_PAGES, CORPUS_METADATAS = build_corpus()
# What a hit carries: the typed columns always present (page_label defaults to the page number).
REFERENCE = {
    page_id: {**metadata, "page_label": metadata.get("page_label", str(metadata["page"]))}
    for page_id, metadata in zip(CORPUS_IDS, CORPUS_METADATAS, strict=True)
}
SCORES = sorted({metadata["score"] for metadata in CORPUS_METADATAS})

# -- the filter language, evaluated in Python -----------------------------------------------

OPERATORS: dict[str, Callable[[Any, Any], bool]] = {
    "$eq": operator.eq,
    "$ne": operator.ne,
    "$gt": operator.gt,
    "$gte": operator.ge,
    "$lt": operator.lt,
    "$lte": operator.le,
    "$in": lambda value, operand: value in operand,
    "$nin": lambda value, operand: value not in operand,
}


def matches(filter: Mapping[str, Any], metadata: Mapping[str, Any]) -> bool:
    return all(_entry_matches(key, value, metadata) for key, value in filter.items())


def _entry_matches(key: str, value: Any, metadata: Mapping[str, Any]) -> bool:
    if key == "$and":
        return all(matches(clause, metadata) for clause in value)
    if key == "$or":
        return any(matches(clause, metadata) for clause in value)
    field = metadata[key]
    if isinstance(value, Mapping):
        return all(OPERATORS[op](field, operand) for op, operand in value.items())
    if isinstance(value, list):
        return field in value
    return field == value


# -- random filters -------------------------------------------------------------------------

# Values each key is compared with: the stored ones and some that no page has.
VALUES: dict[str, Callable[[random.Random], Any]] = {
    "source": lambda r: r.choice([*SOURCES, "z.pdf"]),
    "page": lambda r: r.randint(0, 11),
    "page_label": lambda r: r.choice([*CUSTOM_LABELS, *(str(p) for p in range(1, 11)), "x"]),
    "doc_id": lambda r: r.choice([*DOC_IDS, "d9"]),
    "group": lambda r: r.randint(0, 4),
    "lang": lambda r: r.choice([*LANGS, "de"]),
    "score": lambda r: r.choice(SCORES) if r.random() < 0.7 else round(r.uniform(-0.1, 1.1), 3),
}
# Range bounds: as values, plus a few of another numeric type than the stored one.
BOUNDS: dict[str, Callable[[random.Random], Any]] = {
    **VALUES,
    "group": lambda r: r.randint(0, 4) if r.random() < 0.8 else r.randint(0, 3) + 0.5,
    "score": lambda r: VALUES["score"](r) if r.random() < 0.8 else r.randint(0, 1),
}


def random_condition(r: random.Random, key: str) -> Any:
    """The value of ``{key: ...}``: a literal, a list, or an operator mapping."""
    kind = r.choice(["eq", "$eq", "list", "$in", "$nin", "$ne", "range", "range", "between"])
    if kind == "eq":
        return VALUES[key](r)
    if kind in ("$eq", "$ne"):
        return {kind: VALUES[key](r)}
    if kind in ("list", "$in", "$nin"):
        values = list(dict.fromkeys(VALUES[key](r) for _ in range(r.randint(1, 3))))
        return values if kind == "list" else {kind: values}
    if kind == "range":
        return {r.choice(["$gt", "$gte", "$lt", "$lte"]): BOUNDS[key](r)}
    low, high = sorted([BOUNDS[key](r), BOUNDS[key](r)], key=lambda v: (isinstance(v, str), v))
    return {r.choice(["$gt", "$gte"]): low, r.choice(["$lt", "$lte"]): high}


def random_filter(r: random.Random, depth: int = 0) -> dict[str, Any]:
    filter = {key: random_condition(r, key) for key in r.sample(sorted(VALUES), r.choice([1, 1, 1, 2]))}
    if depth < 2 and r.random() < 0.4:
        clauses = [random_filter(r, depth + 1) for _ in range(r.randint(1, 3))]
        logical = {r.choice(["$and", "$or"]): clauses}
        filter = logical if r.random() < 0.7 else {**filter, **logical}
    return filter


def random_filters(n: int, seed: int) -> list[dict[str, Any]]:
    r = random.Random(seed)
    return [random_filter(r) for _ in range(n)]


# -- checks ---------------------------------------------------------------------------------


def exact_scores(query: np.ndarray, page_ids: set[str]) -> dict[str, float]:
    q = query.astype(np.float64)
    return {
        page_id: float((q @ CORPUS_PAGES[CORPUS_IDS.index(page_id)].astype(np.float64).T).max(axis=1).sum())
        for page_id in page_ids
    }


def random_k(rng: np.random.Generator) -> int:
    """Mostly small; sometimes as many as or more than the pages, where every matching page must come back."""
    return int(rng.integers(1, 11)) if rng.random() < 0.8 else int(rng.choice([20, 40, 60]))


def random_query(rng: np.random.Generator) -> np.ndarray:
    n_query = int(rng.integers(1, 5))
    query = unit_vectors(rng, n_query)
    if rng.random() < 0.5:  # near one page's vectors, so that one page clearly wins
        page = CORPUS_PAGES[int(rng.integers(len(CORPUS_PAGES)))]
        query = page[rng.integers(0, page.shape[0], size=n_query)] + 0.1 * query
    return query


# -- the stores -----------------------------------------------------------------------------

# (backend, cache, number of filters, queries per filter). A search without the cache costs a
# Milvus search and a fetch; on the server each request also waits for strong consistency.
PATHS = [
    pytest.param(("lite", True, 100, 3), id="lite-cache"),
    pytest.param(("lite", False, 100, 2), id="lite-ann", marks=pytest.mark.slow),
    pytest.param(("server", False, 30, 1), id="server", marks=pytest.mark.server),
    pytest.param(("server", "codes", 30, 1), id="server-codes", marks=pytest.mark.server),
]


@pytest.fixture(scope="module", params=PATHS)
def loaded(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[MilvusMultiVectorStore, int, int]]:
    kind, cache, n_filters, n_queries = request.param
    targets = store_target(kind, request, tmp_path_factory.mktemp(f"congruence-{kind}-{cache}"))
    target = next(targets)
    try:
        with target.open("congruence", dim=DIM, model_name=MODEL, cache=cache) as store:
            assert store.add(CORPUS_PAGES, CORPUS_METADATAS, ids=CORPUS_IDS) == CORPUS_IDS
            yield store, n_filters, n_queries
    finally:
        next(targets, None)  # drops the server collections


def test_the_corpus_is_stored_whole(loaded: tuple[MilvusMultiVectorStore, int, int]) -> None:
    store, _, _ = loaded
    assert store.count() == len(CORPUS_IDS)
    assert sorted(store.page_ids()) == sorted(CORPUS_IDS)
    stored = store.get_vectors(CORPUS_IDS)
    assert sorted(stored) == sorted(CORPUS_IDS)
    for page_id, page in zip(CORPUS_IDS, CORPUS_PAGES, strict=True):
        np.testing.assert_allclose(stored[page_id], page, atol=1e-6, err_msg=page_id)


def test_unfiltered_searches_match_exact_maxsim(loaded: tuple[MilvusMultiVectorStore, int, int]) -> None:
    store, _, n_queries = loaded
    rng = np.random.default_rng(11)
    for i in range(5 * n_queries):
        query, k = random_query(rng), random_k(rng)
        hits = store.search(query, k=k)
        assert_valid_top_k(hits, exact_scores(query, set(CORPUS_IDS)), k, f"query {i}, k={k}")
        for hit in hits:
            assert hit.metadata == REFERENCE[hit.page_id], hit.page_id


def test_filtered_counts_and_searches_match_a_python_evaluation(
    loaded: tuple[MilvusMultiVectorStore, int, int],
) -> None:
    store, n_filters, n_queries = loaded
    rng = np.random.default_rng(12)
    for filter in random_filters(n_filters, seed=13):
        expected = {page_id for page_id, metadata in REFERENCE.items() if matches(filter, metadata)}
        assert store.count(filter) == len(expected), filter
        assert sorted(store.page_ids(filter)) == sorted(expected), filter
        for _ in range(n_queries):
            query, k = random_query(rng), random_k(rng)
            hits = store.search(query, k=k, filter=filter)
            assert_valid_top_k(hits, exact_scores(query, expected), k, f"k={k}, filter={filter}")


def test_the_generated_filters_are_selective() -> None:
    """The filters exercise the language: a spread of match counts, every operator and both connectives."""
    filters = random_filters(100, seed=13)
    counts = [sum(matches(f, metadata) for metadata in REFERENCE.values()) for f in filters]
    assert sum(count == 0 for count in counts) >= 5
    assert sum(0 < count < 10 for count in counts) >= 20
    assert sum(count >= 10 for count in counts) >= 20
    text = repr(filters)
    for token in ["$and", "$or", "$in", "$nin", "$ne", "$eq", "$gt", "$gte", "$lt", "$lte", "[", "page_label"]:
        assert token in text, token


@pytest.fixture(scope="module", params=[True, False], ids=["lite-cache", "lite-ann"])
def small_store(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[MilvusMultiVectorStore]:
    folder = tmp_path_factory.mktemp("empty-clauses")
    with MilvusMultiVectorStore(
        folder / "m.db", collection_name="c", dim=DIM, model_name=MODEL, cache=request.param
    ) as store:
        yield store


@pytest.mark.parametrize(
    "filter",
    [
        {"$or": [{}]},
        {"$or": [{"source": "a.pdf"}, {}]},
        {"$and": [{}]},
        {"$and": [{"source": "a.pdf"}, {"$or": [{}]}]},
    ],
    ids=["or-empty", "or-with-empty", "and-empty", "nested-or-empty"],
)
def test_an_empty_clause_is_refused_not_read_as_everything(
    small_store: MilvusMultiVectorStore, filter: dict[str, Any]
) -> None:
    rng = np.random.default_rng(3)
    sources = ["a.pdf", "b.pdf", "c.pdf"]
    # (Re)written each time, so that a case which wrongly deleted everything cannot affect the next.
    small_store.add([unit_vectors(rng, 4) for _ in sources], [{"source": s} for s in sources], ids=["x", "y", "z"])
    query = unit_vectors(rng, 2)
    with pytest.raises(FilterError):
        small_store.search(query, k=3, filter=filter)
    with pytest.raises(FilterError):
        small_store.count(filter)
    with pytest.raises(FilterError):
        small_store.page_ids(filter)
    with pytest.raises(FilterError):
        small_store.delete(filter=filter)
    assert small_store.count() == 3
