"""The cached search path: an in-process copy of the committed pages, provably current.

No Milvus request sits on the query path (a filter costs one query on the pages collection).
The copy is shared by every store on the collection in this process (see :mod:`.shared`) and kept
current in one of two ways, chosen by whether this process is the collection's only writer:

- **exclusive** (Milvus Lite: one process per file): every write in the process updates the copy
  under the collection's write lock, in the same order as Milvus. The copy is saved to a file at
  the last close and read back at the next open only if it verifies against the committed digests.
- **shared** (a server): other processes may write. Every read first compares the collection's
  generation token with the one the copy was synced at; if another writer changed it, the page
  rows are re-read and pages whose digest changed are fetched again (their codes made anew).

On a server the copy holds the float vectors too (``cache=True``), or only the codes
(``cache="codes"``, the default where the codes fit a budget): the few pages a search rescores are
then read from Milvus, checked against the digests the copy was synced at; a page changed since
makes the copy sync and the search run again.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import numpy as np
import numpy.typing as npt

from colpali_milvus.errors import StoreError
from colpali_milvus.store import lite, packed, reads
from colpali_milvus.store.cache import PageVectorCache, discard_saved_copy
from colpali_milvus.store.collections import CollectionNames, read_generation
from colpali_milvus.store.connection import MilvusConnection
from colpali_milvus.store.float_file import DamagedCopyError, StalePagesError
from colpali_milvus.store.milvus_floats import LeftInMilvus, MilvusFloats
from colpali_milvus.store.rows import PageRecord
from colpali_milvus.store.search_path import RankedPages
from colpali_milvus.store.shared import SharedCollection

__all__ = ["CachedPath", "SharedCopy"]

logger = logging.getLogger(__name__)

#: Pages fetched per request group while syncing a codes-only copy (their floats are dropped after encoding).
SYNC_GROUP_PAGES = 96
#: Searches retried after a page changed under them before the error is raised, waiting
#: 0.25 s, 0.5 s, ... between tries: a 2.3 server compacting segments has answered a page's rows
#: incompletely for a few seconds after an index build.
_STALE_RETRIES = 5
_STALE_FIRST_WAIT_S = 0.25

FloatArray = npt.NDArray[np.float32]
_T = TypeVar("_T")


@dataclass(eq=False)
class _CacheState:
    """The shared copy and what is known about it."""

    cache: PageVectorCache
    loaded: bool
    loaded_from: str = ""  # "new", "file" or "milvus": how the copy was first filled
    saved_version: int = -1
    generation: str | None = None  # the collection's generation the copy was synced at (shared mode)
    force_sync: bool = False  # a search found a page changed under it: sync whatever the token says
    lock: threading.Lock = field(default_factory=threading.Lock)


class CachedPath:
    """Every page scored on its int8 codes in memory with a proven error bound; the top k certified exactly.

    ``floats_in_milvus``: hold only the codes; read the float vectors of the pages to rescore from
    Milvus, through this store's connection (a server's ``cache="codes"``). The first store on a
    collection in a process decides where the process's shared copy keeps them.
    """

    def __init__(
        self,
        connection: MilvusConnection,
        names: CollectionNames,
        shared: SharedCollection,
        *,
        dim: int,
        exclusive: bool,
        created: bool,
        rerank_depth: int | None = None,
        cache_file: Path | None = None,
        floats_in_milvus: bool = False,
    ) -> None:
        self._connection = connection
        self._names = names
        self._shared = shared
        self._exclusive = exclusive
        self._rerank_depth = rerank_depth
        self._cache_file = cache_file if exclusive else None
        self._read_floats = MilvusFloats(connection, names, dim).get_many
        if shared.cache_state is None:
            cache = PageVectorCache(dim, self._cache_file, floats=LeftInMilvus() if floats_in_milvus else None)
            # A collection this store just created is empty: the copy starts loaded, at its generation.
            generation = read_generation(connection, names) if created and not exclusive else None
            state = _CacheState(cache, loaded=created, loaded_from="new" if created else "", generation=generation)
            shared.cache_state = state
        self._state: _CacheState = shared.cache_state

    @property
    def name(self) -> str:
        """``"codes"`` where the shared copy leaves the float vectors in Milvus, else ``"cached"`` (StoreInfo)."""
        return "cached" if self._state.cache.holds_floats else "codes"

    @property
    def loaded_from(self) -> str:
        """How the shared copy was first filled: ``"new"``, ``"file"`` or ``"milvus"`` (``""``: not yet)."""
        return self._state.loaded_from

    # -- reads ------------------------------------------------------------------------------

    def ranked(self, query: FloatArray, k: int, where: str) -> RankedPages:
        consistency = None if self._exclusive else reads.SEARCH_CONSISTENCY  # as the server path reads
        allowed = set(reads.page_ids(self._connection, self._names, where, consistency=consistency)) if where else None
        minimum, read = self._rerank_depth or 0, self._read_floats
        page_ids, scores, rows = self._retrying(
            lambda cache: cache.top_k(query, k, allowed, min_rescored=minimum, read_remote=read)
        )
        return RankedPages(page_ids, scores, rows)

    def existing(self, page_ids: Sequence[str]) -> set[str]:
        cache = self._current()
        return {page_id for page_id in page_ids if page_id in cache}

    def vectors(self, page_ids: Sequence[str]) -> dict[str, FloatArray]:
        return self._retrying(lambda cache: cache.vectors_of(page_ids, self._read_floats))

    def _retrying(self, read: Callable[[PageVectorCache], _T]) -> _T:
        """``read`` the current copy; a damaged saved copy is rebuilt once, a page changed under the read
        syncs the copy, and ``read`` runs again."""
        rebuilt, attempts = False, 0
        while True:
            cache = self._current()
            try:
                return read(cache)
            except DamagedCopyError as error:
                if rebuilt:
                    raise StoreError(f"the serving copy is damaged again after a rebuild: {error}") from error
                self._rebuild(cache, error)
                rebuilt = True
            except StalePagesError as error:
                attempts += 1
                if attempts > _STALE_RETRIES:
                    raise StoreError(
                        f"the collection kept changing under this search ({len(error.page_ids)} pages replaced "
                        "or deleted while it read them); try again"
                    ) from error
                logger.info("pages changed since the last sync (%s); syncing and searching again", error)
                with self._state.lock:
                    self._state.force_sync = True
                time.sleep(_STALE_FIRST_WAIT_S * 2 ** (attempts - 1))

    # -- writes (called under the collection's write lock) ----------------------------------

    def before_write(self) -> None:
        if self._exclusive:
            self._current()  # from the saved copy while it still counts: the write withdraws it

    def ids_to_clear(self, page_ids: Sequence[str]) -> list[str]:
        if not self._exclusive:
            return list(page_ids)  # another process may have left rows of these ids
        # Committed ids are known in memory, and uncommitted rows were removed when the copy was
        # filled, so only replaced pages cost a delete (a filtered delete scans every row on Lite).
        cache = self._current()
        return [page_id for page_id in page_ids if page_id in cache]

    def close(self, *, last_user: bool) -> None:
        state = self._state
        if not last_user:
            return
        if self._cache_file is not None and state.loaded and state.cache.version != state.saved_version:
            try:
                state.cache.save()
                state.saved_version = state.cache.version
            except OSError:  # only costs a slower reopen
                logger.warning("could not save the vector cache to %s", self._cache_file, exc_info=True)
        state.cache.close()  # the copy goes with its last user (vectors handed out stay readable)

    def _rebuild(self, failed: PageVectorCache, error: DamagedCopyError) -> None:
        """A saved page failed its digest: drop the copy and fill it again from Milvus (the truth)."""
        state = self._state
        with self._shared.write_lock, state.lock:
            if state.cache is not failed:
                return  # another thread rebuilt it already
            logger.warning("rebuilding the vector cache from Milvus: %s", error)
            state.cache.discard_saved()
            state.cache.close()
            floats = None if state.cache.holds_floats else LeftInMilvus()
            state.cache = PageVectorCache(state.cache.dim, self._cache_file, floats=floats)
            state.loaded, state.saved_version = False, -1

    # -- keeping the copy current -----------------------------------------------------------

    def _current(self) -> PageVectorCache:
        state = self._state
        if self._exclusive and state.loaded:
            return state.cache
        with self._shared.write_lock, state.lock:  # no write of this process runs while we sync
            if self._exclusive:
                if not state.loaded:
                    self._fill(state)
            else:
                generation = read_generation(self._connection, self._names)
                if not state.loaded or state.force_sync or generation != state.generation:
                    self._sync(state)
                    state.generation, state.force_sync = generation, False
        return state.cache

    def _fill(self, state: _CacheState) -> None:
        """First use in an exclusive process: from the saved file if it verifies, else from Milvus."""
        rows = reads.page_rows(self._connection, self._names)
        if state.cache.load(rows):
            state.saved_version = state.cache.version
            state.loaded, state.loaded_from = True, "file"
            logger.info("loaded %d pages into the vector cache from %s", len(state.cache), self._cache_file)
            return
        orphans: set[str] = set()
        # A window of pages at a time: on Lite their floats go to the copy's file as they come.
        for vectors, without_page in reads.iter_scanned_vectors(self._connection, self._names, rows, state.cache.dim):
            orphans |= without_page
            for page_id, page_vectors in vectors.items():
                state.cache.put(page_id, page_vectors, rows[page_id])
        if orphans:  # rows of pages never committed (a crash): nobody else can be writing them
            logger.info("removing the vector rows of %d uncommitted pages", len(orphans))
            if self._names.sharded:
                packed.delete_packed(self._connection, self._names, sorted(orphans))  # from every shard
            else:
                self._connection.delete_ids(self._names.all[1:], sorted(orphans))
        state.loaded, state.loaded_from = True, "milvus"
        lite.release_decoding_buffers()
        logger.info("loaded %d pages (%.0f MiB) into the vector cache", len(state.cache), state.cache.nbytes / 2**20)

    def _sync(self, state: _CacheState) -> None:
        """Bring the copy to the committed pages: drop what went, fetch what is new or changed."""
        rows = reads.page_rows(self._connection, self._names)
        cache = state.cache
        gone = [page_id for page_id in cache.ids() if page_id not in rows]
        stale = {
            page_id: row
            for page_id, row in rows.items()
            if page_id not in cache or cache.row(page_id).get("digest") != row.get("digest")
        }
        cache.remove(gone + list(stale))
        fetched = 0
        for group in self._sync_groups(cache, stale, len(rows)):
            for page_id, page_vectors in group.items():
                cache.put(page_id, page_vectors, rows[page_id])
            fetched += len(group)
        if not state.loaded:
            state.loaded, state.loaded_from = True, "milvus"
        if fetched > SYNC_GROUP_PAGES:  # hand back the heap the decoded responses left behind
            lite.release_decoding_buffers()
        logger.debug("vector cache synced: %d gone, %d fetched", len(gone), fetched)

    def _sync_groups(
        self, cache: PageVectorCache, stale: reads.PageRows, committed: int
    ) -> Iterator[dict[str, FloatArray]]:
        """The stale pages' verified vectors, all at once where the copy holds them anyway, else in groups."""
        if not cache.holds_floats:  # only codes are kept: never hold every page's floats at once
            pages = list(stale)
            for start in range(0, len(pages), SYNC_GROUP_PAGES):
                group = {page_id: stale[page_id] for page_id in pages[start : start + SYNC_GROUP_PAGES]}
                yield reads.page_vectors(self._connection, self._names, group, cache.dim, parallel=reads.PARALLEL_READS)
        elif len(stale) > committed // 2:  # most pages: one scan beats filtered reads
            yield reads.scan_vectors(self._connection, self._names, stale, cache.dim)[0]
        else:
            yield reads.page_vectors(self._connection, self._names, stale, cache.dim)


