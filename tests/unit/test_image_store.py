"""PageImageStore hands out only regular files inside its folder, and never fails a lookup."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from PIL import Image

import colpali_milvus.index
from colpali_milvus import DocumentError, PageHit
from colpali_milvus.collection import default_image_dir
from colpali_milvus.pages.image_store import PageImageStore

# Content-derived page ids (a file digest, a page number): their image files are named ``<id>.png``.
DOC, GONE, LOOP = ("d0c" + "0" * 29), ("90e" + "0" * 29), ("100b" + "0" * 28)


@pytest.fixture
def images(tmp_path: Path) -> PageImageStore:
    return PageImageStore(tmp_path / "pages")


@pytest.fixture
def outside_png(tmp_path: Path) -> Path:
    """A PNG outside the image folder: what a swapped-in link would leak."""
    path = tmp_path / "secret.png"
    Image.new("RGB", (3, 3), "white").save(path)
    return path


def test_a_saved_regular_file_is_found(images: PageImageStore) -> None:
    saved = images.save(f"{DOC}-00001", Image.new("RGB", (5, 4), "red"))

    found = images.find(f"{DOC}-00001")

    assert found == saved == images.root / f"{DOC}-00001.png"
    assert PageHit(page_id=f"{DOC}-00001", score=1.0, metadata={}, image_path=found).load_image().size == (5, 4)
    assert images.find(f"{DOC}-00002") is None  # never saved


def test_a_link_to_a_file_outside_the_folder_is_refused(
    images: PageImageStore, outside_png: Path, caplog: pytest.LogCaptureFixture
) -> None:
    images.save(f"{DOC}-00001", Image.new("RGB", (4, 4), "red"))
    (images.root / f"{DOC}-00001.png").unlink()
    (images.root / f"{DOC}-00001.png").symlink_to(outside_png)

    with caplog.at_level(logging.WARNING, logger="colpali_milvus.pages.image_store"):
        assert images.find(f"{DOC}-00001") is None
    assert "outside" in caplog.text


def test_a_relative_link_climbing_out_of_the_folder_is_refused(images: PageImageStore, outside_png: Path) -> None:
    images.root.mkdir(parents=True)
    (images.root / f"{DOC}-00001.png").symlink_to(Path("..") / outside_png.name)

    assert (images.root / f"{DOC}-00001.png").is_file()  # the link works; find still refuses it
    assert images.find(f"{DOC}-00001") is None


@pytest.mark.parametrize("where", ["inside", "outside"])
def test_a_link_to_a_folder_is_refused(images: PageImageStore, tmp_path: Path, where: str) -> None:
    folder = images.root / "sub" if where == "inside" else tmp_path / "elsewhere"
    folder.mkdir(parents=True)
    images.root.mkdir(parents=True, exist_ok=True)
    (images.root / f"{DOC}-00001.png").symlink_to(folder, target_is_directory=True)

    assert images.find(f"{DOC}-00001") is None


def test_a_folder_named_like_an_image_is_refused(images: PageImageStore) -> None:
    (images.root / f"{DOC}-00001.png").mkdir(parents=True)

    assert images.find(f"{DOC}-00001") is None


def test_dangling_and_looping_links_give_none(images: PageImageStore, tmp_path: Path) -> None:
    images.root.mkdir(parents=True)
    (images.root / f"{GONE}-00001.png").symlink_to(tmp_path / "missing.png")
    (images.root / f"{LOOP}-00001.png").symlink_to(images.root / f"{LOOP}-00001.png")

    assert images.find(f"{GONE}-00001") is None
    assert images.find(f"{LOOP}-00001") is None


def test_a_link_to_another_image_in_the_folder_is_followed(images: PageImageStore) -> None:
    original = images.save(f"{DOC}-00001", Image.new("RGB", (4, 4), "red"))
    (images.root / f"{DOC}-00002.png").symlink_to(original)

    assert images.find(f"{DOC}-00002") == original  # the resolved file, the one that was checked


@pytest.mark.parametrize("page_id", ["", " ", "\x00", "\ud800", "x" * 10_000, None, 7, "../secret", "a/b", "é"])
def test_find_of_an_invalid_or_unknown_id_gives_none(images: PageImageStore, page_id: Any) -> None:
    images.save(f"{DOC}-00001", Image.new("RGB", (4, 4), "red"))

    assert images.find(page_id) is None


def test_saving_over_a_link_replaces_the_link_not_its_target(images: PageImageStore, outside_png: Path) -> None:
    before = outside_png.read_bytes()
    images.root.mkdir(parents=True)
    (images.root / f"{DOC}-00001.png").symlink_to(outside_png)

    images.save(f"{DOC}-00001", Image.new("RGB", (6, 6), "blue"))

    assert outside_png.read_bytes() == before
    assert not (images.root / f"{DOC}-00001.png").is_symlink()
    assert images.find(f"{DOC}-00001") == images.root / f"{DOC}-00001.png"
    assert sorted(os.listdir(images.root)) == [f"{DOC}-00001.png"]  # no temp file left


def test_delete_removes_a_link_not_its_target_and_skips_invalid_ids(images: PageImageStore, outside_png: Path) -> None:
    images.root.mkdir(parents=True)
    (images.root / f"{DOC}-00001.png").symlink_to(outside_png)

    images.delete([f"{DOC}-00001", "../secret", "never-saved"])

    assert outside_png.exists()
    assert not (images.root / f"{DOC}-00001.png").is_symlink()


def test_a_hit_without_an_image_path_has_no_image() -> None:
    hit = PageHit(page_id=f"{DOC}-00001", score=1.0, metadata={"image_base64": "iVBORw0KGgo="})
    with pytest.raises(DocumentError):
        hit.image_bytes()
    with pytest.raises(DocumentError):
        hit.load_image()


def test_default_image_dir_sits_next_to_a_lite_file_or_in_the_user_data_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    lite = SimpleNamespace(is_lite=True, uri=str(tmp_path / "x.db"), collection_name="docs")
    assert default_image_dir(lite) == Path(f"{tmp_path / 'x.db'}.pages") / "docs"  # type: ignore[arg-type]

    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    server = SimpleNamespace(is_lite=False, uri="https://user:s3cret@milvus.internal:19530", collection_name="docs")
    other = SimpleNamespace(is_lite=False, uri="https://milvus.other:19530", collection_name="docs")
    folder = default_image_dir(server)  # type: ignore[arg-type]
    assert folder.parent.parent == tmp_path / "data" / "colpali-milvus"
    assert folder.name == "docs"
    assert "s3cret" not in str(folder) and "milvus.internal_19530" in str(folder)
    assert default_image_dir(other) != folder  # type: ignore[arg-type]


def test_default_image_dir_is_still_importable_from_the_index_module() -> None:
    assert colpali_milvus.index.default_image_dir is default_image_dir
