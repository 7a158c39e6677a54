"""Issue 11, items 7 and 9: the model (and pool factor) come from the collection; a disagreeing one loads nothing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cli_types import Run

from colpali_milvus import MilvusMultiVectorStore
from colpali_milvus.embed.colpali import DEFAULT_MODEL
from helpers import PdfPage, write_pdf

pytestmark = pytest.mark.slow  # subprocess CLI runs of 6-12 s each

LOADED = "fake model loaded"


@pytest.fixture
def report(workdir: Path) -> Path:
    return write_pdf(workdir / "report.pdf", [PdfPage((1, 0, 0)), PdfPage((0, 1, 0))])


def test_search_loads_the_model_the_collection_records(fake_cli: Run, report: Path) -> None:
    assert fake_cli("index", "report.pdf", "--model", "acme/colpali-tuned", "--no-progress").returncode == 0

    done = fake_cli("search", "red", "-k", "1", "--json")

    assert done.returncode == 0, done.stderr
    assert f"{LOADED}: acme/colpali-tuned " in done.stderr
    assert Path(json.loads(done.stdout)[0]["source"]).name == "report.pdf"
    # `index` into the collection takes its model too.
    more = write_pdf(report.parent / "more.pdf", [PdfPage((0, 0, 1))])
    added = fake_cli("index", str(more), "--no-progress")
    assert added.returncode == 0 and f"{LOADED}: acme/colpali-tuned " in added.stderr


@pytest.mark.parametrize("how", ["option", "environment"])
def test_a_model_the_collection_does_not_record_is_refused_before_loading(
    fake_cli: Run, report: Path, how: str
) -> None:
    assert fake_cli("index", "report.pdf", "--model", "acme/colpali-tuned", "--no-progress").returncode == 0

    if how == "option":
        done = fake_cli("search", "red", "--model", "vidore/colpali-v1.3")
    else:
        done = fake_cli("search", "red", env={"COLPALI_MILVUS_MODEL": "vidore/colpali-v1.3"})

    assert done.returncode == 1
    assert LOADED not in done.stderr
    assert done.stderr.strip() == (
        "error: collection 'colpali' was built with model 'acme/colpali-tuned', not 'vidore/colpali-v1.3'; "
        "leave the model out to use the collection's, or use another collection"
    )


def test_a_collection_that_records_no_model_gets_the_default(fake_cli: Run, workdir: Path) -> None:
    with MilvusMultiVectorStore(workdir / "colpali.db", dim=16):
        pass

    done = fake_cli("search", "red")

    assert done.returncode == 0, done.stderr
    assert f"{LOADED}: {DEFAULT_MODEL} " in done.stderr
    assert done.stdout.strip() == "no pages found"


def test_a_pool_factor_the_collection_does_not_record_is_refused(fake_cli: Run, workdir: Path, report: Path) -> None:
    assert fake_cli("index", "report.pdf", "--no-progress").returncode == 0  # no pooling

    pooled = fake_cli("index", "report.pdf", "--pool-factor", "2")

    assert pooled.returncode == 1
    assert LOADED not in pooled.stderr
    assert "holds pages embedded with pool factor 1 (1: no pooling), not 2" in pooled.stderr
    with MilvusMultiVectorStore(workdir / "colpali.db", create=False) as store:
        assert store.pool_factor == 1


def test_a_pooled_collection_searches_with_its_pool_factor(fake_cli: Run, report: Path) -> None:
    assert fake_cli("index", "report.pdf", "--pool-factor", "3", "--no-progress").returncode == 0

    done = fake_cli("search", "red")
    assert done.returncode == 0, done.stderr
    assert "pool_factor=3 " in done.stderr


@pytest.mark.models
def test_search_without_model_on_a_real_checkpoint(
    cli: Run, report: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """The real console script and a tiny ColPali checkpoint: index names it, search finds it alone."""
    pytest.importorskip("colpali_engine", reason="the colpali extra is not installed")
    from models.tiny import build_colpali

    checkpoint = build_colpali(tmp_path_factory.mktemp("tiny") / "colpali")

    indexed = cli("index", "report.pdf", "--model", str(checkpoint), "--no-progress", "--device", "cpu")
    assert indexed.returncode == 0, indexed.stderr
    found = cli("search", "revenue table", "-k", "2", "--json")
    assert found.returncode == 0, found.stderr
    assert [Path(hit["source"]).name for hit in json.loads(found.stdout)] == ["report.pdf", "report.pdf"]
    info = json.loads(cli("info", "--json").stdout)
    assert (info["model_name"], info["pool_factor"]) == (str(checkpoint), 1)