class SharedCopy:
    """What every write does to the process's shared copy, whichever search path the writing store uses.

    A store with ``cache=False`` and a cached store may share one collection in one process (on
    Milvus Lite, one file): the cached one must see the other's adds, replacements and deletes, and
    the saved file must go before Milvus changes. Called under the collection's write lock.
    """

    def __init__(self, shared: SharedCollection, cache_file: Path | None) -> None:
        self._shared = shared
        self._cache_file = cache_file

    def before_write(self) -> None:
        state: _CacheState | None = self._shared.cache_state
        if state is not None:
            state.saved_version = -1
        # The saved copy stops describing the collection now: its commit record goes before Milvus
        # changes, so that a crash mid-write cannot leave it behind (it would fail verification anyway).
        if state is not None:
            state.cache.discard_saved()
        elif self._cache_file is not None:
            discard_saved_copy(self._cache_file)

    def written(self, records: Sequence[PageRecord]) -> None:
        state: _CacheState | None = self._shared.cache_state
        if state is not None and state.loaded:  # else the first read fills it from Milvus, writes included
            for record in records:
                state.cache.put(record.page_id, record.vectors, record.row)

    def deleted(self, page_ids: Sequence[str]) -> None:
        state: _CacheState | None = self._shared.cache_state
        if state is not None:
            state.cache.remove(page_ids)
