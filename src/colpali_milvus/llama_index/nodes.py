"""Pages and hits as LlamaIndex ``ImageNode`` / ``ImageDocument`` objects.

A hit becomes an ``ImageNode`` only when its page image was found in the index's image folder;
the node's ``image`` / ``image_path`` / ``image_mimetype`` come from that file alone. A page whose
image is missing becomes a plain ``TextNode`` (its text layer), so nothing can stand in for the
image: LlamaIndex falls back to ``metadata["file_path"]`` for an ``ImageNode`` with neither image
nor path, and a multimodal query engine fails on one. User metadata under the names in
:data:`RESERVED_METADATA_KEYS` is dropped.
"""

from __future__ import annotations

import base64
import io
import logging
from collections.abc import Mapping
from typing import Any

from llama_index.core.schema import ImageDocument, ImageNode, NodeWithScore, TextNode

from colpali_milvus.errors import DocumentError
from colpali_milvus.types import Page, PageHit

__all__ = ["RESERVED_METADATA_KEYS", "hit_to_node", "page_to_image_document"]

logger = logging.getLogger(__name__)

#: The page id plus the names of ImageNode's image fields: set by the adapter only, never from metadata.
RESERVED_METADATA_KEYS = frozenset({"page_id", "image", "image_path", "image_mimetype", "image_url"})

# Ids and paths say nothing to an LLM: keep them out of the prompt's metadata header.
_HIDDEN_FROM_LLM = ["doc_id", "page_id", "image_path"]


def hit_to_node(hit: PageHit, *, include_image: bool = True) -> NodeWithScore:
    """A search hit as an ``ImageNode`` holding its stored page image, or a ``TextNode`` if it has none.

    ``include_image=False`` leaves the base64 out; the node still points at the image file.
    """
    fields: dict[str, Any] = {
        "id_": hit.page_id,
        "text": hit.text,
        "metadata": {**_user_metadata(hit.metadata, hit.page_id), "page_id": hit.page_id},
        "excluded_llm_metadata_keys": _HIDDEN_FROM_LLM,
        "excluded_embed_metadata_keys": _HIDDEN_FROM_LLM,
    }
    if hit.image_path is None:
        logger.warning("page %s has no stored image: returned as a text node", hit.page_id)
        return NodeWithScore(node=TextNode(**fields), score=hit.score)
    try:
        image = hit.image_base64() if include_image else None
    except DocumentError as error:  # deleted since the search: the page goes without its image
        logger.warning("page %s: %s; returned as a text node", hit.page_id, error)
        return NodeWithScore(node=TextNode(**fields), score=hit.score)
    node = ImageNode(**fields, image=image, image_path=str(hit.image_path), image_mimetype=hit.image_mime_type)
    return NodeWithScore(node=node, score=hit.score)


def page_to_image_document(page: Page, extra_info: dict[str, Any] | None = None) -> ImageDocument:
    """A rendered page as an ``ImageDocument`` carrying its PNG (what ``ColPaliPDFReader`` yields)."""
    buffer = io.BytesIO()
    page.image.save(buffer, format="PNG")
    metadata = {**(extra_info or {}), **_user_metadata(page.store_metadata(), page.page_id), "page_id": page.page_id}
    return ImageDocument(
        id_=page.page_id,
        text=page.text,
        image=base64.b64encode(buffer.getvalue()).decode("ascii"),
        image_mimetype="image/png",
        metadata=metadata,
        excluded_llm_metadata_keys=_HIDDEN_FROM_LLM,
        excluded_embed_metadata_keys=_HIDDEN_FROM_LLM,
    )


def _user_metadata(metadata: Mapping[str, Any], page_id: str) -> dict[str, Any]:
    dropped = sorted(RESERVED_METADATA_KEYS.intersection(metadata))
    if dropped:
        logger.debug("page %s: dropped metadata keys reserved for the adapter: %s", page_id, dropped)
    return {key: value for key, value in metadata.items() if key not in RESERVED_METADATA_KEYS}
