"""Every page scored on int8 codes in one pass, each score with a proven error bound.

Why score every page rather than gather candidates: on pages made of single distinctive patches,
exhaustive MaxSim's ranks 2-5 differ by ~0.01 in scores of 7-11, spread over the whole collection.
Any stage that looks at a subset first (page centroids, an IVF over page vectors) misses them
(recall@5 0.68 at 1,000 pages). The scan scores all of them; :mod:`.certify` then rescores pages
exactly, best bound first, until no unrescored page can beat the exact ``k``-th score.

**Codes.** A page keeps int8 codes ``c_j`` and one float scale ``s`` (its largest absolute component
/ 127), so ``p_j ~ s c_j``. A query vector gets two int8 layers, ``q_i ~ t_i (a_i + b_i / 254)``: the
second layer codes what the first rounded away, so the query side's rounding all but vanishes for
the price of a product twice as tall. Then, exactly in integers until the last step::

    code(P) = s * sum_i  t_i / 254 * max_j (254 a_i . c_j + b_i . c_j)

**Bound.** With ``E = max_j |p_j - s c_j|`` and ``N = max_j |s c_j|`` (per page, kept with the codes)
and ``q^_i`` the query's coded vector, Cauchy-Schwarz gives, for every page vector,
``|q_i . p_j - q^_i . s c_j| <= |q_i| E + |q_i - q^_i| N``; a max moves by at most the largest change
of its arguments, so::

    |MaxSim(Q, P) - code(P)| <= E * sum_i |q_i| + N * sum_i |q_i - q^_i|

It holds for any input: vectors of any length, outliers, negative similarities, pages of any size.
A page with one long outlier vector gets a coarse scale and a wide bound, so it is rescored rather
than hidden. (The bound is a worst case, ~10x the typical error of ~0.02 on ColPali-like pages.)

**Layout.** Pages sit in immutable blocks of about ``BLOCK_ROWS`` vectors, each one ``(dim, width x
pages)`` int8 matrix (the kernel's fastest operand), every page padded to the block's ``width`` with
copies of its first vector (a duplicate never changes a max). A block only holds pages of one length
class (lengths within ~5% of each other), so padding costs at most ~5% whatever the mix of page
lengths. A write only re-blocks the pages it touches; each class has at most one part-full block.

**Second layer.** Each page also keeps ``d_j``, what ``c_j`` rounded away in 1/254ths of a step,
in the same layout (``CodeBlock.fine``). The scan never reads it: :mod:`.refine` scores the pages
the scan could not rule out on both layers, with a bound ~100x tighter. It doubles the codes held
(0.13 -> 0.26 MB per 1,030 x 128 page).

On x86 the int8 product runs on VNNI/AMX through torch's ``_int_mm``; without torch, float32 BLAS
computes the same integers, slower.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from functools import cache

import numpy as np
import numpy.typing as npt

from colpali_milvus.search.codes import LEVELS, quantize

__all__ = [
    "BLOCK_ROWS",
    "FINE_STEPS",
    "INT32_SAFE_DIM",
    "CodeBlock",
    "CodeScan",
    "PageCode",
    "QueryCode",
    "ScanResult",
    "encode_page",
    "encode_query",
    "int8_product",
    "length_class",
    "scan",
    "with_rounding_slack",
]

logger = logging.getLogger(__name__)

FloatArray = npt.NDArray[np.float32]
Float64Array = npt.NDArray[np.float64]
Int8Array = npt.NDArray[np.int8]
Int32Array = npt.NDArray[np.int32]

BLOCK_ROWS = 16_384  # vectors per block: its codes (2 MiB at dim 128) and similarities stay in cache
# Pages written are blocked once this many wait: a page's layers (~110 KB each) live on the heap, which
# keeps what they free, so an ingest that blocked its pages only at the first search held the codes
# twice (measured: +2 GB at 10,000 ColPali pages).
LOOSE_PAGES = 256
FINE_STEPS = 254  # the query's second layer counts in 1/254ths of a first-layer step: |b| <= 127
_EXACT_CLASSES = 32  # pages up to this long are grouped by exact length
_CLASS_GROWTH = 1.05  # beyond, a length class spans at most 5% (so does a block's padding)
# Rounding of the bound's own float arithmetic, added on top (relative).
_BOUND_SLACK = 1e-6


@dataclass(frozen=True, slots=True)
class PageCode:
    """One page's two int8 layers, its scale and the norms the scan's and the refinement's bounds need."""

    codes: Int8Array  # (n, dim) c
    scale: float  # s: p_j ~ s * codes[j]
    residual: float  # E: max_j |p_j - s codes[j]|
    reach: float  # N: max_j |s codes[j]|
    fine: Int8Array  # (n, dim) d: p_j ~ s (codes[j] + fine[j] / 254), see :mod:`.refine`
    fine_residual: float  # E2: max_j |p_j - s (c_j + d_j / 254)|
    fine_reach: float  # N2: max_j |s (c_j + d_j / 254)|
    fine_norm: float  # G: max_j |s d_j / 254|

    @property
    def length(self) -> int:
        return int(self.codes.shape[0])


