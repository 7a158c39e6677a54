"""The LlamaIndex adapter: ImageNode retrieval, MetadataFilters, the reader, and a multimodal query engine."""

from __future__ import annotations

import base64
import io
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from llama_index.core import SimpleDirectoryReader
from llama_index.core.base.llms.types import ChatMessage, ChatResponse, ImageBlock
from llama_index.core.llms.mock import MockLLMWithChatMemoryOfLastCall
from llama_index.core.query_engine import RetrieverQueryEngine
from llama_index.core.retrievers import BaseRetriever
from llama_index.core.schema import ImageDocument, ImageNode, NodeWithScore, TextNode
from llama_index.core.vector_stores.types import (
    FilterCondition,
    FilterOperator,
    MetadataFilter,
    MetadataFilters,
)
from PIL import Image
from pydantic import Field

from colpali_milvus import ColPaliIndex, FilterError, InvalidInputError
from colpali_milvus.llama_index import ColPaliPDFReader, ColPaliRetriever, to_filter


def test_retrieve_returns_scored_image_nodes(indexed: ColPaliIndex) -> None:
    retriever = ColPaliRetriever(index=indexed, similarity_top_k=2)
    assert isinstance(retriever, BaseRetriever)

    results = retriever.retrieve("the yellow wiring page")

    assert len(results) == 2
    assert all(isinstance(r, NodeWithScore) for r in results)
    best = results[0]
    assert isinstance(best.node, ImageNode)
    assert (Path(best.node.metadata["source"]).name, best.node.metadata["page"]) == ("manual.pdf", 1)
    assert best.node.metadata["page_label"] == "1"
    assert best.node.metadata["kind"] == "manual"
    assert best.score is not None
    assert best.score >= results[1].score
    assert best.node.image_mimetype == "image/png"
    assert best.node.image_path is not None
    assert Path(best.node.image_path).is_file()
    image = Image.open(io.BytesIO(base64.b64decode(best.node.image)))
    assert image.getpixel((150, 300))[:2] == (255, 255)  # yellow
    assert "Wiring" in best.node.text
    assert "page_id" not in best.node.get_metadata_str(mode="llm")  # ids stay out of prompts


async def test_aretrieve_matches_retrieve(indexed: ColPaliIndex) -> None:
    retriever = ColPaliRetriever(index=indexed, similarity_top_k=3)
    sync = [r.node.node_id for r in retriever.retrieve("blue")]
    asynchronous = [r.node.node_id for r in await retriever.aretrieve("blue")]
    assert sync == asynchronous


def test_metadata_filters_narrow_the_search(indexed: ColPaliIndex) -> None:
    filters = MetadataFilters(
        filters=[
            MetadataFilter(key="kind", value="report"),
            MetadataFilter(key="page", value=2, operator=FilterOperator.GTE),
        ]
    )
    results = ColPaliRetriever(index=indexed, similarity_top_k=5, filters=filters).retrieve("red")
    assert sorted(r.node.metadata["page"] for r in results) == [2, 3]
    assert {r.node.metadata["kind"] for r in results} == {"report"}

    either = MetadataFilters(
        filters=[
            MetadataFilter(key="page", value=[3], operator=FilterOperator.IN),
            MetadataFilter(key="kind", value="manual"),
        ],
        condition=FilterCondition.OR,
    )
    assert to_filter(either) == {"$or": [{"page": {"$in": [3]}}, {"kind": {"$eq": "manual"}}]}
    assert len(ColPaliRetriever(index=indexed, similarity_top_k=5, filters=either).retrieve("red")) == 3


def test_unsupported_filters_and_arguments_are_refused(indexed: ColPaliIndex) -> None:
    with pytest.raises(FilterError):
        to_filter(
            MetadataFilters(filters=[MetadataFilter(key="source", value="x", operator=FilterOperator.TEXT_MATCH)])
        )
    assert to_filter(None) is None
    with pytest.raises(InvalidInputError):
        ColPaliRetriever(index=indexed, similarity_top_k=0)


