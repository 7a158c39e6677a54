"""An in-process copy of the committed pages (vectors, rows, int8 codes) and its verified file.

Milvus stays the source of truth; this copy is derived from it, filled as pages are written or read
back once, and searched without any Milvus request. On Milvus Lite (a pure-Python engine: 0.3 s per
ANN request, over a second per fetch of a few pages' vectors) that is the difference between
milliseconds and seconds.

A search scores **every** page on its int8 codes (:mod:`~colpali_milvus.search.code_scan`), each
score with a proven error bound, and rescores pages exactly in bound order until the top ``k`` is
certified (:mod:`~colpali_milvus.search.certify`).

Every page carries the digest its page row records in Milvus. A saved file is trusted only whole:
its format and dim must match, its page ids and digests must equal the committed ones read from
Milvus, and every page's vectors must hash to their digest; anything else (a truncated, empty,
foreign or stale file) is ignored and the copy is rebuilt from Milvus. The codes are not saved:
they are derived again from the verified vectors (~0.6 s per 1,000 ColPali pages).
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from colpali_milvus.search.certify import certified_search
from colpali_milvus.search.code_scan import CodeScan
from colpali_milvus.search.maxsim import maxsim_each
from colpali_milvus.store.rows import vector_digest

__all__ = ["CACHE_FILE_VERSION", "PageVectorCache"]

logger = logging.getLogger(__name__)

FloatArray = npt.NDArray[np.float32]
#: Bumped whenever the file layout changes: older files are rebuilt.
#: 4: vectors and digests only (3 also held centroids and a token index).
CACHE_FILE_VERSION = 4


class PageVectorCache:
    """Committed pages by id: ``(n_i, dim)`` float32 vectors, their page row, and their int8 codes.

    Thread-safe: writers take a lock; a search scans immutable blocks of codes outside it.
    """

    def __init__(self, dim: int) -> None:
        self.dim = dim
        self._vectors: dict[str, FloatArray] = {}
        self._rows: dict[str, Mapping[str, Any]] = {}
        self._codes = CodeScan(dim)
        self._lock = threading.Lock()
        self.version = 0  # bumped by every change; tells whether the saved file is current
        self.last_rescored = 0  # pages the last top_k scored exactly (for benchmarks and logs)

    def __len__(self) -> int:
        return len(self._vectors)

    def __contains__(self, page_id: object) -> bool:
        return page_id in self._vectors

    @property
    def nbytes(self) -> int:
        return sum(v.nbytes for v in self._vectors.values()) + self._codes.nbytes

    def put(self, page_id: str, vectors: FloatArray, row: Mapping[str, Any]) -> None:
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        with self._lock:
            self._vectors[page_id] = vectors
            self._rows[page_id] = row
            self._codes.put(page_id, vectors)
            self.version += 1

    def remove(self, page_ids: Iterable[str]) -> None:
        with self._lock:
            gone = [page_id for page_id in page_ids if self._vectors.pop(page_id, None) is not None]
            for page_id in gone:
                del self._rows[page_id]
            self._codes.remove(gone)
            self.version += 1

    def ids(self) -> list[str]:
        with self._lock:
            return list(self._vectors)

    def row(self, page_id: str) -> Mapping[str, Any]:
        return self._rows[page_id]

    def vectors_of(self, page_ids: Iterable[str]) -> dict[str, FloatArray]:
        """The cached pages among ``page_ids``, by id."""
        with self._lock:
            return {page_id: self._vectors[page_id] for page_id in page_ids if page_id in self._vectors}

    def top_k(
        self, query: FloatArray, k: int, allowed: set[str] | None = None, *, min_rescored: int = 0
    ) -> tuple[list[str], list[float], list[Mapping[str, Any]]]:
        """The exact top ``k`` pages (among ``allowed``): ``(ids, exact MaxSim scores, page rows)``, best first.

        Every page is scored on its codes with a proven error bound; pages are then rescored exactly
        in bound order until no other page can enter the top ``k`` (:mod:`~colpali_milvus.search.certify`),
        at least ``min_rescored`` of them.
        """
        with self._lock:  # one consistent view: the blocks and the vectors they were made from
            blocks = self._codes.seal()
            vectors, rows = dict(self._vectors), dict(self._rows)

        def exact(keys: list[str]) -> npt.NDArray[np.float64]:
            return maxsim_each(query, [vectors[key] for key in keys])

        top = certified_search(query, blocks, k, exact, allowed=allowed, first=min_rescored)
        self.last_rescored = top.rescored
        return top.keys, top.scores, [rows[page_id] for page_id in top.keys]

    # -- the saved file ---------------------------------------------------------------------

    def save(self, path: Path) -> None:
        """Write the copy to ``path`` (``.npz``): fsynced, then renamed into place atomically."""
        with self._lock:
            ids = list(self._vectors)
            vectors = [self._vectors[page_id] for page_id in ids]
            digests = [str(self._rows[page_id]["digest"]) for page_id in ids]
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        try:
            with temporary.open("wb") as file:
                np.savez(
                    file,
                    format_version=np.array(CACHE_FILE_VERSION),
                    dim=np.array(self.dim),
                    page_ids=np.array(ids, dtype=str),
                    digests=np.array(digests, dtype=str),
                    vectors=np.concatenate(vectors) if vectors else np.empty((0, self.dim), np.float32),
                    vector_counts=np.array([v.shape[0] for v in vectors], dtype=np.int64),
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
        for page_id, page_vectors in pages:  # the codes are derived again, not trusted from the file
            self.put(page_id, page_vectors, rows[page_id])
        return True

    def _read_verified(self, path: Path, rows: Mapping[str, Mapping[str, Any]]) -> list[tuple[str, FloatArray]] | None:
        with np.load(path, allow_pickle=False) as data:
            if int(data["format_version"]) != CACHE_FILE_VERSION or int(data["dim"]) != self.dim:
                return None
            ids = [str(page_id) for page_id in data["page_ids"]]
            digests = [str(digest) for digest in data["digests"]]
            counts, vectors = data["vector_counts"], data["vectors"]
            if (
                len(ids) != len(rows)
                or set(ids) != set(rows)
                or not (len(ids) == len(digests) == counts.shape[0])
                or any(str(rows[page_id].get("digest")) != digest for page_id, digest in zip(ids, digests, strict=True))
                or vectors.dtype != np.float32
                or vectors.shape != (int(counts.sum()), self.dim)
                or np.any(counts <= 0)
            ):
                return None
        if not ids:  # an empty collection's file: np.split would hand back one empty block
            return []
        page_vectors = np.split(vectors, np.cumsum(counts)[:-1])
        if any(vector_digest(block) != digest for block, digest in zip(page_vectors, digests, strict=True)):
            return None
        return list(zip(ids, page_vectors, strict=True))


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
