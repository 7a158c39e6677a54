"""The serving copy of the committed pages: int8 codes in memory, float vectors where they cost least.

Milvus stays the source of truth; this copy is derived from it, filled as pages are written or read
back once, and searched without any Milvus request. On Milvus Lite (a pure-Python engine: 0.3 s per
ANN request, over a second per fetch of a few pages' vectors) that is the difference between
milliseconds and seconds.

A search scores **every** page on its int8 codes (:mod:`~colpali_milvus.search.code_scan`), each
score with a proven error bound, and rescores pages exactly in bound order until the top ``k`` is
certified (:mod:`~colpali_milvus.search.certify`). Only the codes (~0.13 MB per 1,030 x 128 page) and
the page rows are held in memory; the float vectors are read for the few pages rescored, from a
:class:`~colpali_milvus.store.float_file.FloatFile` where the copy has a folder (Milvus Lite), else
from memory.

**The saved copy** (a folder): ``floats.bin`` (the pages' float32 vectors, appended as they come),
``codes.bin`` (the code blocks, as scanned) and ``index.json``, written last, which commits them:
format, dim, every page's id, digest and place in ``floats.bin``, the blocks' layout and a checksum
of ``codes.bin``. A reopen trusts it only if its page ids and digests equal the committed ones read
from Milvus and ``codes.bin`` matches its checksum; a page's floats are checked against their
digest the first time a process reads them. Reopening therefore reads the codes and the page rows,
not the vectors. Anything else (a truncated, empty, foreign or stale file) is ignored and the copy
is rebuilt from Milvus. A first write removes ``index.json``, so a crash can never leave a saved
copy that describes other pages.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import mmap
import os
import threading
import zlib
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from colpali_milvus.search.certify import certified_search
from colpali_milvus.search.code_scan import CodeBlock, CodeScan
from colpali_milvus.search.maxsim import maxsim_each
from colpali_milvus.store.float_file import FloatExtent, FloatFile, HeldFloats, PageFloats, StalePagesError

__all__ = ["CACHE_FILE_VERSION", "INDEX_FILE", "PageVectorCache", "discard_saved_copy"]

logger = logging.getLogger(__name__)

FloatArray = npt.NDArray[np.float32]
#: Reads committed pages' float vectors from Milvus, given their page rows (see store/milvus_floats.py).
ReadFloats = Callable[[Mapping[str, Mapping[str, Any]]], dict[str, FloatArray]]
#: Bumped whenever the saved layout changes: older copies are rebuilt.
#: 5: a folder (floats, codes, index), read without hashing every vector (4: one .npz of vectors).
CACHE_FILE_VERSION = 5
INDEX_FILE = "index.json"  # the commit record of a saved copy
FLOATS_FILE = "floats.bin"
CODES_FILE = "codes.bin"
_ALIGN = 64  # every array in codes.bin starts on a cache line
# Rewrite floats.bin at close once removed pages take more than this share of it.
_DEAD_SHARE_TO_COMPACT = 0.5


class PageVectorCache:
    """Committed pages by id: their page row, int8 codes in memory, and ``(n_i, dim)`` float32 vectors.

    ``folder``: where the copy is saved between runs (Milvus Lite); the float vectors then live in
    its ``floats.bin`` rather than in memory. ``floats``: where they live otherwise (default: in
    memory; a server's ``cache="codes"`` leaves them in Milvus). Thread-safe: writers take a lock;
    a search scans immutable blocks of codes outside it.
    """

    def __init__(self, dim: int, folder: Path | None = None, *, floats: PageFloats | None = None) -> None:
        self.dim = dim
        self.folder = folder
        # With a folder, replaced by a FloatFile at the first put or load.
        self._floats: PageFloats = floats if floats is not None else HeldFloats()
        self._rows: dict[str, Mapping[str, Any]] = {}
        self._codes = CodeScan(dim)
        self._lock = threading.Lock()
        self.version = 0  # bumped by every change; tells whether the saved copy is current
        self.last_rescored = 0  # pages the last top_k scored exactly (for benchmarks and logs)

    def __len__(self) -> int:
        return len(self._rows)

    def __contains__(self, page_id: object) -> bool:
        return page_id in self._rows

    @property
    def holds_floats(self) -> bool:
        """Whether the float vectors live with the copy (in memory or its file), not only in Milvus."""
        return not self._floats.remote

    @property
    def nbytes(self) -> int:
        """Bytes this copy holds in process memory (codes, and the vectors where they are held)."""
        return self._floats.held_nbytes + self._codes.nbytes

    def put(self, page_id: str, vectors: FloatArray, row: Mapping[str, Any]) -> None:
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        with self._lock:
            floats = self._float_store()
            if isinstance(floats, FloatFile):
                try:
                    floats.put(page_id, vectors, str(row["digest"]) if row.get("digest") else None)
                except OSError as error:  # a full disk: the copy goes on in memory, unsaved
                    self._spill_to_memory(floats, error)
                    self._floats.put(page_id, vectors)
            else:
                floats.put(page_id, vectors)
            self._rows[page_id] = row
            self._codes.put(page_id, vectors)
            self.version += 1

    def remove(self, page_ids: Iterable[str]) -> None:
        with self._lock:
            gone = [page_id for page_id in page_ids if self._rows.pop(page_id, None) is not None]
            self._floats.remove(gone)
            self._codes.remove(gone)
            self.version += 1

    def ids(self) -> list[str]:
        with self._lock:
            return list(self._rows)

    def row(self, page_id: str) -> Mapping[str, Any]:
        return self._rows[page_id]

    def vectors_of(self, page_ids: Iterable[str], read_remote: ReadFloats | None = None) -> dict[str, FloatArray]:
        """The cached pages among ``page_ids``, by id (read-only views where they live in a file).

        ``read_remote``: how to read floats the copy leaves in Milvus (the calling store's
        connection). Raises :class:`~colpali_milvus.store.float_file.DamagedCopyError` for a page
        whose saved vectors do not match its digest, :class:`~colpali_milvus.store.float_file.StalePagesError`
        for one that changed in Milvus since the copy was synced.
        """
        return self._floats_of(page_ids, None, read_remote)

    def top_k(
        self,
        query: FloatArray,
        k: int,
        allowed: set[str] | None = None,
        *,
        min_rescored: int = 0,
        read_remote: ReadFloats | None = None,
    ) -> tuple[list[str], list[float], list[Mapping[str, Any]]]:
        """The exact top ``k`` pages (among ``allowed``): ``(ids, exact MaxSim scores, page rows)``, best first.

        Every page is scored on its codes with a proven error bound; pages are then rescored exactly
        in bound order until no other page can enter the top ``k`` (:mod:`~colpali_milvus.search.certify`),
        at least ``min_rescored`` of them. Raises
        :class:`~colpali_milvus.store.float_file.DamagedCopyError` if a rescored page's saved
        vectors do not match its digest, and :class:`~colpali_milvus.store.float_file.StalePagesError`
        if one was replaced since the scan (here or in Milvus): the caller searches again.
        """
        with self._lock:  # one consistent view of the blocks and rows
            blocks = self._codes.seal()
            rows = dict(self._rows)

        def exact(keys: list[str]) -> npt.NDArray[np.float64]:
            # Scored on the vectors the scanned codes came from, or not at all; a page deleted since
            # the scan scores -inf and is left out below.
            present = self._floats_of(keys, rows, read_remote)
            scores = np.full(len(keys), -np.inf)
            found = [index for index, key in enumerate(keys) if key in present]
            scores[found] = maxsim_each(query, [present[keys[index]] for index in found])
            return scores

        top = certified_search(query, blocks, k, exact, allowed=allowed, first=min_rescored)
        self.last_rescored = top.rescored
        kept = [(key, score) for key, score in zip(top.keys, top.scores, strict=True) if score > -np.inf]
        return [key for key, _ in kept], [score for _, score in kept], [rows[key] for key, _ in kept]

    def _floats_of(
        self, page_ids: Iterable[str], scanned: Mapping[str, Mapping[str, Any]] | None, read_remote: ReadFloats | None
    ) -> dict[str, FloatArray]:
        """The float vectors of the cached pages among ``page_ids``; with ``scanned`` (the rows a scan
        saw), a page whose row changed since raises StalePagesError. A request to Milvus runs outside the lock."""
        with self._lock:
            rows = {page_id: self._rows[page_id] for page_id in page_ids if page_id in self._rows}
            if scanned is not None and (changed := [key for key, row in rows.items() if scanned.get(key) is not row]):
                raise StalePagesError(changed)
            floats = self._floats
            if not floats.remote:
                return floats.get_many(rows)
        if read_remote is None:
            raise ValueError("this copy's float vectors are in Milvus: pass read_remote")
        return read_remote(rows)

    def _float_store(self) -> PageFloats:
        """Where a new page's vectors go: the copy's float file if it has a folder (opened empty at first use)."""
        if self.folder is not None and not isinstance(self._floats, FloatFile):
            self.discard_saved()  # the file is rewritten from the start: no saved index may point into it
            try:
                self._floats = FloatFile(self.folder / FLOATS_FILE, self.dim)
            except OSError as error:  # e.g. a read-only folder: the copy lives in memory, unsaved
                logger.warning("keeping the vector cache in memory: cannot write %s (%s)", self.folder, error)
                self.folder = None
        return self._floats

    def _spill_to_memory(self, floats: FloatFile, error: OSError) -> None:
        """The float file cannot grow: hold every page's vectors in memory instead; nothing is saved."""
        logger.warning("keeping the vector cache in memory from now on: cannot write %s (%s)", floats.path, error)
        held = HeldFloats()
        for page_id in self._rows:
            held.put(page_id, np.array(floats.get(page_id)))  # copied out of the map
        floats.close()
        self.discard_saved()
        self._floats, self.folder = held, None

    def close(self) -> None:
        """Let go of the float file's descriptor (arrays already handed out keep their map)."""
        with self._lock:
            if isinstance(self._floats, FloatFile):
                self._floats.close()

    # -- the saved copy ---------------------------------------------------------------------

    def discard_saved(self) -> None:
        """Remove the saved copy's commit record: what the folder holds stops counting as a copy."""
        if self.folder is not None:
            discard_saved_copy(self.folder)

    def save(self) -> None:
        """Commit the copy to its folder: floats synced, codes written, then ``index.json`` renamed into place."""
        folder = self.folder
        if folder is None:
            return  # a copy kept in memory (no folder, or one that could not be written) is not saved
        for temporary in folder.glob(".*.tmp"):  # left by a process killed while saving (one per database)
            _remove_quietly(temporary)
        with self._lock:
            floats = self._float_store()
            assert isinstance(floats, FloatFile)
            if floats.size and floats.live_nbytes < (1 - _DEAD_SHARE_TO_COMPACT) * floats.size:
                floats = self._floats = floats.compacted()
            floats.sync()
            blocks, part_full = self._codes.sealed()
            codes_layout, checksum, codes_size = _write_codes(folder / CODES_FILE, blocks, part_full)
            extents = floats.extents()
            index = {
                "format_version": CACHE_FILE_VERSION,
                "dim": self.dim,
                "floats_size": floats.size,
                "pages": [[page_id, e.digest, e.offset, e.rows] for page_id, e in extents.items()],
                "codes_size": codes_size,
                "codes_crc32": checksum,
                "blocks": codes_layout,
            }
        _write_atomically(folder / INDEX_FILE, json.dumps(index, separators=(",", ":")).encode())
        _remove_quietly(folder.with_name(f"{folder.name}.npz"))  # the single-file copy of format 4

    def load(self, rows: Mapping[str, Mapping[str, Any]]) -> bool:
        """Fill from the saved copy if it holds exactly the committed pages in ``rows``.

        ``rows`` are the committed page rows read from Milvus. Returns ``False``, changing nothing,
        for a copy that is missing, unreadable or disagrees with them in any way.
        """
        folder = self.folder
        if folder is None or not (folder / INDEX_FILE).is_file():
            return False
        try:
            loaded = self._read_verified(folder, rows)
        except Exception as error:  # a damaged copy of any kind only costs a rebuild from Milvus
            logger.warning("ignoring the saved copy in %s (%s: %s)", folder, type(error).__name__, error)
            return False
        if loaded is None:
            logger.info("ignoring the saved copy in %s: it does not match the collection", folder)
            return False
        floats, codes = loaded
        with self._lock:
            self._floats, self._codes = floats, codes
            self._rows = {page_id: rows[page_id] for page_id in floats.extents()}
            self.version += 1
        return True

    def _read_verified(self, folder: Path, rows: Mapping[str, Mapping[str, Any]]) -> tuple[FloatFile, CodeScan] | None:
        index = json.loads((folder / INDEX_FILE).read_bytes())
        if index.get("format_version") != CACHE_FILE_VERSION or index.get("dim") != self.dim:
            return None
        extents = {
            str(page_id): FloatExtent(int(offset), int(count), str(digest))
            for page_id, digest, offset, count in index["pages"]
        }
        floats_size = int(index["floats_size"])
        if (
            len(extents) != len(index["pages"])
            or extents.keys() != rows.keys()
            or any(str(rows[page_id].get("digest")) != extent.digest for page_id, extent in extents.items())
            or any(
                e.rows <= 0 or e.offset < 0 or e.offset + e.rows * self.dim * 4 > floats_size for e in extents.values()
            )
        ):
            return None
        buffer = _read_codes(folder / CODES_FILE, int(index["codes_size"]), int(index["codes_crc32"]))
        if buffer is None:
            return None
        blocks = [_block_from(layout["fields"], buffer) for layout in index["blocks"]]
        lengths = {key: int(length) for block in blocks for key, length in zip(block.keys, block.lengths, strict=True)}
        if (
            lengths.keys() != extents.keys()
            or sum(len(block.keys) for block in blocks) != len(extents)
            or any(lengths[page_id] != extent.rows for page_id, extent in extents.items())
            or not all(_well_formed(block, self.dim) for block in blocks)
        ):
            return None
        codes = CodeScan.restore(self.dim, blocks, [bool(layout["part_full"]) for layout in index["blocks"]])
        return FloatFile(folder / FLOATS_FILE, self.dim, extents, floats_size), codes


def discard_saved_copy(folder: Path) -> None:
    """Remove the commit record of the copy saved in ``folder``, if any."""
    _remove_quietly(folder / INDEX_FILE)


def _write_codes(
    path: Path, blocks: tuple[CodeBlock, ...], part_full: tuple[bool, ...]
) -> tuple[list[dict[str, Any]], int, int]:
    """Write every block's arrays to ``path`` (atomically); returns their layout, the file's CRC-32 and size."""
    layout: list[dict[str, Any]] = []
    checksum, position = 0, 0
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with temporary.open("wb") as file:
            for block, is_part_full in zip(blocks, part_full, strict=True):
                fields: dict[str, Any] = {}
                for field in dataclasses.fields(block):
                    value = getattr(block, field.name)
                    if isinstance(value, np.ndarray):
                        padding = b"\0" * (-position % _ALIGN)
                        data = np.ascontiguousarray(value).tobytes()
                        for chunk in (padding, data):
                            file.write(chunk)
                            checksum = zlib.crc32(chunk, checksum)
                        position += len(padding)
                        fields[field.name] = {"array": [value.dtype.str, list(value.shape), position]}
                        position += len(data)
                    elif isinstance(value, tuple):
                        fields[field.name] = {"tuple": list(value)}
                    else:
                        fields[field.name] = {"value": value}
                layout.append({"part_full": is_part_full, "fields": fields})
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)
    return layout, checksum, position


