"""Judged pages to stored page ids: by source and page (exact, absolute, path tail), id or metadata value."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from colpali_milvus import MilvusMultiVectorStore
from colpali_milvus.eval import Judgment, JudgmentError, PageRef, resolve


@pytest.fixture(scope="module")
def paths(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MilvusMultiVectorStore]:
    """Pages stored under absolute sources, as `colpali-milvus index` stores them."""
    folder = tmp_path_factory.mktemp("resolve")
    pages = [
        ("/data/q3/report.pdf", 1),
        ("/data/q3/report.pdf", 2),
        ("/data/q3/report.pdf", 3),
        ("/data/q3/report.pdf", 7),
        ("/data/q4/report.pdf", 1),
        ("/data/memo.pdf", 1),
        (str(folder / "here.pdf"), 1),
    ]
    store = MilvusMultiVectorStore(folder / "paths.db", collection_name="paths", dim=2)
    store.add(
        [np.ones((1, 2), np.float32)] * len(pages),
        [{"source": source, "page": page, "corpus_id": 100 + i} for i, (source, page) in enumerate(pages)],
        ids=[f"id{i}" for i in range(len(pages))],
    )
    try:
        yield store
    finally:
        store.close()


def judged(*refs: PageRef, where: str = "j.jsonl line 1", query_id: str = "q") -> Judgment:
    return Judgment(query_id, "question", dict.fromkeys(refs, 1), where)


def test_sources_match_exactly_by_absolute_path_or_by_a_unique_tail(
    paths: MilvusMultiVectorStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(Path(paths.uri).parent)  # a relative path resolves against the working directory
    refs = [
        PageRef.at("/data/q3/report.pdf", 2),  # exact
        PageRef.at("q4/report.pdf", 1),  # the tail of one stored path
        PageRef.at("memo.pdf", 1),
        PageRef.at("here.pdf", 1),  # relative: its absolute path is stored
        PageRef.by_id("id3"),
        PageRef.by_field("corpus_id", 101),  # a metadata value, compared as text
        PageRef.by_field("page", 7),  # a typed column
    ]

    (resolved,) = resolve([judged(*refs)], paths)

    assert resolved.grades == {"id1": 1, "id4": 1, "id5": 1, "id6": 1, "id3": 1}
    assert resolved.query_id == "q"


@pytest.mark.parametrize(
    ("ref", "message"),
    [
        (
            PageRef.at("report.pdf", 1),
            "'report.pdf' matches 2 stored sources ('/data/q3/report.pdf', "
            "'/data/q4/report.pdf'); give more of the path",
        ),
        (
            PageRef.at("q3/report.pdf", 5),
            "no stored page 5 of 'q3/report.pdf' (stored as '/data/q3/report.pdf'), which has pages 1-3, 7",
        ),
        (
            PageRef.at("slides.pdf", 1),
            "no stored source matches 'slides.pdf' (collection 'paths' holds 4 sources, e.g. '/data/memo.pdf'",
        ),
        (PageRef.by_id("nope"), "no stored page with page id 'nope'"),
        (PageRef.by_field("corpus_id", "999"), "no stored page has corpus_id = '999'"),
    ],
)
def test_a_page_that_does_not_resolve_is_an_error_naming_the_line(
    paths: MilvusMultiVectorStore, ref: PageRef, message: str
) -> None:
    good = judged(PageRef.by_id("id0"), where="j.jsonl line 1", query_id="q1")
    bad = judged(ref, PageRef.by_id("id0"), where="j.jsonl line 2", query_id="q2")

    with pytest.raises(JudgmentError) as raised:
        resolve([good, bad], paths)

    assert str(raised.value).startswith(f"j.jsonl line 2: {message}")
    assert raised.value.where == "j.jsonl line 2"


def test_every_unknown_page_is_listed(paths: MilvusMultiVectorStore) -> None:
    judgments = [judged(PageRef.by_id(f"x{i}"), where=f"j.jsonl line {i + 1}", query_id=f"q{i}") for i in range(12)]

    with pytest.raises(JudgmentError) as raised:
        resolve(judgments, paths)

    lines = str(raised.value).splitlines()
    assert lines[0] == "12 judged pages do not resolve in collection 'paths':"
    assert lines[1] == "j.jsonl line 1: no stored page with page id 'x0'"
    assert lines[-1] == "... and 2 more"


def test_allow_unknown_leaves_out_pages_and_queries_it_cannot_find(
    paths: MilvusMultiVectorStore, caplog: pytest.LogCaptureFixture
) -> None:
    judgments = [
        judged(PageRef.by_id("id0"), PageRef.by_id("gone"), query_id="partly"),
        judged(PageRef.by_id("gone"), where="j.jsonl line 2", query_id="none"),
    ]
    with caplog.at_level(logging.WARNING):
        (resolved,) = resolve(judgments, paths, allow_unknown=True)

    assert (resolved.query_id, dict(resolved.grades)) == ("partly", {"id0": 1})
    assert "j.jsonl line 2: none of the pages of query 'none' is stored: left out" in caplog.text
    assert "2 judged pages are not in collection 'paths': left out" in caplog.text
    with pytest.raises(JudgmentError, match="matches 2 stored sources"):  # ambiguity is never skipped
        resolve([judged(PageRef.at("report.pdf", 1))], paths, allow_unknown=True)
    with pytest.raises(JudgmentError, match="no judged page is stored in collection 'paths'"):
        resolve([judged(PageRef.by_id("gone"))], paths, allow_unknown=True)
