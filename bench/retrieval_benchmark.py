"""Store-side retrieval benchmark: colpali-milvus (Milvus Lite and a real Milvus server) vs the Milvus
tutorial's retriever, exhaustive MaxSim, LanceDB and Qdrant, on one seeded corpus, in one run on one machine.

    python bench/retrieval_benchmark.py --pages 1000 --json bench/results/retrieval_1000.json
    python bench/retrieval_benchmark.py --pages 4000 --contenders colpali-milvus,numpy-exhaustive
    python bench/retrieval_benchmark.py --family patches --pages 200 \
        --contenders colpali-milvus,colpali-milvus-server,numpy-exhaustive

``--family`` picks the corpus (``bench/families.py``): ``clustered`` (the default: ``bench/corpus.py``,
the published figures' corpus), ``patches``, ``needle``, or ``real`` (real MiniLM token vectors of a
Debian manual, judged by its index: ``bench/real_tokens.py``; ``--pages`` above its size means all).

Each contender runs in its own process over the same corpus. The two colpali-milvus contenders
ingest in one process and serve from a second, fresh one that holds no pages (as a serving process
would): ``colpali-milvus`` on Milvus Lite, ``colpali-milvus-server`` on the real standalone Milvus
2.3.5 that the tests start (PyPI package ``milvus``, loopback only), both with default store
settings (the server: no vector cache). Figures: time until the corpus is searchable (store side
only: inserting and index building, no model; the server's start is not counted, its index build
is), time from opening the store in the fresh process to its first answer, p50/p95 query latency
(query encoding excluded), recall@5 and recall@10 against the exhaustive MaxSim ranking of the
same vectors, hit@1 (the planted page, or for ``real`` any judged page, ranked first), nDCG@5
against the judgments (binary; the planted page for synthetic families), bytes on disk per page,
peak RSS, and for the store contenders the serving process's RSS growth per page (from before the
store opens to after the last query; Milvus Lite runs inside that process, a server does not).
Prints one table and writes JSON.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import contextlib
import ctypes
import functools
import gc
import json
import os
import resource
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).parents[1] / "tests"))  # the test suite's embedded Milvus server

from families import FAMILIES, FamilyCorpus, build_corpus
from real_tokens import ndcg_at

from colpali_milvus.search.maxsim import maxsim_flat, page_offsets

Search = Callable[[np.ndarray, int], list[int]]
CONTENDERS = (
    "colpali-milvus",
    "colpali-milvus-server",
    "colpali-milvus-server-nothing-held",
    "milvus-tutorial",
    "numpy-exhaustive",
    "qdrant-local",
    "lancedb-flat",
    "lancedb-ivfpq-refine",
)
_INSERT_BATCH_PAGES = 16
_SERVER_START_ATTEMPTS = 3
_MODEL_NAME = {"real": "bench/all-MiniLM-L6-v2-tokens"}


def emit(**event: Any) -> None:
    """One JSON event on stdout, with this process's peak RSS so far."""
    event["peak_rss_mib"] = peak_rss_bytes() / 2**20
    print(json.dumps(event), flush=True)


def rss_bytes(pid: int | str = "self", field: str = "VmRSS") -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) * 1024
    return 0


def peak_rss_bytes() -> int:
    """This process's own peak RSS (VmHWM). Not ru_maxrss: Linux carries that across exec, so a child
    started by a process holding the corpus would report the parent's memory as its own peak."""
    return rss_bytes(field="VmHWM") or resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def settle_memory() -> None:
    """Give freed memory back to the system, so that RSS differences measure what is held."""
    gc.collect()
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)


def folder_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) if path.exists() else 0


@dataclass
class Run:
    """What a contender's build leaves for the run: cleanups, and a fresh serving process (store contenders)."""

    family: str
    stack: contextlib.ExitStack  # closed last (a server's stop)
    stores: contextlib.ExitStack = field(default_factory=contextlib.ExitStack)  # closed once searchable
    facts: dict[str, Any] = field(default_factory=dict)  # extra figures for the "searchable" event
    serve_uri: str | None = None  # set by the store contenders: queries then run in a fresh process
    disk_folder: Path | None = None  # where the contender's data lives, if not the whole temp folder
    server_pid: int | None = None


