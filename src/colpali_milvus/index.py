"""ColPaliIndex: an embedder on a PageCollection (store + page images), wired into add and search."""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from os import PathLike
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from colpali_milvus.collection import PageCollection, default_image_dir
from colpali_milvus.embed.protocol import MultiVectorEmbedder, PatchExplainer, embedder_name
from colpali_milvus.errors import DocumentError, IndexMismatchError, InvalidInputError, ModelError, StoreError
from colpali_milvus.pages.identity import PageFile, file_digest, image_digest
from colpali_milvus.pages.images import IMAGE_SUFFIXES, open_image
from colpali_milvus.pages.pdf import DEFAULT_DPI, open_pdf
from colpali_milvus.store.filters import Filter
from colpali_milvus.types import IngestReport, Page, PageHit, SkippedFile, StoredPage

if TYPE_CHECKING:
    from PIL import Image

    from colpali_milvus.explain import SimilarityMap
    from colpali_milvus.pages.image_store import PageImageStore
    from colpali_milvus.store.milvus import MilvusMultiVectorStore

# default_image_dir moved to colpali_milvus.collection; re-exported here for existing imports.
__all__ = [
    "INDEXABLE_SUFFIXES",
    "ColPaliIndex",
    "WRITTEN_FILES_LIST",
    "Progress",
    "default_image_dir",
    "indexable_files",
    "record_written_files",
    "skips_folder",
    "stored_copy_of",
]

logger = logging.getLogger(__name__)

#: What add_folder and the CLI take from a folder: PDFs and the image types read_image opens.
INDEXABLE_SUFFIXES = IMAGE_SUFFIXES | {".pdf"}

#: Called after each ingestion batch with the number of pages it handled (stored or already present).
Progress = Callable[[int], None]

T = TypeVar("T")

#: Folders a folder walk never enters: a Milvus Lite database, its page images and its vector cache.
SKIPPED_FOLDER_SUFFIXES = (".db", ".db.pages", ".db.cache")

#: The file, in a folder the CLI wrote page images or similarity maps into, that lists their names
#: (one a line): a folder walk leaves them out, so that indexing a folder never indexes its own hits.
WRITTEN_FILES_LIST = ".colpali-milvus-written"