def encode_page(vectors: FloatArray) -> PageCode:
    """``(n, dim)`` float32 -> the page's two layers, scale and error norms (computed in float64)."""
    vectors = np.asarray(vectors, dtype=np.float32)
    exact = vectors.astype(np.float64)  # (n, dim)
    peak = float(np.abs(vectors).max()) if vectors.size else 0.0
    scale = peak / LEVELS if peak > 0 else 1.0
    codes = quantize(vectors, np.float32(scale))  # (n, dim)
    decoded = codes.astype(np.float64) * scale  # (n, dim)
    left = exact - decoded  # (n, dim), each within about half a step
    fine = quantize(left, np.float64(scale / FINE_STEPS))  # (n, dim)
    fine_part = fine.astype(np.float64) * (scale / FINE_STEPS)  # (n, dim)
    refined = decoded + fine_part  # (n, dim)
    return PageCode(
        codes=codes,
        scale=scale,
        residual=_largest_norm(left),
        reach=_largest_norm(decoded),
        fine=fine,
        fine_residual=_largest_norm(exact - refined),
        fine_reach=_largest_norm(refined),
        fine_norm=_largest_norm(fine_part),
    )


def _largest_norm(rows: Float64Array) -> float:
    """The largest Euclidean norm among ``(n, dim)`` rows (0 for no rows)."""
    return float(np.linalg.norm(rows, axis=1).max()) if rows.size else 0.0


@dataclass(frozen=True, slots=True)
class QueryCode:
    """A query's two int8 layers, stacked: rows ``[:n_q]`` coarse, ``[n_q:]`` fine."""

    codes: Int8Array  # (2 n_q, dim)
    scales: Float64Array  # (n_q,) t_i
    norm_total: float  # sum_i |q_i|
    residual_total: float  # sum_i |q_i - q^_i|
    fine_total: float  # sum_i |t_i b_i / 254|: the second layer's own length (the refinement's bound)

    @property
    def n_q(self) -> int:
        return int(self.scales.shape[0])


def encode_query(query: FloatArray) -> QueryCode:
    """``(n_q, dim)`` float32 -> its two-layer codes, scales and the norms the bound needs."""
    exact = np.asarray(query, dtype=np.float64)  # (n_q, dim)
    peak = np.abs(exact).max(axis=1)  # (n_q,)
    scales = np.where(peak > 0, peak / LEVELS, 1.0)  # (n_q,)
    coarse = quantize(exact, scales[:, None])  # (n_q, dim)
    left = exact - coarse * scales[:, None]  # (n_q, dim), each within half a step
    fine = quantize(left, (scales / FINE_STEPS)[:, None])  # (n_q, dim)
    fine_part = fine.astype(np.float64) * (scales / FINE_STEPS)[:, None]  # (n_q, dim)
    coded = coarse.astype(np.float64) * scales[:, None] + fine_part  # (n_q, dim)
    return QueryCode(
        codes=np.ascontiguousarray(np.concatenate([coarse, fine])),
        scales=scales,
        norm_total=float(np.linalg.norm(exact, axis=1).sum()),
        residual_total=float(np.linalg.norm(exact - coded, axis=1).sum()),
        fine_total=float(np.linalg.norm(fine_part, axis=1).sum()),
    )


