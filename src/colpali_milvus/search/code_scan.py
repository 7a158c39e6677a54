"""Every page scored on int8 codes in one pass: the first stage of the cached search path.

Why score every page rather than gather candidates: on pages made of single distinctive patches,
exhaustive MaxSim's ranks 2-5 differ by ~0.01 in scores of 7-11, spread over the whole collection.
Any stage that looks at a subset first (page centroids, an IVF over page vectors) misses them
(recall@5 0.68 at 1,000 pages). Scoring every page on int8 codes keeps the MaxSim error near 0.01-0.02,
so the exact top ``k`` lies within the first few places of the code ranking, and the caller rescores
a few more than ``k`` pages on their float32 vectors. On x86 an int8 product runs on VNNI/AMX: a
1,000-page scan (1.03 M vectors x 32 query vectors) took ~25-30 ms on this project's 2-core machine,
against ~70 ms for the same float32 product in blocks and ~300 ms for :func:`~.maxsim.maxsim_flat`.

Codes: one float32 scale per page (its largest absolute component / 127) and int8 components; a
query gets one scale per query vector. Then, exactly in integers until the last step::

    score(P) = sum_i  qscale_i * pscale_P * max_j  qcode_i . pcode_j

(The server path's rerank codes, :mod:`.codes`, keep one scale per vector instead: they are decoded
to float32 after a network read, where that precision costs nothing. Here a scale per vector would
need a float multiply of every similarity before the max, which measured ~1.7x the scan's time.)

Layout: pages sit in immutable blocks of about ``BLOCK_ROWS`` vectors, each one ``(dim, width x pages)``
int8 matrix (the kernel's fastest operand), every page padded to the block's ``width`` with copies of
its first vector (a duplicate never changes a max). A write only re-blocks the pages it touches.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from functools import cache

import numpy as np
import numpy.typing as npt

from colpali_milvus.search.codes import LEVELS, quantize

__all__ = ["BLOCK_ROWS", "CodeBlock", "CodeScan", "encode_page", "encode_query", "scan"]

logger = logging.getLogger(__name__)

FloatArray = npt.NDArray[np.float32]
Int8Array = npt.NDArray[np.int8]
Int32Array = npt.NDArray[np.int32]

BLOCK_ROWS = 16_384  # vectors per block: its codes (2 MiB at dim 128) and similarities stay in cache


def encode_page(vectors: FloatArray) -> tuple[Int8Array, float]:
    """``(n, dim)`` float32 -> ``(n, dim)`` int8 codes and the page's scale."""
    vectors = np.asarray(vectors, dtype=np.float32)
    peak = float(np.abs(vectors).max()) if vectors.size else 0.0
    scale = peak / LEVELS if peak > 0 else 1.0
    codes = quantize(vectors, np.float32(scale))  # (n, dim)
    return codes, scale


def encode_query(query: FloatArray) -> tuple[Int8Array, npt.NDArray[np.float64]]:
    """``(n_q, dim)`` float32 -> ``(n_q, dim)`` int8 codes and ``(n_q,)`` scales (one per query vector)."""
    query = np.asarray(query, dtype=np.float32)
    peak = np.abs(query).max(axis=1).astype(np.float64)  # (n_q,)
    scales = np.where(peak > 0, peak / LEVELS, 1.0)  # (n_q,)
    codes = quantize(query, scales[:, None])  # (n_q, dim)
    return codes, scales


@dataclass(frozen=True, eq=False)
class CodeBlock:
    """Pages side by side: page ``p`` is columns ``[p * width, p * width + lengths[p])`` of ``codes``."""

    keys: tuple[str, ...]
    lengths: npt.NDArray[np.int64]  # (pages,) real vectors per page
    width: int  # columns per page (the longest page's length)
    codes: Int8Array  # (dim, pages * width), C-contiguous
    scales: npt.NDArray[np.float64]  # (pages,)

    @classmethod
    def pack(cls, pages: Sequence[tuple[str, Int8Array, float]]) -> CodeBlock:
        width = max(codes.shape[0] for _, codes, _ in pages)
        padded = np.empty((len(pages), width, pages[0][1].shape[1]), dtype=np.int8)  # (pages, width, dim)
        for slot, (_, codes, _) in enumerate(pages):
            padded[slot, : codes.shape[0]] = codes
            padded[slot, codes.shape[0] :] = codes[0]  # a copy of a real vector: the max is unchanged
        return cls(
            keys=tuple(key for key, _, _ in pages),
            lengths=np.array([codes.shape[0] for _, codes, _ in pages], dtype=np.int64),
            width=width,
            codes=np.ascontiguousarray(padded.reshape(-1, padded.shape[2]).T),  # (dim, pages * width)
            scales=np.array([scale for _, _, scale in pages], dtype=np.float64),
        )

    def page(self, slot: int) -> tuple[Int8Array, float]:
        """Page ``slot``'s own ``(n, dim)`` codes (a copy, without padding) and scale."""
        start = slot * self.width
        return np.ascontiguousarray(self.codes[:, start : start + int(self.lengths[slot])].T), float(self.scales[slot])

    @property
    def nbytes(self) -> int:
        return int(self.codes.nbytes)


