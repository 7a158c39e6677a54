"""The public surface: lazy imports, the error tree, value objects, the family registry."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

import colpali_milvus
from colpali_milvus import (
    ColPaliMilvusError,
    DocumentError,
    FilterError,
    IndexMismatchError,
    InvalidInputError,
    MissingDependencyError,
    ModelError,
    PageHit,
    StoreConnectionError,
    StoreError,
)
from colpali_milvus._deps import require
from colpali_milvus.embed.registry import FAMILIES, family_for_config, read_checkpoint_config
from colpali_milvus.pages.image_store import PageImageStore


def test_import_is_light_and_the_core_imports_no_framework() -> None:
    code = (
        "import sys, colpali_milvus, colpali_milvus.index, colpali_milvus.collection, colpali_milvus.store,"
        " colpali_milvus.pages;"
        "heavy = [m for m in ('torch', 'transformers', 'colpali_engine', 'pymilvus', 'langchain_core',"
        " 'llama_index') if m in sys.modules]; print(heavy)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


def test_lazy_names_resolve_and_unknown_names_raise() -> None:
    assert colpali_milvus.MilvusMultiVectorStore.__name__ == "MilvusMultiVectorStore"
    assert colpali_milvus.ColPaliIndex.__name__ == "ColPaliIndex"
    with pytest.raises(AttributeError):
        _ = colpali_milvus.NoSuchThing
    assert sorted(colpali_milvus.__all__) == colpali_milvus.__all__


def test_one_exception_tree() -> None:
    for error in (
        DocumentError,
        FilterError,
        IndexMismatchError,
        InvalidInputError,
        MissingDependencyError,
        ModelError,
        StoreConnectionError,
        StoreError,
    ):
        assert issubclass(error, ColPaliMilvusError)
    assert issubclass(InvalidInputError, ValueError)
    assert issubclass(FilterError, InvalidInputError)
    assert issubclass(MissingDependencyError, ImportError)
    assert issubclass(IndexMismatchError, StoreError)


def test_missing_extra_names_the_install_command() -> None:
    with pytest.raises(MissingDependencyError, match=r"colpali-milvus\[demo\]") as raised:
        require("no_such_module_xyz", extra="demo")
    assert isinstance(raised.value.__cause__, ImportError)


def test_page_hit_reads_its_image(tmp_path: Path) -> None:
    store = PageImageStore(tmp_path)
    path = store.save("abc-00001", Image.new("RGB", (8, 6), "red"))
    hit = PageHit(
        page_id="abc-00001", score=1.5, metadata={"source": "a.pdf", "page": 1, "page_label": "i"}, image_path=path
    )
    assert (hit.source, hit.page, hit.page_label) == ("a.pdf", 1, "i")
    assert hit.image_mime_type == "image/png"
    assert hit.load_image().size == (8, 6)
    assert hit.image_base64()
    with pytest.raises(DocumentError):
        PageHit(page_id="x", score=0.0, metadata={}).image_bytes()


@pytest.mark.parametrize("page_id", ["../etc/passwd", "a/b", "name.png", "..", "/abs"])
def test_image_store_keeps_ids_that_look_like_paths_inside_its_folder(tmp_path: Path, page_id: str) -> None:
    assert PageImageStore(tmp_path).path_for(page_id).parent == tmp_path.resolve()


@pytest.mark.parametrize("page_id", ["", " ", "nul\x00", "x" * 10_000])
def test_image_store_refuses_what_cannot_be_a_page_id(tmp_path: Path, page_id: str) -> None:
    with pytest.raises(InvalidInputError):
        PageImageStore(tmp_path).path_for(page_id)


def test_image_store_saves_atomically_and_deletes(tmp_path: Path) -> None:
    store = PageImageStore(tmp_path / "images")
    store.save("p1", Image.new("RGB", (4, 4), "blue"))
    assert [path.name for path in (tmp_path / "images").iterdir()] == [store.file_name("p1")]  # no temp file left
    assert store.find("p1") is not None
    store.delete(["p1", "never-saved"])
    assert store.find("p1") is None


@pytest.mark.parametrize(
    ("model_type", "family"),
    [
        ("paligemma", "colpali"),
        ("qwen2_vl", "colqwen2"),
        ("qwen2_5_vl", "colqwen2.5"),
        ("idefics3", "colidefics3"),
        ("modernvbert", "colmodernvbert"),
    ],
)
def test_family_comes_from_the_config_model_type(model_type: str, family: str) -> None:
    assert family_for_config({"model_type": model_type, "architectures": ["Whatever"]}).name == family


def test_registry_refuses_unknown_and_single_vector_models() -> None:
    with pytest.raises(ModelError, match="unsupported model_type"):
        family_for_config({"model_type": "bert"})
    with pytest.raises(ModelError, match="single-vector"):
        family_for_config({"model_type": "qwen2_vl", "architectures": ["BiQwen2"]})
    assert len({family.name for family in FAMILIES}) == len(FAMILIES)


def test_an_adapter_folder_is_followed_to_its_base_config(tmp_path: Path) -> None:
    base, adapter = tmp_path / "base", tmp_path / "adapter"
    base.mkdir()
    adapter.mkdir()
    (base / "config.json").write_text(json.dumps({"model_type": "paligemma"}))
    (adapter / "adapter_config.json").write_text(json.dumps({"base_model_name_or_path": str(base)}))
    assert read_checkpoint_config(str(adapter))["model_type"] == "paligemma"
    with pytest.raises(ModelError):
        read_checkpoint_config(str(tmp_path))  # neither config


def test_the_store_index_and_cli_default_to_one_database_file(monkeypatch: pytest.MonkeyPatch) -> None:
    import inspect

    monkeypatch.delenv("COLPALI_MILVUS_URI", raising=False)
    from colpali_milvus import ColPaliIndex, MilvusMultiVectorStore
    from colpali_milvus.cli import _parser

    store_default = inspect.signature(MilvusMultiVectorStore).parameters["uri"].default
    index_default = inspect.signature(ColPaliIndex.from_model).parameters["uri"].default
    cli_default = _parser().parse_args(["info"]).uri
    assert store_default == index_default == "colpali.db"
    assert cli_default == "colpali.db"
