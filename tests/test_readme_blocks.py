"""Every ```python block of README.md runs, offline.

The rules, which the README's authors write to:

* **Units.** A unit is the run of ``python`` blocks under one heading (``##`` or ``###``, whichever is
  nearest above). Blocks build on earlier blocks of the same unit: they run in order, in one
  namespace. Nothing carries from one heading to the next, so every unit is copy-pasteable on its own.
* **Where.** Each unit runs in a fresh temporary folder, which is the working directory, with
  ``HF_HUB_OFFLINE=1``. The folder holds what the README tells the reader to have: ``annual_report.pdf``
  (a real three-page PDF with a text layer) and, for a unit that names the folder ``models/colqwen2``,
  a tiny random-weight ColQwen2 checkpoint there (``tests/models/tiny.py``); such units are marked
  ``models``. Every other unit runs on bring-your-own vectors, in the fast tier.
* **Free names.** The README names two things the reader brings, "any chat model that reads images":
  ``vision_chat_model`` (LangChain) and ``multimodal_llm`` (LlamaIndex). The test supplies the
  examples' stand-ins for them, which report how many page images reached them; a unit that uses
  one must print a non-zero count.
* **Skips.** ``<!-- needs: weights -->`` or ``<!-- needs: server -->`` on the line just before a fence
  skips the block's whole unit. Keep such blocks few (``MAX_SKIPPED_BLOCKS``).
* Whatever store or index a unit leaves open is closed after it.
"""

from __future__ import annotations

import re
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from helpers import PdfPage, write_pdf

ROOT = Path(__file__).parents[1]
README = ROOT / "README.md"
MODEL_FOLDER = "models/colqwen2"
MAX_SKIPPED_BLOCKS = 2
STABLE_HEADINGS = ("## Quickstart", "## Scaling", "## Development and tests")

_HEADING = re.compile(r"^(#{2,3}) (.+)$")
_NEEDS = re.compile(r"^<!-- needs: (\w+) -->$")
_IMAGE_COUNT = re.compile(r"(?:shown|saw) ([0-9]+) page image")


@dataclass
class Block:
    line: int  # 1-based line of the opening fence
    code: str
    needs: str | None


@dataclass
class Unit:
    heading: str
    blocks: list[Block] = field(default_factory=list)

    @property
    def needs(self) -> str | None:
        return next((block.needs for block in self.blocks if block.needs), None)

    @property
    def source(self) -> str:
        return "\n".join(block.code for block in self.blocks)

    @property
    def uses_model(self) -> bool:
        return MODEL_FOLDER in self.source


def readme_units(text: str) -> list[Unit]:
    """The README's python blocks grouped by their nearest ``##``/``###`` heading (fences in other blocks ignored)."""
    units: list[Unit] = []
    heading = "(top)"
    lines = text.splitlines()
    fence: str | None = None  # the language of the open fence, "" for a bare one
    start = 0
    body: list[str] = []
    for number, line in enumerate(lines, start=1):
        stripped = line.strip()
        if fence is None:
            if match := _HEADING.match(line):
                heading = match.group(2).strip()
            elif stripped.startswith("```"):
                fence, start, body = stripped[3:].strip(), number, []
            continue
        if stripped == "```":
            if fence == "python":
                indent = len(lines[start - 1]) - len(lines[start - 1].lstrip())
                code = "\n".join(row[indent:] for row in body)
                needs = _NEEDS.match(lines[start - 2].strip()) if start >= 2 else None
                if not units or units[-1].heading != heading:
                    units.append(Unit(heading))
                units[-1].blocks.append(Block(start, code, needs.group(1) if needs else None))
            fence = None
        else:
            body.append(line)
    assert fence is None, f"README.md:{start}: unclosed code fence"
    return units


UNITS = readme_units(README.read_text(encoding="utf-8"))


def _params() -> list[Any]:
    params = []
    for unit in UNITS:
        marks = [pytest.mark.models] if unit.uses_model else []
        if unit.needs:
            marks.append(pytest.mark.skip(reason=f"README block needs {unit.needs}"))
        slug = re.sub(r"[^a-z0-9]+", "-", unit.heading.lower()).strip("-")
        params.append(pytest.param(unit, id=f"L{unit.blocks[0].line}-{slug}", marks=marks))
    return params


@pytest.fixture(scope="module")
def tiny_colqwen2(tmp_path_factory: pytest.TempPathFactory) -> Path:
    pytest.importorskip("colpali_engine", reason="the colpali extra is not installed")
    from models.tiny import build_colqwen2

    return build_colqwen2(tmp_path_factory.mktemp("readme-model") / "colqwen2")


