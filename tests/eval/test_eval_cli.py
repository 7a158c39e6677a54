"""``colpali-milvus eval`` end to end: the colour embedder standing in for a checkpoint, and a tiny real one."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
from eval_data import unit_rows, write_jsonl

import colpali_milvus.embed.colpali as colpali_module
from colpali_milvus import ColPaliIndex, MilvusMultiVectorStore
from colpali_milvus.cli import main
from helpers import ColourEmbedder, PdfPage, write_pdf

LOADED = "fake model loaded"
ROOT = Path(__file__).resolve().parents[2]


class FakeColPaliEmbedder(ColourEmbedder):
    """ColPaliEmbedder's constructor over the colour embedder; says on stderr when a model 'loads'."""

    def __init__(self, model_name: str, **_: Any) -> None:
        super().__init__()
        self.model_name = model_name  # type: ignore[misc]
        self.pool_factor = None
        print(f"{LOADED}: {model_name}", file=sys.stderr)


@pytest.fixture(scope="module")
def colour_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """report.pdf (red, green, blue, yellow pages) indexed with the colour embedder into a Lite file."""
    folder = tmp_path_factory.mktemp("eval-cli")
    pdf = write_pdf(
        folder / "report.pdf",
        [PdfPage((1, 0, 0)), PdfPage((0, 1, 0)), PdfPage((0, 0, 1)), PdfPage((1, 1, 0))],
    )
    with MilvusMultiVectorStore(folder / "colpali.db", dim=16, model_name=ColourEmbedder.model_name) as store:
        ColPaliIndex(ColourEmbedder(), store, image_dir=folder / "images").add_pdf(pdf, dpi=36)
    return folder / "colpali.db"


