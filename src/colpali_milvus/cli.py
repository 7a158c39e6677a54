"""``colpali-milvus``: index, search, inspect and prune a collection from the shell.

    colpali-milvus index reports/ scans/invoice.pdf
    colpali-milvus search "Which quarter had the highest revenue?" -k 5 --save-images hits/
    colpali-milvus info
    colpali-milvus delete reports/2023.pdf
    colpali-milvus eval judged.jsonl --k 5,10 --compare rerank_depth=64,128,256

Connection and model options may also come from the environment (``COLPALI_MILVUS_URI``,
``COLPALI_MILVUS_TOKEN``, ``COLPALI_MILVUS_COLLECTION``, ``COLPALI_MILVUS_IMAGE_DIR``,
``COLPALI_MILVUS_MODEL``, ``COLPALI_MILVUS_DEVICE``, ``COLPALI_MILVUS_PASSWORD``); a token or a
password is best given that way, out of the shell history. ``--help`` lists them per command.

``search`` (and ``index`` into an existing collection) loads the model the collection records
unless ``--model`` names one; a ``--model`` or ``--pool-factor`` the collection does not record is
refused before any weights load. ``index`` looks every page up first and loads the weights only when
one needs embedding: re-running it on an unchanged folder loads no model. ``search``, ``info`` and
``delete`` never create a database or a collection.

Exit status (the request was carried out only with 0):

* 0: done (for ``index``, files already stored count as done);
* 1: an error (``error: ...`` on stderr), or nothing done: ``index`` skipped every file, ``delete``
  found no pages of any source;
* 2: bad usage (argparse's message on stderr);
* 3: partly done: ``index`` indexed some files and skipped others, ``delete`` found pages of some
  sources and none of others; each one left out is listed on stderr with the reason;
* 130: interrupted (what was stored is kept; the same command resumes).

A file whose content is stored already under another path (a copy) is reported as skipped, naming
that path: its pages are searchable as that path, and ``delete`` removes them by that path.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import math
import os
import shutil
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from colpali_milvus import __version__
from colpali_milvus.embed.colpali import DEFAULT_MODEL
from colpali_milvus.errors import ColPaliMilvusError, InvalidInputError, StoreError

if TYPE_CHECKING:
    from colpali_milvus.collection import PageCollection
    from colpali_milvus.index import ColPaliIndex
    from colpali_milvus.types import PageHit

__all__ = ["main"]

ENV_PREFIX = "COLPALI_MILVUS_"

#: Exit statuses (see the module docstring).
EXIT_OK, EXIT_ERROR, EXIT_USAGE, EXIT_PARTIAL, EXIT_INTERRUPTED = 0, 1, 2, 3, 130

#: Every environment variable the CLI reads: its option and what it gives.
ENVIRONMENT: dict[str, tuple[str, str]] = {
    "URI": ("--uri", "Milvus Lite file or server URL"),
    "TOKEN": ("--token", "server token (keeps it out of the shell history)"),
    "COLLECTION": ("--collection", "collection name"),
    "IMAGE_DIR": ("--image-dir", "where page images are kept"),
    "MODEL": ("--model", "ColPali-family checkpoint"),
    "DEVICE": ("--device", "cuda, mps or cpu"),
    "PASSWORD": ("--password", "password of encrypted PDFs (keeps it out of the shell history)"),
}


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(message)s")
    # The summary lists every skipped file with its reason; the per-file warnings would repeat it.
    quiet = _SkipWarnings()
    handlers = [] if args.verbose else list(logging.getLogger().handlers)
    for handler in handlers:
        handler.addFilter(quiet)
    try:
        result: int = args.run(args, sys.stdout)
    except ColPaliMilvusError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print("interrupted: pages stored so far are kept; run the same command again to resume", file=sys.stderr)
        return EXIT_INTERRUPTED
    finally:
        for handler in handlers:
            handler.removeFilter(quiet)
    return result


# -- commands -------------------------------------------------------------------------------------


def _index(args: argparse.Namespace, out: TextIO) -> int:
    files = _files_to_index(args)
    metadata = dict(args.meta)
    total = sum(_page_count(path, args.password) for path in files)
    _check_device(args.device)

    index = _open_index(args, create=True)  # an existing collection's model loads only if a page needs it
    with index, _progress_bar(total, enabled=not args.json and not args.no_progress) as bar:
        report = index.add_files(files, metadata=metadata, password=args.password, progress=bar.update)
        after = index.count()
    model_loaded = getattr(index.embedder, "loaded", True)
    summary = {
        "files": len(report.files),
        "pages": len(report.page_ids),
        "new_pages": index.pages_embedded,
        "stored_already": len(report.page_ids) - index.pages_embedded,
        "model_loaded": model_loaded,
        "skipped": [{"path": skipped.path, "error": skipped.error} for skipped in report.skipped],
        "collection": index.store.collection_name,
    }
    if args.json:
        _write_json(summary, out)
    else:
        print(
            f"indexed {summary['files']} files: {summary['pages']} pages, {summary['new_pages']} new, "
            f"{summary['stored_already']} stored already (collection {summary['collection']!r}, {after} pages in all)",
            file=out,
        )
        if not model_loaded:
            print("nothing needed embedding: the model was not loaded", file=out)
    for skipped in report.skipped:
        print(f"skipped {skipped.path}: {skipped.error}", file=sys.stderr)
    status = _status(done=len(report.files), left_out=len(report.skipped))
    if status == EXIT_ERROR:
        print(f"error: no file was indexed ({len(report.skipped)} skipped)", file=sys.stderr)
    elif status == EXIT_PARTIAL:
        print(f"warning: {len(report.skipped)} of {len(files)} files were skipped", file=sys.stderr)
    return status


def _files_to_index(args: argparse.Namespace) -> list[Path]:
    """The files the paths name, checked before any model loads: a mistyped path stops the run."""
    from colpali_milvus.index import INDEXABLE_SUFFIXES, indexable_files

    exclude = [Path(args.image_dir)] if args.image_dir else []  # this collection's page images
    files: list[Path] = []
    for raw in args.paths:
        path = Path(raw).expanduser().resolve()  # absolute sources: `delete` and resumes work from anywhere
        if path.is_dir():
            files += indexable_files(path, recursive=args.recursive, exclude=exclude)
        elif not path.exists():
            raise InvalidInputError(f"{raw}: no such file or folder")
        elif path.suffix.lower() in INDEXABLE_SUFFIXES:
            files.append(path)
        else:
            raise InvalidInputError(f"{raw}: not a folder, a PDF or a supported image")
    if not files:
        raise InvalidInputError(f"nothing to index: no PDFs or images in {', '.join(args.paths)}")
    return list(dict.fromkeys(files))


def _status(*, done: int, left_out: int) -> int:
    if not left_out:
        return EXIT_OK
    return EXIT_PARTIAL if done else EXIT_ERROR


def _search(args: argparse.Namespace, out: TextIO) -> int:
    filter_ = _search_filter(args)
    _require_lite_file(args)
    _check_device(args.device)
    index = _open_index(args, create=False)  # a mistyped --uri or --collection creates nothing
    with index:
        if filter_ is not None:
            filter_ = index.collection.resolve_source_filter(filter_)
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
        (str(rank), f"{hit.score:.4f}", hit.source or "", str(hit.page or ""), hit.page_label or "", hit.page_id)
        for rank, hit in enumerate(hits, start=1)
    ]
    _print_table(("rank", "score", "source", "page", "label", "page id"), rows, out)
    for label, paths in (("page images", saved), ("similarity maps", explained)):
        if paths:
            print(f"{label} saved to {Path(next(iter(paths.values()))).parent}", file=out)
    return 0


def _info(args: argparse.Namespace, out: TextIO) -> int:
    with _open_collection(args) as collection:
        info = collection.info()
    details = dataclasses.asdict(info)
    details["uri"] = collection.store.display_uri
    details["image_dir"] = str(collection.image_dir)
    if args.json:
        _write_json(details, out)
    else:
        width = max(len(key) for key in details)
        for key, value in details.items():
            print(f"{key:<{width}}  {'-' if value is None else value}", file=out)
    return 0


def _delete(args: argparse.Namespace, out: TextIO) -> int:
    from colpali_milvus.index import stored_copy_of

    deleted: dict[str, int] = {}
    missing: dict[str, str] = {}
    with _open_collection(args) as collection:
        for source in args.sources:
            # Sources are stored as absolute paths by `index`; accept the path as typed too.
            resolved = Path(source).expanduser().resolve()
            candidates = dict.fromkeys([str(resolved), source])
            deleted[source] = sum(len(collection.delete(candidate)) for candidate in candidates)
            if not deleted[source]:
                copy = stored_copy_of(collection, resolved)
                missing[source] = (
                    f"no pages of {source}: it is identical to {copy}, whose pages are stored under that path "
                    f"(delete {copy} to remove them)"
                    if copy
                    else f"no pages of {source} in collection {collection.store.collection_name!r}"
                )
    if args.json:
        _write_json(deleted, out)
    else:
        for source, count in deleted.items():
            if count:
                print(f"deleted {count} pages of {source}", file=out)
    for reason in missing.values():
        print(reason, file=sys.stderr)
    status = _status(done=len(deleted) - len(missing), left_out=len(missing))
    if status == EXIT_ERROR:
        print("error: nothing was deleted", file=sys.stderr)
    return status


def _copy(args: argparse.Namespace, out: TextIO) -> int:
    """Copy a collection to another store (rows, vectors, images), re-embedding nothing; a re-run resumes."""
    from contextlib import ExitStack

    from colpali_milvus.transfer import copy_collection

    with ExitStack() as closing:
        bar: Any = None

        def progress(done: int, total: int) -> None:
            nonlocal bar
            if bar is None:  # the total is known once the source is open
                bar = closing.enter_context(_progress_bar(total, enabled=not args.json and not args.no_progress))
                if hasattr(bar, "set_description_str"):
                    bar.set_description_str("copying")
            bar.update(done - getattr(bar, "n", 0))

        report = copy_collection(
            args.source,
            args.target,
            collection=args.collection,
            target_collection=args.target_collection or None,
            token=args.token,
            target_token=args.target_token,
            image_dir=args.image_dir or None,  # an empty option means the default folder, not the cwd
            target_image_dir=args.target_image_dir or None,
            batch_size=args.batch_size,
            progress=progress,
        )
    if args.json:
        _write_json(
            {
                "source": report.source,
                "target": report.target,
                "copied": len(report.copied),
                "skipped": len(report.skipped),
                "failed": [{"page_id": failed.page_id, "reason": failed.reason} for failed in report.failed],
                "seconds": round(report.seconds, 3),
                "pages_per_second": round(report.pages_per_second, 2),
            },
            out,
        )
    else:
        print(
            f"copied {len(report.copied)} pages from {report.source} to {report.target} "
            f"({len(report.skipped)} there already, {len(report.failed)} failed) "
            f"in {report.seconds:.1f} s: {report.pages_per_second:.1f} pages/s",
            file=out,
        )
    for failed in report.failed:
        print(f"not copied {failed.page_id!r}: {failed.reason}", file=sys.stderr)
    status = _status(done=len(report.copied) + len(report.skipped), left_out=len(report.failed))
    if status != EXIT_OK:
        print(
            f"{'error' if status == EXIT_ERROR else 'warning'}: {len(report.failed)} of {report.pages} pages were "
            "not copied (listed above); run the same command again to retry them",
            file=sys.stderr,
        )
    return status


def _eval(args: argparse.Namespace, out: TextIO) -> int:
    """Judged queries against the collection: quality, agreement with exhaustive MaxSim, latency."""
    from colpali_milvus.eval import evaluate, parse_compare, read_judgments, read_query_vectors, resolve

    configurations = parse_compare(args.compare)  # a mistyped option stops the run before anything opens
    judgments = read_judgments(args.judgments, split=args.split, corpus_field=args.corpus_field)
    if args.limit is not None:
        if args.limit <= 0:
            raise InvalidInputError(f"--limit must be positive, got {args.limit}")
        judgments = judgments[: args.limit]
    vectors = read_query_vectors(args.query_vectors) if args.query_vectors else None
    _require_lite_file(args)
    if vectors is None:
        _check_device(args.device)
    try:
        with _open_collection(args) as collection:
            # Unknown pages are reported before any weights load.
            resolved = resolve(judgments, collection.store, allow_unknown=args.allow_unknown)
            index = _open_index(args, create=False) if vectors is None else None
            try:
                with _StageBars(enabled=not args.json and not args.no_progress) as bars:
                    report = evaluate(
                        collection.store,
                        resolved,
                        query_vectors=vectors,
                        embedder=index.embedder if index is not None else None,
                        configurations=configurations,
                        ks=args.k,
                        exhaustive=not args.no_exhaustive,
                        token=args.token,
                        allow_unknown=args.allow_unknown,
                        progress=bars,
                    )
            finally:
                if index is not None:
                    index.close()
    except KeyboardInterrupt:
        print("interrupted: nothing was measured (eval writes nothing)", file=sys.stderr)
        return EXIT_INTERRUPTED
    if args.json:
        out.write(report.to_json(per_query=args.per_query) + "\n")
    else:
        print(report.table(), file=out)
    return EXIT_OK


class _StageBars:
    """``progress(stage, done, total)`` for eval: one tqdm bar per stage on stderr (none if disabled)."""

    def __init__(self, *, enabled: bool) -> None:
        self._enabled = enabled
        self._stage: str | None = None
        self._bar: Any = None

    def __call__(self, stage: str, done: int, total: int) -> None:
        if not self._enabled:
            return
        if stage != self._stage:
            self.close()
            try:
                from tqdm import tqdm
            except ImportError:  # tqdm comes with the colpali extra; without it, no bar
                self._enabled = False
                return
            self._stage = stage
            self._bar = tqdm(
                total=total, desc=stage, unit="page" if "exhaustive" in stage else "query", file=sys.stderr
            )
        self._bar.update(done - self._bar.n)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None

    def __enter__(self) -> _StageBars:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def _ks(text: str) -> tuple[int, ...]:
    """``--k 5,10``: positive cut-offs."""
    try:
        values = tuple(sorted({int(part) for part in text.split(",") if part.strip()}))
    except ValueError as error:
        raise argparse.ArgumentTypeError(f"takes positive integers like 5,10, got {text!r}") from error
    if not values or values[0] <= 0:
        raise argparse.ArgumentTypeError(f"takes positive integers like 5,10, got {text!r}")
    return values


# -- plumbing ---------------------------------------------------------------------------------


def _open_index(args: argparse.Namespace, *, create: bool) -> ColPaliIndex:
    """The collection with its model: the one ``--model`` names, else the one the collection records."""
    from colpali_milvus.index import ColPaliIndex

    return ColPaliIndex.from_model(
        args.model or None,
        uri=args.uri,
        token=args.token,
        collection_name=args.collection,
        image_dir=args.image_dir or None,  # an empty --image-dir means the default, not the cwd
        device=args.device or None,
        batch_size=args.batch_size,
        pool_factor=getattr(args, "pool_factor", None),
        create=create,
    )


def _open_collection(args: argparse.Namespace) -> PageCollection:
    """An existing collection and its page images, without a model: info and delete load no weights."""
    from colpali_milvus.collection import PageCollection
    from colpali_milvus.store.milvus import MilvusMultiVectorStore

    _require_lite_file(args)
    store = MilvusMultiVectorStore(args.uri, token=args.token, collection_name=args.collection, create=False)
    return PageCollection(store, image_dir=args.image_dir or None)


def _require_lite_file(args: argparse.Namespace) -> None:
    """Commands that only read refuse a Milvus Lite path that does not exist (opening it would create it)."""
    from colpali_milvus.store.lite import is_lite_uri

    if is_lite_uri(args.uri) and not Path(args.uri).expanduser().exists():
        raise StoreError(f"no Milvus Lite database at {args.uri} (index something first, or pass --uri)")


def _check_device(device: str | None) -> None:
    """Refuse a device torch does not know (or that this machine lacks) before anything loads."""
    if not device:
        return
    try:
        import torch
    except ImportError:  # the model load reports the missing extra
        return
    try:
        target = torch.device(device)
    except (RuntimeError, ValueError) as error:
        raise InvalidInputError(
            f"--device {device!r} is not a device torch knows (e.g. cpu, cuda, cuda:1, mps)"
        ) from error
    if (target.type == "cuda" and not torch.cuda.is_available()) or (
        target.type == "mps" and not torch.backends.mps.is_available()
    ):
        raise InvalidInputError(f"--device {device!r}: this machine has no {target.type} device (try --device cpu)")


def _explain(index: ColPaliIndex, question: str, hits: Sequence[PageHit], folder: Path) -> dict[str, str]:
    from colpali_milvus.index import record_written_files

    folder.mkdir(parents=True, exist_ok=True)
    written: dict[str, str] = {}
    for rank, hit in enumerate(hits, start=1):
        path = folder / f"{_stem(rank, hit)}-similarity.png"
        record_written_files(folder, [path.name])  # before writing: an interrupted run leaves no unlisted file
        index.explain(question, hit).heatmap().save(path)
        written[hit.page_id] = str(path)
    return written


def _save_images(hits: Sequence[PageHit], folder: Path) -> dict[str, str]:
    from colpali_milvus.index import record_written_files

    folder.mkdir(parents=True, exist_ok=True)
    written: dict[str, str] = {}
    for rank, hit in enumerate(hits, start=1):
        if hit.image_path is None:
            continue
        path = folder / f"{_stem(rank, hit)}{hit.image_path.suffix}"
        record_written_files(folder, [path.name])  # before writing: an interrupted run leaves no unlisted file
        shutil.copyfile(hit.image_path, path)
        written[hit.page_id] = str(path)
    return written


def _stem(rank: int, hit: PageHit) -> str:
    """The name of the files written for a hit (``--save-images``, ``--explain``), without suffix."""
    name = Path(hit.source).stem if hit.source else hit.page_id
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in name)[:60]
    return f"{rank:02d}-{safe}-p{hit.page_label or hit.page}"


def _page_count(path: Path, password: str | None) -> int:
    """Pages a file will give, for the progress bar; 0 when it cannot be read (it is reported later)."""
    try:
        if path.suffix.lower() == ".pdf":
            from pypdf import PdfReader

            reader = PdfReader(path)
            if reader.is_encrypted:
                reader.decrypt(password or "")
            return len(reader.pages)
        from PIL import Image

        with Image.open(path) as image:
            return int(getattr(image, "n_frames", 1))
    except Exception:  # an unreadable file is skipped and reported by the ingestion itself
        return 0


#: Loggers whose warnings are about files the summary lists as skipped (pypdf: a broken file's details).
_REPEATED_BY_SUMMARY = ("colpali_milvus.index", "pypdf")


class _SkipWarnings(logging.Filter):
    """Drops per-file warnings, which the CLI's summary of skipped files repeats (``-v`` shows them)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno != logging.WARNING:
            return True
        return not any(record.name == name or record.name.startswith(f"{name}.") for name in _REPEATED_BY_SUMMARY)


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


