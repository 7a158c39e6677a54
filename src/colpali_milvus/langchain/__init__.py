"""LangChain adapter: a retriever, an agent tool, a PDF page loader, ``add_documents`` and vision message helpers.

Needs ``langchain-core`` (``pip install "colpali-milvus[langchain]"``).
"""

from colpali_milvus._deps import require

require("langchain_core", extra="langchain", package="langchain-core")

from colpali_milvus.langchain.documents import hit_to_document, page_to_document  # noqa: E402
from colpali_milvus.langchain.ingest import add_documents, document_to_page  # noqa: E402
from colpali_milvus.langchain.loader import ColPaliPDFLoader  # noqa: E402
from colpali_milvus.langchain.messages import image_block, pages_to_message  # noqa: E402
from colpali_milvus.langchain.retriever import ColPaliRetriever  # noqa: E402
from colpali_milvus.langchain.tools import create_page_search_tool, page_images_message  # noqa: E402

__all__ = [
    "ColPaliPDFLoader",
    "ColPaliRetriever",
    "add_documents",
    "create_page_search_tool",
    "document_to_page",
    "hit_to_document",
    "image_block",
    "page_images_message",
    "page_to_document",
    "pages_to_message",
]
