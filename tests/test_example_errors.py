"""The examples end a missing model in one clear line, not a traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).parents[1] / "examples"


@pytest.mark.parametrize("example", ["quickstart.py", "langchain_rag.py", "llama_index_query_engine.py"])
def test_an_unloadable_model_ends_an_example_in_one_line(example: str, tmp_path: Path) -> None:
    pdf = tmp_path / "x.pdf"
    pdf.write_bytes(b"%PDF-1.4\n")
    result = subprocess.run(
        [sys.executable, str(EXAMPLES / example), "--pdf", str(pdf), "--model", str(tmp_path / "no-such-model")],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
        timeout=300,
    )
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"{example}: "), result.stderr
    assert "no-such-model" in lines[0]
