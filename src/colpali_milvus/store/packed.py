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

**Shards** (schema 5, Milvus Lite). Milvus Lite holds every row of a collection in the memory of the
process that touches it, and a flush or compaction rewrites them: one collection of every page's
rows cost an ingesting process ~4 GB per 1,000 float32 pages. So a page's rows go to the last
shard (``<name>_packed``, ``<name>_packed_1``, ...) until it holds :data:`SHARD_ROWS` rows, then to
a new one; a page never spans two. Its page row records the shard. Whoever leaves a shard, a
writer moving on or a read or scan done with it, unloads it, so a process holds the rows of the
last shard and at most one other, whatever the size of the collection.
"""

from __future__ import annotations

import base64
import logging
from collections.abc import Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from colpali_milvus.store.collections import CollectionNames, create_packed_shard
from colpali_milvus.store.connection import PARALLEL_READS, MilvusConnection, in_ids
from colpali_milvus.store.rows import PageRecord, vector_digest
from colpali_milvus.store.schema import PACKED_ROW_FIELDS

__all__ = [
    "PART_CHARS",
    "SHARD_ROWS",
    "ShardTail",
    "decode",
    "delete_packed",
    "encode",
    "insert_packed",
    "packed_rows",
    "packed_vectors",
    "scan_packed",
    "shard_count",
    "shard_of",
]

logger = logging.getLogger(__name__)

FloatArray = npt.NDArray[np.float32]

PART_CHARS = 65_532  # the largest multiple of 4 (whole base64 quanta) within a VARCHAR
_ROWS_PER_INSERT = 96  # ~6 MB of text per request
_ROWS_PER_READ = 256  # ~16 MB of text per query window
_PAGES_PER_READ = 64  # ids per request at most (Milvus Lite scans the collection once per filtered request)
_ANCHOR = [1.0, 0.0]
#: Packed rows per shard: ~64 MB of text, 90-130 float32 ColPali pages or twice as many bfloat16 ones.
#: What a process holds of a shard in use, and about what Milvus Lite rewrites when it flushes one.
SHARD_ROWS = 1_024


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


@dataclass(slots=True)
class ShardTail:
    """The last shard of a collection and how many rows it holds: kept per collection and process
    (``SharedCollection``), found by the first write."""

    shard: int = -1  # not looked up yet
    rows: int = 0


def shard_of(row: Mapping[str, Any]) -> int:
    """The shard a page row records (0 where the layout has one shard)."""
    return int(row.get("shard") or 0)


def shard_count(connection: MilvusConnection, names: CollectionNames) -> int:
    """How many shards hold the packed rows: the consecutive collections from ``<name>_packed``."""
    count = 1
    while names.sharded and connection.has_collection(names.packed_shard(count)):
        count += 1
    return count


def insert_packed(
    connection: MilvusConnection, names: CollectionNames, records: Sequence[PageRecord], tail: ShardTail
) -> list[int]:
    """Write the pages' packed rows (before their page rows, which commit them); returns each page's shard."""
    if not names.sharded:
        _write(connection, names.packed, packed_rows(records))
        return [0] * len(records)
    if tail.shard < 0:
        tail.shard = shard_count(connection, names) - 1
        tail.rows = connection.count(names.packed_shard(tail.shard))
    shards: list[int] = []
    pending: list[dict[str, Any]] = []
    for record in records:
        rows = list(packed_rows([record]))
        if tail.rows and tail.rows + len(rows) > SHARD_ROWS:  # a page never spans two shards
            _write(connection, names.packed_shard(tail.shard), pending)
            pending = []
            connection.unload(names.packed_shard(tail.shard))
            tail.shard, tail.rows = tail.shard + 1, 0
            create_packed_shard(connection, names, tail.shard, int(record.vectors.shape[1]))
            logger.debug("packed rows of %s now go to shard %d", names.name, tail.shard)
        pending.extend(rows)
        tail.rows += len(rows)
        shards.append(tail.shard)
    _write(connection, names.packed_shard(tail.shard), pending)
    return shards


def delete_packed(
    connection: MilvusConnection,
    names: CollectionNames,
    page_ids: Sequence[str],
    shards: Iterable[int] | None = None,
    *,
    also_last: bool = False,
) -> None:
    """Delete every packed row of these pages from the given shards (``None``: all; ``also_last``: and
    the last, where the rows of an add that failed before its commit would be), then unload all but the last."""
    last = shard_count(connection, names) - 1
    chosen = set(range(last + 1) if shards is None else shards) | ({last} if also_last else set())
    touched = sorted(shard for shard in chosen if shard <= last)
    for shard in touched:
        connection.delete_ids((names.packed_shard(shard),), page_ids)
    _leave(connection, names, touched, last)


def _write(connection: MilvusConnection, collection: str, rows: Iterable[dict[str, Any]]) -> None:
    """Insert packed rows: ASCII text cut to PART_CHARS, so pymilvus's per-character check is skipped."""
    batch: list[dict[str, Any]] = []
    for row in rows:
        batch.append(row)
        if len(batch) == _ROWS_PER_INSERT:
            connection.write_batch(collection, batch, text_checked=True)
            batch = []
    if batch:
        connection.write_batch(collection, batch, text_checked=True)


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

    def fetch(request: tuple[int, list[str]]) -> list[list[dict[str, Any]]]:
        shard, group = request
        collection, where = names.packed_shard(shard), in_ids(group)
        read = connection.iter_rows(
            collection, where, PACKED_ROW_FIELDS, primary="pk", consistency=consistency, window=_ROWS_PER_READ
        )
        return list(read)

    by_shard: dict[int, dict[str, Mapping[str, Any]]] = {}
    for page_id, row in rows.items():
        by_shard.setdefault(shard_of(row), {})[page_id] = row
    requests = [(shard, group) for shard, held in by_shard.items() for group in _requests(held, dim, parallel)]
    found: dict[tuple[str, str], dict[int, Mapping[str, Any]]] = {}
    with ThreadPoolExecutor(max(1, min(parallel, PARALLEL_READS))) as pool:
        for fetched in pool.map(fetch, requests):
            for batch in fetched:
                _collect(batch, found)
    if names.sharded:
        _leave(connection, names, by_shard, shard_count(connection, names) - 1)
    return _whole(found, rows, dim)


