"""PDF and image files to pages, through real poppler (pdf2image) and pypdf."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

from colpali_milvus import DocumentError
from colpali_milvus.pages import read_image, read_pdf
from helpers import PdfPage, write_pdf


def test_pages_carry_source_number_label_text_and_image(colour_pdf: Path) -> None:
    pages = list(read_pdf(colour_pdf, dpi=72, metadata={"team": "finance"}))

    assert [page.page for page in pages] == [1, 2, 3, 4]
    assert [page.page_label for page in pages] == ["i", "1", "2", "3"]  # roman front matter, then 1..
    assert {page.source for page in pages} == {str(colour_pdf)}
    assert len({page.doc_id for page in pages}) == 1
    assert len({page.page_id for page in pages}) == 4
    assert "Quarterly revenue table" in pages[0].text
    assert pages[0].metadata == {"team": "finance"}
    assert pages[0].image.size == (612, 792)  # US Letter at 72 dpi
    assert pages[0].image.mode == "RGB"
    r, g, b = pages[0].image.getpixel((300, 600))  # the red figure (bottom half; image y grows down)
    assert r > 200
    assert g < 60
    assert b < 60


def test_dpi_scales_the_render_and_huge_pages_are_capped(tmp_path: Path) -> None:
    pdf = write_pdf(tmp_path / "poster.pdf", [PdfPage(width=612, height=792), PdfPage(width=7200, height=7200)])
    normal, poster = read_pdf(pdf, dpi=144, max_pixels=2000 * 2000)

    assert normal.image.size == (1224, 1584)
    assert poster.image.width * poster.image.height <= 2000 * 2000  # 100 x 100 inches at 144 dpi would be 14400^2
    assert poster.image.width >= 1500


def test_the_same_bytes_give_the_same_ids(colour_pdf: Path, tmp_path: Path) -> None:
    copy = tmp_path / "copy.pdf"
    copy.write_bytes(colour_pdf.read_bytes())
    first = next(iter(read_pdf(colour_pdf, dpi=36)))
    again = next(iter(read_pdf(copy, dpi=36)))
    assert first.page_id == again.page_id
    assert first.source != again.source


def test_missing_and_broken_files_raise_document_error(tmp_path: Path) -> None:
    with pytest.raises(DocumentError, match="no such file"):
        list(read_pdf(tmp_path / "missing.pdf"))
    fake = tmp_path / "fake.pdf"
    fake.write_text("this is not a PDF")
    with pytest.raises(DocumentError, match="not a readable PDF") as raised:
        list(read_pdf(fake))
    assert raised.value.__cause__ is not None


def test_encrypted_pdfs_need_their_password(colour_pdf: Path, tmp_path: Path) -> None:
    from pypdf import PdfReader, PdfWriter

    writer = PdfWriter()
    for page in PdfReader(colour_pdf).pages:
        writer.add_page(page)
    writer.encrypt(user_password="s3cret", owner_password="owner", algorithm="AES-128")
    locked = tmp_path / "locked.pdf"
    with locked.open("wb") as file:
        writer.write(file)

    with pytest.raises(DocumentError, match="encrypted"):
        list(read_pdf(locked))
    with pytest.raises(DocumentError, match="wrong password"):
        list(read_pdf(locked, password="nope"))
    pages = list(read_pdf(locked, password="s3cret", dpi=36))
    assert len(pages) == 4


def test_image_files_become_pages_in_rgb(tmp_path: Path) -> None:
    path = tmp_path / "scan.png"
    Image.new("RGBA", (20, 30), (0, 0, 255, 128)).save(path)
    (page,) = read_image(path, metadata={"kind": "scan"})
    assert (page.page, page.page_label, page.source, page.image.mode) == (1, "1", str(path), "RGB")
    assert page.metadata == {"kind": "scan"}

    tiff = tmp_path / "multi.tiff"
    frames = [Image.new("L", (10, 10), shade) for shade in (0, 128, 255)]
    frames[0].save(tiff, save_all=True, append_images=frames[1:])
    assert [page.page for page in read_image(tiff)] == [1, 2, 3]

    broken = tmp_path / "broken.png"
    broken.write_bytes(b"\x89PNG not really")
    with pytest.raises(DocumentError):
        list(read_image(broken))
