"""Page image files are named by a digest of the page id, never by the id itself; old folders stay readable."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from colpali_milvus import InvalidInputError
from colpali_milvus.pages.identity import DIGEST_LENGTH, page_id
from colpali_milvus.pages.image_store import PageImageStore
from colpali_milvus.store.schema import MAX_ID_LENGTH

# Ids a user or a loader hands in: paths, URLs, fragments, spaces, unicode, names that mean
# something to a file system, and one of the largest size allowed.
ANY_IDS = [
    "doc:1/page.2",
    "report.pdf#3",
    "/home/user/My Documents/report.pdf",
    "C:\\data\\report 2024.pdf",
    "file:///tmp/report.pdf?page=3",
    "../x",
    "../../etc/passwd",
    "..",
    ".",
    "name.png",
    "a b",
    "été 📄 文档",
    "CON",
    "line\nbreak\ttab",
    "x" * MAX_ID_LENGTH,
    "é" * (MAX_ID_LENGTH // 2),
]

# Ids no page can have: refused with a clear error before anything is written.
HOSTILE_IDS = [
    "",
    "   ",
    "\t\n",
    "nul\x00byte",
    "\x1b[31mred",
    "lone \ud800 surrogate",
    "x" * (MAX_ID_LENGTH + 1),
    "é" * (MAX_ID_LENGTH // 2) + "x",  # MAX_ID_LENGTH + 1 bytes of UTF-8 in fewer characters
    "x" * 10_000,
]


@pytest.fixture
def images(tmp_path: Path) -> PageImageStore:
    return PageImageStore(tmp_path / "pages")


def red(size: tuple[int, int] = (4, 3)) -> Image.Image:
    return Image.new("RGB", size, "red")


def digest_name(page_id: str) -> str:
    return hashlib.sha256(page_id.encode("utf-8")).hexdigest() + ".id.png"


@pytest.mark.parametrize("any_id", ANY_IDS)
def test_any_id_gets_a_digest_named_file_inside_the_folder(images: PageImageStore, tmp_path: Path, any_id: str) -> None:
    saved = images.save(any_id, red())

    assert saved == images.root / digest_name(any_id)
    assert sorted(os.listdir(images.root)) == [digest_name(any_id)]  # nothing else, no temp file
    assert sorted(path.name for path in tmp_path.iterdir()) == ["pages"]  # nothing beside the folder
    assert images.find(any_id) == saved
    assert Image.open(saved).size == (4, 3)
    images.delete([any_id])
    assert images.find(any_id) is None
    assert os.listdir(images.root) == []


def test_every_id_has_its_own_file_even_where_case_is_folded(images: PageImageStore) -> None:
    ids = ["Report", "report", "REPORT", "report ", "report\n", "réport", "re\u0301port"]  # the last two: NFC, NFD

    for number, any_id in enumerate(ids, start=1):
        images.save(any_id, red((number, number)))

    names = [images.file_name(any_id) for any_id in ids]
    assert len({name.lower() for name in names}) == len(ids)  # distinct on a case-insensitive file system too
    for number, any_id in enumerate(ids, start=1):
        found = images.find(any_id)
        assert found is not None and Image.open(found).size == (number, number)


def test_content_derived_ids_keep_their_file_names(images: PageImageStore) -> None:
    content_id = page_id(hashlib.sha256(b"a pdf").hexdigest()[:DIGEST_LENGTH], 3)

    assert images.save(content_id, red()) == images.root / f"{content_id}.png"
    assert images.find(content_id) == images.root / f"{content_id}.png"


@pytest.mark.parametrize("hostile", [*HOSTILE_IDS, None, 7, b"bytes"])
def test_hostile_ids_are_refused_before_any_write(images: PageImageStore, hostile: Any) -> None:
    with pytest.raises(InvalidInputError, match="page id"):
        images.save(hostile, red())
    with pytest.raises(InvalidInputError, match="page id"):
        images.path_for(hostile)

    assert not images.root.exists()  # not even the folder was made
    assert images.find(hostile) is None  # a lookup never raises
    images.delete([hostile])  # nor does a delete


def test_the_error_for_a_long_id_is_short_and_says_the_limit(images: PageImageStore) -> None:
    with pytest.raises(InvalidInputError) as error:
        images.save("x" * 10_000, red())

    message = str(error.value)
    assert f"at most {MAX_ID_LENGTH} bytes" in message and "10000 bytes" in message
    assert len(message) < 300


def test_a_folder_written_before_keeps_working(images: PageImageStore) -> None:
    """Ids were ``[A-Za-z0-9_-]`` and named their file ``<id>.png``: found, replaced and deleted as before."""
    images.root.mkdir(parents=True)
    red((7, 7)).save(images.root / "p1.png")
    red((8, 8)).save(images.root / "p2.png")

    old = images.find("p1")
    assert old == images.root / "p1.png" and Image.open(old).size == (7, 7)

    replaced = images.save("p1", red((9, 9)))  # a re-added page: its new image, the old file gone
    assert images.find("p1") == replaced == images.root / digest_name("p1")
    assert Image.open(replaced).size == (9, 9)
    assert sorted(os.listdir(images.root)) == sorted([digest_name("p1"), "p2.png"])

    images.delete(["p1", "p2"])
    assert os.listdir(images.root) == []


def test_an_old_file_named_like_a_digest_is_not_another_ids_image(images: PageImageStore) -> None:
    """An id that was itself a hex digest named its file ``<hex>.png``: never taken for the id it digests."""
    images.root.mkdir(parents=True)
    other = hashlib.sha256(b"report.pdf#3").hexdigest()
    red().save(images.root / f"{other}.png")  # the image of page id ``other``, written before

    assert images.find("report.pdf#3") is None
    assert images.find(other) == images.root / f"{other}.png"


def test_a_link_at_a_digest_name_pointing_out_is_refused(images: PageImageStore, tmp_path: Path) -> None:
    outside = tmp_path / "secret.png"
    red().save(outside)
    images.root.mkdir(parents=True)
    (images.root / digest_name("../secret")).symlink_to(outside)

    assert images.find("../secret") is None
    images.save("../secret", red((5, 5)))  # replaces the link, never writes through it
    assert Image.open(outside).size == (4, 3)
    assert not (images.root / digest_name("../secret")).is_symlink()
