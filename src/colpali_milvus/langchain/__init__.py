"""LangChain adapter: a retriever, a PDF page loader and helpers for vision chat messages.

Needs ``langchain-core`` (``pip install "colpali-milvus[langchain]"``).
"""

from colpali_milvus._deps import require

require("langchain_core", extra="langchain", package="langchain-core")

from colpali_milvus.langchain.documents import hit_to_document, page_to_document  # noqa: E402
from colpali_milvus.langchain.loader import ColPaliPDFLoader  # noqa: E402
from colpali_milvus.langchain.messages import image_block, pages_to_message  # noqa: E402
from colpali_milvus.langchain.retriever import ColPaliRetriever  # noqa: E402

__all__ = [
    "ColPaliPDFLoader",
    "ColPaliRetriever",
    "hit_to_document",
    "image_block",
    "page_to_document",
    "pages_to_message",
]
