"""Copy a collection from one store to another without re-embedding: :func:`copy_collection`.

Any two stores: a Milvus Lite file and a server, two servers, two Lite files (or two collections of
one). Pages travel with everything they have: typed metadata columns and JSON metadata, text,
vectors and page image. They are written through the target's public API, so the target gets its
own layout and commit markers: each page's image first (as :meth:`PageCollection.add` does), then its
rows with :meth:`MilvusMultiVectorStore.add`.

A copy reads the source a batch of page ids at a time (rows, then verified vectors), never the whole
collection at once, and never writes to it. It is idempotent and resumable, by the digest of each
page's float32 vectors that both stores record in the page row: a page the target holds with the same
digest (and the same metadata and text) is skipped, and a page is counted as copied only once the
target records the source's digest for it. A page either lands whole with its image or not at all
(the store's commit marker), so a copy that is interrupted or killed leaves whole pages behind, and
the same call again finishes it.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from os import PathLike
from pathlib import Path
from typing import TYPE_CHECKING

from colpali_milvus.collection import PageCollection
from colpali_milvus.errors import (
    ColPaliMilvusError,
    DocumentError,
    IndexMismatchError,
    InvalidInputError,
    StoreConnectionError,
    StoreError,
)
from colpali_milvus.store.connection import batches

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

    from colpali_milvus.store.milvus import MilvusMultiVectorStore
    from colpali_milvus.types import StoredPage

__all__ = ["DEFAULT_BATCH_PAGES", "CopyProgress", "CopyReport", "FailedPage", "copy_collection"]

logger = logging.getLogger(__name__)

#: Pages read and written per batch: ~32 MB of ColPali vectors (1,030 x 128 float32 per page). Milvus
#: Lite scans a collection for each batch's read and delete, so fewer, larger batches copy faster there.
DEFAULT_BATCH_PAGES = 64

#: Called after each batch with the pages handled so far (copied, skipped or failed) and the total.
CopyProgress = Callable[[int, int], None]


@dataclass(frozen=True, slots=True)
class FailedPage:
    """A page that was not copied, and why (the source still holds it; a re-run tries it again)."""

    page_id: str
    reason: str


@dataclass(frozen=True, slots=True)
class CopyReport:
    """What a copy did: the pages it copied, skipped (held already, same vectors) and failed to copy."""

    source: str  # uri (without credentials) and collection
    target: str
    copied: tuple[str, ...]
    skipped: tuple[str, ...]
    failed: tuple[FailedPage, ...]
    seconds: float

    @property
    def pages(self) -> int:
        """Pages of the source this copy went through."""
        return len(self.copied) + len(self.skipped) + len(self.failed)

    @property
    def complete(self) -> bool:
        """Whether the target now holds every page the source held (none failed)."""
        return not self.failed

    @property
    def pages_per_second(self) -> float:
        """Pages copied per second of the copy (skipped pages not counted)."""
        return len(self.copied) / self.seconds if self.seconds > 0 else 0.0


def copy_collection(
    source: PageCollection | str | PathLike[str],
    target: PageCollection | str | PathLike[str],
    *,
    collection: str = "colpali",
    target_collection: str | None = None,
    token: str | None = None,
    target_token: str | None = None,
    image_dir: str | PathLike[str] | None = None,
    target_image_dir: str | PathLike[str] | None = None,
    batch_size: int = DEFAULT_BATCH_PAGES,
    progress: CopyProgress | None = None,
) -> CopyReport:
    """Copy every page of ``source`` into ``target``: rows, vectors and images, no embedding.

    ``source`` and ``target`` are a store uri (a Milvus Lite ``*.db`` path or a server URL) or an
    open :class:`PageCollection`, used as it is and left open. A uri is opened with the options
    below and closed at the end; ``collection``, ``token`` and ``image_dir`` are the source's,
    ``target_*`` the target's (``target_collection``: the source's name; ``*image_dir``: the store's
    default folder). A source uri is opened without the in-process cache, so pages are read a batch
    at a time; open a :class:`PageCollection` with ``cache=False`` for the same.

    The target collection is created with the source's dim when it does not exist, and gets the
    source's model and pool factor recorded. A target that records another model, dim or pool factor
    is refused with :class:`IndexMismatchError` before any page is written (and the source collection
    itself with :class:`InvalidInputError`).

    Pages the target holds with the same vector digest, metadata and text are skipped (their image
    is copied if the target lacks it); every other page is written (a page of the same id is
    replaced) and then checked: the target must record the digest the source does. A page that cannot be read, written
    or verified is listed in the report's ``failed`` with the reason, and the copy goes on; a lost
    connection stops it (:class:`StoreConnectionError`). Either way, calling again resumes.

    ``progress(done, total)`` is called after each batch of ``batch_size`` pages.
    """
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size <= 0:
        raise InvalidInputError(f"batch_size must be a positive integer, got {batch_size!r}")
    opened: list[PageCollection] = []
    try:
        if isinstance(source, PageCollection):
            from_pages = source
        else:
            from_pages = _open_source(os.fspath(source), collection, token, image_dir)
            opened.append(from_pages)
        if isinstance(target, PageCollection):
            to_pages = target
        else:
            name = target_collection or from_pages.store.collection_name
            to_pages = _open_target(os.fspath(target), name, target_token, target_image_dir, from_pages.store)
            opened.append(to_pages)
        _claim_source_build(from_pages.store, to_pages.store)
        return _Copy(from_pages, to_pages).run(batch_size, progress)
    finally:
        for pages in reversed(opened):
            pages.close()


# -- opening and checking the two stores ----------------------------------------------------------


def _open_source(uri: str, collection: str, token: str | None, image_dir: str | PathLike[str] | None) -> PageCollection:
    from colpali_milvus.store.collections import reading_older_lite_files
    from colpali_milvus.store.lite import is_lite_uri
    from colpali_milvus.store.milvus import MilvusMultiVectorStore

    if is_lite_uri(uri) and not Path(uri).expanduser().exists():  # opening it would create it
        raise StoreError(f"no Milvus Lite database at {uri} to copy from")
    with reading_older_lite_files():  # an older Lite file is what a user upgrades from
        store = MilvusMultiVectorStore(uri, token=token, collection_name=collection, cache=False, create=False)
    return PageCollection(store, image_dir=image_dir)


def _open_target(
    uri: str,
    collection: str,
    token: str | None,
    image_dir: str | PathLike[str] | None,
    source: MilvusMultiVectorStore,
) -> PageCollection:
    from colpali_milvus.store.milvus import MilvusMultiVectorStore

    # Without the cache: a Lite target's cached copy would hold every page written, in memory.
    # An existing collection of another dim is refused here, before anything is written.
    store = MilvusMultiVectorStore(uri, token=token, collection_name=collection, dim=source.dim, cache=False)
    return PageCollection(store, image_dir=image_dir)


def _claim_source_build(source: MilvusMultiVectorStore, target: MilvusMultiVectorStore) -> None:
    """Refuse a target built otherwise than the source (or the source itself); record the source's build."""
    if (source.connection.identity, source.collection_name) == (target.connection.identity, target.collection_name):
        raise InvalidInputError(f"source and target are the same collection {source.collection_name!r}")
    where = f"target collection {target.collection_name!r} at {target.display_uri}"
    if target.dim != source.dim:
        raise IndexMismatchError(f"{where} holds {target.dim}-d vectors, the source {source.dim}-d: nothing copied")
    if target.model_name is not None and target.model_name != source.model_name:
        theirs = repr(source.model_name) if source.model_name is not None else "a model it does not record"
        raise IndexMismatchError(
            f"{where} holds pages of model {target.model_name!r}, the source of {theirs}: "
            "nothing copied (copy into another collection)"
        )
    # The store's convention: no recorded factor on the source means no pooling (claim_model records 1).
    source_factor = source.pool_factor or 1
    if target.pool_factor is not None and target.pool_factor != source_factor:
        raise IndexMismatchError(
            f"{where} holds pages pooled with factor {target.pool_factor}, the source's factor is {source_factor}: "
            "nothing copied (copy into another collection)"
        )
    if source.model_name is not None:
        target.claim_model(source.model_name, pool_factor=source.pool_factor)