class ColPaliIndex:
    """Index PDFs and images by how their pages look; search them with a text question.

    The index adds the model: it renders and embeds pages and queries, and leaves storing, page
    images and deletion to its :class:`~colpali_milvus.collection.PageCollection` (``.collection``),
    which the CLI's model-free commands share. Page images are saved as PNG files (one per page,
    named by page id) in ``image_dir``, so hits can hand them to a vision LLM after a restart. By
    default that folder sits next to a Milvus Lite file (``<file>.pages/<collection>``); for a
    server it is a per-user data folder.

    Args:
        embedder: any object with ``embed_images`` and ``embed_queries`` (see
            :class:`~colpali_milvus.embed.MultiVectorEmbedder`), e.g. a ``ColPaliEmbedder``.
        store: where the vectors live.
        image_dir: where page images are kept (see above for the default).
        ingest_batch_size: pages rendered, embedded and written per step (bounds memory).

    Attributes:
        pages_embedded: how many pages this index has embedded and stored since it was created
            (pages found stored already are not counted).
    """

    def __init__(
        self,
        embedder: MultiVectorEmbedder,
        store: MilvusMultiVectorStore,
        *,
        image_dir: str | PathLike[str] | None = None,
        ingest_batch_size: int = 16,
    ) -> None:
        if ingest_batch_size <= 0:
            raise InvalidInputError("ingest_batch_size must be positive")
        self.embedder = embedder
        self.ingest_batch_size = ingest_batch_size
        self.pages_embedded = 0
        store.claim_model(embedder_name(embedder), pool_factor=getattr(embedder, "pool_factor", None))
        self.collection = PageCollection(store, image_dir=image_dir)

    @classmethod
    def from_model(
        cls,
        model_name: str | None = None,
        *,
        uri: str | PathLike[str] = "colpali.db",
        token: str | None = None,
        collection_name: str = "colpali",
        image_dir: str | PathLike[str] | None = None,
        device: str | None = None,
        batch_size: int = 4,
        pool_factor: int | None = None,
        create: bool = True,
        **store_kwargs: Any,
    ) -> ColPaliIndex:
        """Open (or create) a collection with a ColPali-family model in one call.

        The collection is looked at before any weights load: without ``model_name`` the model it
        records is used (``DEFAULT_MODEL`` for a new collection, or one that records none), and
        a ``model_name`` or ``pool_factor`` that disagrees with what it records is refused with
        :class:`~colpali_milvus.errors.IndexMismatchError`. ``pool_factor`` turns on token pooling of
        pages (see :class:`ColPaliEmbedder`); left out, the collection's is used. ``create=False``
        refuses (with :class:`~colpali_milvus.errors.StoreError`) to create a missing collection or
        Milvus Lite file, for callers that only read.

        For an existing collection the weights load on the first embedding (a search, or a page that
        is not stored yet; see :class:`~colpali_milvus.embed.lazy.LazyEmbedder`): adding files whose
        pages are all stored loads no model. A new collection loads them at once (its vector size
        comes from the model).
        """
        from colpali_milvus.embed.colpali import ColPaliEmbedder
        from colpali_milvus.embed.lazy import LazyEmbedder
        from colpali_milvus.store.milvus import MilvusMultiVectorStore

        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size <= 0:
            raise InvalidInputError(f"batch_size must be a positive integer, got {batch_size!r}")
        store = _open_existing(uri, token=token, collection_name=collection_name, create=create, **store_kwargs)
        try:
            model, factor = _model_for(store, collection_name, model_name, pool_factor)

            def load() -> ColPaliEmbedder:
                return ColPaliEmbedder(model, device=device, batch_size=batch_size, pool_factor=factor)

            if store is not None:
                return cls(
                    LazyEmbedder(load, model_name=model, dim=store.dim, pool_factor=factor), store, image_dir=image_dir
                )
            embedder = load()
            store = MilvusMultiVectorStore(
                uri,
                token=token,
                collection_name=collection_name,
                dim=embedder.dim,
                model_name=embedder.model_name,
                **store_kwargs,
            )
            return cls(embedder, store, image_dir=image_dir)
        except BaseException:
            if store is not None:  # a refused open must not keep a Milvus Lite file locked
                store.close()
            raise

    @property
    def store(self) -> MilvusMultiVectorStore:
        return self.collection.store

    @property
    def images(self) -> PageImageStore:
        return self.collection.images

    def __repr__(self) -> str:
        return f"{type(self).__name__}(embedder={self.embedder!r}, collection={self.collection!r})"

    # -- ingestion --------------------------------------------------------------------------

    def add_pdf(
        self,
        path: str | PathLike[str],
        *,
        metadata: Mapping[str, Any] | None = None,
        password: str | None = None,
        dpi: int = DEFAULT_DPI,
        progress: Progress | None = None,
    ) -> list[str]:
        """Index every page of a PDF; returns its page ids.

        Which pages are stored already is known from the file's bytes before anything is
        rendered: adding the same file again renders and embeds nothing, and an interrupted run
        renders only the missing pages. ``metadata`` keys are set on the file's pages, also on
        pages stored already (their rows are rewritten with their stored vectors, never
        re-embedded; keys not given are kept). A changed file at the same path replaces the pages of
        its previous version (after the new ones are stored). A copy of a file stored under another
        path that still holds it is not stored again (a warning says so; :meth:`add_files` reports
        it as skipped); if that path no longer holds it (a moved file), the pages take the new path.
        ``password`` decrypts an encrypted PDF (its user or its owner password).
        """
        document = open_pdf(path, dpi=dpi, password=password, metadata=metadata)
        return self._add_document(document, progress).page_ids

    def add_file(
        self,
        path: str | PathLike[str],
        *,
        metadata: Mapping[str, Any] | None = None,
        password: str | None = None,
        progress: Progress | None = None,
    ) -> list[str]:
        """Index a PDF or an image file, chosen by its suffix; returns its page ids (see :meth:`add_pdf`)."""
        return self._add_file(path, metadata=metadata, password=password, progress=progress).page_ids

    def add_folder(
        self,
        folder: str | PathLike[str],
        *,
        recursive: bool = True,
        metadata: Mapping[str, Any] | None = None,
        password: str | None = None,
        progress: Progress | None = None,
    ) -> IngestReport:
        """Index every PDF and image in a folder; unreadable files are skipped and reported.

        Only :class:`~colpali_milvus.errors.DocumentError` (a bad file) skips a file; a model or
        Milvus failure stops the run, since every following file would fail the same way. Files are
        taken in sorted order (see :func:`indexable_files` for what a walk leaves out, this index's
        own image folder included), and re-running after an interruption embeds only what is missing.
        """
        root = Path(folder)
        if not root.is_dir():
            raise DocumentError(f"no such folder: {root}")
        files = indexable_files(root, recursive=recursive, exclude=[self.images.root])
        return self.add_files(files, metadata=metadata, password=password, progress=progress)

    def add_files(
        self,
        paths: Iterable[str | PathLike[str]],
        *,
        metadata: Mapping[str, Any] | None = None,
        password: str | None = None,
        progress: Progress | None = None,
    ) -> IngestReport:
        """Index PDFs and images; files that cannot be read are skipped and reported (see ``add_folder``).

        A copy of a file already stored under another path is reported as skipped too, naming
        that path (see :meth:`add_pdf`). ``password`` is tried on the encrypted PDFs.
        """
        files: list[str] = []
        page_ids: list[str] = []
        skipped: list[SkippedFile] = []
        for path in paths:
            try:
                added = self._add_file(path, metadata=metadata, password=password, progress=progress)
            except DocumentError as error:
                logger.warning("skipped %s: %s", path, error)
                skipped.append(SkippedFile(str(path), str(error)))
                continue
            if added.copy_of is not None:
                skipped.append(SkippedFile(str(path), _copy_reason(added.copy_of)))
            else:
                files.append(str(path))
                page_ids += added.page_ids
        return IngestReport(files=tuple(files), page_ids=tuple(page_ids), skipped=tuple(skipped))

    def add_image_file(
        self,
        path: str | PathLike[str],
        *,
        metadata: Mapping[str, Any] | None = None,
        progress: Progress | None = None,
    ) -> list[str]:
        """Index an image file (each frame of a multi-page TIFF is a page); returns page ids (see :meth:`add_pdf`)."""
        return self._add_document(open_image(path, metadata=metadata), progress).page_ids

    def add_images(
        self,
        images: Sequence[Image.Image],
        metadatas: Sequence[Mapping[str, Any]] | None = None,
    ) -> list[str]:
        """Index in-memory images, one page each; returns their page ids.

        A metadata dict may give ``source``, ``page`` and ``page_label``; every other key is kept
        and can be filtered on. The page id derives from the pixels, so re-adding is a no-op.
        """
        if metadatas is not None and len(metadatas) != len(images):
            raise InvalidInputError("images and metadatas must have the same length")
        pages = [
            _page_from_image(image, metadatas[i] if metadatas is not None else {}) for i, image in enumerate(images)
        ]
        return self.add_pages(pages)

    def add_pages(self, pages: Iterable[Page], *, progress: Progress | None = None) -> list[str]:
        """Embed and store pages, ``ingest_batch_size`` at a time; pages already stored are skipped."""
        page_ids: list[str] = []
        for batch in _chunks(pages, self.ingest_batch_size):
            ids = [page.page_id for page in batch]
            stored = self.collection.existing_page_ids(ids)
            unique: dict[str, Page] = {}  # same id = same content and page number: embed it once
            for page in batch:
                unique.setdefault(page.page_id, page)
            self._embed_and_store([page for page_id, page in unique.items() if page_id not in stored])
            page_ids += ids
            if progress is not None:
                progress(len(batch))
        return page_ids

    def _add_file(
        self,
        path: str | PathLike[str],
        *,
        metadata: Mapping[str, Any] | None,
        password: str | None,
        progress: Progress | None,
    ) -> _Added:
        suffix = Path(path).suffix.lower()
        if suffix == ".pdf":
            return self._add_document(open_pdf(path, password=password, metadata=metadata), progress)
        if suffix in IMAGE_SUFFIXES:
            return self._add_document(open_image(path, metadata=metadata), progress)
        raise DocumentError(f"{path}: not a PDF or a supported image ({', '.join(sorted(IMAGE_SUFFIXES))})")

    def _add_document(self, document: PageFile, progress: Progress | None) -> _Added:
        """Store the pages of a file that are missing, decided from its page ids before any rendering."""
        ids = document.page_ids()
        stored = self.collection.existing_page_ids(ids)
        if stored:
            rows = self.store.get_pages([page_id for page_id in ids if page_id in stored])
            copy_of = next((row.source for row in rows.values()), "")
            if _is_another_copy(copy_of, document):
                logger.warning("%s: %s", document.source, _copy_reason(copy_of))
                if progress is not None:
                    progress(len(ids))
                return _Added(ids, copy_of)
            stored = self._update_stored(document, rows)
        numbers = list(range(1, len(ids) + 1))
        for chunk in _chunks(numbers, self.ingest_batch_size):
            missing = [number for number in chunk if ids[number - 1] not in stored]
            if missing:
                self._embed_and_store(list(document.pages(missing)))
            if progress is not None:
                progress(len(chunk))
        # A new version of a file at the same source replaces the old one, once it is stored.
        self.collection.delete_other_versions(document.source, keep_doc_id=document.doc_id)
        return _Added(ids, None)

    def _embed_and_store(self, pages: Sequence[Page]) -> None:
        if pages:
            self.collection.add(pages, self.embedder.embed_images([page.image for page in pages]))
            self.pages_embedded += len(pages)
            logger.info("stored %d new pages", len(pages))

    def _update_stored(self, document: PageFile, rows: Mapping[str, StoredPage]) -> set[str]:
        """Give stored pages the document's source and metadata; returns the ids that stay stored.

        Rows are rewritten with their stored vectors and text (no rendering, no embedding). A page
        whose vectors cannot be read back is left out of the result, so that it is embedded again.
        """
        changed: dict[str, dict[str, Any]] = {}
        for page_id, row in rows.items():
            old = dict(row.metadata)
            new = {**old, **document.metadata}
            if row.source != document.source or _canonical(new) != _canonical(old):
                fields = {"source": document.source, "page": row.page, "page_label": row.page_label}
                changed[page_id] = {**new, **fields, "doc_id": row.doc_id}
        unreadable: set[str] = set()
        for chunk in _chunks(list(changed), self.ingest_batch_size):
            vectors = self.store.get_vectors(chunk)
            readable = [page_id for page_id in chunk if page_id in vectors]
            unreadable.update(page_id for page_id in chunk if page_id not in vectors)
            if readable:
                self.store.add(
                    [vectors[page_id] for page_id in readable],
                    [changed[page_id] for page_id in readable],
                    ids=readable,
                    texts=[rows[page_id].text for page_id in readable],
                )
        if changed:
            logger.info("updated the source or metadata of %d stored pages of %s", len(changed), document.source)
        return set(rows) - unreadable

    # -- search and deletion ----------------------------------------------------------------

    def search(
        self,
        query: str,
        k: int = 5,
        filter: Filter | None = None,
        *,
        expr: str | None = None,
    ) -> list[PageHit]:
        """The ``k`` pages that best answer ``query``, best first, with their images attached."""
        if not isinstance(query, str) or not query.strip():
            raise InvalidInputError("query must be a non-empty string")
        if not isinstance(k, int) or isinstance(k, bool) or k <= 0:
            raise InvalidInputError(f"k must be a positive integer, got {k!r}")
        (query_vectors,) = self.embedder.embed_queries([query])
        return self.collection.search(query_vectors, k=k, filter=filter, expr=expr)

    def explain(self, query: str, hit: PageHit) -> SimilarityMap:
        """Which patches of a hit's page matched which words of ``query``: ``.heatmap()`` draws it.

        Needs an embedder that can explain (``ColPaliEmbedder`` for ColPali and ColQwen2/2.5) and
        the page's stored image; costs one more forward pass over the page.
        """
        if not isinstance(self.embedder, PatchExplainer):
            raise ModelError(f"{type(self.embedder).__name__} cannot draw similarity maps (no explain_page)")
        page = self.collection.with_image(hit)  # the image folder's file, never a path the hit brought
        if page.image_path is None:
            raise DocumentError(f"page {hit.page_id!r} has no stored image to explain")
        return self.embedder.explain_page(query, page.load_image())

    def delete(
        self,
        source: str | PathLike[str] | None = None,
        *,
        doc_ids: Sequence[str] | None = None,
        page_ids: Sequence[str] | None = None,
        filter: Filter | None = None,
    ) -> list[str]:
        """Delete pages (rows and images) by source, document ids, page ids or filter."""
        return self.collection.delete(source, doc_ids=doc_ids, page_ids=page_ids, filter=filter)

    def count(self, filter: Filter | None = None) -> int:
        """Number of indexed pages (matching ``filter``)."""
        return self.collection.count(filter)

    def close(self) -> None:
        self.collection.close()

    def __enter__(self) -> ColPaliIndex:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def skips_folder(name: str) -> bool:
    """Whether a folder walk leaves out a folder of this name: hidden, or a Milvus Lite database's own.

    ``x.db`` is a Milvus Lite database, ``x.db.pages`` its page images and ``x.db.cache`` its vector
    cache: indexing them would index the index (every page twice, the second time as a PNG).
    """
    return name.startswith(".") or name.lower().endswith(SKIPPED_FOLDER_SUFFIXES)


