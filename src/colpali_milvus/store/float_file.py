"""Where the copy's float vectors live: in memory, or in an append-only file read through a memory map.

A search reads the float vectors of only the few pages it rescores (see :mod:`.cache`), so a
process need not hold them: :class:`FloatFile` writes each page's float32 vectors once, at the end
of a file, and reads them back through a memory map, so they cost page cache, not process memory.
A page read from a file written by an earlier process is checked against the digest its page row
commits the first time this process reads it (:class:`DamagedCopyError` if it differs); pages
written by this process are trusted.
"""

from __future__ import annotations

import mmap
import os
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from colpali_milvus.store.rows import vector_digest

__all__ = ["DamagedCopyError", "FloatExtent", "FloatFile", "HeldFloats", "PageFloats", "StalePagesError"]

FloatArray = npt.NDArray[np.float32]


class DamagedCopyError(Exception):
    """A page's vectors read back from a saved copy do not match its committed digest.

    Internal: the cached path answers it by rebuilding the copy from Milvus; users never see it.
    """


class StalePagesError(Exception):
    """Pages read back from Milvus no longer match the page rows the copy holds: another writer
    replaced or deleted them since the copy was synced.

    Internal: the cached path answers it by syncing the copy and searching again.
    """

    def __init__(self, page_ids: Iterable[str]) -> None:
        self.page_ids = sorted(page_ids)
        super().__init__(f"pages changed in Milvus since the copy was synced: {self.page_ids[:5]}")


class PageFloats(Protocol):
    """Every committed page's float32 vectors, by page id."""

    #: ``True`` where reading asks Milvus (the copy then reads outside its lock: a request takes ms).
    remote: bool

    def put(self, page_id: str, vectors: FloatArray) -> None: ...

    def get(self, page_id: str) -> FloatArray: ...

    def get_many(self, rows: Mapping[str, Mapping[str, Any]]) -> dict[str, FloatArray]:
        """The vectors of the pages whose committed page rows are ``rows``, by id (all of them, or raise)."""
        ...

    def remove(self, page_ids: Iterable[str]) -> None: ...

    @property
    def held_nbytes(self) -> int:
        """Bytes of vectors this process holds in its own memory."""
        ...


class HeldFloats:
    """The vectors in process memory (a server's copy: another process may write the collection)."""

    remote = False

    def __init__(self) -> None:
        self._vectors: dict[str, FloatArray] = {}

    def put(self, page_id: str, vectors: FloatArray) -> None:
        self._vectors[page_id] = vectors

    def get(self, page_id: str) -> FloatArray:
        return self._vectors[page_id]

    def get_many(self, rows: Mapping[str, Mapping[str, Any]]) -> dict[str, FloatArray]:
        return {page_id: self._vectors[page_id] for page_id in rows}

    def remove(self, page_ids: Iterable[str]) -> None:
        for page_id in page_ids:
            self._vectors.pop(page_id, None)

    @property
    def held_nbytes(self) -> int:
        return sum(vectors.nbytes for vectors in self._vectors.values())


@dataclass(frozen=True, slots=True)
class FloatExtent:
    """Where one page's vectors sit in a :class:`FloatFile`."""

    offset: int  # bytes from the start of the file
    rows: int
    digest: str  # the committed digest they must hash to


