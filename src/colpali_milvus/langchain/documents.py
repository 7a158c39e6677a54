"""Pages and hits as LangChain ``Document`` objects.

``page_content`` is the page's text layer (empty for scans); the page image travels in metadata as
``image_base64`` + ``image_mime_type``, ready for :func:`~colpali_milvus.langchain.image_block`.
"""

from __future__ import annotations

import base64
import io
from typing import Any

from langchain_core.documents import Document

from colpali_milvus.types import Page, PageHit

__all__ = ["hit_to_document", "page_to_document"]


def hit_to_document(hit: PageHit, *, include_image: bool = True) -> Document:
    metadata: dict[str, Any] = {**hit.metadata, "page_id": hit.page_id, "score": hit.score}
    if hit.image_path is not None:
        metadata["image_path"] = str(hit.image_path)
        if include_image:
            metadata["image_base64"] = hit.image_base64()
            metadata["image_mime_type"] = hit.image_mime_type
    return Document(id=hit.page_id, page_content=hit.text, metadata=metadata)


def page_to_document(page: Page) -> Document:
    buffer = io.BytesIO()
    page.image.save(buffer, format="PNG")
    metadata: dict[str, Any] = {
        **page.store_metadata(),
        "page_id": page.page_id,
        "image_base64": base64.b64encode(buffer.getvalue()).decode("ascii"),
        "image_mime_type": "image/png",
    }
    return Document(id=page.page_id, page_content=page.text, metadata=metadata)
