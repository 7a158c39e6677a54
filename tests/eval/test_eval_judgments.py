"""Judgment files: plain JSONL and the BEIR layout, and the errors that name the bad line."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pytest

from colpali_milvus.errors import InvalidInputError
from colpali_milvus.eval import Judgment, JudgmentError, PageRef, read_beir, read_judgments, read_query_vectors
from colpali_milvus.eval.judgments import check_query_vectors


def write_lines(path: Path, *lines: object) -> Path:
    path.write_text("".join((line if isinstance(line, str) else json.dumps(line)) + "\n" for line in lines))
    return path


def test_plain_jsonl(tmp_path: Path) -> None:
    path = write_lines(
        tmp_path / "judged.jsonl",
        {"id": "q1", "query": "revenue", "relevant": [{"source": "a.pdf", "page": 3}], "answer": "42"},
        "",  # blank lines are skipped
        {"query": "org chart", "relevant": [{"page_id": "abc-00002", "grade": 2}, {"source": "b.pdf", "page": 1}]},
        {
            "query_id": 7,
            "query": "graded",
            "relevant": [{"source": "a.pdf", "page": 1, "relevance": 0}, {"source": "a.pdf", "page": 2, "grade": 3.0}],
        },
    )

    first, second, third = read_judgments(path)

    assert first == Judgment("q1", "revenue", {PageRef.at("a.pdf", 3): 1})
    assert first.where == f"{path} line 1" and first.extra == {"answer": "42"}
    assert second.query_id == "line-3"  # no id: the line stands in
    assert second.relevant == {PageRef.by_id("abc-00002"): 2, PageRef.at("b.pdf", 1): 1}
    assert third.query_id == "7"
    assert third.relevant == {PageRef.at("a.pdf", 2): 3}  # grade 0: judged not relevant, left out


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ('{"query": "x", "relevant": [', "line 2: not valid JSON"),
        ("[1, 2]", "line 2: expected a JSON object"),
        ({"query": "", "relevant": [{"page_id": "p"}]}, "line 2: query 'line-2' has no text (an empty query)"),
        ({"query": "   ", "relevant": [{"page_id": "p"}]}, "line 2: query 'line-2' has no text"),
        ({"relevant": [{"page_id": "p"}]}, 'line 2: "query" must be the question\'s text, got None'),
        ({"query": "x", "relevant": []}, "line 2: query 'line-2' names no relevant page"),
        ({"query": "x", "relevant": [{"page_id": "p", "grade": 0}]}, "line 2: query 'line-2' names no relevant page"),
        ({"query": "x", "relevant": "a.pdf"}, 'line 2: "relevant" must be a list of pages'),
        ({"query": "x", "relevant": ["a.pdf"]}, "line 2: each relevant page must be an object"),
        ({"query": "x", "relevant": [{"source": "a.pdf"}]}, "line 2: a relevant page needs page_id, or both"),
        ({"query": "x", "relevant": [{"source": "a.pdf", "page": 0}]}, "line 2: page must be a positive integer"),
        ({"query": "x", "relevant": [{"source": "a.pdf", "page": "3"}]}, "line 2: page must be a positive integer"),
        ({"query": "x", "relevant": [{"source": "a.pdf", "pgae": 3}]}, "line 2: unknown keys ['pgae']"),
        ({"query": "x", "relevant": [{"page_id": "p", "source": "a.pdf"}]}, "line 2: give page_id, or source"),
        ({"query": "x", "relevant": [{"page_id": "p", "grade": -1}]}, "line 2: a grade must be a non-negative"),
        ({"query": "x", "relevant": [{"page_id": "p", "grade": 1.5}]}, "line 2: a grade must be a non-negative"),
        ({"id": "q1", "query": "x", "relevant": [{"page_id": "p"}]}, "line 2: query id 'q1' is used on"),
        ({"id": None, "query": "x", "relevant": [{"page_id": "p"}]}, "line 2: id must be a non-empty string"),
        ({"_id": "1", "text": "x"}, "line 2: this looks like a BEIR queries.jsonl"),
    ],
)
def test_a_bad_line_is_an_error_naming_it(tmp_path: Path, line: object, message: str) -> None:
    path = write_lines(tmp_path / "judged.jsonl", {"id": "q1", "query": "fine", "relevant": [{"page_id": "p"}]}, line)

    with pytest.raises(JudgmentError) as raised:
        read_judgments(path)

    assert str(raised.value).startswith(f"{path} {message}")
    assert raised.value.where == f"{path} line 2"
    assert isinstance(raised.value, InvalidInputError)


def test_an_empty_or_missing_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(JudgmentError, match="no judged queries in the file"):
        read_judgments(write_lines(tmp_path / "empty.jsonl", ""))
    with pytest.raises(JudgmentError, match="no such file or folder"):
        read_judgments(tmp_path / "missing.jsonl")
    (tmp_path / "latin1.jsonl").write_bytes(b'{"query": "caf\xe9"}\n')
    with pytest.raises(JudgmentError, match="not UTF-8 text"):
        read_judgments(tmp_path / "latin1.jsonl")


# -- BEIR ---------------------------------------------------------------------------------------


@pytest.fixture
def beir(tmp_path: Path) -> Path:
    """A BEIR folder as ViDoRe ships it, with a corpus.jsonl that names some pages by source and page."""
    root = tmp_path / "vidore"
    (root / "qrels").mkdir(parents=True)
    write_lines(
        root / "queries.jsonl",
        {"_id": "1", "text": "What is the revenue?"},
        {"_id": "2", "text": "Who signed?"},
        {"_id": "3", "text": "not judged in this split"},
        {"_id": "4", "text": "judged, but nothing relevant"},
    )
    write_lines(root / "corpus.jsonl", {"_id": "c10", "source": "report.pdf", "page": 2}, {"_id": "c11", "title": "x"})
    (root / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\n1\tc10\t1\n1\tc11\t2\n2\tc12\t1\n4\tc10\t0\n")
    return root


def test_beir_folder(beir: Path, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        judgments = read_judgments(beir)

    assert [(j.query_id, j.query) for j in judgments] == [("1", "What is the revenue?"), ("2", "Who signed?")]
    assert judgments[0].relevant == {PageRef.at("report.pdf", 2): 1, PageRef.by_field("corpus_id", "c11"): 2}
    assert judgments[1].relevant == {PageRef.by_field("corpus_id", "c12"): 1}
    assert judgments[0].where == f"{beir / 'queries.jsonl'} line 1"
    assert "query '4' has no relevant page" in caplog.text
    # corpus ids as page ids, and the qrels file named directly (TREC's four columns too)
    (beir / "qrels" / "dev.tsv").write_text("2 0 abc-00001 1\n".replace(" ", "\t"))
    (only,) = read_judgments(beir / "qrels" / "dev.tsv", corpus_field="page_id")
    assert only.relevant == {PageRef.by_id("abc-00001"): 1}


def test_beir_split_choice(beir: Path) -> None:
    (beir / "qrels" / "dev.tsv").write_text("2\tc12\t1\n")
    assert [j.query_id for j in read_beir(beir)] == ["1", "2"]  # several files: test
    assert [j.query_id for j in read_beir(beir, split="dev")] == ["2"]
    with pytest.raises(JudgmentError, match=r"no qrels/train\.tsv"):
        read_beir(beir, split="train")
    (beir / "qrels" / "test.tsv").unlink()
    (beir / "qrels" / "other.tsv").write_text("2\tc12\t1\n")
    with pytest.raises(JudgmentError, match=r"several qrels files \(dev, other\): pick one with split"):
        read_beir(beir)


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ("9\tc10\t1", "line 2: query id '9' is not in"),
        ("1\tc10\thigh", "line 2: the score must be a number, got 'high'"),
        ("1\tc10", "line 2: expected query-id<TAB>corpus-id<TAB>score"),
        ("1\tc10\t-1", "line 2: a grade must be a non-negative integer"),
    ],
)
def test_a_bad_qrels_line_is_an_error_naming_it(beir: Path, row: str, message: str) -> None:
    qrels = beir / "qrels" / "test.tsv"
    qrels.write_text(f"query-id\tcorpus-id\tscore\n{row}\n")

    with pytest.raises(JudgmentError, match=f"^{qrels} {message}"):
        read_judgments(beir)


def test_a_beir_folder_needs_its_queries_and_qrels(tmp_path: Path) -> None:
    with pytest.raises(JudgmentError, match=r"no queries\.jsonl"):
        read_beir(write_lines(tmp_path / "qrels.tsv", "").parent)
    (tmp_path / "queries.jsonl").write_text('{"_id": "1", "text": "q"}\n')
    with pytest.raises(JudgmentError, match=r"no qrels/\*.tsv"):
        read_beir(tmp_path)


# -- query vectors --------------------------------------------------------------------------------


def test_query_vectors_from_an_npz(tmp_path: Path) -> None:
    path = tmp_path / "q.npz"
    np.savez(path, q1=np.ones((3, 4), np.float16), q2=np.zeros((1, 4)))
    vectors = read_query_vectors(path)
    assert set(vectors) == {"q1", "q2"} and vectors["q1"].dtype == np.float32 and vectors["q1"].shape == (3, 4)

    np.savez(path, q1=np.ones(4))
    with pytest.raises(InvalidInputError, match=r"query 'q1' must be a non-empty \(n_tokens, dim\) array"):
        read_query_vectors(path)
    (tmp_path / "bad.npz").write_text("not a zip")
    with pytest.raises(InvalidInputError, match=r"not a readable \.npz"):
        read_query_vectors(tmp_path / "bad.npz")


def test_query_vectors_are_checked_against_the_judgments() -> None:
    judgments = [Judgment("q1", "a", {PageRef.by_id("p"): 1}), Judgment("q2", "b", {PageRef.by_id("p"): 1})]
    good = np.ones((2, 4), np.float32)

    assert len(check_query_vectors(judgments, {"q1": good, "q2": good, "extra": good}, 4)) == 2
    with pytest.raises(InvalidInputError, match="no query vectors for 1 judged queries: 'q2'"):
        check_query_vectors(judgments, {"q1": good}, 4)
    with pytest.raises(InvalidInputError, match="1 query vector arrays for 2 judged queries"):
        check_query_vectors(judgments, [good], 4)
    with pytest.raises(InvalidInputError, match=r"query 'q2': expected a non-empty \(n, 4\) array, got shape \(2, 3\)"):
        check_query_vectors(judgments, [good, np.ones((2, 3))], 4)
    with pytest.raises(InvalidInputError, match="query 'q1': vectors contain NaN"):
        check_query_vectors(judgments, [np.full((1, 4), np.nan), good], 4)
