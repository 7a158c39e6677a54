"""`copy` without re-embedding: Milvus Lite -> a real Milvus server -> Milvus Lite, with identical answers.

    python bench/copy_roundtrip.py --pages 1000 --json bench/results/copy_roundtrip_1000.json

Pages are a corpus family of ``bench/families.py`` (``patches`` by default) cut to 730-1,030 float32
vectors, as ``bench/lite_scale.py`` makes them. The script fills a Lite file, answers every query
there (k = 10), starts the test suite's real Milvus 2.3.5 server on loopback, then times:

1. ``copy_collection(lite, server)``: every page into the server's flattened layout (vector rows,
   summaries, packed floats), each write checked against the source's digest;
2. the same copy again: every page held already, so every page is skipped (idempotence);
3. ``copy_collection(server, new lite)``: back into the packed layout.

It then answers the same queries on the server (its default codes mode) and on the new Lite file
and compares them with the first answers: the same page ids in the same order, scores within 1e-5.
Prints a table and writes a JSON record.
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

LENGTHS = (730, 1030)
K = 10


def answers(store: Any, queries: list[np.ndarray]) -> list[list[tuple[str, float]]]:
    return [[(hit.page_id, hit.score) for hit in store.search(query, k=K)] for query in queries]


def agreement(reference: list[list[tuple[str, float]]], other: list[list[tuple[str, float]]]) -> dict[str, Any]:
    same_ids = sum([pid for pid, _ in a] == [pid for pid, _ in b] for a, b in zip(reference, other, strict=True))
    worst = max(
        (abs(sa - sb) for a, b in zip(reference, other, strict=True) for (_, sa), (_, sb) in zip(a, b, strict=False)),
        default=0.0,
    )
    return {"queries_with_identical_ids": same_ids, "queries": len(reference), "max_score_difference": worst}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--family", default="patches")
    parser.add_argument("--pages", type=int, default=1000)
    parser.add_argument("--queries", type=int, default=30)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()

    from families import build_corpus

    from colpali_milvus import MilvusMultiVectorStore, copy_collection
    from milvus_server import EmbeddedMilvus

    corpus = build_corpus(args.family, args.pages, n_queries=args.queries, seed=args.seed)
    rng = np.random.default_rng(args.seed + 1)
    pages = [page[: int(rng.integers(LENGTHS[0], LENGTHS[1] + 1))] for page in corpus.pages]
    queries = list(corpus.queries)
    record: dict[str, Any] = {"family": args.family, "pages": args.pages, "queries": args.queries, "k": K}
    with tempfile.TemporaryDirectory(prefix="copy-roundtrip-") as folder:
        work = Path(folder)
        source, back = str(work / "source.db"), str(work / "back.db")
        started = time.perf_counter()
        with MilvusMultiVectorStore(source, collection_name="docs", dim=corpus.dim, model_name="bench/copy") as store:
            for first in range(0, len(pages), 32):
                ids = [f"p{i}" for i in range(first, min(first + 32, len(pages)))]
                store.add(pages[first : first + 32], [{"page": int(i[1:]) + 1} for i in ids], ids=ids)
            record["lite_ingest_s"] = round(time.perf_counter() - started, 1)
            reference = answers(store, queries)
        del pages, corpus

        server = EmbeddedMilvus(work / "server")
        server.start()
        try:
            steps = (
                ("lite_to_server", source, server.uri),
                ("lite_to_server_again", source, server.uri),
                ("server_to_lite", server.uri, back),
            )
            for name, from_uri, to_uri in steps:
                report = copy_collection(from_uri, to_uri, collection="docs")
                record[name] = {
                    "seconds": round(report.seconds, 1),
                    "pages_per_s": round(report.pages / report.seconds, 1) if report.seconds else None,
                    "copied": len(report.copied),
                    "skipped": len(report.skipped),
                    "failed": len(report.failed),
                }
            with MilvusMultiVectorStore(server.uri, collection_name="docs") as store:
                record["server_search_path"] = store.info().search_path
                record["server_agreement"] = agreement(reference, answers(store, queries))
        finally:
            server.stop()
        with MilvusMultiVectorStore(back, collection_name="docs") as store:
            record["lite_agreement"] = agreement(reference, answers(store, queries))

    print("| step | seconds | pages/s | copied | skipped | failed |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    for name in ("lite_to_server", "lite_to_server_again", "server_to_lite"):
        cells = [name, *(record[name][key] for key in ("seconds", "pages_per_s", "copied", "skipped", "failed"))]
        print("| " + " | ".join(map(str, cells)) + " |")
    for name in ("server_agreement", "lite_agreement"):
        found = record[name]
        print(
            f"{name}: identical top {K} in {found['queries_with_identical_ids']} of {found['queries']} queries, "
            f"largest score difference {found['max_score_difference']:.2e}"
        )
    if args.json:
        args.json.write_text(json.dumps(record, indent=2) + "\n")


if __name__ == "__main__":
    main()
