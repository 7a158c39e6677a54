"""Page images kept on disk, one PNG per page id, confined to one folder."""

from __future__ import annotations

import os
import re
import tempfile
from collections.abc import Iterable
from os import PathLike
from pathlib import Path
from typing import TYPE_CHECKING

from colpali_milvus.errors import DocumentError, InvalidInputError

if TYPE_CHECKING:
    from PIL import Image

__all__ = ["PageImageStore"]

_SAFE_ID = re.compile(r"[A-Za-z0-9_-]{1,128}")


class PageImageStore:
    """Stores and finds page images by page id.

    Paths are built from the page id alone, never from metadata, and ids are restricted to
    ``[A-Za-z0-9_-]``, so nothing outside ``root`` can be read or written through it. Writes are
    atomic (temp file, then rename), so a crash never leaves a half-written image.
    """

    suffix = ".png"

    def __init__(self, root: str | PathLike[str]) -> None:
        self.root = Path(root).expanduser().resolve()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self.root)!r})"

    def path_for(self, page_id: str) -> Path:
        if not _SAFE_ID.fullmatch(page_id):
            raise InvalidInputError(f"unsafe page id for an image file name: {page_id!r}")
        return self.root / f"{page_id}{self.suffix}"

    def save(self, page_id: str, image: Image.Image) -> Path:
        target = self.path_for(page_id)
        self.root.mkdir(parents=True, exist_ok=True)
        descriptor, temporary = tempfile.mkstemp(dir=self.root, prefix=".tmp-", suffix=self.suffix)
        try:
            with os.fdopen(descriptor, "wb") as file:
                image.save(file, format="PNG", optimize=False)
            os.replace(temporary, target)
        except OSError as error:
            Path(temporary).unlink(missing_ok=True)
            raise DocumentError(f"cannot write the image of page {page_id!r} to {self.root}") from error
        return target

    def find(self, page_id: str) -> Path | None:
        """The stored image of ``page_id``, or ``None`` when there is none."""
        path = self.path_for(page_id)
        return path if path.is_file() else None

    def delete(self, page_ids: Iterable[str]) -> None:
        for page_id in page_ids:
            self.path_for(page_id).unlink(missing_ok=True)
