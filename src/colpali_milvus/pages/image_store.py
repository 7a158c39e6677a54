"""Page images kept on disk, one PNG per page id, confined to one folder and named by a digest of the id."""

from __future__ import annotations

import hashlib
import logging
import os
import re
import stat
import tempfile
from collections.abc import Iterable
from os import PathLike
from pathlib import Path
from typing import TYPE_CHECKING

from colpali_milvus.errors import DocumentError
from colpali_milvus.pages.identity import DIGEST_LENGTH
from colpali_milvus.types import check_page_id, is_page_id

if TYPE_CHECKING:
    from PIL import Image

__all__ = ["PageImageStore"]

logger = logging.getLogger(__name__)

# The ids :func:`colpali_milvus.pages.identity.page_id` derives from a file's content (a hex digest and
# a page number): already safe, portable file names, kept as such so folders written before any id
# was allowed stay as they are.
_CONTENT_PAGE_ID = re.compile(rf"[0-9a-f]{{{DIGEST_LENGTH}}}-[0-9]{{5,}}")
# What a page id could be before any string was allowed; such an id's image was ``<id>.png``.
_OLD_PAGE_ID = re.compile(r"[A-Za-z0-9_-]{1,128}")


class PageImageStore:
    """Stores and finds page images by page id.

    A page id is any string (:func:`~colpali_milvus.types.check_page_id`); it never becomes a file
    name. A page's file is ``<sha256 of the id's UTF-8, hex>.id.png``, except for the ids derived
    from file content (``<32 hex digits>-<page number>``), which stay ``<id>.png``. Either way only
    ``[0-9a-f.-]`` characters appear, so no id can name a file outside ``root``, and two ids never
    share a file, not even on a case-insensitive file system. Folders written when ids were
    restricted to ``[A-Za-z0-9_-]`` keep working: :meth:`find` falls back to ``<id>.png`` for such
    ids, :meth:`save` and :meth:`delete` remove that old file.

    What :meth:`find` returns is checked on disk too: a regular file inside ``root`` once symlinks
    are resolved, so a PNG swapped for a link to elsewhere is never handed to a vision model.
    Writes are atomic (temp file, then rename), so a crash never leaves a half-written image.
    """

    suffix = ".png"

    def __init__(self, root: str | PathLike[str]) -> None:
        self.root = Path(root).expanduser().resolve()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self.root)!r})"

    @classmethod
    def file_name(cls, page_id: str) -> str:
        """The name of the image file of ``page_id``; raises InvalidInputError for a non page id."""
        check_page_id(page_id)
        if _CONTENT_PAGE_ID.fullmatch(page_id):
            return f"{page_id}{cls.suffix}"
        return f"{hashlib.sha256(page_id.encode('utf-8')).hexdigest()}.id{cls.suffix}"

    def path_for(self, page_id: str) -> Path:
        """Where the image of ``page_id`` is written; raises InvalidInputError for a non page id."""
        return self.root / self.file_name(page_id)

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
        self._remove_old_file(page_id)  # a folder written before: the image it held is replaced
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
        old = self._old_path(page_id)
        for path in (self.path_for(page_id), *([old] if old is not None else [])):
            try:
                resolved = path.resolve(strict=True)
                mode = resolved.stat().st_mode
            except FileNotFoundError:
                continue
            except (OSError, RuntimeError) as error:  # a symlink loop, a permission error
                logger.warning("ignoring the image of page %r: %s", page_id, error)
                return None
            if not resolved.is_relative_to(self.root):
                logger.warning("ignoring the image of page %r: it links outside %s", page_id, self.root)
                return None
            if not stat.S_ISREG(mode):
                logger.warning("ignoring the image of page %r: %s is not a regular file", page_id, resolved)
                return None
            return resolved
        return None

    def delete(self, page_ids: Iterable[str]) -> None:
        """Remove the images of ``page_ids`` (a link is removed, never its target); ids without one are fine."""
        for page_id in page_ids:
            if not is_page_id(page_id):  # anything else cannot have an image here
                continue
            self._unlink(page_id, self.path_for(page_id))
            self._remove_old_file(page_id)

    def _old_path(self, page_id: str) -> Path | None:
        """Where a folder written when ids were restricted kept the image of ``page_id``, if it could have."""
        if _CONTENT_PAGE_ID.fullmatch(page_id) or not _OLD_PAGE_ID.fullmatch(page_id):
            return None  # a content id's name never changed; any other id could not be stored then
        return self.root / f"{page_id}{self.suffix}"

    def _remove_old_file(self, page_id: str) -> None:
        old = self._old_path(page_id)
        if old is not None:
            self._unlink(page_id, old)

    @staticmethod
    def _unlink(page_id: str, path: Path) -> None:
        try:
            path.unlink(missing_ok=True)
        except OSError as error:  # the rows are gone (or replaced) already; a leftover file is harmless
            logger.warning("cannot delete the image of page %r: %s", page_id, error)