def _read_codes(path: Path, size: int, checksum: int) -> npt.NDArray[np.uint8] | None:
    """``codes.bin`` mapped (copy-on-write) if its size and CRC-32 are as recorded.

    The checksum reads the file through its descriptor, so only the codes a search touches become
    this process's memory: the first layer, scanned every time, and the second layer of the few
    pages refined.
    """
    with path.open("rb") as file:
        if os.fstat(file.fileno()).st_size != size:
            return None
        crc = 0
        while chunk := file.read(1 << 24):
            crc = zlib.crc32(chunk, crc)
        if crc != checksum:
            return None
        if size == 0:
            return np.empty(0, dtype=np.uint8)
        mapped = mmap.mmap(file.fileno(), size, access=mmap.ACCESS_COPY)  # writable views for torch
    return np.frombuffer(mapped, dtype=np.uint8)


def _well_formed(block: CodeBlock, dim: int) -> bool:
    """Every array of the block has the shape its page count, width and dim give (so no scan reads past a page)."""
    pages = len(block.keys)
    if pages == 0 or block.width < int(block.lengths.max()) or int(block.lengths.min()) <= 0:
        return False
    for field in dataclasses.fields(block):
        value = getattr(block, field.name)
        if isinstance(value, np.ndarray) and value.shape not in ((pages,), (dim, pages * block.width)):
            return False
    return block.codes.shape == (dim, pages * block.width)


