"""A LangChain multimodal RAG chain: ColPaliRetriever -> page images in one message -> a vision chat model.

    python examples/langchain_rag.py --pdf report.pdf --question "What was Q3 revenue?"
    python examples/langchain_rag.py --pdf report.pdf --llm openai --llm-model gpt-4o-mini
    python examples/langchain_rag.py --pdf report.pdf --llm ollama --llm-model qwen2.5vl

Without --llm the chat model is a stand-in that reports which page images it was given, so the
chain runs anywhere (and in our tests, on a tiny local model). See llm_choice.py for the flags.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path
from typing import Any

from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.output_parsers import StrOutputParser
from langchain_core.outputs import ChatGeneration, ChatResult
from langchain_core.runnables import RunnableLambda, RunnablePassthrough
from llm_choice import add_llm_arguments, langchain_chat_model

from colpali_milvus import DEFAULT_MODEL, ColPaliIndex
from colpali_milvus.errors import MissingDependencyError, ModelError
from colpali_milvus.langchain import ColPaliRetriever, pages_to_message


class PageCountingChatModel(BaseChatModel):
    """Stand-in for a vision chat model: answers with the captions of the page images it received."""

    @property
    def _llm_type(self) -> str:
        return "page-counting-stand-in"

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        blocks = [block for message in messages for block in message.content if isinstance(block, dict)]
        images = sum(block.get("type") == "image" for block in blocks)
        captions = [block["text"] for block in blocks if block.get("type") == "text" and block["text"].startswith("[")]
        answer = f"(stand-in model) I was shown {images} page image(s): {', '.join(captions)}"
        return ChatResult(generations=[ChatGeneration(message=AIMessage(content=answer))])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pdf", type=Path, required=True)
    parser.add_argument("--model", default=DEFAULT_MODEL, help="ColPali-family checkpoint (hub id or folder)")
    parser.add_argument("--uri", help="Milvus uri (default: a temporary Milvus Lite file)")
    parser.add_argument("--question", default="What does the main chart show?")
    parser.add_argument("--k", type=int, default=2)
    add_llm_arguments(parser)
    args = parser.parse_args()

    chat_model: BaseChatModel = langchain_chat_model(args, stand_in=PageCountingChatModel())

    # The index is closed and the scratch folder (the default Milvus Lite file) removed on the way out.
    with (
        tempfile.TemporaryDirectory() as scratch,
        ColPaliIndex.from_model(args.model, uri=args.uri or str(Path(scratch) / "rag.db")) as index,
    ):
        index.add_pdf(args.pdf)
        retriever = ColPaliRetriever(index=index, k=args.k)
        chain = (
            {"docs": retriever, "question": RunnablePassthrough()}
            | RunnableLambda(lambda x: [pages_to_message(x["question"], x["docs"])])
            | chat_model
            | StrOutputParser()
        )
        print(chain.invoke(args.question))


if __name__ == "__main__":
    try:
        main()
    except (ModelError, MissingDependencyError) as error:  # one clear line, not a traceback
        raise SystemExit(f"{Path(__file__).name}: {error}") from None
