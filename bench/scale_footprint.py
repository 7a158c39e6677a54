"""What a page costs as the corpus grows: Milvus rows, bytes on disk and RAM per page, on Milvus Lite and
on a real Milvus server, with and without token pooling (and what pooling costs in recall).

    python bench/scale_footprint.py --pages 200 --json bench/results/scale_200.json

Pages are the ColPali-shaped synthetic pages of ``bench/corpus.py`` (1,030 x 128). Token pooling is
colpali-engine's hierarchical pooling (what ``ColPaliEmbedder(pool_factor=...)`` applies); its recall
is measured against exhaustive MaxSim over the *unpooled* pages, so it is pooling's own cost. The
server is the real standalone Milvus that the tests start (PyPI package ``milvus``), on loopback;
its RAM is the server process's resident memory after the collection is loaded and indexed.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).parents[1] / "tests"))  # the test suite's embedded Milvus server

from corpus import Corpus, FloatArray, make_corpus

from colpali_milvus import MilvusMultiVectorStore, maxsim


def pool(pages: list[FloatArray], factor: int) -> list[FloatArray]:
    if factor == 1:
        return pages
    import torch
    from colpali_engine.compression.token_pooling import HierarchicalTokenPooler

    pooled = HierarchicalTokenPooler().pool_embeddings([torch.from_numpy(p) for p in pages], pool_factor=factor)
    return [np.ascontiguousarray(p.numpy(), dtype=np.float32) for p in pooled]


def quality(corpus: Corpus, pages: list[FloatArray]) -> dict[str, float]:
    """recall@5 of the pooled pages' exact ranking against the unpooled exact ranking, and hit@1."""
    recalls, hits = [], []
    for query, target in zip(corpus.queries, corpus.targets, strict=True):
        exact = np.argsort(-maxsim(query, corpus.pages), kind="stable")[:5]
        ranked = np.argsort(-maxsim(query, pages), kind="stable")
        recalls.append(len(set(exact) & set(ranked[:5])) / 5)
        hits.append(float(ranked[0] == target))
    return {"recall_at_5": float(np.mean(recalls)), "hit_at_1": float(np.mean(hits))}


def folder_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) if path.exists() else 0


def rss_bytes(pid: int | str = "self") -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def on_lite(pages: list[FloatArray], folder: Path) -> dict[str, Any]:
    uri = folder / "lite.db"
    started = time.perf_counter()
    with MilvusMultiVectorStore(uri, dim=pages[0].shape[1]) as store:
        store.add(pages)
    ingest_s = time.perf_counter() - started
    before = rss_bytes()
    with MilvusMultiVectorStore(uri) as store:
        store.search(pages[0][:4], k=5)  # loads the vector cache
        ram = rss_bytes() - before
    return {
        "ingest_s": round(ingest_s, 1),
        "disk_bytes": folder_bytes(Path(f"{uri}")) + folder_bytes(Path(f"{uri}.cache")),
        "ram_bytes": ram,
    }


def on_server(pages: list[FloatArray], folder: Path) -> dict[str, Any]:
    from milvus_server import EmbeddedMilvus

    server = EmbeddedMilvus(folder / "server")
    server.start()
    try:
        data = folder / "server" / "milvus" / "data"
        pid = server._server.server_proc.pid
        disk_before, ram_before = folder_bytes(data), rss_bytes(pid)
        started = time.perf_counter()
        with MilvusMultiVectorStore(server.uri, dim=pages[0].shape[1]) as store:
            store.add(pages)
            info = store.wait_for_index(timeout=1800)
            indexed_s = time.perf_counter() - started
            store.search(pages[0][:4], k=5)
            time.sleep(5)  # let the server settle its buffers before reading its memory
            return {
                "ingest_s": round(indexed_s, 1),
                "indexed": info.indexed_vectors == info.vectors,
                "disk_bytes": folder_bytes(data) - disk_before,
                "ram_bytes": rss_bytes(pid) - ram_before,
            }
    finally:
        server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pages", type=int, default=200)
    parser.add_argument("--queries", type=int, default=50)
    parser.add_argument("--pool-factors", default="1,2,3")
    parser.add_argument("--backends", default="lite,server")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()

    corpus = make_corpus(args.pages, n_queries=args.queries, seed=0)
    rows: list[dict[str, Any]] = []
    for factor in (int(f) for f in args.pool_factors.split(",")):
        started = time.perf_counter()
        pages = pool(corpus.pages, factor)
        pool_s = time.perf_counter() - started
        vectors = float(np.mean([len(p) for p in pages]))
        measured = quality(corpus, pages)
        for backend in args.backends.split(","):
            with tempfile.TemporaryDirectory() as tmp:
                figures = on_lite(pages, Path(tmp)) if backend == "lite" else on_server(pages, Path(tmp))
            row = {
                "backend": backend,
                "pool_factor": factor,
                "vectors_per_page": round(vectors, 1),
                "disk_kib_per_page": round(figures["disk_bytes"] / args.pages / 1024, 1),
                "ram_kib_per_page": round(figures["ram_bytes"] / args.pages / 1024, 1),
                "pooling_ms_per_page": round(1000 * pool_s / args.pages, 1),
                **{name: round(value, 3) for name, value in measured.items()},
                **figures,
            }
            rows.append(row)
            print(json.dumps(row), flush=True)

    columns = [
        "backend",
        "pool_factor",
        "vectors_per_page",
        "disk_kib_per_page",
        "ram_kib_per_page",
        "recall_at_5",
        "hit_at_1",
        "ingest_s",
    ]
    print("\n| " + " | ".join(columns) + " |\n|" + "---|" * len(columns))
    for row in rows:
        print("| " + " | ".join(str(row[c]) for c in columns) + " |")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"pages": args.pages, "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
