"""The LlamaIndex adapter for engines, agents and ingestion: every page reaches the LLM; page tool; add_documents."""

from __future__ import annotations

import base64
import io
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from llama_index.core import SimpleDirectoryReader
from llama_index.core.agent.workflow import FunctionAgent
from llama_index.core.base.llms.types import ChatMessage, ChatResponse, ImageBlock, TextBlock, ToolCallBlock
from llama_index.core.llms import MessageRole
from llama_index.core.llms.mock import MockFunctionCallingLLM, MockLLMWithChatMemoryOfLastCall
from llama_index.core.query_engine import RetrieverQueryEngine
from llama_index.core.schema import ImageDocument, ImageNode, NodeWithScore, TextNode
from llama_index.core.tools import FunctionTool, ToolOutput
from llama_index.core.vector_stores.types import MetadataFilter, MetadataFilters
from PIL import Image
from pydantic import Field

from colpali_milvus import ColPaliIndex, DocumentError, InvalidInputError
from colpali_milvus.llama_index import (
    ColPaliPDFReader,
    ColPaliRetriever,
    PageSynthesizer,
    add_documents,
    create_page_search_tool,
    create_query_engine,
    page_images_message,
)
from helpers import solid_image


class RecordingMultimodalLLM(MockLLMWithChatMemoryOfLastCall):
    """A mock multimodal chat LLM (it declares LlamaIndex's default 3,900-token window) that keeps every call."""

    calls: list[list[ChatMessage]] = Field(default_factory=list, exclude=True)

    def chat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponse:
        self.calls.append(list(messages))
        return super().chat(messages, **kwargs)


def images_per_call(llm: RecordingMultimodalLLM) -> list[int]:
    return [sum(isinstance(b, ImageBlock) for m in messages for b in m.blocks) for messages in llm.calls]


