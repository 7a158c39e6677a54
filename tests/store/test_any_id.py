"""Any string is a page id: it round-trips exactly through the store, the index and both adapters.

Hostile ids (empty, blank, control characters, lone surrogates, too long) are refused before any
write; no id ever names a file, let alone one outside the image folder.
"""

from __future__ import annotations

import base64
import importlib
import io
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from colpali_milvus import ColPaliIndex, InvalidInputError, MilvusMultiVectorStore, Page, maxsim
from colpali_milvus.store.schema import MAX_ID_LENGTH
from helpers import ColourEmbedder, solid_image, unit_vectors
from targets import BACKENDS, store_target

connection_module = importlib.import_module("colpali_milvus.store.connection")
DIM = 8

# What LangChain and LlamaIndex users pass as ids: paths, URLs, fragments, spaces, unicode, quotes,
# and strings built to break out of a `page_id in [...]` expression.
ANY_IDS = [
    "doc:1/page.2",
    "report.pdf#3",
    "/home/user/My Documents/report.pdf",
    "C:\\data\\report 2024.pdf",
    "https://example.com/a?b=c&d=e#f",
    "../x",
    "a b",
    "été 📄 文档",
    'say "hi"',
    "it's",
    "back\\slash\\",
    '"] or page_id != "',
    "x] or page_id in [y",
    "tab\there",
    "line\nbreak",
    "crlf\r\nend",
    "x" * MAX_ID_LENGTH,
    "é" * (MAX_ID_LENGTH // 2),  # the most bytes of UTF-8 allowed, in half as many characters
]

HOSTILE_IDS = [
    "",
    "   ",
    "\n",
    "nul\x00byte",
    "bell\x07",
    "lone \ud800 surrogate",
    "x" * (MAX_ID_LENGTH + 1),
    "é" * (MAX_ID_LENGTH // 2) + "x",
    "x" * 10_000,
    None,
    7,
]


@pytest.fixture(params=BACKENDS)
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[MilvusMultiVectorStore]:
    for target in store_target(request.param, request, tmp_path):
        with target.open("anyid", dim=DIM, model_name="test/any-id") as opened:
            yield opened


@pytest.fixture
def pages() -> list[np.ndarray]:
    rng = np.random.default_rng(20)
    return [unit_vectors(rng, 6, DIM) for _ in ANY_IDS]


def test_any_id_round_trips_through_every_read(store: MilvusMultiVectorStore, pages: list[np.ndarray]) -> None:
    metadatas = [{"source": f"s{i}.pdf", "page": i + 1} for i in range(len(ANY_IDS))]

    assert store.add(pages, metadatas, ids=ANY_IDS) == ANY_IDS

    assert sorted(store.page_ids()) == sorted(ANY_IDS)
    assert set(store.get_pages(ANY_IDS)) == set(ANY_IDS)
    assert store.existing_page_ids([*ANY_IDS, "never stored"]) == set(ANY_IDS)
    vectors = store.get_vectors(ANY_IDS)
    for page_id, page in zip(ANY_IDS, pages, strict=True):
        np.testing.assert_allclose(vectors[page_id], page, atol=1e-6)
        assert store.page_ids({"page_id": page_id}) == [page_id]  # the id as a filter literal
        (hit,) = store.search(page[:2], k=1, filter={"page_id": page_id})
        assert hit.page_id == page_id
    hits = store.search(pages[3][:3], k=len(ANY_IDS))
    exact = maxsim(pages[3][:3], pages)
    assert {hit.page_id: hit.score for hit in hits} == pytest.approx(
        {page_id: float(score) for page_id, score in zip(ANY_IDS, exact, strict=True)}, abs=1e-4
    )


def test_deleting_odd_ids_deletes_exactly_those(store: MilvusMultiVectorStore, pages: list[np.ndarray]) -> None:
    store.add(pages, ids=ANY_IDS)
    doomed = ANY_IDS[::2]

    assert sorted(store.delete(page_ids=doomed)) == sorted(doomed)

    assert sorted(store.page_ids()) == sorted(ANY_IDS[1::2])
    assert store.get_vectors(doomed) == {}
    store.add(pages[:1], ids=ANY_IDS[:1])  # and an odd id can be added again
    assert ANY_IDS[0] in store.existing_page_ids(ANY_IDS[:1])


def test_reads_page_past_the_query_window_on_odd_ids(
    store: MilvusMultiVectorStore, pages: list[np.ndarray], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Reads of many pages go one query window at a time, past the last id read: any id is that bound.

    Added in id order: Milvus Lite answers a query window in insertion order, not key order, so only
    then is each window the smallest ids (paging otherwise skips pages on Lite, whatever the ids).
    """
    by_id = sorted(zip(ANY_IDS, pages, strict=True), key=lambda pair: pair[0])
    store.add([page for _, page in by_id], ids=[page_id for page_id, _ in by_id])
    monkeypatch.setattr(connection_module, "QUERY_WINDOW", 2)

    assert sorted(store.page_ids()) == sorted(ANY_IDS)
    assert set(store.get_vectors(ANY_IDS)) == set(ANY_IDS)


def test_ids_survive_a_reopen_and_the_cache_file(tmp_path: Path, pages: list[np.ndarray]) -> None:
    uri = tmp_path / "reopen.db"
    with MilvusMultiVectorStore(uri, collection_name="c", dim=DIM) as first:
        first.add(pages, ids=ANY_IDS)
    with MilvusMultiVectorStore(uri, collection_name="c", dim=DIM) as again:
        assert sorted(again.page_ids()) == sorted(ANY_IDS)
        assert [hit.page_id for hit in again.search(pages[7][:2], k=1)] == [ANY_IDS[7]]


@pytest.mark.parametrize("hostile", HOSTILE_IDS, ids=repr)
def test_a_hostile_id_is_refused_before_any_write(store: MilvusMultiVectorStore, hostile: Any) -> None:
    rng = np.random.default_rng(1)
    with pytest.raises(InvalidInputError, match="page id"):
        store.add([unit_vectors(rng, 3, DIM), unit_vectors(rng, 3, DIM)], ids=["fine", hostile])

    assert store.count() == 0  # not even the valid page of the same call


def test_the_id_limit_is_bytes_of_utf8(store: MilvusMultiVectorStore) -> None:
    rng = np.random.default_rng(2)
    widest = "文" * (MAX_ID_LENGTH // 3)  # 3 bytes each

    assert store.add([unit_vectors(rng, 2, DIM)], ids=[widest]) == [widest]
    with pytest.raises(InvalidInputError, match=f"at most {MAX_ID_LENGTH} bytes"):
        store.add([unit_vectors(rng, 2, DIM)], ids=[widest + "文"])


# -- the index, its image folder and both adapters ---------------------------------------------


@pytest.fixture
def index(tmp_path: Path) -> Iterator[ColPaliIndex]:
    with MilvusMultiVectorStore(tmp_path / "index.db", collection_name="pages", dim=16) as store:
        yield ColPaliIndex(ColourEmbedder(), store, image_dir=tmp_path / "images")


def png_base64(colour: str) -> str:
    buffer = io.BytesIO()
    solid_image(colour).save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def only_files_in(folder: Path, root: Path) -> None:
    """Every file under ``root`` is directly in ``folder`` or is a store's own (nothing escaped)."""
    for dirpath, _, filenames in os.walk(root):
        for name in filenames:
            path = Path(dirpath) / name
            assert path.parent == folder or not path.name.endswith(".png"), path


def test_pages_with_any_doc_id_keep_their_images_inside_the_folder(index: ColPaliIndex, tmp_path: Path) -> None:
    doc_ids = ["../../escape", "/etc/passwd", "report.pdf#3", "C:\\x\\y.pdf", "été 文档"]
    colours = ["red", "green", "blue", "yellow", "cyan"]
    pages = [
        Page(image=solid_image(colour), source=doc_id, page=2, page_label="ii", doc_id=doc_id)
        for doc_id, colour in zip(doc_ids, colours, strict=True)
    ]

    ids = index.add_pages(pages)

    assert ids == [f"{doc_id}-00002" for doc_id in doc_ids]
    for page_id, colour in zip(ids, colours, strict=True):
        (hit,) = index.search(colour, k=1)
        assert hit.page_id == page_id
        assert hit.image_path is not None and hit.image_path.parent == index.images.root
        assert hit.load_image().size == solid_image(colour).size
    only_files_in(index.images.root, tmp_path)
    assert len(os.listdir(index.images.root)) == len(ids)

    assert sorted(index.delete(page_ids=ids[:2])) == sorted(ids[:2])
    assert len(os.listdir(index.images.root)) == len(ids) - 2
    assert all(hit.page_id not in ids[:2] for hit in index.search("red green", k=5))


def test_langchain_documents_with_any_id_round_trip(index: ColPaliIndex) -> None:
    from langchain_core.documents import Document

    from colpali_milvus.langchain import ColPaliRetriever, add_documents

    doc_id = "/home/user/My Documents/report 2024.pdf#v2"
    documents = [
        Document(
            page_content="a magenta page",
            metadata={"image_base64": png_base64("magenta"), "source": doc_id, "doc_id": doc_id, "page": 3},
        ),
        Document(
            page_content="",
            metadata={"image_base64": png_base64("cyan"), "doc_id": "doc:1/page.2", "page_id": "doc:1/page.2-00001"},
        ),
    ]

    magenta_id, cyan_id = add_documents(index, documents)

    assert (magenta_id, cyan_id) == (f"{doc_id}-00003", "doc:1/page.2-00001")
    (found,) = ColPaliRetriever(index=index, k=1).invoke("magenta")
    assert found.id == found.metadata["page_id"] == magenta_id
    assert base64.b64decode(found.metadata["image_base64"]) == base64.b64decode(documents[0].metadata["image_base64"])
    assert add_documents(index, [found]) == [magenta_id]  # a retrieved page goes back in under its own id
    assert index.count() == 2
    assert index.delete(page_ids=[cyan_id]) == [cyan_id]


def test_llama_index_nodes_with_any_id_round_trip(index: ColPaliIndex) -> None:
    from llama_index.core.schema import ImageNode

    from colpali_milvus.llama_index import ColPaliRetriever, add_documents

    node = ImageNode(
        image=png_base64("yellow"), text="a yellow page", metadata={"doc_id": "report.pdf#3 été", "page": 1}
    )

    (page_id,) = add_documents(index, [node])

    assert page_id == "report.pdf#3 été-00001"
    (found,) = ColPaliRetriever(index, similarity_top_k=1).retrieve("yellow")
    assert found.node.node_id == found.node.metadata["page_id"] == page_id
    assert isinstance(found.node, ImageNode) and found.node.image_path is not None
    assert add_documents(index, [found.node]) == [page_id]
    assert index.count() == 1
