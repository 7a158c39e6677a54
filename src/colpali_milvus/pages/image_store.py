"""Page images kept on disk, one PNG per page id, confined to one folder."""

from __future__ import annotations

import logging
import os
import stat
import tempfile
from collections.abc import Iterable
from os import PathLike
from pathlib import Path
from typing import TYPE_CHECKING

from colpali_milvus.errors import DocumentError, InvalidInputError
from colpali_milvus.types import PAGE_ID_PATTERN, is_page_id

if TYPE_CHECKING:
    from PIL import Image

__all__ = ["PageImageStore"]

logger = logging.getLogger(__name__)


class PageImageStore:
    """Stores and finds page images by page id.

    Paths are built from the page id alone, never from metadata, and ids must be page ids
    (:data:`~colpali_milvus.types.PAGE_ID_PATTERN`), so no name can point outside ``root``. What
    :meth:`find` returns is checked on disk too: a regular file inside ``root`` once symlinks are
    resolved, so a PNG swapped for a link to elsewhere is never handed to a vision model. Writes
    are atomic (temp file, then rename), so a crash never leaves a half-written image.
    """

    suffix = ".png"

    def __init__(self, root: str | PathLike[str]) -> None:
        self.root = Path(root).expanduser().resolve()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self.root)!r})"

    def path_for(self, page_id: str) -> Path:
        """Where the image of ``page_id`` is written; raises InvalidInputError for a non page id."""
        if not is_page_id(page_id):
            raise InvalidInputError(f"page ids must match {PAGE_ID_PATTERN.pattern}, got {page_id!r}")
        return self.root / f"{page_id}{self.suffix}"

    def save(self, page_id: str, image: Image.Image) -> Path:
        target = self.path_for(page_id)
        self.root.mkdir(parents=True, exist_ok=True)
        descriptor, temporary = tempfile.mkstemp(dir=self.root, prefix=".tmp-", suffix=self.suffix)
        try:
            with os.fdopen(descriptor, "wb") as file:
                image.save(file, format="PNG", optimize=False)
            os.replace(temporary, target)  # replaces a link at target itself, never what it points to
        except OSError as error:
            Path(temporary).unlink(missing_ok=True)
            raise DocumentError(f"cannot write the image of page {page_id!r} to {self.root}") from error
        return target

    def find(self, page_id: str) -> Path | None:
        """The stored image of ``page_id`` (its resolved path), or ``None`` when there is none.

        Never raises: an id that is not a page id, a missing file, a link out of the folder or
        anything but a regular file all give ``None`` (the last two with a warning), so one odd
        page cannot fail a whole search.
        """
        if not is_page_id(page_id):
            logger.warning("not looking up an image for %r: not a page id", page_id)
            return None
        path = self.root / f"{page_id}{self.suffix}"
        try:
            resolved = path.resolve(strict=True)
            mode = resolved.stat().st_mode
        except FileNotFoundError:
            return None
        except (OSError, RuntimeError) as error:  # a symlink loop, a permission error
            logger.warning("ignoring the image of page %s: %s", page_id, error)
            return None
        if not resolved.is_relative_to(self.root):
            logger.warning("ignoring the image of page %s: it links outside %s", page_id, self.root)
            return None
        if not stat.S_ISREG(mode):
            logger.warning("ignoring the image of page %s: %s is not a regular file", page_id, resolved)
            return None
        return resolved

    def delete(self, page_ids: Iterable[str]) -> None:
        """Remove the images of ``page_ids`` (a link is removed, never its target); ids without one are fine."""
        for page_id in page_ids:
            if not is_page_id(page_id):  # anything else cannot have an image here
                continue
            try:
                self.path_for(page_id).unlink(missing_ok=True)
            except OSError as error:  # the rows are gone already; a leftover file is harmless
                logger.warning("cannot delete the image of page %s: %s", page_id, error)
