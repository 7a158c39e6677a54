"""Store-side retrieval benchmark: colpali-milvus vs the Milvus tutorial's retriever, exhaustive MaxSim,
LanceDB and Qdrant, on one seeded ColPali-shaped corpus, in one run on one machine.

    python bench/retrieval_benchmark.py --pages 1000 --json bench/results/retrieval_1000.json
    python bench/retrieval_benchmark.py --pages 4000 --contenders colpali-milvus,numpy-exhaustive

Each contender runs in its own process (so peak RSS is its own) over the same corpus (see
``bench/corpus.py``). Figures: time until the corpus is searchable (store side only: inserting and
index building, no model), p50/p95 query latency (query encoding excluded), recall@5 and recall@10
against the exhaustive MaxSim ranking, hit@1 for the planted page, bytes on disk per page, peak RSS.
Prints one table and writes JSON.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))

from corpus import DIM, Corpus, make_corpus

from colpali_milvus.search.maxsim import maxsim_flat

Search = Callable[[np.ndarray, int], list[int]]
CONTENDERS = (
    "colpali-milvus",
    "milvus-tutorial",
    "numpy-exhaustive",
    "qdrant-local",
    "lancedb-flat",
    "lancedb-ivfpq-refine",
)
_INSERT_BATCH_PAGES = 16


def build_colpali_milvus(corpus: Corpus, folder: Path) -> Search:
    from colpali_milvus import MilvusMultiVectorStore

    store = MilvusMultiVectorStore(folder / "colpali.db", dim=DIM, model_name="bench/colpali-shaped")
    for start in range(0, len(corpus.pages), _INSERT_BATCH_PAGES):
        batch = corpus.pages[start : start + _INSERT_BATCH_PAGES]
        store.add(
            batch, [{"page": start + i + 1} for i in range(len(batch))], ids=[str(start + i) for i in range(len(batch))]
        )

    def search(query: np.ndarray, k: int) -> list[int]:
        return [int(hit.page_id) for hit in store.search(query, k=k)]

    return search


def build_milvus_tutorial(corpus: Corpus, folder: Path) -> Search:
    """The retriever of Milvus's "ColPali with Milvus" tutorial, reproduced faithfully."""
    from pymilvus import DataType, MilvusClient

    client = MilvusClient(str(folder / "tutorial.db"))
    schema = client.create_schema(auto_id=True, enable_dynamic_fields=True)
    schema.add_field(field_name="pk", datatype=DataType.INT64, is_primary=True)
    schema.add_field(field_name="vector", datatype=DataType.FLOAT_VECTOR, dim=DIM)
    schema.add_field(field_name="seq_id", datatype=DataType.INT16)
    schema.add_field(field_name="doc_id", datatype=DataType.INT64)
    schema.add_field(field_name="doc", datatype=DataType.VARCHAR, max_length=65535)
    client.create_collection(collection_name="colpali", schema=schema)
    index_params = client.prepare_index_params()
    index_params.add_index(
        field_name="vector", metric_type="IP", index_type="HNSW", params={"M": 16, "efConstruction": 500}
    )
    client.create_index("colpali", index_params=index_params, sync=True)
    scalar_index = client.prepare_index_params()
    scalar_index.add_index(field_name="doc_id", index_name="int32_index", index_type="INVERTED")
    client.create_index("colpali", index_params=scalar_index, sync=True)
    client.load_collection("colpali")
    for doc_id, page in enumerate(corpus.pages):  # the tutorial inserts one page per request
        client.insert(
            "colpali",
            [{"vector": page[i], "seq_id": i, "doc_id": doc_id, "doc": f"page-{doc_id}.png"} for i in range(len(page))],
        )

    def rerank_single_doc(doc_id: int, data: np.ndarray) -> tuple[float, int]:
        doc_colbert_vecs = client.query(
            collection_name="colpali",
            filter=f"doc_id in [{doc_id}]",
            output_fields=["seq_id", "vector", "doc"],
            limit=1000,
        )
        doc_vecs = np.vstack([doc_colbert_vecs[i]["vector"] for i in range(len(doc_colbert_vecs))])
        return float(np.dot(data, doc_vecs.T).max(1).sum()), doc_id

    def search(query: np.ndarray, k: int) -> list[int]:
        results = client.search(
            "colpali",
            query.tolist(),
            limit=50,
            output_fields=["vector", "seq_id", "doc_id"],
            search_params={"metric_type": "IP", "params": {}},
        )
        doc_ids = {hit["entity"]["doc_id"] for hits in results for hit in hits}
        with concurrent.futures.ThreadPoolExecutor(max_workers=300) as executor:
            scores = list(executor.map(lambda doc_id: rerank_single_doc(doc_id, query), doc_ids))
        scores.sort(key=lambda item: item[0], reverse=True)
        return [doc_id for _, doc_id in scores[:k]]

    return search


