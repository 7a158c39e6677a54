"""``colpali-milvus``: index, search, inspect and prune a collection from the shell.

    colpali-milvus index reports/ scans/invoice.pdf
    colpali-milvus search "Which quarter had the highest revenue?" -k 5 --save-images hits/
    colpali-milvus info
    colpali-milvus delete reports/2023.pdf

Connection and model options may also come from the environment (``COLPALI_MILVUS_URI``,
``COLPALI_MILVUS_TOKEN``, ``COLPALI_MILVUS_COLLECTION``, ``COLPALI_MILVUS_MODEL``,
``COLPALI_MILVUS_DEVICE``, ``COLPALI_MILVUS_IMAGE_DIR``); a token is best given that way, out of
the shell history. Exit status: 0 on success, 1 on an error (printed on stderr), 2 on bad usage.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from colpali_milvus.embed.colpali import DEFAULT_MODEL
from colpali_milvus.errors import ColPaliMilvusError, InvalidInputError

if TYPE_CHECKING:
    from colpali_milvus.index import ColPaliIndex
    from colpali_milvus.store.milvus import MilvusMultiVectorStore
    from colpali_milvus.types import PageHit

__all__ = ["main"]

ENV_PREFIX = "COLPALI_MILVUS_"


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(message)s")
    try:
        result: int = args.run(args, sys.stdout)
    except ColPaliMilvusError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted: pages stored so far are kept; run the same command again to resume", file=sys.stderr)
        return 130
    return result


# -- commands -------------------------------------------------------------------------------------


def _index(args: argparse.Namespace, out: TextIO) -> int:
    from colpali_milvus.index import INDEXABLE_SUFFIXES, indexable_files

    files: list[Path] = []
    for raw in args.paths:
        path = Path(raw).expanduser().resolve()  # absolute sources: `delete` and resumes work from anywhere
        if path.is_dir():
            files += indexable_files(path, recursive=args.recursive)
        elif path.suffix.lower() in INDEXABLE_SUFFIXES or not path.exists():
            files.append(path)  # a missing file is reported as skipped, not silently dropped
        else:
            raise InvalidInputError(f"{raw}: not a folder, a PDF or a supported image")
    metadata = _key_values(args.meta)
    total = sum(_page_count(path) for path in files)

    index = _open_index(args)
    with index, _progress_bar(total, enabled=not args.json and not args.no_progress) as bar:
        before = index.count()
        report = index.add_files(files, metadata=metadata, progress=bar.update)
        after = index.count()
    summary = {
        "files": len(report.files),
        "pages": len(report.page_ids),
        "new_pages": after - before,
        "skipped": [{"path": skipped.path, "error": skipped.error} for skipped in report.skipped],
        "collection": index.store.collection_name,
    }
    if args.json:
        _write_json(summary, out)
    else:
        print(
            f"indexed {summary['files']} files: {summary['pages']} pages, {summary['new_pages']} new "
            f"(collection {summary['collection']!r}, {after} pages in all)",
            file=out,
        )
        for skipped in report.skipped:
            print(f"skipped {skipped.path}: {skipped.error}", file=out)
    return 0


def _search(args: argparse.Namespace, out: TextIO) -> int:
    filter_ = _json_filter(args.filter)
    index = _open_index(args)
    with index:
        hits = index.search(args.question, k=args.k, filter=filter_)
        saved = _save_images(hits, Path(args.save_images)) if args.save_images else {}
        explained = _explain(index, args.question, hits, Path(args.explain)) if args.explain else {}
    if args.json:
        _write_json(
            [
                {
                    "rank": rank,
                    "page_id": hit.page_id,
                    "score": hit.score,
                    "source": hit.source,
                    "page": hit.page,
                    "page_label": hit.page_label,
                    "metadata": dict(hit.metadata),
                    "image_path": str(hit.image_path) if hit.image_path else None,
                    "saved_image": saved.get(hit.page_id),
                    "similarity_map": explained.get(hit.page_id),
                }
                for rank, hit in enumerate(hits, start=1)
            ],
            out,
        )
        return 0
    if not hits:
        print("no pages found", file=out)
        return 0
    rows = [
        (str(rank), f"{hit.score:.4f}", hit.source or "", hit.page_label or str(hit.page or ""), hit.page_id)
        for rank, hit in enumerate(hits, start=1)
    ]
    _print_table(("rank", "score", "source", "page", "page id"), rows, out)
    for label, paths in (("page images", saved), ("similarity maps", explained)):
        if paths:
            print(f"{label} saved to {Path(next(iter(paths.values()))).parent}", file=out)
    return 0


def _info(args: argparse.Namespace, out: TextIO) -> int:
    with _open_store(args, must_exist=True) as store:
        info = store.info()
    details = dataclasses.asdict(info)
    details["uri"] = store.display_uri
    if args.json:
        _write_json(details, out)
    else:
        width = max(len(key) for key in details)
        for key, value in details.items():
            print(f"{key:<{width}}  {'-' if value is None else value}", file=out)
    return 0


def _delete(args: argparse.Namespace, out: TextIO) -> int:
    from colpali_milvus.index import default_image_dir
    from colpali_milvus.pages.image_store import PageImageStore

    deleted: dict[str, int] = {}
    with _open_store(args, must_exist=True) as store:
        images = PageImageStore(args.image_dir or default_image_dir(store))
        for source in args.sources:
            # Sources are stored as absolute paths by `index`; accept the path as typed too.
            candidates = dict.fromkeys([str(Path(source).expanduser().resolve()), source])
            ids: list[str] = []
            for candidate in candidates:
                ids += store.delete(candidate)
            images.delete(ids)
            deleted[source] = len(ids)
    if args.json:
        _write_json(deleted, out)
    else:
        for source, count in deleted.items():
            print(f"deleted {count} pages of {source}", file=out)
    return 0


# -- plumbing ---------------------------------------------------------------------------------


def _open_index(args: argparse.Namespace) -> ColPaliIndex:
    from colpali_milvus.index import ColPaliIndex

    return ColPaliIndex.from_model(
        args.model,
        uri=args.uri,
        token=args.token,
        collection_name=args.collection,
        image_dir=args.image_dir,
        device=args.device,
        batch_size=args.batch_size,
        pool_factor=getattr(args, "pool_factor", None),
    )


def _open_store(args: argparse.Namespace, *, must_exist: bool) -> MilvusMultiVectorStore:
    """The store alone (no model): info and delete work without loading weights."""
    from colpali_milvus.store.lite import is_lite_uri
    from colpali_milvus.store.milvus import MilvusMultiVectorStore

    if must_exist and is_lite_uri(args.uri) and not Path(args.uri).expanduser().exists():
        raise InvalidInputError(f"no Milvus Lite database at {args.uri} (index something first, or pass --uri)")
    return MilvusMultiVectorStore(args.uri, token=args.token, collection_name=args.collection, create=not must_exist)


def _explain(index: ColPaliIndex, question: str, hits: Sequence[PageHit], folder: Path) -> dict[str, str]:
    folder.mkdir(parents=True, exist_ok=True)
    written: dict[str, str] = {}
    for rank, hit in enumerate(hits, start=1):
        path = folder / f"{rank:02d}-{_stem(hit)}-similarity.png"
        index.explain(question, hit).heatmap().save(path)
        written[hit.page_id] = str(path)
    return written


def _save_images(hits: Sequence[PageHit], folder: Path) -> dict[str, str]:
    folder.mkdir(parents=True, exist_ok=True)
    written: dict[str, str] = {}
    for rank, hit in enumerate(hits, start=1):
        if hit.image_path is None:
            continue
        path = folder / f"{rank:02d}-{_stem(hit)}{hit.image_path.suffix}"
        shutil.copyfile(hit.image_path, path)
        written[hit.page_id] = str(path)
    return written


def _stem(hit: PageHit) -> str:
    name = Path(hit.source).stem if hit.source else hit.page_id
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in name)[:60]
    return f"{safe}-p{hit.page_label or hit.page}"


def _page_count(path: Path) -> int:
    """Pages a file will give, for the progress bar; 0 when it cannot be read (it is reported later)."""
    try:
        if path.suffix.lower() == ".pdf":
            from pypdf import PdfReader

            return len(PdfReader(path).pages)
        from PIL import Image

        with Image.open(path) as image:
            return int(getattr(image, "n_frames", 1))
    except Exception:  # an unreadable file is skipped and reported by the ingestion itself
        return 0


class _NoBar:
    def update(self, n: int = 1) -> None:
        pass

    def __enter__(self) -> _NoBar:
        return self

    def __exit__(self, *exc_info: object) -> None:
        pass


def _progress_bar(total: int, *, enabled: bool) -> Any:
    if not enabled:
        return _NoBar()
    try:
        from tqdm import tqdm
    except ImportError:  # tqdm comes with the colpali extra; without it, no bar
        return _NoBar()
    return tqdm(total=total or None, unit="page", desc="indexing", file=sys.stderr)


def _key_values(pairs: Sequence[str]) -> dict[str, Any]:
    metadata: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise InvalidInputError(f"--meta takes KEY=VALUE, got {pair!r}")
        try:
            metadata[key] = json.loads(value)  # numbers and booleans keep their type
        except json.JSONDecodeError:
            metadata[key] = value
    return metadata


def _json_filter(text: str | None) -> dict[str, Any] | None:
    if text is None:
        return None
    try:
        value = json.loads(text)
    except json.JSONDecodeError as error:
        raise InvalidInputError(f"--filter must be a JSON object: {error}") from error
    if not isinstance(value, dict):
        raise InvalidInputError('--filter must be a JSON object, e.g. \'{"source": "a.pdf"}\'')
    return value


def _print_table(header: Sequence[str], rows: Sequence[Sequence[str]], out: TextIO) -> None:
    widths = [max(len(cell) for cell in column) for column in zip(header, *rows, strict=True)]
    for row in (header, *rows):
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip(), file=out)


def _write_json(value: Any, out: TextIO) -> None:
    json.dump(value, out, indent=2, ensure_ascii=False, default=str)
    out.write("\n")


def _env(name: str, default: str | None = None) -> str | None:
    return os.environ.get(ENV_PREFIX + name) or default


def _parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--uri", default=_env("URI", "colpali.db"), help="Milvus Lite file or server URL [%(default)s]")
    common.add_argument("--token", default=_env("TOKEN"), help="server token (prefer $COLPALI_MILVUS_TOKEN)")
    common.add_argument("--collection", default=_env("COLLECTION", "colpali"), help="collection name [%(default)s]")
    common.add_argument("--image-dir", default=_env("IMAGE_DIR"), help="where page images are kept")
    common.add_argument("-v", "--verbose", action="store_true", help="log what happens")
    model = argparse.ArgumentParser(add_help=False)
    model.add_argument("--model", default=_env("MODEL"), help=f"ColPali-family checkpoint [{DEFAULT_MODEL}]")
    model.add_argument("--device", default=_env("DEVICE"), help="cuda, mps or cpu (default: the best available)")
    model.add_argument("--batch-size", type=int, default=4, help="pages per forward pass [%(default)s]")

    parser = argparse.ArgumentParser(
        prog="colpali-milvus", description="Visual PDF page retrieval: ColPali multi-vectors in Milvus."
    )
    commands = parser.add_subparsers(dest="command", required=True)

    index = commands.add_parser("index", parents=[common, model], help="index PDFs and images (files or folders)")
    index.add_argument("paths", nargs="+", metavar="PATH")
    index.add_argument("--no-recursive", dest="recursive", action="store_false", help="only a folder's own files")
    index.add_argument("--meta", action="append", default=[], metavar="KEY=VALUE", help="metadata for every page")
    index.add_argument("--no-progress", action="store_true", help="no progress bar")
    index.add_argument("--pool-factor", type=int, help="token pooling: ~1/N of the vectors per page (README Scaling)")
    index.add_argument("--json", action="store_true", help="print the summary as JSON")
    index.set_defaults(run=_index)

    search = commands.add_parser("search", parents=[common, model], help="find the pages that answer a question")
    search.add_argument("question")
    search.add_argument("-k", type=int, default=5, help="pages to return [%(default)s]")
    search.add_argument("--filter", help='metadata filter as JSON, e.g. \'{"source": {"$in": ["a.pdf"]}}\'')
    search.add_argument("--json", action="store_true", help="print hits as JSON")
    search.add_argument("--save-images", metavar="DIR", help="copy the hits' page images into DIR")
    search.add_argument("--explain", metavar="DIR", help="write a similarity map (PNG) per hit into DIR")
    search.set_defaults(run=_search)

    info = commands.add_parser("info", parents=[common], help="what the collection holds and how it was built")
    info.add_argument("--json", action="store_true")
    info.set_defaults(run=_info)

    delete = commands.add_parser("delete", parents=[common], help="delete every page of the given sources")
    delete.add_argument("sources", nargs="+", metavar="SOURCE")
    delete.add_argument("--json", action="store_true")
    delete.set_defaults(run=_delete)
    return parser


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
