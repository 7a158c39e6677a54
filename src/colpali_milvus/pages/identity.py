"""Content-derived ids: the same bytes always give the same document id, and the same page id per page.

Page ids are known from a file's bytes and page count alone, before any page is rendered, so that
an ingestion can tell which pages are stored already without rendering them.
"""

from __future__ import annotations

import hashlib
from abc import ABC, abstractmethod
from collections.abc import Collection, Iterator, Mapping
from os import PathLike
from pathlib import Path
from typing import TYPE_CHECKING, Any

from colpali_milvus.errors import InvalidInputError
from colpali_milvus.types import Page

if TYPE_CHECKING:
    from PIL import Image

__all__ = [
    "DIGEST_LENGTH",
    "RESERVED_METADATA_KEYS",
    "PageFile",
    "file_digest",
    "image_digest",
    "page_id",
    "user_metadata",
]

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


class PageFile(ABC):
    """A file opened without decoding a page: what it is (digest, page count, page ids), its pages on demand.

    :class:`~colpali_milvus.pages.pdf.PdfDocument` (one page per PDF page) and
    :class:`~colpali_milvus.pages.images.ImageDocument` (one per image frame) set the attributes.

    Attributes:
        path: the file, as given.
        metadata: the caller's metadata, given to every page (reserved keys are refused).
        doc_id: a digest of the file's bytes.
        page_count: its number of pages.
    """

    path: Path
    metadata: dict[str, Any]
    doc_id: str
    page_count: int

    @property
    def source(self) -> str:
        return str(self.path)

    def page_ids(self) -> list[str]:
        """The ids of every page, in order, known without rendering any."""
        return [page_id(self.doc_id, number) for number in range(1, self.page_count + 1)]

    @abstractmethod
    def pages(self, numbers: Collection[int] | None = None) -> Iterator[Page]:
        """The pages, decoded one at a time: all of them, or only the 1-based ``numbers``."""

    def _page(self, number: int, image: Image.Image, *, page_label: str, text: str = "") -> Page:
        """Page ``number`` (1-based) of this file, carrying the caller's metadata."""
        return Page(
            image=image,
            source=self.source,
            page=number,
            page_label=page_label,
            doc_id=self.doc_id,
            text=text,
            metadata=dict(self.metadata),
        )