def build_numpy_exhaustive(corpus: Corpus, folder: Path) -> Search:
    vectors = np.concatenate(corpus.pages)  # (n_pages * 1030, DIM)
    offsets = np.arange(len(corpus.pages), dtype=np.int64) * corpus.pages[0].shape[0]
    np.save(folder / "vectors.npy", vectors)  # what it would take to keep it on disk

    def search(query: np.ndarray, k: int) -> list[int]:
        scores = maxsim_flat(query, vectors, offsets)
        return np.argsort(-scores, kind="stable")[:k].tolist()

    return search


def build_qdrant_local(corpus: Corpus, folder: Path) -> Search:
    from qdrant_client import QdrantClient, models

    client = QdrantClient(path=str(folder / "qdrant"))
    client.create_collection(
        "pages",
        vectors_config=models.VectorParams(
            size=DIM,
            distance=models.Distance.DOT,
            multivector_config=models.MultiVectorConfig(comparator=models.MultiVectorComparator.MAX_SIM),
        ),
    )
    for start in range(0, len(corpus.pages), _INSERT_BATCH_PAGES):
        points = [
            models.PointStruct(id=start + i, vector=page.tolist())
            for i, page in enumerate(corpus.pages[start : start + _INSERT_BATCH_PAGES])
        ]
        client.upsert("pages", points=points)

    def search(query: np.ndarray, k: int) -> list[int]:
        return [int(point.id) for point in client.query_points("pages", query=query.tolist(), limit=k).points]

    return search


def _lancedb_table(corpus: Corpus, folder: Path) -> Any:
    import lancedb
    import pyarrow as pa

    db = lancedb.connect(str(folder / "lancedb"))
    schema = pa.schema([pa.field("id", pa.int64()), pa.field("vector", pa.list_(pa.list_(pa.float32(), DIM)))])
    table = db.create_table("pages", schema=schema)
    for start in range(0, len(corpus.pages), _INSERT_BATCH_PAGES):
        batch = corpus.pages[start : start + _INSERT_BATCH_PAGES]
        table.add(
            pa.table(
                {"id": list(range(start, start + len(batch))), "vector": [page.tolist() for page in batch]},
                schema=schema,
            )
        )
    return table


def build_lancedb_flat(corpus: Corpus, folder: Path) -> Search:
    table = _lancedb_table(corpus, folder)

    def search(query: np.ndarray, k: int) -> list[int]:
        rows = (
            table.search(query.tolist(), vector_column_name="vector").metric("cosine").select(["id"]).limit(k).to_list()
        )
        return [int(row["id"]) for row in rows]

    return search


def build_lancedb_ivfpq_refine(corpus: Corpus, folder: Path) -> Search:
    table = _lancedb_table(corpus, folder)
    table.create_index(
        metric="cosine", vector_column_name="vector", index_type="IVF_PQ", num_partitions=64, num_sub_vectors=16
    )

    def search(query: np.ndarray, k: int) -> list[int]:
        rows = (
            table.search(query.tolist(), vector_column_name="vector")
            .metric("cosine")
            .nprobes(20)
            .refine_factor(10)
            .select(["id"])
            .limit(k)
            .to_list()
        )
        return [int(row["id"]) for row in rows]

    return search


BUILDERS = {
    "colpali-milvus": build_colpali_milvus,
    "milvus-tutorial": build_milvus_tutorial,
    "numpy-exhaustive": build_numpy_exhaustive,
    "qdrant-local": build_qdrant_local,
    "lancedb-flat": build_lancedb_flat,
    "lancedb-ivfpq-refine": build_lancedb_ivfpq_refine,
}