@pytest.fixture
def fake_model(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(colpali_module, "ColPaliEmbedder", FakeColPaliEmbedder)


@pytest.fixture
def judged(tmp_path: Path) -> Path:
    return write_jsonl(
        tmp_path / "judged.jsonl",
        [
            {"id": "r", "query": "red", "relevant": [{"source": "report.pdf", "page": 1}]},
            {"id": "g", "query": "green", "relevant": [{"source": "report.pdf", "page": 2}]},
            {"id": "b", "query": "blue", "relevant": [{"source": "report.pdf", "page": 3, "grade": 2}]},
        ],
    )


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.mark.usefixtures("fake_model")
def test_eval_prints_a_table_with_a_progress_bar_and_json(
    colour_db: Path, judged: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run(capsys, "eval", str(judged), "--uri", str(colour_db), "--k", "1,3")

    assert code == 0, err
    assert f"{LOADED}: test/colour-embedder" in err  # the model the collection records
    assert "exhaustive MaxSim: 100%" in err and "default: 100%" in err  # a bar per stage
    lines = out.splitlines()
    assert lines[0].startswith("3 judged queries, 3 judged pages; collection 'colpali' (4 pages)")
    assert lines[2].split()[:2] == ["exhaustive", "MaxSim"]
    # each colour word finds its own page first: every metric is 1
    assert lines[3].split()[:11] == ["default", *["1.000"] * 10]

    code, out, err = run(
        capsys, "eval", str(judged), "--uri", str(colour_db), "--json", "--per-query", "--compare", "cache=true,false"
    )
    report = json.loads(out)
    assert code == 0 and "100%" not in err  # no bar with --json
    assert [run["name"] for run in report["runs"]] == ["exhaustive MaxSim", "cache=true", "cache=false"]
    for entry in report["runs"][1:]:
        assert entry["metrics"]["ndcg@10"] == entry["metrics"]["agreement@10"] == 1.0
        assert [q["query_id"] for q in entry["per_query"]] == ["r", "g", "b"]
        assert entry["inexact_scores"] == 0
    assert report["ks"] == [5, 10] and report["notes"]["query_vectors"] == "embedded"


def test_query_vectors_from_an_npz_load_no_model(
    colour_db: Path, judged: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    colours = ColourEmbedder()
    np.savez(tmp_path / "q.npz", **dict(zip("rgb", colours.embed_queries(["red", "green", "blue"]), strict=True)))

    code, out, err = run(
        capsys, "eval", str(judged), "--uri", str(colour_db), "--query-vectors", str(tmp_path / "q.npz"), "--json"
    )

    assert code == 0, err
    assert LOADED not in err
    assert json.loads(out)["runs"][1]["metrics"]["hit@1"] == 1.0


@pytest.mark.usefixtures("fake_model")
@pytest.mark.parametrize(
    ("line", "message"),
    [
        ('{"query": "red", "relevant": [{"source": "report.pdf", "page": 1}', "line 2: not valid JSON"),
        ({"query": " ", "relevant": [{"source": "report.pdf", "page": 1}]}, "line 2: query 'line-2' has no text"),
        (
            {"query": "red", "relevant": [{"source": "report.pdf", "page": 9}]},
            "line 2: no stored page 9 of 'report.pdf' (stored as ",
        ),
        (
            {"query": "red", "relevant": [{"source": "slides.pdf", "page": 1}]},
            "line 2: no stored source matches 'slides.pdf'",
        ),
    ],
)
def test_a_bad_judgment_file_fails_naming_the_line_before_any_model_loads(
    colour_db: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], line: object, message: str
) -> None:
    good = {"query": "red", "relevant": [{"source": "report.pdf", "page": 1}]}
    path = tmp_path / "bad.jsonl"
    path.write_text(json.dumps(good) + "\n" + (line if isinstance(line, str) else json.dumps(line)) + "\n")

    code, out, err = run(capsys, "eval", str(path), "--uri", str(colour_db))

    assert code == 1 and out == ""
    assert err.startswith(f"error: {path} {message}")
    assert LOADED not in err


@pytest.mark.usefixtures("fake_model")
def test_usage_errors(colour_db: Path, judged: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "eval", str(judged), "--uri", str(colour_db), "--compare", "rerank_dept=8")
    assert code == 1 and err.startswith("error: 'rerank_dept' is not an option of MilvusMultiVectorStore")
    code, _, err = run(capsys, "eval", str(judged), "--uri", str(tmp_path / "none.db"))
    assert code == 1 and err.strip() == f"error: no Milvus Lite database at {tmp_path / 'none.db'} " + (
        "(index something first, or pass --uri)"
    )
    assert not (tmp_path / "none.db").exists()
    for bad_k in ("0", "five"):
        with pytest.raises(SystemExit) as exited:
            main(["eval", str(judged), "--k", bad_k])
        assert exited.value.code == 2
    assert "takes positive integers like 5,10" in capsys.readouterr().err


@pytest.mark.usefixtures("fake_model")
def test_a_beir_folder(colour_db: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = tmp_path / "beir"
    (folder / "qrels").mkdir(parents=True)
    write_jsonl(folder / "queries.jsonl", [{"_id": "1", "text": "blue"}, {"_id": "2", "text": "yellow"}])
    write_jsonl(
        folder / "corpus.jsonl",
        [{"_id": "p3", "source": "report.pdf", "page": 3}, {"_id": "p4", "source": "report.pdf", "page": 4}],
    )
    (folder / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\n1\tp3\t1\n2\tp4\t1\n")

    code, out, err = run(capsys, "eval", str(folder), "--uri", str(colour_db), "--json", "--k", "1")

    assert code == 0, err
    assert json.loads(out)["runs"][1]["metrics"] == pytest.approx(
        {"ndcg@1": 1.0, "recall@1": 1.0, "mrr@1": 1.0, "hit@1": 1.0, "exact_recall@1": 1.0, "agreement@1": 1.0}
    )


# -- a real (tiny, random-weight) checkpoint ---------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_colpali(tmp_path_factory: pytest.TempPathFactory) -> Path:
    pytest.importorskip("colpali_engine", reason="the colpali extra is not installed")
    from models.tiny import build_colpali

    return build_colpali(tmp_path_factory.mktemp("tiny") / "colpali")


@pytest.mark.models
def test_eval_loads_the_collections_recorded_checkpoint(
    tiny_colpali: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    pdf = write_pdf(tmp_path / "deck.pdf", [PdfPage((1, 0, 0), ["Revenue table"]), PdfPage((0, 0, 1), ["Diagram"])])
    db = str(tmp_path / "tiny.db")
    assert run(capsys, "index", str(pdf), "--model", str(tiny_colpali), "--uri", db, "--no-progress")[0] == 0
    judged = write_jsonl(
        tmp_path / "judged.jsonl",
        [
            {"query": "revenue table", "relevant": [{"source": "deck.pdf", "page": 1}]},
            {"query": "a diagram", "relevant": [{"source": "deck.pdf", "page": 2}]},
        ],
    )

    code, out, err = run(capsys, "eval", str(judged), "--uri", db, "--k", "1,2", "--json")

    assert code == 0, err
    report = json.loads(out)
    assert report["model"] == str(tiny_colpali) and report["notes"]["query_vectors"] == "embedded"
    engine = report["runs"][1]
    # random weights rank at random, but the engine must agree with exact MaxSim on the same vectors
    assert engine["metrics"]["agreement@1"] == engine["metrics"]["agreement@2"] == 1.0
    assert engine["metrics"]["recall@2"] == 1.0  # two pages, both returned
    assert engine["inexact_scores"] == 0


def test_the_real_token_example_runs_on_a_small_stand_in_set(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """examples/eval_real_tokens.py end to end, with a few random pages in place of the cached manual."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("eval_real_tokens", ROOT / "examples" / "eval_real_tokens.py")
    assert spec is not None and spec.loader is not None
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)
    rng = np.random.default_rng(0)
    pages = [unit_rows(rng, 5, 384) for _ in range(6)]
    stand_in = SimpleNamespace(
        pages=pages,
        page_labels=[str(i) for i in range(1, 7)],
        queries=[pages[1][:2], pages[4][1:3]],
        terms=["first term", "second term"],
        relevant=[(1,), (4, 5)],
        meta={"index_pdf_pages": [7, 8], "model": "sentence-transformers/all-MiniLM-L6-v2"},
    )
    monkeypatch.setattr(example, "load_dataset", lambda: stand_in)
    monkeypatch.setattr(sys, "argv", ["eval_real_tokens.py", "--keep", str(tmp_path), "--", "--k", "1", "--json"])

    assert example.main() == 0

    report = json.loads(capsys.readouterr().out)
    assert report["queries"] == 2 and report["collection"] == "r_exts"
    assert report["runs"][1]["metrics"]["hit@1"] == 1.0  # each query is a piece of its judged page
    assert (tmp_path / "judged.jsonl").read_text().splitlines()[1] == json.dumps(
        {
            "id": "t1",
            "query": "second term",
            "relevant": [{"source": "R-exts.pdf", "page": 5}, {"source": "R-exts.pdf", "page": 6}],
        }
    )
