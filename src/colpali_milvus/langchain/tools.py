"""A page-search tool for LangChain agents: short text for the model, the page images as the artifact.

The tool uses ``response_format="content_and_artifact"``. Invoked with a tool call (as agents do),
it returns a ``ToolMessage`` whose ``content`` is a few lines of text (per page: source, page
label, score and a short snippet of the text layer, a few hundred characters) and whose
``artifact`` is the list of page ``Document``s with their images. Nothing of the artifact is sent
to the model; :func:`page_images_message` turns it into one ``HumanMessage`` of image content
blocks for the model's next turn.

Why not image blocks inside the ``ToolMessage`` itself: langchain-core 1.x accepts them there,
but providers differ. OpenAI's Chat Completions API takes only text in a tool message (images are
refused), other integrations drop them; a human message with image blocks is read by every
vision chat model. So an agent loop reads::

    model = chat_model.bind_tools([tool])
    messages = [HumanMessage("Where is the revenue table?")]
    while (reply := model.invoke(messages)).tool_calls:
        results = [tool.invoke(call) for call in reply.tool_calls]  # ToolMessages
        messages += [reply, *results]
        if (pages := page_images_message(results)) is not None:
            messages.append(pages)  # the model sees the pages on its next turn
    print(reply.content)
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from langchain_core.callbacks import Callbacks
from langchain_core.documents import Document
from langchain_core.messages import BaseMessage, HumanMessage, ToolMessage
from langchain_core.tools import StructuredTool
from pydantic import BaseModel, Field

from colpali_milvus.errors import InvalidInputError
from colpali_milvus.index import ColPaliIndex
from colpali_milvus.langchain.messages import page_blocks
from colpali_milvus.langchain.retriever import ColPaliRetriever
from colpali_milvus.tool_text import (
    DEFAULT_SNIPPET_CHARS,
    DEFAULT_TOOL_DESCRIPTION,
    DEFAULT_TOOL_NAME,
    QUERY_DESCRIPTION,
    check_snippet_chars,
    one_line,
    summarize_results,
)

__all__ = [
    "DEFAULT_TOOL_DESCRIPTION",
    "DEFAULT_TOOL_NAME",
    "create_page_search_tool",
    "page_images_message",
    "summarize_pages",
]

logger = logging.getLogger(__name__)


class PageSearchInput(BaseModel):
    """What the model passes to the page-search tool."""

    query: str = Field(description=QUERY_DESCRIPTION)


def create_page_search_tool(
    retriever: ColPaliRetriever | ColPaliIndex,
    *,
    name: str = DEFAULT_TOOL_NAME,
    description: str = DEFAULT_TOOL_DESCRIPTION,
    k: int | None = None,
    filter: dict[str, Any] | None = None,
    snippet_chars: int = DEFAULT_SNIPPET_CHARS,
) -> StructuredTool:
    """A tool that searches pages and returns short text plus the page Documents as its artifact.

    Args:
        retriever: a :class:`ColPaliRetriever` (its ``k``, ``filter`` and ``include_images`` apply)
            or a :class:`ColPaliIndex` (wrapped in a retriever).
        name, description: what the model sees of the tool.
        k: pages per call (default: the retriever's ``k``).
        filter: a structured filter for every call (default: the retriever's ``filter``).
        snippet_chars: at most this many characters of each page's text layer in the content.
    """
    if isinstance(retriever, ColPaliIndex):
        retriever = ColPaliRetriever(index=retriever)
    if not isinstance(retriever, ColPaliRetriever):
        raise InvalidInputError(f"expected a ColPaliRetriever or a ColPaliIndex, got {type(retriever).__name__}")
    if k is not None and (isinstance(k, bool) or not isinstance(k, int) or k <= 0):
        raise InvalidInputError(f"k must be a positive integer, got {k!r}")
    check_snippet_chars(snippet_chars)
    search = retriever

    def run(query: str, callbacks: Callbacks = None) -> tuple[str, list[Document]]:
        documents = search.invoke(query, config={"callbacks": callbacks}, k=k, filter=filter)
        return summarize_pages(query, documents, snippet_chars=snippet_chars), documents

    async def arun(query: str, callbacks: Callbacks = None) -> tuple[str, list[Document]]:
        documents = await search.ainvoke(query, config={"callbacks": callbacks}, k=k, filter=filter)
        return summarize_pages(query, documents, snippet_chars=snippet_chars), documents

    return StructuredTool(
        name=name,
        description=description,
        func=run,
        coroutine=arun,
        args_schema=PageSearchInput,
        response_format="content_and_artifact",
    )


def summarize_pages(query: str, documents: Sequence[Document], *, snippet_chars: int = DEFAULT_SNIPPET_CHARS) -> str:
    """The tool's text content: one short line per page (source, page label, score, snippet)."""
    results = [(document.metadata, _score(document.metadata), document.page_content) for document in documents]
    return summarize_results(results, snippet_chars=snippet_chars, query=query)


def page_images_message(
    tool_messages: ToolMessage | Iterable[BaseMessage],
    *,
    include_text: bool = False,
    max_text_chars: int = 4000,
) -> HumanMessage | None:
    """One human message with the page images of page-search tool results, for the model's next turn.

    Takes the ``ToolMessage``(s) of :func:`create_page_search_tool` (other messages are skipped)
    and returns a caption and an image content block per page (plus the text layer with
    ``include_text``), or ``None`` when they hold no page image (no page found, other tools).
    Pages retrieved with ``include_images=False`` are read from their stored image file (see
    :func:`~colpali_milvus.langchain.image_block`); pages whose image is missing are left out.
    """
    messages = [tool_messages] if isinstance(tool_messages, ToolMessage) else list(tool_messages)
    shown: list[dict[str, Any]] = []
    seen: set[str] = set()
    for message in messages:
        if not isinstance(message, ToolMessage) or not isinstance(message.artifact, list):
            continue
        for document in message.artifact:
            if not isinstance(document, Document) or (document.id is not None and document.id in seen):
                continue
            try:
                shown += page_blocks([document], include_text=include_text, max_text_chars=max_text_chars)
            except InvalidInputError as error:  # its image is missing: the page is left out
                logger.debug("page %s not shown: %s", document.id, error)
                continue
            if document.id is not None:
                seen.add(document.id)
    if not shown:
        return None
    names = sorted(
        {one_line(message.name) for message in messages if isinstance(message, ToolMessage) and message.name}
    )
    intro = f"The pages found by {', '.join(names) or 'the page search'}, as images:"
    return HumanMessage(content=[{"type": "text", "text": intro}, *shown])


def _score(metadata: Mapping[str, Any]) -> float | None:
    score = metadata.get("score")
    return score if isinstance(score, int | float) else None
