"""Pages in, rows out: the one place that validates a page and builds its Milvus rows.

Everything is checked before the first row is written (dims, NaN, ragged or non-numeric vectors,
ids, integer ranges, ``None`` in typed columns), so a bad page never leaves half its rows behind.
The same :class:`PageRecord` feeds Milvus and the in-process cache, so the two cannot be built
from different column lists.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from os import PathLike
from typing import Any

import numpy as np
import numpy.typing as npt

from colpali_milvus.errors import InvalidInputError
from colpali_milvus.search import codes
from colpali_milvus.search.pooling import pool_page
from colpali_milvus.store.schema import (
    INT64_MAX,
    INT64_MIN,
    MAX_LABEL_LENGTH,
    MAX_TEXT_LENGTH,
    METADATA_COLUMNS,
    PAGE_FIELDS,
)
from colpali_milvus.types import StoredPage, check_page_id

__all__ = [
    "PageRecord",
    "as_vectors",
    "build_records",
    "hit_metadata",
    "page_row",
    "stored_page",
    "summary_rows",
    "vector_digest",
    "vector_rows",
]

FloatArray = npt.NDArray[np.float32]


@dataclass(frozen=True, slots=True)
class PageRecord:
    """One validated page: its id, ``(n, dim)`` float32 vectors and the page row committing them."""

    page_id: str
    vectors: FloatArray
    row: Mapping[str, Any]  # the page row without the pooled vector: what the cache and hits use


def vector_digest(vectors: FloatArray) -> str:
    """A digest of a page's float32 vectors, in order: recorded in the page row, checked on every read."""
    data = np.ascontiguousarray(vectors, dtype=np.float32)
    return hashlib.blake2b(data.tobytes(), digest_size=16).hexdigest() + f"-{data.shape[0]}"


def as_vectors(vectors: Any, dim: int, what: str) -> FloatArray:
    """``vectors`` as a finite, non-empty ``(n, dim)`` float32 array, or InvalidInputError."""
    try:
        array = np.asarray(vectors, dtype=np.float32)
    except (ValueError, TypeError) as error:  # ragged lists, strings, objects
        raise InvalidInputError(f"{what}: vectors must be a numeric (n, {dim}) array ({error})") from error
    if array.ndim != 2 or array.shape[0] == 0:
        raise InvalidInputError(f"{what}: expected a non-empty (n, {dim}) array, got shape {array.shape}")
    if array.shape[1] != dim:
        raise InvalidInputError(f"{what}: vectors have dim {array.shape[1]}, the collection holds {dim}")
    if not np.isfinite(array).all():
        raise InvalidInputError(f"{what}: vectors contain NaN or infinity (or values beyond float32)")
    return np.ascontiguousarray(array)


def build_records(
    vectors: Sequence[Any],
    metadatas: Sequence[Mapping[str, Any]] | None,
    ids: Sequence[str],
    texts: Sequence[str] | None,
    dim: int,
) -> list[PageRecord]:
    """Validate pages and build their records; raises InvalidInputError before anything is written."""
    n_pages = len(vectors)
    metadatas = list(metadatas) if metadatas is not None else [{} for _ in range(n_pages)]
    texts = list(texts) if texts is not None else ["" for _ in range(n_pages)]
    if not (len(metadatas) == len(ids) == len(texts) == n_pages):
        raise InvalidInputError("vectors, metadatas, ids and texts must have the same length")
    for page_id in ids:
        check_page_id(page_id)
    if len(set(ids)) != len(ids):
        raise InvalidInputError("page ids must be unique within one add()")
    records = []
    for i, (page_id, page, metadata, text) in enumerate(zip(ids, vectors, metadatas, texts, strict=True)):
        array = as_vectors(page, dim, f"page {i}")
        if not isinstance(text, str):
            raise InvalidInputError(f"page {i}: text must be a str, got {type(text).__name__}")
        row = {
            "page_id": page_id,
            **_metadata_columns(metadata),
            "text": _truncate_utf8(text, MAX_TEXT_LENGTH),
            "n_vectors": int(array.shape[0]),
            "digest": vector_digest(array),
        }
        records.append(PageRecord(page_id, array, row))
    return records


def vector_rows(records: Sequence[PageRecord]) -> Iterator[dict[str, Any]]:
    for record in records:
        for seq, vector in enumerate(record.vectors.tolist()):  # plain lists insert fastest
            yield {"page_id": record.page_id, "seq_id": seq, "vector": vector}


