"""Issue 11, items 5 and 6: a folder walk never indexes the index; a re-run renders nothing it has."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cli_types import Renders, Run

from colpali_milvus import MilvusMultiVectorStore
from colpali_milvus.index import indexable_files, skips_folder
from colpali_milvus.pages.images import open_image
from colpali_milvus.pages.pdf import open_pdf, read_pdf
from helpers import PdfPage, solid_image, write_pdf

pytestmark = pytest.mark.slow  # subprocess CLI runs of 7-11 s each


def test_indexing_the_folder_that_holds_the_database_twice_indexes_each_page_once(fake_cli: Run, workdir: Path) -> None:
    write_pdf(workdir / "report.pdf", [PdfPage((1, 0, 0)), PdfPage((0, 1, 0))])
    solid_image("blue").save(workdir / "scan.png")
    (workdir / ".git").mkdir()
    write_pdf(workdir / ".git" / "hidden.pdf", [PdfPage((0, 0, 1))])

    first = fake_cli("index", ".", "--no-progress", "--json")
    assert first.returncode == 0, first.stderr
    assert (workdir / "colpali.db.pages").is_dir() and (workdir / "colpali.db").is_dir()
    second = fake_cli("index", ".", "--no-progress", "--json")

    assert second.returncode == 0, second.stderr
    assert json.loads(first.stdout)["pages"] == json.loads(second.stdout)["pages"] == 3
    assert json.loads(second.stdout)["new_pages"] == 0
    hits = json.loads(fake_cli("search", "blue red green", "-k", "10", "--json").stdout)
    assert sorted(Path(hit["source"]).name for hit in hits) == ["report.pdf", "report.pdf", "scan.png"]
    assert len({hit["page_id"] for hit in hits}) == len(hits) == 3


def test_a_custom_image_folder_inside_the_walked_folder_is_not_indexed(fake_cli: Run, workdir: Path) -> None:
    write_pdf(workdir / "report.pdf", [PdfPage((1, 0, 0))])
    for _ in range(2):
        done = fake_cli("index", ".", "--image-dir", "page-images", "--uri", "store/x.db", "--no-progress", "--json")
        assert done.returncode == 0, done.stderr
        assert json.loads(done.stdout)["files"] == 1
    assert len(list((workdir / "page-images").glob("*.png"))) == 1


def test_the_one_walk_rule(tmp_path: Path) -> None:
    for name in ("a.pdf", "b.PNG", "notes.txt", ".hidden.pdf", "sub/c.pdf", "x.db/d.pdf", "x.db.pages/e.png"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b"")
    for name in ("y.db.cache/f.pdf", ".venv/g.pdf", "own-images/h.png"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b"")

    found = indexable_files(tmp_path, exclude=[tmp_path / "own-images"])

    assert [path.relative_to(tmp_path).as_posix() for path in found] == ["a.pdf", "b.PNG", "sub/c.pdf"]
    assert [p.name for p in indexable_files(tmp_path, recursive=False)] == ["a.pdf", "b.PNG"]
    assert skips_folder("colpali.db") and skips_folder("Colpali.DB.pages") and skips_folder(".git")
    assert not skips_folder("database") and not skips_folder("reports.dbx")


def test_a_rerun_renders_no_page_it_has_stored(
    fake_cli: Run, workdir: Path, render_log: tuple[dict[str, str], Renders]
) -> None:
    env, renders = render_log
    write_pdf(workdir / "report.pdf", [PdfPage((1, 0, 0)), PdfPage((0, 1, 0)), PdfPage((0, 0, 1))])

    first = fake_cli("index", "report.pdf", "--no-progress", env=env)
    assert first.returncode == 0, first.stderr
    assert renders() == 3

    again = fake_cli("index", "report.pdf", "--no-progress", env=env)
    assert again.returncode == 0, again.stderr
    assert "3 pages, 0 new" in again.stdout
    assert renders() == 3  # nothing rendered the second time

    # An interrupted run (a page missing) renders only what is missing.
    with MilvusMultiVectorStore(workdir / "colpali.db", create=False) as store:
        (victim,) = store.delete(filter={"page": 2})
    resumed = fake_cli("index", "report.pdf", "--no-progress", env=env)
    assert resumed.returncode == 0, resumed.stderr
    assert "3 pages, 1 new" in resumed.stdout
    assert renders() == 4
    assert victim.endswith("-00002")


def test_page_ids_are_known_before_rendering(workdir: Path) -> None:
    pdf = write_pdf(workdir / "report.pdf", [PdfPage((1, 0, 0)), PdfPage((0, 1, 0))])
    solid_image("red").save(workdir / "scan.png")

    document = open_pdf(pdf, dpi=36)
    assert document.page_ids() == [page.page_id for page in read_pdf(pdf, dpi=36)]
    assert [page.page for page in document.pages([2])] == [2]
    image = open_image(workdir / "scan.png")
    assert image.page_ids() == [page.page_id for page in image.pages()]
