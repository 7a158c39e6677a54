"""An in-process copy of the committed pages: their vectors, rows and pooled centroids.

Milvus stays the source of truth; this cache is derived from it (filled as pages are added, or read
back from Milvus once) so that a search touches no Milvus request at all: candidates come from MaxSim
against each page's centroids, and candidates are scored exactly on their cached vectors. With the
cache, search cost no longer depends on a Milvus round trip, which on Milvus Lite (a pure-Python
engine) costs 0.3 s per ANN request and over a second per fetch of a few pages' vectors.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from colpali_milvus.search.maxsim import maxsim_flat, page_offsets
from colpali_milvus.search.pooling import DEFAULT_CENTROIDS, pool_page

__all__ = ["PageVectorCache"]

FloatArray = npt.NDArray[np.float32]


class PageVectorCache:
    """Committed pages by id: ``(n_i, dim)`` vectors, their page row, and ``(c_i, dim)`` centroids.

    Thread-safe: writers take a lock; readers work on immutable snapshots of the centroid matrix.
    """

    def __init__(self, dim: int, *, n_centroids: int = DEFAULT_CENTROIDS) -> None:
        self.dim = dim
        self.n_centroids = n_centroids
        self._vectors: dict[str, FloatArray] = {}
        self._centroids: dict[str, FloatArray] = {}
        self._rows: dict[str, Mapping[str, Any]] = {}
        self._lock = threading.Lock()
        self._snapshot: tuple[list[str], FloatArray, npt.NDArray[np.int64]] | None = None
        self.version = 0  # bumped by every change; tells a saved file whether it is current

    def __len__(self) -> int:
        return len(self._vectors)

    def __contains__(self, page_id: object) -> bool:
        return page_id in self._vectors

    @property
    def nbytes(self) -> int:
        return sum(v.nbytes for v in self._vectors.values()) + sum(c.nbytes for c in self._centroids.values())

    def put(self, page_id: str, vectors: FloatArray, row: Mapping[str, Any]) -> None:
        centroids = pool_page(vectors, self.n_centroids)
        with self._lock:
            self._vectors[page_id] = np.ascontiguousarray(vectors, dtype=np.float32)
            self._centroids[page_id] = centroids
            self._rows[page_id] = row
            self._snapshot = None
            self.version += 1

    def remove(self, page_ids: Iterable[str]) -> None:
        with self._lock:
            for page_id in page_ids:
                self._vectors.pop(page_id, None)
                self._centroids.pop(page_id, None)
                self._rows.pop(page_id, None)
            self._snapshot = None
            self.version += 1

    def row(self, page_id: str) -> Mapping[str, Any]:
        return self._rows[page_id]

    def vectors(self, page_id: str) -> FloatArray:
        return self._vectors[page_id]

    def candidates(self, query: FloatArray, limit: int, allowed: set[str] | None = None) -> list[str]:
        """The ``limit`` pages with the highest MaxSim of ``query`` against their centroids."""
        ids, centroids, offsets = self._centroid_matrix()
        if not ids or limit <= 0:
            return []
        scores = maxsim_flat(query, centroids, offsets)  # (n_pages,)
        if allowed is not None:
            scores[[page_id not in allowed for page_id in ids]] = -np.inf
        limit = min(limit, len(ids))
        top = np.argpartition(-scores, limit - 1)[:limit]
        top = top[np.argsort(-scores[top], kind="stable")]
        return [ids[i] for i in top if np.isfinite(scores[i])]

    def gather(self, page_ids: Sequence[str]) -> tuple[list[str], FloatArray, npt.NDArray[np.int64]]:
        """The cached pages among ``page_ids``, back to back: ``(ids, (rows, dim), offsets)``."""
        found = [page_id for page_id in page_ids if page_id in self._vectors]
        blocks = [self._vectors[page_id] for page_id in found]
        if not blocks:
            return [], np.empty((0, self.dim), np.float32), np.empty(0, np.int64)
        return found, np.concatenate(blocks), page_offsets(blocks)

    def save(self, path: Path) -> None:
        """Write the vectors and centroids to ``path`` (``.npz``, atomically) for a fast reopen."""
        with self._lock:
            ids = list(self._vectors)
            vectors = [self._vectors[page_id] for page_id in ids]
            centroids = [self._centroids[page_id] for page_id in ids]
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_name(f".{path.name}.tmp")
        with temporary.open("wb") as file:
            np.savez(
                file,
                page_ids=np.array(ids, dtype=str),
                vectors=np.concatenate(vectors) if vectors else np.empty((0, self.dim), np.float32),
                vector_counts=np.array([v.shape[0] for v in vectors], dtype=np.int64),
                centroids=np.concatenate(centroids) if centroids else np.empty((0, self.dim), np.float32),
                centroid_counts=np.array([c.shape[0] for c in centroids], dtype=np.int64),
            )
        os.replace(temporary, path)

    def load(self, path: Path, rows: Mapping[str, Mapping[str, Any]]) -> bool:
        """Fill from a file written by :meth:`save`, only if it holds exactly the pages in ``rows``.

        ``rows`` are the committed page rows read from Milvus, the source of truth: a file that
        disagrees in any page id or vector count (written before a crash, say) is ignored.
        """
        try:
            with np.load(path) as data:
                ids = [str(page_id) for page_id in data["page_ids"]]
                counts = data["vector_counts"]
                if set(ids) != set(rows) or any(
                    int(rows[page_id]["n_vectors"]) != int(n) for page_id, n in zip(ids, counts, strict=True)
                ):
                    return False
                vectors = np.split(data["vectors"], np.cumsum(counts)[:-1])
                centroids = np.split(data["centroids"], np.cumsum(data["centroid_counts"])[:-1])
        except (OSError, ValueError, KeyError):
            return False
        with self._lock:
            for page_id, page_vectors, page_centroids in zip(ids, vectors, centroids, strict=True):
                self._vectors[page_id] = page_vectors
                self._centroids[page_id] = page_centroids
                self._rows[page_id] = rows[page_id]
            self._snapshot = None
        return True

    def _centroid_matrix(self) -> tuple[list[str], FloatArray, npt.NDArray[np.int64]]:
        snapshot = self._snapshot
        if snapshot is None:
            with self._lock:
                ids = list(self._centroids)
                blocks = [self._centroids[page_id] for page_id in ids]
                if blocks:
                    snapshot = (ids, np.concatenate(blocks), page_offsets(blocks))
                else:
                    snapshot = ([], np.empty((0, self.dim), np.float32), np.empty(0, np.int64))
                self._snapshot = snapshot
        return snapshot
