"""Image files and folders to :class:`~colpali_milvus.types.Page` objects."""

from __future__ import annotations

from collections.abc import Collection, Iterator, Mapping
from os import PathLike
from pathlib import Path
from typing import Any

from colpali_milvus.errors import DocumentError
from colpali_milvus.pages.identity import PageFile, file_digest, user_metadata
from colpali_milvus.types import Page

__all__ = ["IMAGE_SUFFIXES", "ImageDocument", "open_image", "read_image"]

IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".webp", ".bmp", ".gif", ".tif", ".tiff"})


class ImageDocument(PageFile):
    """An image file whose identity (digest, frame count, page ids) is known before its frames are decoded.

    Each frame is a page (a multi-page TIFF gives several), the same interface as
    :class:`~colpali_milvus.pages.pdf.PdfDocument` (see :class:`~colpali_milvus.pages.identity.PageFile`).
    """

    def __init__(self, path: str | PathLike[str], *, metadata: Mapping[str, Any] | None = None) -> None:
        from PIL import Image, UnidentifiedImageError

        self.path = Path(path)
        self.metadata = user_metadata(metadata)
        if not self.path.is_file():
            raise DocumentError(f"no such file: {self.path}")
        self.doc_id = file_digest(self.path)
        try:
            with Image.open(self.path) as image:
                self.page_count = int(getattr(image, "n_frames", 1))
        except (UnidentifiedImageError, OSError, ValueError) as error:
            raise DocumentError(f"{self.path} is not a readable image: {error}") from error

    def pages(self, numbers: Collection[int] | None = None) -> Iterator[Page]:
        """The frames as RGB pages: all of them, or only the 1-based ``numbers``."""
        from PIL import Image, ImageSequence, UnidentifiedImageError

        try:
            with Image.open(self.path) as image:
                frames = [
                    (number, frame.convert("RGB"))
                    for number, frame in enumerate(ImageSequence.Iterator(image), start=1)
                    if numbers is None or number in numbers
                ]
        except (UnidentifiedImageError, OSError, ValueError) as error:
            raise DocumentError(f"{self.path} is not a readable image: {error}") from error
        for number, frame in frames:
            yield self._page(number, frame, page_label=str(number))


#: Open an image file without decoding its frames: the :class:`ImageDocument` constructor.
open_image = ImageDocument


def read_image(path: str | PathLike[str], *, metadata: Mapping[str, Any] | None = None) -> Iterator[Page]:
    """Yield one page per frame of an image file (a multi-page TIFF gives several), as RGB."""
    yield from open_image(path, metadata=metadata).pages()
