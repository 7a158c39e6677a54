"""A page-search tool for LlamaIndex agents: short text for the model, the page nodes as ``raw_output``.

``create_page_search_tool(retriever)`` returns a ``FunctionTool``. Its ``ToolOutput`` has one
``TextBlock`` (per page: source, page label, score and a short snippet of the text layer) and the
retrieved ``NodeWithScore(ImageNode)``s as ``raw_output``. :func:`page_images_message` turns that
into a user ``ChatMessage`` of image blocks for the LLM's next turn.

With ``include_images=True`` the page images also travel as ``ImageBlock``s in the tool output,
and so in the tool message a ``FunctionAgent`` writes: for LLM integrations that accept images in
tool results. Off by default because many do not: OpenAI's Chat Completions API takes text only
in a tool message (LlamaIndex's OpenAI integration sends only the message's text there).
"""

from __future__ import annotations

import base64
from collections.abc import Iterable, Sequence
from typing import Any

from llama_index.core.base.llms.types import ChatMessage, ContentBlock, ImageBlock, MessageRole, TextBlock
from llama_index.core.schema import ImageNode, NodeWithScore, QueryBundle
from llama_index.core.tools import FunctionTool, ToolMetadata, ToolOutput
from llama_index.core.vector_stores.types import MetadataFilters
from pydantic import BaseModel, Field

from colpali_milvus.errors import InvalidInputError
from colpali_milvus.index import ColPaliIndex
from colpali_milvus.llama_index.retriever import ColPaliRetriever
from colpali_milvus.tool_text import (
    DEFAULT_SNIPPET_CHARS,
    DEFAULT_TOOL_DESCRIPTION,
    DEFAULT_TOOL_NAME,
    QUERY_DESCRIPTION,
    check_snippet_chars,
    one_line,
    page_caption,
    stored_page_image,
    summarize_results,
)

__all__ = [
    "DEFAULT_TOOL_DESCRIPTION",
    "DEFAULT_TOOL_NAME",
    "PageSearchTool",
    "create_page_search_tool",
    "page_images_message",
    "summarize_nodes",
]


class PageSearchInput(BaseModel):
    """What the model passes to the page-search tool."""

    query: str = Field(description=QUERY_DESCRIPTION)


class PageSearchTool(FunctionTool):
    """A ``FunctionTool`` whose output is a short text block (plus image blocks, if asked) per search.

    ``raw_output`` is the list of ``NodeWithScore``: the page ``ImageNode``s with their images.
    """

    def __init__(
        self, retriever: ColPaliRetriever, metadata: ToolMetadata, *, include_images: bool, snippet_chars: int
    ) -> None:
        self.retriever = retriever
        self.include_images = include_images
        self.snippet_chars = snippet_chars

        def search_pages(query: str) -> list[NodeWithScore]:
            return retriever.retrieve(query)

        async def asearch_pages(query: str) -> list[NodeWithScore]:
            return await retriever.aretrieve(QueryBundle(query))

        super().__init__(fn=search_pages, async_fn=asearch_pages, metadata=metadata)

    def _parse_tool_output(self, raw_output: Any) -> list[ContentBlock]:
        if not (isinstance(raw_output, list) and all(isinstance(item, NodeWithScore) for item in raw_output)):
            return super()._parse_tool_output(raw_output)
        blocks: list[ContentBlock] = [TextBlock(text=summarize_nodes(raw_output, snippet_chars=self.snippet_chars))]
        if self.include_images:
            blocks += _page_blocks(raw_output)
        return blocks


