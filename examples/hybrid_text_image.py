"""Text + image hybrid RAG: rank pages by how they look *and* by their words, answer from both.

    python examples/hybrid_text_image.py --pdf report.pdf --question "What was the 2023 total?"
    python examples/hybrid_text_image.py --pdf report.pdf --llm ollama --llm-model qwen2.5vl

1. ColPali retrieves the visually best candidates (charts, tables and scans included).
2. Their text layers (from the PDF, via pypdf) are scored against the question's words, and the two
   rankings are fused by reciprocal rank: a page that both looks right and names the right terms
   rises; a scanned page without text keeps its visual rank.
3. The chat model gets each page's image *and* its text layer: exact figures to quote, the image
   for layout and charts.
"""

from __future__ import annotations

import argparse
import re
import tempfile
from collections import Counter
from pathlib import Path
from typing import Any

from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.documents import Document
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from llm_choice import add_llm_arguments, langchain_chat_model

from colpali_milvus import DEFAULT_MODEL, ColPaliIndex
from colpali_milvus.errors import MissingDependencyError, ModelError
from colpali_milvus.langchain import ColPaliRetriever, pages_to_message

RRF_K = 60  # the usual reciprocal-rank-fusion constant: ranks matter, raw scores do not


def words(text: str) -> list[str]:
    return re.findall(r"[a-z0-9]+", text.lower())


def keyword_scores(question: str, documents: list[Document]) -> list[float]:
    """How many of the question's words each page's text layer contains (repeats count once per word)."""
    asked = set(words(question))
    return [float(sum(1 for word in Counter(words(doc.page_content)) if word in asked)) for doc in documents]


def fuse(documents: list[Document], question: str, k: int) -> list[Document]:
    """Reciprocal rank fusion of the visual order (as retrieved) and the keyword order."""
    text_scores = keyword_scores(question, documents)
    text_order = sorted(range(len(documents)), key=lambda i: -text_scores[i])
    fused = [1.0 / (RRF_K + rank) for rank in range(len(documents))]  # visual ranks
    for rank, i in enumerate(text_order):
        if text_scores[i] > 0:  # a page with no matching words gets no text vote
            fused[i] += 1.0 / (RRF_K + rank)
    order = sorted(range(len(documents)), key=lambda i: -fused[i])
    return [documents[i] for i in order[:k]]


class EchoChatModel(BaseChatModel):
    """Stand-in for a vision chat model: says what it was given (images, text layers)."""

    @property
    def _llm_type(self) -> str:
        return "echo-stand-in"

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        blocks = [block for message in messages for block in message.content if isinstance(block, dict)]
        images = sum(block.get("type") == "image" for block in blocks)
        texts = sum(block.get("type") == "text" and block["text"].startswith("Text layer") for block in blocks)
        answer = f"(stand-in model) I was shown {images} page image(s) and {texts} text layer(s)"
        return ChatResult(generations=[ChatGeneration(message=AIMessage(content=answer))])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pdf", type=Path, required=True)
    parser.add_argument("--model", default=DEFAULT_MODEL, help="ColPali-family checkpoint (hub id or folder)")
    parser.add_argument("--uri", help="Milvus uri (default: a temporary Milvus Lite file)")
    parser.add_argument("--question", default="What is the total revenue?")
    parser.add_argument("--k", type=int, default=2, help="pages handed to the chat model")
    parser.add_argument("--candidates", type=int, default=10, help="visual candidates to fuse")
    add_llm_arguments(parser)
    args = parser.parse_args()

    # The index is closed and the scratch folder (the default Milvus Lite file) removed on the way out.
    with (
        tempfile.TemporaryDirectory() as scratch,
        ColPaliIndex.from_model(args.model, uri=args.uri or str(Path(scratch) / "hybrid.db")) as index,
    ):
        index.add_pdf(args.pdf)
        candidates = ColPaliRetriever(index=index, k=args.candidates).invoke(args.question)
    pages = fuse(candidates, args.question, args.k)  # the documents carry their page images: no index needed
    for document in pages:
        print(
            f"page: {document.metadata['source']} p.{document.metadata['page_label']} "
            f"(visual score {document.metadata['score']:.3f})"
        )

    chat_model = langchain_chat_model(args, stand_in=EchoChatModel())
    answer = chat_model.invoke([pages_to_message(args.question, pages, include_text=True)])
    print(answer.content)


if __name__ == "__main__":
    try:
        main()
    except (ModelError, MissingDependencyError) as error:  # one clear line, not a traceback
        raise SystemExit(f"{Path(__file__).name}: {error}") from None
