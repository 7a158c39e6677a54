"""Pages and hits as LlamaIndex ``ImageNode`` / ``ImageDocument`` objects."""

from __future__ import annotations

import base64
import io
from typing import Any

from llama_index.core.schema import ImageDocument, ImageNode, NodeWithScore

from colpali_milvus.types import Page, PageHit

__all__ = ["hit_to_node", "page_to_image_document"]

# Ids and paths say nothing to an LLM: keep them out of the prompt's metadata header.
_HIDDEN_FROM_LLM = ["doc_id", "page_id", "image_path"]


def hit_to_node(hit: PageHit, *, include_image: bool = True) -> NodeWithScore:
    metadata: dict[str, Any] = {**hit.metadata, "page_id": hit.page_id}
    image_fields: dict[str, Any] = {}
    if hit.image_path is not None:
        image_fields = {"image_path": str(hit.image_path), "image_mimetype": hit.image_mime_type}
        if include_image:
            image_fields["image"] = hit.image_base64()
    node = ImageNode(
        id_=hit.page_id,
        text=hit.text,
        metadata=metadata,
        excluded_llm_metadata_keys=_HIDDEN_FROM_LLM,
        excluded_embed_metadata_keys=_HIDDEN_FROM_LLM,
        **image_fields,
    )
    return NodeWithScore(node=node, score=hit.score)


def page_to_image_document(page: Page, extra_info: dict[str, Any] | None = None) -> ImageDocument:
    buffer = io.BytesIO()
    page.image.save(buffer, format="PNG")
    metadata = {**(extra_info or {}), **page.store_metadata(), "page_id": page.page_id}
    return ImageDocument(
        id_=page.page_id,
        text=page.text,
        image=base64.b64encode(buffer.getvalue()).decode("ascii"),
        image_mimetype="image/png",
        metadata=metadata,
        excluded_llm_metadata_keys=_HIDDEN_FROM_LLM,
        excluded_embed_metadata_keys=_HIDDEN_FROM_LLM,
    )
