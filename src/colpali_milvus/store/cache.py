"""An in-process copy of the committed pages (vectors, rows, summaries) and its verified file.

Milvus stays the source of truth; this copy is derived from it, filled as pages are written or read
back once, and searched without any Milvus request. On Milvus Lite (a pure-Python engine: 0.3 s per
ANN request, over a second per fetch of a few pages' vectors) that is the difference between
milliseconds and seconds.

A search scores pages exactly on their cached vectors, in the order of an upper bound of their
MaxSim taken from each query vector's nearest page vectors (:mod:`~colpali_milvus.search.token_index`),
and stops as soon as the top ``k`` is certified (:mod:`~colpali_milvus.search.bounds`). Pages no query
vector reached follow in the order of MaxSim against their centroids, up to a budget.

Every page carries the digest its page row records in Milvus. A saved file is trusted only whole:
its format, dim and centroid count must match, its page ids and digests must equal the committed
ones read from Milvus, and every page's vectors must hash to their digest; anything else (a
truncated, empty, foreign or stale file) is ignored and the copy is rebuilt from Milvus.
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from itertools import zip_longest
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from colpali_milvus.search.bounds import TopK, certified_top_k, hit_bounds
from colpali_milvus.search.maxsim import maxsim_flat, page_offsets
from colpali_milvus.search.pooling import DEFAULT_CENTROIDS, pool_page
from colpali_milvus.search.token_index import TokenIndex
from colpali_milvus.store.rows import vector_digest

__all__ = ["CACHE_FILE_VERSION", "PageVectorCache"]

logger = logging.getLogger(__name__)

FloatArray = npt.NDArray[np.float32]
#: Bumped whenever the file layout or the centroid algorithm changes: older files are rebuilt.
#: 3: the token index is saved with the copy.
CACHE_FILE_VERSION = 3

HITS_PER_QUERY_VECTOR = 128  # nearest page vectors per query vector: the bounds' depth
_SCORE_BATCH = 32  # pages scored exactly per step of a search


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
        self._slots: dict[str, int] = {}  # page id -> its slot in the token index
        self._slot_pages: dict[int, str] = {}
        self._next_slot = 0
        self._n_vectors = 0
        self._tokens = TokenIndex(dim)
        self._lock = threading.Lock()
        self._snapshot: tuple[list[str], FloatArray, npt.NDArray[np.int64]] | None = None
        self.version = 0  # bumped by every change; tells whether the saved file is current

    def __len__(self) -> int:
        return len(self._vectors)

    def __contains__(self, page_id: object) -> bool:
        return page_id in self._vectors

    @property
    def nbytes(self) -> int:
        vectors = sum(v.nbytes for v in self._vectors.values())
        return vectors + sum(c.nbytes for c in self._centroids.values()) + self._tokens.nbytes

    def put(self, page_id: str, vectors: FloatArray, row: Mapping[str, Any]) -> None:
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        centroids = pool_page(vectors, self.n_centroids)
        with self._lock:
            self._drop(page_id)
            slot = self._next_slot
            self._next_slot += 1
            self._vectors[page_id] = vectors
            self._centroids[page_id] = centroids
            self._rows[page_id] = row
            self._slots[page_id], self._slot_pages[slot] = slot, page_id
            self._n_vectors += vectors.shape[0]
            if self._tokens.needs_rebuild(self._n_vectors):
                self._rebuild_tokens()
            else:
                self._tokens.add(slot, vectors)
            self._snapshot = None
            self.version += 1

    def remove(self, page_ids: Iterable[str]) -> None:
        with self._lock:
            for page_id in page_ids:
                self._drop(page_id)
            if self._tokens.needs_rebuild(self._n_vectors):
                self._rebuild_tokens()
            self._snapshot = None
            self.version += 1

    def _drop(self, page_id: str) -> None:
        vectors = self._vectors.pop(page_id, None)
        if vectors is None:
            return
        self._centroids.pop(page_id, None)
        self._rows.pop(page_id, None)
        slot = self._slots.pop(page_id)
        del self._slot_pages[slot]
        self._n_vectors -= vectors.shape[0]
        self._tokens.remove([slot])

    def _rebuild_tokens(self) -> None:
        started = time.perf_counter()
        self._tokens.rebuild([(self._slots[page_id], vectors) for page_id, vectors in self._vectors.items()])
        logger.info("built the token index over %d vectors in %.1f s", self._n_vectors, time.perf_counter() - started)

    def ids(self) -> list[str]:
        with self._lock:
            return list(self._vectors)

    def row(self, page_id: str) -> Mapping[str, Any]:
        return self._rows[page_id]

    def vectors_of(self, page_ids: Iterable[str]) -> dict[str, FloatArray]:
        """The cached pages among ``page_ids``, by id."""
        with self._lock:
            return {page_id: self._vectors[page_id] for page_id in page_ids if page_id in self._vectors}

    def search(self, query: FloatArray, k: int, budget: int, allowed: set[str] | None = None) -> TopK:
        """The top ``k`` pages by exact MaxSim (among ``allowed``), scoring at most ``budget`` pages.

        While the token index is exact (small collections), pages are scored in the order of their
        bound and the search stops as soon as the top ``k`` is certified: the exact top ``k``. Once
        it is an approximate IVF index its bounds are not guaranteed, so they only *order*
        candidates: pages are taken alternately in bound order and in the order of their centroid
        MaxSim (which sees what pages share, where the token hits see single patches), and
        ``budget`` pages are scored.
        """
        with self._lock:  # faiss must not search while a write changes the index
            slots, similarities = self._tokens.search(query, HITS_PER_QUERY_VECTOR)  # (n_q, h) each
            slot_pages = self._slot_pages
            hits = [
                [
                    (page_id, float(similarity))
                    for slot, similarity in zip(row_slots, row_similarities, strict=True)
                    if slot >= 0
                    and (page_id := slot_pages.get(int(slot))) is not None
                    and (allowed is None or page_id in allowed)
                ]
                for row_slots, row_similarities in zip(slots, similarities, strict=True)
            ]
            n_pages = len(self._vectors)
            exact = self._tokens.exact
        if similarities.shape[1] == 0:
            floors = [0.0] * query.shape[0]
        else:
            floors = [float(value) for value in similarities[:, -1]]  # a query vector's last hit
        bounds = hit_bounds(hits, floors)

        def ordered() -> Iterator[tuple[str, float]]:
            if exact:
                yield from ((page_id, bounds.upper[page_id]) for page_id in bounds.order)
                for page_id in self.candidates(query, n_pages, allowed):  # computed only if needed
                    if page_id not in bounds.upper:
                        yield page_id, bounds.floor
                return
            by_centroids = self.candidates(query, budget, allowed)
            for pair in zip_longest(bounds.order, by_centroids):
                for page_id in pair:
                    if page_id is not None:
                        yield page_id, bounds.upper.get(page_id, bounds.floor)

        def score(page_ids: list[str]) -> npt.NDArray[np.float32]:
            found, vectors, offsets, _ = self.gather(page_ids)
            exact = dict(zip(found, maxsim_flat(query, vectors, offsets).tolist(), strict=True))
            return np.array([exact.get(page_id, -np.inf) for page_id in page_ids], dtype=np.float32)

        return certified_top_k(
            ordered(), score, k, budget=budget, batch=_SCORE_BATCH, covers_all=exact, stop_early=exact
        )

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

    def gather(
        self, page_ids: Sequence[str]
    ) -> tuple[list[str], FloatArray, npt.NDArray[np.int64], list[Mapping[str, Any]]]:
        """The cached pages among ``page_ids``, back to back: ``(ids, (rows, dim), offsets, page rows)``."""
        with self._lock:  # one consistent view even while a page is being replaced
            found = [page_id for page_id in page_ids if page_id in self._vectors]
            blocks = [self._vectors[page_id] for page_id in found]
            rows = [self._rows[page_id] for page_id in found]
        if not blocks:
            return [], np.empty((0, self.dim), np.float32), np.empty(0, np.int64), []
        return found, np.concatenate(blocks), page_offsets(blocks), rows

    # -- the saved file ---------------------------------------------------------------------

    def save(self, path: Path) -> None:
        """Write the copy to ``path`` (``.npz``): fsynced, then renamed into place atomically."""
        with self._lock:
            ids = list(self._vectors)
            vectors = [self._vectors[page_id] for page_id in ids]
            centroids = [self._centroids[page_id] for page_id in ids]
            digests = [str(self._rows[page_id]["digest"]) for page_id in ids]
            slots = np.array([self._slots[page_id] for page_id in ids], dtype=np.int64)
            tokens, trained_at = self._tokens.to_bytes(), self._tokens.trained_at
        centroid_matrix = np.concatenate(centroids) if centroids else np.empty((0, self.dim), np.float32)
        centroid_counts = np.array([c.shape[0] for c in centroids], dtype=np.int64)
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        try:
            with temporary.open("wb") as file:
                np.savez(
                    file,
                    format_version=np.array(CACHE_FILE_VERSION),
                    dim=np.array(self.dim),
                    n_centroids=np.array(self.n_centroids),
                    page_ids=np.array(ids, dtype=str),
                    digests=np.array(digests, dtype=str),
                    vectors=np.concatenate(vectors) if vectors else np.empty((0, self.dim), np.float32),
                    vector_counts=np.array([v.shape[0] for v in vectors], dtype=np.int64),
                    centroids=centroid_matrix,
                    centroid_counts=centroid_counts,
                    centroid_digest=np.array(_bytes_digest(centroid_counts, centroid_matrix)),
                    slots=slots,
                    token_index=tokens,
                    token_trained_at=np.array(trained_at),
                    token_digest=np.array(_bytes_digest(slots, tokens)),
                )
                file.flush()
                os.fsync(file.fileno())
            os.replace(temporary, path)
        finally:
            temporary.unlink(missing_ok=True)
        _fsync_folder(path.parent)

    def load(self, path: Path, rows: Mapping[str, Mapping[str, Any]]) -> bool:
        """Fill from a file written by :meth:`save` if it holds exactly the committed pages in ``rows``.

        ``rows`` are the committed page rows read from Milvus. Returns ``False``, changing nothing,
        for any file that is unreadable or disagrees with them in any way.
        """
        try:
            pages = self._read_verified(path, rows)
        except Exception as error:  # a damaged file of any kind only costs a rebuild from Milvus
            logger.warning("ignoring the vector cache file %s (%s: %s)", path, type(error).__name__, error)
            return False
        if pages is None:
            logger.info("ignoring the vector cache file %s: it does not match the collection", path)
            return False
        page_list, tokens = pages
        with self._lock:
            for page_id, slot, page_vectors, page_centroids in page_list:
                self._drop(page_id)
                self._vectors[page_id] = page_vectors
                self._centroids[page_id] = page_centroids
                self._rows[page_id] = rows[page_id]
                self._slots[page_id], self._slot_pages[slot] = slot, page_id
                self._n_vectors += page_vectors.shape[0]
            self._next_slot = max(self._slot_pages, default=-1) + 1
            self._tokens = tokens
            self._snapshot = None
            self.version += 1
        return True

    def _read_verified(
        self, path: Path, rows: Mapping[str, Mapping[str, Any]]
    ) -> tuple[list[tuple[str, int, FloatArray, FloatArray]], TokenIndex] | None:
        with np.load(path, allow_pickle=False) as data:
            if (
                int(data["format_version"]) != CACHE_FILE_VERSION
                or int(data["dim"]) != self.dim
                or int(data["n_centroids"]) != self.n_centroids
            ):
                return None
            ids = [str(page_id) for page_id in data["page_ids"]]
            digests = [str(digest) for digest in data["digests"]]
            counts, centroid_counts = data["vector_counts"], data["centroid_counts"]
            vectors, centroids = data["vectors"], data["centroids"]
            slots, token_bytes = data["slots"], data["token_index"]
            trained_at = int(data["token_trained_at"])
            if (
                slots.dtype != np.int64
                or slots.shape != (len(ids),)
                or len(set(slots.tolist())) != len(ids)
                or np.any(slots < 0)
                or str(data["token_digest"]) != _bytes_digest(slots, token_bytes)
            ):
                return None
            if (
                len(ids) != len(rows)
                or set(ids) != set(rows)
                or not (len(ids) == len(digests) == counts.shape[0] == centroid_counts.shape[0])
                or any(str(rows[page_id].get("digest")) != digest for page_id, digest in zip(ids, digests, strict=True))
                or vectors.dtype != np.float32
                or centroids.dtype != np.float32
                or vectors.shape != (int(counts.sum()), self.dim)
                or centroids.shape != (int(centroid_counts.sum()), self.dim)
                or np.any(counts <= 0)
                or np.any(centroid_counts <= 0)
                or str(data["centroid_digest"]) != _bytes_digest(centroid_counts, centroids)
            ):
                return None
        page_vectors = np.split(vectors, np.cumsum(counts)[:-1])
        if any(vector_digest(block) != digest for block, digest in zip(page_vectors, digests, strict=True)):
            return None
        page_centroids = np.split(centroids, np.cumsum(centroid_counts)[:-1])
        tokens = TokenIndex.from_bytes(token_bytes, self.dim, trained_at)
        if len(tokens) != int(counts.sum()):
            return None
        return list(zip(ids, slots.tolist(), page_vectors, page_centroids, strict=True)), tokens

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


def _bytes_digest(*arrays: npt.NDArray[Any]) -> str:
    digest = hashlib.blake2b(digest_size=16)
    for array in arrays:
        digest.update(np.ascontiguousarray(array).tobytes())
    return digest.hexdigest()


def _fsync_folder(folder: Path) -> None:
    """Make a rename durable (POSIX); a no-op where folders cannot be opened."""
    try:
        descriptor = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(descriptor)
    except OSError:
        pass
    finally:
        os.close(descriptor)
