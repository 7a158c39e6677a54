"""The examples run end to end on a tiny local checkpoint (they take --model like a hub id)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from helpers import PdfPage, write_pdf

pytestmark = pytest.mark.models

EXAMPLES = Path(__file__).parents[2] / "examples"


@pytest.fixture(scope="module")
def demo_pdf(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("example")
    return write_pdf(folder / "demo.pdf", [PdfPage((1, 0, 0), ["Revenue table"]), PdfPage((0, 0, 1), ["Diagram"])])


def run_example(name: str, *args: str, cwd: Path) -> str:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TQDM_DISABLE": "1"}
    result = subprocess.run(
        [sys.executable, str(EXAMPLES / name), *args], capture_output=True, text=True, cwd=cwd, env=env, timeout=300
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


def test_quickstart(tiny_checkpoints: dict[str, Path], demo_pdf: Path, tmp_path: Path) -> None:
    out = run_example(
        "quickstart.py",
        "--pdf",
        str(demo_pdf),
        "--model",
        str(tiny_checkpoints["colqwen2"]),
        "--uri",
        str(tmp_path / "q.db"),
        cwd=tmp_path,
    )
    assert "indexed 2 pages" in out
    assert out.count("best page:") == 2


def test_langchain_rag(tiny_checkpoints: dict[str, Path], demo_pdf: Path, tmp_path: Path) -> None:
    out = run_example(
        "langchain_rag.py",
        "--pdf",
        str(demo_pdf),
        "--model",
        str(tiny_checkpoints["colpali-lora"]),
        "--uri",
        str(tmp_path / "l.db"),
        "--k",
        "2",
        cwd=tmp_path,
    )
    assert "I was shown 2 page image(s)" in out
    assert "demo.pdf, page 1" in out
    assert "demo.pdf, page 2" in out


def test_llama_index_query_engine(tiny_checkpoints: dict[str, Path], demo_pdf: Path, tmp_path: Path) -> None:
    out = run_example(
        "llama_index_query_engine.py",
        "--pdf",
        str(demo_pdf),
        "--model",
        str(tiny_checkpoints["colpali"]),
        "--uri",
        str(tmp_path / "e.db"),
        cwd=tmp_path,
    )
    assert "page image(s)" in out
    assert out.count("demo.pdf page") == 2
