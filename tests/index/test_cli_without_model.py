"""The CLI's info and delete open a PageCollection (no model) and remove rows and images together."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from colpali_milvus import ColPaliIndex, MilvusMultiVectorStore
from colpali_milvus.cli import main
from helpers import ColourEmbedder, PdfPage, write_pdf


@pytest.fixture
def indexed_db(tmp_path: Path, colour_pdf: Path) -> tuple[str, Path, Path]:
    """A Lite file holding colour_pdf (4 pages) and memo.pdf (1 page), images in their own folder."""
    uri, images = str(tmp_path / "cli.db"), tmp_path / "images"
    memo = write_pdf(tmp_path / "memo.pdf", [PdfPage((0, 1, 0), ["Memo"])])
    with MilvusMultiVectorStore(uri, collection_name="colpali", dim=16) as store:
        index = ColPaliIndex(ColourEmbedder(), store, image_dir=images)
        index.add_pdf(colour_pdf, dpi=36)
        index.add_pdf(memo, dpi=36)
    return uri, images, memo


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    code = main(list(args))
    return code, capsys.readouterr().out


def test_info_and_delete_use_the_collection_and_its_images(
    indexed_db: tuple[str, Path, Path], colour_pdf: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    uri, images, memo = indexed_db
    where = ["--uri", uri, "--image-dir", str(images)]

    code, out = run(capsys, "info", "--json", *where)
    info = json.loads(out)
    assert code == 0
    assert (info["pages"], info["model_name"], info["image_dir"]) == (5, "test/colour-embedder", str(images))

    code, out = run(capsys, "delete", str(colour_pdf), "--json", *where)
    assert (code, json.loads(out)) == (0, {str(colour_pdf): 4})
    assert len(list(images.glob("*.png"))) == 1

    relative = os.path.relpath(memo)  # the path as typed: resolved against the working directory
    code, out = run(capsys, "delete", relative, *where)
    assert (code, out.strip()) == (0, f"deleted 1 pages of {relative}")
    assert not list(images.glob("*.png"))
    assert json.loads(run(capsys, "info", "--json", *where)[1])["pages"] == 0


def test_delete_says_when_a_source_has_no_pages(
    indexed_db: tuple[str, Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    uri, images, memo = indexed_db
    where = ["--uri", uri, "--image-dir", str(images)]
    copy = tmp_path / "copy-of-memo.pdf"
    copy.write_bytes(memo.read_bytes())

    code = main(["delete", str(tmp_path / "typo.pdf"), *where])
    captured = capsys.readouterr()
    assert (code, captured.out) == (1, "")
    assert f"no pages of {tmp_path / 'typo.pdf'} in collection 'colpali'" in captured.err

    code = main(["delete", str(copy), str(memo), "--json", *where])
    captured = capsys.readouterr()
    assert code == 3  # partly done
    assert json.loads(captured.out) == {str(copy): 0, str(memo): 1}
    assert f"no pages of {copy}: it is identical to {memo}" in captured.err
