"""Per-page summary vectors for candidate gathering: a few centroids instead of ~1,000 patch vectors.

Most patches of a document page are near-duplicates (white background, margins); the content sits in
a handful of clusters. Spherical k-means keeps one centroid per cluster, so MaxSim against a page's
centroids approximates MaxSim against its patches at a few percent of the cost. The centroids only
*choose* candidates; every candidate is then scored exactly on all of its vectors.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

__all__ = ["DEFAULT_CENTROIDS", "pool_page"]

FloatArray = npt.NDArray[np.float32]

DEFAULT_CENTROIDS = 32
_ITERATIONS = 6


def pool_page(vectors: FloatArray, n_centroids: int = DEFAULT_CENTROIDS) -> FloatArray:
    """``(n, d)`` page vectors -> ``(min(n_centroids, n), d)`` L2-normalised centroids (deterministic).

    Seeds are chosen farthest-first (each new seed is the vector least similar to all seeds so far),
    so rare content patches get their own centroid instead of being outvoted by background.
    """
    vectors = np.asarray(vectors, dtype=np.float32)  # (n, d)
    n = vectors.shape[0]
    if n <= n_centroids:
        return _normalise(vectors.copy())
    unit = _normalise(vectors)  # (n, d)

    seeds = [int(np.argmax(np.linalg.norm(vectors, axis=1)))]
    closest = unit @ unit[seeds[0]]  # (n,) best similarity to any seed so far
    for _ in range(n_centroids - 1):
        seeds.append(int(np.argmin(closest)))
        closest = np.maximum(closest, unit @ unit[seeds[-1]])
    centroids = unit[seeds]  # (k, d)

    for _ in range(_ITERATIONS):
        assignment = np.argmax(unit @ centroids.T, axis=1)  # (n,)
        sums = np.zeros_like(centroids)  # (k, d)
        np.add.at(sums, assignment, unit)
        empty = ~sums.any(axis=1)
        sums[empty] = centroids[empty]  # a centroid that lost all members keeps its place
        centroids = _normalise(sums)
    return centroids


def _normalise(vectors: FloatArray) -> FloatArray:
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return (vectors / np.where(norms == 0, 1, norms)).astype(np.float32)
