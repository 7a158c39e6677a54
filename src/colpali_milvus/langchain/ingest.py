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
import io
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from langchain_core.documents import Document
from PIL import Image, UnidentifiedImageError

from colpali_milvus.errors import DocumentError, InvalidInputError
from colpali_milvus.index import ColPaliIndex, Progress
from colpali_milvus.langchain.documents import RESERVED_METADATA_KEYS
from colpali_milvus.pages.identity import file_digest, image_digest
from colpali_milvus.types import Page, is_page_id

__all__ = ["add_documents", "document_to_page"]

logger = logging.getLogger(__name__)

_PAGE_FIELDS = frozenset({"source", "page", "page_label", "doc_id"})


def add_documents(index: ColPaliIndex, documents: Iterable[Document], *, progress: Progress | None = None) -> list[str]:
    """Embed and store page-image Documents; returns their page ids (pages stored already are skipped).

    Every document's metadata is checked before anything is written. Documents that name their
    file version (``doc_id``, as the loader's do, or an ``image_path`` file) replace the pages of
    other versions of the same ``source`` once stored, as ``index.add_pdf`` does.
    """
    specs = [_spec(document) for document in documents]
    page_ids = index.add_pages((_page(spec) for spec in specs), progress=progress)
    versions: dict[str, set[str]] = {}
    for spec in specs:
        if spec.doc_id is not None and spec.source:
            versions.setdefault(spec.source, set()).add(spec.doc_id)
    for source, doc_ids in versions.items():
        if len(doc_ids) == 1:
            index.collection.delete_other_versions(source, keep_doc_id=next(iter(doc_ids)))
        else:
            logger.info("%s: documents of %d versions given; older versions kept", source, len(doc_ids))
    return page_ids


def document_to_page(document: Document) -> Page:
    """The :class:`Page` a Document stands for (its image decoded, its metadata checked)."""
    return _page(_spec(document))


@dataclass(frozen=True)
class _Spec:
    """A document's page fields, checked; the image is decoded only when the page is embedded."""

    name: str
    data: bytes | None
    path: Path | None
    source: str
    page: int
    page_label: str
    doc_id: str | None  # None: the image's own digest (an in-memory image has no file version)
    page_id: str | None
    text: str
    metadata: Mapping[str, Any]


def _spec(document: Document) -> _Spec:
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
    page = metadata.get("page", 1)
    if isinstance(page, bool) or not isinstance(page, int) or page < 1:
        raise InvalidInputError(f"document {name}: metadata 'page' must be a 1-based positive int, got {page!r}")
    doc_id = metadata.get("doc_id")
    if doc_id is not None and not (isinstance(doc_id, str) and is_page_id(f"{doc_id}-{page:05d}")):
        raise InvalidInputError(f"document {name}: metadata 'doc_id' {doc_id!r} is not a valid id")
    page_id = metadata.get("page_id")
    if page_id is not None and doc_id is not None and page_id != f"{doc_id}-{page:05d}":
        raise InvalidInputError(
            f"document {name}: page_id {page_id!r} does not match doc_id {doc_id!r} and page {page}"
        )
    if doc_id is None and path is not None:
        doc_id = file_digest(path)  # the id index.add_image_file gives the same file
    spec = _Spec(
        name=name,
        data=data,
        path=path,
        source=str(metadata.get("source") or (path if path is not None else "")),
        page=page,
        page_label=str(metadata.get("page_label", page)),
        doc_id=doc_id,
        page_id=page_id if isinstance(page_id, str) else None,
        text=document.page_content,
        metadata={key: value for key, value in metadata.items() if key not in RESERVED_METADATA_KEYS | _PAGE_FIELDS},
    )
    _open_image(spec, load=False)
    return spec


def _page(spec: _Spec) -> Page:
    image = _open_image(spec)
    page = Page(
        image=image,
        source=spec.source,
        page=spec.page,
        page_label=spec.page_label,
        doc_id=spec.doc_id if spec.doc_id is not None else image_digest(image),
        text=spec.text,
        metadata=spec.metadata,
    )
    if spec.page_id is not None and spec.page_id != page.page_id:
        raise InvalidInputError(f"document {spec.name}: page_id {spec.page_id!r} is not its page's id")
    return page


def _open_image(spec: _Spec, *, load: bool = True) -> Image.Image:
    """The page image as RGB; ``load=False`` reads only its header (a cheap check before any write)."""
    source: io.BytesIO | Path = io.BytesIO(spec.data) if spec.data is not None else spec.path  # type: ignore[assignment]
    try:
        with Image.open(source) as image:
            if not load:
                return image
            image.load()
            return image.convert("RGB")
    except (UnidentifiedImageError, OSError) as error:
        if spec.data is None:
            raise DocumentError(f"document {spec.name}: cannot read its image file {str(spec.path)!r}") from error
        raise InvalidInputError(f"document {spec.name}: image_base64 holds no readable image") from error
