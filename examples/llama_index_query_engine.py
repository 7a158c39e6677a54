"""A LlamaIndex multimodal query engine over ColPali page retrieval.

    python examples/llama_index_query_engine.py --pdf report.pdf --question "What was Q3 revenue?"
    python examples/llama_index_query_engine.py --pdf report.pdf --llm openai --llm-model gpt-4o-mini
    python examples/llama_index_query_engine.py --pdf report.pdf --llm ollama --llm-model qwen2.5vl

Pages are indexed and retrieved as ImageNodes, and create_query_engine hands every retrieved page to
the LLM as an image block (with its source and page label), all in one call. It replaces
RetrieverQueryEngine.from_args(..., multimodal=True), which budgets each image at 2,125 tokens
against the LLM's declared context window (3,900 when the LLM declares none) and so sends one page
per call, or drops pages, once two do not fit. The LLM's context window therefore matters: declare
the real one (see llm_choice.py, --context-window). Without --llm the LLM is a stand-in that reports
how many page images it received.
"""

from __future__ import annotations

import argparse
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from llama_index.core.base.llms.types import ChatMessage, ChatResponse, CompletionResponse, ImageBlock, LLMMetadata
from llama_index.core.llms import LLM, CustomLLM
from llm_choice import add_llm_arguments, llama_index_llm

from colpali_milvus import DEFAULT_MODEL, ColPaliIndex
from colpali_milvus.errors import MissingDependencyError, ModelError
from colpali_milvus.llama_index import ColPaliRetriever, create_query_engine


class ImageCountingLLM(CustomLLM):
    """Stand-in for a multimodal chat LLM: says how many image blocks each call carried."""

    @property
    def metadata(self) -> LLMMetadata:
        # A real vision model's window; LlamaIndex's default (3,900) holds one page image as it counts them.
        return LLMMetadata(is_chat_model=True, model_name="image-counting-stand-in", context_window=32_768)

    def chat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponse:
        images = sum(isinstance(block, ImageBlock) for message in messages for block in message.blocks)
        return ChatResponse(message=ChatMessage(role="assistant", content=f"(stand-in LLM) saw {images} page image(s)"))

    def complete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> CompletionResponse:
        return CompletionResponse(text="(stand-in LLM) text only")

    def stream_complete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> Any:
        raise NotImplementedError


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pdf", type=Path, required=True)
    parser.add_argument("--model", default=DEFAULT_MODEL, help="ColPali-family checkpoint (hub id or folder)")
    parser.add_argument("--uri", help="Milvus uri (default: a temporary Milvus Lite file)")
    parser.add_argument("--question", default="What does the main chart show?")
    parser.add_argument("--top-k", type=int, default=2)
    add_llm_arguments(parser)
    args = parser.parse_args()

    llm: LLM = llama_index_llm(args, stand_in=ImageCountingLLM())

    # The index is closed and the scratch folder (the default Milvus Lite file) removed on the way out.
    with (
        tempfile.TemporaryDirectory() as scratch,
        ColPaliIndex.from_model(args.model, uri=args.uri or str(Path(scratch) / "engine.db")) as index,
    ):
        index.add_pdf(args.pdf)
        engine = create_query_engine(ColPaliRetriever(index, similarity_top_k=args.top_k), llm)
        response = engine.query(args.question)
    print(response)
    for source in response.source_nodes:
        print(f"  {source.node.metadata['source']} page {source.node.metadata['page_label']} score {source.score:.3f}")


if __name__ == "__main__":
    try:
        main()
    except (ModelError, MissingDependencyError) as error:  # one clear line, not a traceback
        raise SystemExit(f"{Path(__file__).name}: {error}") from None
