"""LangChain ``Document``s with a page image into a :class:`ColPaliIndex`: ``add_documents(index, docs)``.

Documents of :class:`~colpali_milvus.langchain.ColPaliPDFLoader` (and of ``ColPaliRetriever``)
carry their page image as ``image_base64`` and ``source`` / ``page`` / ``page_label`` /
``doc_id`` / ``page_id`` in metadata: they become the very pages ``index.add_pdf`` stores, with
the same page ids, so adding the file again (either way) embeds nothing. Image documents of other
loaders work too when their image is at hand: ``image_base64`` (base64 text) or ``image_path`` (a
local file) in metadata. A document without an image is refused (:class:`InvalidInputError`): a
ColPali index finds pages by how they look.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterable
from pathlib import Path

from langchain_core.documents import Document

from colpali_milvus.errors import DocumentError, InvalidInputError
from colpali_milvus.index import ColPaliIndex, Progress
from colpali_milvus.langchain.documents import RESERVED_METADATA_KEYS
from colpali_milvus.pages.external import ExternalPage, add_external_pages, external_page
from colpali_milvus.types import Page

__all__ = ["add_documents", "document_to_page"]


def add_documents(index: ColPaliIndex, documents: Iterable[Document], *, progress: Progress | None = None) -> list[str]:
    """Embed and store page-image Documents; returns their page ids (pages stored already are skipped).

    Every document's metadata is checked before anything is written. Documents that name their
    file version (``doc_id``, as the loader's do, or an ``image_path`` file) replace the pages of
    other versions of the same ``source`` once stored, as ``index.add_pdf`` does.
    """
    return add_external_pages(index, [_spec(document) for document in documents], progress=progress)


def document_to_page(document: Document) -> Page:
    """The :class:`Page` a Document stands for (its image decoded, its metadata checked)."""
    return _spec(document).to_page()


def _spec(document: Document) -> ExternalPage:
    if not isinstance(document, Document):
        raise InvalidInputError(f"expected a langchain Document, got {type(document).__name__}")
    metadata = document.metadata
    name = repr(document.id or metadata.get("source") or document.page_content[:40])
    data: bytes | None = None
    path: Path | None = None
    encoded = metadata.get("image_base64")
    if encoded is not None:
        if not isinstance(encoded, str) or not encoded:
            raise InvalidInputError(f"document {name}: image_base64 must be non-empty base64 text")
        try:
            data = base64.b64decode(encoded, validate=True)
        except (binascii.Error, ValueError) as error:
            raise InvalidInputError(f"document {name}: image_base64 is not valid base64") from error
    elif metadata.get("image_path") is not None:
        path = Path(str(metadata["image_path"]))
        if not path.is_file():
            raise DocumentError(f"document {name}: image_path {str(path)!r} is not a file")
    else:
        raise InvalidInputError(
            f"document {name} carries no page image (metadata has neither image_base64 nor image_path): "
            "a ColPali index finds pages by their image; load PDFs with ColPaliPDFLoader"
        )
    return external_page(
        name,
        data=data,
        path=path,
        data_label="image_base64",
        metadata=metadata,
        text=document.page_content,
        dropped_keys=RESERVED_METADATA_KEYS,
    )