def length_class(length: int) -> int:
    """Pages of one class share blocks: exact lengths up to 32, then classes ~5% wide."""
    if length <= _EXACT_CLASSES:
        return length
    return _EXACT_CLASSES + 1 + int(math.log(length / _EXACT_CLASSES) / math.log(_CLASS_GROWTH))


@dataclass(frozen=True, eq=False)
class CodeBlock:
    """Pages side by side: page ``p`` is columns ``[p * width, p * width + lengths[p])`` of ``codes`` and ``fine``.

    Every field is a numpy array, an int or a tuple of str (the saved copy writes blocks field by field).
    """

    keys: tuple[str, ...]
    lengths: npt.NDArray[np.int64]  # (pages,) real vectors per page
    width: int  # columns per page (the longest page's length)
    codes: Int8Array  # (dim, pages * width), C-contiguous: the first layer, what the scan reads
    scales: Float64Array  # (pages,)
    residuals: Float64Array  # (pages,)
    reaches: Float64Array  # (pages,)
    fine: Int8Array  # (dim, pages * width), C-contiguous: the second layer, read only by the refinement
    fine_residuals: Float64Array  # (pages,)
    fine_reaches: Float64Array  # (pages,)
    fine_norms: Float64Array  # (pages,)

    @classmethod
    def pack(cls, pages: Sequence[tuple[str, PageCode]]) -> CodeBlock:
        width = max(page.length for _, page in pages)
        return cls(
            keys=tuple(key for key, _ in pages),
            lengths=np.array([page.length for _, page in pages], dtype=np.int64),
            width=width,
            codes=_side_by_side([page.codes for _, page in pages], width),
            scales=np.array([page.scale for _, page in pages], dtype=np.float64),
            residuals=np.array([page.residual for _, page in pages], dtype=np.float64),
            reaches=np.array([page.reach for _, page in pages], dtype=np.float64),
            fine=_side_by_side([page.fine for _, page in pages], width),
            fine_residuals=np.array([page.fine_residual for _, page in pages], dtype=np.float64),
            fine_reaches=np.array([page.fine_reach for _, page in pages], dtype=np.float64),
            fine_norms=np.array([page.fine_norm for _, page in pages], dtype=np.float64),
        )

    def page(self, slot: int) -> PageCode:
        """Page ``slot`` as it was put (its codes copied out, without padding)."""
        columns = slice(slot * self.width, slot * self.width + int(self.lengths[slot]))
        return PageCode(
            codes=np.ascontiguousarray(self.codes[:, columns].T),
            scale=float(self.scales[slot]),
            residual=float(self.residuals[slot]),
            reach=float(self.reaches[slot]),
            fine=np.ascontiguousarray(self.fine[:, columns].T),
            fine_residual=float(self.fine_residuals[slot]),
            fine_reach=float(self.fine_reaches[slot]),
            fine_norm=float(self.fine_norms[slot]),
        )

    @property
    def rows(self) -> int:
        """Real vectors in the block (padding not counted)."""
        return int(self.lengths.sum())

    @property
    def nbytes(self) -> int:
        """Both layers: the second doubles what the codes hold (0.13 -> 0.26 MB per 1,030 x 128 page)."""
        return int(self.codes.nbytes + self.fine.nbytes)


