"""Retrieved pages as image content blocks of a chat message, for a vision chat model.

In an LCEL chain::

    chain = (
        {"docs": retriever, "question": RunnablePassthrough()}
        | RunnableLambda(lambda x: [pages_to_message(x["question"], x["docs"])])
        | chat_model
    )
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from typing import Any

from langchain_core.documents import Document
from langchain_core.messages import HumanMessage

from colpali_milvus.errors import InvalidInputError
from colpali_milvus.tool_text import page_caption, safe_text, stored_page_image

__all__ = ["DEFAULT_INSTRUCTION", "image_block", "page_blocks", "pages_to_message"]

DEFAULT_INSTRUCTION = (
    "Answer the question using only the document pages shown below. Cite the source file and page label you used."
)


def image_block(document: Document) -> dict[str, Any]:
    """A LangChain standard image content block holding the document's page image.

    The image is the document's ``image_base64``; a page retrieved with ``include_images=False``
    has only its ``image_path``, and the image is read from that stored file (only the page's own
    file in an image folder, see :func:`~colpali_milvus.tool_text.stored_page_image`). Raises
    :class:`InvalidInputError` for a document with neither, as for a page whose stored image is
    missing (stored metadata never stands in for it, see
    :data:`~colpali_milvus.langchain.documents.RESERVED_METADATA_KEYS`).
    """
    data = document.metadata.get("image_base64")
    if isinstance(data, str) and data:
        mime_type = document.metadata.get("image_mime_type") or "image/png"
        return {"type": "image", "base64": data, "mime_type": mime_type}
    stored = stored_page_image(document.id, document.metadata.get("image_path"))
    if stored is None:
        raise InvalidInputError(f"document {document.id!r} carries no page image (its page has no stored image)")
    return {"type": "image", "base64": base64.b64encode(stored).decode("ascii"), "mime_type": "image/png"}


def pages_to_message(
    question: str,
    documents: Sequence[Document],
    *,
    instruction: str = DEFAULT_INSTRUCTION,
    include_text: bool = False,
    max_text_chars: int = 4000,
) -> HumanMessage:
    """One human message: the instruction, then each page's caption and image, then the question.

    With ``include_text`` each page's text layer (``page_content``, up to ``max_text_chars``) goes
    next to its image: exact figures and names for the model to quote, the image for layout,
    charts and scans (pages without a text layer simply have none).
    """
    content: list[dict[str, Any]] = [{"type": "text", "text": instruction}]
    content += page_blocks(documents, include_text=include_text, max_text_chars=max_text_chars)
    content.append({"type": "text", "text": f"Question: {question}"})
    return HumanMessage(content=content)  # type: ignore[arg-type]


def page_blocks(
    documents: Sequence[Document], *, include_text: bool = False, max_text_chars: int = 4000
) -> list[dict[str, Any]]:
    """Per page: a ``[source, page label]`` caption, its text layer (with ``include_text``), its image.

    The caption's source and label are kept on one line (see :func:`~colpali_milvus.tool_text.one_line`)
    and the text layer loses its control characters but newlines and tabs, so no page's file name or
    label can add a caption line of its own.
    """
    content: list[dict[str, Any]] = []
    for document in documents:
        content.append({"type": "text", "text": page_caption(document.metadata)})
        text = safe_text(document.page_content).strip()
        if include_text and text:
            clipped = text if len(text) <= max_text_chars else text[:max_text_chars] + " [...]"
            content.append({"type": "text", "text": f"Text layer of this page:\n{clipped}"})
        content.append(image_block(document))
    return content
