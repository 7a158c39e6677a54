"""The hand-made pages and queries of the evaluation tests (importable by the tests, unlike a conftest).

Collection ``hand`` (dim 4, one vector per page) has rankings that can be worked out by hand:

    page      source  page  vector              query alpha = e0   beta = e1   gamma = e3
    p1        a.pdf   1     e0                   1.0               0           0
    p2        a.pdf   2     e1                   0                 1.0         0
    p3        a.pdf   3     e2                   0                 0           0
    p4        b.pdf   1     0.8 e0 + 0.6 e1      0.8               0.6         0
    p5        b.pdf   2     0.6 e2 + 0.8 e3      0                 0           0.8

``pooled`` holds the same pages but p1 as e3 (another version of the collection); ``other_model``
records another model, ``wide`` another dim.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from colpali_milvus import MilvusMultiVectorStore

E = np.eye(4, dtype=np.float32)
HAND_PAGES = {
    "p1": ("a.pdf", 1, E[0]),
    "p2": ("a.pdf", 2, E[1]),
    "p3": ("a.pdf", 3, E[2]),
    "p4": ("b.pdf", 1, 0.8 * E[0] + 0.6 * E[1]),
    "p5": ("b.pdf", 2, 0.6 * E[2] + 0.8 * E[3]),
}
QUERIES = {"alpha": E[[0]], "beta": E[[1]], "gamma": E[[3]]}
MODEL = "test/hand-made"


def add_pages(store: MilvusMultiVectorStore, pages: dict[str, tuple[str, int, Any]]) -> None:
    ids = list(pages)
    store.add(
        [np.atleast_2d(pages[i][2]).astype(np.float32) for i in ids],
        [{"source": pages[i][0], "page": pages[i][1], "corpus_id": f"c-{i}"} for i in ids],
        ids=ids,
    )


def unit_rows(rng: np.random.Generator, n: int, dim: int) -> np.ndarray:
    rows = rng.normal(size=(n, dim)).astype(np.float32)
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


def write_jsonl(path: Path, records: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(record) + "\n" for record in records))
    return path
