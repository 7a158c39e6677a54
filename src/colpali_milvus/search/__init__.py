"""Search math: candidate gathering from ANN hits and exact MaxSim reranking (numpy only)."""

from colpali_milvus.search.candidates import rank_candidates
from colpali_milvus.search.maxsim import maxsim, maxsim_flat, page_offsets
from colpali_milvus.search.pooling import pool_page

__all__ = ["maxsim", "maxsim_flat", "page_offsets", "pool_page", "rank_candidates"]
