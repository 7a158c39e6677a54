"""PageCollection: a store plus its page images, with no model.

Everything about stored pages that needs no embedder lives here once, so that
:class:`~colpali_milvus.index.ColPaliIndex` and the CLI's ``info`` / ``delete`` (which must not load
weights) share one implementation of where images live, how they are written before a page is
committed, how hits get their images and how deletions remove rows and images together.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import os
import re
from collections.abc import Iterator, Mapping, Sequence
from os import PathLike
from pathlib import Path, PurePath
from typing import TYPE_CHECKING, Any

from colpali_milvus.errors import InvalidInputError
from colpali_milvus.pages.image_store import PageImageStore

if TYPE_CHECKING:
    from colpali_milvus.search.maxsim import FloatArray
    from colpali_milvus.store.filters import Filter
    from colpali_milvus.store.milvus import MilvusMultiVectorStore, StoreInfo
    from colpali_milvus.types import Page, PageHit

__all__ = ["PageCollection", "default_image_dir"]

logger = logging.getLogger(__name__)

#: Pages whose rows are read at once when the stored sources are listed.
_PAGE_BATCH = 500


class PageCollection:
    """The pages of one collection: their rows in a Milvus store and their images on disk.

    A page's image is written before its rows (the store's commit), so a committed page always
    has its image; rows are deleted before images, so a search never returns a page whose image
    was removed on purpose. Hits get ``image_path`` only from :meth:`PageImageStore.find`, never
    from stored metadata.

    Args:
        store: where the vectors and page rows live; closed by :meth:`close`.
        image_dir: where page images are kept; by default :func:`default_image_dir` of ``store``.
    """

    def __init__(self, store: MilvusMultiVectorStore, *, image_dir: str | PathLike[str] | None = None) -> None:
        self._store = store
        self._images = PageImageStore(image_dir if image_dir is not None else default_image_dir(store))

    @property
    def store(self) -> MilvusMultiVectorStore:
        return self._store

    @property
    def images(self) -> PageImageStore:
        return self._images

    @property
    def image_dir(self) -> Path:
        """The (resolved) folder holding the page images."""
        return self._images.root

    def __repr__(self) -> str:
        return f"{type(self).__name__}(store={self._store!r}, images={self._images!r})"

    # -- writing ----------------------------------------------------------------------------

    def existing_page_ids(self, page_ids: Sequence[str]) -> set[str]:
        """Which of ``page_ids`` are committed already (their pages need no embedding)."""
        return self._store.existing_page_ids(page_ids)

    def add(self, pages: Sequence[Page], vectors: Sequence[FloatArray]) -> list[str]:
        """Store embedded pages (``vectors[i]`` is ``pages[i]``'s ``(n_i, dim)`` array); returns their ids.

        Each page's image is saved first, then the rows are written; a page whose id is stored
        already is replaced, so skip those (see :meth:`existing_page_ids`) to save the embedding.
        """
        if len(pages) != len(vectors):
            raise InvalidInputError(f"{len(pages)} pages but {len(vectors)} vector arrays")
        if not pages:
            return []
        for page in pages:
            self._images.save(page.page_id, page.image)
        return self._store.add(
            vectors,
            [page.store_metadata() for page in pages],
            ids=[page.page_id for page in pages],
            texts=[page.text for page in pages],
        )

    # -- reading ----------------------------------------------------------------------------

    def search(
        self,
        query_vectors: FloatArray,
        k: int = 5,
        filter: Filter | None = None,
        *,
        expr: str | None = None,
    ) -> list[PageHit]:
        """The ``k`` best pages for a ``(n_q, dim)`` query, best first, with their images attached."""
        hits = [self.with_image(hit) for hit in self._store.search(query_vectors, k=k, filter=filter, expr=expr)]
        missing = sum(hit.image_path is None for hit in hits)
        if missing:
            logger.info("%d of %d hits have no stored image in %s", missing, len(hits), self.image_dir)
        return hits

    def with_image(self, hit: PageHit) -> PageHit:
        """``hit`` with ``image_path`` looked up in this collection's image folder (``None`` if absent).

        Whatever path the hit came with is replaced, so an image is only ever read from here.
        """
        return dataclasses.replace(hit, image_path=self._images.find(hit.page_id))

    def count(self, filter: Filter | None = None) -> int:
        """Number of committed pages (matching ``filter``)."""
        return self._store.count(filter)

    def info(self) -> StoreInfo:
        """What the store holds and how it was built (the image folder is :attr:`image_dir`)."""
        return self._store.info()

    # -- sources as people name them ----------------------------------------------------------

    def sources_matching(self, source: str) -> list[str]:
        """The stored sources a file name or path given by a person stands for (none: ``[]``).

        The first rule that finds any wins: the source exactly as stored; the absolute path it
        resolves to from the working folder (``colpali-milvus index`` stores absolute paths); every
        stored source that ends with its path components (``a.pdf`` finds ``/docs/a.pdf`` and
        ``q3/a.pdf``; ``q3/a.pdf`` only the latter). Only the last rule reads every page row.
        """
        if self._store.count({"source": source}):
            return [source]
        try:
            absolute = str(Path(source).expanduser().resolve())
        except (OSError, RuntimeError, ValueError):
            absolute = source
        if absolute != source and self._store.count({"source": absolute}):
            return [absolute]
        tail = PurePath(source).parts
        if not tail:
            return []
        return sorted({name for name in self._stored_sources() if PurePath(name).parts[-len(tail) :] == tail})

    def resolve_source_filter(self, filter: Filter) -> dict[str, Any]:
        """``filter`` with each ``source`` value replaced by the stored sources it stands for.

        A ``source`` given as a string, a list, ``$eq`` / ``$in`` or ``$ne`` / ``$nin`` is matched by
        :meth:`sources_matching` (a value that matches nothing is kept as given, so it finds nothing),
        in every ``$and`` / ``$or`` branch; other keys and operators are kept. This is what the CLI's
        ``search --filter`` and ``--source`` do; filters passed to :meth:`search` are exact.
        """
        resolved: dict[str, Any] = {}
        extra: list[dict[str, Any]] = []
        for key, value in filter.items():
            if key in ("$and", "$or") and isinstance(value, list):
                resolved[key] = [
                    self.resolve_source_filter(item) if isinstance(item, Mapping) else item for item in value
                ]
            elif key == "source":
                first, *others = self._source_conditions(value)
                resolved[key] = first
                extra += [{"source": condition} for condition in others]
            else:
                resolved[key] = value
        return {"$and": [resolved, *extra]} if extra else resolved

    def _source_conditions(self, value: Any) -> list[Any]:
        """One condition per operator of a ``source`` value, with names replaced by stored sources."""
        if isinstance(value, str):
            return [{"$in": self._stored_names([value])}]
        if isinstance(value, list):
            return [{"$in": self._stored_names(value)}]
        if not isinstance(value, Mapping) or not value:
            return [value]  # the filter's own check reports a bad value
        conditions: list[Any] = []
        for operator, operand in value.items():
            names = [operand] if isinstance(operand, str) else operand
            if operator in ("$eq", "$in") and isinstance(names, list):
                conditions.append({"$in": self._stored_names(names)})
            elif operator in ("$ne", "$nin") and isinstance(names, list):
                conditions.append({"$nin": self._stored_names(names)})
            else:
                conditions.append({operator: operand})
        return conditions

    def _stored_names(self, names: Sequence[Any]) -> list[Any]:
        if not all(isinstance(name, str) for name in names):
            return list(names)  # the filter's own check reports a value that is not a string
        found: list[str] = []
        for name in names:
            matches = self.sources_matching(name)
            if not matches:
                logger.warning("no stored source matches %r", name)
            found += matches or [name]
        return list(dict.fromkeys(found))

    def _stored_sources(self) -> Iterator[str]:
        ids = self._store.page_ids()
        for first in range(0, len(ids), _PAGE_BATCH):
            for page in self._store.get_pages(ids[first : first + _PAGE_BATCH]).values():
                if page.source:
                    yield page.source

    # -- deletion ---------------------------------------------------------------------------

    def delete(
        self,
        source: str | PathLike[str] | None = None,
        *,
        doc_ids: Sequence[str] | None = None,
        page_ids: Sequence[str] | None = None,
        filter: Filter | None = None,
    ) -> list[str]:
        """Delete pages, rows then images, by source, document ids, page ids or filter (all must match).

        At least one criterion is required (the store refuses a bare delete); returns the deleted ids.
        """
        deleted = self._store.delete(
            None if source is None else os.fspath(source), doc_ids=doc_ids, page_ids=page_ids, filter=filter
        )
        self._images.delete(deleted)
        return deleted

    def delete_other_versions(self, source: str | PathLike[str], *, keep_doc_id: str) -> list[str]:
        """Delete the pages of ``source`` that belong to any document but ``keep_doc_id``.

        Called once a new version of a file is stored, so it replaces the old one. Pages with no
        source (in-memory images) have no versions: an empty ``source`` deletes nothing.
        """
        source = os.fspath(source)
        if not source:
            return []
        stale = self.delete(source, filter={"doc_id": {"$ne": keep_doc_id}})
        if stale:
            logger.info("replaced %d pages of an older version of %s", len(stale), source)
        return stale

    # -- lifetime ---------------------------------------------------------------------------

    def close(self) -> None:
        self._store.close()

    def __enter__(self) -> PageCollection:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def default_image_dir(store: MilvusMultiVectorStore) -> Path:
    """``<lite file>.pages/<collection>`` for Milvus Lite, a per-user data folder for a server.

    The server folder is named after the endpoint (credentials stripped) plus a digest of the uri,
    so two servers never share images and credentials in the uri never appear in a path.
    """
    if store.is_lite:
        return Path(f"{store.uri}.pages") / store.collection_name
    data_home = Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share")
    endpoint = re.sub(r"^[a-z][a-z0-9+.-]*://|[^/@]*@", "", store.uri, flags=re.IGNORECASE)
    slug = re.sub(r"[^A-Za-z0-9._-]+", "_", endpoint).strip("_")[:64]
    digest = hashlib.sha256(store.uri.encode()).hexdigest()[:8]
    return data_home / "colpali-milvus" / f"{slug}-{digest}" / store.collection_name
