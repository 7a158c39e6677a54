"""The benchmark scripts keep running (tiny sizes; the figures themselves come from running them by hand)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).parents[2] / "bench"


def test_retrieval_benchmark_runs_and_scores_exhaustive_as_exact(tmp_path: Path) -> None:
    out = tmp_path / "result.json"
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
        ],
        check=True,
        capture_output=True,
        text=True,
        timeout=600,
    )
    rows = {row["contender"]: row for row in json.loads(out.read_text())["rows"]}
    assert rows["numpy-exhaustive"]["recall_at_5"] == 1.0  # it *is* the reference ranking
    assert rows["colpali-milvus"]["recall_at_5"] == 1.0  # 12 pages < rerank depth: everything is rescored
    assert rows["colpali-milvus"]["queries"] == 4
