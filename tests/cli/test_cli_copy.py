"""Issue 19, decision 5: ``colpali-milvus copy SRC_URI DST_URI`` moves a collection without re-embedding."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from cli_types import Run

from copy_corpus import DIM, MODEL, Corpus, corpus, open_pages, stored_vectors, what_a_copy_keeps, write_source
from helpers import unit_vectors

pytestmark = pytest.mark.slow  # subprocess CLI runs of 5-10 s each


@pytest.fixture
def data() -> Corpus:
    return corpus()


@pytest.fixture
def source(workdir: Path, data: Corpus) -> Path:
    """``source.db`` in the working folder, its images where the CLI looks by default."""
    uri = workdir / "source.db"
    with open_pages(str(uri), "colpali", Path(f"{uri}.pages") / "colpali", dim=DIM) as pages:
        write_source(pages, data)
    return uri


def test_copy_then_rerun_into_another_collection_and_the_default_image_folder(
    cli: Run, source: Path, workdir: Path, data: Corpus
) -> None:
    with open_pages(str(source), "colpali", Path(f"{source}.pages") / "colpali") as pages:
        before = what_a_copy_keeps(pages, data)

    done = cli("copy", "source.db", "target.db", "--target-collection", "moved", "--json", "--batch-size", "3")

    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert (summary["copied"], summary["skipped"], summary["failed"]) == (len(data.ids), 0, [])
    assert summary["pages_per_second"] > 0
    target = workdir / "target.db"
    with open_pages(str(target), "moved", Path(f"{target}.pages") / "moved", create=False) as pages:
        assert what_a_copy_keeps(pages, data) == before
        assert pages.store.model_name == MODEL
        rows = stored_vectors(pages)

    again = cli("copy", "source.db", "target.db", "--target-collection", "moved", "--no-progress")

    assert again.returncode == 0, again.stderr
    assert f"copied 0 pages from {source} (collection 'colpali') to {target} (collection 'moved')" in again.stdout
    assert f"({len(data.ids)} there already, 0 failed)" in again.stdout
    with open_pages(str(target), "moved", Path(f"{target}.pages") / "moved") as pages:
        assert (pages.count(), stored_vectors(pages)) == (len(data.ids), rows)


def test_a_page_that_cannot_be_copied_is_named_and_the_status_says_partly_done(
    cli: Run, source: Path, data: Corpus
) -> None:
    with open_pages(str(source), "colpali", Path(f"{source}.pages") / "colpali") as pages:
        broken = pages.images.find(data.ids[0])
    assert broken is not None
    broken.write_bytes(b"not an image")

    done = cli("copy", "source.db", "target.db", "--no-progress")

    assert done.returncode == 3, done.stderr
    assert f"not copied {data.ids[0]!r}: its image {broken} cannot be copied" in done.stderr
    assert f"warning: 1 of {len(data.ids)} pages were not copied" in done.stderr
    assert f"copied {len(data.ids) - 1} pages" in done.stdout


def test_a_target_of_another_dim_or_model_is_refused_before_any_write(cli: Run, source: Path, workdir: Path) -> None:
    for name, dim, model in (("wider", DIM + 1, MODEL), ("other", DIM, "another/model")):
        with open_pages(str(workdir / "target.db"), name, workdir / "images", dim=dim, model_name=model) as pages:
            pages.store.add([unit_vectors(np.random.default_rng(0), 3, dim)], ids=["theirs"])

        done = cli("copy", "source.db", "target.db", "--target-collection", name)

        assert done.returncode == 1
        assert done.stderr.startswith("error: ") and ("-d" if name == "wider" else "another/model") in done.stderr
        with open_pages(str(workdir / "target.db"), name, workdir / "images") as pages:
            assert pages.store.page_ids() == ["theirs"]


def test_a_missing_source_is_an_error_and_creates_nothing(cli: Run, workdir: Path) -> None:
    done = cli("copy", "missing.db", "target.db")

    assert done.returncode == 1
    assert "error: no Milvus Lite database at missing.db" in done.stderr
    assert not (workdir / "missing.db").exists() and not (workdir / "target.db").exists()
