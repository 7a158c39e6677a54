"""Property test on real Milvus Lite: no value in a structured filter can change the expression's meaning."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from colpali_milvus import MilvusMultiVectorStore
from colpali_milvus.store.filters import compile_filter

# Quotes, backslashes, brackets and operators are the interesting characters; printable text otherwise.
HOSTILE = st.text(
    alphabet=st.sampled_from(list("\"\\'[](){}=!<>&|%$,:; \n\tabcXYZ01_-.é漢")),
    min_size=0,
    max_size=24,
)


@pytest.fixture(scope="module")
def populated(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[MilvusMultiVectorStore, dict[str, str]]]:
    """Pages whose sources and labels are themselves hostile strings."""
    folder: Path = tmp_path_factory.mktemp("filters")
    sources = ['a"b.pdf', "a\\b.pdf", '" or page > 0 or source == "', "x] or [1", "plain.pdf", "tab\tand\nnewline"]
    with MilvusMultiVectorStore(folder / "f.db", collection_name="f", dim=4) as store:
        ids = store.add(
            [np.ones((2, 4), np.float32)] * len(sources),
            [{"source": s, "page": i + 1, "label_text": s} for i, s in enumerate(sources)],
        )
        yield store, dict(zip(ids, sources, strict=True))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(value=HOSTILE)
def test_a_source_filter_matches_exactly_that_source(
    populated: tuple[MilvusMultiVectorStore, dict[str, str]], value: str
) -> None:
    store, sources = populated
    expected = sorted(page_id for page_id, source in sources.items() if source == value)
    assert sorted(store.page_ids({"source": value})) == expected
    assert sorted(store.page_ids({"label_text": value})) == expected  # the JSON metadata path too
    negated = sorted(store.page_ids({"source": {"$ne": value}}))
    assert negated == sorted(set(sources) - set(expected))


def test_every_stored_hostile_value_finds_its_own_page(
    populated: tuple[MilvusMultiVectorStore, dict[str, str]],
) -> None:
    store, sources = populated
    for page_id, source in sources.items():
        assert store.page_ids({"source": source}) == [page_id], compile_filter({"source": source})
        assert store.page_ids({"source": [source, "nothing"]}) == [page_id]
