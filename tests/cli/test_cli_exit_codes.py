"""Issue 11, item 8: a non-zero exit status whenever the request was not carried out, and no traceback."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cli_types import Run

from colpali_milvus import MilvusMultiVectorStore, StoreError
from helpers import PdfPage, write_pdf

LOADED = "fake model loaded"


@pytest.fixture
def report(workdir: Path) -> Path:
    return write_pdf(workdir / "report.pdf", [PdfPage((1, 0, 0)), PdfPage((0, 1, 0))])


def test_mistyped_paths_fail_before_any_model_loads(fake_cli: Run, workdir: Path, report: Path) -> None:
    for typo in ("reprot.pdf", "reports/"):
        done = fake_cli("index", str(report), typo)
        assert done.returncode == 1
        assert done.stderr.strip() == f"error: {typo}: no such file or folder"
        assert LOADED not in done.stderr
    (workdir / "empty").mkdir()
    done = fake_cli("index", "empty")
    assert (done.returncode, done.stderr.strip()) == (1, "error: nothing to index: no PDFs or images in empty")
    assert not (workdir / "colpali.db").exists()


def test_every_file_skipped_is_a_failure(fake_cli: Run, workdir: Path, report: Path, tmp_path: Path) -> None:
    no_poppler = tmp_path / "empty-bin"
    no_poppler.mkdir()
    write_pdf(workdir / "memo.pdf", [PdfPage((0, 0, 1))])

    done = fake_cli("index", ".", "--no-progress", env={"PATH": str(no_poppler)})

    assert done.returncode == 1
    assert "indexed 0 files" in done.stdout
    skipped = [line for line in done.stderr.splitlines() if line.startswith("skipped ")]
    assert len(skipped) == 2 and all("poppler" in line for line in skipped)
    assert done.stderr.rstrip().endswith("error: no file was indexed (2 skipped)")
    assert "Traceback" not in done.stderr


def test_some_files_skipped_is_exit_status_3(fake_cli: Run, workdir: Path, report: Path) -> None:
    (workdir / "broken.pdf").write_bytes(b"%PDF-1.4 not really")

    done = fake_cli("index", ".", "--no-progress", "--json")

    assert done.returncode == 3, done.stderr
    summary = json.loads(done.stdout)
    assert (summary["files"], summary["pages"]) == (1, 2)
    assert f"skipped {workdir / 'broken.pdf'}: " in done.stderr
    assert "warning: 1 of 2 files were skipped" in done.stderr
    again = fake_cli("index", "report.pdf", "--no-progress")
    assert again.returncode == 0 and again.stderr.count("\n") <= 1  # just the fake model's line


def test_delete_of_sources_without_pages(fake_cli: Run, cli: Run, workdir: Path, report: Path) -> None:
    assert fake_cli("index", "report.pdf", "--no-progress").returncode == 0

    unknown = cli("delete", "reprot.pdf")
    assert unknown.returncode == 1
    assert unknown.stdout == ""
    assert "no pages of reprot.pdf in collection 'colpali'" in unknown.stderr
    assert "error: nothing was deleted" in unknown.stderr

    partly = cli("delete", "report.pdf", "reprot.pdf")
    assert partly.returncode == 3
    assert partly.stdout.strip() == "deleted 2 pages of report.pdf"
    assert "no pages of reprot.pdf" in partly.stderr


def test_search_with_a_mistyped_uri_or_collection_creates_nothing(
    fake_cli: Run, cli: Run, workdir: Path, report: Path
) -> None:
    typo = cli("search", "revenue", "--uri", "colpaly.db")
    assert typo.returncode == 1
    assert typo.stderr.strip() == "error: no Milvus Lite database at colpaly.db (index something first, or pass --uri)"
    assert sorted(path.name for path in workdir.iterdir()) == ["report.pdf"]

    assert fake_cli("index", "report.pdf", "--no-progress").returncode == 0
    other = fake_cli("search", "revenue", "--collection", "colpalli")
    assert other.returncode == 1
    assert "no collection 'colpalli'" in other.stderr and LOADED not in other.stderr
    with pytest.raises(StoreError, match="no collection"):
        MilvusMultiVectorStore(workdir / "colpali.db", collection_name="colpalli", create=False)


def test_an_unknown_device_is_a_clean_error(cli: Run, fake_cli: Run, report: Path) -> None:
    pytest.importorskip("torch")
    assert fake_cli("index", "report.pdf", "--no-progress").returncode == 0
    for command in (("search", "revenue"), ("index", "report.pdf")):
        done = cli(*command, "--device", "gpu")
        assert done.returncode == 1
        assert done.stderr.strip() == "error: --device 'gpu' is not a device torch knows (e.g. cpu, cuda, cuda:1, mps)"
