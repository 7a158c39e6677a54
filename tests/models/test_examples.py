"""The examples run end to end on a tiny local checkpoint (they take --model like a hub id)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from fake_llm_server import fake_llm_server
from helpers import PdfPage, write_pdf

pytestmark = pytest.mark.models

EXAMPLES = Path(__file__).parents[2] / "examples"


@pytest.fixture(scope="module")
def demo_pdf(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("example")
    return write_pdf(folder / "demo.pdf", [PdfPage((1, 0, 0), ["Revenue table"]), PdfPage((0, 0, 1), ["Diagram"])])


def run_example(name: str, *args: str, cwd: Path) -> str:
    """Run an example; without ``--uri`` it works in a scratch folder, which must be gone when it exits."""
    scratch = cwd / "tmp"
    scratch.mkdir(exist_ok=True)
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TQDM_DISABLE": "1", "TMPDIR": str(scratch)}
    result = subprocess.run(
        [sys.executable, str(EXAMPLES / name), *args], capture_output=True, text=True, cwd=cwd, env=env, timeout=300
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert list(scratch.iterdir()) == []  # no temporary folder left behind
    return result.stdout


def test_quickstart(tiny_checkpoints: dict[str, Path], demo_pdf: Path, tmp_path: Path) -> None:
    out = run_example(
        "quickstart.py", "--pdf", str(demo_pdf), "--model", str(tiny_checkpoints["colqwen2"]), cwd=tmp_path
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
        "--k",
        "2",
        cwd=tmp_path,
    )
    assert "I was shown 2 page image(s)" in out
    assert "demo.pdf, page 1" in out
    assert "demo.pdf, page 2" in out


def test_langchain_agent(tiny_checkpoints: dict[str, Path], demo_pdf: Path, tmp_path: Path) -> None:
    out = run_example(
        "langchain_agent.py", "--pdf", str(demo_pdf), "--model", str(tiny_checkpoints["colqwen2"]), cwd=tmp_path
    )
    header, *lines = out.split("tool message (")[1].splitlines()
    assert int(header.split()[0]) < 1000  # the tool message is short text...
    assert lines[0].startswith("2 page(s) found for ")
    assert "demo.pdf, page 1" in out and "demo.pdf, page 2" in out
    assert "answer: (stand-in model) I was shown 2 page image(s)" in out  # ...and the model still sees the pages


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
    assert "(stand-in LLM) saw 2 page image(s)" in out  # both pages, in one call
    assert out.count("demo.pdf page") == 2


# -- the same recipes against real chat-model integrations, talking to a fake server on loopback ------


@pytest.mark.parametrize(
    ("example", "llm", "path"),
    [
        ("langchain_rag.py", "openai", "/v1/chat/completions"),
        ("langchain_rag.py", "ollama", "/api/chat"),
        ("llama_index_query_engine.py", "openai", "/v1/chat/completions"),
        ("llama_index_query_engine.py", "ollama", "/api/chat"),
        ("hybrid_text_image.py", "openai", "/v1/chat/completions"),
    ],
)
def test_recipes_send_page_images_to_a_real_chat_integration(
    tiny_checkpoints: dict[str, Path], demo_pdf: Path, tmp_path: Path, example: str, llm: str, path: str
) -> None:
    pytest.importorskip("langchain_openai" if "llama" not in example else "llama_index.llms.openai_like")
    with fake_llm_server() as (address, recorded):
        base_url = f"{address}/v1" if llm == "openai" else address
        out = run_example(
            example,
            "--pdf",
            str(demo_pdf),
            "--model",
            str(tiny_checkpoints["colqwen2"]),
            "--uri",
            str(tmp_path / "r.db"),
            "--llm",
            llm,
            "--llm-model",
            "vision-model",
            "--base-url",
            base_url,
            cwd=tmp_path,
        )
    assert len(recorded.requests) == 1  # every page in one request
    assert {request_path for request_path, _ in recorded.requests} == {path}
    assert {body["model"] for _, body in recorded.requests} == {"vision-model"}
    images = recorded.images()
    assert len(images) == 2 and all(image.format == "PNG" and image.width > 10 for image in images)
    assert "fake model answer" in out
    if example == "hybrid_text_image.py":  # the text layer travels with the image
        assert any("Revenue table" in text for text in recorded.texts())
