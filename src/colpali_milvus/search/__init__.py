"""Search math: candidate gathering from ANN hits and exact MaxSim reranking (numpy only)."""

from colpali_milvus.search.candidates import rank_candidates
from colpali_milvus.search.maxsim import maxsim, maxsim_flat

__all__ = ["maxsim", "maxsim_flat", "rank_candidates"]
