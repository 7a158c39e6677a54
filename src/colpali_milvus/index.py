"""ColPaliIndex: pages + embedder + store + page images, wired into add and search."""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import os
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from os import PathLike
from pathlib import Path
from typing import TYPE_CHECKING, Any

from colpali_milvus.embed.protocol import MultiVectorEmbedder, PatchExplainer, embedder_name
from colpali_milvus.errors import DocumentError, InvalidInputError, ModelError
from colpali_milvus.pages.identity import image_digest
from colpali_milvus.pages.image_store import PageImageStore
from colpali_milvus.pages.images import IMAGE_SUFFIXES, read_image
from colpali_milvus.pages.pdf import DEFAULT_DPI, read_pdf
from colpali_milvus.store.filters import Filter
from colpali_milvus.types import IngestReport, Page, PageHit, SkippedFile

if TYPE_CHECKING:
    from PIL import Image

    from colpali_milvus.explain import SimilarityMap
    from colpali_milvus.store.milvus import MilvusMultiVectorStore

__all__ = ["INDEXABLE_SUFFIXES", "ColPaliIndex", "Progress"]

logger = logging.getLogger(__name__)

#: What add_folder and the CLI take from a folder: PDFs and the image types read_image opens.
INDEXABLE_SUFFIXES = IMAGE_SUFFIXES | {".pdf"}

#: Called after each ingestion batch with the number of pages it handled (stored or already present).
Progress = Callable[[int], None]


