"""Judgment files as people really hand them over: absurdly high grades, a byte order mark in front."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from eval_data import HAND_PAGES, MODEL, QUERIES, add_pages

from colpali_milvus import MilvusMultiVectorStore
from colpali_milvus.cli import main
from colpali_milvus.eval import Judgment, JudgmentError, PageRef, evaluate, read_judgments
from colpali_milvus.eval.metrics import dcg, ndcg_at_k

LOG2_3 = math.log2(3)
BOM = "\ufeff"


# -- grades whose gain 2**grade - 1 is past a float's range ---------------------------------------


@pytest.mark.parametrize("shift", [0, 1000, 2000, 10**6])
def test_ndcg_is_the_same_whatever_the_grades_are_shifted_by(shift: int) -> None:
    # ranking b, x, a; once the grades are large, the gains 2**(g + shift) - 1 are 1 : 2 (the -1 vanishes)
    grades = {"a": 2 + shift, "b": 1 + shift}
    value = ndcg_at_k(["b", "x", "a"], grades, 3)
    if shift == 0:
        assert value == pytest.approx(2.5 / (3 + 1 / LOG2_3))
    else:  # gains 2**(s+1) and 2**(s+2), up to a vanishing -1: ratio 1 : 2
        assert value == pytest.approx((1 + 2 / 2) / (2 + 1 / LOG2_3))
    assert 0.0 <= value <= 1.0


def test_a_grade_of_1024_and_more_gives_the_exact_ndcg() -> None:
    assert ndcg_at_k(["b", "a"], {"a": 1024, "b": 1}, 2) == pytest.approx(1 / LOG2_3)
    assert ndcg_at_k(["a", "b"], {"a": 10**400, "b": 3}, 2) == 1.0
    assert ndcg_at_k(["x"], {"a": 5000}, 1) == 0.0
    assert dcg([1023]) == 2.0**1023 - 1
    assert dcg([1024]) == math.inf  # past a float: said so, not raised


def test_evaluate_takes_grades_from_1024_up(hand: MilvusMultiVectorStore) -> None:
    # alpha ranks p1 (a.pdf 1), then p4 (b.pdf 1): gains 2**2047 - 1 and 2**2048 - 1, ratio 1 : 2
    judgments = [Judgment("alpha", "alpha", {PageRef.at("b.pdf", 1): 2048, PageRef.at("a.pdf", 1): 2047})]

    report = evaluate(hand, judgments, query_vectors={"alpha": QUERIES["alpha"]}, ks=(1, 2))

    for run in report.runs:
        assert run.metrics["ndcg@1"] == pytest.approx(0.5)
        assert run.metrics["ndcg@2"] == pytest.approx((0.5 + 1 / LOG2_3) / (1 + 0.5 / LOG2_3))


# -- a byte order mark in front of the file -------------------------------------------------------


def test_a_jsonl_file_with_a_byte_order_mark(tmp_path: Path) -> None:
    path = tmp_path / "judged.jsonl"
    record = {"id": "q1", "query": "revenue", "relevant": [{"source": "report.pdf", "page": 3}]}
    path.write_text(BOM + json.dumps(record) + "\n", encoding="utf-8")

    (judgment,) = read_judgments(path)

    assert (judgment.query_id, judgment.relevant) == ("q1", {PageRef.at("report.pdf", 3): 1})


def write_beir(root: Path, *, bom: str) -> Path:
    (root / "qrels").mkdir(parents=True)
    (root / "queries.jsonl").write_text(bom + json.dumps({"_id": "1", "text": "revenue"}) + "\n", encoding="utf-8")
    corpus = json.dumps({"_id": "c1", "source": "report.pdf", "page": 2})
    (root / "corpus.jsonl").write_text(bom + corpus + "\n", encoding="utf-8")
    (root / "qrels" / "test.tsv").write_text(bom + "query-id\tcorpus-id\tscore\n1\tc1\t2\n", encoding="utf-8")
    return root


def test_a_beir_folder_whose_every_file_has_a_byte_order_mark(tmp_path: Path) -> None:
    root = write_beir(tmp_path / "beir", bom=BOM)

    (judgment,) = read_judgments(root)
    (same,) = read_judgments(root / "qrels" / "test.tsv")

    assert (judgment.query_id, judgment.query) == ("1", "revenue")
    assert judgment.relevant == same.relevant == {PageRef.at("report.pdf", 2): 2}


def test_a_byte_order_mark_inside_a_line_is_still_an_error_naming_it(tmp_path: Path) -> None:
    root = write_beir(tmp_path / "beir", bom="")
    (root / "qrels" / "test.tsv").write_text(f"query-id\tcorpus-id\tscore\n1\tc1\t{BOM}2\n", encoding="utf-8")

    with pytest.raises(JudgmentError, match=r"test\.tsv line 2: the score must be a number"):
        read_judgments(root)


# -- the command line, end to end -----------------------------------------------------------------


@pytest.fixture(scope="module")
def hand_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A Milvus Lite file with the hand-made collection of eval_data.py, closed for the CLI to open."""
    path = tmp_path_factory.mktemp("hostile") / "hand.db"
    with MilvusMultiVectorStore(str(path), collection_name="hand", dim=4, model_name=MODEL) as store:
        add_pages(store, HAND_PAGES)
    return path


def test_the_cli_reads_a_bom_file_with_grades_past_1024(
    hand_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    judged = tmp_path / "judged.jsonl"
    record = {"id": "alpha", "query": "alpha", "relevant": [{"page_id": "p4", "grade": 1100}, {"page_id": "p1"}]}
    judged.write_text(BOM + json.dumps(record) + "\n", encoding="utf-8")
    np.savez(tmp_path / "q.npz", alpha=QUERIES["alpha"])
    args = ["eval", str(judged), "--uri", str(hand_file), "--collection", "hand", "--k", "2"]

    code = main([*args, "--query-vectors", str(tmp_path / "q.npz"), "--json", "--no-progress"])
    captured = capsys.readouterr()

    assert code == 0, captured.err
    # p1 (gain 1, negligible next to 2**1100 - 1) first, then p4: nDCG@2 = (1 / log2(3)) / 1
    for run in json.loads(captured.out)["runs"]:
        assert run["metrics"]["ndcg@2"] == pytest.approx(1 / LOG2_3, abs=1e-4)
