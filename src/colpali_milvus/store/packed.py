"""The packed layout (Milvus Lite): each page's vectors as a few rows of base64 text.

A page's ``(n, dim)`` float32 vectors are written losslessly in the narrowest form that holds them
exactly, then base64-encoded and cut into rows of at most :data:`PART_CHARS` characters (Milvus's
VARCHAR limit is 65,535 bytes):

- ``bf16``: when every value is a bfloat16 (its low 16 bits are zero), the high halves only. ColPali
  models run in bfloat16, so their vectors usually are: half the bytes, the same numbers.
- ``f32``: any other float32, as is.

Every row carries the page's id, the digest of its float32 vectors, its part and the number of
parts. A page is read back only whole (every part, one digest) and only if its vectors hash to the
digest its page row commits; rows of a replaced or uncommitted version are never mixed in.
"""

from __future__ import annotations

import base64
import logging
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import numpy.typing as npt

from colpali_milvus.store.collections import CollectionNames
from colpali_milvus.store.connection import PARALLEL_READS, MilvusConnection, in_ids
from colpali_milvus.store.rows import PageRecord, vector_digest
from colpali_milvus.store.schema import PACKED_ROW_FIELDS

__all__ = [
    "PART_CHARS",
    "decode",
    "encode",
    "insert_packed",
    "packed_rows",
    "packed_vectors",
    "scan_packed",
]

logger = logging.getLogger(__name__)

FloatArray = npt.NDArray[np.float32]

PART_CHARS = 65_532  # the largest multiple of 4 (whole base64 quanta) within a VARCHAR
_ROWS_PER_INSERT = 96  # ~6 MB of text per request
_ROWS_PER_READ = 256  # ~16 MB of text per query window
_PAGES_PER_READ = 64  # ids per request at most (Milvus Lite scans the collection once per filtered request)
_ANCHOR = [1.0, 0.0]


def encode(vectors: FloatArray) -> tuple[str, str]:
    """``(n, dim)`` float32 -> ``(encoding, base64 text)``, lossless."""
    data = np.ascontiguousarray(vectors, dtype="<f4")
    bits = data.view("<u4")
    if not np.any(bits & 0xFFFF):
        return "bf16", base64.b64encode((bits >> 16).astype("<u2").tobytes()).decode("ascii")
    return "f32", base64.b64encode(data.tobytes()).decode("ascii")


def decode(encoding: str, text: str, n_vectors: int, dim: int) -> FloatArray:
    """The inverse of :func:`encode`; raises ValueError for text that is not ``n_vectors x dim`` values."""
    widths = {"bf16": 2, "f32": 4}
    if encoding not in widths:
        raise ValueError(f"unknown vector encoding {encoding!r}")
    raw = base64.b64decode(text, validate=True)
    if n_vectors <= 0 or len(raw) != n_vectors * dim * widths[encoding]:
        raise ValueError(f"{len(raw)} bytes are not {n_vectors} x {dim} {encoding} values")
    if encoding == "bf16":
        values = (np.frombuffer(raw, dtype="<u2").astype("<u4") << 16).view("<f4")
    else:
        values = np.frombuffer(raw, dtype="<f4")
    return values.astype(np.float32).reshape(n_vectors, dim)