# -- the copy -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _SourcePage:
    """One page read from the source, whole: its row, verified vectors and recorded digest."""

    row: StoredPage
    vectors: npt.NDArray[np.float32]
    digest: str
    image: Path | None


class _Copy:
    def __init__(self, source: PageCollection, target: PageCollection) -> None:
        self._source = source
        self._target = target
        self._copied: list[str] = []
        self._skipped: list[str] = []
        self._failed: list[FailedPage] = []

    def run(self, batch_size: int, progress: CopyProgress | None) -> CopyReport:
        started = time.perf_counter()
        page_ids = self._source.store.page_ids()
        logger.info("copying %d pages from %s to %s", len(page_ids), _describe(self._source), _describe(self._target))
        done = 0
        for batch in batches(page_ids, batch_size):
            self._copy_batch(batch)
            done += len(batch)
            if progress is not None:
                progress(done, len(page_ids))
        return CopyReport(
            source=_describe(self._source),
            target=_describe(self._target),
            copied=tuple(self._copied),
            skipped=tuple(self._skipped),
            failed=tuple(self._failed),
            seconds=time.perf_counter() - started,
        )

    def _copy_batch(self, page_ids: list[str]) -> None:
        # The digests first: a page that changes after this read fails the check after writing.
        source_digests = self._source.store.page_digests(page_ids)
        source_rows = self._source.store.get_pages(list(source_digests))
        target_digests = self._target.store.page_digests(list(source_rows))
        held = self._target.store.get_pages([i for i in source_rows if target_digests.get(i) == source_digests[i]])
        wanted: list[str] = []
        for page_id in page_ids:
            if page_id not in source_rows:
                self._fail(page_id, "deleted from the source during the copy")
            elif held.get(page_id) == source_rows[page_id]:  # same vectors, metadata and text
                self._skipped.append(page_id)
                self._copy_missing_image(page_id)
            else:
                wanted.append(page_id)
        pages = self._read(wanted, source_rows, source_digests)
        pages = [page for page in pages if self._copy_image(page)]
        written = self._write(pages)
        recorded = self._target.store.page_digests([page.row.page_id for page in written])
        for page in written:
            page_id = page.row.page_id
            if recorded.get(page_id) == page.digest:
                self._copied.append(page_id)
            else:
                self._fail(
                    page_id,
                    f"after writing, the target records digest {recorded.get(page_id)!r}, the source {page.digest!r} "
                    "(the page changed in the source during the copy?)",
                )

    def _read(
        self, page_ids: list[str], rows: Mapping[str, StoredPage], digests: Mapping[str, str]
    ) -> list[_SourcePage]:
        """The pages' verified vectors from the source; a page whose vectors cannot be read whole is reported failed."""
        if not page_ids:
            return []
        vectors = self._source.store.get_vectors(page_ids)
        pages = []
        for page_id in page_ids:
            if page_id not in vectors:
                self._fail(page_id, "its vectors cannot be read whole from the source (deleted, or rows missing)")
            else:
                image = self._source.images.find(page_id)
                pages.append(_SourcePage(rows[page_id], vectors[page_id], digests[page_id], image))
        return pages

    def _copy_image(self, page: _SourcePage) -> bool:
        """Write the page's image into the target (or remove a stale one there); False if that failed."""
        page_id = page.row.page_id
        if page.image is None:
            self._target.images.delete([page_id])  # an image of a page this one replaces is not its image
            return True
        try:
            _save_image(self._target, page_id, page.image)
        except (OSError, DocumentError) as error:
            self._fail(page_id, f"its image {page.image} cannot be copied: {error}")
            return False
        return True

    def _copy_missing_image(self, page_id: str) -> None:
        """A page held already: copy its image if the target lacks it (e.g. another image folder)."""
        if self._target.images.find(page_id) is not None:
            return
        image = self._source.images.find(page_id)
        if image is None:
            return
        try:
            _save_image(self._target, page_id, image)
        except (OSError, DocumentError) as error:
            logger.warning("page %s is in the target, but its image %s cannot be copied: %s", page_id, image, error)

    def _write(self, pages: Sequence[_SourcePage]) -> list[_SourcePage]:
        """Add the pages to the target; one add per batch, page by page if that fails. Returns those written."""
        if not pages:
            return []
        try:
            self._target.store.add(
                [page.vectors for page in pages],
                [_metadata(page.row) for page in pages],
                ids=[page.row.page_id for page in pages],
                texts=[page.row.text for page in pages],
            )
        except StoreConnectionError:
            raise  # every page would fail the same way: stop, a re-run resumes
        except ColPaliMilvusError as error:
            if len(pages) == 1:
                self._fail(pages[0].row.page_id, f"the target refused it: {error}")
                return []
            logger.info("a batch of %d pages failed (%s); writing them one at a time", len(pages), error)
            written: list[_SourcePage] = []
            for page in pages:
                written += self._write([page])
            return written
        return list(pages)

    def _fail(self, page_id: str, reason: str) -> None:
        logger.info("page %s not copied: %s", page_id, reason)  # the report lists it
        self._failed.append(FailedPage(page_id, reason))


def _save_image(target: PageCollection, page_id: str, path: Path) -> None:
    from PIL import Image

    with Image.open(path) as image:
        target.images.save(page_id, image)


def _metadata(page: StoredPage) -> dict[str, object]:
    """What :meth:`MilvusMultiVectorStore.add` takes to store the page's row as it is."""
    return {
        **page.metadata,
        "source": page.source,
        "page": page.page,
        "page_label": page.page_label,  # given even when empty: add would derive one from the page number
        "doc_id": page.doc_id,
    }


def _describe(pages: PageCollection) -> str:
    return f"{pages.store.display_uri} (collection {pages.store.collection_name!r})"