def _meta_pair(pair: str) -> tuple[str, Any]:
    """One ``--meta KEY=VALUE`` (see :func:`_meta_value`); reserved keys are refused."""
    from colpali_milvus.pages.identity import RESERVED_METADATA_KEYS

    key, sep, value = pair.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"takes KEY=VALUE, got {pair!r}")
    if key in RESERVED_METADATA_KEYS:
        raise argparse.ArgumentTypeError(
            f"{key!r} is reserved: every page sets {', '.join(sorted(RESERVED_METADATA_KEYS))} itself"
        )
    return key, _meta_value(value)


def _meta_value(text: str) -> Any:
    """A ``--meta`` value: text, unless JSON writes that very value the same way.

    ``2024``, ``-3``, ``0.5``, ``true``, ``false`` and ``null`` keep their type because JSON writes
    them exactly as typed; ``1.10``, ``1e3``, ``007``, `` 5`` and ``NaN`` stay text (as numbers they
    would be stored as 1.1, 1000.0...). A JSON string (``'"2024"'``) is that text; a JSON array or
    object is that value.
    """
    try:
        value = json.loads(text)
    except json.JSONDecodeError:
        return text
    if isinstance(value, str | list | dict):
        return value
    if isinstance(value, float) and not math.isfinite(value):
        return text
    return value if json.dumps(value) == text else text


