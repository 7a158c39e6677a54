"""Corpus families for the benchmarks: one seeded generator per kind of page structure, one entry point.

    from families import build_corpus
    corpus = build_corpus("patches", n_pages=200, n_queries=50, seed=0)

Every family yields ColPali-shaped data: pages of ~1,030 x 128 float32 unit vectors (the ``real``
family: 384-d token vectors of real text, a few hundred per page) and multi-vector queries, each
aimed at one planted page (``real``: judged by a back-of-book index). Every contender of a benchmark
gets the same arrays, so each family tests the stores, not the generator. Families:

- ``clustered``: ``bench/corpus.py`` unchanged (the published figures' corpus). Pages are a few
  background directions plus a small shared vocabulary; a query aims at its page's *clusters*.
- ``patches``: a query matches a handful of *individual* distinctive patches of its page, as a
  question's words match single rendered words; clusters of a page average those patches away.
- ``needle``: pages are near-duplicates of one shared page template; the answer is one small
  region of a few patches, and every other query vector ties across pages.
- ``real``: real MiniLM token vectors of a Debian manual's pages, queried by its index terms and
  judged by the pages the index links to (``bench/real_tokens.py``).

``relevant`` holds the judged pages of each query (the planted page for the synthetic families), so
hit@1 and nDCG are computed the same way on every family.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from corpus import DIM, VECTORS_PER_PAGE, make_corpus

FloatArray = npt.NDArray[np.float32]

FAMILIES = ("clustered", "patches", "needle", "real")


@dataclass(frozen=True)
class FamilyCorpus:
    family: str
    pages: list[FloatArray]  # each (n_i, dim), unit rows
    queries: list[FloatArray]  # each (n_q, dim), unit rows
    targets: list[int]  # the planted page of each query (``real``: its first judged page)
    relevant: list[tuple[int, ...]]  # the judged pages of each query (synthetic: the planted page alone)

    @property
    def dim(self) -> int:
        return int(self.pages[0].shape[1])


def _unit(rows: npt.NDArray[np.floating]) -> FloatArray:
    return (rows / np.linalg.norm(rows, axis=-1, keepdims=True)).astype(np.float32)


def clustered(n_pages: int, n_queries: int, seed: int) -> FamilyCorpus:
    """Today's corpus (``bench/corpus.py``), byte for byte: clustered pages, queries aimed at clusters.

    Stresses little: a page is ~20 distinct directions repeated with noise 0.05, so 32 centroids per
    page describe it almost exactly and a centroid first stage is as good as exhaustive search.
    Kept so the published figures stay reproducible.
    """
    corpus = make_corpus(n_pages, n_queries=n_queries, seed=seed)
    return FamilyCorpus("clustered", corpus.pages, corpus.queries, corpus.targets, [(t,) for t in corpus.targets])


# patches: a shared vocabulary of rendered words; every content patch is its own direction.
_PATCH_WORDS = 4096
_PATCH_BACKGROUNDS = 4
_PATCH_WORD_WEIGHT = 0.5  # a patch is 0.5 word + 0.87 own direction: same word on two patches ~0.25
_PATCH_OWN_WEIGHT = float(np.sqrt(1 - _PATCH_WORD_WEIGHT**2))


def patches(n_pages: int, n_queries: int, seed: int) -> FamilyCorpus:
    """Queries that match a handful of individual distinctive patches of their page.

    A page is 35% near-duplicate background patches (4 directions shared by all pages: white space,
    rules) and 65% content patches. Each content patch renders one word of a shared 4,096-word
    vocabulary (Zipf-distributed, so common words sit on every page) *plus its own direction* (font,
    position, neighbours; 0.5 word + 0.87 own, so two patches of one word have cosine ~0.25): no two
    content patches of a page are alike, so a page has ~670 distinct directions and any summary of
    it (centroids, pooled tokens, a mean vector) averages each patch away. A query has 4 vectors
    aimed at 4 individual patches of its page (cosine ~0.9 to the patch) and 16 generic vectors
    (12 words drawn as often as the pages use them, 4 backgrounds), as a question's words match
    single rendered words. Exhaustive MaxSim finds the page every time (the aimed patches), while
    the order below it rests on which pages happen to hold a patch close to a generic word: a first
    stage that ranks pages by their clusters sees neither, and loses more as pages grow in number
    (the property of issue 10's corpus: the default Lite store gets recall@5 0.78 at 200 pages).
    """
    rng = np.random.default_rng(seed)
    backgrounds = _unit(rng.normal(size=(_PATCH_BACKGROUNDS, DIM)))
    words = _unit(rng.normal(size=(_PATCH_WORDS, DIM)))
    zipf = 1.0 / np.arange(1, _PATCH_WORDS + 1)
    zipf /= zipf.sum()
    pages: list[FloatArray] = []
    content_rows: list[np.ndarray] = []
    for _ in range(n_pages):
        is_background = rng.random(VECTORS_PER_PAGE) < 0.35
        n_content = int((~is_background).sum())
        rows = np.empty((VECTORS_PER_PAGE, DIM))
        rows[is_background] = backgrounds[rng.integers(0, _PATCH_BACKGROUNDS, int(is_background.sum()))]
        rows[is_background] += rng.normal(scale=0.05, size=(int(is_background.sum()), DIM))
        own = _unit(rng.normal(size=(n_content, DIM)))
        rows[~is_background] = (
            _PATCH_WORD_WEIGHT * words[rng.choice(_PATCH_WORDS, n_content, p=zipf)] + _PATCH_OWN_WEIGHT * own
        )
        page = _unit(rows)
        pages.append(page)
        content_rows.append(np.flatnonzero(~is_background))

    targets = [int(t) for t in rng.integers(0, n_pages, n_queries)]
    queries = []
    for target in targets:
        aimed = pages[target][rng.choice(content_rows[target], 4, replace=False)]
        aimed = _unit(aimed + rng.normal(scale=0.04, size=aimed.shape))
        common = words[rng.choice(_PATCH_WORDS, 12, p=zipf)]  # words as frequent as on the pages
        generic = np.concatenate([common, backgrounds[rng.integers(0, _PATCH_BACKGROUNDS, 4)]])
        generic = _unit(generic + rng.normal(scale=0.08, size=generic.shape))
        queries.append(np.concatenate([aimed, generic]).astype(np.float32))
    return FamilyCorpus("patches", pages, queries, targets, [(t,) for t in targets])


# needle: one page template shared by every page; a small unique region per page.
_NEEDLE_TEMPLATE = 12
_NEEDLE_WORDS = 256


def needle(n_pages: int, n_queries: int, seed: int) -> FamilyCorpus:
    """Pages that are near-duplicates of one template, the answer one small region of a few patches.

    Every page is 96% patches of one shared template (12 directions: a form, a slide master, a
    scanned letterhead) with noise 0.03, 3% text patches from a small shared vocabulary, and one
    *needle*: a region of 4-8 patches in 2 directions found on no other page (a stamp, a filled-in
    field, a figure label). A query has 4 vectors aimed at the needle and 16 that tie across pages:
    template directions (every page matches them equally) and vocabulary words (graded a little).
    Stresses first stages that spend their budget on what pages share: the raw ANN neighbours of
    most query vectors are template patches of arbitrary pages, the needle is 0.5% of a page, and
    the exact order below the planted page rests on small score differences. (At 200 pages the
    server path's per-vector ANN first stage kept recall@5 0.64; the centroid first stage, whose
    farthest-first seeding keeps rare patches, 1.0.)
    """
    rng = np.random.default_rng(seed)
    template = _unit(rng.normal(size=(_NEEDLE_TEMPLATE, DIM)))
    vocabulary = _unit(rng.normal(size=(_NEEDLE_WORDS, DIM)))
    pages: list[FloatArray] = []
    needles: list[FloatArray] = []
    for _ in range(n_pages):
        n_needle = int(rng.integers(4, 9))
        n_text = int(0.03 * VECTORS_PER_PAGE)
        n_template = VECTORS_PER_PAGE - n_needle - n_text
        page_needle = _unit(rng.normal(size=(2, DIM)))
        page_words = vocabulary[rng.choice(_NEEDLE_WORDS, 8, replace=False)]
        rows = np.concatenate(
            [
                template[rng.integers(0, _NEEDLE_TEMPLATE, n_template)],
                page_words[rng.integers(0, 8, n_text)],
                page_needle[rng.integers(0, 2, n_needle)],
            ]
        )
        rows = rows[rng.permutation(len(rows))]  # the needle sits anywhere on the page
        pages.append(_unit(rows + rng.normal(scale=0.03, size=rows.shape)))
        needles.append(page_needle)

    targets = [int(t) for t in rng.integers(0, n_pages, n_queries)]
    queries = []
    for target in targets:
        aimed = needles[target][rng.integers(0, 2, 4)]
        generic = np.concatenate(
            [template[rng.integers(0, _NEEDLE_TEMPLATE, 8)], vocabulary[rng.integers(0, _NEEDLE_WORDS, 8)]]
        )
        aimed = aimed + rng.normal(scale=0.08, size=aimed.shape)  # cosine ~0.7 to the needle
        generic = generic + rng.normal(scale=0.3, size=generic.shape)  # as loose as bench/corpus.py's
        queries.append(_unit(np.concatenate([aimed, generic])))
    return FamilyCorpus("needle", pages, queries, targets, [(t,) for t in targets])


def real(n_pages: int, n_queries: int, seed: int) -> FamilyCorpus:
    """Real MiniLM token vectors of a Debian manual, index terms as queries (``bench/real_tokens.py``).

    Stresses what no generator can fake: real text structure (frequent function words on every page,
    rare terms on few, varied page lengths, 384-d vectors, queries of 1-10 tokens). The set is built
    once and cached; ``n_pages`` below the manual's size keeps a seeded subset of pages and the
    queries judged on them; above it, the whole manual.
    """
    from real_tokens import load_dataset

    data = load_dataset()
    total = len(data.pages)
    keep = np.arange(total) if n_pages >= total else np.sort(np.random.default_rng(seed).permutation(total)[:n_pages])
    new_index = {int(old): new for new, old in enumerate(keep)}
    candidates = []
    for query, judged in zip(data.queries, data.relevant, strict=True):
        kept = tuple(sorted(new_index[p] for p in judged if p in new_index))
        if kept:
            candidates.append((query, kept))
    if n_queries < len(candidates):  # a seeded sample, in the set's order
        chosen = np.sort(np.random.default_rng(seed + 1).permutation(len(candidates))[:n_queries])
        candidates = [candidates[i] for i in chosen]
    return FamilyCorpus(
        "real",
        [data.pages[int(i)] for i in keep],
        [q for q, _ in candidates],
        [judged[0] for _, judged in candidates],
        [judged for _, judged in candidates],
    )


_BUILDERS: dict[str, Callable[[int, int, int], FamilyCorpus]] = {
    "clustered": clustered,
    "patches": patches,
    "needle": needle,
    "real": real,
}


def build_corpus(family: str, n_pages: int, n_queries: int = 50, seed: int = 0) -> FamilyCorpus:
    """Build one family's corpus by name (see the module docstring); same arguments, same arrays."""
    if family not in _BUILDERS:
        raise ValueError(f"unknown corpus family {family!r}; choose from {', '.join(FAMILIES)}")
    return _BUILDERS[family](n_pages, n_queries, seed)
