"""Bad input gets a clear error and loses nothing; a folder ingestion skips bad files and reports them."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

from colpali_milvus import ColPaliIndex, DocumentError, IngestReport
from helpers import PdfPage, solid_image, write_pdf


def test_a_folder_ingestion_indexes_the_good_files_and_reports_the_bad(
    colour_index: ColPaliIndex, tmp_path: Path
) -> None:
    folder = tmp_path / "inbox"
    (folder / "sub").mkdir(parents=True)
    write_pdf(folder / "good.pdf", [PdfPage((1, 0, 0)), PdfPage((0, 1, 0))])
    solid_image("blue").save(folder / "sub" / "scan.png")
    (folder / "fake.pdf").write_text("not a pdf at all")
    good = (folder / "good.pdf").read_bytes()
    (folder / "truncated.pdf").write_bytes(good[: len(good) // 3])
    (folder / "broken.jpg").write_bytes(b"\xff\xd8\xff garbage")
    (folder / "notes.txt").write_text("ignored: not a page format")

    report = colour_index.add_folder(folder)

    assert isinstance(report, IngestReport)
    assert [Path(f).name for f in report.files] == ["good.pdf", "scan.png"]
    assert len(report.page_ids) == 3
    assert sorted(Path(s.path).name for s in report.skipped) == ["broken.jpg", "fake.pdf", "truncated.pdf"]
    assert all(s.error for s in report.skipped)
    assert colour_index.count() == 3
    assert colour_index.search("blue", k=1)[0].source.endswith("scan.png")

    again = colour_index.add_folder(folder)  # resumable: nothing is embedded twice
    assert colour_index.count() == 3
    assert again.page_ids == report.page_ids


def test_zero_page_and_missing_inputs(colour_index: ColPaliIndex, tmp_path: Path) -> None:
    from pypdf import PdfWriter

    empty = tmp_path / "empty.pdf"
    with empty.open("wb") as file:
        PdfWriter().write(file)
    with pytest.raises(DocumentError, match="no pages"):
        colour_index.add_pdf(empty)
    with pytest.raises(DocumentError, match="no such file"):
        colour_index.add_pdf(tmp_path / "missing.pdf")
    with pytest.raises(DocumentError, match="no such folder"):
        colour_index.add_folder(tmp_path / "missing")
    with pytest.raises(DocumentError, match="not a PDF"):
        colour_index.add_file(tmp_path / "notes.docx")
    assert colour_index.count() == 0


@pytest.mark.parametrize("mode", ["CMYK", "RGBA", "L", "P", "1", "I;16"])
def test_any_image_mode_is_indexed_as_rgb(colour_index: ColPaliIndex, tmp_path: Path, mode: str) -> None:
    image = solid_image("green").convert(mode) if mode != "I;16" else Image.new("I;16", (40, 40), 30000)
    (page_id,) = colour_index.add_images([image], [{"source": f"{mode}.img"}])
    stored = colour_index.images.find(page_id)
    assert stored is not None
    with Image.open(stored) as saved:
        assert saved.mode == "RGB"
