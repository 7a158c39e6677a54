"""ColPaliEmbedder on tiny random-weight checkpoints of the real colpali-engine architectures."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from colpali_milvus import ColPaliEmbedder, ColPaliIndex, InvalidInputError, MilvusMultiVectorStore, ModelError, maxsim
from colpali_milvus.embed import MultiVectorEmbedder
from helpers import PdfPage, write_pdf

pytestmark = pytest.mark.models

IMAGES = [Image.new("RGB", (120, 160), "white"), Image.new("L", (60, 60), 90), Image.new("RGBA", (90, 40), "red")]
QUERIES = ["total revenue", "which chart shows the growth of the population over the years"]


@pytest.fixture(scope="module")
def embedders(tiny_checkpoints: dict[str, Path]) -> dict[str, ColPaliEmbedder]:
    return {
        name: ColPaliEmbedder(str(path), batch_size=2, show_progress=False) for name, path in tiny_checkpoints.items()
    }


@pytest.mark.parametrize(
    ("name", "family"), [("colpali", "colpali"), ("colqwen2", "colqwen2"), ("colpali-lora", "colpali")]
)
def test_family_is_read_from_the_checkpoint_config(
    embedders: dict[str, ColPaliEmbedder], name: str, family: str
) -> None:
    embedder = embedders[name]
    assert embedder.family.name == family
    assert isinstance(embedder, MultiVectorEmbedder)
    assert embedder.dim == 128
    assert str(embedder.device) == "cpu"
    assert embedder.dtype == torch.float32


@pytest.mark.parametrize("name", ["colpali", "colqwen2"])
def test_padding_rows_are_dropped_whichever_side_pads(embedders: dict[str, ColPaliEmbedder], name: str) -> None:
    """Batched outputs equal one-at-a-time outputs, so padding (right for ColPali, left for Qwen) is gone."""
    embedder = embedders[name]
    batched = embedder.embed_queries(QUERIES)
    alone = [embedder.embed_queries([query])[0] for query in QUERIES]

    assert batched[0].shape[0] < batched[1].shape[0]  # different lengths: padding was needed
    for together, single in zip(batched, alone, strict=True):
        assert together.dtype == np.float32
        assert together.shape[1] == 128
        np.testing.assert_allclose(together, single, atol=1e-4)
        np.testing.assert_allclose(np.linalg.norm(together, axis=1), 1.0, atol=1e-4)  # no zero rows


@pytest.mark.parametrize("name", ["colpali", "colqwen2"])
def test_pages_embed_in_batches_as_if_alone(embedders: dict[str, ColPaliEmbedder], name: str) -> None:
    embedder = embedders[name]
    batched = embedder.embed_images(IMAGES)  # batch_size=2: two forward passes
    alone = [embedder.embed_images([image])[0] for image in IMAGES]
    assert len(batched) == 3
    for together, single in zip(batched, alone, strict=True):
        np.testing.assert_allclose(together, single, atol=1e-4)
        assert np.isfinite(together).all()


def test_the_lora_adapter_is_applied_on_top_of_its_base(
    embedders: dict[str, ColPaliEmbedder], tiny_checkpoints: dict[str, Path]
) -> None:
    adapter_config = json.loads((tiny_checkpoints["colpali-lora"] / "adapter_config.json").read_text())
    assert adapter_config["base_model_name_or_path"] == str(tiny_checkpoints["colpali"])
    assert not (tiny_checkpoints["colpali-lora"] / "config.json").exists()  # like vidore/colpali-v1.3

    base = embedders["colpali"].embed_images(IMAGES[:1])[0]
    adapted = embedders["colpali-lora"].embed_images(IMAGES[:1])[0]
    assert base.shape == adapted.shape
    assert not np.allclose(base, adapted, atol=1e-3)


def test_scores_match_colpali_engine_on_real_model_outputs(embedders: dict[str, ColPaliEmbedder]) -> None:
    embedder = embedders["colpali"]
    pages = embedder.embed_images(IMAGES)
    queries = embedder.embed_queries(QUERIES)
    expected = embedder.processor.score_multi_vector(
        [torch.from_numpy(q) for q in queries], [torch.from_numpy(p) for p in pages], device="cpu"
    ).numpy()
    np.testing.assert_allclose(np.stack([maxsim(q, pages) for q in queries]), expected, rtol=1e-5, atol=1e-5)


def test_bad_inputs_and_checkpoints(embedders: dict[str, ColPaliEmbedder], tmp_path: Path) -> None:
    with pytest.raises(InvalidInputError):
        embedders["colpali"].embed_queries(["fine", "  "])
    assert embedders["colpali"].embed_images([]) == []
    with pytest.raises(ModelError):
        ColPaliEmbedder(str(tmp_path))  # an empty folder is no checkpoint
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "bert"}))
    with pytest.raises(ModelError, match="unsupported model_type"):
        ColPaliEmbedder(str(tmp_path))


@pytest.mark.parametrize("name", ["colqwen2", "colpali-lora"])
def test_index_a_real_pdf_with_a_real_architecture(
    embedders: dict[str, ColPaliEmbedder], tmp_path: Path, name: str
) -> None:
    pdf = write_pdf(tmp_path / "doc.pdf", [PdfPage((1, 0, 0), ["Revenue"]), PdfPage((0, 0, 1), ["Diagram"])])
    embedder = embedders[name]
    with MilvusMultiVectorStore(tmp_path / "m.db", dim=embedder.dim, model_name=embedder.model_name) as store:
        index = ColPaliIndex(embedder, store)
        index.add_pdf(pdf, dpi=50)
        hits = index.search("revenue table", k=2)

        assert sorted(hit.page for hit in hits) == [1, 2]
        assert all(hit.image_path is not None and hit.image_path.is_file() for hit in hits)
        # The score is exact MaxSim over every stored vector of the page.
        query = embedder.embed_queries(["revenue table"])[0]
        stored = store.get_vectors([hits[0].page_id])[hits[0].page_id]
        assert hits[0].score == pytest.approx(float(maxsim(query, [stored])[0]), abs=1e-4)
        assert store.info().model_name == embedder.model_name


def test_an_embedder_can_wrap_a_model_already_in_memory(
    embedders: dict[str, ColPaliEmbedder], tiny_checkpoints: dict[str, Path]
) -> None:
    from colpali_engine.models import ColQwen2, ColQwen2Processor

    folder = str(tiny_checkpoints["colqwen2"])
    wrapped = ColPaliEmbedder.from_loaded(
        ColQwen2.from_pretrained(folder), ColQwen2Processor.from_pretrained(folder), model_name="my/colqwen2"
    )
    assert (wrapped.family.name, wrapped.model_name, wrapped.dim) == ("colqwen2", "my/colqwen2", 128)
    np.testing.assert_allclose(
        wrapped.embed_queries(QUERIES[:1])[0], embedders["colqwen2"].embed_queries(QUERIES[:1])[0], atol=1e-5
    )


@pytest.mark.parametrize("name", ["colpali", "colqwen2"])
def test_token_pooling_keeps_about_one_vector_in_pool_factor(tiny_checkpoints: dict[str, Path], name: str) -> None:
    plain = ColPaliEmbedder(str(tiny_checkpoints[name]), show_progress=False)
    pooled = ColPaliEmbedder(str(tiny_checkpoints[name]), show_progress=False, pool_factor=3)
    image = Image.new("RGB", (120, 160), "white")

    (full,), (fewer,) = plain.embed_images([image]), pooled.embed_images([image])
    assert 0 < fewer.shape[0] <= full.shape[0] // 3
    assert fewer.dtype == np.float32 and fewer.shape[1] == full.shape[1]
    np.testing.assert_allclose(np.linalg.norm(fewer, axis=1), 1.0, atol=1e-4)  # cluster means, re-normalised
    np.testing.assert_allclose(pooled.embed_queries(QUERIES)[0], plain.embed_queries(QUERIES)[0], atol=1e-5)
    with pytest.raises(InvalidInputError):
        ColPaliEmbedder(str(tiny_checkpoints[name]), pool_factor=0)
