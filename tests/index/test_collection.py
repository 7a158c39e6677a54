"""PageCollection: a store plus its page images, no model; ColPaliIndex and the CLI build on it."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from colpali_milvus import ColPaliIndex, DocumentError, InvalidInputError, Page
from colpali_milvus.collection import PageCollection
from helpers import ColourEmbedder, solid_image


def query(text: str) -> np.ndarray:
    return ColourEmbedder().embed_queries([text])[0]


def page(colour: str, *, source: str = "", doc_id: str | None = None, page: int = 1, **metadata: Any) -> Page:
    return Page(
        image=solid_image(colour),
        source=source,
        page=page,
        page_label=str(page),
        doc_id=doc_id or f"{colour}doc",
        metadata=metadata,
    )


def add(collection: PageCollection, pages: Sequence[Page]) -> list[str]:
    return collection.add(pages, ColourEmbedder().embed_images([p.image for p in pages]))


@pytest.fixture
def collection(store: Any, tmp_path: Path) -> PageCollection:
    return PageCollection(store, image_dir=tmp_path / "pages")  # the store fixture closes the store


def test_a_collection_reads_and_deletes_what_an_index_wrote(
    colour_index: ColPaliIndex, colour_pdf: Path, tmp_path: Path
) -> None:
    ids = colour_index.add_pdf(colour_pdf, dpi=36)
    collection = PageCollection(colour_index.store, image_dir=tmp_path / "pages")  # no model

    (hit,) = collection.search(query("blue"), k=1)

    assert (collection.count(), collection.info().pages) == (4, 4)
    assert collection.image_dir == colour_index.images.root
    assert hit.page == 3
    assert hit.image_path is not None and hit.image_path.parent == collection.image_dir
    assert collection.existing_page_ids([*ids, "nothing-00001"]) == set(ids)
    assert collection.delete(page_ids=[ids[0]]) == [ids[0]]
    assert collection.images.find(ids[0]) is None
    assert sorted(collection.delete(doc_ids=[hit.metadata["doc_id"]])) == sorted(ids[1:])
    assert collection.count() == 0
    assert not list(collection.image_dir.glob("*.png"))


def test_delete_by_filter_and_by_source_path(collection: PageCollection, tmp_path: Path) -> None:
    red, green, blue = (
        page("red", source=str(tmp_path / "a.png"), year=2023),
        page("green", source=str(tmp_path / "b.png"), year=2024),
        page("blue", source=str(tmp_path / "c.png"), year=2024),
    )
    add(collection, [red, green, blue])

    assert collection.delete(filter={"year": 2023}) == [red.page_id]
    assert collection.delete(tmp_path / "b.png") == [green.page_id]  # a PathLike source
    assert [p.name for p in collection.image_dir.iterdir()] == [collection.images.file_name(blue.page_id)]
    assert collection.count() == 1
    with pytest.raises(InvalidInputError):
        collection.delete()  # never "everything"


def test_add_saves_each_image_before_the_rows_commit_the_page(
    collection: PageCollection, monkeypatch: pytest.MonkeyPatch
) -> None:
    pages = [page("red"), page("green")]
    images_at_commit: list[bool] = []
    original = collection.store.add

    def add_rows(vectors: Any, metadatas: Any, **kwargs: Any) -> list[str]:
        images_at_commit.extend(collection.images.find(page_id) is not None for page_id in kwargs["ids"])
        return original(vectors, metadatas, **kwargs)

    monkeypatch.setattr(collection.store, "add", add_rows)

    assert add(collection, pages) == [p.page_id for p in pages]
    assert images_at_commit == [True, True]
    assert add(collection, []) == []
    with pytest.raises(InvalidInputError, match="vector arrays"):
        collection.add(pages, [])


def test_a_new_version_of_a_source_replaces_the_old_one(collection: PageCollection) -> None:
    old = [page("red", source="a.pdf", doc_id="old", page=1), page("green", source="a.pdf", doc_id="old", page=2)]
    new = page("blue", source="a.pdf", doc_id="new")
    unnamed = [page("yellow", doc_id="one"), page("cyan", doc_id="two")]  # in-memory images: no source
    add(collection, [*old, new, *unnamed])

    stale = collection.delete_other_versions("a.pdf", keep_doc_id="new")

    assert sorted(stale) == sorted(p.page_id for p in old)
    assert all(collection.images.find(p.page_id) is None for p in old)
    assert collection.images.find(new.page_id) is not None
    assert collection.delete_other_versions("", keep_doc_id="one") == []  # no source, no versions
    assert collection.count() == 3


def test_a_swapped_image_never_fails_a_search_and_is_never_read(collection: PageCollection, tmp_path: Path) -> None:
    red = page("red", source="a.png")
    add(collection, [red])
    outside = tmp_path / "secret.png"
    Image.new("RGB", (3, 3), "white").save(outside)
    stored = collection.images.path_for(red.page_id)
    stored.unlink()
    stored.symlink_to(outside)

    (hit,) = collection.search(query("red"), k=1)

    assert hit.page_id == red.page_id
    assert hit.image_path is None
    with pytest.raises(DocumentError):
        hit.image_bytes()
    forged = dataclasses.replace(hit, image_path=outside)
    assert collection.with_image(forged).image_path is None  # a path a hit brings is not trusted


class ExplainingEmbedder(ColourEmbedder):
    """The colour model plus explain_page, recording the image it was asked to explain."""

    def __init__(self) -> None:
        super().__init__()
        self.explained: list[Image.Image] = []

    def explain_page(self, query: str, image: Image.Image) -> Any:
        self.explained.append(image)
        return "map"


def test_explain_reads_the_page_image_from_the_image_folder_only(store: Any, tmp_path: Path) -> None:
    embedder = ExplainingEmbedder()
    index = ColPaliIndex(embedder, store, image_dir=tmp_path / "pages")
    (page_id,) = index.add_images([solid_image("red", size=(20, 30))], [{"source": "red.png"}])
    outside = tmp_path / "other.png"
    Image.new("RGB", (3, 3), "white").save(outside)
    (hit,) = index.search("red", k=1)

    assert index.explain("red", dataclasses.replace(hit, image_path=outside)) == "map"
    assert embedder.explained[0].size == (20, 30)  # the stored page, not the path the hit carried

    index.images.delete([page_id])
    with pytest.raises(DocumentError, match="no stored image"):
        index.explain("red", dataclasses.replace(hit, image_path=outside))


def test_an_index_is_an_embedder_on_a_page_collection(colour_index: ColPaliIndex) -> None:
    assert isinstance(colour_index.collection, PageCollection)
    assert colour_index.store is colour_index.collection.store
    assert colour_index.images is colour_index.collection.images
    assert "PageCollection" in repr(colour_index)