def _block_from(fields: Mapping[str, Any], buffer: npt.NDArray[np.uint8]) -> CodeBlock:
    values: dict[str, Any] = {}
    for name, stored in fields.items():
        if "array" in stored:
            dtype_text, shape, offset = stored["array"]
            dtype = np.dtype(dtype_text)
            count = int(np.prod(shape, dtype=np.int64))
            if offset < 0 or offset + count * dtype.itemsize > buffer.size:
                raise ValueError(f"array {name!r} lies outside the codes file")
            values[name] = buffer[offset : offset + count * dtype.itemsize].view(dtype).reshape(shape)
        elif "tuple" in stored:
            values[name] = tuple(str(item) for item in stored["tuple"])
        else:
            values[name] = stored["value"]
    return CodeBlock(**values)


def _write_atomically(path: Path, data: bytes) -> None:
    """``data`` at ``path``, all or nothing: written beside it, fsynced, renamed over it, the folder fsynced."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with temporary.open("wb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)
    _fsync_folder(path.parent)


def _remove_quietly(path: Path) -> None:
    try:
        path.unlink(missing_ok=True)
    except OSError as error:  # e.g. a folder stands there: it can never pass as a commit record
        logger.warning("could not remove %s (%s)", path, error)


def _fsync_folder(folder: Path) -> None:
    """Make a rename durable (POSIX); a no-op where folders cannot be opened."""
    try:
        descriptor = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(descriptor)
    except OSError:
        pass
    finally:
        os.close(descriptor)