def _side_by_side(layers: Sequence[Int8Array], width: int) -> Int8Array:
    """Pages' ``(n_p, dim)`` codes -> ``(dim, pages * width)``, each page padded with copies of its first vector.

    A copy of a real vector never changes a max, whatever the signs of the similarities.
    """
    dim = layers[0].shape[1]
    padded = np.empty((len(layers), width, dim), dtype=np.int8)  # (pages, width, dim)
    for slot, codes in enumerate(layers):
        padded[slot, : codes.shape[0]] = codes
        padded[slot, codes.shape[0] :] = codes[0]
    return np.ascontiguousarray(padded.reshape(-1, dim).T)  # (dim, pages * width)


@dataclass(frozen=True, slots=True)
class ScanResult:
    """Every scanned page's code score and the bound of its distance to exact MaxSim."""

    keys: list[str]
    scores: Float64Array  # (n_pages,) code(P)
    bounds: Float64Array  # (n_pages,) |MaxSim - code| <= bound

    @property
    def upper(self) -> Float64Array:
        """``(n_pages,)`` upper bounds of every page's exact MaxSim."""
        result: Float64Array = self.scores + self.bounds
        return result


def scan(query: FloatArray | QueryCode, blocks: Sequence[CodeBlock]) -> ScanResult:
    """Every page's code score and error bound, block after block (``query``: its vectors or their codes)."""
    coded = query if isinstance(query, QueryCode) else encode_query(query)
    n_q = coded.n_q
    product = int8_product()
    wide = coded.codes.shape[1] > INT32_SAFE_DIM  # 254 * 127^2 * dim must fit the accumulator
    step_scales = coded.scales / FINE_STEPS  # (n_q,)
    keys: list[str] = []
    scores: list[Float64Array] = []
    bounds: list[Float64Array] = []
    for block in blocks:
        both = product(coded.codes, block.codes)  # (2 n_q, pages * width) int32, exact
        combined = both[:n_q].astype(np.int64) if wide else both[:n_q]  # (n_q, pages * width), a.c
        combined *= FINE_STEPS  # in place: a fresh product, no other reference to it
        combined += both[n_q:]  # 254 a.c + b.c
        best = combined.reshape(n_q, len(block.keys), block.width).max(axis=2)  # (n_q, pages)
        keys.extend(block.keys)
        scores.append((step_scales @ best.astype(np.float64)) * block.scales)  # (pages,)
        bounds.append(block.residuals * coded.norm_total + block.reaches * coded.residual_total)
    if not blocks:
        return ScanResult([], np.empty(0, np.float64), np.empty(0, np.float64))
    code_scores = np.concatenate(scores)
    return ScanResult(keys, code_scores, with_rounding_slack(code_scores, np.concatenate(bounds)))


def with_rounding_slack(scores: Float64Array, bounds: Float64Array) -> Float64Array:
    """``(n,)`` bounds widened by the float64 steps' own rounding (of the scores and of the bounds), generously."""
    result: Float64Array = bounds * (1 + _BOUND_SLACK) + _BOUND_SLACK * (np.abs(scores) + bounds)
    return result


# (254 + 2) * 127^2 * dim < 2^31: above this dim the layers are combined in int64 (scan and refinement).
INT32_SAFE_DIM = (2**31 - 1) // (FINE_STEPS * int(LEVELS) ** 2 + 2 * int(LEVELS) ** 2)


