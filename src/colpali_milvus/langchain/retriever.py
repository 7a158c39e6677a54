"""ColPaliRetriever for LangChain: a real ``BaseRetriever`` over a :class:`ColPaliIndex`."""

from __future__ import annotations

import asyncio
from typing import Any

from langchain_core.callbacks import AsyncCallbackManagerForRetrieverRun, CallbackManagerForRetrieverRun
from langchain_core.documents import Document
from langchain_core.retrievers import BaseRetriever
from langchain_core.tools import BaseTool
from pydantic import BaseModel, ConfigDict, Field

from colpali_milvus.index import ColPaliIndex
from colpali_milvus.langchain.documents import hit_to_document

__all__ = ["ColPaliRetriever"]


class ColPaliRetriever(BaseRetriever):
    """Retrieves PDF pages by how they look; each ``Document`` is one page.

    ``page_content`` is the page's text layer (may be empty); ``metadata`` holds ``source``,
    ``page``, ``page_label``, ``score``, ``page_id``, the user's own keys and, unless
    ``include_images=False``, the page image as ``image_base64`` + ``image_mime_type``.

    ``k`` and ``filter`` can also be given per call: ``retriever.invoke(q, k=2, filter={...})``.
    For an agent, :meth:`as_tool` gives the page-search tool (short text + page images as artifact).
    """

    model_config = ConfigDict(arbitrary_types_allowed=True)

    index: ColPaliIndex
    k: int = Field(default=4, gt=0)
    filter: dict[str, Any] | None = None
    include_images: bool = True

    def _get_relevant_documents(
        self,
        query: str,
        *,
        run_manager: CallbackManagerForRetrieverRun,
        k: int | None = None,
        filter: dict[str, Any] | None = None,
    ) -> list[Document]:
        hits = self.index.search(
            query,
            k=self.k if k is None else k,
            filter=self.filter if filter is None else filter,
        )
        return [hit_to_document(hit, include_image=self.include_images) for hit in hits]

    async def _aget_relevant_documents(
        self,
        query: str,
        *,
        run_manager: AsyncCallbackManagerForRetrieverRun,
        k: int | None = None,
        filter: dict[str, Any] | None = None,
    ) -> list[Document]:
        # Embedding and Milvus calls block: run them in a worker thread, not on the event loop.
        return await asyncio.to_thread(
            self._get_relevant_documents, query, run_manager=run_manager.get_sync(), k=k, filter=filter
        )

    def as_tool(
        self,
        args_schema: type[BaseModel] | None = None,
        *,
        name: str | None = None,
        description: str | None = None,
        arg_types: dict[str, type] | None = None,
    ) -> BaseTool:
        """The page-search tool of :func:`~colpali_milvus.langchain.create_page_search_tool`.

        Its ``ToolMessage`` holds a few lines of text per page; the page Documents (with their
        images) are its ``artifact``, for :func:`~colpali_milvus.langchain.page_images_message`.
        (``Runnable.as_tool`` would put every page's base64 image into the message text: about
        1 MB for three pages.) With ``args_schema`` or ``arg_types`` the generic runnable tool
        is built instead.
        """
        if args_schema is not None or arg_types is not None:
            return super().as_tool(args_schema, name=name, description=description, arg_types=arg_types)
        from colpali_milvus.langchain.tools import (
            DEFAULT_TOOL_DESCRIPTION,
            DEFAULT_TOOL_NAME,
            create_page_search_tool,
        )

        return create_page_search_tool(
            self, name=name or DEFAULT_TOOL_NAME, description=description or DEFAULT_TOOL_DESCRIPTION
        )