def run_contender(name: str, pages: int, seed: int, max_queries: int) -> None:
    """Build, warm up and query one contender (in this process), printing one JSON event per line.

    Events stream out as they happen, so a contender stopped at the deadline still reports its
    time to searchable and the queries it finished.
    """

    def emit(**event: Any) -> None:
        event["peak_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(json.dumps(event), flush=True)

    corpus = make_corpus(pages, seed=seed)
    with tempfile.TemporaryDirectory(prefix=f"bench-{name}-") as tmp:
        folder = Path(tmp)
        started = time.perf_counter()
        search = BUILDERS[name](corpus, folder)
        search(corpus.queries[0], 10)  # searchable means a search has returned (index builds included)
        disk = sum(path.stat().st_size for path in folder.rglob("*") if path.is_file())
        emit(event="searchable", seconds=time.perf_counter() - started, disk_bytes=disk)
        for query in corpus.queries[:max_queries]:
            t0 = time.perf_counter()
            ranking = search(query, 10)
            emit(event="query", seconds=time.perf_counter() - t0, ranking=ranking)


def collect(command: list[str], deadline_s: float | None) -> tuple[dict[str, Any], str]:
    """Run a child contender; gather its events until it ends or the deadline passes."""
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        child = subprocess.Popen(command, stdout=out, stderr=err, text=True)
        try:
            child.wait(timeout=deadline_s)
            status = "ok" if child.returncode == 0 else f"failed (exit {child.returncode})"
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()
            status = f"stopped at the {deadline_s:.0f} s deadline"
        out.seek(0)
        err.seek(0)
        events = [json.loads(line) for line in out if line.startswith("{")]
        stderr = err.read()
    raw: dict[str, Any] = {"status": status, "latencies_s": [], "rankings": [], "peak_rss_mib": 0.0}
    for event in events:
        raw["peak_rss_mib"] = max(raw["peak_rss_mib"], event["peak_rss_mib"])
        if event["event"] == "searchable":
            raw["time_to_searchable_s"] = event["seconds"]
            raw["disk_bytes"] = event["disk_bytes"]
        else:
            raw["latencies_s"].append(event["seconds"])
            raw["rankings"].append(event["ranking"])
    return raw, stderr


def summarise(name: str, raw: dict[str, Any], corpus: Corpus, exact: list[list[int]], pages: int) -> dict[str, Any]:
    row: dict[str, Any] = {"contender": name, "status": raw["status"], "queries": len(raw["rankings"])}
    if "time_to_searchable_s" in raw:
        row["time_to_searchable_s"] = round(raw["time_to_searchable_s"], 1)
        row["disk_bytes_per_page"] = int(raw["disk_bytes"] / pages)
    row["peak_rss_mib"] = int(raw["peak_rss_mib"])
    rankings = raw["rankings"]
    if not rankings:
        return row
    n = len(rankings)

    def recall(depth: int) -> float:
        pairs = zip(rankings, exact[:n], strict=True)
        return float(np.mean([len(set(r[:depth]) & set(e[:depth])) / depth for r, e in pairs]))

    latencies_ms = [s * 1000 for s in raw["latencies_s"]]
    row.update(
        p50_ms=round(statistics.median(latencies_ms), 1),
        p95_ms=round(float(np.percentile(latencies_ms, 95)), 1),
        recall_at_5=round(recall(5), 3),
        recall_at_10=round(recall(10), 3),
        hit_at_1=round(float(np.mean([r[0] == t for r, t in zip(rankings, corpus.targets[:n], strict=True)])), 3),
    )
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pages", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--queries", type=int, default=50)
    parser.add_argument("--tutorial-queries", type=int, default=5, help="the tutorial needs minutes per query on Lite")
    parser.add_argument("--contenders", default=",".join(CONTENDERS))
    parser.add_argument("--deadline", type=float, help="seconds a contender may run before it is stopped")
    parser.add_argument("--json", type=Path)
    parser.add_argument("--child", help=argparse.SUPPRESS)  # internal: run one contender, print raw JSON
    args = parser.parse_args()

    if args.child:
        limit = args.tutorial_queries if args.child == "milvus-tutorial" else args.queries
        run_contender(args.child, args.pages, args.seed, limit)
        return

    corpus = make_corpus(args.pages, seed=args.seed)
    vectors = np.concatenate(corpus.pages)
    offsets = np.arange(args.pages, dtype=np.int64) * corpus.pages[0].shape[0]
    exact = [np.argsort(-maxsim_flat(q, vectors, offsets), kind="stable")[:10].tolist() for q in corpus.queries]
    del vectors

    rows = []
    for name in args.contenders.split(","):
        command = [
            sys.executable,
            __file__,
            "--child",
            name,
            "--pages",
            str(args.pages),
            "--seed",
            str(args.seed),
            "--queries",
            str(args.queries),
            "--tutorial-queries",
            str(args.tutorial_queries),
        ]
        raw, stderr = collect(command, args.deadline)
        if raw["status"].startswith("failed"):
            print(f"{name}: {raw['status']}\n{stderr[-2000:]}", file=sys.stderr)
        rows.append(summarise(name, raw, corpus, exact, args.pages))
        print(json.dumps(rows[-1]), flush=True)

    columns = [
        "contender",
        "status",
        "queries",
        "time_to_searchable_s",
        "p50_ms",
        "p95_ms",
        "recall_at_5",
        "recall_at_10",
        "hit_at_1",
        "disk_bytes_per_page",
        "peak_rss_mib",
    ]
    print(f"\npages={args.pages} seed={args.seed} (1,030 x {DIM} float32 per page, 20-vector queries)")
    print(" | ".join(columns))
    for row in rows:
        print(" | ".join(str(row.get(column, "-")) for column in columns))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"pages": args.pages, "seed": args.seed, "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