def summary_rows(records: Sequence[PageRecord]) -> Iterator[dict[str, Any]]:
    """Each page's summary rows: one per centroid, the first few also carrying its rerank codes.

    Every row records the digest of the vectors it was made from.
    """
    for record in records:
        chunks = codes.to_chunks(codes.encode(record.vectors))
        centroids = pool_page(record.vectors).tolist()
        for row in range(max(len(centroids), len(chunks))):
            yield {
                "page_id": record.page_id,
                "part": row if row < len(chunks) else -1,
                "parts": len(chunks),
                "digest": record.row["digest"],
                "codes": chunks[row] if row < len(chunks) else "",
                "centroid": centroids[row % len(centroids)],  # a huge page's extra code rows repeat one
            }


def page_row(record: PageRecord, shard: int | None = None) -> dict[str, Any]:
    """The Milvus page row: the record's row plus the pooled vector (and the shard of its packed rows,
    where the layout records one)."""
    mean = record.vectors.mean(axis=0)
    norm = float(np.linalg.norm(mean))
    row = {**record.row, "pooled": (mean / norm if norm > 0 else mean).tolist()}
    if shard is not None:
        row["shard"] = shard
    return row


def hit_metadata(row: Mapping[str, Any]) -> dict[str, Any]:
    """What a hit reports: the user's own keys, then the typed page fields."""
    metadata = dict(row.get("metadata") or {})
    metadata.update({name: row[name] for name in PAGE_FIELDS if name in row})
    return metadata


def stored_page(row: Mapping[str, Any]) -> StoredPage:
    return StoredPage(
        page_id=str(row["page_id"]),
        source=str(row.get("source") or ""),
        page=int(row.get("page") or 0),
        page_label=str(row.get("page_label") or ""),
        doc_id=str(row.get("doc_id") or ""),
        metadata=dict(row.get("metadata") or {}),
        text=str(row.get("text") or ""),
        n_vectors=int(row.get("n_vectors") or 0),
    )


def _metadata_columns(metadata: Mapping[str, Any]) -> dict[str, Any]:
    """Split a metadata dict into the typed columns and the JSON ``metadata`` column."""
    if not isinstance(metadata, Mapping):
        raise InvalidInputError(f"metadata must be a mapping, got {type(metadata).__name__}")
    columns: dict[str, Any] = {}
    for spec in METADATA_COLUMNS:
        value = metadata.get(spec.name)
        if value is None:
            if spec.name in metadata:
                raise InvalidInputError(f"metadata {spec.name!r} is None: leave the key out instead")
            value = spec.python_type() if spec.python_type is not None else None  # "" or 0
        columns[spec.name] = _column_value(spec.name, spec.python_type, value, spec.params.get("max_length"))
    if "page_label" not in metadata and columns["page"]:
        columns["page_label"] = str(columns["page"])
    extra = {key: value for key, value in metadata.items() if key not in PAGE_FIELDS}
    for key in extra:
        if not isinstance(key, str):
            raise InvalidInputError(f"metadata keys must be strings, got {key!r}")
    columns["metadata"] = _json_safe(extra)
    return columns


def _column_value(name: str, kind: type | None, value: Any, max_length: int | None) -> Any:
    if kind is int:
        if isinstance(value, bool) or not isinstance(value, int | np.integer):
            raise InvalidInputError(f"metadata {name!r} must be an int, got {value!r}")
        return _int64(name, int(value))
    if isinstance(value, PathLike):
        value = str(value)
    if name == "page_label" and isinstance(value, int | np.integer) and not isinstance(value, bool):
        value = str(value)  # a printed page number
    if not isinstance(value, str):
        raise InvalidInputError(f"metadata {name!r} must be a str, got {type(value).__name__}")
    if name == "page_label":
        return _truncate_utf8(value, MAX_LABEL_LENGTH)
    if max_length is not None and len(value.encode()) > max_length:
        raise InvalidInputError(f"metadata {name!r} is longer than {max_length} bytes")
    return value


def _int64(name: str, value: int) -> int:
    if not INT64_MIN <= value <= INT64_MAX:
        raise InvalidInputError(f"metadata {name!r}: {value} does not fit a 64-bit integer")
    return value


def _json_safe(value: Any, name: str = "metadata") -> Any:
    """Metadata as plain JSON values (numpy scalars unwrapped, paths as strings); rejects the rest."""
    if isinstance(value, Mapping):
        return {str(key): _json_safe(item, str(key)) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(item, name) for item in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, PathLike):
        return str(value)
    if isinstance(value, float) and not math.isfinite(value):
        raise InvalidInputError(f"metadata {name!r}: values must be finite numbers")
    if isinstance(value, int) and not isinstance(value, bool):
        return _int64(name, value)
    if value is None or isinstance(value, str | float | bool):
        return value
    raise InvalidInputError(f"metadata {name!r}: values must be JSON values, got {type(value).__name__}")


def _truncate_utf8(text: str, max_bytes: int) -> str:
    encoded = text.encode("utf-8")
    if len(encoded) <= max_bytes:
        return text
    return encoded[:max_bytes].decode("utf-8", errors="ignore")
