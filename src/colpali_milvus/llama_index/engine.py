"""A query engine that hands every retrieved page to the LLM in one call.

Why not ``RetrieverQueryEngine.from_args(retriever=..., llm=..., multimodal=True)`` alone:
LlamaIndex (0.14) budgets each image block at a flat 2,125 tokens against the LLM's declared
context window, and that window is 3,900 tokens for every LLM that declares none (``OpenAILike``,
``CustomLLM`` and mock LLMs among them). Two page images then do not fit one prompt, so the
``compact`` / ``refine`` / ``tree_summarize`` / ``accumulate`` modes send one page per LLM call
(the final answer comes from a call that saw one page) and ``simple_summarize`` drops every image
but the first. No error is raised in either case.

:class:`PageSynthesizer` never splits or truncates: all pages go into one call. Before the call
it compares the prompt's size, as LlamaIndex counts it, with the context window (the LLM's
declared one, or ``context_window=``) and raises :class:`InvalidInputError` if it does not fit,
naming the fix, instead of silently sending fewer pages.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from llama_index.core.base.base_retriever import BaseRetriever
from llama_index.core.base.llms.types import ChatMessage
from llama_index.core.callbacks import CallbackManager
from llama_index.core.constants import DEFAULT_CONTEXT_WINDOW, DEFAULT_NUM_OUTPUTS
from llama_index.core.llms import LLM
from llama_index.core.postprocessor.types import BaseNodePostprocessor
from llama_index.core.prompts import BasePromptTemplate
from llama_index.core.prompts.prompt_utils import get_empty_prompt_messages
from llama_index.core.query_engine import RetrieverQueryEngine
from llama_index.core.response_synthesizers import SimpleSummarize
from llama_index.core.types import RESPONSE_TEXT_TYPE

from colpali_milvus.errors import InvalidInputError

__all__ = ["PageSynthesizer", "create_query_engine"]


class PageSynthesizer(SimpleSummarize):
    """A multimodal response synthesizer: one LLM call with every retrieved page as an image block.

    Args:
        llm: a chat LLM that reads images (default: ``Settings.llm``).
        context_window: the model's context window in tokens, when the LLM does not declare its
            real one (default: ``llm.metadata.context_window``).
        chat_content_qa_template: the prompt (default: LlamaIndex's ``CHAT_CONTENT_QA_PROMPT``).
        streaming: return a streaming response.
    """

    def __init__(
        self,
        llm: LLM | None = None,
        *,
        context_window: int | None = None,
        chat_content_qa_template: BasePromptTemplate | None = None,
        streaming: bool = False,
        callback_manager: CallbackManager | None = None,
    ) -> None:
        if context_window is not None and context_window <= 0:
            raise InvalidInputError(f"context_window must be positive, got {context_window}")
        super().__init__(
            llm=llm,
            callback_manager=callback_manager,
            chat_content_qa_template=chat_content_qa_template,
            streaming=streaming,
            multimodal=True,
        )
        self._context_window = context_window

    @property
    def context_window(self) -> int:
        """The window the prompt must fit: ``context_window=`` or the LLM's declared one."""
        return self._context_window or self._llm.metadata.context_window

    def check_fits(self, query_str: str, message_chunks: Sequence[ChatMessage]) -> int:
        """The prompt's size in tokens, as LlamaIndex counts them; raises if it exceeds the window."""
        template = self._chat_content_qa_template.partial_format(query_str=query_str)
        num_output = self._llm.metadata.num_output
        required = (
            sum(message.estimate_tokens() for message in get_empty_prompt_messages(template))
            + sum(message.estimate_tokens() for message in message_chunks)
            + (num_output if num_output > 0 else DEFAULT_NUM_OUTPUTS)
        )
        window = self.context_window
        if required > window:
            declared = "given" if self._context_window else "declared by the LLM"
            if not self._context_window and window == DEFAULT_CONTEXT_WINDOW:
                declared = "LlamaIndex's default for an LLM that declares none"
            raise InvalidInputError(
                f"{len(message_chunks)} pages need about {required:,} tokens as LlamaIndex counts them "
                f"(2,125 per image, plus text and the answer), more than the context window of {window:,} "
                f"({declared}). Declare the model's real window (e.g. OpenAILike(..., context_window=128_000), "
                "Ollama(..., context_window=32_768)), or pass it as create_query_engine(..., context_window=...) "
                "or PageSynthesizer(..., context_window=...), or retrieve fewer pages."
            )
        return required

    def get_response_from_messages(
        self, query_str: str, message_chunks: Sequence[ChatMessage], **response_kwargs: Any
    ) -> RESPONSE_TEXT_TYPE:
        self.check_fits(query_str, message_chunks)
        template = self._chat_content_qa_template.partial_format(query_str=query_str)
        if self._streaming:
            return self._llm.stream(template, context_messages=list(message_chunks), **response_kwargs)
        return self._llm.predict(template, context_messages=list(message_chunks), **response_kwargs) or "Empty Response"

    async def aget_response_from_messages(
        self, query_str: str, message_chunks: Sequence[ChatMessage], **response_kwargs: Any
    ) -> RESPONSE_TEXT_TYPE:
        self.check_fits(query_str, message_chunks)
        template = self._chat_content_qa_template.partial_format(query_str=query_str)
        if self._streaming:
            return await self._llm.astream(template, context_messages=list(message_chunks), **response_kwargs)
        answer = await self._llm.apredict(template, context_messages=list(message_chunks), **response_kwargs)
        return answer or "Empty Response"


def create_query_engine(
    retriever: BaseRetriever,
    llm: LLM | None = None,
    *,
    context_window: int | None = None,
    streaming: bool = False,
    chat_content_qa_template: BasePromptTemplate | None = None,
    node_postprocessors: list[BaseNodePostprocessor] | None = None,
    callback_manager: CallbackManager | None = None,
) -> RetrieverQueryEngine:
    """A ``RetrieverQueryEngine`` whose LLM sees every retrieved page, in one call (see :class:`PageSynthesizer`).

    Use it where ``RetrieverQueryEngine.from_args(retriever=..., llm=..., multimodal=True)``
    would go; ``context_window`` is the model's window when the LLM does not declare it.
    """
    synthesizer = PageSynthesizer(
        llm,
        context_window=context_window,
        chat_content_qa_template=chat_content_qa_template,
        streaming=streaming,
        callback_manager=callback_manager,
    )
    return RetrieverQueryEngine(
        retriever=retriever,
        response_synthesizer=synthesizer,
        node_postprocessors=node_postprocessors,
        callback_manager=callback_manager,
    )