def create_page_search_tool(
    retriever: ColPaliRetriever | ColPaliIndex,
    *,
    name: str = DEFAULT_TOOL_NAME,
    description: str = DEFAULT_TOOL_DESCRIPTION,
    similarity_top_k: int | None = None,
    filters: MetadataFilters | None = None,
    include_images: bool = False,
    snippet_chars: int = DEFAULT_SNIPPET_CHARS,
) -> PageSearchTool:
    """A page-search ``FunctionTool``: short text for the LLM, the page ``ImageNode``s as ``raw_output``.

    Args:
        retriever: a :class:`ColPaliRetriever` or a :class:`ColPaliIndex`.
        name, description: what the LLM sees of the tool.
        similarity_top_k, filters: pages per call and a filter for every call (default: the
            retriever's).
        include_images: also put each page's image into the tool output as an ``ImageBlock``
            (for LLMs that read images in tool results; see the module docs).
        snippet_chars: at most this many characters of each page's text layer in the text.
    """
    if isinstance(retriever, ColPaliIndex):
        retriever = ColPaliRetriever(retriever)
    if not isinstance(retriever, ColPaliRetriever):
        raise InvalidInputError(f"expected a ColPaliRetriever or a ColPaliIndex, got {type(retriever).__name__}")
    check_snippet_chars(snippet_chars)
    if similarity_top_k is not None or filters is not None:
        retriever = ColPaliRetriever(
            retriever.index,
            similarity_top_k=similarity_top_k or retriever.similarity_top_k,
            filters=filters if filters is not None else retriever.filters,
            include_images=retriever.include_images,
            callback_manager=retriever.callback_manager,
        )
    metadata = ToolMetadata(name=name, description=description, fn_schema=PageSearchInput)
    return PageSearchTool(retriever, metadata, include_images=include_images, snippet_chars=snippet_chars)


def summarize_nodes(nodes: Sequence[NodeWithScore], *, snippet_chars: int = DEFAULT_SNIPPET_CHARS) -> str:
    """The tool's text: one short line per page (source, page label, score, snippet)."""
    results = [(result.node.metadata, result.score, result.node.get_content()) for result in nodes]
    return summarize_results(results, snippet_chars=snippet_chars)


def page_images_message(tool_outputs: ToolOutput | Iterable[ToolOutput]) -> ChatMessage | None:
    """A user message with the page images of page-search tool outputs, for the LLM's next turn.

    Per page a ``[source, page label]`` caption and an ``ImageBlock``; ``None`` when the outputs
    hold no page image (nothing found, other tools, pages whose image is missing). Pages retrieved
    with ``include_images=False`` are read from their stored image file.
    """
    outputs = [tool_outputs] if isinstance(tool_outputs, ToolOutput) else list(tool_outputs)
    nodes: list[NodeWithScore] = []
    seen: set[str] = set()
    for output in outputs:
        raw = output.raw_output
        if not isinstance(raw, list):
            continue
        for result in raw:
            if isinstance(result, NodeWithScore) and result.node.node_id not in seen:
                seen.add(result.node.node_id)
                nodes.append(result)
    blocks = _page_blocks(nodes)
    if not blocks:
        return None
    names = sorted({one_line(output.tool_name) for output in outputs if output.tool_name})
    intro = TextBlock(text=f"The pages found by {', '.join(names) or 'the page search'}, as images:")
    return ChatMessage(role=MessageRole.USER, blocks=[intro, *blocks])


def _page_blocks(nodes: Sequence[NodeWithScore]) -> list[ContentBlock]:
    """A caption and an ``ImageBlock`` per page image; nodes without a usable one are skipped.

    The image is the node's ``image``, or for a node retrieved with ``include_images=False`` its
    stored file at ``image_path`` (only the page's own file in an image folder, see
    :func:`~colpali_milvus.tool_text.stored_page_image`); never ``metadata["file_path"]`` or an URL.
    """
    blocks: list[ContentBlock] = []
    for result in nodes:
        node = result.node
        if not isinstance(node, ImageNode):
            continue
        if node.image is not None:
            image: bytes | None = base64.b64decode(node.image)
        else:
            image = stored_page_image(node.node_id, node.image_path)
        if image is None:
            continue
        blocks.append(TextBlock(text=page_caption(node.metadata)))
        blocks.append(ImageBlock(image=image, image_mimetype=node.image_mimetype or "image/png"))
    return blocks
