"""Pages handed in from outside (a framework's documents): an image, page fields in metadata, a text.

What the LangChain and LlamaIndex ``add_documents`` share, free of either framework. Each adapter
reads its own document type (where the image is, what the document is called, its text) and passes
that to :func:`external_page`, which checks the page fields before anything is written; then
:func:`add_external_pages` embeds and stores the pages, and replaces older versions of their
files as ``index.add_pdf`` does.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from colpali_milvus.errors import DocumentError, InvalidInputError
from colpali_milvus.pages.identity import file_digest, image_digest, page_id
from colpali_milvus.types import Page, is_page_id

if TYPE_CHECKING:
    from PIL import Image

    from colpali_milvus.index import ColPaliIndex, Progress

__all__ = ["PAGE_FIELDS", "ExternalPage", "add_external_pages", "external_page"]

logger = logging.getLogger(__name__)

#: Metadata keys that become the page's own fields, not metadata of its own.
PAGE_FIELDS = frozenset({"source", "page", "page_label", "doc_id"})


@dataclass(frozen=True)
class ExternalPage:
    """A document's page fields, checked; the image is decoded only when the page is embedded."""

    name: str
    data: bytes | None
    path: Path | None
    data_label: str  # what error messages call ``data``
    source: str
    page: int
    page_label: str
    doc_id: str | None  # None: the image's own digest (an in-memory image has no file version)
    page_id: str | None
    text: str
    metadata: Mapping[str, Any]

    def to_page(self) -> Page:
        """The :class:`Page` (its image decoded), refused if it is not the page id the document named."""
        image = self.open_image()
        page = Page(
            image=image,
            source=self.source,
            page=self.page,
            page_label=self.page_label,
            doc_id=self.doc_id if self.doc_id is not None else image_digest(image),
            text=self.text,
            metadata=self.metadata,
        )
        if self.page_id is not None and self.page_id != page.page_id:
            raise InvalidInputError(f"document {self.name}: page_id {self.page_id!r} is not its page's id")
        return page

    def open_image(self, *, load: bool = True) -> Image.Image:
        """The page image as RGB; ``load=False`` reads only its header (a cheap check before any write)."""
        from PIL import Image, UnidentifiedImageError

        source: io.BytesIO | Path = io.BytesIO(self.data) if self.data is not None else self.path  # type: ignore[assignment]
        try:
            with Image.open(source) as image:
                if not load:
                    return image
                image.load()
                return image.convert("RGB")
        except (UnidentifiedImageError, OSError) as error:
            if self.data is None:
                raise DocumentError(f"document {self.name}: cannot read its image file {str(self.path)!r}") from error
            raise InvalidInputError(f"document {self.name}: {self.data_label} holds no readable image") from error


def external_page(
    name: str,
    *,
    data: bytes | None,
    path: Path | None,
    data_label: str,
    metadata: Mapping[str, Any],
    text: str,
    dropped_keys: frozenset[str],
    default_source: object = "",
) -> ExternalPage:
    """Check a document's page fields and image header; nothing is decoded or written yet.

    Args:
        name: how error messages name the document (``repr`` of its id).
        data, path: the image's bytes, or else the image file (the caller checked it is a file).
        data_label: what error messages call ``data`` (``"image_base64"``).
        metadata: the document's metadata: ``page`` (1-based, default 1), ``page_label``,
            ``source``, ``doc_id`` and ``page_id`` are checked and become page fields; the other keys
            are kept, but for ``dropped_keys`` (what the adapter sets itself).
        text: the page's text layer.
        default_source: the source when metadata gives none and there is no image file.
    """
    page = metadata.get("page", 1)
    if isinstance(page, bool) or not isinstance(page, int) or page < 1:
        raise InvalidInputError(f"document {name}: metadata 'page' must be a 1-based positive int, got {page!r}")
    doc_id = metadata.get("doc_id")
    if doc_id is not None and not (isinstance(doc_id, str) and is_page_id(page_id(doc_id, page))):
        raise InvalidInputError(f"document {name}: metadata 'doc_id' {doc_id!r} is not a valid id")
    given_id = metadata.get("page_id")
    if given_id is not None and doc_id is not None and given_id != page_id(doc_id, page):
        raise InvalidInputError(
            f"document {name}: page_id {given_id!r} does not match doc_id {doc_id!r} and page {page}"
        )
    if doc_id is None and path is not None:
        doc_id = file_digest(path)  # the id index.add_image_file gives the same file
    spec = ExternalPage(
        name=name,
        data=data,
        path=path,
        data_label=data_label,
        source=str(metadata.get("source") or (path if path is not None else default_source)),
        page=page,
        page_label=str(metadata.get("page_label", page)),
        doc_id=doc_id,
        page_id=given_id if isinstance(given_id, str) else None,
        text=text,
        metadata={key: value for key, value in metadata.items() if key not in dropped_keys | PAGE_FIELDS},
    )
    spec.open_image(load=False)
    return spec


def add_external_pages(
    index: ColPaliIndex, specs: Sequence[ExternalPage], *, progress: Progress | None = None
) -> list[str]:
    """Embed and store checked pages; returns their page ids (pages stored already are skipped).

    Pages that name their file version (a ``doc_id``, or an image file) replace the pages of other
    versions of the same ``source`` once stored, as ``index.add_pdf`` does; pages of several
    versions of one source given at once keep the older versions.
    """
    page_ids = index.add_pages((spec.to_page() for spec in specs), progress=progress)
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
