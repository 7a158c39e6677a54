"""What a page-search tool says to a model, whatever the agent framework.

Its name and description, its argument's description and the short per-page text of its results
(source, page label, score, snippet) and image captions: one wording for the LangChain and the
LlamaIndex tools, which wrap it in their own types (no framework is imported here).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from colpali_milvus.errors import InvalidInputError

__all__ = [
    "DEFAULT_SNIPPET_CHARS",
    "DEFAULT_TOOL_DESCRIPTION",
    "DEFAULT_TOOL_NAME",
    "QUERY_DESCRIPTION",
    "check_snippet_chars",
    "page_caption",
    "summarize_results",
]

DEFAULT_TOOL_NAME = "search_pages"
DEFAULT_TOOL_DESCRIPTION = (
    "Search the indexed PDF pages and images by what they show (text, tables, charts, scans). "
    "Input: a natural-language question or description. Returns the best pages, each with its "
    "source file, page label, score and a short text snippet; the page images are shown to you next."
)
#: What the model is told of the tool's one argument, ``query``.
QUERY_DESCRIPTION = "what to look for in the pages: a question or a description"
#: At most this many characters of a page's text layer in a result line, by default.
DEFAULT_SNIPPET_CHARS = 200

_MAX_SOURCE_CHARS = 120


def check_snippet_chars(snippet_chars: int) -> int:
    """``snippet_chars`` as given; a negative one is refused."""
    if snippet_chars < 0:
        raise InvalidInputError(f"snippet_chars must be >= 0, got {snippet_chars}")
    return snippet_chars


def summarize_results(
    results: Sequence[tuple[Mapping[str, Any], float | None, str]],
    *,
    snippet_chars: int = DEFAULT_SNIPPET_CHARS,
    query: str | None = None,
) -> str:
    """A tool's text content: one short line per page (source, page label, score, snippet).

    ``results`` are ``(metadata, score, text)`` per page, best first (``score`` ``None`` when
    unknown); with ``query`` the first line names it.
    """
    about = "" if query is None else f" for {query!r}"
    if not results:
        return f"No pages found{about}."
    lines = [f"{len(results)} page(s) found{about}:"]
    for rank, (metadata, score, text) in enumerate(results, start=1):
        label = metadata.get("page_label", metadata.get("page", "?"))
        line = f"[{rank}] {_clip_source(str(metadata.get('source', '')))}, page {label}"
        if score is not None:
            line += f" (score {score:.2f})"
        snippet = _snippet(text, snippet_chars)
        lines.append(f"{line}: {snippet}" if snippet else line)
    return "\n".join(lines)


def page_caption(metadata: Mapping[str, Any]) -> str:
    """``[source, page label]``: the caption put before a page's image in a message to the model."""
    label = metadata.get("page_label", metadata.get("page", ""))
    return f"[{metadata.get('source', '')}, page {label}]"


def _snippet(text: str, limit: int) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: max(limit - 1, 0)].rstrip() + "…"


def _clip_source(source: str) -> str:
    return source if len(source) <= _MAX_SOURCE_CHARS else "…" + source[-(_MAX_SOURCE_CHARS - 1) :]
