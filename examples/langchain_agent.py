"""A tool-calling agent that searches PDF pages and reads their images: the LangChain page-search tool.

    python examples/langchain_agent.py --pdf report.pdf --question "Which page shows the revenue table?"
    python examples/langchain_agent.py --pdf report.pdf --llm openai --llm-model gpt-4o-mini
    python examples/langchain_agent.py --pdf report.pdf --llm ollama --llm-model qwen2.5vl

The model calls ``search_pages`` (``ColPaliRetriever.as_tool()``). The tool message it gets back is a few
lines of text (source, page label, score and a snippet per page); the page images come as the tool's
artifact, and ``page_images_message`` shows them to the model in the next message, as image blocks
every vision chat model reads (OpenAI's API, for one, takes only text in a tool message). This loop is
what an agent runtime does; without --llm the model is a stand-in that calls the tool once and then
reports what it was shown. See llm_choice.py for the flags.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path
from typing import Any

from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, ToolMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from langchain_core.runnables import Runnable
from langchain_core.utils.function_calling import convert_to_openai_tool
from llm_choice import add_llm_arguments, langchain_chat_model

from colpali_milvus import DEFAULT_MODEL, ColPaliIndex
from colpali_milvus.errors import MissingDependencyError, ModelError
from colpali_milvus.langchain import ColPaliRetriever, page_images_message


class ToolCallingStandIn(BaseChatModel):
    """Stand-in for a tool-calling vision chat model: searches with the question, then says what it saw."""

    @property
    def _llm_type(self) -> str:
        return "tool-calling-stand-in"

    def bind_tools(self, tools: Any, **kwargs: Any) -> Runnable[Any, AIMessage]:
        return self.bind(tools=[convert_to_openai_tool(tool) for tool in tools], **kwargs)

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        if not any(isinstance(message, ToolMessage) for message in messages):
            question = str(messages[-1].content)
            call = {"name": kwargs["tools"][0]["function"]["name"], "args": {"query": question}, "id": "call_1"}
            reply = AIMessage(content="", tool_calls=[call])  # type: ignore[list-item]
        else:
            blocks = [block for message in messages for block in message.content if isinstance(block, dict)]
            images = sum(block.get("type") == "image" for block in blocks)
            reply = AIMessage(content=f"(stand-in model) I was shown {images} page image(s)")
        return ChatResult(generations=[ChatGeneration(message=reply)])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pdf", type=Path, required=True)
    parser.add_argument("--model", default=DEFAULT_MODEL, help="ColPali-family checkpoint (hub id or folder)")
    parser.add_argument("--uri", help="Milvus uri (default: a temporary Milvus Lite file)")
    parser.add_argument("--question", default="Which page shows the main chart, and what does it show?")
    parser.add_argument("--k", type=int, default=2, help="pages per search")
    parser.add_argument("--max-turns", type=int, default=4)
    add_llm_arguments(parser)
    args = parser.parse_args()

    chat_model = langchain_chat_model(args, stand_in=ToolCallingStandIn())

    # The index is closed and the scratch folder (the default Milvus Lite file) removed on the way out.
    with (
        tempfile.TemporaryDirectory() as scratch,
        ColPaliIndex.from_model(args.model, uri=args.uri or str(Path(scratch) / "agent.db")) as index,
    ):
        index.add_pdf(args.pdf)
        tool = ColPaliRetriever(index=index, k=args.k).as_tool()
        model = chat_model.bind_tools([tool])

        messages: list[BaseMessage] = [HumanMessage(args.question)]
        for _ in range(args.max_turns):
            reply = model.invoke(messages)
            messages.append(reply)
            if not reply.tool_calls:
                break
            results = [tool.invoke(call) for call in reply.tool_calls]  # ToolMessages: text + artifact
            messages += results
            for result in results:
                print(f"tool message ({len(str(result.content))} characters):\n{result.content}")
            pages = page_images_message(results)  # the page images, for the model's next turn
            if pages is not None:
                messages.append(pages)
    print(f"answer: {reply.content}")


if __name__ == "__main__":
    try:
        main()
    except (ModelError, MissingDependencyError) as error:  # one clear line, not a traceback
        raise SystemExit(f"{Path(__file__).name}: {error}") from None
