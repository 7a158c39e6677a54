"""PDF files to :class:`~colpali_milvus.types.Page` objects: poppler renders, pypdf reads labels and text.

:func:`open_pdf` reads what a PDF is without rendering anything (its content digest, page count and
so its page ids); :meth:`PdfDocument.pages` renders only the pages asked for. An ingestion can so
tell which pages are stored already and render only the others.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Collection, Iterator, Mapping
from os import PathLike
from pathlib import Path
from typing import Any

from colpali_milvus.errors import DocumentError
from colpali_milvus.pages.identity import PageFile, file_digest, user_metadata
from colpali_milvus.types import Page

__all__ = ["DEFAULT_DPI", "DEFAULT_MAX_PIXELS", "PdfDocument", "open_pdf", "read_pdf"]

logger = logging.getLogger(__name__)

#: Sharp enough for a vision LLM to read body text; the embedder resizes for itself anyway.
DEFAULT_DPI = 150
#: Caps one rendered page (a poster or a CAD sheet) at about 4096 x 4096 pixels.
DEFAULT_MAX_PIXELS = 4096 * 4096
_POINTS_PER_INCH = 72.0
#: pypdf's PasswordType.OWNER_PASSWORD: the owner password, not the user one, decrypted the file.
_OWNER_PASSWORD = 2


class PdfDocument(PageFile):
    """A PDF opened (decrypted with ``password``, the user's or the owner's) without rendering a page.

    Its identity (``doc_id``, ``page_count``, so its page ids) is known at once; its pages are
    rendered only on demand (see :class:`~colpali_milvus.pages.identity.PageFile`).

    Raises :class:`~colpali_milvus.errors.DocumentError` for a missing, unreadable, encrypted or
    empty file, and :class:`~colpali_milvus.errors.InvalidInputError` for reserved metadata keys.
    """

    def __init__(
        self,
        path: str | PathLike[str],
        *,
        dpi: int = DEFAULT_DPI,
        max_pixels: int = DEFAULT_MAX_PIXELS,
        password: str | None = None,
        extract_text: bool = True,
        metadata: Mapping[str, Any] | None = None,
    ) -> None:
        self.path = Path(path)
        self.metadata = user_metadata(metadata)
        self._reader, self._credentials = _open_reader(self.path, password)
        self.doc_id = file_digest(self.path)
        self.page_count = len(self._reader.pages)
        self._labels = _page_labels(self._reader)
        self._dpi, self._max_pixels, self._extract_text = dpi, max_pixels, extract_text

    def pages(self, numbers: Collection[int] | None = None) -> Iterator[Page]:
        """Render and yield pages one at a time: all of them, or only the 1-based ``numbers``."""
        from pdf2image import convert_from_path

        for number, pdf_page in enumerate(self._reader.pages, start=1):
            if numbers is not None and number not in numbers:
                continue
            page_dpi = _capped_dpi(pdf_page, self._dpi, self._max_pixels)
            try:
                images = convert_from_path(
                    self.path,
                    dpi=page_dpi,
                    first_page=number,
                    last_page=number,
                    fmt="png",
                    **self._credentials,
                )
            except Exception as error:  # pdf2image raises several unrelated types
                raise DocumentError(f"cannot render page {number} of {self.path}: {error}") from error
            if not images:
                raise DocumentError(f"poppler rendered no image for page {number} of {self.path}")
            yield self._page(
                number,
                images[0].convert("RGB"),
                page_label=self._labels[number - 1] if number <= len(self._labels) else str(number),
                text=_page_text(pdf_page) if self._extract_text else "",
            )


#: Open a PDF without rendering a page: the :class:`PdfDocument` constructor under its verb's name.
open_pdf = PdfDocument


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
    (when ``extract_text``) and the caller's ``metadata``, which may not set those keys. Pages
    whose size at ``dpi`` would exceed ``max_pixels`` are rendered at a lower resolution instead.
    ``password`` may be the user or the owner password of an encrypted file.
    """
    yield from open_pdf(
        path, dpi=dpi, max_pixels=max_pixels, password=password, extract_text=extract_text, metadata=metadata
    ).pages()


def _open_reader(path: Path, password: str | None) -> tuple[Any, dict[str, Any]]:
    """The pypdf reader, decrypted, and the credentials poppler needs to render the same file."""
    from pypdf import PdfReader
    from pypdf.errors import PyPdfError

    if not path.is_file():
        raise DocumentError(f"no such file: {path}")
    credentials: dict[str, Any] = {}  # userpw or ownerpw of pdf2image.convert_from_path
    try:
        reader = PdfReader(path)
        if reader.is_encrypted:
            matched = int(reader.decrypt(password or ""))
            if matched == 0:  # PasswordType.NOT_DECRYPTED
                hint = "a wrong password was given" if password else "password=... in Python, --password on the CLI"
                raise DocumentError(f"{path} is encrypted ({hint})")
            # poppler takes the owner password only as such (pdftoppm -opw), the user one as -upw.
            if password and matched == _OWNER_PASSWORD:
                credentials["ownerpw"] = password
            elif password:
                credentials["userpw"] = password
        if len(reader.pages) == 0:
            raise DocumentError(f"{path} has no pages")
    except DocumentError:
        raise
    except (PyPdfError, OSError, ValueError, KeyError, TypeError) as error:
        raise DocumentError(f"{path} is not a readable PDF: {error}") from error
    return reader, credentials


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