def _fill_store(store: Any, corpus: FamilyCorpus) -> None:
    for start in range(0, len(corpus.pages), _INSERT_BATCH_PAGES):
        batch = corpus.pages[start : start + _INSERT_BATCH_PAGES]
        store.add(
            batch, [{"page": start + i + 1} for i in range(len(batch))], ids=[str(start + i) for i in range(len(batch))]
        )


def _store_search(store: Any) -> Search:
    def search(query: np.ndarray, k: int) -> list[int]:
        return [int(hit.page_id) for hit in store.search(query, k=k)]

    return search


def build_colpali_milvus(corpus: FamilyCorpus, folder: Path, run: Run) -> Search:
    """Milvus Lite, default settings (the cached path)."""
    from colpali_milvus import MilvusMultiVectorStore

    model_name = _MODEL_NAME.get(run.family, "bench/colpali-shaped")
    store = run.stores.enter_context(
        MilvusMultiVectorStore(folder / "colpali.db", dim=corpus.dim, model_name=model_name)
    )
    _fill_store(store, corpus)
    run.serve_uri = str(folder / "colpali.db")
    return _store_search(store)


#: How each server contender's stores are opened: the default (the codes held while they fit the
#: budget, exact) or ``cache=False`` (nothing held: the server's ANN, approximate).
_SERVER_CACHE: dict[str, bool | None] = {"colpali-milvus-server": None, "colpali-milvus-server-nothing-held": False}


def build_colpali_milvus_server(corpus: FamilyCorpus, folder: Path, run: Run, *, cache: bool | None = None) -> Search:
    """The real standalone Milvus 2.3.5 of the tests on loopback, default store settings or ``cache``."""
    from colpali_milvus import MilvusMultiVectorStore
    from milvus_server import EmbeddedMilvus

    started = time.perf_counter()
    for attempt in range(1, _SERVER_START_ATTEMPTS + 1):
        # On a busy machine the server sometimes misses the package's 180 s start window: start afresh.
        server = EmbeddedMilvus(folder / f"server-{attempt}")
        try:
            server.start()
            break
        except TimeoutError:
            server.stop()
            if attempt == _SERVER_START_ATTEMPTS:
                raise
    run.stack.callback(server.stop)
    run.server_pid = server._server.server_proc.pid
    data = server.base_dir / "milvus" / "data"
    run.facts.update(
        server_start_s=round(time.perf_counter() - started, 1),
        server_start_attempts=attempt,
        server_rss_start_bytes=rss_bytes(run.server_pid),
        server_disk_start_bytes=folder_bytes(data),
    )
    run.disk_folder = data
    started = time.perf_counter()
    model_name = _MODEL_NAME.get(run.family, "bench/colpali-shaped")
    store = run.stores.enter_context(
        MilvusMultiVectorStore(server.uri, dim=corpus.dim, model_name=model_name, cache=cache)
    )
    run.facts["search_path"] = store.info().search_path
    _fill_store(store, corpus)
    run.facts["insert_s"] = round(time.perf_counter() - started, 1)
    info = store.wait_for_index(timeout=1800)
    run.facts.update(index_wait_s=round(time.perf_counter() - started, 1), indexed=info.indexed_vectors == info.vectors)
    run.serve_uri = server.uri
    return _store_search(store)


def build_milvus_tutorial(corpus: FamilyCorpus, folder: Path, run: Run) -> Search:
    """The retriever of Milvus's "ColPali with Milvus" tutorial, reproduced faithfully."""
    from pymilvus import DataType, MilvusClient

    client = MilvusClient(str(folder / "tutorial.db"))
    schema = client.create_schema(auto_id=True, enable_dynamic_fields=True)
    schema.add_field(field_name="pk", datatype=DataType.INT64, is_primary=True)
    schema.add_field(field_name="vector", datatype=DataType.FLOAT_VECTOR, dim=corpus.dim)
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


def build_numpy_exhaustive(corpus: FamilyCorpus, folder: Path, run: Run) -> Search:
    vectors = np.concatenate(corpus.pages)  # (all pages' vectors, dim)
    offsets = page_offsets(corpus.pages)
    np.save(folder / "vectors.npy", vectors)  # what it would take to keep it on disk

    def search(query: np.ndarray, k: int) -> list[int]:
        # numpy and its BLAS alone (maxsim_flat would use torch's kernels once torch is loaded)
        similarities = vectors @ query.T  # (rows, n_q)
        scores = np.maximum.reduceat(similarities, offsets, axis=0).sum(axis=1)  # (pages,)
        return np.argsort(-scores, kind="stable")[:k].tolist()

    return search


