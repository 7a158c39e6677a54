from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from helpers import ColourEmbedder, PdfPage, write_pdf
from milvus_server import EmbeddedMilvus, ExternalMilvus, external_test_uri
from targets import BACKENDS, StoreTarget, store_target


@pytest.fixture(scope="session")
def milvus_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedMilvus | ExternalMilvus]:
    """One real Milvus server on loopback for the whole session (see tests/milvus_server.py)."""
    uri = external_test_uri()
    if uri:
        yield ExternalMilvus(uri)
        return
    server = EmbeddedMilvus(tmp_path_factory.mktemp("milvus-server"))
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(params=BACKENDS)
def target(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[StoreTarget]:
    yield from store_target(request.param, request, tmp_path)


@pytest.fixture
def colour_embedder() -> ColourEmbedder:
    return ColourEmbedder()


@pytest.fixture
def lite_uri(tmp_path: Path) -> str:
    return str(tmp_path / "milvus.db")


@pytest.fixture
def store(target: StoreTarget) -> Iterator[object]:
    with target.open("test", dim=16, model_name="test/colour-embedder") as s:
        yield s


@pytest.fixture
def colour_index(store: object, colour_embedder: ColourEmbedder, tmp_path: Path) -> object:
    from colpali_milvus import ColPaliIndex

    return ColPaliIndex(colour_embedder, store, image_dir=tmp_path / "pages")  # type: ignore[arg-type]


@pytest.fixture
def colour_pdf(tmp_path: Path) -> Path:
    """A 4-page PDF: a red, green, blue and yellow figure, with text and roman front-matter labels."""
    pages = [
        PdfPage((1.0, 0.0, 0.0), ["Quarterly revenue table", "Total 42"]),
        PdfPage((0.0, 1.0, 0.0), ["Population growth chart"]),
        PdfPage((0.0, 0.0, 1.0), ["Network diagram"]),
        PdfPage((1.0, 1.0, 0.0), ["Appendix"]),
    ]
    return write_pdf(tmp_path / "report.pdf", pages, roman_front_pages=1)
