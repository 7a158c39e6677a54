"""Frozen value objects that flow through the pipeline: :class:`Page` in, :class:`PageHit` out."""

from __future__ import annotations

import base64
import mimetypes
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from colpali_milvus.errors import DocumentError

if TYPE_CHECKING:
    from PIL import Image

__all__ = ["PAGE_ID_PATTERN", "IngestReport", "Page", "PageHit", "SkippedFile", "StoredPage", "is_page_id"]

#: What a page id may be, everywhere: a Milvus primary key, a filter literal and an image file name.
PAGE_ID_PATTERN = re.compile(r"[A-Za-z0-9_-]{1,128}")


def is_page_id(value: object) -> bool:
    """Whether ``value`` is a valid page id (see :data:`PAGE_ID_PATTERN`)."""
    return isinstance(value, str) and PAGE_ID_PATTERN.fullmatch(value) is not None


@dataclass(frozen=True, slots=True)
class Page:
    """One rendered page (or one image file) ready to embed.

    ``doc_id`` identifies the source file by its content; ``page`` is 1-based and ``page_label``
    is the label printed on the page when the PDF defines one (``"iv"``, ``"A-3"``), else ``str(page)``.
    """

    image: Image.Image
    source: str
    page: int
    page_label: str
    doc_id: str
    text: str = ""
    metadata: Mapping[str, Any] = field(default_factory=dict)

    @property
    def page_id(self) -> str:
        """Stable id: the same file content and page number always give the same id."""
        from colpali_milvus.pages.identity import page_id  # one format for ids known before rendering

        return page_id(self.doc_id, self.page)

    def store_metadata(self) -> dict[str, Any]:
        """The metadata dict handed to the store: page fields plus the user's own keys."""
        return {
            **self.metadata,
            "source": self.source,
            "page": self.page,
            "page_label": self.page_label,
            "doc_id": self.doc_id,
        }


@dataclass(frozen=True, slots=True)
class PageHit:
    """A search result: one page, scored by exact MaxSim over all of its vectors.

    ``metadata`` holds what was given at ingestion (``source``, ``page``, ``page_label``,
    ``doc_id`` and the user's own keys). ``image_path`` is set when the index keeps page images.
    """

    page_id: str
    score: float
    metadata: Mapping[str, Any]
    text: str = ""
    image_path: Path | None = None

    @property
    def source(self) -> str | None:
        value = self.metadata.get("source")
        return None if value is None else str(value)

    @property
    def page(self) -> int | None:
        value = self.metadata.get("page")
        return None if value is None else int(value)

    @property
    def page_label(self) -> str | None:
        value = self.metadata.get("page_label")
        return None if value is None else str(value)

    @property
    def image_mime_type(self) -> str:
        guessed = mimetypes.guess_type(self.image_path.name)[0] if self.image_path else None
        return guessed or "image/png"

    def image_bytes(self) -> bytes:
        """The stored page image file's bytes (PNG by default)."""
        if self.image_path is None:
            raise DocumentError(f"page {self.page_id!r} has no stored image (the index keeps none)")
        try:
            return self.image_path.read_bytes()
        except OSError as error:
            raise DocumentError(f"cannot read the image of page {self.page_id!r}") from error

    def image_base64(self) -> str:
        """The page image as base64 text, ready for a vision model's image content block."""
        return base64.b64encode(self.image_bytes()).decode("ascii")

    def load_image(self) -> Image.Image:
        """The page image as a PIL image (loaded eagerly, file closed)."""
        from PIL import Image

        if self.image_path is None:
            raise DocumentError(f"page {self.page_id!r} has no stored image (the index keeps none)")
        try:
            with Image.open(self.image_path) as image:
                image.load()
                return image.copy()
        except OSError as error:
            raise DocumentError(f"cannot read the image of page {self.page_id!r}") from error


@dataclass(frozen=True, slots=True)
class StoredPage:
    """A committed page as the store holds it, without its vectors.

    ``metadata`` is the user's own keys; ``source``, ``page``, ``page_label`` and ``doc_id`` are the
    typed columns.
    """

    page_id: str
    source: str
    page: int
    page_label: str
    doc_id: str
    metadata: Mapping[str, Any]
    text: str
    n_vectors: int


@dataclass(frozen=True, slots=True)
class SkippedFile:
    """A file that a folder ingestion could not read, and why."""

    path: str
    error: str


@dataclass(frozen=True, slots=True)
class IngestReport:
    """What a folder ingestion did: the files indexed, their page ids, and the files skipped."""

    files: tuple[str, ...]
    page_ids: tuple[str, ...]
    skipped: tuple[SkippedFile, ...]
