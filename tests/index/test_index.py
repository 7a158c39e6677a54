"""ColPaliIndex end to end with a deterministic fake model: real PDFs, real Milvus Lite, real MaxSim."""

from __future__ import annotations

from pathlib import Path

import pytest

from colpali_milvus import ColPaliIndex, IndexMismatchError, InvalidInputError, MilvusMultiVectorStore
from helpers import ColourEmbedder, PdfPage, solid_image, write_pdf


def test_add_pdf_then_search_returns_the_page_that_looks_right(colour_index: ColPaliIndex, colour_pdf: Path) -> None:
    page_ids = colour_index.add_pdf(colour_pdf, metadata={"team": "finance"}, dpi=36)

    hits = colour_index.search("the blue diagram", k=2)

    assert len(page_ids) == 4
    assert colour_index.count() == 4
    assert hits[0].page == 3
    assert hits[0].page_label == "2"
    assert hits[0].source == str(colour_pdf)
    assert hits[0].metadata["team"] == "finance"
    assert "Network diagram" in hits[0].text
    assert hits[0].image_path is not None
    assert hits[0].image_path.is_file()
    assert hits[0].load_image().size == (306, 396)  # 36 dpi render kept as is
    assert hits[0].score > hits[1].score


def test_ingestion_reports_progress_page_by_page(colour_index: ColPaliIndex, colour_pdf: Path) -> None:
    colour_index.ingest_batch_size = 3
    done: list[int] = []

    colour_index.add_pdf(colour_pdf, dpi=36, progress=done.append)
    colour_index.add_files([colour_pdf], progress=done.append)  # already stored: still reported

    assert done == [3, 1, 3, 1]


def test_page_images_survive_a_restart(lite_uri: str, colour_pdf: Path) -> None:
    embedder = ColourEmbedder()
    with MilvusMultiVectorStore(lite_uri, collection_name="docs", dim=16) as store:
        ColPaliIndex(embedder, store).add_pdf(colour_pdf, dpi=36)

    with MilvusMultiVectorStore(lite_uri, collection_name="docs") as store:
        index = ColPaliIndex(ColourEmbedder(), store)
        (hit,) = index.search("green", k=1)
    assert hit.page == 2
    assert hit.image_path is not None
    assert hit.image_path.parent == Path(f"{lite_uri}.pages") / "docs"
    assert hit.load_image().getpixel((150, 300))[1] > 200


def test_adding_the_same_pdf_again_embeds_nothing(colour_index: ColPaliIndex, colour_pdf: Path) -> None:
    first = colour_index.add_pdf(colour_pdf, dpi=36)
    calls = colour_index.embedder.image_calls  # type: ignore[attr-defined]
    again = colour_index.add_pdf(colour_pdf, dpi=36)
    assert again == first
    assert colour_index.embedder.image_calls == calls  # type: ignore[attr-defined]
    assert colour_index.count() == 4


def test_a_changed_file_replaces_its_old_pages(colour_index: ColPaliIndex, tmp_path: Path) -> None:
    path = tmp_path / "changing.pdf"
    write_pdf(path, [PdfPage((1, 0, 0)), PdfPage((0, 1, 0)), PdfPage((0, 0, 1))])
    old_ids = colour_index.add_pdf(path, dpi=36)
    write_pdf(path, [PdfPage((1, 1, 0)), PdfPage((0, 1, 1))])  # new version, fewer pages

    new_ids = colour_index.add_pdf(path, dpi=36)

    assert colour_index.count() == 2
    assert not set(old_ids) & set(new_ids)
    assert all(colour_index.images.find(page_id) is None for page_id in old_ids)
    assert colour_index.search("yellow", k=1)[0].page_id == new_ids[0]


def test_delete_removes_rows_and_images(colour_index: ColPaliIndex, colour_pdf: Path) -> None:
    page_ids = colour_index.add_pdf(colour_pdf, dpi=36)
    colour_index.add_images([solid_image("magenta")], [{"source": "photo.png"}])

    deleted = colour_index.delete(colour_pdf)

    assert sorted(deleted) == sorted(page_ids)
    assert colour_index.count() == 1
    assert all(colour_index.images.find(page_id) is None for page_id in page_ids)


def test_add_images_with_metadata_and_filters(colour_index: ColPaliIndex) -> None:
    images = [solid_image(colour) for colour in ("red", "green", "blue", "red", "red")]
    metadatas = [
        {"source": "a.png", "year": 2023},
        {"source": "b.png", "year": 2024},
        {"source": "c.png", "year": 2024},
        {"source": "d.png", "year": 2024, "page": 2, "page_label": "ii"},
        {"source": "a-copy.png", "year": 2023},  # same pixels and page number as a.png
    ]
    ids = colour_index.add_images(images, metadatas)

    assert len(ids) == 5
    assert ids[4] == ids[0]
    assert colour_index.count() == 4
    (best,) = colour_index.search("red", k=1, filter={"year": 2024})
    assert (best.source, best.page, best.page_label) == ("d.png", 2, "ii")
    assert colour_index.search("red", k=1, filter={"source": "a.png"})[0].metadata["year"] == 2023
    with pytest.raises(InvalidInputError):
        colour_index.add_images(images, metadatas[:1])


def test_search_arguments_are_validated(colour_index: ColPaliIndex) -> None:
    for query in ("", "   ", None):
        with pytest.raises(InvalidInputError):
            colour_index.search(query, k=1)  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError):
        colour_index.search("red", k=0)


def test_an_index_refuses_a_store_built_for_another_model(lite_uri: str) -> None:
    store = MilvusMultiVectorStore(lite_uri, collection_name="c", dim=16, model_name="vidore/colpali-v1.3")
    with store, pytest.raises(IndexMismatchError, match=r"colpali-v1\.3"):
        ColPaliIndex(ColourEmbedder(), store)
