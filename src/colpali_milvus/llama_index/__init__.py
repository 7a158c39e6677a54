"""LlamaIndex adapter: a retriever of page ``ImageNode``s and a PDF reader of page ``ImageDocument``s.

Needs ``llama-index-core`` (``pip install "colpali-milvus[llama-index]"``).
"""

from colpali_milvus._deps import require

require("llama_index.core", extra="llama-index", package="llama-index-core")

from colpali_milvus.llama_index.filters import to_filter  # noqa: E402
from colpali_milvus.llama_index.reader import ColPaliPDFReader  # noqa: E402
from colpali_milvus.llama_index.retriever import ColPaliRetriever  # noqa: E402

__all__ = ["ColPaliPDFReader", "ColPaliRetriever", "to_filter"]
