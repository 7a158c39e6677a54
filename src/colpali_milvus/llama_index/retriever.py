"""ColPaliRetriever for LlamaIndex: a real ``BaseRetriever`` returning page ``ImageNode``s."""

from __future__ import annotations

import asyncio
from typing import Any

from llama_index.core.base.base_retriever import BaseRetriever
from llama_index.core.callbacks import CallbackManager
from llama_index.core.schema import NodeWithScore, QueryBundle
from llama_index.core.vector_stores.types import MetadataFilters

from colpali_milvus.errors import InvalidInputError
from colpali_milvus.index import ColPaliIndex
from colpali_milvus.llama_index.filters import to_filter
from colpali_milvus.llama_index.nodes import hit_to_node

__all__ = ["ColPaliRetriever"]


class ColPaliRetriever(BaseRetriever):
    """Retrieves PDF pages by how they look, as ``NodeWithScore(ImageNode)``.

    Each node carries the page image (base64 + mimetype, and ``image_path``), the page text as
    ``text``, and ``source`` / ``page`` / ``page_label`` / the user's keys as metadata.
    :func:`~colpali_milvus.llama_index.create_query_engine` hands every retrieved page to a
    multimodal LLM in one call (``RetrieverQueryEngine.from_args(..., multimodal=True)`` splits
    pages across calls or drops them once they exceed LlamaIndex's token budget; see
    :mod:`colpali_milvus.llama_index.engine`). A page whose stored image is missing comes back as
    a ``TextNode`` (see :func:`~colpali_milvus.llama_index.nodes.hit_to_node`).

    ``filters`` (``MetadataFilters``) supports the operators ``EQ`` (the default), ``NE``,
    ``GT``, ``GTE``, ``LT``, ``LTE``, ``IN`` and ``NIN`` on ``source``, ``page``,
    ``page_label``, ``doc_id`` and your own metadata keys, combined with ``condition=AND`` (the
    default) or ``OR``, and nested (a ``MetadataFilters`` inside ``filters``). Any other operator
    (``TEXT_MATCH``, ``CONTAINS``, ``ANY``, ``ALL``, ``IS_EMPTY``, ...) or the ``NOT`` condition
    raises :class:`~colpali_milvus.errors.FilterError` rather than being ignored.
    """

    def __init__(
        self,
        index: ColPaliIndex,
        similarity_top_k: int = 4,
        filters: MetadataFilters | None = None,
        *,
        include_images: bool = True,
        callback_manager: CallbackManager | None = None,
        **kwargs: Any,
    ) -> None:
        if similarity_top_k <= 0:
            raise InvalidInputError(f"similarity_top_k must be positive, got {similarity_top_k}")
        self.index = index
        self.similarity_top_k = similarity_top_k
        self.filters = filters
        self.include_images = include_images
        super().__init__(callback_manager=callback_manager, **kwargs)

    def _retrieve(self, query_bundle: QueryBundle) -> list[NodeWithScore]:
        hits = self.index.search(query_bundle.query_str, k=self.similarity_top_k, filter=to_filter(self.filters))
        return [hit_to_node(hit, include_image=self.include_images) for hit in hits]

    async def _aretrieve(self, query_bundle: QueryBundle) -> list[NodeWithScore]:
        # Embedding and Milvus calls block: keep them off the event loop.
        return await asyncio.to_thread(self._retrieve, query_bundle)
