"""Similarity maps and the command line, on tiny random-weight checkpoints."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from colpali_milvus import ColPaliEmbedder, ColPaliIndex, MilvusMultiVectorStore
from colpali_milvus.cli import main
from helpers import PdfPage, write_pdf

pytestmark = pytest.mark.models


@pytest.fixture(scope="module")
def pdfs(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    folder = tmp_path_factory.mktemp("cli-pdfs")
    (folder / "sub").mkdir()
    report = write_pdf(folder / "report.pdf", [PdfPage((1, 0, 0), ["Revenue table"]), PdfPage((0, 0, 1), ["Diagram"])])
    memo = write_pdf(folder / "sub" / "memo.pdf", [PdfPage((0, 1, 0), ["Memo"])])
    (folder / "broken.pdf").write_bytes(b"%PDF-1.4 not really")
    return [report, memo, folder / "broken.pdf"]


@pytest.mark.parametrize("name", ["colpali", "colqwen2"])
def test_similarity_maps_lay_the_pages_own_patch_vectors_on_its_grid(
    tiny_checkpoints: dict[str, Path], pdfs: list[Path], tmp_path: Path, name: str
) -> None:
    embedder = ColPaliEmbedder(str(tiny_checkpoints[name]), show_progress=False)
    with MilvusMultiVectorStore(tmp_path / "x.db", dim=embedder.dim) as store:
        index = ColPaliIndex(embedder, store, image_dir=tmp_path / "pages")
        index.add_pdf(pdfs[0], dpi=36)
        hit = index.search("revenue table", k=1)[0]
        similarity = index.explain("revenue table", hit)
        page_vectors = store.get_vectors([hit.page_id])[hit.page_id]  # (n_vectors, dim), as stored
    query = embedder.embed_queries(["revenue table"])[0]  # (n_tokens, dim)

    image = hit.load_image()
    rows, cols = similarity.grid
    assert similarity.maps.shape == (len(similarity.tokens), rows, cols) == (query.shape[0], rows, cols)
    assert rows * cols <= page_vectors.shape[0]
    assert similarity.content_tokens and all(similarity.tokens[i] for i in similarity.content_tokens)
    # Every cell is one query token against one of the page's stored vectors (its image patches).
    scores = query @ page_vectors.T  # (n_tokens, n_vectors)
    for token in range(query.shape[0]):
        distance = np.abs(similarity.maps[token].reshape(-1, 1) - scores[token][None, :]).min(axis=1)
        assert distance.max() < 1e-3
    assert similarity.heatmap().size == image.size


def run_cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_cli_index_search_info_delete(
    tiny_checkpoints: dict[str, Path],
    pdfs: list[Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("COLPALI_MILVUS_URI", str(tmp_path / "cli.db"))  # options from the environment
    monkeypatch.setenv("COLPALI_MILVUS_MODEL", str(tiny_checkpoints["colqwen2"]))
    monkeypatch.setenv("COLPALI_MILVUS_IMAGE_DIR", str(tmp_path / "images"))
    folder = pdfs[0].parent

    code, out, err = run_cli(capsys, "index", str(folder), "--meta", "team=finance", "--meta", "year=2024", "--json")
    assert code == 3  # partly done: broken.pdf was skipped
    summary = json.loads(out)
    assert (summary["files"], summary["pages"], summary["new_pages"]) == (2, 3, 3)
    assert [Path(s["path"]).name for s in summary["skipped"]] == ["broken.pdf"]
    assert f"skipped {pdfs[2]}: " in err

    code, out, _ = run_cli(capsys, "index", str(pdfs[0]), "--no-progress")  # resumable: nothing new
    assert code == 0 and "2 pages, 0 new" in out

    monkeypatch.delenv("COLPALI_MILVUS_MODEL")  # search loads the model the collection records

    code, out, _ = run_cli(
        capsys,
        "search",
        "revenue table",
        "-k",
        "2",
        "--json",
        "--filter",
        '{"year": 2024}',
        "--save-images",
        str(tmp_path / "hits"),
        "--explain",
        str(tmp_path / "maps"),
    )
    assert code == 0
    hits = json.loads(out)
    assert [hit["rank"] for hit in hits] == [1, 2]
    assert all(hit["metadata"]["team"] == "finance" and hit["source"].endswith(".pdf") for hit in hits)
    for hit in hits:
        assert Image.open(hit["saved_image"]).size == Image.open(hit["image_path"]).size
        assert Image.open(hit["similarity_map"]).size == Image.open(hit["image_path"]).size

    code, out, _ = run_cli(capsys, "search", "revenue table", "-k", "3")
    assert code == 0 and out.splitlines()[0].split() == ["rank", "score", "source", "page", "label", "page", "id"]
    assert len(out.splitlines()) == 4

    code, out, _ = run_cli(capsys, "info", "--json")
    info = json.loads(out)
    assert (info["pages"], info["model_name"], info["backend"]) == (3, str(tiny_checkpoints["colqwen2"]), "milvus-lite")

    code, out, _ = run_cli(capsys, "delete", str(pdfs[0]))
    assert code == 0 and "deleted 2 pages" in out
    code, out, _ = run_cli(capsys, "info", "--json")
    assert json.loads(out)["pages"] == 1
    assert len(list((tmp_path / "images").rglob("*.png"))) == 1


def test_cli_errors_go_to_stderr_with_status_1(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run_cli(capsys, "info", "--uri", str(tmp_path / "missing.db"))
    assert (code, out) == (1, "")
    assert err.startswith("error: no Milvus Lite database")
    assert not (tmp_path / "missing.db").exists()
    with MilvusMultiVectorStore(tmp_path / "there.db", collection_name="other", dim=8):
        pass
    code, _, err = run_cli(capsys, "info", "--uri", str(tmp_path / "there.db"))
    assert code == 1 and "no collection 'colpali'" in err
    code, _, err = run_cli(capsys, "search", "x", "--uri", str(tmp_path / "there.db"), "--filter", "[1]")
    assert code == 1 and "--filter must be a JSON object" in err
    code, out, err = run_cli(capsys, "search", "x", "--uri", str(tmp_path / "typo.db"))  # creates nothing
    assert (code, out) == (1, "") and err.startswith("error: no Milvus Lite database")
    assert not (tmp_path / "typo.db").exists()
    code, _, err = run_cli(capsys, "search", "x", "--uri", str(tmp_path / "there.db"))  # no collection 'colpali'
    assert code == 1 and "no collection 'colpali'" in err
    with pytest.raises(SystemExit) as usage:
        main(["search"])
    assert usage.value.code == 2
