"""Issue 20: an unchanged re-run loads no model; source filters as people type them; --meta values
as typed; saved hits are never indexed; the search table shows page numbers and labels."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from cli_types import Run

from colpali_milvus import ColPaliIndex, MilvusMultiVectorStore
from colpali_milvus.index import WRITTEN_FILES_LIST, indexable_files, record_written_files
from helpers import ColourEmbedder, PdfPage, solid_image, write_pdf

LOADED = "fake model loaded"


@pytest.fixture
def docs(workdir: Path) -> Path:
    """docs/a.pdf (red, green), docs/q3/a.pdf (blue), docs/q3/b.pdf (yellow)."""
    folder = workdir / "docs"
    (folder / "q3").mkdir(parents=True)
    write_pdf(folder / "a.pdf", [PdfPage((1, 0, 0)), PdfPage((0, 1, 0))])
    write_pdf(folder / "q3" / "a.pdf", [PdfPage((0, 0, 1))])
    write_pdf(folder / "q3" / "b.pdf", [PdfPage((1, 1, 0))])
    return folder


def hits(fake_cli: Run, *args: str) -> list[dict[str, Any]]:
    done = fake_cli("search", "red green blue yellow", "-k", "20", "--json", *args)
    assert done.returncode == 0, done.stderr
    found: list[dict[str, Any]] = json.loads(done.stdout)
    return found


def sources(fake_cli: Run, workdir: Path, *args: str) -> list[str]:
    """The sources of the hits, relative to the working folder, one per page, sorted."""
    return sorted(Path(hit["source"]).resolve().relative_to(workdir).as_posix() for hit in hits(fake_cli, *args))


def test_an_unchanged_rerun_loads_no_model_and_says_what_it_skipped(fake_cli: Run, docs: Path) -> None:
    first = fake_cli("index", ".", "--no-progress", "--json")
    assert first.returncode == 0, first.stderr
    assert first.stderr.count(LOADED) == 1
    assert json.loads(first.stdout)["model_loaded"] is True

    again = fake_cli("index", ".", "--no-progress", "--json")
    assert again.returncode == 0, again.stderr
    assert LOADED not in again.stderr
    summary = json.loads(again.stdout)
    assert (summary["files"], summary["pages"], summary["new_pages"], summary["stored_already"]) == (3, 4, 0, 4)
    assert summary["model_loaded"] is False

    text = fake_cli("index", ".", "--no-progress", "--meta", "team=legal")  # a metadata update embeds nothing
    assert text.returncode == 0, text.stderr
    assert LOADED not in text.stderr
    assert "4 pages, 0 new, 4 stored already" in text.stdout
    assert "the model was not loaded" in text.stdout

    write_pdf(docs / "c.pdf", [PdfPage((1, 0, 1))])
    grown = fake_cli("index", ".", "--no-progress", "--json")
    assert grown.returncode == 0, grown.stderr
    assert grown.stderr.count(LOADED) == 1
    assert (json.loads(grown.stdout)["new_pages"], json.loads(grown.stdout)["stored_already"]) == (1, 4)


def test_source_filters_find_cli_indexed_pages_as_typed(fake_cli: Run, workdir: Path, docs: Path) -> None:
    assert fake_cli("index", "docs", "--no-progress").returncode == 0  # stores absolute paths
    every = ["docs/a.pdf", "docs/a.pdf", "docs/q3/a.pdf", "docs/q3/b.pdf"]
    assert sources(fake_cli, workdir) == every

    assert sources(fake_cli, workdir, "--filter", '{"source": "docs/a.pdf"}') == every[:2]  # as indexed from here
    assert sources(fake_cli, workdir, "--filter", '{"source": "a.pdf"}') == every[:3]  # every file named a.pdf
    assert sources(fake_cli, workdir, "--filter", '{"source": {"$in": ["a.pdf"]}}') == every[:3]  # --help's example
    assert sources(fake_cli, workdir, "--filter", '{"source": "q3/a.pdf"}') == every[2:3]
    assert sources(fake_cli, workdir, "--filter", '{"source": {"$ne": "a.pdf"}}') == every[3:]
    assert sources(fake_cli, workdir, "--source", str(docs / "q3" / "b.pdf")) == every[3:]  # as stored
    assert sources(fake_cli, workdir, "--source", "b.pdf", "--source", "docs/a.pdf") == [*every[:2], every[3]]
    assert sources(fake_cli, workdir, "--source", "a.pdf", "--filter", '{"page": 2}') == every[1:2]
    on_either = '{"$or": [{"source": "b.pdf"}, {"source": {"$eq": "q3/a.pdf"}}]}'
    assert sources(fake_cli, workdir, "--filter", on_either) == every[2:]

    missing = fake_cli("search", "red", "--source", "nowhere.pdf")
    assert missing.returncode == 0, missing.stderr
    assert "no pages found" in missing.stdout
    assert "no stored source matches 'nowhere.pdf'" in missing.stderr


def test_source_filters_find_api_indexed_pages_as_typed(
    fake_cli: Run, workdir: Path, docs: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(workdir)
    with MilvusMultiVectorStore("colpali.db", dim=16) as store:
        index = ColPaliIndex(ColourEmbedder(), store)
        index.add_pdf("docs/a.pdf", dpi=36)  # stored as given: a relative path
        index.add_pdf(docs / "q3" / "b.pdf", dpi=36)  # an absolute one
        index.add_images([solid_image("blue")], [{"source": "scan.png"}])  # a name of no file

    assert sources(fake_cli, workdir, "--filter", '{"source": "docs/a.pdf"}') == ["docs/a.pdf"] * 2
    assert sources(fake_cli, workdir, "--source", "a.pdf") == ["docs/a.pdf"] * 2
    assert sources(fake_cli, workdir, "--source", "docs/q3/b.pdf") == ["docs/q3/b.pdf"]
    assert [hit["source"] for hit in hits(fake_cli, "--source", "scan.png")] == ["scan.png"]


def test_meta_values_are_text_unless_json_writes_them_as_typed(fake_cli: Run, docs: Path) -> None:
    given = {
        "ver": ("1.10", "1.10"),
        "year": ("2024", 2024),
        "ratio": ("0.5", 0.5),
        "delta": ("-3", -3),
        "ok": ("true", True),
        "big": ("1e3", "1e3"),
        "zip": ("007", "007"),
        "code": ('"2024"', "2024"),
        "tags": ('["a", "b"]', ["a", "b"]),
        "odd": ("NaN", "NaN"),
        "padded": (" 5", " 5"),
    }
    options = [option for key, (text, _) in given.items() for option in ("--meta", f"{key}={text}")]
    done = fake_cli("index", "docs/q3/b.pdf", "--no-progress", *options)
    assert done.returncode == 0, done.stderr

    (hit,) = hits(fake_cli)
    assert {key: hit["metadata"][key] for key in given} == {key: value for key, (_, value) in given.items()}
    assert len(hits(fake_cli, "--filter", '{"ver": "1.10"}')) == 1
    help_text = fake_cli("index", "--help").stdout
    assert "ver=1.10" in help_text and "forces text" in help_text


def test_a_walk_leaves_out_the_hits_search_saved(fake_cli: Run, workdir: Path, docs: Path) -> None:
    assert fake_cli("index", ".", "--no-progress").returncode == 0
    for folder in ("hits", "docs"):  # a new folder, and one of the user's own documents
        saved = hits(fake_cli, "--save-images", folder)
        assert all((workdir / hit["saved_image"]).parent == workdir / folder for hit in saved)
    assert len(list((workdir / "hits").glob("*.png"))) == len(list(docs.glob("*.png"))) == 4

    again = fake_cli("index", ".", "--no-progress", "--json")

    assert again.returncode == 0, again.stderr
    summary = json.loads(again.stdout)
    assert (summary["files"], summary["pages"], summary["new_pages"]) == (3, 4, 0)
    assert LOADED not in again.stderr
    write_pdf(docs / "late.pdf", [PdfPage((0, 1, 1))])  # the user's files in that folder are still indexed
    assert json.loads(fake_cli("index", ".", "--no-progress", "--json").stdout)["new_pages"] == 1


def test_the_written_files_list(tmp_path: Path) -> None:
    for name in ("a.pdf", "hit.png", "maps/m.png", "maps/own.pdf"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b"")
    record_written_files(tmp_path, ["hit.png"])
    record_written_files(tmp_path / "maps", ["m.png", "m.png"])
    record_written_files(tmp_path / "maps", ["m.png"])

    found = indexable_files(tmp_path)

    assert [path.relative_to(tmp_path).as_posix() for path in found] == ["a.pdf", "maps/own.pdf"]
    assert (tmp_path / "maps" / WRITTEN_FILES_LIST).read_text().splitlines() == ["m.png"]


def test_the_search_table_shows_page_numbers_and_labels(fake_cli: Run, workdir: Path) -> None:
    write_pdf(workdir / "book.pdf", [PdfPage((1, 0, 0)), PdfPage((0, 0, 1))], roman_front_pages=1)
    assert fake_cli("index", "book.pdf", "--no-progress").returncode == 0

    done = fake_cli("search", "red", "-k", "2")

    assert done.returncode == 0, done.stderr
    header, *rows = (line.split() for line in done.stdout.splitlines())
    assert header == ["rank", "score", "source", "page", "label", "page", "id"]
    assert sorted((row[3], row[4]) for row in rows) == [("1", "i"), ("2", "1")]
    only = fake_cli("search", "red", "-k", "2", "--filter", '{"page": 1}').stdout.splitlines()[1].split()
    assert only[3:5] == ["1", "i"]  # the column a page filter matches
