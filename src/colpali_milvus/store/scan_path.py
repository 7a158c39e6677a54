"""The packed layout's search path when nothing is held (``cache=False`` on Milvus Lite): read and score every page.

A packed collection has no per-vector rows to run an ANN over, so a search reads every matching
page's packed rows from Milvus, a window at a time, and scores each by exact MaxSim: exact, with no
copy held between searches, and as slow as reading the collection (Milvus Lite already holds its
rows in this process's memory, so ``cache=False`` saves little there; the cached path is the default).
"""

from __future__ import annotations

import heapq

import numpy as np
import numpy.typing as npt

from colpali_milvus.search.maxsim import maxsim_each
from colpali_milvus.store import reads
from colpali_milvus.store.collections import CollectionNames
from colpali_milvus.store.connection import MilvusConnection
from colpali_milvus.store.packed import scan_packed
from colpali_milvus.store.search_path import RankedPages, ReadsFromMilvus

__all__ = ["PackedScanPath"]

FloatArray = npt.NDArray[np.float32]


class PackedScanPath(ReadsFromMilvus):
    """Every matching page read from the packed rows and scored exactly, at every search."""

    name = "scan"

    def __init__(self, connection: MilvusConnection, names: CollectionNames, *, dim: int) -> None:
        self._connection = connection
        self._names = names
        self._dim = dim

    def ranked(self, query: FloatArray, k: int, where: str) -> RankedPages:
        rows = reads.page_rows(self._connection, self._names) if not where else None
        if rows is None:
            allowed = reads.page_ids(self._connection, self._names, where)
            rows = reads.page_rows(self._connection, self._names, allowed)
        best: list[tuple[float, str]] = []  # min-heap of the k best (score, page id) so far
        for pages, _ in scan_packed(self._connection, self._names, rows, self._dim):
            page_ids = list(pages)
            for page_id, score in zip(page_ids, maxsim_each(query, [pages[p] for p in page_ids]).tolist(), strict=True):
                entry = (float(score), page_id)
                if len(best) < k:
                    heapq.heappush(best, entry)
                elif entry > best[0]:
                    heapq.heapreplace(best, entry)
        ranked = sorted(best, key=lambda entry: (-entry[0], entry[1]))
        return RankedPages(
            [page_id for _, page_id in ranked], [score for score, _ in ranked], [rows[p] for _, p in ranked]
        )
