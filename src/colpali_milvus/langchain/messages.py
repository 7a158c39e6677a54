"""Retrieved pages as image content blocks of a chat message, for a vision chat model.

In an LCEL chain::

    chain = (
        {"docs": retriever, "question": RunnablePassthrough()}
        | RunnableLambda(lambda x: [pages_to_message(x["question"], x["docs"])])
        | chat_model
    )
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from langchain_core.documents import Document
from langchain_core.messages import HumanMessage

from colpali_milvus.errors import InvalidInputError

__all__ = ["DEFAULT_INSTRUCTION", "image_block", "pages_to_message"]

DEFAULT_INSTRUCTION = (
    "Answer the question using only the document pages shown below. Cite the source file and page label you used."
)


def image_block(document: Document) -> dict[str, Any]:
    """A LangChain standard image content block holding the document's page image."""
    data = document.metadata.get("image_base64")
    if not data:
        raise InvalidInputError(f"document {document.id!r} carries no page image (retrieve with include_images=True)")
    return {"type": "image", "base64": data, "mime_type": document.metadata.get("image_mime_type", "image/png")}


def pages_to_message(
    question: str,
    documents: Sequence[Document],
    *,
    instruction: str = DEFAULT_INSTRUCTION,
) -> HumanMessage:
    """One human message: the instruction, then each page's caption and image, then the question."""
    content: list[dict[str, Any]] = [{"type": "text", "text": instruction}]
    for document in documents:
        source = document.metadata.get("source", "")
        label = document.metadata.get("page_label", document.metadata.get("page", ""))
        content.append({"type": "text", "text": f"[{source}, page {label}]"})
        content.append(image_block(document))
    content.append({"type": "text", "text": f"Question: {question}"})
    return HumanMessage(content=content)  # type: ignore[arg-type]
