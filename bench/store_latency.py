"""Store-side latency of colpali-milvus on Milvus Lite with ColPali-shaped pages (no model).

    python bench/store_latency.py --pages 100 --json bench/results/store_latency.json

Pages are 1,030 x 128 float32 unit vectors with ColPali-like structure (most patches are near
duplicates of a page background, a few carry page-specific content); queries are 20 vectors taken
near one page's content patches, so that page is the known answer. Prints one table and writes JSON.
This is the baseline that the full benchmark against the tutorial and the peers will extend.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from colpali_milvus import MilvusMultiVectorStore, maxsim

DIM, VECTORS_PER_PAGE, QUERY_VECTORS = 128, 1030, 20


def unit(rows: np.ndarray) -> np.ndarray:
    return (rows / np.linalg.norm(rows, axis=-1, keepdims=True)).astype(np.float32)


def make_corpus(rng: np.random.Generator, n_pages: int) -> tuple[list[np.ndarray], list[np.ndarray], list[int]]:
    background = unit(rng.normal(size=(8, DIM)))  # shared "white page" directions
    pages, content_rows = [], []
    for _ in range(n_pages):
        base = background[rng.integers(0, 8, VECTORS_PER_PAGE)]
        content = unit(rng.normal(size=(12, DIM)))  # page-specific content clusters
        is_content = rng.random(VECTORS_PER_PAGE) < 0.15
        rows = np.where(is_content[:, None], content[rng.integers(0, 12, VECTORS_PER_PAGE)], base)
        pages.append(unit(rows + rng.normal(scale=0.15, size=rows.shape)))
        content_rows.append(np.flatnonzero(is_content))
    targets = [int(i) for i in rng.integers(0, n_pages, 20)]
    queries = [
        unit(pages[t][rng.choice(content_rows[t], QUERY_VECTORS)] + rng.normal(scale=0.3, size=(QUERY_VECTORS, DIM)))
        for t in targets
    ]
    return pages, queries, targets


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pages", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()

    rng = np.random.default_rng(args.seed)
    pages, queries, targets = make_corpus(rng, args.pages)
    exact = [np.argsort(-maxsim(q, pages))[:5] for q in queries]

    with tempfile.TemporaryDirectory() as folder:
        store = MilvusMultiVectorStore(Path(folder) / "bench.db", dim=DIM, model_name="bench/colpali-shaped")
        started = time.perf_counter()
        ids = []
        for start in range(0, len(pages), 16):
            ids += store.add(
                pages[start : start + 16], [{"page": i + 1} for i in range(start, min(start + 16, len(pages)))]
            )
        store.search(queries[0], k=5)  # first search waits for the index
        searchable_s = time.perf_counter() - started

        latencies, recall, hit1 = [], [], []
        for query, target, truth in zip(queries, targets, exact, strict=True):
            t0 = time.perf_counter()
            hits = store.search(query, k=5)
            latencies.append(time.perf_counter() - t0)
            found = [ids.index(hit.page_id) for hit in hits]
            recall.append(len(set(found) & set(truth.tolist())) / 5)
            hit1.append(found[0] == target)
        disk = sum(path.stat().st_size for path in Path(folder).rglob("*") if path.is_file())
        store.close()

    result = {
        "pages": args.pages,
        "rows": args.pages * VECTORS_PER_PAGE,
        "time_to_searchable_s": round(searchable_s, 2),
        "p50_ms": round(statistics.median(latencies) * 1000, 1),
        "p95_ms": round(float(np.percentile(latencies, 95)) * 1000, 1),
        "recall_at_5_vs_exhaustive": round(float(np.mean(recall)), 3),
        "hit_at_1": round(float(np.mean(hit1)), 3),
        "disk_bytes_per_page": int(disk / args.pages),
        "peak_rss_mib": int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
    }
    width = max(len(key) for key in result)
    for key, value in result.items():
        print(f"{key:<{width}}  {value}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
