"""Pages and hits as LangChain ``Document`` objects.

``page_content`` is the page's text layer (empty for scans); the page image travels in metadata as
``image_base64`` + ``image_mime_type``, ready for :func:`~colpali_milvus.langchain.image_block`.

The keys in :data:`RESERVED_METADATA_KEYS` are set by this adapter only: user metadata under those
names is dropped, so stored metadata can never pose as a page image (or its path, id or score).
A page whose image file is missing gets no image keys at all, and ``image_block`` refuses it.
"""

from __future__ import annotations

import base64
import io
import logging
from collections.abc import Mapping
from typing import Any

from langchain_core.documents import Document

from colpali_milvus.errors import DocumentError
from colpali_milvus.types import Page, PageHit

__all__ = ["RESERVED_METADATA_KEYS", "hit_to_document", "page_to_document"]

logger = logging.getLogger(__name__)

#: Metadata keys only the adapter sets; user metadata with these names never reaches a Document.
RESERVED_METADATA_KEYS = frozenset({"page_id", "score", "image_path", "image_base64", "image_mime_type"})


def hit_to_document(hit: PageHit, *, include_image: bool = True) -> Document:
    """A search hit as a Document; the image keys come from ``hit.image_path`` alone, never from metadata.

    ``ColPaliIndex.search`` sets that path only for an image file inside its image folder.
    """
    metadata: dict[str, Any] = {**_user_metadata(hit.metadata, hit.page_id), "page_id": hit.page_id, "score": hit.score}
    if hit.image_path is not None:
        try:
            image = hit.image_base64() if include_image else None
        except DocumentError as error:  # deleted since the search: the page goes without its image
            logger.warning("page %s: %s", hit.page_id, error)
            return Document(id=hit.page_id, page_content=hit.text, metadata=metadata)
        metadata["image_path"] = str(hit.image_path)
        if image is not None:
            metadata["image_base64"] = image
            metadata["image_mime_type"] = hit.image_mime_type
    return Document(id=hit.page_id, page_content=hit.text, metadata=metadata)


def page_to_document(page: Page) -> Document:
    """A rendered page as a Document carrying its PNG (what ``ColPaliPDFLoader`` yields)."""
    buffer = io.BytesIO()
    page.image.save(buffer, format="PNG")
    metadata: dict[str, Any] = {
        **_user_metadata(page.store_metadata(), page.page_id),
        "page_id": page.page_id,
        "image_base64": base64.b64encode(buffer.getvalue()).decode("ascii"),
        "image_mime_type": "image/png",
    }
    return Document(id=page.page_id, page_content=page.text, metadata=metadata)


def _user_metadata(metadata: Mapping[str, Any], page_id: str) -> dict[str, Any]:
    dropped = sorted(RESERVED_METADATA_KEYS.intersection(metadata))
    if dropped:
        logger.debug("page %s: dropped metadata keys reserved for the adapter: %s", page_id, dropped)
    return {key: value for key, value in metadata.items() if key not in RESERVED_METADATA_KEYS}
