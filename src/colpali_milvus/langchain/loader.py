"""ColPaliPDFLoader: a LangChain ``BaseLoader`` yielding one page-image Document per PDF page."""

from __future__ import annotations

from collections.abc import Iterator
from os import PathLike
from typing import Any

from langchain_core.document_loaders import BaseLoader
from langchain_core.documents import Document

from colpali_milvus.langchain.documents import page_to_document
from colpali_milvus.pages.pdf import DEFAULT_DPI, read_pdf

__all__ = ["ColPaliPDFLoader"]


class ColPaliPDFLoader(BaseLoader):
    """Loads a PDF as page images (pages are rendered lazily, one at a time).

    Each Document's ``page_content`` is the page text layer; ``metadata`` holds ``source``, ``page``
    (1-based), ``page_label``, ``doc_id``, ``page_id`` and the PNG as ``image_base64`` +
    ``image_mime_type``. :func:`~colpali_milvus.langchain.add_documents` stores them in a
    ``ColPaliIndex`` under the page ids ``index.add_pdf`` gives the same file.
    """

    def __init__(
        self,
        file_path: str | PathLike[str],
        *,
        password: str | None = None,
        dpi: int = DEFAULT_DPI,
        extract_text: bool = True,
        metadata: dict[str, Any] | None = None,
    ) -> None:
        self.file_path = file_path
        self.password = password
        self.dpi = dpi
        self.extract_text = extract_text
        self.metadata = metadata

    def lazy_load(self) -> Iterator[Document]:
        for page in read_pdf(
            self.file_path,
            dpi=self.dpi,
            password=self.password,
            extract_text=self.extract_text,
            metadata=self.metadata,
        ):
            yield page_to_document(page)
