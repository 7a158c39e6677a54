"""A Milvus Lite file of schema version 3 (one row per vector) is refused with the way out, and `copy` moves it.

Nobody re-embeds to upgrade: ``copy`` reads the older layout and writes the packed one.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from colpali_milvus import IndexMismatchError, MilvusMultiVectorStore, copy_collection
from colpali_milvus.store import collections
from colpali_milvus.store.schema import FLATTENED
from helpers import unit_vectors

DIM = 8


def make_version_3_file(uri: str, pages: list[np.ndarray], monkeypatch: pytest.MonkeyPatch) -> None:
    """What colpali-milvus 0.x wrote on Lite: the flattened layout, recorded as schema version 3."""
    with monkeypatch.context() as patch:
        patch.setattr(collections, "_NEW_LITE_LAYOUT", FLATTENED)
        with MilvusMultiVectorStore(uri, collection_name="docs", dim=DIM, model_name="vidore/colpali-v1.3") as store:
            store.add(
                pages,
                [{"source": f"doc{i % 2}.pdf", "page": i + 1} for i in range(len(pages))],
                ids=[f"p{i}" for i in range(len(pages))],
                texts=[f"text {i}" for i in range(len(pages))],
            )
            assert store.layout == FLATTENED
            store.connection.set_properties(store.pages_collection, {"colpali_milvus.schema_version": "3"})


def test_an_older_lite_file_is_refused_with_the_copy_command(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    old = str(tmp_path / "old.db")
    make_version_3_file(old, [unit_vectors(np.random.default_rng(0), 5, DIM)], monkeypatch)

    with pytest.raises(
        IndexMismatchError, match=r"schema version 3.*colpali-milvus copy .*old\.db NEW\.db --collection docs"
    ):
        MilvusMultiVectorStore(old, collection_name="docs")


def test_copy_moves_an_older_lite_file_into_the_packed_layout_without_re_embedding(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rng = np.random.default_rng(1)
    pages = [unit_vectors(rng, 4 + i, DIM) for i in range(7)]
    old, new = str(tmp_path / "old.db"), str(tmp_path / "new.db")
    make_version_3_file(old, pages, monkeypatch)

    report = copy_collection(old, new, collection="docs")

    assert sorted(report.copied) == [f"p{i}" for i in range(7)] and not report.failed
    with MilvusMultiVectorStore(new, collection_name="docs") as store:
        assert store.layout == "packed" and store.model_name == "vidore/colpali-v1.3"
        for i, page in enumerate(pages):
            np.testing.assert_array_equal(store.get_vectors([f"p{i}"])[f"p{i}"], page)
            hit = store.search(page[:2], k=1, filter={"source": f"doc{i % 2}.pdf"})[0]
            assert (hit.page_id, hit.metadata["page"], hit.text) == (f"p{i}", i + 1, f"text {i}")
    assert copy_collection(old, new, collection="docs").skipped == report.copied  # a re-run copies nothing
