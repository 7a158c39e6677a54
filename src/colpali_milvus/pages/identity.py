"""Content-derived ids: the same bytes always give the same document id."""

from __future__ import annotations

import hashlib
from os import PathLike
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from PIL import Image

__all__ = ["DIGEST_LENGTH", "file_digest", "image_digest"]

#: 128 bits of SHA-256, as hex: collision-free for any realistic corpus, short enough for ids.
DIGEST_LENGTH = 32


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