def _search_filter(args: argparse.Namespace) -> dict[str, Any] | None:
    """``--filter`` and ``--source`` as one filter (both must hold); sources are matched later, in the store."""
    filter_ = _json_filter(args.filter)
    if not args.source:
        return filter_
    sources = {"source": {"$in": list(args.source)}}
    return sources if filter_ is None else {"$and": [filter_, sources]}


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


def _epilog(parser: argparse.ArgumentParser, *, exit_codes: str) -> str:
    """The environment variables of the options ``parser`` has, and its exit statuses."""
    return _epilog_for({option for action in parser._actions for option in action.option_strings}, exit_codes)


def _epilog_for(options: set[str], exit_codes: str) -> str:
    lines = [
        f"  {ENV_PREFIX}{name:<11} {option:<13} {what}"
        for name, (option, what) in ENVIRONMENT.items()
        if option in options
    ]
    return "environment variables (an option given wins):\n" + "\n".join(lines) + f"\n\nexit status:\n{exit_codes}"


_MAIN_EXIT = """\
  0    done; 1 error, or nothing done; 2 bad usage;
  3    partly done: some files skipped by index, some sources not found by delete (listed on stderr);
  130  interrupted (what was stored is kept; the same command resumes)"""
_INDEX_EXIT = """\
  0    every file indexed (files stored already count); 1 error, or every file skipped;
  2    bad usage; 3 some files indexed, some skipped (each listed on stderr with its reason);
  130  interrupted (what was stored is kept; the same command resumes)"""
