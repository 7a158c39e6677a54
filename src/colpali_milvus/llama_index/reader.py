"""ColPaliPDFReader: a LlamaIndex ``BaseReader`` yielding one page ``ImageDocument`` per PDF page."""

from __future__ import annotations

from collections.abc import Iterator
from os import PathLike
from typing import Any

from llama_index.core.readers.base import BaseReader
from llama_index.core.schema import Document

from colpali_milvus.errors import InvalidInputError
from colpali_milvus.llama_index.nodes import page_to_image_document
from colpali_milvus.pages.pdf import DEFAULT_DPI, read_pdf

__all__ = ["ColPaliPDFReader"]


class ColPaliPDFReader(BaseReader):
    """Reads a PDF as page images; use it as ``SimpleDirectoryReader(file_extractor={".pdf": reader})``.

    Each ``ImageDocument`` holds the page PNG (base64), the page text layer as ``text`` and
    ``source`` / ``page`` / ``page_label`` / ``doc_id`` / ``page_id`` plus ``extra_info`` as metadata.
    :func:`~colpali_milvus.llama_index.add_documents` stores them in a ``ColPaliIndex`` under the
    page ids ``index.add_pdf`` gives the same file.
    """

    def __init__(self, *, dpi: int = DEFAULT_DPI, password: str | None = None, extract_text: bool = True) -> None:
        super().__init__()
        self.dpi = dpi
        self.password = password
        self.extract_text = extract_text

    def lazy_load_data(
        self, file: str | PathLike[str], extra_info: dict[str, Any] | None = None, **kwargs: Any
    ) -> Iterator[Document]:
        if kwargs.get("fs") is not None:
            raise InvalidInputError("ColPaliPDFReader reads local files only (poppler needs a path)")
        for page in read_pdf(file, dpi=self.dpi, password=self.password, extract_text=self.extract_text):
            yield page_to_image_document(page, extra_info)

    def load_data(
        self, file: str | PathLike[str], extra_info: dict[str, Any] | None = None, **kwargs: Any
    ) -> list[Document]:
        return list(self.lazy_load_data(file, extra_info, **kwargs))
