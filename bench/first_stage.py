"""The first stage in isolation: recall@5 against exhaustive MaxSim and latency, per corpus family.

    python bench/first_stage.py lite patches 1000
    python bench/first_stage.py server needle 200 --depths 32,96
    python bench/first_stage.py server patches 1000 --depths 96 --settle 900

``lite`` searches the cached path's in-process copy directly (every page scored on its int8
codes with a proven error bound, pages rescored exactly until the top 5 is certified, at least
``depth`` of them: what the Lite store does, without a Milvus request; ``rescored_p50`` reports how
many pages the proof scored exactly, ``refined_p50`` how many it scored on both int8 layers before
that); ``server`` ingests into the real Milvus 2.3.5 server of the tests (loopback) and searches
with the store's default server path. 50 queries; prints
one line per depth and appends JSON lines to ``--json``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from families import build_corpus

from colpali_milvus.search.maxsim import maxsim_flat, page_offsets


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("path", choices=("lite", "server"))
    parser.add_argument("family")
    parser.add_argument("pages", type=int)
    parser.add_argument(
        "--depths", default="0", help="lite: the fewest pages rescored; server: pages past the first stage"
    )
    parser.add_argument("--queries", type=int, default=50)
    parser.add_argument("--json", type=Path)
    parser.add_argument(
        "--settle",
        type=float,
        default=0.0,
        help="server: after the index is built, wait up to this many seconds for the server to go idle "
        "(it compacts segments for minutes after a large ingest; queries then measure the busy server)",
    )
    args = parser.parse_args()
    corpus = build_corpus(args.family, args.pages, args.queries, 0)
    flat, offsets = np.concatenate(corpus.pages), page_offsets(corpus.pages)
    exhaustive, exhaustive_latency = [], []
    for query in corpus.queries:  # numpy alone: torch is not loaded yet
        started = time.perf_counter()
        exhaustive.append(np.argsort(-maxsim_flat(query, flat, offsets), kind="stable")[:5].tolist())
        exhaustive_latency.append(time.perf_counter() - started)
    depths = [int(d) for d in (args.depths or ("0" if args.path == "lite" else "96")).split(",")]
    search_at = _lite(corpus) if args.path == "lite" else _server(corpus, args.settle)
    for depth in depths:
        search = search_at(depth)
        search(corpus.queries[0])  # warm-up
        recall, latency, agree, rescored, refined = [], [], 0, [], []
        for query, expected in zip(corpus.queries, exhaustive, strict=True):
            started = time.perf_counter()
            got = search(query)
            latency.append(time.perf_counter() - started)
            rescored.append(getattr(search, "rescored", lambda: 0)())
            refined.append(getattr(search, "refined", lambda: 0)())
            recall.append(len(set(got) & set(expected)) / 5)
            agree += bool(got) and got[0] == expected[0]
        result = {
            "path": args.path,
            "family": args.family,
            "pages": args.pages,
            "depth": depth,
            "recall_at_5": round(float(np.mean(recall)), 3),
            "hit_at_1_agrees": round(agree / len(recall), 3),
            "p50_ms": round(float(np.median(latency)) * 1000, 1),
            "p95_ms": round(float(np.percentile(latency, 95)) * 1000, 1),
            "exhaustive_p50_ms": round(float(np.median(exhaustive_latency)) * 1000, 1),
            "rescored_p50": float(np.median(rescored)),
            "rescored_max": int(max(rescored)),
            "refined_p50": float(np.median(refined)),
            "refined_max": int(max(refined)),
        }
        print(" ".join(f"{key}={value}" for key, value in result.items()), flush=True)
        if args.json:
            with args.json.open("a", encoding="utf-8") as file:
                file.write(json.dumps(result) + "\n")


def _lite(corpus):  # type: ignore[no-untyped-def]
    import colpali_milvus.store.cache as cache_module
    from colpali_milvus.store.cache import PageVectorCache

    # The cache keeps only the rescored count: record the whole certificate of each search on the way.
    last = {}
    search_pages = cache_module.certified_search

    def recorded(*args, **kwargs):  # type: ignore[no-untyped-def]
        last["top"] = search_pages(*args, **kwargs)
        return last["top"]

    cache_module.certified_search = recorded
    cache = PageVectorCache(corpus.dim)
    for i, page in enumerate(corpus.pages):
        cache.put(f"p{i}", page, {"digest": ""})

    def at(depth: int):  # type: ignore[no-untyped-def]
        def search(query):  # type: ignore[no-untyped-def]
            ids, _, _ = cache.top_k(query, 5, min_rescored=depth)
            return [int(page_id[1:]) for page_id in ids]

        search.rescored = lambda: cache.last_rescored  # type: ignore[attr-defined]
        search.refined = lambda: getattr(last.get("top"), "refined", 0)  # type: ignore[attr-defined]
        return search

    return at


def _server(corpus, settle: float):  # type: ignore[no-untyped-def]
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    from colpali_milvus.store.milvus import MilvusMultiVectorStore
    from milvus_server import EmbeddedMilvus

    server = EmbeddedMilvus(Path(tempfile.mkdtemp()))
    server.start()
    store = MilvusMultiVectorStore(server.uri, collection_name="first_stage", dim=corpus.dim)
    for start in range(0, len(corpus.pages), 16):
        ids = [f"p{i}" for i in range(start, min(start + 16, len(corpus.pages)))]
        store.add(corpus.pages[start : start + 16], ids=ids)
    store.flush()
    store.wait_for_index()
    _wait_until_idle(server._server.server_proc.pid, settle)

    def at(depth: int):  # type: ignore[no-untyped-def]
        searcher = MilvusMultiVectorStore(server.uri, collection_name="first_stage", rerank_depth=depth)
        return lambda query: [int(hit.page_id[1:]) for hit in searcher.search(query, k=5)]

    return at


def _wait_until_idle(pid: int, limit: float, busy: float = 0.2, window: float = 10.0) -> None:
    """Wait (at most ``limit`` seconds) until the process uses under ``busy`` of a core over ``window``."""
    ticks = os.sysconf("SC_CLK_TCK")

    def cpu_seconds() -> float:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / ticks  # utime + stime

    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        before = cpu_seconds()
        time.sleep(window)
        used = (cpu_seconds() - before) / window
        print(f"server busy: {used:.0%} of a core", flush=True)
        if used < busy:
            return


if __name__ == "__main__":
    main()
