"""Issue 20, item 1: what needs embedding is decided before any model loads.

``ColPaliIndex.from_model`` on an existing collection loads the weights on the first embedding call
only, so adding pages that are all stored (a PDF, images, LangChain or LlamaIndex documents) loads
no model. Loads are counted by standing a counting colour embedder in for ``ColPaliEmbedder``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import colpali_milvus.embed.colpali as colpali_module
from colpali_milvus import ColPaliIndex, IndexMismatchError
from colpali_milvus.embed import LazyEmbedder
from helpers import ColourEmbedder, PdfPage, solid_image, write_pdf


class Loads:
    """The model names loaded so far, in order."""

    def __init__(self) -> None:
        self.names: list[str] = []


@pytest.fixture
def loads(monkeypatch: pytest.MonkeyPatch) -> Loads:
    """Every ``ColPaliEmbedder(...)`` builds a colour embedder (dim 16) and is counted."""
    counter = Loads()

    class CountingEmbedder(ColourEmbedder):
        def __init__(self, model_name: str, *, device: str | None = None, batch_size: int = 4, **_: Any) -> None:
            super().__init__()
            self.model_name = model_name  # type: ignore[misc]
            counter.names.append(model_name)

    monkeypatch.setattr(colpali_module, "ColPaliEmbedder", CountingEmbedder)
    return counter


def open_index(uri: str, tmp_path: Path) -> ColPaliIndex:
    return ColPaliIndex.from_model("test/model", uri=uri, image_dir=tmp_path / "pages")


def test_adding_a_stored_pdf_again_loads_no_model(
    loads: Loads, lite_uri: str, tmp_path: Path, colour_pdf: Path
) -> None:
    with open_index(lite_uri, tmp_path) as index:  # a new collection: its vector size comes from the model
        ids = index.add_pdf(colour_pdf, dpi=36)
    assert loads.names == ["test/model"]

    with open_index(lite_uri, tmp_path) as index:
        assert index.add_pdf(colour_pdf, dpi=36) == ids
        assert index.add_file(colour_pdf, metadata={"team": "legal"}) == ids  # metadata update: no embedding
        report = index.add_folder(colour_pdf.parent)
        assert (report.page_ids, index.pages_embedded) == (tuple(ids), 0)
        assert not index.embedder.loaded  # type: ignore[attr-defined]
    assert loads.names == ["test/model"]

    with open_index(lite_uri, tmp_path) as index:  # one new page: the model loads, once
        memo = write_pdf(tmp_path / "memo.pdf", [PdfPage((0, 1, 0))])
        index.add_pdf(memo, dpi=36)
        index.add_pdf(colour_pdf, dpi=36)
        assert index.pages_embedded == 1
        assert index.count() == 5
    assert loads.names == ["test/model", "test/model"]


def test_adding_stored_images_again_loads_no_model(loads: Loads, lite_uri: str, tmp_path: Path) -> None:
    images = [solid_image("red"), solid_image("blue")]
    with open_index(lite_uri, tmp_path) as index:
        ids = index.add_images(images, [{"source": "a.png"}, {"source": "b.png"}])
    with open_index(lite_uri, tmp_path) as index:
        assert index.add_images(images) == ids
        assert not index.embedder.loaded  # type: ignore[attr-defined]
        index.add_images([solid_image("green")])
        assert index.embedder.loaded  # type: ignore[attr-defined]
    assert len(loads.names) == 2


def test_adapters_add_stored_documents_without_loading_the_model(
    loads: Loads, lite_uri: str, tmp_path: Path, colour_pdf: Path
) -> None:
    from colpali_milvus.langchain import ColPaliPDFLoader
    from colpali_milvus.langchain import add_documents as add_langchain_documents
    from colpali_milvus.llama_index import ColPaliPDFReader
    from colpali_milvus.llama_index import add_documents as add_llama_index_documents

    documents = ColPaliPDFLoader(colour_pdf, dpi=36).load()
    nodes = ColPaliPDFReader(dpi=36).load_data(colour_pdf)
    with open_index(lite_uri, tmp_path) as index:
        ids = add_langchain_documents(index, documents)
    with open_index(lite_uri, tmp_path) as index:
        assert add_langchain_documents(index, documents) == ids
        assert add_llama_index_documents(index, nodes) == ids
        assert index.add_pdf(colour_pdf, dpi=36) == ids
        assert not index.embedder.loaded  # type: ignore[attr-defined]
    assert len(loads.names) == 1


def test_a_lazy_model_is_checked_against_the_collection_when_it_loads(lite_uri: str, tmp_path: Path) -> None:
    with open_index_with(lite_uri, tmp_path, ColourEmbedder()) as index:
        index.add_images([solid_image("red")])

    class Wider(ColourEmbedder):
        dim = 32

    lazy = LazyEmbedder(Wider, model_name=ColourEmbedder.model_name, dim=16)
    with open_index_with(lite_uri, tmp_path, lazy) as index:
        assert "not loaded" in repr(index.embedder)
        index.add_images([solid_image("red")])  # stored: nothing to embed, nothing loaded
        with pytest.raises(IndexMismatchError, match="16-d"):
            index.search("red", k=1)
        assert not lazy.loaded


def open_index_with(uri: str, tmp_path: Path, embedder: Any) -> ColPaliIndex:
    from colpali_milvus import MilvusMultiVectorStore

    store = MilvusMultiVectorStore(uri, collection_name="colpali", dim=16)
    return ColPaliIndex(embedder, store, image_dir=tmp_path / "pages")


def test_a_lazy_embedder_loads_once_and_reads_the_rest_from_the_loaded_one() -> None:
    built: list[ColourEmbedder] = []

    def load() -> ColourEmbedder:
        built.append(ColourEmbedder())
        return built[-1]

    lazy = LazyEmbedder(load, model_name="test/colour-embedder", dim=16, pool_factor=1)
    known = (lazy.model_name, lazy.dim, lazy.pool_factor)  # known without loading
    assert known == ("test/colour-embedder", 16, None)
    assert not lazy.loaded and not built
    lazy.embed_queries(["red"])
    lazy.embed_images([solid_image("red")])
    assert lazy.loaded and len(built) == 1
    assert lazy.image_calls == 1  # any other attribute comes from the loaded embedder
    with pytest.raises(AttributeError):
        lazy._missing  # noqa: B018