_READ_EXIT = """\
  0    done; 1 error (no such database or collection, model mismatch...); 2 bad usage"""
_DELETE_EXIT = """\
  0    pages of every source deleted; 1 error, or no pages of any source; 2 bad usage;
  3    pages of some sources deleted, none found of others (listed on stderr)"""
_EVAL_EXIT = """\
  0    measured; 1 error (a bad judgment file, naming its line; unknown pages; no such collection...);
  2    bad usage; 130 interrupted (eval writes nothing)"""
_COPY_EXIT = """\
  0    every page copied (pages in the target already count); 1 error (nothing written: a target of
       another model, dim or pool factor...), or no page copied; 2 bad usage;
  3    some pages copied, others not (each listed on stderr with its reason);
  130  interrupted (pages copied so far are kept; the same command resumes)"""


#: Help text laid out as written: the epilogs are tables.
_FORMATTER = argparse.RawDescriptionHelpFormatter


def _command(
    commands: argparse._SubParsersAction[argparse.ArgumentParser],
    name: str,
    run: Callable[[argparse.Namespace, TextIO], int],
    *,
    parents: list[argparse.ArgumentParser],
    help: str,
    description: str,
) -> argparse.ArgumentParser:
    """A subcommand that ``main`` runs as ``run(args, stdout)``; set its epilog once its options are added."""
    command = commands.add_parser(name, parents=parents, help=help, description=description, formatter_class=_FORMATTER)
    command.set_defaults(run=run)
    return command


