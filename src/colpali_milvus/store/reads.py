"""Reading committed pages back from Milvus, whole or not at all, in either layout (see :mod:`.schema`).

A page is returned only with every vector its page row counts, in order, hashing to the digest its
page row records: a page with a missing, duplicated-and-different or replaced vector row is skipped
(with a warning), never scored on a subset or on another version's vectors.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import numpy.typing as npt

from colpali_milvus.search import codes
from colpali_milvus.store import connection as conn
from colpali_milvus.store import packed
from colpali_milvus.store.collections import CollectionNames
from colpali_milvus.store.connection import PARALLEL_READS, MilvusConnection, batches, in_ids
from colpali_milvus.store.rows import vector_digest
from colpali_milvus.store.schema import CODE_ROW_FIELDS, VECTOR_ROW_FIELDS

_VECTOR_ROW_SCALARS = [name for name in VECTOR_ROW_FIELDS if name != "vector"]
_CODE_PAGES_PER_REQUEST = 12  # ~2 MB of ColPali codes per response
# A Strong read waits for the server's next time tick: 0.2-0.4 s per request on Milvus 2.3, which a
# search pays on every request. Session reads see every write of this process at once, and other
# processes' writes once the server has applied them (a page seen half-applied fails its digest
# and is skipped, never scored on part of its vectors).
SEARCH_CONSISTENCY = "Session"

__all__ = [
    "PARALLEL_READS",
    "SEARCH_CONSISTENCY",
    "PageRows",
    "iter_page_codes",
    "iter_scanned_vectors",
    "page_ids",
    "page_rows",
    "page_vectors",
    "scan_vectors",
]

logger = logging.getLogger(__name__)

FloatArray = npt.NDArray[np.float32]
PageRows = dict[str, dict[str, Any]]


def page_ids(
    connection: MilvusConnection, names: CollectionNames, where: str, *, consistency: str | None = None
) -> list[str]:
    """Ids of every committed page matching ``where`` (all pages for ``""``)."""
    rows = connection.query_all(names.pages, where, ["page_id"], primary="page_id", consistency=consistency)
    return [str(row["page_id"]) for row in rows]


def page_rows(
    connection: MilvusConnection,
    names: CollectionNames,
    ids: Sequence[str] | None = None,
    *,
    fields: Sequence[str] | None = None,
    consistency: str | None = None,
) -> PageRows:
    """Committed page rows by id: of ``ids`` (in their order; uncommitted ids dropped), or all.

    ``fields``: the columns to read (``page_id`` always comes back; ``None``: every column but the
    pooled vector). ``consistency``: a Milvus consistency level for the reads (``None``: the
    collection's, Strong).
    """
    fields = names.page_row_fields if fields is None else [name for name in fields if name in names.page_row_fields]
    if ids is None:
        rows = connection.query_all(names.pages, "", list(fields), primary="page_id")
        return {str(row["page_id"]): row for row in rows}
    found: PageRows = {}
    for batch in batches(list(dict.fromkeys(ids)), conn.ID_BATCH):
        for row in connection.query(
            names.pages, in_ids(batch), list(fields), limit=len(batch), consistency=consistency
        ):
            found[str(row["page_id"])] = row
    return {page_id: found[page_id] for page_id in ids if page_id in found}


def page_vectors(
    connection: MilvusConnection,
    names: CollectionNames,
    rows: Mapping[str, Mapping[str, Any]],
    dim: int,
    *,
    consistency: str | None = None,
    parallel: int = 1,
) -> dict[str, FloatArray]:
    """The verified vectors of the given committed pages, fetched in groups that fit a query window.

    ``parallel``: split the pages into at least that many groups and read up to
    :data:`PARALLEL_READS` of them at once (a search reading a few pages waits less).
    """
    if names.floats_from_packed:
        return packed.packed_vectors(connection, names, rows, dim, consistency=consistency, parallel=parallel)
    buffers = _buffers(rows, dim)
    filled: dict[str, set[int]] = {page_id: set() for page_id in rows}

    def fetch(group: list[str]) -> list[tuple[list[dict[str, Any]], FloatArray]]:
        where = in_ids(group)
        return list(
            connection.iter_vector_rows(
                names.vectors, where, _VECTOR_ROW_SCALARS, "vector", primary="pk", consistency=consistency
            )
        )

    parallel = max(parallel, 1)
    groups = list(_windows(rows, max_pages=max(1, -(-len(rows) // parallel))))  # ceil(pages / parallel)
    with ThreadPoolExecutor(min(PARALLEL_READS, parallel)) as pool:
        for fetched in pool.map(fetch, groups):
            for batch, vectors in fetched:
                _place(batch, vectors, buffers, filled)
    return _whole(buffers, filled, rows)


def iter_page_codes(
    connection: MilvusConnection,
    names: CollectionNames,
    page_ids: Sequence[str],
    dim: int,
    *,
    consistency: str | None = None,
) -> Iterator[list[tuple[str, str, FloatArray]]]:
    """The decoded rerank codes of pages, as ``(page_id, digest, (n, dim) approximate vectors)``.

    Yields one list per request, in order, while the next requests are in flight (codes are read
    :data:`PARALLEL_READS` requests at a time). ``digest`` is that of the float32 vectors the codes
    were made from: the caller uses a page's codes only if it matches the committed page row's.
    A page whose codes are incomplete or do not decode is left out (its caller reads its floats).
    """

    def fetch(batch: list[str]) -> list[dict[str, Any]]:
        where = f"({in_ids(batch)}) and part >= 0"  # the summary rows that carry codes
        fields, limit = CODE_ROW_FIELDS, conn.QUERY_WINDOW
        return connection.query(names.summaries, where, fields, limit=limit, consistency=consistency)

    with ThreadPoolExecutor(PARALLEL_READS) as pool:
        for rows in pool.map(fetch, batches(list(dict.fromkeys(page_ids)), _CODE_PAGES_PER_REQUEST)):
            yield _decoded(rows, dim)


def _decoded(rows: Sequence[Mapping[str, Any]], dim: int) -> list[tuple[str, str, FloatArray]]:
    chunks: dict[tuple[str, str], dict[int, str]] = {}  # by page and digest: a replaced page may show both
    parts: dict[tuple[str, str], int] = {}
    for row in rows:
        key = (str(row["page_id"]), str(row["digest"]))
        chunks.setdefault(key, {})[int(row["part"])] = str(row["codes"])
        parts[key] = int(row["parts"])
    decoded = []
    for key, found in chunks.items():
        if sorted(found) != list(range(parts[key])):
            continue
        try:
            blob = codes.from_chunks([found[part] for part in range(parts[key])])
            n, remainder = divmod(len(blob), 4 + dim)
            if remainder or not n:
                raise ValueError(f"{len(blob)} bytes are not whole {dim}-d codes")
            decoded.append((*key, codes.decode(blob, n, dim)))
        except ValueError:  # damaged text: the page is ranked on its float vectors instead
            logger.warning("ignoring the rerank codes of page %s: they do not decode", key[0])
    return decoded


def scan_vectors(
    connection: MilvusConnection, names: CollectionNames, rows: Mapping[str, Mapping[str, Any]], dim: int
) -> tuple[dict[str, FloatArray], set[str]]:
    """Every committed page's verified vectors in one scan; also the ids of uncommitted vector rows.

    One pass over the vectors collection in primary-key order: far cheaper than filtered reads when
    most pages are wanted (Milvus Lite evaluates every ``page_id in [...]`` by scanning).
    """
    pages: dict[str, FloatArray] = {}
    strangers: set[str] = set()
    for found, ids_without_page in iter_scanned_vectors(connection, names, rows, dim):
        pages.update(found)
        strangers |= ids_without_page
    return pages, strangers


def iter_scanned_vectors(
    connection: MilvusConnection, names: CollectionNames, rows: Mapping[str, Mapping[str, Any]], dim: int
) -> Iterator[tuple[dict[str, FloatArray], set[str]]]:
    """:func:`scan_vectors` a window at a time where the pages are packed (whole pages per window),
    so that a caller need not hold every page at once; vector rows alone come as one window."""
    if names.floats_from_packed:
        yield from packed.scan_packed(connection, names, rows, dim)
    else:
        yield _scan_flattened(connection, names, rows, dim)


def _scan_flattened(
    connection: MilvusConnection, names: CollectionNames, rows: Mapping[str, Mapping[str, Any]], dim: int
) -> tuple[dict[str, FloatArray], set[str]]:
    buffers = _buffers(rows, dim)
    filled: dict[str, set[int]] = {page_id: set() for page_id in rows}
    orphans: set[str] = set()
    for batch, vectors in connection.iter_vector_rows(names.vectors, "", _VECTOR_ROW_SCALARS, "vector", primary="pk"):
        orphans.update(_place(batch, vectors, buffers, filled))
    return _whole(buffers, filled, rows), orphans


def _buffers(rows: Mapping[str, Mapping[str, Any]], dim: int) -> dict[str, FloatArray]:
    return {page_id: np.empty((int(row["n_vectors"]), dim), np.float32) for page_id, row in rows.items()}


def _place(
    batch: Sequence[Mapping[str, Any]],
    vectors: FloatArray,
    buffers: Mapping[str, FloatArray],
    filled: Mapping[str, set[int]],
) -> set[str]:
    """Copy each vector row into its page's buffer; returns the page ids that have no buffer."""
    strangers: set[str] = set()
    for i, row in enumerate(batch):
        page_id, seq = str(row["page_id"]), int(row["seq_id"])
        buffer = buffers.get(page_id)
        if buffer is None:
            strangers.add(page_id)
        elif 0 <= seq < buffer.shape[0] and vectors.shape[1] == buffer.shape[1]:
            buffer[seq] = vectors[i]
            filled[page_id].add(seq)
    return strangers


def _whole(
    buffers: Mapping[str, FloatArray], filled: Mapping[str, set[int]], rows: Mapping[str, Mapping[str, Any]]
) -> dict[str, FloatArray]:
    """The pages whose every vector arrived and hashes to the page row's digest."""
    whole: dict[str, FloatArray] = {}
    for page_id, buffer in buffers.items():
        if len(filled[page_id]) != buffer.shape[0]:
            logger.warning("skipping page %s: %d of %d vectors stored", page_id, len(filled[page_id]), len(buffer))
        elif _verified(page_id, buffer, rows[page_id]):
            whole[page_id] = buffer
    return whole


def _verified(page_id: str, vectors: FloatArray, row: Mapping[str, Any]) -> bool:
    if vector_digest(vectors) == row.get("digest"):
        return True
    logger.warning(
        "skipping page %s: its stored vectors do not match its recorded digest (a concurrent write?)", page_id
    )
    return False


def _windows(pages: Mapping[str, Mapping[str, Any]], *, max_pages: int = conn.ID_BATCH) -> Iterator[list[str]]:
    """Group page ids so each group's vector rows fit one query window (a big page goes alone)."""
    group: list[str] = []
    rows = 0
    for page_id, row in pages.items():
        n = int(row["n_vectors"])
        if group and (rows + n > conn.QUERY_WINDOW or len(group) == min(max_pages, conn.ID_BATCH)):
            yield group
            group, rows = [], 0
        group.append(page_id)
        rows += n
    if group:
        yield group
