"""The LangChain adapter: standard retriever suite, call-time k/filter, loader, and an LCEL chain."""

from __future__ import annotations

import asyncio
import base64
import io
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.documents import Document
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from langchain_core.runnables import RunnableLambda, RunnablePassthrough
from langchain_tests.integration_tests import RetrieversIntegrationTests
from PIL import Image
from pydantic import Field

from colpali_milvus import ColPaliIndex, InvalidInputError
from colpali_milvus.langchain import ColPaliPDFLoader, ColPaliRetriever, image_block, pages_to_message


class TestColPaliRetrieverStandard(RetrieversIntegrationTests):
    """LangChain's own retriever test suite."""

    @pytest.fixture(autouse=True)
    def _index(self, indexed: ColPaliIndex) -> None:
        type(self).index = indexed

    @property
    def retriever_constructor(self) -> type[ColPaliRetriever]:
        return ColPaliRetriever

    @property
    def retriever_constructor_params(self) -> dict[str, Any]:
        return {"index": type(self).index}

    @property
    def retriever_query_example(self) -> str:
        return "the red revenue table"


def test_documents_carry_page_metadata_and_image(indexed: ColPaliIndex) -> None:
    (document,) = ColPaliRetriever(index=indexed, k=1).invoke("green chart")

    assert isinstance(document, Document)
    metadata = document.metadata
    assert (Path(metadata["source"]).name, metadata["page"], metadata["page_label"]) == ("report.pdf", 2, "2")
    assert metadata["kind"] == "report"
    assert metadata["score"] > 0
    assert document.id == metadata["page_id"]
    assert metadata["image_mime_type"] == "image/png"
    image = Image.open(io.BytesIO(base64.b64decode(metadata["image_base64"])))
    assert image.getpixel((150, 300))[1] > 200  # the green figure
    assert "Growth chart" in document.page_content


def test_call_time_k_and_filter_override_the_defaults(indexed: ColPaliIndex) -> None:
    retriever = ColPaliRetriever(index=indexed, k=4, filter={"kind": "report"})
    assert len(retriever.invoke("red")) == 3  # the default filter leaves the report's three pages
    manual = retriever.invoke("magenta", k=1, filter={"kind": "manual"})
    assert [(Path(d.metadata["source"]).name, d.metadata["page"]) for d in manual] == [("manual.pdf", 2)]
    assert len(retriever.batch(["red", "blue"], k=2)) == 2
    without_images = ColPaliRetriever(index=indexed, include_images=False).invoke("blue", k=1)
    assert "image_base64" not in without_images[0].metadata


def test_invalid_k_is_refused(indexed: ColPaliIndex) -> None:
    with pytest.raises(ValueError, match="greater than 0"):  # pydantic validation
        ColPaliRetriever(index=indexed, k=0)
    with pytest.raises(InvalidInputError):
        ColPaliRetriever(index=indexed).invoke("red", k=0)


async def test_ainvoke_does_not_block_the_event_loop(indexed: ColPaliIndex, monkeypatch: pytest.MonkeyPatch) -> None:
    retriever = ColPaliRetriever(index=indexed, k=1)
    original = indexed.search
    seen_threads: list[int] = []

    def slow_search(*args: Any, **kwargs: Any) -> Any:
        seen_threads.append(threading.get_ident())
        time.sleep(0.3)
        return original(*args, **kwargs)

    monkeypatch.setattr(indexed, "search", slow_search)
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        for _ in range(10):
            await asyncio.sleep(0.02)
            ticks += 1

    documents, _ = await asyncio.gather(retriever.ainvoke("blue"), ticker())
    assert documents[0].metadata["page"] == 3
    assert ticks == 10  # the loop kept running while the search slept
    assert seen_threads
    assert seen_threads[0] != threading.get_ident()


def test_pdf_loader_yields_one_page_image_document_per_page(colour_pdfs: list[Path]) -> None:
    loader = ColPaliPDFLoader(colour_pdfs[1], dpi=36, metadata={"kind": "manual"})
    documents = list(loader.lazy_load())

    assert [d.metadata["page"] for d in documents] == [1, 2]
    assert all(d.metadata["image_mime_type"] == "image/png" for d in documents)
    assert documents[0].metadata["kind"] == "manual"
    assert "Wiring" in documents[0].page_content
    assert Image.open(io.BytesIO(base64.b64decode(documents[1].metadata["image_base64"]))).size == (306, 396)
    assert len(loader.load()) == 2


