"""LlamaIndex adapter: a page retriever, a query engine, an agent tool, a PDF reader and ``add_documents``.

Needs ``llama-index-core`` (``pip install "colpali-milvus[llama-index]"``).
"""

from colpali_milvus._deps import require

require("llama_index.core", extra="llama-index", package="llama-index-core")

from colpali_milvus.llama_index.engine import PageSynthesizer, create_query_engine  # noqa: E402
from colpali_milvus.llama_index.filters import to_filter  # noqa: E402
from colpali_milvus.llama_index.ingest import add_documents, node_to_page  # noqa: E402
from colpali_milvus.llama_index.reader import ColPaliPDFReader  # noqa: E402
from colpali_milvus.llama_index.retriever import ColPaliRetriever  # noqa: E402
from colpali_milvus.llama_index.tools import (  # noqa: E402
    PageSearchTool,
    create_page_search_tool,
    page_images_message,
)

__all__ = [
    "ColPaliPDFReader",
    "ColPaliRetriever",
    "PageSearchTool",
    "PageSynthesizer",
    "add_documents",
    "create_page_search_tool",
    "create_query_engine",
    "node_to_page",
    "page_images_message",
    "to_filter",
]
