"""The chat model behind the examples, chosen by flag: a stand-in, any OpenAI-compatible server, or Ollama.

    --llm openai --llm-model gpt-4o-mini                      # OPENAI_API_KEY from the environment
    --llm openai --base-url http://localhost:8000/v1 --llm-model Qwen/Qwen2.5-VL-7B-Instruct   # vLLM, LM Studio...
    --llm ollama --llm-model qwen2.5vl                        # a local Ollama (--base-url for another host)

The integrations are imported only when chosen: ``pip install langchain-openai langchain-ollama``
for LangChain, ``pip install llama-index-llms-openai-like llama-index-llms-ollama`` for LlamaIndex.
"""

from __future__ import annotations

import argparse
import os
from typing import Any

DEFAULT_MODELS = {"openai": "gpt-4o-mini", "ollama": "qwen2.5vl"}
# LlamaIndex budgets prompts against the window an LLM declares (3,900 tokens when it declares none,
# too small for two page images as it counts them): declare it. Ollama allocates what it is given.
DEFAULT_CONTEXT_WINDOWS = {"openai": 128_000, "ollama": 8192}


def add_llm_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--llm", choices=["stand-in", "openai", "ollama"], default="stand-in")
    parser.add_argument("--llm-model", help=f"chat model name (default: {DEFAULT_MODELS})")
    parser.add_argument("--base-url", help="OpenAI-compatible endpoint (…/v1) or Ollama host")
    parser.add_argument(
        "--context-window",
        type=int,
        help=f"the chat model's context window in tokens, for LlamaIndex (default: {DEFAULT_CONTEXT_WINDOWS})",
    )


def _api_key(args: argparse.Namespace) -> str:
    # Local OpenAI-compatible servers take any key; OpenAI itself needs the real one.
    return os.environ.get("OPENAI_API_KEY") or ("not-needed" if args.base_url else "")


def langchain_chat_model(args: argparse.Namespace, stand_in: Any) -> Any:
    model = args.llm_model or DEFAULT_MODELS.get(args.llm)
    if args.llm == "openai":
        from langchain_openai import ChatOpenAI

        return ChatOpenAI(model=model, base_url=args.base_url, api_key=_api_key(args), temperature=0)
    if args.llm == "ollama":
        from langchain_ollama import ChatOllama

        return ChatOllama(model=model, base_url=args.base_url, temperature=0)
    return stand_in


def llama_index_llm(args: argparse.Namespace, stand_in: Any) -> Any:
    model = args.llm_model or DEFAULT_MODELS.get(args.llm)
    if args.llm == "openai":
        from llama_index.llms.openai_like import OpenAILike

        return OpenAILike(
            model=model,
            api_base=args.base_url or "https://api.openai.com/v1",
            api_key=_api_key(args),
            is_chat_model=True,
            context_window=args.context_window or DEFAULT_CONTEXT_WINDOWS["openai"],
            temperature=0,
        )
    if args.llm == "ollama":
        from llama_index.llms.ollama import Ollama

        # context_window given: otherwise the client asks the server for it before the first chat.
        return Ollama(
            model=model,
            base_url=args.base_url or "http://localhost:11434",
            request_timeout=300,
            context_window=args.context_window or DEFAULT_CONTEXT_WINDOWS["ollama"],
        )
    return stand_in