def _parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--uri", default=_env("URI", "colpali.db"), help="Milvus Lite file or server URL [%(default)s]")
    common.add_argument("--token", default=_env("TOKEN"), help="server token (prefer $COLPALI_MILVUS_TOKEN)")
    common.add_argument("--collection", default=_env("COLLECTION", "colpali"), help="collection name [%(default)s]")
    common.add_argument(
        "--image-dir",
        default=_env("IMAGE_DIR"),
        help="where page images are kept [<uri>.pages/<collection> for a Lite file]",
    )
    common.add_argument("-v", "--verbose", action="store_true", help="log what happens")
    model = argparse.ArgumentParser(add_help=False)
    model.add_argument(
        "--model",
        default=_env("MODEL"),
        help=f"ColPali-family checkpoint [the one the collection records; {DEFAULT_MODEL} for a new one]",
    )
    model.add_argument("--device", default=_env("DEVICE"), help="cuda, mps or cpu (default: the best available)")
    model.add_argument("--batch-size", type=int, default=4, help="pages per forward pass [%(default)s]")

    parser = argparse.ArgumentParser(
        prog="colpali-milvus",
        description="Visual PDF page retrieval: ColPali multi-vectors in Milvus.",
        formatter_class=_FORMATTER,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)

    index = _command(
        commands,
        "index",
        _index,
        parents=[common, model],
        help="index PDFs and images (files or folders)",
        description="Index PDFs and images; re-running renders and embeds only the pages not stored yet, and "
        "loads the model only when a page needs embedding (an unchanged folder loads none).",
    )
    index.add_argument(
        "paths",
        nargs="+",
        metavar="PATH",
        help="PDFs, images (png, jpg, tiff, ...) or folders of them; a folder walk leaves out hidden "
        "folders, Milvus Lite databases with their .db.pages and .db.cache folders, and the files "
        "search --save-images / --explain wrote (listed in each folder's .colpali-milvus-written)",
    )
    index.add_argument("--no-recursive", dest="recursive", action="store_false", help="only a folder's own files")
    index.add_argument(
        "--meta",
        action="append",
        default=[],
        type=_meta_pair,
        metavar="KEY=VALUE",
        help="metadata for every page of these files, also set on pages stored already (repeatable; "
        "source, page, page_label, doc_id and page_id are reserved). VALUE is text unless JSON writes it "
        "exactly so: year=2024 is a number, ok=true a boolean, ver=1.10 the text '1.10'; "
        "'year=\"2024\"' forces text, a JSON array or object is kept as one",
    )
    index.add_argument(
        "--password", default=_env("PASSWORD"), help="password of encrypted PDFs: user or owner password"
    )
    index.add_argument("--no-progress", action="store_true", help="no progress bar")
    index.add_argument(
        "--pool-factor",
        type=int,
        help="token pooling: ~1/N of the vectors per page (README Scaling) [the collection's; none for a new one]",
    )
    index.add_argument("--json", action="store_true", help="print the summary as JSON")
    index.epilog = _epilog(index, exit_codes=_INDEX_EXIT)

    search = _command(
        commands,
        "search",
        _search,
        parents=[common, model],
        help="find the pages that answer a question",
        description="Find the pages that answer a question, with the model the collection records. The table "
        "shows rank, score, source, page (the 1-based number that filters match), label (the PDF's page label) "
        "and page id.",
    )
    search.add_argument("question", help="the question, in words (quote it)")
    search.add_argument("-k", type=int, default=5, help="pages to return [%(default)s]")
    search.add_argument(
        "--filter",
        help='metadata filter as JSON, e.g. \'{"source": "a.pdf", "page": {"$gte": 2}}\'; a source is a file '
        "as stored, or as indexed from here (a relative path resolved to the absolute one index stored), "
        "or else the end of stored paths (a.pdf: every file named a.pdf; q3/a.pdf: those in a q3 folder)",
    )
    search.add_argument(
        "--source",
        action="append",
        default=[],
        metavar="FILE",
        help="only pages of this file, matched as a --filter source is (repeatable: any of them)",
    )
    search.add_argument("--json", action="store_true", help="print hits as JSON")
    search.add_argument("--save-images", metavar="DIR", help="copy the hits' page images into DIR")
    search.add_argument("--explain", metavar="DIR", help="write a similarity map (PNG) per hit into DIR")
    search.epilog = _epilog(search, exit_codes=_READ_EXIT)

    info = _command(
        commands,
        "info",
        _info,
        parents=[common],
        help="what the collection holds and how it was built",
        description="What the collection holds and how it was built (loads no model).",
    )
    info.add_argument("--json", action="store_true", help="print the details as JSON")
    info.epilog = _epilog(info, exit_codes=_READ_EXIT)

    delete = _command(
        commands,
        "delete",
        _delete,
        parents=[common],
        help="delete every page of the given sources",
        description="Delete every page (rows and images) of the given sources (loads no model).",
    )
    delete.add_argument(
        "sources",
        nargs="+",
        metavar="SOURCE",
        help="a file as indexed (a relative path is resolved as index resolves it) or a source as stored",
    )
    delete.add_argument("--json", action="store_true", help="print the pages deleted per source as JSON")
    delete.epilog = _epilog(delete, exit_codes=_DELETE_EXIT)

    evaluation = _command(
        commands,
        "eval",
        _eval,
        parents=[common, model],
        help="measure retrieval quality and speed on judged queries",
        description="Measure retrieval on judged queries: nDCG@k, recall@k, MRR and hit@1 against the "
        "judgments, recall@k and top-k agreement against exact exhaustive MaxSim over the stored vectors, "
        "and search latency p50/p95, for one or several store configurations side by side. Text queries "
        "are embedded with the model the collection records.",
    )
    evaluation.add_argument(
        "judgments",
        metavar="JUDGMENTS",
        help='a JSONL file ({"query": ..., "relevant": [{"source": ..., "page": ...}]} per line), '
        "or a BEIR folder (queries.jsonl, qrels/<split>.tsv, corpus.jsonl optional) or its qrels .tsv",
    )
    evaluation.add_argument("--k", type=_ks, default=(5, 10), metavar="K[,K...]", help="cut-offs [5,10]")
    evaluation.add_argument(
        "--compare",
        action="append",
        default=[],
        metavar="KEY=V1,V2,...",
        help="store options to compare (repeatable; every combination runs): any MilvusMultiVectorStore keyword, "
        "e.g. rerank_depth, cache, candidates_per_vector, collection (another collection, e.g. a pooled one); "
        "'default' leaves the option out [the store's defaults]",
    )
    evaluation.add_argument(
        "--query-vectors",
        metavar="NPZ",
        help="query vectors (one (n_tokens, dim) array per query id) instead of embedding the texts: no model loads",
    )
    evaluation.add_argument("--split", help="the BEIR qrels split [the only one, or test]")
    evaluation.add_argument(
        "--corpus-field",
        default="corpus_id",
        help="the page metadata key BEIR corpus ids are matched with ('page_id': they are page ids) [%(default)s]",
    )
    evaluation.add_argument("--limit", type=int, metavar="N", help="only the first N judged queries")
    evaluation.add_argument(
        "--allow-unknown", action="store_true", help="leave out judged pages the collection lacks (else an error)"
    )
    evaluation.add_argument(
        "--no-exhaustive",
        action="store_true",
        help="skip the exact exhaustive pass (it reads every stored vector: slow on a large server collection)",
    )
    evaluation.add_argument("--json", action="store_true", help="print the report as JSON")
    evaluation.add_argument("--per-query", action="store_true", help="with --json: every query's pages and metrics")
    evaluation.add_argument("--no-progress", action="store_true", help="no progress bar")
    evaluation.epilog = _epilog(evaluation, exit_codes=_EVAL_EXIT)

    from colpali_milvus.transfer import DEFAULT_BATCH_PAGES

    copy = _command(
        commands,
        "copy",
        _copy,
        parents=[],
        help="copy a collection to another store without re-embedding",
        description="Copy a collection's pages (metadata, text, vectors and page images) to another store: a Milvus "
        "Lite file or a server, either way. Nothing is re-embedded; the target collection is created with the "
        "source's model, dim and pool factor, and a target built otherwise is refused before any write. Pages the "
        "target holds with the same vectors are skipped, so an interrupted copy resumes where it stopped.",
    )
    copy.add_argument("source", metavar="SRC_URI", help="Milvus Lite file or server URL to copy from")
    copy.add_argument("target", metavar="DST_URI", help="Lite file or server URL to copy to (created if missing)")
    copy.add_argument("--collection", default=_env("COLLECTION", "colpali"), help="collection to copy [%(default)s]")
    copy.add_argument("--target-collection", metavar="NAME", help="collection to copy into [the source's name]")
    copy.add_argument("--token", default=_env("TOKEN"), help="the source server's token (prefer $COLPALI_MILVUS_TOKEN)")
    copy.add_argument(
        "--target-token",
        default=_env("TARGET_TOKEN"),
        help="the target server's token (prefer $COLPALI_MILVUS_TARGET_TOKEN)",
    )
    copy.add_argument(
        "--image-dir",
        default=_env("IMAGE_DIR"),
        help="the source's page images [<SRC_URI>.pages/<collection> for a Lite file]",
    )
    copy.add_argument(
        "--target-image-dir",
        metavar="DIR",
        help="where the target keeps page images [<DST_URI>.pages/<collection> for a Lite file]",
    )
    copy.add_argument("--batch-size", type=int, default=DEFAULT_BATCH_PAGES, help="pages per batch [%(default)s]")
    copy.add_argument("--no-progress", action="store_true", help="no progress bar")
    copy.add_argument("--json", action="store_true", help="print the summary as JSON")
    copy.add_argument("-v", "--verbose", action="store_true", help="log what happens")
    copy.epilog = _epilog(copy, exit_codes=_COPY_EXIT)

    all_options = {option for option, _ in ENVIRONMENT.values()}
    parser.epilog = _epilog_for(all_options, _MAIN_EXIT)
    return parser


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