class RecordingChatModel(BaseChatModel):
    """A fake vision chat model: records the messages it receives, answers with a fixed text."""

    received: list[list[BaseMessage]] = Field(default_factory=list)

    @property
    def _llm_type(self) -> str:
        return "recording-fake"

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        self.received.append(messages)
        return ChatResult(generations=[ChatGeneration(message=AIMessage(content="It is on page 3."))])


def test_lcel_chain_hands_page_images_to_the_chat_model(indexed: ColPaliIndex) -> None:
    model = RecordingChatModel()
    retriever = ColPaliRetriever(index=indexed, k=2)
    chain = (
        {"docs": retriever, "question": RunnablePassthrough()}
        | RunnableLambda(lambda x: [pages_to_message(x["question"], x["docs"])])
        | model
    )

    answer = chain.invoke("where is the blue diagram?")

    assert answer.content == "It is on page 3."
    (messages,) = model.received
    (message,) = messages
    assert isinstance(message, HumanMessage)
    images = [block for block in message.content if isinstance(block, dict) and block["type"] == "image"]
    assert len(images) == 2
    first = Image.open(io.BytesIO(base64.b64decode(images[0]["base64"])))
    assert first.getpixel((150, 300))[2] > 200  # the best page, the blue one, comes first
    assert message.content[-1] == {"type": "text", "text": "Question: where is the blue diagram?"}
    assert any("report.pdf, page 3" in block.get("text", "") for block in message.content if isinstance(block, dict))


def test_image_block_needs_an_image() -> None:
    with pytest.raises(InvalidInputError):
        image_block(Document(page_content="x", metadata={}))


def test_pages_to_message_can_send_each_text_layer_next_to_its_image(indexed: ColPaliIndex) -> None:
    docs = ColPaliRetriever(index=indexed, k=2).invoke("blue diagram")
    scanned = Document(page_content="", metadata=docs[1].metadata)  # a page without a text layer

    message = pages_to_message("q", [docs[0], scanned], include_text=True, max_text_chars=3)

    texts = [block["text"] for block in message.content if isinstance(block, dict) and block["type"] == "text"]
    layers = [text for text in texts if text.startswith("Text layer")]
    assert layers == [f"Text layer of this page:\n{docs[0].page_content.strip()[:3]} [...]"]
    kinds = [block["type"] for block in message.content if isinstance(block, dict)]
    assert kinds == ["text", "text", "text", "image", "text", "image", "text"]


def test_stored_metadata_never_stands_in_for_a_page_image(spoofed: tuple[ColPaliIndex, dict[str, str]]) -> None:
    index, ids = spoofed
    documents = {d.id: d for d in ColPaliRetriever(index=index, k=2).invoke("red blue")}

    missing = documents[ids["blue"]]  # its image file is gone; its metadata claims one
    assert not {"image_base64", "image_mime_type", "image_path"} & set(missing.metadata)
    assert missing.metadata["page_id"] == ids["blue"]
    assert missing.metadata["score"] != 99.0
    assert missing.metadata["team"] == "finance"  # the user's other keys are kept
    with pytest.raises(InvalidInputError, match="no page image"):
        image_block(missing)
    with pytest.raises(InvalidInputError):
        pages_to_message("what is on the page?", [missing])

    kept = documents[ids["red"]]
    assert kept.metadata["image_path"] == str(index.images.find(ids["red"]))
    block = image_block(kept)
    assert Image.open(io.BytesIO(base64.b64decode(block["base64"]))).getpixel((5, 5)) == (255, 0, 0)


def test_loader_metadata_cannot_replace_the_rendered_page(colour_pdfs: list[Path]) -> None:
    spoof = {"image_base64": "bm90IGFuIGltYWdl", "image_mime_type": "text/plain", "score": 1.0}
    (document, _) = ColPaliPDFLoader(colour_pdfs[1], dpi=36, metadata={**spoof, "kind": "manual"}).load()

    assert document.metadata["image_mime_type"] == "image/png"
    assert Image.open(io.BytesIO(base64.b64decode(document.metadata["image_base64"]))).size == (306, 396)
    assert document.metadata["page_id"] == document.id
    assert "score" not in document.metadata
    assert document.metadata["kind"] == "manual"
    with pytest.raises(InvalidInputError, match="reserved"):  # the page's own fields are refused outright
        ColPaliPDFLoader(colour_pdfs[1], dpi=36, metadata={"page_id": "x"}).load()
