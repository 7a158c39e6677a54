"""A seeded, ColPali-shaped synthetic corpus: pages of 1,030 x 128 unit vectors and planted queries.

Structure modelled on real document pages (no model can be downloaded here, so real embeddings are
out of reach): most patches of a page are near-duplicates of a few *background* directions shared by
every page (white space, margins, rules); the rest are *content* patches drawn from a shared
vocabulary of visual words (glyphs, table cells, chart parts) plus a few directions unique to the
page (its figure). A query mixes vectors aimed at its target page's content with generic vectors
(ColPali's query-augmentation tokens match everything a little), so first stages that only look at
raw ANN neighbours drown in background matches.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float32]

DIM = 128
VECTORS_PER_PAGE = 1030
QUERY_VECTORS = 20
_BACKGROUNDS = 16
_VOCABULARY = 512


@dataclass(frozen=True)
class Corpus:
    pages: list[FloatArray]  # each (VECTORS_PER_PAGE, DIM)
    queries: list[FloatArray]  # each (QUERY_VECTORS, DIM)
    targets: list[int]  # the planted page of each query


def _unit(rows: npt.NDArray[np.floating]) -> FloatArray:
    return (rows / np.linalg.norm(rows, axis=-1, keepdims=True)).astype(np.float32)


def make_corpus(n_pages: int, n_queries: int = 50, seed: int = 0) -> Corpus:
    rng = np.random.default_rng(seed)
    backgrounds = _unit(rng.normal(size=(_BACKGROUNDS, DIM)))
    vocabulary = _unit(rng.normal(size=(_VOCABULARY, DIM)))
    pages: list[FloatArray] = []
    content_of: list[FloatArray] = []
    for _ in range(n_pages):
        page_backgrounds = backgrounds[rng.choice(_BACKGROUNDS, 3, replace=False)]
        words = vocabulary[rng.choice(_VOCABULARY, int(rng.integers(10, 21)), replace=False)]
        unique = _unit(rng.normal(size=(4, DIM)))
        content = np.concatenate([words, unique])  # (n_content, DIM)
        kinds = rng.random(VECTORS_PER_PAGE)
        rows = np.empty((VECTORS_PER_PAGE, DIM))
        is_background = kinds < 0.78
        is_unique = kinds > 0.95
        is_word = ~is_background & ~is_unique
        rows[is_background] = page_backgrounds[rng.integers(0, 3, is_background.sum())]
        rows[is_word] = words[rng.integers(0, len(words), is_word.sum())]
        rows[is_unique] = unique[rng.integers(0, 4, is_unique.sum())]
        pages.append(_unit(rows + rng.normal(scale=0.05, size=rows.shape)))
        content_of.append(content)

    targets = [int(t) for t in rng.integers(0, n_pages, n_queries)]
    queries = []
    for target in targets:
        aimed = content_of[target][rng.integers(0, len(content_of[target]), 12)]
        generic = np.concatenate(
            [backgrounds[rng.integers(0, _BACKGROUNDS, 4)], vocabulary[rng.integers(0, _VOCABULARY, 4)]]
        )
        rows = np.concatenate([aimed, generic])
        queries.append(_unit(rows + rng.normal(scale=0.3, size=rows.shape)))
    return Corpus(pages=pages, queries=queries, targets=targets)
