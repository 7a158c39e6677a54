from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from colpali_milvus import ColPaliIndex, MilvusMultiVectorStore
from helpers import ColourEmbedder, PdfPage, write_pdf


@pytest.fixture(scope="module")
def colour_pdfs(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    folder = tmp_path_factory.mktemp("pdfs")
    report = write_pdf(
        folder / "report.pdf",
        [PdfPage((1, 0, 0), ["Revenue table"]), PdfPage((0, 1, 0), ["Growth chart"]), PdfPage((0, 0, 1), ["Diagram"])],
    )
    manual = write_pdf(folder / "manual.pdf", [PdfPage((1, 1, 0), ["Wiring"]), PdfPage((1, 0, 1), ["Index"])])
    return [report, manual]


@pytest.fixture(scope="module")
def indexed(tmp_path_factory: pytest.TempPathFactory, colour_pdfs: list[Path]) -> Iterator[ColPaliIndex]:
    """An index of five colour pages in two PDFs, shared by a module's tests (read-only)."""
    folder = tmp_path_factory.mktemp("index")
    with MilvusMultiVectorStore(folder / "milvus.db", collection_name="adapters", dim=16) as store:
        index = ColPaliIndex(ColourEmbedder(), store)
        index.add_pdf(colour_pdfs[0], dpi=36, metadata={"kind": "report"})
        index.add_pdf(colour_pdfs[1], dpi=36, metadata={"kind": "manual"})
        yield index