def indexable_files(
    folder: str | PathLike[str], *, recursive: bool = True, exclude: Iterable[str | PathLike[str]] = ()
) -> list[Path]:
    """The PDFs and images in a folder that a folder ingestion takes, in sorted order.

    The one rule for every folder walk (``add_folder`` and the CLI's ``index``): files with an
    :data:`INDEXABLE_SUFFIXES` suffix, leaving out hidden files and folders, Milvus Lite databases
    with their page image and cache folders (see :func:`skips_folder`), the folders in ``exclude``
    (an index's own image folder), the files a folder's :data:`WRITTEN_FILES_LIST` names (the CLI's
    saved hits and similarity maps) and, unless ``recursive``, every subfolder. Symbolic links to
    folders are not followed.
    """
    root = Path(folder)
    excluded = {Path(path).expanduser().resolve() for path in exclude}
    found: list[Path] = []
    for current, folders, names in os.walk(root):
        here = Path(current)
        folders[:] = [
            name for name in folders if recursive and not skips_folder(name) and (here / name).resolve() not in excluded
        ]
        written = _written_files(here) if WRITTEN_FILES_LIST in names else set()
        found += [
            here / name
            for name in names
            if not name.startswith(".")
            and name not in written
            and Path(name).suffix.lower() in INDEXABLE_SUFFIXES
            and (here / name).is_file()
        ]
    return sorted(found)


