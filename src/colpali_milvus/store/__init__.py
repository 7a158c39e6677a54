"""Milvus storage of page multi-vectors (the only package that imports pymilvus)."""

from colpali_milvus.store.filters import compile_filter
from colpali_milvus.store.milvus import MilvusMultiVectorStore, StoreInfo
from colpali_milvus.store.schema import SCHEMA_VERSION, IndexConfig

__all__ = ["SCHEMA_VERSION", "IndexConfig", "MilvusMultiVectorStore", "StoreInfo", "compile_filter"]
