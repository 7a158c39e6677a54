"""Issue 19, decision 5: copy_collection moves pages between stores without re-embedding.

Everything a page has arrives (typed columns, JSON metadata, text, vectors, image) and searches the
same; a re-run copies nothing; a copy killed mid-way finishes on the next run with nothing lost or
doubled; a target built with another model, dim or pool factor is refused before any write.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from colpali_milvus import IndexMismatchError, InvalidInputError, PageCollection, StoreError, copy_collection
from colpali_milvus.transfer import CopyReport
from copy_corpus import (
    DIM,
    MODEL,
    POOL_FACTOR,
    Corpus,
    answers,
    corpus,
    images,
    open_pages,
    stored_vectors,
    what_a_copy_keeps,
    write_source,
)
from helpers import unit_vectors
from targets import StoreTarget, store_target

SRC = Path(__file__).parents[2] / "src"
TESTS = Path(__file__).parents[1]


@pytest.fixture
def data() -> Corpus:
    return corpus()


@pytest.fixture
def source_uri(tmp_path: Path, data: Corpus) -> str:
    uri = str(tmp_path / "source.db")
    with open_pages(uri, "docs", tmp_path / "source-images", dim=DIM) as pages:
        write_source(pages, data)
    return uri


def copy(source_uri: str, target_uri: str, tmp_path: Path, **options: object) -> CopyReport:
    return copy_collection(
        source_uri,
        target_uri,
        collection="docs",
        image_dir=tmp_path / "source-images",
        target_image_dir=tmp_path / "target-images",
        **options,  # type: ignore[arg-type]
    )


def test_a_lite_to_lite_copy_searches_the_same_and_keeps_every_field_and_image(
    source_uri: str, tmp_path: Path, data: Corpus
) -> None:
    with open_pages(source_uri, "docs", tmp_path / "source-images") as pages:
        before = what_a_copy_keeps(pages, data)
    target_uri = str(tmp_path / "target.db")
    done: list[tuple[int, int]] = []

    report = copy(source_uri, target_uri, tmp_path, batch_size=3, progress=lambda *step: done.append(step))

    assert sorted(report.copied) == sorted(data.ids)
    assert (report.skipped, report.failed, report.complete) == ((), (), True)
    assert report.pages_per_second > 0
    assert done == [(3, 7), (6, 7), (7, 7)]
    with open_pages(target_uri, "docs", tmp_path / "target-images", create=False) as pages:
        assert what_a_copy_keeps(pages, data) == before
        assert before[1][data.ids[1]] is None  # the page without an image has none in the target either
        assert (pages.store.model_name, pages.store.dim, pages.store.pool_factor) == (MODEL, DIM, POOL_FACTOR)
        stored = pages.store.get_pages(data.ids)
        assert [stored[i].text for i in data.ids] == data.texts
        assert [stored[i].page_label for i in data.ids] == [m["page_label"] for m in data.metadatas]
        assert [stored[i].metadata["tags"] for i in data.ids] == [m["tags"] for m in data.metadatas]
        for page_id, vectors in zip(data.ids, data.vectors, strict=True):
            np.testing.assert_array_equal(pages.store.get_vectors([page_id])[page_id], vectors)


@pytest.fixture
def copied_uri(source_uri: str, tmp_path: Path) -> str:
    """A Lite file the source was copied into once."""
    target_uri = str(tmp_path / "target.db")
    copy(source_uri, target_uri, tmp_path)
    return target_uri


def test_a_rerun_copies_nothing_and_a_changed_page_is_copied_again(
    source_uri: str, copied_uri: str, tmp_path: Path, data: Corpus
) -> None:
    target_uri = copied_uri
    with open_pages(target_uri, "docs", tmp_path / "target-images") as pages:
        rows = stored_vectors(pages)

    again = copy(source_uri, target_uri, tmp_path)

    assert (again.copied, sorted(again.skipped), again.failed) == ((), sorted(data.ids), ())
    with open_pages(target_uri, "docs", tmp_path / "target-images") as pages:
        assert (pages.count(), stored_vectors(pages)) == (len(data.ids), rows)

    changed = unit_vectors(np.random.default_rng(9), 5, DIM)
    with open_pages(source_uri, "docs", tmp_path / "source-images") as pages:
        pages.store.add([changed], [data.metadatas[2]], ids=[data.ids[2]], texts=["rewritten"])
        before = answers(pages, data.queries())
    third = copy(source_uri, target_uri, tmp_path)
    assert (third.copied, len(third.skipped)) == ((data.ids[2],), len(data.ids) - 1)
    with open_pages(target_uri, "docs", tmp_path / "target-images") as pages:
        assert answers(pages, data.queries()) == before
        assert stored_vectors(pages) == rows - len(data.vectors[2]) + len(changed)

    with open_pages(source_uri, "docs", tmp_path / "source-images") as pages:  # new metadata, same vectors
        pages.store.add([data.vectors[4]], [{**data.metadatas[4], "team": "audit"}], ids=[data.ids[4]])
        before = answers(pages, data.queries())
    assert copy(source_uri, target_uri, tmp_path).copied == (data.ids[4],)
    with open_pages(target_uri, "docs", tmp_path / "target-images") as pages:
        assert answers(pages, data.queries()) == before
        assert pages.store.get_pages([data.ids[4]])[data.ids[4]].metadata["team"] == "audit"


def test_a_page_that_cannot_be_copied_is_named_and_the_rest_arrive(
    source_uri: str, tmp_path: Path, data: Corpus
) -> None:
    with open_pages(source_uri, "docs", tmp_path / "source-images") as pages:
        broken = pages.images.find(data.ids[3])
    assert broken is not None
    good = broken.read_bytes()
    broken.write_bytes(b"not a png")
    target_uri = str(tmp_path / "target.db")

    report = copy(source_uri, target_uri, tmp_path, batch_size=2)

    assert [failure.page_id for failure in report.failed] == [data.ids[3]]
    assert "image" in report.failed[0].reason and str(broken) in report.failed[0].reason
    assert sorted(report.copied) == sorted(set(data.ids) - {data.ids[3]})
    with open_pages(target_uri, "docs", tmp_path / "target-images") as pages:
        assert pages.store.existing_page_ids(data.ids) == set(report.copied)  # no page without its image

    broken.write_bytes(good)
    again = copy(source_uri, target_uri, tmp_path)
    assert (again.copied, len(again.skipped), again.failed) == ((data.ids[3],), len(data.ids) - 1, ())


def test_a_page_held_already_gets_its_image_when_the_target_lacks_it(
    source_uri: str, copied_uri: str, tmp_path: Path, data: Corpus
) -> None:
    target_uri = copied_uri
    with open_pages(target_uri, "docs", tmp_path / "target-images") as pages:
        pages.images.delete([data.ids[0]])

    report = copy(source_uri, target_uri, tmp_path)

    assert report.copied == ()
    with (
        open_pages(target_uri, "docs", tmp_path / "target-images") as target,
        open_pages(source_uri, "docs", tmp_path / "source-images") as source,
    ):
        assert images(target, data.ids) == images(source, data.ids)


@pytest.mark.parametrize(
    ("options", "model", "message"),
    [
        ({"dim": DIM}, "another/model", "model 'another/model'"),
        ({"dim": DIM + 1}, MODEL, f"{DIM + 1}-d"),
        ({"dim": DIM}, None, "pooled with factor 3"),  # same model, pooled with another factor
    ],
    ids=["model", "dim", "pool-factor"],
)
def test_a_target_built_otherwise_is_refused_before_any_write(
    source_uri: str, tmp_path: Path, options: dict[str, int], model: str | None, message: str
) -> None:
    target_uri = str(tmp_path / "target.db")
    with open_pages(target_uri, "docs", tmp_path / "target-images", **options) as pages:
        pages.store.claim_model(model or MODEL, pool_factor=POOL_FACTOR if model else POOL_FACTOR + 1)
        pages.store.add([unit_vectors(np.random.default_rng(3), 4, options["dim"])], ids=["theirs"])

    with pytest.raises(IndexMismatchError, match=message):
        copy(source_uri, target_uri, tmp_path)

    with open_pages(target_uri, "docs", tmp_path / "target-images") as pages:
        assert pages.store.page_ids() == ["theirs"]
        assert pages.store.model_name == (model or MODEL)
    assert not (tmp_path / "target-images").exists()


def test_the_source_itself_and_a_missing_source_are_refused(source_uri: str, tmp_path: Path) -> None:
    with pytest.raises(InvalidInputError, match="same collection"):
        copy(source_uri, source_uri, tmp_path)
    with pytest.raises(StoreError, match="no Milvus Lite database"):
        copy(str(tmp_path / "missing.db"), str(tmp_path / "target.db"), tmp_path)
    assert not (tmp_path / "missing.db").exists()


def test_a_copy_into_another_collection_of_the_same_file_and_from_open_collections(
    source_uri: str, tmp_path: Path, data: Corpus
) -> None:
    report = copy(source_uri, source_uri, tmp_path, target_collection="docs_copy")
    assert sorted(report.copied) == sorted(data.ids)

    with (
        open_pages(source_uri, "docs_copy", tmp_path / "target-images") as source,
        open_pages(str(tmp_path / "third.db"), "third", tmp_path / "third-images", dim=DIM) as target,
    ):
        again = copy_collection(source, target, batch_size=100)
        assert sorted(again.copied) == sorted(data.ids)
        assert images(target, data.ids) == images(source, data.ids)
        assert isinstance(source, PageCollection) and target.count() == len(data.ids)  # both left open


# -- killed mid-way ------------------------------------------------------------------------------

COPY = textwrap.dedent("""
    import os, signal, sys
    sys.path.insert(0, {src!r})
    import colpali_milvus.store.connection as connection
    from colpali_milvus import copy_collection

    kill_after = int(sys.argv[3])  # insert requests allowed before the process kills itself
    calls = 0
    original = connection.MilvusConnection.write_batch

    def insert_then_die(self, collection, batch, **kwargs):
        global calls
        if calls == kill_after:
            os.kill(os.getpid(), signal.SIGKILL)
        calls += 1
        original(self, collection, batch, **kwargs)

    connection.MilvusConnection.write_batch = insert_then_die
    copy_collection(sys.argv[1], sys.argv[2], collection="docs", image_dir=sys.argv[4], target_image_dir=sys.argv[5],
                    batch_size=2)