def packed_rows(records: Sequence[PageRecord]) -> Iterator[dict[str, Any]]:
    for record in records:
        encoding, text = encode(record.vectors)
        parts = max(1, -(-len(text) // PART_CHARS))
        for part in range(parts):
            yield {
                "page_id": record.page_id,
                "digest": record.row["digest"],
                "part": part,
                "parts": parts,
                "n_vectors": int(record.vectors.shape[0]),
                "encoding": encoding,
                "blob": text[part * PART_CHARS : (part + 1) * PART_CHARS],
                "anchor": _ANCHOR,
            }


def insert_packed(connection: MilvusConnection, names: CollectionNames, records: Sequence[PageRecord]) -> None:
    """Write the pages' packed rows (before their page rows, which commit them)."""
    batch: list[dict[str, Any]] = []
    for row in packed_rows(records):
        batch.append(row)
        if len(batch) == _ROWS_PER_INSERT:
            connection.write_batch(names.packed, batch)
            batch = []
    if batch:
        connection.write_batch(names.packed, batch)


def packed_vectors(
    connection: MilvusConnection,
    names: CollectionNames,
    rows: Mapping[str, Mapping[str, Any]],
    dim: int,
    *,
    consistency: str | None = None,
    parallel: int = 1,
) -> dict[str, FloatArray]:
    """The verified vectors of the given committed pages (a page that is not whole is left out).

    Pages are read in requests whose rows fit one window (counting float32 rows: a plain query, no
    paging), each of at most a ``parallel``-th of the pages, up to ``parallel`` in flight (a search
    reading a few pages from a server waits less).
    """

    def fetch(group: list[str]) -> list[list[dict[str, Any]]]:
        window, where = _ROWS_PER_READ, in_ids(group)
        return list(
            connection.iter_rows(
                names.packed, where, PACKED_ROW_FIELDS, primary="pk", consistency=consistency, window=window
            )
        )

    found: dict[tuple[str, str], dict[int, Mapping[str, Any]]] = {}
    with ThreadPoolExecutor(max(1, min(parallel, PARALLEL_READS))) as pool:
        for fetched in pool.map(fetch, _requests(rows, dim, parallel)):
            for batch in fetched:
                _collect(batch, found)
    return _whole(found, rows, dim)


def _requests(rows: Mapping[str, Mapping[str, Any]], dim: int, parallel: int) -> Iterator[list[str]]:
    """Page ids in groups of at most ``_PAGES_PER_READ`` whose float32 rows fit ``_ROWS_PER_READ``,
    and of at most a ``parallel``-th of the pages."""
    most = max(1, min(_PAGES_PER_READ, -(-len(rows) // max(parallel, 1))))
    group: list[str] = []
    parts = 0
    for page_id, row in rows.items():
        page_parts = _float32_parts(int(row.get("n_vectors") or 1), dim)
        if group and (len(group) == most or parts + page_parts > _ROWS_PER_READ):
            yield group
            group, parts = [], 0
        group.append(page_id)
        parts += page_parts
    if group:
        yield group


def _float32_parts(n_vectors: int, dim: int) -> int:
    """Rows a page of ``n_vectors`` takes at most (written as float32, the wider encoding)."""
    return max(1, -(-4 * -(-(n_vectors * dim * 4) // 3) // PART_CHARS))


def scan_packed(
    connection: MilvusConnection, names: CollectionNames, rows: Mapping[str, Mapping[str, Any]], dim: int
) -> Iterator[tuple[dict[str, FloatArray], set[str]]]:
    """Every committed page's verified vectors, in one pass over the packed rows, a window at a time.

    Yields ``(pages completed in this window, ids with rows but no committed page)``, so that a caller
    can keep what it needs of each window and let the rest go.
    """
    found: dict[tuple[str, str], dict[int, Mapping[str, Any]]] = {}
    done: set[str] = set()  # pages yielded: a second copy of their rows (a retried write) is not a second page
    for batch in connection.iter_rows(names.packed, "", PACKED_ROW_FIELDS, primary="pk", window=_ROWS_PER_READ):
        orphans = {str(row["page_id"]) for row in batch if str(row["page_id"]) not in rows}
        _collect([row for row in batch if str(row["page_id"]) in rows and str(row["page_id"]) not in done], found)
        complete = {key: parts for key, parts in found.items() if len(parts) == _parts_of(parts)}
        for key in complete:
            del found[key]
        pages = _whole(complete, rows, dim)
        done.update(pages)
        yield pages, orphans
    for page_id, digest in found:  # parts missing: a crash between a page's rows, or a damaged file
        if str(rows[page_id].get("digest")) == digest:
            logger.warning("skipping page %s: some of its packed rows are missing", page_id)


def _collect(batch: Sequence[Mapping[str, Any]], found: dict[tuple[str, str], dict[int, Mapping[str, Any]]]) -> None:
    for row in batch:
        found.setdefault((str(row["page_id"]), str(row["digest"])), {})[int(row["part"])] = row


def _parts_of(parts: Mapping[int, Mapping[str, Any]]) -> int:
    return int(next(iter(parts.values()))["parts"])


def _whole(
    found: Mapping[tuple[str, str], Mapping[int, Mapping[str, Any]]],
    rows: Mapping[str, Mapping[str, Any]],
    dim: int,
) -> dict[str, FloatArray]:
    """The pages whose committed version is complete among ``found`` and hashes to its digest."""
    whole: dict[str, FloatArray] = {}
    for (page_id, digest), parts in found.items():
        row = rows.get(page_id)
        if row is None or str(row.get("digest")) != digest:
            continue  # another version's rows (replaced, or never committed)
        first = parts.get(0)
        if first is None or sorted(parts) != list(range(int(first["parts"]))):
            logger.warning("skipping page %s: %d of its packed rows are stored", page_id, len(parts))
            continue
        try:
            text = "".join(str(parts[part]["blob"]) for part in range(len(parts)))
            vectors = decode(str(first["encoding"]), text, int(first["n_vectors"]), dim)
        except ValueError as error:
            logger.warning("skipping page %s: its packed rows do not decode (%s)", page_id, error)
            continue
        if vector_digest(vectors) != digest:
            logger.warning("skipping page %s: its packed vectors do not match their digest", page_id)
            continue
        whole[page_id] = vectors
    return whole