def scan(query: FloatArray, blocks: Sequence[CodeBlock]) -> tuple[list[str], FloatArray]:
    """Every page's approximate MaxSim: ``(keys, (n_pages,) scores)``, block after block."""
    query_codes, query_scales = encode_query(query)  # (n_q, dim), (n_q,)
    n_q = query_codes.shape[0]
    product = _int8_product()
    keys: list[str] = []
    parts: list[FloatArray] = []
    for block in blocks:
        similarities = product(query_codes, block.codes)  # (n_q, pages * width) int32, exact
        best = similarities.reshape(n_q, len(block.keys), block.width).max(axis=2)  # (n_q, pages)
        scores = (query_scales @ best.astype(np.float64)) * block.scales  # (pages,)
        keys.extend(block.keys)
        parts.append(scores.astype(np.float32))
    return keys, (np.concatenate(parts) if parts else np.empty(0, np.float32))


class CodeScan:
    """Pages' int8 codes by key, blocked for :func:`scan`. Not thread-safe: the caller serialises writes."""

    def __init__(self, dim: int, *, block_rows: int = BLOCK_ROWS) -> None:
        self.dim = dim
        self.block_rows = block_rows
        self._blocks: list[CodeBlock] = []
        self._block_of: dict[str, CodeBlock] = {}
        self._loose: dict[str, tuple[Int8Array, float]] = {}  # written since the last seal

    def __len__(self) -> int:
        return len(self._block_of) + len(self._loose)

    @property
    def nbytes(self) -> int:
        return sum(block.nbytes for block in self._blocks) + sum(codes.nbytes for codes, _ in self._loose.values())

    def put(self, key: str, vectors: FloatArray) -> None:
        self.remove([key])
        self._loose[key] = encode_page(vectors)

    def remove(self, keys: Iterable[str]) -> None:
        for key in keys:
            self._loose.pop(key, None)
            block = self._block_of.get(key)
            if block is not None:
                self._unpack(block)
                del self._loose[key]

    def seal(self) -> tuple[CodeBlock, ...]:
        """Block the pages written since the last call; the blocks to scan (immutable)."""
        if self._loose:
            # At most one block is ever part-full: fold it into the regrouping.
            if self._blocks and self._blocks[-1].codes.shape[1] < self.block_rows // 2:
                self._unpack(self._blocks[-1])
            loose = sorted(self._loose.items(), key=lambda item: item[1][0].shape[0])  # similar lengths pad less
            self._loose = {}
            group: list[tuple[str, Int8Array, float]] = []
            rows = 0
            for key, (codes, scale) in loose:
                group.append((key, codes, scale))
                rows += codes.shape[0]
                if rows >= self.block_rows:
                    self._add_block(CodeBlock.pack(group))
                    group, rows = [], 0
            if group:
                self._add_block(CodeBlock.pack(group))
        return tuple(self._blocks)

    def _add_block(self, block: CodeBlock) -> None:
        self._blocks.append(block)
        for key in block.keys:
            self._block_of[key] = block

    def _unpack(self, block: CodeBlock) -> None:
        """Dissolve ``block``: its pages become loose again (to be re-blocked at the next seal)."""
        self._blocks.remove(block)
        for slot, key in enumerate(block.keys):
            del self._block_of[key]
            self._loose[key] = block.page(slot)


Product = Callable[[Int8Array, Int8Array], Int32Array]


@cache
def _int8_product() -> Product:
    """``(n_q, dim) x (dim, m) -> (n_q, m)`` exact int32: torch's int8 kernel if it works here, else BLAS."""
    try:
        import torch  # optional (the embedder's dependency): imported only when a cached search runs

        def by_torch(left: Int8Array, right: Int8Array) -> Int32Array:
            result: Int32Array = torch._int_mm(torch.from_numpy(left), torch.from_numpy(right)).numpy()
            return result

        probe_left = np.arange(-24, 24, dtype=np.int8).reshape(3, 16)
        probe_right = np.arange(-56, 56, dtype=np.int8).reshape(16, 7)
        expected = probe_left.astype(np.int32) @ probe_right.astype(np.int32)
        if np.array_equal(by_torch(probe_left, probe_right), expected):
            return by_torch
        logger.warning("torch's int8 product disagrees with numpy here: the code scan uses float32 BLAS")
    except Exception as error:  # no torch, or a build without the kernel: correct, only slower
        logger.info("the code scan uses float32 BLAS (no int8 kernel: %s: %s)", type(error).__name__, error)
    return _by_blas


def _by_blas(left: Int8Array, right: Int8Array) -> Int32Array:
    # Sums of int8 products stay below 2**24 for dim <= 1,040: exact in float32 (beyond, rounded).
    product = left.astype(np.float32) @ right.astype(np.float32)
    return np.rint(product).astype(np.int32)