def test_reader_works_as_a_simple_directory_reader_file_extractor(colour_pdfs: list[Path]) -> None:
    reader = ColPaliPDFReader(dpi=36)
    documents = SimpleDirectoryReader(
        input_files=[str(path) for path in colour_pdfs], file_extractor={".pdf": reader}
    ).load_data()

    assert len(documents) == 5
    assert all(isinstance(document, ImageDocument) for document in documents)
    first = next(d for d in documents if d.metadata["page"] == 1 and d.metadata["source"].endswith("report.pdf"))
    assert first.metadata["file_name"] == "report.pdf"  # SimpleDirectoryReader's own extra_info is kept
    assert first.image_resource is not None
    assert first.image_resource.mimetype == "image/png"
    assert "Revenue table" in first.text
    assert Image.open(io.BytesIO(base64.b64decode(first.image_resource.data))).getpixel((150, 300))[0] == 255


class RecordingMultimodalLLM(MockLLMWithChatMemoryOfLastCall):
    """A mock multimodal chat LLM that keeps the messages of every call (refine makes several)."""

    calls: list[list[ChatMessage]] = Field(default_factory=list, exclude=True)

    def chat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponse:
        self.calls.append(list(messages))
        return super().chat(messages, **kwargs)


def test_multimodal_query_engine_hands_image_blocks_to_the_llm(indexed: ColPaliIndex) -> None:
    llm = RecordingMultimodalLLM(is_chat_model=True)
    engine = RetrieverQueryEngine.from_args(
        retriever=ColPaliRetriever(index=indexed, similarity_top_k=2), llm=llm, multimodal=True
    )

    response = engine.query("which page shows the green growth chart?")

    assert len(response.source_nodes) == 2
    assert response.source_nodes[0].node.metadata["page"] == 2
    blocks = [block for messages in llm.calls for message in messages for block in message.blocks]
    images = [block for block in blocks if isinstance(block, ImageBlock)]
    assert len(images) == 2  # both retrieved pages reached the model as images
    green = Image.open(io.BytesIO(images[0].resolve_image(as_base64=False).read()))
    assert green.getpixel((150, 300))[1] == 255


def test_stored_metadata_never_supplies_an_image_node_field(spoofed: tuple[ColPaliIndex, dict[str, str]]) -> None:
    index, ids = spoofed
    nodes = {r.node.node_id: r.node for r in ColPaliRetriever(index=index, similarity_top_k=2).retrieve("red blue")}

    missing = nodes[ids["blue"]]  # its image file is gone; its metadata claims one
    assert isinstance(missing, TextNode) and not isinstance(missing, ImageNode)
    assert not {"image", "image_path", "image_mimetype", "image_url"} & set(missing.metadata)
    assert missing.metadata["page_id"] == ids["blue"]
    assert missing.metadata["team"] == "finance"

    kept = nodes[ids["red"]]
    assert isinstance(kept, ImageNode)
    assert kept.image_path == str(index.images.find(ids["red"]))
    assert kept.image_url is None
    assert Image.open(io.BytesIO(base64.b64decode(kept.image))).getpixel((5, 5)) == (255, 0, 0)


def test_a_page_without_its_image_reaches_a_multimodal_llm_as_text_only(
    spoofed: tuple[ColPaliIndex, dict[str, str]],
) -> None:
    index, _ = spoofed
    llm = RecordingMultimodalLLM(is_chat_model=True)
    engine = RetrieverQueryEngine.from_args(
        retriever=ColPaliRetriever(index=index, similarity_top_k=2), llm=llm, multimodal=True
    )

    response = engine.query("red blue")

    assert len(response.source_nodes) == 2
    blocks = [block for messages in llm.calls for message in messages for block in message.blocks]
    (image,) = [block for block in blocks if isinstance(block, ImageBlock)]  # the red page's, nothing else
    assert Image.open(io.BytesIO(image.resolve_image(as_base64=False).read())).getpixel((5, 5)) == (255, 0, 0)
