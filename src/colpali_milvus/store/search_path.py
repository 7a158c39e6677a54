"""What a search path is: where candidate pages and their vectors come from.

A store has exactly one path, chosen when it opens: :class:`~colpali_milvus.store.cached_path.CachedPath`
(an in-process copy of the pages, verified against Milvus) or
:class:`~colpali_milvus.store.server_path.ServerPath` (ANN in Milvus, then the candidates' vectors read
back). Either hands the front class the ``k`` best pages, each scored by exact MaxSim over **all** of
its vectors. A path never calls back into the front class.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from colpali_milvus.store import reads
from colpali_milvus.store.collections import CollectionNames
from colpali_milvus.store.connection import MilvusConnection

__all__ = ["RankedPages", "ReadsFromMilvus", "SearchPath"]

FloatArray = npt.NDArray[np.float32]


@dataclass(frozen=True, slots=True)
class RankedPages:
    """Pages best first, with their exact MaxSim and page rows (aligned)."""

    page_ids: list[str]
    scores: list[float]
    rows: list[Mapping[str, Any]]


class SearchPath(Protocol):
    @property
    def name(self) -> str:
        """``"cached"``, ``"codes"``, ``"server"`` or ``"scan"``, as StoreInfo reports it."""
        ...

    def ranked(self, query: FloatArray, k: int, where: str) -> RankedPages:
        """The ``k`` best committed pages matching ``where`` (fewer when fewer exist), by exact MaxSim."""
        ...

    def existing(self, page_ids: Sequence[str]) -> set[str]:
        """The committed pages among ``page_ids``."""
        ...

    def vectors(self, page_ids: Sequence[str]) -> dict[str, FloatArray]:
        """All vectors of the committed pages among ``page_ids``."""
        ...

    def before_write(self) -> None:
        """A write of this store is about to start (under the collection's write lock)."""
        ...

    def ids_to_clear(self, page_ids: Sequence[str]) -> list[str]:
        """Which of ``page_ids`` may have rows to delete before they are written anew."""
        ...

    def close(self, *, last_user: bool) -> None:
        """The store closes; ``last_user`` when no other store in this process uses the collection."""
        ...


class ReadsFromMilvus:
    """What the paths that hold nothing share: page rows and vectors read from Milvus at every call."""

    _connection: MilvusConnection
    _names: CollectionNames
    _dim: int

    def existing(self, page_ids: Sequence[str]) -> set[str]:
        return set(reads.page_rows(self._connection, self._names, list(page_ids), fields=("page_id",)))

    def vectors(self, page_ids: Sequence[str]) -> dict[str, FloatArray]:
        rows = reads.page_rows(self._connection, self._names, list(page_ids))
        return reads.page_vectors(self._connection, self._names, rows, self._dim)

    def before_write(self) -> None:
        pass

    def ids_to_clear(self, page_ids: Sequence[str]) -> list[str]:
        return list(page_ids)  # rows of a replaced page, or orphaned by a crash, may exist for any id

    def close(self, *, last_user: bool) -> None:
        pass