class ColPaliIndex:
    """Index PDFs and images by how their pages look; search them with a text question.

    Page images are saved as PNG files (one per page, named by page id) in ``image_dir``, so hits
    can hand them to a vision LLM after a restart. By default that folder sits next to a Milvus Lite
    file (``<file>.pages/<collection>``); for a server it is a per-user data folder.

    Args:
        embedder: any object with ``embed_images`` and ``embed_queries`` (see
            :class:`~colpali_milvus.embed.MultiVectorEmbedder`), e.g. a ``ColPaliEmbedder``.
        store: where the vectors live.
        image_dir: where page images are kept (see above for the default).
        ingest_batch_size: pages rendered, embedded and written per step (bounds memory).
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
        self.store = store
        self.ingest_batch_size = ingest_batch_size
        store.claim_model(embedder_name(embedder))
        self.images = PageImageStore(image_dir if image_dir is not None else default_image_dir(store))

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
        **store_kwargs: Any,
    ) -> ColPaliIndex:
        """Load a ColPali-family model and open (or create) its collection in one call.

        ``pool_factor`` turns on token pooling of pages (see :class:`ColPaliEmbedder`).
        """
        from colpali_milvus.embed.colpali import DEFAULT_MODEL, ColPaliEmbedder
        from colpali_milvus.store.milvus import MilvusMultiVectorStore

        embedder = ColPaliEmbedder(
            model_name or DEFAULT_MODEL, device=device, batch_size=batch_size, pool_factor=pool_factor
        )
        store = MilvusMultiVectorStore(
            uri,
            token=token,
            collection_name=collection_name,
            dim=embedder.dim,
            model_name=embedder.model_name,
            **store_kwargs,
        )
        return cls(embedder, store, image_dir=image_dir)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(embedder={self.embedder!r}, store={self.store!r}, images={self.images!r})"

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

        Adding the same file again embeds nothing. A changed file at the same path replaces the
        pages of its previous version (after the new ones are stored).
        """
        pages = read_pdf(path, dpi=dpi, password=password, metadata=metadata)
        return self._add_document(pages, progress)

    def add_file(
        self,
        path: str | PathLike[str],
        *,
        metadata: Mapping[str, Any] | None = None,
        password: str | None = None,
        progress: Progress | None = None,
    ) -> list[str]:
        """Index a PDF or an image file, chosen by its suffix; returns its page ids."""
        if Path(path).suffix.lower() == ".pdf":
            return self.add_pdf(path, metadata=metadata, password=password, progress=progress)
        if Path(path).suffix.lower() in IMAGE_SUFFIXES:
            return self.add_image_file(path, metadata=metadata, progress=progress)
        raise DocumentError(f"{path}: not a PDF or a supported image ({', '.join(sorted(IMAGE_SUFFIXES))})")

    def add_folder(
        self,
        folder: str | PathLike[str],
        *,
        recursive: bool = True,
        metadata: Mapping[str, Any] | None = None,
        progress: Progress | None = None,
    ) -> IngestReport:
        """Index every PDF and image in a folder; unreadable files are skipped and reported.

        Only :class:`~colpali_milvus.errors.DocumentError` (a bad file) skips a file; a model or
        Milvus failure stops the run, since every following file would fail the same way. Files are
        taken in sorted order, and re-running after an interruption embeds only what is missing.
        """
        root = Path(folder)
        if not root.is_dir():
            raise DocumentError(f"no such folder: {root}")
        return self.add_files(indexable_files(root, recursive=recursive), metadata=metadata, progress=progress)

    def add_files(
        self,
        paths: Iterable[str | PathLike[str]],
        *,
        metadata: Mapping[str, Any] | None = None,
        progress: Progress | None = None,
    ) -> IngestReport:
        """Index PDFs and images; files that cannot be read are skipped and reported (see ``add_folder``)."""
        files: list[str] = []
        page_ids: list[str] = []
        skipped: list[SkippedFile] = []
        for path in paths:
            try:
                page_ids += self.add_file(path, metadata=metadata, progress=progress)
                files.append(str(path))
            except DocumentError as error:
                logger.warning("skipped %s: %s", path, error)
                skipped.append(SkippedFile(str(path), str(error)))
        return IngestReport(files=tuple(files), page_ids=tuple(page_ids), skipped=tuple(skipped))

    def add_image_file(
        self,
        path: str | PathLike[str],
        *,
        metadata: Mapping[str, Any] | None = None,
        progress: Progress | None = None,
    ) -> list[str]:
        """Index an image file (each frame of a multi-page TIFF is a page); returns page ids."""
        return self._add_document(read_image(path, metadata=metadata), progress)

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
            stored = self.store.existing_page_ids(ids)
            unique: dict[str, Page] = {}  # same id = same content and page number: embed it once
            for page in batch:
                unique.setdefault(page.page_id, page)
            new = [page for page_id, page in unique.items() if page_id not in stored]
            if new:
                vectors = self.embedder.embed_images([page.image for page in new])
                for page in new:  # images first: a committed page always has its image
                    self.images.save(page.page_id, page.image)
                self.store.add(
                    vectors,
                    [page.store_metadata() for page in new],
                    ids=[page.page_id for page in new],
                    texts=[page.text for page in new],
                )
            page_ids += ids
            logger.info("stored %d new pages (%d already present)", len(new), len(unique) - len(new))
            if progress is not None:
                progress(len(batch))
        return page_ids

    def _add_document(self, pages: Iterator[Page], progress: Progress | None = None) -> list[str]:
        first = next(pages, None)
        if first is None:
            return []
        page_ids = self.add_pages(_prepend(first, pages), progress=progress)
        # A new version of a file at the same source replaces the old one, once it is stored.
        stale = self.store.delete(source=first.source, filter={"doc_id": {"$ne": first.doc_id}})
        if stale:
            self.images.delete(stale)
            logger.info("replaced %d pages of an older version of %s", len(stale), first.source)
        return page_ids

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
        hits = self.store.search(query_vectors, k=k, filter=filter, expr=expr)
        return [dataclasses.replace(hit, image_path=self.images.find(hit.page_id)) for hit in hits]

    def explain(self, query: str, hit: PageHit) -> SimilarityMap:
        """Which patches of a hit's page matched which words of ``query``: ``.heatmap()`` draws it.

        Needs an embedder that can explain (``ColPaliEmbedder`` for ColPali and ColQwen2/2.5) and
        the page's stored image; costs one more forward pass over the page.
        """
        if not isinstance(self.embedder, PatchExplainer):
            raise ModelError(f"{type(self.embedder).__name__} cannot draw similarity maps (no explain_page)")
        image_path = hit.image_path or self.images.find(hit.page_id)
        if image_path is None:
            raise DocumentError(f"page {hit.page_id!r} has no stored image to explain")
        image = dataclasses.replace(hit, image_path=image_path).load_image()
        return self.embedder.explain_page(query, image)

    def delete(
        self,
        source: str | PathLike[str] | None = None,
        *,
        doc_ids: Sequence[str] | None = None,
        page_ids: Sequence[str] | None = None,
        filter: Filter | None = None,
    ) -> list[str]:
        """Delete pages (rows and images) by source, document ids, page ids or filter."""
        deleted = self.store.delete(
            None if source is None else str(source), doc_ids=doc_ids, page_ids=page_ids, filter=filter
        )
        self.images.delete(deleted)
        return deleted

    def count(self, filter: Filter | None = None) -> int:
        """Number of indexed pages (matching ``filter``)."""
        return self.store.count(filter)

    def close(self) -> None:
        self.store.close()

    def __enter__(self) -> ColPaliIndex:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def indexable_files(folder: Path, *, recursive: bool = True) -> list[Path]:
    """The PDFs and images in a folder that ``add_folder`` takes, in sorted order."""
    pattern = "**/*" if recursive else "*"
    return sorted(p for p in folder.glob(pattern) if p.is_file() and p.suffix.lower() in INDEXABLE_SUFFIXES)


def default_image_dir(store: MilvusMultiVectorStore) -> Path:
    """``<lite file>.pages/<collection>`` for Milvus Lite, a per-user data folder for a server."""
    if store.is_lite:
        return Path(f"{store.uri}.pages") / store.collection_name
    data_home = Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share")
    endpoint = re.sub(r"^[a-z][a-z0-9+.-]*://|[^/@]*@", "", store.uri, flags=re.IGNORECASE)
    slug = re.sub(r"[^A-Za-z0-9._-]+", "_", endpoint).strip("_")[:64]
    digest = hashlib.sha256(store.uri.encode()).hexdigest()[:8]
    return data_home / "colpali-milvus" / f"{slug}-{digest}" / store.collection_name


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


def _chunks(items: Iterable[Page], size: int) -> Iterator[list[Page]]:
    chunk: list[Page] = []
    for item in items:
        chunk.append(item)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def _prepend(first: Page, rest: Iterator[Page]) -> Iterator[Page]:
    yield first
    yield from rest