class CodeScan:
    """Pages' codes by key, blocked by length class for :func:`scan`. Not thread-safe: the caller serialises."""

    def __init__(self, dim: int, *, block_rows: int = BLOCK_ROWS) -> None:
        self.dim = dim
        self.block_rows = block_rows
        self._blocks: list[CodeBlock] = []
        self._block_of: dict[str, CodeBlock] = {}
        self._part_full: dict[int, CodeBlock] = {}  # length class -> its one part-full block
        self._loose: dict[str, PageCode] = {}  # written since the last seal

    def __len__(self) -> int:
        return len(self._block_of) + len(self._loose)

    @property
    def nbytes(self) -> int:
        loose = sum(page.codes.nbytes + page.fine.nbytes for page in self._loose.values())
        return sum(block.nbytes for block in self._blocks) + loose

    @property
    def real_nbytes(self) -> int:
        """What the two layers would take without padding: ``nbytes`` is within ~5% of it."""
        blocks = sum(block.rows for block in self._blocks) * self.dim * 2
        return blocks + sum(page.codes.nbytes + page.fine.nbytes for page in self._loose.values())

    def put(self, key: str, vectors: FloatArray) -> None:
        self.remove([key])
        self._loose[key] = encode_page(vectors)
        if len(self._loose) >= LOOSE_PAGES:
            self.seal()

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
            by_class: dict[int, list[tuple[str, PageCode]]] = {}
            for key, page in self._loose.items():
                by_class.setdefault(length_class(page.length), []).append((key, page))
            self._loose = {}
            for length, pages in by_class.items():
                part_full = self._part_full.get(length)
                if part_full is not None:  # at most one part-full block per class: fold it in
                    self._drop_block(part_full)
                    pages.extend((key, part_full.page(slot)) for slot, key in enumerate(part_full.keys))
                self._pack_class(length, sorted(pages, key=lambda item: item[1].length))
        return tuple(self._blocks)

    def _pack_class(self, length: int, pages: list[tuple[str, PageCode]]) -> None:
        group: list[tuple[str, PageCode]] = []
        rows = 0
        for key, page in pages:
            group.append((key, page))
            rows += page.length
            if rows >= self.block_rows:
                self._add_block(CodeBlock.pack(group))
                group, rows = [], 0
        if group:
            block = CodeBlock.pack(group)
            self._add_block(block)
            self._part_full[length] = block

    def _add_block(self, block: CodeBlock) -> None:
        self._blocks.append(block)
        for key in block.keys:
            self._block_of[key] = block

    def _drop_block(self, block: CodeBlock) -> None:
        self._blocks.remove(block)
        for key in block.keys:
            del self._block_of[key]
        length = length_class(int(block.lengths[0]))
        if self._part_full.get(length) is block:
            del self._part_full[length]

    def sealed(self) -> tuple[tuple[CodeBlock, ...], tuple[bool, ...]]:
        """Every block after a :meth:`seal`, and whether each is its length class's part-full one (to save)."""
        blocks = self.seal()
        part_full = {id(block) for block in self._part_full.values()}
        return blocks, tuple(id(block) in part_full for block in blocks)

    @classmethod
    def restore(cls, dim: int, blocks: Sequence[CodeBlock], part_full: Sequence[bool]) -> CodeScan:
        """A scan holding ``blocks`` as :meth:`sealed` gave them (e.g. read back from a file), not re-encoded."""
        restored = cls(dim)
        for block, is_part_full in zip(blocks, part_full, strict=True):
            restored._add_block(block)
            if is_part_full:
                restored._part_full[length_class(int(block.lengths[0]))] = block
        return restored

    def _unpack(self, block: CodeBlock) -> None:
        """Dissolve ``block``: its pages become loose again (to be re-blocked at the next seal)."""
        self._drop_block(block)
        for slot, key in enumerate(block.keys):
            self._loose[key] = block.page(slot)


Product = Callable[[Int8Array, Int8Array], Int32Array]


@cache
def int8_product() -> Product:
    """``(m, dim) x (dim, n) -> (m, n)`` exact int32: torch's int8 kernel if it works here, else BLAS."""
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
    # Sums of int8 products stay below 2**24 for dim <= 1,040: exact in float32. Beyond, float64.
    dtype = np.float32 if left.shape[1] <= 1_040 else np.float64
    product = left.astype(dtype) @ right.astype(dtype)
    result: Int32Array = np.rint(product).astype(np.int32)
    return result
