"""Float vectors that stay in Milvus: read for the few pages a search rescores (``cache="codes"``).

A serving process on a server holds every page's int8 codes and scans them; the exact rescoring
that certifies the top ``k`` needs the float vectors of only a handful of pages (~5 on ColPali-shaped
corpora, see :mod:`colpali_milvus.search.refine`). They are read in one batched request per search,
verified against the digests of the page rows the copy was synced at: a page another writer
replaced or deleted since raises :class:`~.float_file.StalePagesError`, and the cached path syncs
and searches again, so a search never scores a page on vectors other than those its codes came from.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
import numpy.typing as npt

from colpali_milvus.store import reads
from colpali_milvus.store.collections import CollectionNames
from colpali_milvus.store.connection import MilvusConnection
from colpali_milvus.store.float_file import StalePagesError

__all__ = ["LeftInMilvus", "MilvusFloats"]

FloatArray = npt.NDArray[np.float32]


class LeftInMilvus:
    """The shared copy's :class:`~.float_file.PageFloats` in codes mode: nothing is held.

    Each store reads the floats through its own connection (:class:`MilvusFloats`), never through
    the copy: the copy outlives the store that created it.
    """

    remote = True
    held_nbytes = 0

    def put(self, page_id: str, vectors: FloatArray) -> None:
        pass  # Milvus has them

    def remove(self, page_ids: Iterable[str]) -> None:
        pass

    def get(self, page_id: str) -> FloatArray:
        raise LookupError("the float vectors are in Milvus: read them with MilvusFloats")

    def get_many(self, rows: Mapping[str, Mapping[str, Any]]) -> dict[str, FloatArray]:
        raise LookupError("the float vectors are in Milvus: read them with MilvusFloats")


class MilvusFloats:
    """Reads committed pages' float vectors from Milvus through one store's connection."""

    def __init__(self, connection: MilvusConnection, names: CollectionNames, dim: int) -> None:
        self._connection = connection
        self._names = names
        self._dim = dim

    def get_many(self, rows: Mapping[str, Mapping[str, Any]]) -> dict[str, FloatArray]:
        """The vectors of the pages whose page rows (as the copy holds them) are ``rows``, by id.

        Raises :class:`~.float_file.StalePagesError` naming the pages whose stored vectors no
        longer hash to those rows' digests (replaced or deleted by another writer since).
        """
        if not rows:
            return {}
        # Session reads skip the wait for the server's next time tick (0.2-0.4 s on 2.3); a page that
        # does not come back whole under them is read again Strong before it counts as changed.
        found = self._read(rows, reads.SEARCH_CONSISTENCY)
        if missing := rows.keys() - found.keys():
            found |= self._read({page_id: rows[page_id] for page_id in missing}, None)
        if missing := rows.keys() - found.keys():
            raise StalePagesError(missing)
        return found

    def _read(self, rows: Mapping[str, Mapping[str, Any]], consistency: str | None) -> dict[str, FloatArray]:
        """The pages' vectors in up to PARALLEL_READS concurrent requests, each checked against its digest."""
        connection, names, parallel = self._connection, self._names, min(len(rows), reads.PARALLEL_READS)
        return reads.page_vectors(connection, names, rows, self._dim, consistency=consistency, parallel=parallel)