class FloatFile:
    """Pages' float32 vectors appended to one file, read through a copy-on-write memory map.

    Not thread-safe for writes (the caller serialises them); reads may run beside one writer.
    """

    remote = False

    def __init__(self, path: Path, dim: int, extents: Mapping[str, FloatExtent] | None = None, size: int = 0) -> None:
        """Open ``path``: empty it (``extents`` None), or keep the first ``size`` bytes holding ``extents``."""
        self.path = path
        self.dim = dim
        path.parent.mkdir(parents=True, exist_ok=True)
        if extents is None:
            # A new inode, not the old file emptied: arrays handed out from it keep their bytes.
            path.unlink(missing_ok=True)
            size = 0
        self._descriptor = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        if extents is not None:
            if os.fstat(self._descriptor).st_size < size:
                os.close(self._descriptor)
                raise ValueError(f"{path} is shorter than the {size} bytes its index records")
            os.ftruncate(self._descriptor, size)  # bytes past the recorded end belong to no page
        self._extents: dict[str, FloatExtent] = dict(extents or {})
        self._trusted: set[str] = set()  # pages whose bytes this process wrote or checked
        self._size = size
        self._map: mmap.mmap | None = None
        self._map_lock = threading.Lock()

    @property
    def size(self) -> int:
        """Bytes in use, including pages removed since (see :attr:`live_nbytes`)."""
        return self._size

    @property
    def live_nbytes(self) -> int:
        return sum(extent.rows for extent in self._extents.values()) * self.dim * 4

    @property
    def held_nbytes(self) -> int:
        return 0  # page cache, not this process's memory: the kernel drops it under pressure

    def extents(self) -> dict[str, FloatExtent]:
        return dict(self._extents)

    def put(self, page_id: str, vectors: FloatArray, digest: str | None = None) -> None:
        data = np.ascontiguousarray(vectors, dtype=np.float32)
        payload = data.tobytes()
        written = os.pwrite(self._descriptor, payload, self._size)
        if written != len(payload):  # a full disk: pwrite wrote part of it
            raise OSError(f"short write to {self.path} ({written} of {len(payload)} bytes)")
        self._extents[page_id] = FloatExtent(self._size, data.shape[0], digest or vector_digest(data))
        self._trusted.add(page_id)
        self._size += len(payload)

    def get(self, page_id: str) -> FloatArray:
        extent = self._extents[page_id]
        view = np.frombuffer(
            self._mapped(extent.offset + extent.rows * self.dim * 4),
            dtype=np.float32,
            count=extent.rows * self.dim,
            offset=extent.offset,
        ).reshape(extent.rows, self.dim)  # (rows, dim), a view of the map: nothing copied
        if page_id not in self._trusted:
            if vector_digest(view) != extent.digest:
                raise DamagedCopyError(f"the saved vectors of page {page_id!r} in {self.path} do not match its digest")
            self._trusted.add(page_id)
        return view

    def get_many(self, rows: Mapping[str, Mapping[str, Any]]) -> dict[str, FloatArray]:
        return {page_id: self.get(page_id) for page_id in rows}

    def remove(self, page_ids: Iterable[str]) -> None:
        for page_id in page_ids:  # the bytes stay until the file is compacted
            self._extents.pop(page_id, None)
            self._trusted.discard(page_id)

    def sync(self) -> None:
        os.fsync(self._descriptor)

    def compacted(self) -> FloatFile:
        """A new file next to this one holding only the live pages, renamed over it; this one is closed.

        Copied through the file descriptors, not the map, so the copy costs no process memory.
        """
        temporary = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        extents: dict[str, FloatExtent] = {}
        try:
            with temporary.open("wb") as target:
                position = 0
                for page_id, extent in sorted(self._extents.items(), key=lambda item: item[1].offset):
                    length = extent.rows * self.dim * 4
                    data = os.pread(self._descriptor, length, extent.offset)
                    if len(data) != length:
                        raise OSError(f"{self.path} ends inside page {page_id!r}")
                    target.write(data)
                    extents[page_id] = FloatExtent(position, extent.rows, extent.digest)
                    position += length
                target.flush()
                os.fsync(target.fileno())
            os.replace(temporary, self.path)
        finally:
            temporary.unlink(missing_ok=True)
        trusted = self._trusted & set(extents)
        self.close()
        compact = FloatFile(self.path, self.dim, extents, position)
        compact._trusted = trusted
        return compact

    def close(self) -> None:
        """Close the descriptor; arrays already handed out keep their map alive until they go."""
        if self._descriptor >= 0:
            os.close(self._descriptor)
            self._descriptor = -1
        self._map = None

    def _mapped(self, end: int) -> mmap.mmap:
        """A map of the file covering ``[0, end)``; a new one once the file has grown past the old map."""
        if self._descriptor < 0:
            raise DamagedCopyError(f"{self.path} was closed")  # never an anonymous map of zeros
        current = self._map
        if current is not None and len(current) >= end:
            return current
        with self._map_lock:
            if self._map is None or len(self._map) < end:
                # ACCESS_COPY: writable views (torch takes only writable arrays) whose writes, if any,
                # would stay private to this process; reading copies nothing.
                self._map = mmap.mmap(self._descriptor, self._size, access=mmap.ACCESS_COPY)
            return self._map