def _stand_ins(source: str) -> dict[str, Any]:
    """The examples' stand-in chat models, for the free names a unit uses."""
    names: dict[str, Any] = {}
    if "vision_chat_model" not in source and "multimodal_llm" not in source:
        return names
    sys.path.insert(0, str(ROOT / "examples"))
    try:
        if "vision_chat_model" in source:
            from langchain_agent import ToolCallingStandIn
            from langchain_core.messages import AIMessage
            from langchain_core.outputs import ChatGeneration, ChatResult

            class VisionChatStandIn(ToolCallingStandIn):
                """Calls the bound tool once; without tools (a chain), says how many images it was shown."""

                def _generate(
                    self, messages: list[Any], stop: Any = None, run_manager: Any = None, **kwargs: Any
                ) -> Any:
                    if "tools" in kwargs:
                        return super()._generate(messages, stop, run_manager, **kwargs)
                    blocks = [block for message in messages for block in message.content if isinstance(block, dict)]
                    images = sum(block.get("type") == "image" for block in blocks)
                    reply = AIMessage(content=f"(stand-in model) I was shown {images} page image(s)")
                    return ChatResult(generations=[ChatGeneration(message=reply)])

            names["vision_chat_model"] = VisionChatStandIn()
        if "multimodal_llm" in source:
            from llama_index_query_engine import ImageCountingLLM

            names["multimodal_llm"] = ImageCountingLLM()
    finally:
        sys.path.remove(str(ROOT / "examples"))
    return names


@pytest.fixture
def readme_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A scratch working directory, offline, with the PDF the README's blocks index."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    if "huggingface_hub.constants" in sys.modules:  # it reads the variable once, on import
        monkeypatch.setattr(sys.modules["huggingface_hub.constants"], "HF_HUB_OFFLINE", True)
    monkeypatch.chdir(tmp_path)
    write_pdf(
        tmp_path / "annual_report.pdf",
        [
            PdfPage((1.0, 0.0, 0.0), ["Quarterly revenue table", "Q3 revenue 42"]),
            PdfPage((0.0, 0.0, 1.0), ["Revenue by region"]),
            PdfPage((0.0, 1.0, 0.0), ["Appendix"]),
        ],
    )
    return tmp_path


def _close_left_open(namespace: dict[str, Any]) -> None:
    from colpali_milvus import ColPaliIndex, MilvusMultiVectorStore

    for value in namespace.values():
        if isinstance(value, (ColPaliIndex, MilvusMultiVectorStore)):
            value.close()


@pytest.mark.parametrize("unit", _params())
def test_readme_python_blocks_run(
    unit: Unit, readme_folder: Path, request: pytest.FixtureRequest, capsys: pytest.CaptureFixture[str]
) -> None:
    if unit.uses_model:
        model = request.getfixturevalue("tiny_colqwen2")
        shutil.copytree(model, readme_folder / MODEL_FOLDER)
    stand_ins = _stand_ins(unit.source)
    namespace: dict[str, Any] = {"__name__": "__readme__", **stand_ins}
    try:
        for block in unit.blocks:
            exec(compile(block.code, f"README.md:{block.line}", "exec"), namespace)
    finally:
        _close_left_open(namespace)
    printed = capsys.readouterr().out
    if stand_ins:  # the pages reached the chat model
        counts = [int(count) for count in _IMAGE_COUNT.findall(printed)]
        assert counts, f"the stand-in chat model was never asked: {printed[-2000:]}"
        assert all(count > 0 for count in counts), printed[-2000:]


def test_the_readme_has_runnable_blocks_in_and_out_of_the_fast_tier() -> None:
    runnable = [unit for unit in UNITS if not unit.needs]
    assert any(not unit.uses_model for unit in runnable), "no README block runs without a model"
    assert any(unit.uses_model for unit in runnable), "no README block runs a model"
    skipped = [block for unit in UNITS for block in unit.blocks if block.needs]
    assert len(skipped) <= MAX_SKIPPED_BLOCKS, [f"README.md:{block.line}" for block in skipped]
    assert all(block.needs in {"weights", "server"} for block in skipped)


def test_stable_headings_are_kept() -> None:
    readme = README.read_text(encoding="utf-8").splitlines()
    for heading in STABLE_HEADINGS:
        assert heading in readme, heading
    assert "## Performance" in (ROOT / "docs" / "performance.md").read_text(encoding="utf-8").splitlines()


def test_the_block_reader_groups_by_heading_and_reads_markers() -> None:
    text = "\n".join(
        [
            "## A",
            "```python",
            "x = 1",
            "```",
            "```bash",
            "echo no",
            "```",
            "### B",
            "<!-- needs: server -->",
            "  ```python",
            "  y = 2",
            "  ```",
            "```python",
            "z = 3",
            "```",
        ]
    )
    units = readme_units(text)
    assert [unit.heading for unit in units] == ["A", "B"]
    assert [block.code for block in units[0].blocks] == ["x = 1"]
    assert [(block.line, block.code, block.needs) for block in units[1].blocks] == [
        (10, "y = 2", "server"),
        (13, "z = 3", None),
    ]
    assert units[1].needs == "server"
