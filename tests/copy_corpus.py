"""A small collection to copy between stores, and what a copy must preserve of it (tests of colpali_milvus.transfer)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from colpali_milvus import MilvusMultiVectorStore, PageCollection
from helpers import unit_vectors

DIM = 16
MODEL = "test/copy-model"
POOL_FACTOR = 2


@dataclass(frozen=True)
class Corpus:
    """The pages written into a source: ids, vectors, metadata, texts and which ones have an image."""

    ids: list[str]
    vectors: list[np.ndarray]
    metadatas: list[dict[str, Any]]
    texts: list[str]
    with_image: set[str]

    def queries(self, seed: int = 7) -> list[np.ndarray]:
        rng = np.random.default_rng(seed)
        return [page[:3] + rng.normal(scale=0.3, size=(3, DIM)).astype(np.float32) for page in self.vectors[::2]]


def corpus(n_pages: int = 7, seed: int = 1) -> Corpus:
    """Pages with every kind of field: typed columns, nested JSON metadata, text, an empty label, odd ids."""
    rng = np.random.default_rng(seed)
    ids = [f"doc-{i}" for i in range(n_pages - 1)] + ["an id/with spaces, ünïcode\tand a tab"]
    metadatas: list[dict[str, Any]] = [
        {
            "source": f"/reports/{'ab'[i % 2]}.pdf",
            "page": i + 1,
            "page_label": ["i", "ii", "", "4"][i % 4],
            "doc_id": f"d{i % 2}",
            "team": ["finance", "legal"][i % 3 % 2],
            "year": 2020 + i,
            "tags": {"reviewed": i % 2 == 0, "scores": [0.5, i]},
        }
        for i in range(n_pages)
    ]
    return Corpus(
        ids=ids,
        vectors=[unit_vectors(rng, 9 + 3 * i, DIM) for i in range(n_pages)],
        metadatas=metadatas,
        texts=[f"text of page {i} — ünïcode" if i % 3 else "" for i in range(n_pages)],
        with_image={page_id for i, page_id in enumerate(ids) if i != 1},  # one page has no image
    )


def page_image(index: int) -> Image.Image:
    rng = np.random.default_rng(100 + index)
    return Image.fromarray(rng.integers(0, 256, size=(24, 18, 3), dtype=np.uint8))


def write_source(pages: PageCollection, data: Corpus) -> None:
    """Store ``data`` in ``pages`` as an index would: each image first, then the rows; model and pool factor claimed."""
    pages.store.claim_model(MODEL, pool_factor=POOL_FACTOR)
    for i, page_id in enumerate(data.ids):
        if page_id in data.with_image:
            pages.images.save(page_id, page_image(i))
    pages.store.add(data.vectors, data.metadatas, ids=data.ids, texts=data.texts)


def open_pages(uri: str, collection: str, image_dir: Path, **options: Any) -> PageCollection:
    return PageCollection(MilvusMultiVectorStore(uri, collection_name=collection, **options), image_dir=image_dir)


def answers(pages: PageCollection, queries: Sequence[np.ndarray]) -> list[list[tuple[str, float, dict[str, Any], str]]]:
    """Every hit of every query: id, score, metadata, text."""
    return [
        [(hit.page_id, hit.score, dict(hit.metadata), hit.text) for hit in pages.search(query, k=10)]
        for query in queries
    ]


def what_a_copy_keeps(pages: PageCollection, data: Corpus) -> tuple[list[Any], dict[str, bytes | None]]:
    """Every hit of the corpus's queries (id, score, metadata, text) and every page's image pixels."""
    return answers(pages, data.queries()), images(pages, data.ids)


def images(pages: PageCollection, page_ids: Sequence[str]) -> dict[str, bytes | None]:
    """Each page's image as pixels (``None``: no image)."""
    found = {}
    for page_id in page_ids:
        path = pages.images.find(page_id)
        if path is None:
            found[page_id] = None
        else:
            with Image.open(path) as image:
                found[page_id] = image.convert("RGB").tobytes()
    return found


def stored_vectors(pages: PageCollection) -> int:
    """Vector rows the collection holds (a page written twice would show here)."""
    return pages.store.info().vectors
