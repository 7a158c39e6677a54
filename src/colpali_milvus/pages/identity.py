"""Content-derived ids: the same bytes always give the same document id, and the same page id per page.

Page ids are known from a file's bytes and page count alone, before any page is rendered, so that
an ingestion can tell which pages are stored already without rendering them.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from os import PathLike
from pathlib import Path
from typing import TYPE_CHECKING, Any

from colpali_milvus.errors import InvalidInputError

if TYPE_CHECKING:
    from PIL import Image

__all__ = ["DIGEST_LENGTH", "RESERVED_METADATA_KEYS", "file_digest", "image_digest", "page_id", "user_metadata"]

#: 128 bits of SHA-256, as hex: collision-free for any realistic corpus, short enough for ids.
DIGEST_LENGTH = 32

#: Keys a page sets for itself; user metadata may not give them (they would be overwritten).
RESERVED_METADATA_KEYS = frozenset({"source", "page", "page_label", "doc_id", "page_id"})


def file_digest(path: str | PathLike[str]) -> str:
    digest = hashlib.sha256()
    with Path(path).open("rb") as file:
        for chunk in iter(lambda: file.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()[:DIGEST_LENGTH]


def image_digest(image: Image.Image) -> str:
    digest = hashlib.sha256(f"{image.mode}:{image.size}".encode())
    digest.update(image.tobytes())
    return digest.hexdigest()[:DIGEST_LENGTH]


def page_id(doc_id: str, page: int) -> str:
    """The id of page ``page`` (1-based) of document ``doc_id`` (what :attr:`Page.page_id` returns)."""
    return f"{doc_id}-{page:05d}"


def user_metadata(metadata: Mapping[str, Any] | None) -> dict[str, Any]:
    """A copy of a caller's metadata for the pages of a file; refuses the keys a page sets itself."""
    metadata = dict(metadata or {})
    reserved = sorted(RESERVED_METADATA_KEYS.intersection(metadata))
    if reserved:
        raise InvalidInputError(
            f"metadata key(s) {', '.join(map(repr, reserved))} are reserved: every page sets "
            f"{', '.join(sorted(RESERVED_METADATA_KEYS))} itself"
        )
    return metadata