def record_written_files(folder: str | PathLike[str], names: Iterable[str]) -> None:
    """Add file names to ``folder``'s :data:`WRITTEN_FILES_LIST`, so that folder walks leave those files out.

    For files that are outputs, not documents (``search --save-images`` / ``--explain``). Only the
    files named are left out: a folder of the user's own documents that also receives outputs is
    still indexed.
    """
    listed = Path(folder) / WRITTEN_FILES_LIST
    new = [name for name in dict.fromkeys(names) if name not in _written_files(Path(folder))]
    if new:
        with listed.open("a", encoding="utf-8") as file:
            file.writelines(f"{name}\n" for name in new)


def _written_files(folder: Path) -> set[str]:
    try:
        return set((folder / WRITTEN_FILES_LIST).read_text(encoding="utf-8").splitlines())
    except FileNotFoundError:
        return set()
    except (OSError, UnicodeDecodeError) as error:
        logger.warning("cannot read %s: %s", folder / WRITTEN_FILES_LIST, error)
        return set()


def stored_copy_of(collection: PageCollection, path: str | PathLike[str]) -> str | None:
    """The source under which the content of the file at ``path`` is stored, if it is (no model needed).

    For a ``delete`` by a path that holds no pages: the file may be a copy of one indexed under
    another path.
    """
    file = Path(path)
    if not file.is_file():
        return None
    try:
        ids = collection.store.page_ids({"doc_id": file_digest(file)})
    except OSError:
        return None
    rows = collection.store.get_pages(ids[:1])
    return next((row.source or None for row in rows.values()), None)


