"""The saved cache file at the edges: an empty collection, and something else standing where it goes."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest

from colpali_milvus.store import lite
from colpali_milvus.store.milvus import MilvusMultiVectorStore


def test_an_empty_collections_saved_file_is_used_on_reopen_without_a_warning(
    lite_uri: str, caplog: pytest.LogCaptureFixture
) -> None:
    with MilvusMultiVectorStore(lite_uri, dim=8) as store:
        store.add([np.ones((2, 8), np.float32)], ids=["gone"])
        store.delete(page_ids=["gone"])
    assert lite.cache_file(lite_uri, "colpali") is not None

    with caplog.at_level(logging.INFO), MilvusMultiVectorStore(lite_uri, dim=8) as store:
        assert store.search(np.ones((1, 8), np.float32)) == []
        assert store.search_path.loaded_from == "file"  # type: ignore[attr-defined]
    assert not [record for record in caplog.records if record.levelno >= logging.WARNING]


def test_a_folder_where_the_cache_file_goes_never_breaks_writes(lite_uri: str) -> None:
    cache_file = lite.cache_file(lite_uri, "colpali")
    assert cache_file is not None
    cache_file.mkdir(parents=True)
    (cache_file / "inside").write_text("not ours")
    page = np.eye(8, dtype=np.float32)[:3]

    with MilvusMultiVectorStore(lite_uri, dim=8) as store:
        store.add([page], ids=["a"])
        store.add([page * 2], ids=["a"])  # a replacement
        assert store.delete(page_ids=["a"]) == ["a"]
        store.add([page], ids=["b"])
    with MilvusMultiVectorStore(lite_uri, dim=8) as store:  # reopens from Milvus, the folder untouched
        assert [hit.page_id for hit in store.search(page)] == ["b"]
    assert (Path(cache_file) / "inside").read_text() == "not ours"
