"""Image files and folders to :class:`~colpali_milvus.types.Page` objects."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from os import PathLike
from pathlib import Path
from typing import Any

from colpali_milvus.errors import DocumentError
from colpali_milvus.pages.identity import file_digest
from colpali_milvus.types import Page

__all__ = ["IMAGE_SUFFIXES", "read_image"]

IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".webp", ".bmp", ".gif", ".tif", ".tiff"})


def read_image(path: str | PathLike[str], *, metadata: Mapping[str, Any] | None = None) -> Iterator[Page]:
    """Yield one page per frame of an image file (a multi-page TIFF gives several), as RGB."""
    from PIL import Image, ImageSequence, UnidentifiedImageError

    path = Path(path)
    if not path.is_file():
        raise DocumentError(f"no such file: {path}")
    doc_id = file_digest(path)
    try:
        with Image.open(path) as image:
            frames = [frame.convert("RGB") for frame in ImageSequence.Iterator(image)]
    except (UnidentifiedImageError, OSError, ValueError) as error:
        raise DocumentError(f"{path} is not a readable image: {error}") from error
    for number, frame in enumerate(frames, start=1):
        yield Page(
            image=frame,
            source=str(path),
            page=number,
            page_label=str(number),
            doc_id=doc_id,
            metadata=dict(metadata or {}),
        )