class _Added:
    """What adding one file did: its page ids, and the source of the stored copy when it was one."""

    __slots__ = ("copy_of", "page_ids")

    def __init__(self, page_ids: list[str], copy_of: str | None) -> None:
        self.page_ids = page_ids
        self.copy_of = copy_of


def _copy_reason(source: str) -> str:
    return f"identical to {source}, already indexed under that path (not indexed again)"


def _is_another_copy(stored_source: str, document: PageFile) -> bool:
    """Whether stored pages belong to another file that still holds the same content (not a move)."""
    if not stored_source or stored_source == document.source:
        return False
    other = Path(stored_source)
    try:
        if other.resolve() == document.path.resolve():
            return False  # the same file, named another way
        return other.is_file() and file_digest(other) == document.doc_id
    except OSError:
        return False


def _canonical(metadata: Mapping[str, Any]) -> str:
    """Metadata as stored JSON compares (key order and tuple/list differences ignored)."""
    return json.dumps(metadata, sort_keys=True, default=str)


def _open_existing(
    uri: str | PathLike[str], *, token: str | None, collection_name: str, create: bool, **store_kwargs: Any
) -> MilvusMultiVectorStore | None:
    """The existing collection at ``uri``, opened without a model; ``None`` if it must be created.

    With ``create=False`` a missing collection (or Milvus Lite file) is a StoreError instead, and
    nothing is created.
    """
    from colpali_milvus.errors import StoreConnectionError
    from colpali_milvus.store.lite import is_lite_uri
    from colpali_milvus.store.milvus import MilvusMultiVectorStore

    text = os.fspath(uri)
    if is_lite_uri(text) and not Path(text).expanduser().exists():
        if create:
            return None
        raise StoreError(f"no Milvus Lite database at {text}")
    try:
        return MilvusMultiVectorStore(uri, token=token, collection_name=collection_name, create=False, **store_kwargs)
    except (StoreConnectionError, IndexMismatchError):
        raise
    except StoreError:
        if create:
            return None
        raise


