"""The embedded default as the corpus grows: ingest, memory, reopen and search on Milvus Lite, fresh processes.

    python bench/lite_scale.py patches 1000 --json bench/results/lite_scale.jsonl
    python bench/lite_scale.py needle 4000 --queries 20

Pages are a corpus family of ``bench/families.py`` cut to lengths drawn uniformly in 730-1,030
vectors (ColQwen2-like mixed lengths; ``--fixed`` keeps 1,030; ``--bf16`` rounds them to bfloat16, as
the models emit). The parent writes them to a flat
file and computes numpy exhaustive MaxSim (the reference, timed in the same run), then runs:

1. **ingest**: a fresh process opens a new store, adds the pages in batches of ``--batch`` read from
   the file (so it never holds the corpus), answers one query, closes. Reports pages/s to that first
   answer, the time ``close()`` takes (saving the serving copy) and its peak RSS (VmHWM).
2. **serve**: a fresh process opens the store and answers the same first query (reopen to first
   answer, from the process's start and from the store's open), then every query: p50 latency,
   recall@5/@10 and top-1 against exhaustive search. Reports its peak RSS.

Prints a table row and appends one JSON line to ``--json``.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))

LENGTHS = (730, 1030)


def vm_hwm_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def read_pages(work: Path, first: int, count: int) -> list[np.ndarray]:
    """Pages ``[first, first + count)`` read from the flat file into fresh memory (no map to stay resident)."""
    lengths = np.load(work / "lengths.npy")
    starts = np.concatenate(([0], np.cumsum(lengths)))
    dim = int(np.load(work / "dim.npy"))
    rows = int(starts[first + count] - starts[first])
    flat = np.fromfile(work / "pages.f32", dtype=np.float32, count=rows * dim, offset=int(starts[first]) * dim * 4)
    flat = flat.reshape(rows, dim)
    cuts = (starts[first : first + count + 1] - starts[first]).tolist()
    return [flat[cuts[i] : cuts[i + 1]].copy() for i in range(count)]


def child_ingest(work: Path, batch: int) -> dict[str, Any]:
    from colpali_milvus import MilvusMultiVectorStore

    queries = np.load(work / "queries.npz")
    n_pages = int(np.load(work / "lengths.npy").shape[0])
    start = time.perf_counter()
    store = MilvusMultiVectorStore(str(work / "lite.db"), collection_name="bench", dim=int(np.load(work / "dim.npy")))
    for first in range(0, n_pages, batch):
        count = min(batch, n_pages - first)
        store.add(read_pages(work, first, count), ids=[f"p{i}" for i in range(first, first + count)])
    store.search(queries["q0"], k=10)
    to_first_answer = time.perf_counter() - start
    closing = time.perf_counter()
    store.close()
    return {
        "ingest_pages_per_s": n_pages / to_first_answer,
        "ingest_s": to_first_answer,
        "close_s": time.perf_counter() - closing,
        "ingest_peak_rss_mb": vm_hwm_mb(),
    }


def child_serve(work: Path, spawned_at: float) -> dict[str, Any]:
    opened_at = time.time()
    from colpali_milvus import MilvusMultiVectorStore

    queries = np.load(work / "queries.npz")
    store = MilvusMultiVectorStore(str(work / "lite.db"), collection_name="bench")
    first = [hit.page_id for hit in store.search(queries["q0"], k=10)]
    answered_at = time.time()
    ranked, latencies = [first], []
    for i in range(1, len(queries.files)):
        began = time.perf_counter()
        hits = store.search(queries[f"q{i}"], k=10)
        latencies.append(time.perf_counter() - began)
        ranked.append([hit.page_id for hit in hits])
    loaded_from = getattr(store.search_path, "loaded_from", "")
    store.close()
    return {
        "reopen_to_first_answer_s": answered_at - spawned_at,
        "open_to_first_answer_s": answered_at - opened_at,
        "loaded_from": loaded_from,
        "p50_ms": 1000 * float(np.median(latencies)) if latencies else float("nan"),
        "serve_peak_rss_mb": vm_hwm_mb(),
        "ranked": ranked,
    }


def run_child(mode: str, work: Path, *extra: str) -> dict[str, Any]:
    spawned = time.time()
    command = [sys.executable, __file__, "--child", mode, "--work", str(work), "--spawned", repr(spawned), *extra]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise SystemExit(f"{mode} failed:\n{result.stderr[-3000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def prepare(args: argparse.Namespace, work: Path) -> tuple[list[list[str]], float, float]:
    """Write the pages and queries; return the exhaustive top 10 of each query and numpy's p50 and mean seconds."""
    from families import build_corpus

    from colpali_milvus.search.maxsim import maxsim_flat, page_offsets

    corpus = build_corpus(args.family, args.pages, n_queries=args.queries, seed=args.seed)
    rng = np.random.default_rng(args.seed + 1)
    pages = corpus.pages
    if not args.fixed and args.family != "real":
        pages = [page[: int(rng.integers(LENGTHS[0], LENGTHS[1] + 1))] for page in pages]
    if args.bf16:  # what a bfloat16 model emits, widened to float32 (the store then packs 2 bytes a value)
        pages = [(page.view(np.uint32) & 0xFFFF0000).view(np.float32) for page in pages]
    lengths = np.array([page.shape[0] for page in pages], dtype=np.int64)
    np.save(work / "lengths.npy", lengths)
    np.save(work / "dim.npy", np.array(pages[0].shape[1]))
    flat = np.concatenate(pages)
    flat.tofile(work / "pages.f32")
    np.savez(work / "queries.npz", **{f"q{i}": query for i, query in enumerate(corpus.queries)})
    offsets = page_offsets(pages)
    del pages, corpus
    reference, times = [], []
    for i in range(args.queries):
        query = np.load(work / "queries.npz")[f"q{i}"]
        began = time.perf_counter()
        scores = maxsim_flat(query, flat, offsets)
        times.append(time.perf_counter() - began)
        reference.append([f"p{j}" for j in np.argsort(-scores, kind="stable")[:10]])
    return reference, float(np.median(times)), float(lengths.mean())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("family", nargs="?")
    parser.add_argument("pages", type=int, nargs="?")
    parser.add_argument("--queries", type=int, default=30)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--batch", type=int, default=32, help="pages per add() call")
    parser.add_argument("--fixed", action="store_true", help="keep every page at 1,030 vectors")
    parser.add_argument("--bf16", action="store_true", help="round the pages to bfloat16, as ColPali models emit")
    parser.add_argument("--json", type=Path)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--work", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--spawned", type=float, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child == "ingest":
        print(json.dumps(child_ingest(args.work, args.batch)))
        return
    if args.child == "serve":
        print(json.dumps(child_serve(args.work, args.spawned)))
        return
    if args.family is None or args.pages is None:
        parser.error("family and pages are required")

    with tempfile.TemporaryDirectory(prefix="lite-scale-") as folder:
        work = Path(folder)
        reference, numpy_p50, mean_length = prepare(args, work)
        ingest = run_child("ingest", work, "--batch", str(args.batch))
        serve = run_child("serve", work)
        again = run_child("serve", work)  # a second reopen: the saved copy is now surely current
        inputs = {".f32", ".npy", ".npz"}
        disk_mb = sum(f.stat().st_size for f in work.rglob("*") if f.is_file() and f.suffix not in inputs)
    ranked = serve.pop("ranked")
    again.pop("ranked")
    recall5 = np.mean([len(set(r[:5]) & set(e[:5])) / 5 for r, e in zip(ranked, reference, strict=True)])
    recall10 = np.mean([len(set(r[:10]) & set(e[:10])) / 10 for r, e in zip(ranked, reference, strict=True)])
    top1 = np.mean([bool(r) and r[0] == e[0] for r, e in zip(ranked, reference, strict=True)])
    record = {
        "family": args.family + ("-bf16" if args.bf16 else ""),
        "pages": args.pages,
        "mean_vectors_per_page": round(mean_length, 1),
        "queries": args.queries,
        **{key: round(value, 3) if isinstance(value, float) else value for key, value in ingest.items()},
        **{key: round(value, 3) if isinstance(value, float) else value for key, value in serve.items()},
        "second_reopen_to_first_answer_s": round(again["reopen_to_first_answer_s"], 3),
        "second_serve_peak_rss_mb": round(again["serve_peak_rss_mb"], 1),
        "numpy_exhaustive_p50_ms": round(1000 * numpy_p50, 1),
        "recall_at_5": float(recall5),
        "recall_at_10": float(recall10),
        "top1_equals_exhaustive": float(top1),
        "disk_mb": round(disk_mb / 2**20, 1),
    }
    columns = [
        "family",
        "pages",
        "ingest_pages_per_s",
        "ingest_peak_rss_mb",
        "close_s",
        "reopen_to_first_answer_s",
        "open_to_first_answer_s",
        "serve_peak_rss_mb",
        "p50_ms",
        "numpy_exhaustive_p50_ms",
        "recall_at_5",
        "recall_at_10",
        "top1_equals_exhaustive",
        "loaded_from",
    ]
    print(" | ".join(columns))
    print(" | ".join(str(record[column]) for column in columns))
    if args.json:
        with args.json.open("a") as file:
            file.write(json.dumps(record) + "\n")


if __name__ == "__main__":
    main()