def colour(block: ImageBlock) -> tuple[int, ...]:
    image = Image.open(io.BytesIO(block.resolve_image(as_base64=False).read())).convert("RGB")
    return tuple(image.getpixel((image.width // 2, int(image.height * 0.75))))  # type: ignore[arg-type]


# -- the query engine: every retrieved page in one call ---------------------------------------------


def test_create_query_engine_hands_every_page_to_the_llm_in_one_call(full_size: ColPaliIndex) -> None:
    llm = RecordingMultimodalLLM(is_chat_model=True)
    engine = create_query_engine(ColPaliRetriever(full_size, similarity_top_k=3), llm, context_window=32_000)
    assert isinstance(engine, RetrieverQueryEngine)

    response = engine.query("which page shows the blue diagram?")

    assert len(response.source_nodes) == 3
    assert images_per_call(llm) == [3]  # one call, all three 150-dpi pages
    (messages,) = llm.calls
    blocks = [block for message in messages for block in message.blocks]
    assert colour(next(b for b in blocks if isinstance(b, ImageBlock))) == (0, 0, 255)
    texts = "".join(block.text for block in blocks if isinstance(block, TextBlock))
    assert "which page shows the blue diagram?" in texts and "page_label: 3" in texts


async def test_create_query_engine_async(full_size: ColPaliIndex) -> None:
    llm = RecordingMultimodalLLM(is_chat_model=True)
    engine = create_query_engine(ColPaliRetriever(full_size, similarity_top_k=3), llm, context_window=32_000)
    response = await engine.aquery("blue")
    assert len(response.source_nodes) == 3
    assert images_per_call(llm) == [3]


def test_pages_that_do_not_fit_the_window_raise_instead_of_vanishing(full_size: ColPaliIndex) -> None:
    llm = RecordingMultimodalLLM(is_chat_model=True)  # declares 3,900 tokens: one page image, as LlamaIndex counts
    engine = create_query_engine(ColPaliRetriever(full_size, similarity_top_k=3), llm)

    with pytest.raises(InvalidInputError, match=r"3 pages need .* context window of 3,900 \(LlamaIndex's default"):
        engine.query("blue")
    assert llm.calls == []  # nothing was sent with fewer pages

    one_page = create_query_engine(ColPaliRetriever(full_size, similarity_top_k=1), llm)
    assert one_page.query("blue").source_nodes[0].node.metadata["page"] == 3
    assert images_per_call(llm) == [1]
    with pytest.raises(InvalidInputError):
        PageSynthesizer(llm, context_window=0)


def test_the_plain_from_args_engine_splits_the_pages_this_engine_keeps_together(full_size: ColPaliIndex) -> None:
    """Why create_query_engine exists: LlamaIndex's own multimodal engine gives each call one page here."""
    llm = RecordingMultimodalLLM(is_chat_model=True)
    engine = RetrieverQueryEngine.from_args(
        retriever=ColPaliRetriever(full_size, similarity_top_k=3), llm=llm, multimodal=True
    )
    engine.query("blue")
    assert max(images_per_call(llm)) < 3


# -- the page-search tool ---------------------------------------------------------------------------


def test_tool_output_is_short_text_with_the_pages_as_raw_output(full_size: ColPaliIndex) -> None:
    tool = create_page_search_tool(ColPaliRetriever(full_size, similarity_top_k=3))
    assert isinstance(tool, FunctionTool)
    assert tool.metadata.name == "search_pages"
    assert list(tool.metadata.get_parameters_dict()["properties"]) == ["query"]

    output = tool(query="the blue diagram")

    assert isinstance(output, ToolOutput)
    assert [type(block) for block in output.blocks] == [TextBlock]
    assert len(output.content.encode()) < 2048
    assert output.content.splitlines()[1].startswith("[1] ")
    assert "report.pdf, page 3 (score " in output.content and output.content.splitlines()[1].endswith(": Diagram")
    nodes = output.raw_output
    assert len(nodes) == 3 and all(isinstance(n, NodeWithScore) and isinstance(n.node, ImageNode) for n in nodes)
    assert sum(len(n.node.image) for n in nodes) > 10 * len(output.content)  # the images stay out of the text


def test_tool_can_carry_image_blocks_and_options(full_size: ColPaliIndex) -> None:
    manual = MetadataFilters(filters=[MetadataFilter(key="kind", value="manual")])
    tool = create_page_search_tool(
        full_size,
        name="manual_pages",
        description="Manual pages.",
        similarity_top_k=2,
        filters=manual,
        include_images=True,
    )
    output = tool(query="yellow")

    assert (tool.metadata.name, tool.metadata.description) == ("manual_pages", "Manual pages.")
    assert [type(block) for block in output.blocks] == [TextBlock, TextBlock, ImageBlock, TextBlock, ImageBlock]
    assert {n.node.metadata["kind"] for n in output.raw_output} == {"manual"}
    assert len(output.content) < 1024  # .content is the text only
    with pytest.raises(InvalidInputError):
        create_page_search_tool("index")  # type: ignore[arg-type]


async def test_tool_acall(full_size: ColPaliIndex) -> None:
    output = await create_page_search_tool(full_size, similarity_top_k=1).acall(query="green")
    assert output.raw_output[0].node.metadata["page"] == 2


def test_page_images_message(full_size: ColPaliIndex) -> None:
    tool = create_page_search_tool(full_size, similarity_top_k=2)
    other = ToolOutput(tool_name="other", content="x", raw_input={}, raw_output="x")
    outputs = [tool(query="blue"), tool(query="blue"), other]

    message = page_images_message(outputs)

    assert message is not None and message.role == MessageRole.USER
    images = [block for block in message.blocks if isinstance(block, ImageBlock)]
    assert len(images) == 2  # the same two pages twice: each shown once
    assert colour(images[0]) == (0, 0, 255)
    assert page_images_message(outputs[2]) is None
    text_only = ToolOutput(
        tool_name="t", content="x", raw_input={}, raw_output=[NodeWithScore(node=TextNode(text="t"), score=1.0)]
    )
    assert page_images_message(text_only) is None


@pytest.mark.filterwarnings("ignore::DeprecationWarning:inspect")  # the workflow engine inspects pydantic models
async def test_a_function_agent_sees_the_page_images(full_size: ColPaliIndex) -> None:
    seen: list[list[ChatMessage]] = []

    def respond(messages: Sequence[ChatMessage], **kwargs: Any) -> ChatMessage:
        seen.append(list(messages))
        tool_results = [m for m in messages if m.role == MessageRole.TOOL]
        if not tool_results:
            call = ToolCallBlock(tool_call_id="call_1", tool_name="search_pages", tool_kwargs={"query": "blue"})
            return ChatMessage(role=MessageRole.ASSISTANT, blocks=[call])
        images = [b for b in tool_results[-1].blocks if isinstance(b, ImageBlock)]
        blue = [i for i, block in enumerate(images) if colour(block) == (0, 0, 255)]
        return ChatMessage(role=MessageRole.ASSISTANT, content=f"saw {len(images)} pages; blue is image {blue[0] + 1}")

    tool = create_page_search_tool(full_size, similarity_top_k=3, include_images=True)  # for LLMs that take them
    agent = FunctionAgent(tools=[tool], llm=MockFunctionCallingLLM(response_generator=respond), streaming=False)

    result = await agent.run("Which page shows the blue diagram?")

    assert str(result) == "saw 3 pages; blue is image 1"
    (tool_message,) = [m for m in seen[-1] if m.role == MessageRole.TOOL]
    text = "".join(b.text for b in tool_message.blocks if isinstance(b, TextBlock))
    assert len(text) < 2048


# -- add_documents ----------------------------------------------------------------------------------


def test_reader_documents_round_trip_with_add_pdf_page_ids(fresh_index: ColPaliIndex, colour_pdfs: list[Path]) -> None:
    report = colour_pdfs[0]
    documents = SimpleDirectoryReader(
        input_files=[str(report)], file_extractor={".pdf": ColPaliPDFReader(dpi=36)}
    ).load_data()

    page_ids = add_documents(fresh_index, documents)

    assert page_ids == [d.metadata["page_id"] for d in documents] == [d.doc_id for d in documents]
    (hit,) = fresh_index.search("blue", k=1)
    assert (hit.page_id, hit.source, hit.page, hit.page_label) == (page_ids[2], str(report), 3, "3")
    assert "Diagram" in hit.text
    assert hit.metadata["file_name"] == "report.pdf"  # SimpleDirectoryReader's metadata is kept
    calls = fresh_index.embedder.image_calls  # type: ignore[attr-defined]
    assert fresh_index.add_pdf(report) == page_ids  # same ids: nothing to embed
    assert fresh_index.embedder.image_calls == calls  # type: ignore[attr-defined]
    assert fresh_index.count() == 3


def test_retrieved_nodes_and_other_image_documents(
    full_size: ColPaliIndex, fresh_index: ColPaliIndex, tmp_path: Path
) -> None:
    retrieved = ColPaliRetriever(full_size, similarity_top_k=1).retrieve("yellow")
    green = tmp_path / "green.png"
    solid_image("green").save(green)
    cyan = tmp_path / "cyan.png"
    solid_image("cyan").save(cyan)
    buffer = io.BytesIO()
    solid_image("magenta").save(buffer, format="PNG")
    documents = [
        retrieved[0].node,
        ImageDocument(image_path=str(green), metadata={"team": "a"}),  # as SimpleDirectoryReader's ImageReader
        ImageNode(image=base64.b64encode(buffer.getvalue()).decode(), text="magenta scan", metadata={"source": "m"}),
        ImageNode(image_url=cyan.as_uri()),  # a local file:// URL (ImageDocument would fetch it when built)
    ]

    yellow_id, green_id, magenta_id, cyan_id = add_documents(fresh_index, documents)

    assert yellow_id == retrieved[0].node.node_id
    assert fresh_index.search("yellow", k=1)[0].metadata["kind"] == "manual"
    (hit,) = fresh_index.search("green", k=1)
    assert (hit.page_id, hit.source, hit.metadata["team"]) == (green_id, str(green), "a")
    (hit,) = fresh_index.search("magenta", k=1)
    assert (hit.page_id, hit.source, hit.text) == (magenta_id, "m", "magenta scan")
    assert fresh_index.search("cyan", k=1)[0].page_id == cyan_id
    calls = fresh_index.embedder.image_calls  # type: ignore[attr-defined]
    assert fresh_index.add_image_file(green, metadata={"team": "a"}) == [green_id]
    assert fresh_index.embedder.image_calls == calls  # type: ignore[attr-defined]


def test_nodes_without_a_usable_image_are_refused_before_anything_is_written(
    fresh_index: ColPaliIndex, colour_pdfs: list[Path], tmp_path: Path
) -> None:
    good = ColPaliPDFReader(dpi=36).load_data(colour_pdfs[1])
    with pytest.raises(InvalidInputError, match="carries no image"):
        add_documents(fresh_index, [*good, TextNode(text="text only")])
    assert fresh_index.count() == 0

    bad = [
        (ImageNode(image_url="https://example.com/page.png"), InvalidInputError, "https:// URL"),
        (ImageNode(image_path=str(tmp_path / "missing.png")), DocumentError, "not found"),
        (ImageNode(image=base64.b64encode(b"no image").decode()), InvalidInputError, "no readable image"),
        (ImageNode(image=good[0].image, metadata={**good[0].metadata, "page": 0}), InvalidInputError, "1-based"),
        (ImageNode(image=good[0].image, metadata={**good[0].metadata, "page_id": "x-1"}), InvalidInputError, "match"),
    ]
    for node, error, message in bad:
        with pytest.raises(error, match=message):
            add_documents(fresh_index, [node])
    assert fresh_index.count() == 0