""").format(src=str(SRC))


# 4 batches of at most 2 pages, 2 insert requests each into a Lite target (packed rows, page rows):
# killed before the first, just before a batch's commit markers, right after them, and before the last batch.
@pytest.mark.slow  # four SIGKILLed subprocesses, ~20 s
@pytest.mark.parametrize("kill_after", [0, 1, 2, 7])
def test_a_copy_killed_mid_way_finishes_on_the_next_run_with_nothing_lost_or_doubled(
    source_uri: str, tmp_path: Path, data: Corpus, kill_after: int
) -> None:
    with open_pages(source_uri, "docs", tmp_path / "source-images") as pages:
        before = what_a_copy_keeps(pages, data)
        rows = stored_vectors(pages)
    script = tmp_path / "run_copy.py"  # not copy.py: it would shadow the standard library module
    script.write_text(COPY)
    target_uri = str(tmp_path / "target.db")
    folders = [str(tmp_path / "source-images"), str(tmp_path / "target-images")]
    command = [sys.executable, str(script), source_uri, target_uri, str(kill_after), *folders]

    killed = subprocess.run(command, capture_output=True, timeout=300, check=False)

    assert killed.returncode == -signal.SIGKILL, killed.stderr.decode()[-2000:]
    with open_pages(target_uri, "docs", tmp_path / "target-images") as pages:
        survivors = pages.store.page_ids()
        assert len(survivors) == 2 * (kill_after // 2)  # the batches whose commit markers were written
        for page_id in survivors:  # whole, with their images
            expected = data.vectors[data.ids.index(page_id)]
            np.testing.assert_array_equal(pages.store.get_vectors([page_id])[page_id], expected)
            assert images(pages, [page_id])[page_id] == before[1][page_id]

    report = copy(source_uri, target_uri, tmp_path)

    assert sorted(report.skipped) == sorted(survivors)
    assert sorted(report.copied) == sorted(set(data.ids) - set(survivors))
    with open_pages(target_uri, "docs", tmp_path / "target-images") as pages:
        assert what_a_copy_keeps(pages, data) == before
    with open_pages(target_uri, "docs", tmp_path / "target-images", cache=False) as pages:
        assert (pages.store.info().pages, stored_vectors(pages)) == (len(data.ids), rows)  # nothing twice


# -- a real server --------------------------------------------------------------------------------


@pytest.fixture
def server(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[StoreTarget]:
    yield from store_target("server", request, tmp_path)


@pytest.mark.server
def test_lite_to_a_server_and_back_searches_the_same(
    source_uri: str, server: StoreTarget, tmp_path: Path, data: Corpus
) -> None:
    with open_pages(source_uri, "docs", tmp_path / "source-images") as pages:
        before, images_before = what_a_copy_keeps(pages, data)
    collection = server.name("copied")

    there = copy(source_uri, server.uri, tmp_path, target_collection=collection, batch_size=3)
    assert sorted(there.copied) == sorted(data.ids)
    assert copy(source_uri, server.uri, tmp_path, target_collection=collection).copied == ()  # a re-run

    back_uri = str(tmp_path / "back.db")
    back = copy_collection(
        server.uri,
        back_uri,
        collection=collection,
        target_collection="docs",
        image_dir=tmp_path / "target-images",
        target_image_dir=tmp_path / "back-images",
    )
    assert sorted(back.copied) == sorted(data.ids)
    with open_pages(server.uri, collection, tmp_path / "target-images", cache=False) as pages:
        hits = answers(pages, data.queries())
        assert [[hit[0] for hit in query] for query in hits] == [[hit[0] for hit in query] for query in before]
        assert [[hit[2:] for hit in query] for query in hits] == [[hit[2:] for hit in query] for query in before]
        for query, expected in zip(hits, before, strict=True):
            assert [hit[1] for hit in query] == pytest.approx([hit[1] for hit in expected], abs=1e-4)
    with open_pages(back_uri, "docs", tmp_path / "back-images") as pages:
        assert what_a_copy_keeps(pages, data) == (before, images_before)
        assert (pages.store.model_name, pages.store.pool_factor) == (MODEL, POOL_FACTOR)
