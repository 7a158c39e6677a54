"""Reading committed pages back from Milvus, whole or not at all.

A page is returned only with every vector its page row counts, in order, hashing to the digest its
page row records: a page with a missing, duplicated-and-different or replaced vector row is skipped
(with a warning), never scored on a subset or on another version's vectors.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from colpali_milvus.store import connection as conn
from colpali_milvus.store.collections import CollectionNames
from colpali_milvus.store.connection import MilvusConnection, batches, in_ids
from colpali_milvus.store.rows import vector_digest
from colpali_milvus.store.schema import PAGE_ROW_FIELDS, VECTOR_ROW_FIELDS

_VECTOR_ROW_SCALARS = [name for name in VECTOR_ROW_FIELDS if name != "vector"]

__all__ = ["PageRows", "page_ids", "page_rows", "page_vectors", "scan_vectors"]

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
    consistency: str | None = None,
) -> PageRows:
    """Committed page rows by id: of ``ids`` (in their order; uncommitted ids dropped), or all.

    ``consistency``: a Milvus consistency level for the reads (``None``: the collection's, Strong).
    """
    if ids is None:
        rows = connection.query_all(names.pages, "", PAGE_ROW_FIELDS, primary="page_id")
        return {str(row["page_id"]): row for row in rows}
    found: PageRows = {}
    for batch in batches(list(dict.fromkeys(ids)), conn.ID_BATCH):
        for row in connection.query(
            names.pages, in_ids(batch), PAGE_ROW_FIELDS, limit=len(batch), consistency=consistency
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
) -> dict[str, FloatArray]:
    """The verified vectors of the given committed pages, fetched in groups that fit a query window."""
    buffers = _buffers(rows, dim)
    filled: dict[str, set[int]] = {page_id: set() for page_id in rows}
    for group in _windows(rows):
        for batch, vectors in connection.iter_vector_rows(
            names.vectors, in_ids(group), _VECTOR_ROW_SCALARS, "vector", primary="pk", consistency=consistency
        ):
            _place(batch, vectors, buffers, filled)
    return _whole(buffers, filled, rows)


def scan_vectors(
    connection: MilvusConnection, names: CollectionNames, rows: Mapping[str, Mapping[str, Any]], dim: int
) -> tuple[dict[str, FloatArray], set[str]]:
    """Every committed page's verified vectors in one scan; also the ids of uncommitted vector rows.

    One pass over the vectors collection in primary-key order: far cheaper than filtered reads when
    most pages are wanted (Milvus Lite evaluates every ``page_id in [...]`` by scanning).
    """
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


def _windows(pages: Mapping[str, Mapping[str, Any]]) -> Iterator[list[str]]:
    """Group page ids so each group's vector rows fit one query window (a big page goes alone)."""
    group: list[str] = []
    rows = 0
    for page_id, row in pages.items():
        n = int(row["n_vectors"])
        if group and (rows + n > conn.QUERY_WINDOW or len(group) == conn.ID_BATCH):
            yield group
            group, rows = [], 0
        group.append(page_id)
        rows += n
    if group:
        yield group