def _model_for(
    store: MilvusMultiVectorStore | None, collection_name: str, model_name: str | None, pool_factor: int | None
) -> tuple[str, int | None]:
    """The checkpoint and pool factor to load for a collection, refusing ones it does not record."""
    from colpali_milvus.embed.colpali import DEFAULT_MODEL

    if pool_factor is not None and (
        isinstance(pool_factor, bool) or not isinstance(pool_factor, int) or pool_factor < 1
    ):
        raise InvalidInputError(f"pool_factor must be a positive integer, got {pool_factor!r}")
    recorded = store.model_name if store is not None else None
    if model_name is None or recorded is None:
        model = model_name or recorded or DEFAULT_MODEL
    elif model_name == recorded or _same_folder(model_name, recorded):
        model = recorded  # a local checkpoint named another way: the store compares names
    else:
        raise IndexMismatchError(
            f"collection {collection_name!r} was built with model {recorded!r}, not {model_name!r}; "
            "leave the model out to use the collection's, or use another collection"
        )
    recorded_factor = store.pool_factor if store is not None else None
    if pool_factor is None:
        return model, recorded_factor if recorded_factor and recorded_factor > 1 else None
    if recorded_factor is not None and recorded_factor != pool_factor:
        raise IndexMismatchError(
            f"collection {collection_name!r} holds pages embedded with pool factor {recorded_factor} "
            f"(1: no pooling), not {pool_factor}; leave the pool factor out to use the collection's, "
            "or use another collection"
        )
    return model, pool_factor


def _same_folder(a: str, b: str) -> bool:
    try:
        return Path(a).is_dir() and Path(a).resolve() == Path(b).resolve()
    except OSError:
        return False


def _page_from_image(image: Image.Image, metadata: Mapping[str, Any]) -> Page:
    extra = {key: value for key, value in metadata.items() if key not in {"source", "page", "page_label"}}
    page = metadata.get("page", 1)
    if isinstance(page, bool) or not isinstance(page, int) or page < 1:
        raise InvalidInputError(f"metadata 'page' must be a positive int, got {page!r}")
    return Page(
        image=image.convert("RGB"),
        source=str(metadata.get("source", "")),
        page=page,
        page_label=str(metadata.get("page_label", page)),
        doc_id=image_digest(image),
        metadata=extra,
    )


def _chunks(items: Iterable[T], size: int) -> Iterator[list[T]]:
    chunk: list[T] = []
    for item in items:
        chunk.append(item)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk
