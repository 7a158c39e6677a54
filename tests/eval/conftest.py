"""One Milvus Lite file of the hand-made collections of eval_data.py, written once per module."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from eval_data import HAND_PAGES, MODEL, E, add_pages

from colpali_milvus import MilvusMultiVectorStore


@pytest.fixture(scope="module")
def lite_db(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, MilvusMultiVectorStore]]:
    """The collections of eval_data.py, open for the whole module (configurations open more stores on the file)."""
    uri = str(tmp_path_factory.mktemp("eval") / "eval.db")
    stores = {
        "hand": MilvusMultiVectorStore(uri, collection_name="hand", dim=4, model_name=MODEL),
        "pooled": MilvusMultiVectorStore(uri, collection_name="pooled", dim=4, model_name=MODEL),
        "other_model": MilvusMultiVectorStore(uri, collection_name="other_model", dim=4, model_name="test/other"),
        "wide": MilvusMultiVectorStore(uri, collection_name="wide", dim=8, model_name=MODEL),
    }
    try:
        add_pages(stores["hand"], HAND_PAGES)
        add_pages(stores["pooled"], {**HAND_PAGES, "p1": ("a.pdf", 1, E[3])})
        add_pages(stores["other_model"], HAND_PAGES)
        yield stores
    finally:
        for store in stores.values():
            store.close()


@pytest.fixture
def hand(lite_db: dict[str, MilvusMultiVectorStore]) -> MilvusMultiVectorStore:
    return lite_db["hand"]
