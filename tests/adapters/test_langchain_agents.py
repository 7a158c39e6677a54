"""The LangChain adapter for agents and ingestion: the page-search tool in a tool-calling loop, add_documents."""

from __future__ import annotations

import base64
import io
from pathlib import Path
from typing import Any

import pytest
from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.documents import Document
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, ToolCall, ToolMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from langchain_core.runnables import Runnable
from langchain_core.tools import BaseTool
from langchain_core.utils.function_calling import convert_to_openai_tool
from PIL import Image
from pydantic import Field

from colpali_milvus import ColPaliIndex, DocumentError, InvalidInputError
from colpali_milvus.langchain import (
    ColPaliPDFLoader,
    ColPaliRetriever,
    add_documents,
    create_page_search_tool,
    page_images_message,
)
from helpers import PdfPage, solid_image, write_pdf


def tool_call(query: str, name: str = "search_pages", call_id: str = "call_1") -> ToolCall:
    return {"name": name, "args": {"query": query}, "id": call_id, "type": "tool_call"}


def colour_of(block: dict[str, Any]) -> tuple[int, ...]:
    """The colour of the figure on a page image block (the lower half of each test page)."""
    image = Image.open(io.BytesIO(base64.b64decode(block["base64"]))).convert("RGB")
    return tuple(image.getpixel((image.width // 2, int(image.height * 0.75))))  # type: ignore[arg-type]


# -- the tool ---------------------------------------------------------------------------------------


def test_as_tool_returns_short_text_and_the_pages_as_artifact(full_size: ColPaliIndex) -> None:
    tool = ColPaliRetriever(index=full_size, k=3).as_tool()
    assert isinstance(tool, BaseTool)
    assert tool.name == "search_pages"
    assert tool.response_format == "content_and_artifact"

    message = tool.invoke(tool_call("the blue diagram"))

    assert isinstance(message, ToolMessage)
    assert isinstance(message.content, str)
    assert len(message.content.encode()) < 2048  # the whole tool message text, for three 150-dpi pages
    lines = message.content.splitlines()
    assert lines[0] == "3 page(s) found for 'the blue diagram':"
    assert lines[1].startswith("[1] ") and "report.pdf, page 3 (score " in lines[1] and lines[1].endswith(": Diagram")
    documents = message.artifact
    assert [d.metadata["page"] for d in documents][:1] == [3]
    assert all(d.metadata["image_mime_type"] == "image/png" for d in documents)
    images = sum(len(d.metadata["image_base64"]) for d in documents)
    assert images > 10 * len(message.content)  # the pixels travel beside the message, not in it
    first = Image.open(io.BytesIO(base64.b64decode(documents[0].metadata["image_base64"])))
    assert first.size == (1275, 1650)  # 150 dpi: the real page image


def test_tool_options_and_snippets(full_size: ColPaliIndex) -> None:
    tool = create_page_search_tool(
        full_size, name="find_manual_pages", description="Manual pages.", k=1, filter={"kind": "manual"}
    )
    assert (tool.name, tool.description) == ("find_manual_pages", "Manual pages.")
    assert list(tool.args) == ["query"]

    message = tool.invoke(tool_call("red", name="find_manual_pages"))
    assert [d.metadata["kind"] for d in message.artifact] == ["manual"]
    assert message.content.count("\n") == 1

    long_text = Document(page_content="word " * 500, metadata={"source": "s" * 400, "page_label": "iv", "score": 1.5})
    from colpali_milvus.langchain.tools import summarize_pages

    summary = summarize_pages("q", [long_text], snippet_chars=50)
    assert len(summary) < 250
    assert "…" in summary and ", page iv (score 1.50): word word" in summary
    assert summarize_pages("nothing", []) == "No pages found for 'nothing'."


def test_tool_refuses_bad_arguments(full_size: ColPaliIndex) -> None:
    with pytest.raises(InvalidInputError):
        create_page_search_tool(full_size, k=0)
    with pytest.raises(InvalidInputError):
        create_page_search_tool("not a retriever")  # type: ignore[arg-type]
    with pytest.warns(Warning, match="beta"):  # Runnable.as_tool, when asked for explicitly
        generic = ColPaliRetriever(index=full_size).as_tool(arg_types={"input": str})
    assert generic.response_format == "content"


async def test_tool_runs_async(full_size: ColPaliIndex) -> None:
    tool = create_page_search_tool(ColPaliRetriever(index=full_size, k=2))
    message = await tool.ainvoke(tool_call("green chart"))
    assert isinstance(message, ToolMessage)
    assert message.artifact[0].metadata["page"] == 2
    assert len(message.artifact) == 2


def test_page_images_message_shows_the_pages_to_the_model(full_size: ColPaliIndex) -> None:
    tool = create_page_search_tool(full_size, k=2)
    results = [tool.invoke(tool_call("blue", call_id="a")), tool.invoke(tool_call("blue", call_id="b"))]

    message = page_images_message([AIMessage(content="ignored"), *results])

    assert isinstance(message, HumanMessage)
    blocks = [block for block in message.content if isinstance(block, dict)]
    images = [block for block in blocks if block["type"] == "image"]
    assert len(images) == 2  # the same two pages found twice: each shown once
    assert blocks[0]["text"] == "The pages found by search_pages, as images:"
    assert colour_of(images[0]) == (0, 0, 255)
    assert page_images_message(results[0]) is not None

    without_images = create_page_search_tool(ColPaliRetriever(index=full_size, include_images=False), k=1)
    from_files = page_images_message(without_images.invoke(tool_call("blue")))  # read from the stored files
    assert from_files is not None
    assert [
        colour_of(block) for block in from_files.content if isinstance(block, dict) and block["type"] == "image"
    ] == [(0, 0, 255)]
    assert page_images_message([ToolMessage(content="x", tool_call_id="c", artifact="not pages")]) is None


class FakeToolCallingVisionModel(BaseChatModel):
    """A fake tool-calling vision chat model: searches once, then answers from the page images it is shown."""

    received: list[list[BaseMessage]] = Field(default_factory=list)
    question: str = "the blue diagram"

    @property
    def _llm_type(self) -> str:
        return "fake-tool-calling-vision"

    def bind_tools(self, tools: Any, **kwargs: Any) -> Runnable[Any, AIMessage]:
        return self.bind(tools=[convert_to_openai_tool(tool) for tool in tools], **kwargs)

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        self.received.append(list(messages))
        if not any(isinstance(message, ToolMessage) for message in messages):
            name = kwargs["tools"][0]["function"]["name"]
            reply = AIMessage(content="", tool_calls=[tool_call(self.question, name=name)])
        else:
            images = [
                block
                for message in messages
                if isinstance(message, HumanMessage) and isinstance(message.content, list)
                for block in message.content
                if isinstance(block, dict) and block.get("type") == "image"
            ]
            blue = [i for i, block in enumerate(images) if colour_of(block) == (0, 0, 255)]
            reply = AIMessage(content=f"I saw {len(images)} page image(s); the blue diagram is image {blue[0] + 1}.")
        return ChatResult(generations=[ChatGeneration(message=reply)])


def test_a_tool_calling_agent_loop_sees_the_page_images(full_size: ColPaliIndex) -> None:
    tool = ColPaliRetriever(index=full_size, k=3).as_tool()
    fake = FakeToolCallingVisionModel()
    model = fake.bind_tools([tool])

    messages: list[BaseMessage] = [HumanMessage("Which page shows the blue diagram?")]
    while (reply := model.invoke(messages)).tool_calls:
        results = [tool.invoke(call) for call in reply.tool_calls]
        messages += [reply, *results]
        if (pages := page_images_message(results)) is not None:
            messages.append(pages)

    assert reply.content == "I saw 3 page image(s); the blue diagram is image 1."
    first_turn, second_turn = fake.received
    assert len(first_turn) == 1
    tool_messages = [m for m in second_turn if isinstance(m, ToolMessage)]
    assert len(tool_messages) == 1 and len(str(tool_messages[0].content)) < 2048
    assert tool_messages[0].tool_call_id == "call_1"
    assert isinstance(second_turn[-1], HumanMessage)  # the images come after the tool message


# -- add_documents ----------------------------------------------------------------------------------


def test_loader_documents_round_trip_with_add_pdf_page_ids(fresh_index: ColPaliIndex, colour_pdfs: list[Path]) -> None:
    report = colour_pdfs[0]
    documents = ColPaliPDFLoader(report, dpi=36, metadata={"kind": "report"}).load()

    page_ids = add_documents(fresh_index, documents)

    assert page_ids == [d.metadata["page_id"] for d in documents]
    assert fresh_index.count() == 3
    (hit,) = fresh_index.search("blue", k=1)
    assert (hit.page_id, hit.source, hit.page, hit.page_label) == (page_ids[2], str(report), 3, "3")
    assert hit.metadata["kind"] == "report"
    assert "Diagram" in hit.text
    assert hit.image_path is not None and hit.image_path.is_file()

    calls = fresh_index.embedder.image_calls  # type: ignore[attr-defined]
    assert fresh_index.add_pdf(report, metadata={"kind": "report"}) == page_ids  # same ids: nothing to embed
    assert add_documents(fresh_index, documents) == page_ids
    assert fresh_index.embedder.image_calls == calls  # type: ignore[attr-defined]
    assert fresh_index.count() == 3


def test_retrieved_documents_can_be_added_to_another_index(full_size: ColPaliIndex, fresh_index: ColPaliIndex) -> None:
    documents = ColPaliRetriever(index=full_size, k=2).invoke("yellow")
    assert add_documents(fresh_index, documents) == [d.id for d in documents]
    (hit,) = fresh_index.search("yellow", k=1)
    assert hit.page_id == documents[0].id
    assert hit.metadata["kind"] == "manual"
    assert "score" not in hit.metadata


def test_plain_image_documents_from_other_loaders(fresh_index: ColPaliIndex, tmp_path: Path) -> None:
    green = tmp_path / "green.png"
    solid_image("green").save(green)
    buffer = io.BytesIO()
    solid_image("magenta").save(buffer, format="PNG")
    documents = [
        Document(page_content="", metadata={"image_path": str(green), "team": "a"}),
        Document(
            page_content="a magenta scan",
            metadata={"image_base64": base64.b64encode(buffer.getvalue()).decode(), "source": "scan.png", "page": 2},
        ),
    ]

    green_id, magenta_id = add_documents(fresh_index, documents)

    (hit,) = fresh_index.search("magenta", k=1)
    assert (hit.page_id, hit.source, hit.page, hit.page_label) == (magenta_id, "scan.png", 2, "2")
    assert hit.text == "a magenta scan"
    (hit,) = fresh_index.search("green", k=1)
    assert (hit.page_id, hit.source, hit.metadata["team"]) == (green_id, str(green), "a")
    calls = fresh_index.embedder.image_calls  # type: ignore[attr-defined]
    assert fresh_index.add_image_file(green, metadata={"team": "a"}) == [green_id]  # the file's own page id
    assert fresh_index.embedder.image_calls == calls  # type: ignore[attr-defined]


def test_a_new_version_of_a_file_replaces_the_old_pages(fresh_index: ColPaliIndex, tmp_path: Path) -> None:
    path = tmp_path / "doc.pdf"
    write_pdf(path, [PdfPage((1, 0, 0), ["v1"]), PdfPage((0, 1, 0), ["v1"])])
    old = add_documents(fresh_index, ColPaliPDFLoader(path, dpi=36).load())
    write_pdf(path, [PdfPage((0, 0, 1), ["v2"])])

    new = add_documents(fresh_index, ColPaliPDFLoader(path, dpi=36).load())

    assert set(old).isdisjoint(new)
    assert fresh_index.count() == 1  # as add_pdf would leave it


def test_documents_without_an_image_are_refused_before_anything_is_written(
    fresh_index: ColPaliIndex, colour_pdfs: list[Path], tmp_path: Path
) -> None:
    good = ColPaliPDFLoader(colour_pdfs[1], dpi=36).load()
    with pytest.raises(InvalidInputError, match="carries no page image"):
        add_documents(fresh_index, [*good, Document(page_content="text only", metadata={"source": "a.txt"})])
    assert fresh_index.count() == 0

    cases: list[tuple[dict[str, Any], type[Exception], str]] = [
        ({"image_base64": "not base64!"}, InvalidInputError, "not valid base64"),
        ({"image_base64": base64.b64encode(b"no image").decode()}, InvalidInputError, "no readable image"),
        ({"image_path": str(tmp_path / "missing.png")}, DocumentError, "is not a file"),
        ({**good[0].metadata, "page": 0}, InvalidInputError, "1-based"),
        ({**good[0].metadata, "page_id": "other-00001"}, InvalidInputError, "does not match"),
        ({**good[0].metadata, "doc_id": "bad\x00id"}, InvalidInputError, "not a valid id"),
    ]
    for metadata, error, message in cases:
        with pytest.raises(error, match=message):
            add_documents(fresh_index, [Document(page_content="", metadata=metadata)])
    assert fresh_index.count() == 0