def _leave(connection: MilvusConnection, names: CollectionNames, shards: Iterable[int], last: int) -> None:
    """Unload the shards a read or delete is done with, but the ``last`` (where a writer writes)."""
    connection.unload(*(names.packed_shard(shard) for shard in shards if shard < last))


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
    """Every committed page's verified vectors, in one pass over the packed rows, a window at a time
    (shard by shard, each unloaded once read but the last).

    Yields ``(pages completed in this window, ids with rows but no committed page)``, so that a caller
    can keep what it needs of each window and let the rest go.
    """
    found: dict[tuple[str, str], dict[int, Mapping[str, Any]]] = {}
    done: set[str] = set()  # pages yielded: a second copy of their rows (a retried write) is not a second page
    last = shard_count(connection, names) - 1
    for shard in range(last + 1):
        collection = names.packed_shard(shard)
        for batch in connection.iter_rows(collection, "", PACKED_ROW_FIELDS, primary="pk", window=_ROWS_PER_READ):
            orphans = {str(row["page_id"]) for row in batch if str(row["page_id"]) not in rows}
            _collect([row for row in batch if str(row["page_id"]) in rows and str(row["page_id"]) not in done], found)
            complete = {key: parts for key, parts in found.items() if len(parts) == _parts_of(parts)}
            for key in complete:
                del found[key]
            pages = _whole(complete, rows, dim)
            done.update(pages)
            yield pages, orphans
        _leave(connection, names, (shard,), last)
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
