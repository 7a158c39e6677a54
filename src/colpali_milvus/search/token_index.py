"""Nearest page vectors of each query vector, in memory: the patch-level first stage of the cached path.

Per-page summaries (centroids) average a page's single distinctive patches away; a question's words
match exactly such patches. So candidates also come from the nearest *individual* page vectors of
each query vector, as in ColBERT's first stage, and their hits bound every page's MaxSim (see
:mod:`.bounds`).

Below ``TRAIN_AT`` vectors the search is exact (a flat index). From there on it is a faiss IVF
index with 8-bit scalar codes (a quarter of the float32 vectors' memory), trained on a sample of
the vectors held and retrained when their number has grown ``RETRAIN_GROWTH``-fold. It is derived
data: the caller rebuilds it from the vectors whenever in doubt.

Vector ids encode ``(slot, position)``: a page's slot (a small integer the caller assigns) in the
high bits, the vector's position within the page in the low ``SEQ_BITS``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

__all__ = ["SEQ_BITS", "TokenIndex"]

FloatArray = npt.NDArray[np.float32]

SEQ_BITS = 20  # up to 1,048,576 vectors per page
TRAIN_AT = 100_000  # vectors; below this an exact search is as fast as an IVF probe
RETRAIN_GROWTH = 4
# More lists make every later add slower (each vector is compared with every list's centroid); on
# this project's 2-core machine 1,024 lists cost ~11 ms per 1,030-vector page and search in ~9 ms.
_MIN_LISTS, _MAX_LISTS = 64, 1024
_TRAIN_POINTS_PER_LIST = 64
_TRAIN_ITERATIONS = 10
DEFAULT_PROBES = 8  # lists searched per query vector


def _faiss() -> Any:
    import faiss  # a core dependency, imported late: it loads OpenMP and BLAS

    return faiss


class TokenIndex:
    """Page vectors by ``(slot, position)`` id; ``search`` returns each query vector's nearest ones."""

    def __init__(self, dim: int, *, probes: int = DEFAULT_PROBES) -> None:
        self.dim = dim
        self.probes = probes
        self._index: Any = None
        self.trained_at = 0  # vectors held when the IVF was trained (0: exact)

    def __len__(self) -> int:
        return 0 if self._index is None else int(self._index.ntotal)

    @property
    def exact(self) -> bool:
        return self.trained_at == 0

    @property
    def nbytes(self) -> int:
        """Approximate memory held: codes and ids (IVF) or vectors and ids (exact)."""
        per_vector = (self.dim if self.trained_at else 4 * self.dim) + 8
        return len(self) * per_vector

    def needs_rebuild(self, n_vectors: int) -> bool:
        """Whether an index over ``n_vectors`` vectors should be (re)trained: grown past a threshold."""
        if self.trained_at == 0:
            return n_vectors >= TRAIN_AT
        return n_vectors >= RETRAIN_GROWTH * self.trained_at or n_vectors * RETRAIN_GROWTH < self.trained_at

    def rebuild(self, pages: Sequence[tuple[int, FloatArray]]) -> None:
        """Build anew over ``(slot, vectors)`` pages: exact when small, else a freshly trained IVF."""
        faiss = _faiss()
        total = sum(vectors.shape[0] for _, vectors in pages)
        if total < TRAIN_AT:
            self._index, self.trained_at = faiss.IndexIDMap2(faiss.IndexFlatIP(self.dim)), 0
        else:
            n_lists = _n_lists(total)
            quantizer = faiss.IndexFlatIP(self.dim)
            index = faiss.IndexIVFScalarQuantizer(
                quantizer, self.dim, n_lists, faiss.ScalarQuantizer.QT_8bit, faiss.METRIC_INNER_PRODUCT
            )
            index.cp.niter = _TRAIN_ITERATIONS
            index.train(_sample(pages, n_lists * _TRAIN_POINTS_PER_LIST, total))
            self._quantizer = quantizer  # keep the Python object alive with the index
            self._index, self.trained_at = index, total
        for slot, vectors in pages:
            self.add(slot, vectors)

    def add(self, slot: int, vectors: FloatArray) -> None:
        if self._index is None:
            self.rebuild([])
        n = vectors.shape[0]
        if n >= 1 << SEQ_BITS:
            raise ValueError(f"a page may hold at most {(1 << SEQ_BITS) - 1} vectors")
        ids = (np.int64(slot) << SEQ_BITS) | np.arange(n, dtype=np.int64)
        self._index.add_with_ids(np.ascontiguousarray(vectors, dtype=np.float32), ids)

    def remove(self, slots: Iterable[int]) -> None:
        slots = np.fromiter(slots, dtype=np.int64)
        if self._index is None or slots.size == 0:
            return
        faiss = _faiss()
        for slot in slots:  # a page's ids are one range of slot bits
            self._index.remove_ids(faiss.IDSelectorRange(int(slot) << SEQ_BITS, (int(slot) + 1) << SEQ_BITS))

    def search(self, query: FloatArray, k: int) -> tuple[npt.NDArray[np.int64], FloatArray]:
        """``(n_q, k)`` page slots (``-1``: no hit) and similarities of each query vector's nearest vectors."""
        if self._index is None or len(self) == 0:
            n_q = query.shape[0]
            return np.full((n_q, 0), -1, np.int64), np.empty((n_q, 0), np.float32)
        if not self.exact:
            self._index.nprobe = min(self.probes, int(self._index.nlist))
        similarities, ids = self._index.search(np.ascontiguousarray(query, dtype=np.float32), min(k, len(self)))
        slots = np.where(ids >= 0, ids >> SEQ_BITS, -1)
        return slots, similarities

    # -- persistence ------------------------------------------------------------------------

    def to_bytes(self) -> npt.NDArray[np.uint8]:
        if self._index is None:
            self.rebuild([])
        return np.asarray(_faiss().serialize_index(self._index), dtype=np.uint8)

    @classmethod
    def from_bytes(cls, data: npt.NDArray[np.uint8], dim: int, trained_at: int) -> TokenIndex:
        faiss = _faiss()
        token_index = cls(dim)
        index = faiss.deserialize_index(np.ascontiguousarray(data, dtype=np.uint8))
        if int(index.d) != dim:
            raise ValueError("the saved token index has another dimension")
        token_index._index, token_index.trained_at = index, trained_at
        return token_index


def _n_lists(total: int) -> int:
    """A power of two near ``sqrt(total)``, within [_MIN_LISTS, _MAX_LISTS]."""
    return int(min(_MAX_LISTS, max(_MIN_LISTS, 2 ** round(math.log2(math.sqrt(total))))))


def _sample(pages: Sequence[tuple[int, FloatArray]], size: int, total: int) -> FloatArray:
    """About ``size`` vectors drawn evenly from every page (deterministic)."""
    step = max(1, total // size)
    return np.ascontiguousarray(np.concatenate([vectors[::step] for _, vectors in pages]), dtype=np.float32)
