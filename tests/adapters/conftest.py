from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from colpali_milvus import ColPaliIndex
from helpers import ColourEmbedder, PdfPage, write_pdf
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
