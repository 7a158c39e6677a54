"""The Milvus ColPali tutorial's flow with colpali-milvus: index a PDF, ask two questions, print the best page.

python examples/quickstart.py --pdf report.pdf
python examples/quickstart.py --pdf report.pdf --model vidore/colpali-v1.3 --uri http://localhost:19530
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from colpali_milvus import DEFAULT_MODEL, ColPaliEmbedder, ColPaliIndex, MilvusMultiVectorStore
from colpali_milvus.errors import MissingDependencyError, ModelError


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pdf", type=Path, required=True, help="the PDF to index")
    parser.add_argument("--model", default=DEFAULT_MODEL, help="a hub id or a local checkpoint folder")
    parser.add_argument("--uri", help="Milvus uri: a *.db file (Milvus Lite) or http://host:19530")
    parser.add_argument("--token", help="Milvus / Zilliz Cloud token")
    parser.add_argument(
        "--question",
        action="append",
        help="ask this (repeatable); default: two generic questions",
    )
    args = parser.parse_args()
    questions = args.question or ["What is the main table about?", "Which page shows a diagram?"]

    embedder = ColPaliEmbedder(args.model)
    # Without --uri the Milvus Lite file (and its page images) lives in a scratch folder removed at the end.
    with tempfile.TemporaryDirectory() as scratch:
        uri = args.uri or str(Path(scratch) / "quickstart.db")
        store = MilvusMultiVectorStore(uri, token=args.token, dim=embedder.dim, model_name=embedder.model_name)
        with ColPaliIndex(embedder, store) as index:  # closing the index closes its store
            page_ids = index.add_pdf(args.pdf)
            print(f"indexed {len(page_ids)} pages of {args.pdf} into {uri}")
            for question in questions:
                best = index.search(question, k=1)[0]
                print(
                    f"Q: {question}\n   best page: {best.source} page {best.page_label} "
                    f"(score {best.score:.3f}, image {best.image_path})"
                )


if __name__ == "__main__":
    try:
        main()
    except (ModelError, MissingDependencyError) as error:  # one clear line, not a traceback
        raise SystemExit(f"{Path(__file__).name}: {error}") from None
