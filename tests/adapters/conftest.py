from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image

from colpali_milvus import ColPaliIndex, MilvusMultiVectorStore
from helpers import ColourEmbedder, PdfPage, solid_image, write_pdf
from targets import BACKENDS, store_target


@pytest.fixture(scope="module")
def colour_pdfs(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    folder = tmp_path_factory.mktemp("pdfs")
    report = write_pdf(
        folder / "report.pdf",
        [PdfPage((1, 0, 0), ["Revenue table"]), PdfPage((0, 1, 0), ["Growth chart"]), PdfPage((0, 0, 1), ["Diagram"])],
    )
    manual = write_pdf(folder / "manual.pdf", [PdfPage((1, 1, 0), ["Wiring"]), PdfPage((1, 0, 1), ["Index"])])
    return [report, manual]


@pytest.fixture(scope="module", params=BACKENDS)
def indexed(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, colour_pdfs: list[Path]
) -> Iterator[ColPaliIndex]:
    """An index of five colour pages in two PDFs, shared by a module's tests (read-only), on each backend."""
    folder = tmp_path_factory.mktemp("index")
    for target in store_target(request.param, request, folder):
        with target.open("adapters", dim=16) as store:
            index = ColPaliIndex(ColourEmbedder(), store, image_dir=folder / "pages")
            index.add_pdf(colour_pdfs[0], dpi=36, metadata={"kind": "report"})
            index.add_pdf(colour_pdfs[1], dpi=36, metadata={"kind": "manual"})
            yield index


@pytest.fixture
def spoofed(tmp_path: Path) -> Iterator[tuple[ColPaliIndex, dict[str, str]]]:
    """Two pages whose stored metadata poses as image fields; the blue page's image file is missing.

    Every spoofed value points at (or holds) ``outside.png``, a white image no page has.
    """
    outside = tmp_path / "outside.png"
    Image.new("RGB", (8, 8), "white").save(outside)
    data = base64.b64encode(outside.read_bytes()).decode("ascii")
    spoof = {
        "team": "finance",
        "image_base64": data,
        "image_mime_type": "image/png",
        "image_path": str(outside),
        "image": data,
        "image_mimetype": "image/png",
        "image_url": outside.as_uri(),
        "page_id": "spoofed-00001",
        "score": 99.0,
    }
    with MilvusMultiVectorStore(str(tmp_path / "spoofed.db"), collection_name="spoofed", dim=16) as store:
        index = ColPaliIndex(ColourEmbedder(), store, image_dir=tmp_path / "pages")
        red, blue = index.add_images(
            [solid_image("red"), solid_image("blue")],
            [{**spoof, "source": "red.png"}, {**spoof, "source": "blue.png"}],
        )
        (tmp_path / "pages" / f"{blue}.png").unlink()
        yield index, {"red": red, "blue": blue}


@pytest.fixture
def fresh_index(tmp_path: Path) -> Iterator[ColPaliIndex]:
    """An empty index on a Milvus Lite file of its own (its ColourEmbedder counts embedding calls)."""
    with MilvusMultiVectorStore(str(tmp_path / "fresh.db"), collection_name="fresh", dim=16) as store:
        yield ColPaliIndex(ColourEmbedder(), store, image_dir=tmp_path / "fresh-pages")


@pytest.fixture(scope="module")
def full_size(tmp_path_factory: pytest.TempPathFactory, colour_pdfs: list[Path]) -> Iterator[ColPaliIndex]:
    """The five colour pages rendered at the default 150 dpi (real page-image sizes), on Milvus Lite."""
    folder = tmp_path_factory.mktemp("full-size")
    with MilvusMultiVectorStore(str(folder / "full.db"), collection_name="full", dim=16) as store:
        index = ColPaliIndex(ColourEmbedder(), store, image_dir=folder / "pages")
        index.add_pdf(colour_pdfs[0], metadata={"kind": "report"})
        index.add_pdf(colour_pdfs[1], metadata={"kind": "manual"})
        yield index
