"""Issue 11, item 9: --meta on stored pages is applied, reserved keys are refused, copies are reported."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from cli_types import Renders, Run

from colpali_milvus import ColPaliIndex, InvalidInputError, MilvusMultiVectorStore
from colpali_milvus.pages import read_pdf
from helpers import ColourEmbedder, PdfPage, write_pdf

pytestmark = pytest.mark.slow  # subprocess CLI runs of 10-17 s each


@pytest.fixture
def report(workdir: Path) -> Path:
    return write_pdf(workdir / "report.pdf", [PdfPage((1, 0, 0)), PdfPage((0, 1, 0))])


def stored_pages(fake_cli: Run) -> list[dict[str, Any]]:
    done = fake_cli("search", "red green blue", "-k", "20", "--json")
    assert done.returncode == 0, done.stderr
    hits: list[dict[str, Any]] = json.loads(done.stdout)
    return sorted(hits, key=lambda hit: (hit["source"], hit["page"]))


def test_new_metadata_reaches_pages_stored_already_without_rendering(
    fake_cli: Run, report: Path, render_log: tuple[dict[str, str], Renders]
) -> None:
    env, renders = render_log
    assert fake_cli("index", "report.pdf", "--meta", "team=finance", "--no-progress", env=env).returncode == 0
    assert renders() == 2

    done = fake_cli("index", "report.pdf", "--meta", "year=2024", "--meta", "team=legal", "--no-progress", env=env)

    assert done.returncode == 0, done.stderr
    assert renders() == 2  # the stored vectors were kept: nothing rendered or embedded
    pages = stored_pages(fake_cli)
    assert [(hit["metadata"]["team"], hit["metadata"]["year"]) for hit in pages] == [("legal", 2024)] * 2
    # Without --meta, a re-run keeps what is stored.
    assert fake_cli("index", "report.pdf", "--no-progress", env=env).returncode == 0
    assert [hit["metadata"]["team"] for hit in stored_pages(fake_cli)] == ["legal", "legal"]
    assert renders() == 2


@pytest.mark.parametrize("key", ["page", "source", "page_label", "doc_id", "page_id"])
def test_reserved_metadata_keys_are_refused(cli: Run, report: Path, key: str) -> None:
    done = cli("index", "report.pdf", "--meta", f"{key}=7")
    assert done.returncode == 2
    assert f"argument --meta: {key!r} is reserved" in done.stderr
    assert not (report.parent / "colpali.db").exists()


def test_reserved_metadata_keys_are_refused_by_the_library(report: Path, lite_uri: str) -> None:
    with pytest.raises(InvalidInputError, match="'page' are reserved"):
        next(read_pdf(report, metadata={"page": 3}))
    with MilvusMultiVectorStore(lite_uri, dim=16) as store:
        index = ColPaliIndex(ColourEmbedder(), store)
        with pytest.raises(InvalidInputError, match="'doc_id', 'source' are reserved"):
            index.add_pdf(report, metadata={"source": "x", "doc_id": "y"})
        assert index.count() == 0


def test_a_copy_at_a_second_path_is_reported_and_delete_by_it_says_where_it_is(
    fake_cli: Run, cli: Run, workdir: Path, report: Path
) -> None:
    assert fake_cli("index", "report.pdf", "--no-progress").returncode == 0
    shutil.copyfile(report, workdir / "copy.pdf")

    copy = fake_cli("index", "copy.pdf", "--no-progress", "--json")
    assert copy.returncode == 1
    assert json.loads(copy.stdout)["skipped"] == [
        {
            "path": str(workdir / "copy.pdf"),
            "error": f"identical to {report}, already indexed under that path (not indexed again)",
        }
    ]
    both = fake_cli("index", ".", "--no-progress")
    assert both.returncode == 3
    assert f"skipped {workdir / 'copy.pdf'}: identical to {report}" in both.stderr
    assert {hit["source"] for hit in stored_pages(fake_cli)} == {str(report)}

    deleted = cli("delete", "copy.pdf")
    assert deleted.returncode == 1
    assert (
        f"no pages of copy.pdf: it is identical to {report}, whose pages are stored under that path "
        f"(delete {report} to remove them)"
    ) in deleted.stderr
    assert cli("delete", "report.pdf").returncode == 0


def test_a_moved_file_takes_its_new_path(
    fake_cli: Run, workdir: Path, report: Path, render_log: tuple[dict[str, str], Renders]
) -> None:
    env, renders = render_log
    assert fake_cli("index", "report.pdf", "--no-progress", env=env).returncode == 0
    moved = workdir / "archive" / "2024.pdf"
    moved.parent.mkdir()
    report.rename(moved)

    done = fake_cli("index", str(moved), "--no-progress", env=env)

    assert done.returncode == 0, done.stderr
    assert [hit["source"] for hit in stored_pages(fake_cli)] == [str(moved)] * 2
    assert renders() == 2
