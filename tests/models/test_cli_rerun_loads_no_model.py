"""Issue 20, items 1 and 4, on a real (tiny) ColQwen2: ``index`` run again on an unchanged folder loads
no weights, also after ``search --save-images --explain`` wrote hits and maps into that folder."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

import colpali_milvus.embed.colpali as colpali_module
from colpali_milvus.cli import main
from helpers import PdfPage, write_pdf

pytestmark = pytest.mark.models


def test_an_unchanged_rerun_loads_no_weights(
    tiny_checkpoints: dict[str, Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    loads: list[str] = []

    class CountingEmbedder(colpali_module.ColPaliEmbedder):  # type: ignore[name-defined,misc]
        def __init__(self, model_name: str, **kwargs: Any) -> None:
            loads.append(model_name)
            super().__init__(model_name, **kwargs)

    monkeypatch.setattr(colpali_module, "ColPaliEmbedder", CountingEmbedder)
    monkeypatch.chdir(tmp_path)
    write_pdf(tmp_path / "report.pdf", [PdfPage((1, 0, 0), ["Revenue table"]), PdfPage((0, 0, 1), ["Diagram"])])

    def index() -> dict[str, Any]:
        assert main(["index", ".", "--no-progress", "--json", "--model", str(tiny_checkpoints["colqwen2"])]) == 0
        summary: dict[str, Any] = json.loads(capsys.readouterr().out)
        return summary

    assert (index()["new_pages"], len(loads)) == (2, 1)
    assert main(["search", "revenue", "-k", "2", "--save-images", "hits", "--explain", "maps", "--json"]) == 0
    saved = json.loads(capsys.readouterr().out)
    assert len(loads) == 2 and all(Path(hit["saved_image"]).is_file() for hit in saved)
    assert len(list(Path("maps").glob("*.png"))) == 2

    again = index()

    assert len(loads) == 2  # no weights loaded
    assert (again["files"], again["pages"], again["new_pages"], again["stored_already"]) == (1, 2, 0, 2)
    assert again["model_loaded"] is False
