"""Frozen value objects that flow through the pipeline: :class:`Page` in, :class:`PageHit` out."""

from __future__ import annotations

import base64
import mimetypes
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from colpali_milvus.errors import DocumentError, InvalidInputError

if TYPE_CHECKING:
    from PIL import Image

__all__ = [
    "PAGE_ID_FORBIDDEN_CHARS",
    "IngestReport",
    "Page",
    "PageHit",
    "SkippedFile",
    "StoredPage",
    "check_page_id",
    "is_page_id",
]

#: Characters no page id (and no filter string) may hold: control characters that Milvus's filter
#: expressions cannot spell (tab, line feed and carriage return can be escaped, and are allowed).
PAGE_ID_FORBIDDEN_CHARS = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def check_page_id(value: object) -> str:
    """``value`` if it can be a page id, else InvalidInputError saying why.

    A page id is any str of text, unicode included, of at most
    :data:`~colpali_milvus.store.schema.MAX_ID_LENGTH` bytes once UTF-8 encoded (the store's id
    column), that is not empty or only whitespace and holds no control character but tab and line
    breaks (:data:`PAGE_ID_FORBIDDEN_CHARS`). Ids are never used as file names: page images are
    named by a digest of the id (:class:`~colpali_milvus.pages.image_store.PageImageStore`).
    """
    from colpali_milvus.store.schema import MAX_ID_LENGTH  # the store's id column decides the length

    if not isinstance(value, str):
        raise InvalidInputError(f"page ids must be str, got {type(value).__name__}")
    shown = repr(value) if len(value) <= 80 else f"{value[:60]!r}... ({len(value)} characters)"
    if not value.strip():
        raise InvalidInputError(f"page ids must not be empty or only whitespace, got {shown}")
    try:
        size = len(value.encode("utf-8"))
    except UnicodeEncodeError as error:
        raise InvalidInputError(
            f"page id {shown} is not valid unicode text: a lone surrogate at position {error.start} "
            "cannot be UTF-8 encoded"
        ) from None
    if size > MAX_ID_LENGTH:
        raise InvalidInputError(f"page ids may be at most {MAX_ID_LENGTH} bytes of UTF-8, got {size} bytes: {shown}")
    if PAGE_ID_FORBIDDEN_CHARS.search(value):
        raise InvalidInputError(f"page ids may not hold control characters (tab and line breaks aside), got {shown}")
    return value


def is_page_id(value: object) -> bool:
    """Whether ``value`` is a valid page id (see :func:`check_page_id`)."""
    try:
        check_page_id(value)
    except InvalidInputError:
        return False
    return True


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