def build_qdrant_local(corpus: FamilyCorpus, folder: Path, run: Run) -> Search:
    from qdrant_client import QdrantClient, models

    client = QdrantClient(path=str(folder / "qdrant"))
    client.create_collection(
        "pages",
        vectors_config=models.VectorParams(
            size=corpus.dim,
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


def _lancedb_table(corpus: FamilyCorpus, folder: Path) -> Any:
    import lancedb
    import pyarrow as pa

    db = lancedb.connect(str(folder / "lancedb"))
    schema = pa.schema([pa.field("id", pa.int64()), pa.field("vector", pa.list_(pa.list_(pa.float32(), corpus.dim)))])
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


def build_lancedb_flat(corpus: FamilyCorpus, folder: Path, run: Run) -> Search:
    table = _lancedb_table(corpus, folder)

    def search(query: np.ndarray, k: int) -> list[int]:
        rows = (
            table.search(query.tolist(), vector_column_name="vector").metric("cosine").select(["id"]).limit(k).to_list()
        )
        return [int(row["id"]) for row in rows]

    return search


def build_lancedb_ivfpq_refine(corpus: FamilyCorpus, folder: Path, run: Run) -> Search:
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


BUILDERS: dict[str, Callable[[FamilyCorpus, Path, Run], Search]] = {
    "colpali-milvus": build_colpali_milvus,
    "colpali-milvus-server": build_colpali_milvus_server,
    "colpali-milvus-server-nothing-held": functools.partial(build_colpali_milvus_server, cache=False),
    "milvus-tutorial": build_milvus_tutorial,
    "numpy-exhaustive": build_numpy_exhaustive,
    "qdrant-local": build_qdrant_local,
    "lancedb-flat": build_lancedb_flat,
    "lancedb-ivfpq-refine": build_lancedb_ivfpq_refine,
}


def run_contender(name: str, args: argparse.Namespace, max_queries: int) -> None:
    """Build, warm up and query one contender (in this process), printing one JSON event per line.

    Events stream out as they happen, so a contender stopped at the deadline still reports its
    time to searchable and the queries it finished. A store contender closes its store once it is
    searchable and runs its queries in a fresh serving process (``serve``), whose events go to the
    same output.
    """
    corpus = build_corpus(args.family, args.pages, args.queries, args.seed)
    with tempfile.TemporaryDirectory(prefix=f"bench-{name}-") as tmp, contextlib.ExitStack() as stack:
        folder = Path(tmp)
        run = Run(args.family, stack)
        stack.enter_context(run.stores)
        started = time.perf_counter()
        search = BUILDERS[name](corpus, folder, run)
        search(corpus.queries[0], 10)  # searchable means a search has returned (index builds included)
        seconds = time.perf_counter() - started
        disk = folder_bytes(run.disk_folder or folder) - run.facts.pop("server_disk_start_bytes", 0)
        emit(event="searchable", phase="ingest", seconds=seconds, disk_bytes=disk, **run.facts)
        if run.serve_uri is None:
            for query in corpus.queries[:max_queries]:
                t0 = time.perf_counter()
                ranking = search(query, 10)
                emit(event="query", seconds=time.perf_counter() - t0, ranking=ranking)
            return
        run.stores.close()  # Milvus Lite allows one process per file; a server keeps running
        del corpus, search
        served = subprocess.run(_serve_command(name, args, run.serve_uri, max_queries), check=False)
        if run.server_pid is not None:
            emit(event="server", server_rss_bytes=rss_bytes(run.server_pid))
        if served.returncode != 0:
            raise SystemExit(f"the serving process failed (exit {served.returncode})")


def _serve_command(name: str, args: argparse.Namespace, uri: str, max_queries: int) -> list[str]:
    return [
        sys.executable,
        __file__,
        "--serve",
        name,
        "--uri",
        uri,
        "--family",
        args.family,
        "--pages",
        str(args.pages),
        "--queries",
        str(args.queries),  # the same corpus as every other process: the seeded queries depend on it
        "--serve-limit",
        str(max_queries),
        "--seed",
        str(args.seed),
    ]


def serve(name: str, args: argparse.Namespace) -> None:
    """A fresh serving process: open the store, first answer, then the timed queries (no pages held)."""
    import pymilvus  # noqa: F401  (the client library's own import is not memory the collection costs)

    from colpali_milvus import MilvusMultiVectorStore

    corpus = build_corpus(args.family, args.pages, args.queries, args.seed)
    queries, n_pages = corpus.queries, len(corpus.pages)
    del corpus
    settle_memory()
    before = rss_bytes()
    started = time.perf_counter()
    with MilvusMultiVectorStore(args.uri, cache=_SERVER_CACHE.get(name)) as store:
        search = _store_search(store)
        search(queries[0], 10)
        first_answer = time.perf_counter() - started
        after_first = rss_bytes()
        emit(event="reopened", phase="serve", seconds=first_answer, rss_growth_bytes=after_first - before)
        for query in queries[: args.serve_limit]:
            t0 = time.perf_counter()
            ranking = search(query, 10)
            emit(event="query", phase="serve", seconds=time.perf_counter() - t0, ranking=ranking)
        settle_memory()
        emit(
            event="served",
            phase="serve",
            rss_growth_bytes=rss_bytes() - before,
            pages=n_pages,
            search_path=store.info().search_path,
        )


def collect(command: list[str], deadline_s: float | None) -> tuple[dict[str, Any], str]:
    """Run a child contender; gather its events until it ends or the deadline passes."""
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        # Its own process group: at the deadline the serving process and a Milvus server go with it.
        child = subprocess.Popen(command, stdout=out, stderr=err, text=True, start_new_session=True)
        try:
            child.wait(timeout=deadline_s)
            status = "ok" if child.returncode == 0 else f"failed (exit {child.returncode})"
        except subprocess.TimeoutExpired:
            os.killpg(child.pid, signal.SIGKILL)
            child.wait()
            status = f"stopped at the {deadline_s:.0f} s deadline"
        out.seek(0)
        err.seek(0)
        events = [json.loads(line) for line in out if line.startswith("{")]
        stderr = err.read()
    raw: dict[str, Any] = {"status": status, "latencies_s": [], "rankings": [], "peak_rss_mib": 0.0, "facts": {}}
    for event in events:
        kind = event.pop("event")
        peak = event.pop("peak_rss_mib")
        raw["peak_rss_mib"] = max(raw["peak_rss_mib"], peak)
        phase = event.pop("phase", None)
        if phase:
            raw[f"{phase}_peak_rss_mib"] = max(raw.get(f"{phase}_peak_rss_mib", 0.0), peak)
        if kind == "query":
            raw["latencies_s"].append(event["seconds"])
            raw["rankings"].append(event["ranking"])
        elif kind == "searchable":
            raw["time_to_searchable_s"] = event.pop("seconds")
            raw["disk_bytes"] = event.pop("disk_bytes")
            raw["facts"].update(event)
        elif kind == "reopened":
            raw["facts"]["reopen_to_first_answer_s"] = round(event["seconds"], 2)
        elif kind == "served":
            raw["facts"]["serve_rss_growth_bytes"] = event["rss_growth_bytes"]
            raw["facts"]["serve_search_path"] = event.get("search_path", "")
        elif kind == "server":
            raw["facts"]["server_rss_end_bytes"] = event["server_rss_bytes"]
    return raw, stderr


def summarise(
    name: str, raw: dict[str, Any], corpus: FamilyCorpus, exact: list[list[int]], pages: int
) -> dict[str, Any]:
    row: dict[str, Any] = {"contender": name, "status": raw["status"], "queries": len(raw["rankings"])}
    facts = dict(raw["facts"])
    if "time_to_searchable_s" in raw:
        row["time_to_searchable_s"] = round(raw["time_to_searchable_s"], 1)
        row["disk_bytes_per_page"] = int(raw["disk_bytes"] / pages)
    if "reopen_to_first_answer_s" in facts:
        row["reopen_to_first_answer_s"] = facts.pop("reopen_to_first_answer_s")
    row["peak_rss_mib"] = int(raw["peak_rss_mib"])
    for phase in ("ingest", "serve"):
        if f"{phase}_peak_rss_mib" in raw:
            row[f"{phase}_peak_rss_mib"] = int(raw[f"{phase}_peak_rss_mib"])
    if "serve_rss_growth_bytes" in facts:
        row["serve_rss_growth_bytes_per_page"] = int(facts.pop("serve_rss_growth_bytes") / pages)
    if "server_rss_end_bytes" in facts:
        start = facts.pop("server_rss_start_bytes", 0)
        row["server_rss_mib"] = int(facts.pop("server_rss_end_bytes") / 2**20)
        row["server_rss_growth_mib"] = int((row["server_rss_mib"] * 2**20 - start) / 2**20)
    row.update(facts)
    rankings = raw["rankings"]
    if not rankings:
        return row
    n = len(rankings)

    def recall(depth: int) -> float:
        pairs = zip(rankings, exact[:n], strict=True)
        return float(np.mean([len(set(r[:depth]) & set(e[:depth])) / depth for r, e in pairs]))

    judged = corpus.relevant[:n]
    latencies_ms = [s * 1000 for s in raw["latencies_s"]]
    row.update(
        p50_ms=round(statistics.median(latencies_ms), 1),
        p95_ms=round(float(np.percentile(latencies_ms, 95)), 1),
        recall_at_5=round(recall(5), 3),
        recall_at_10=round(recall(10), 3),
        top1_as_exhaustive=round(float(np.mean([r[:1] == e[:1] for r, e in zip(rankings, exact[:n], strict=True)])), 3),
        hit_at_1=round(float(np.mean([r[0] in j for r, j in zip(rankings, judged, strict=True)])), 3),
        ndcg_at_5=round(float(np.mean([ndcg_at(r, j) for r, j in zip(rankings, judged, strict=True)])), 3),
    )
    return row


COLUMNS = [
    "contender",
    "status",
    "queries",
    "time_to_searchable_s",
    "reopen_to_first_answer_s",
    "p50_ms",
    "p95_ms",
    "recall_at_5",
    "recall_at_10",
    "top1_as_exhaustive",
    "hit_at_1",
    "ndcg_at_5",
    "disk_bytes_per_page",
    "peak_rss_mib",
    "serve_rss_growth_bytes_per_page",
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--family", choices=FAMILIES, default="clustered")
    parser.add_argument("--pages", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--queries", type=int, default=50)
    parser.add_argument("--tutorial-queries", type=int, default=5, help="the tutorial needs minutes per query on Lite")
    parser.add_argument("--contenders", default=",".join(CONTENDERS))
    parser.add_argument("--deadline", type=float, help="seconds a contender may run before it is stopped")
    parser.add_argument("--json", type=Path)
    parser.add_argument("--child", help=argparse.SUPPRESS)  # internal: run one contender, print raw JSON
    parser.add_argument("--serve", help=argparse.SUPPRESS)  # internal: a store contender's serving process
    parser.add_argument("--uri", help=argparse.SUPPRESS)
    parser.add_argument("--serve-limit", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.serve:
        serve(args.serve, args)
        return
    if args.child:
        run_contender(args.child, args, args.tutorial_queries if args.child == "milvus-tutorial" else args.queries)
        return

    corpus = build_corpus(args.family, args.pages, args.queries, args.seed)
    pages = len(corpus.pages)
    vectors = np.concatenate(corpus.pages)
    offsets = page_offsets(corpus.pages)
    exact = [np.argsort(-maxsim_flat(q, vectors, offsets), kind="stable")[:10].tolist() for q in corpus.queries]
    del vectors

    rows = []
    for name in args.contenders.split(","):
        command = [
            sys.executable,
            __file__,
            "--child",
            name,
            "--family",
            args.family,
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
        rows.append(summarise(name, raw, corpus, exact, pages))
        if raw["status"].startswith("failed"):
            print(f"{name}: {raw['status']}\n{stderr[-2000:]}", file=sys.stderr)
            rows[-1]["stderr_tail"] = stderr[-2000:]
        print(json.dumps(rows[-1]), flush=True)

    vectors_per_page = round(float(np.mean([len(p) for p in corpus.pages])), 1)
    print(
        f"\nfamily={args.family} pages={pages} seed={args.seed} queries={len(corpus.queries)} "
        f"({vectors_per_page} x {corpus.dim} float32 per page)"
    )
    print(" | ".join(COLUMNS))
    for row in rows:
        print(" | ".join(str(row.get(column, "-")) for column in COLUMNS))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        result = {
            "family": args.family,
            "pages": pages,
            "seed": args.seed,
            "queries": len(corpus.queries),
            "dim": corpus.dim,
            "vectors_per_page": vectors_per_page,
            "rows": rows,
        }
        args.json.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
