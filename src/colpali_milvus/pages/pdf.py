"""PDF files to :class:`~colpali_milvus.types.Page` objects: poppler renders, pypdf reads labels and text."""

from __future__ import annotations

import logging
import math
from collections.abc import Iterator, Mapping
from os import PathLike
from pathlib import Path
from typing import Any

from colpali_milvus.errors import DocumentError
from colpali_milvus.pages.identity import file_digest
from colpali_milvus.types import Page

__all__ = ["DEFAULT_DPI", "DEFAULT_MAX_PIXELS", "read_pdf"]

logger = logging.getLogger(__name__)

#: Sharp enough for a vision LLM to read body text; the embedder resizes for itself anyway.
DEFAULT_DPI = 150
#: Caps one rendered page (a poster or a CAD sheet) at about 4096 x 4096 pixels.
DEFAULT_MAX_PIXELS = 4096 * 4096
_POINTS_PER_INCH = 72.0


def read_pdf(
    path: str | PathLike[str],
    *,
    dpi: int = DEFAULT_DPI,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    password: str | None = None,
    extract_text: bool = True,
    metadata: Mapping[str, Any] | None = None,
) -> Iterator[Page]:
    """Yield the pages of a PDF one at a time (each rendered only when asked for).

    Each page carries ``source`` (the path as given), ``page`` (1-based), ``page_label`` (the
    PDF's own label when it defines one), ``doc_id`` (a digest of the file's bytes), the text layer
    (when ``extract_text``) and the caller's ``metadata``. Pages whose size at ``dpi`` would exceed
    ``max_pixels`` are rendered at a lower resolution instead.
    """
    from pdf2image import convert_from_path

    path = Path(path)
    reader = _open_reader(path, password)
    doc_id = file_digest(path)
    labels = _page_labels(reader)
    credentials: dict[str, Any] = {"userpw": password} if password else {}
    for number, pdf_page in enumerate(reader.pages, start=1):
        page_dpi = _capped_dpi(pdf_page, dpi, max_pixels)
        try:
            images = convert_from_path(
                path, dpi=page_dpi, first_page=number, last_page=number, fmt="png", **credentials
            )
        except Exception as error:  # pdf2image raises several unrelated types
            raise DocumentError(f"cannot render page {number} of {path}: {error}") from error
        if not images:
            raise DocumentError(f"poppler rendered no image for page {number} of {path}")
        yield Page(
            image=images[0].convert("RGB"),
            source=str(path),
            page=number,
            page_label=labels[number - 1] if number <= len(labels) else str(number),
            doc_id=doc_id,
            text=_page_text(pdf_page) if extract_text else "",
            metadata=dict(metadata or {}),
        )


def _open_reader(path: Path, password: str | None) -> Any:
    from pypdf import PdfReader
    from pypdf.errors import PyPdfError

    if not path.is_file():
        raise DocumentError(f"no such file: {path}")
    try:
        reader = PdfReader(path)
        if reader.is_encrypted and reader.decrypt(password or "") == 0:  # PasswordType.NOT_DECRYPTED
            hint = "a wrong password was given" if password else "pass password=..."
            raise DocumentError(f"{path} is encrypted ({hint})")
        if len(reader.pages) == 0:
            raise DocumentError(f"{path} has no pages")
    except DocumentError:
        raise
    except (PyPdfError, OSError, ValueError, KeyError, TypeError) as error:
        raise DocumentError(f"{path} is not a readable PDF: {error}") from error
    return reader


def _page_labels(reader: Any) -> list[str]:
    try:
        return [str(label) for label in reader.page_labels]
    except Exception:  # a malformed /PageLabels tree only costs us the labels
        logger.debug("unreadable page labels; falling back to page numbers", exc_info=True)
        return []


def _page_text(pdf_page: Any) -> str:
    try:
        return str(pdf_page.extract_text() or "").strip()
    except Exception:  # text is a bonus: a page whose text layer pypdf cannot parse still indexes
        logger.debug("text extraction failed", exc_info=True)
        return ""


def _capped_dpi(pdf_page: Any, dpi: int, max_pixels: int) -> int:
    try:
        width_in = float(pdf_page.mediabox.width) / _POINTS_PER_INCH
        height_in = float(pdf_page.mediabox.height) / _POINTS_PER_INCH
    except Exception:
        return dpi
    area = width_in * height_in
    if area <= 0 or area * dpi * dpi <= max_pixels:
        return dpi
    return max(1, math.floor(math.sqrt(max_pixels / area)))
