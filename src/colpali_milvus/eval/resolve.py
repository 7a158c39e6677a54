"""Judged pages to stored page ids: by id, by ``(source, page)`` or by a metadata value.

Page ids derive from file content, so judgment files name pages the way people know them: a file
and a page number. A source matches a stored source exactly, or as the absolute path it resolves to
(``colpali-milvus index`` stores absolute paths), or as the tail of a stored path (``report.pdf``,
``q3/report.pdf``) when exactly one stored source ends that way. A page the collection does not hold
is an error naming the judgment's line (``allow_unknown=True`` leaves such pages out instead).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePath
from typing import TYPE_CHECKING

from colpali_milvus.eval.judgments import Judgment, JudgmentError, PageRef

if TYPE_CHECKING:
    from colpali_milvus.store.milvus import MilvusMultiVectorStore
    from colpali_milvus.types import StoredPage

__all__ = ["ResolvedJudgment", "resolve"]

logger = logging.getLogger(__name__)

_PAGE_BATCH = 500
_SHOWN_PROBLEMS = 10


@dataclass(frozen=True)
class ResolvedJudgment:
    """A judgment with its pages resolved in one collection: ``grades`` maps page id to grade (> 0)."""

    judgment: Judgment
    grades: Mapping[str, int]

    @property
    def query_id(self) -> str:
        return self.judgment.query_id


def resolve(
    judgments: Sequence[Judgment], store: MilvusMultiVectorStore, *, allow_unknown: bool = False
) -> list[ResolvedJudgment]:
    """Resolve every judged page to a stored page id; raise :class:`JudgmentError` naming the lines that fail.

    A source matching several stored sources is always an error; a page the collection does not hold
    is one unless ``allow_unknown`` (then it is left out, and so is a query left with no page).
    """
    refs = {ref for judgment in judgments for ref in judgment.relevant}
    catalogue = _Catalogue(store, refs)
    resolved: list[ResolvedJudgment] = []
    unknown: list[str] = []
    ambiguous: list[str] = []
    for judgment in judgments:
        grades: dict[str, int] = {}
        for ref, grade in judgment.relevant.items():
            ids, problem = catalogue.find(ref)
            if problem is not None:
                (ambiguous if problem.ambiguous else unknown).append(f"{judgment.where}: {problem.message}")
                continue
            for page_id in ids:
                grades[page_id] = max(grade, grades.get(page_id, 0))
        if grades:
            resolved.append(ResolvedJudgment(judgment, grades))
        elif allow_unknown:
            logger.warning("%s: none of the pages of query %r is stored: left out", judgment.where, judgment.query_id)
    problems = ambiguous + ([] if allow_unknown else unknown)
    if problems:
        raise _problems(problems, store.collection_name)
    if unknown:
        logger.warning("%d judged pages are not in collection %r: left out", len(unknown), store.collection_name)
    if not resolved:
        raise JudgmentError("", f"no judged page is stored in collection {store.collection_name!r}")
    return resolved


def _problems(problems: Sequence[str], collection: str) -> JudgmentError:
    shown = list(problems[:_SHOWN_PROBLEMS])
    if len(problems) > len(shown):
        shown.append(f"... and {len(problems) - len(shown)} more")
    head = "" if len(problems) == 1 else f"{len(problems)} judged pages do not resolve in collection {collection!r}:\n"
    error = JudgmentError("", head + "\n".join(shown))
    error.where = problems[0].split(": ", 1)[0]
    return error


@dataclass(frozen=True)
class _Problem:
    message: str
    ambiguous: bool = False  # a source that matches several stored ones: an error even with allow_unknown


class _Catalogue:
    """What the collection holds, read once, as far as the references need it."""

    def __init__(self, store: MilvusMultiVectorStore, refs: Iterable[PageRef]) -> None:
        refs = list(refs)
        self.collection = store.collection_name
        wanted_ids = [ref.page_id for ref in refs if ref.page_id is not None]
        self.ids = store.existing_page_ids(wanted_ids) if wanted_ids else set()
        fields = {ref.field for ref in refs if ref.field is not None}
        self.by_source: dict[str, dict[int, list[str]]] = {}
        self.by_field: dict[str, dict[str, list[str]]] = {name: {} for name in fields}
        if any(ref.page_id is None for ref in refs):
            for page in _stored_pages(store):
                self.by_source.setdefault(page.source, {}).setdefault(page.page, []).append(page.page_id)
                for name in fields:
                    value = _field(page, name)
                    if value is not None:
                        self.by_field[name].setdefault(str(value), []).append(page.page_id)
        self._sources: dict[str, list[str]] = {}

    def find(self, ref: PageRef) -> tuple[list[str], _Problem | None]:
        """The page ids ``ref`` names, or the problem that stops it resolving."""
        if ref.page_id is not None:
            return ([ref.page_id], None) if ref.page_id in self.ids else ([], _Problem(f"no stored page with {ref}"))
        if ref.field is not None:
            assert ref.value is not None
            found = self.by_field[ref.field].get(ref.value, [])
            return (found, None) if found else ([], _Problem(f"no stored page has {ref.field} = {ref.value!r}"))
        assert ref.source is not None and ref.page is not None
        sources = self._matching(ref.source)
        if len(sources) > 1:
            shown = ", ".join(repr(source) for source in sources[:3])
            message = f"{ref.source!r} matches {len(sources)} stored sources ({shown}); give more of the path"
            return [], _Problem(message, ambiguous=True)
        if not sources:
            return [], _Problem(f"no stored source matches {ref.source!r}{self._examples()}")
        pages = self.by_source[sources[0]]
        found = pages.get(ref.page, [])
        if found:
            return found, None
        named = "" if sources[0] == ref.source else f" (stored as {sources[0]!r})"
        return [], _Problem(f"no stored page {ref.page} of {ref.source!r}{named}, which has pages {_ranges(pages)}")

    def _matching(self, source: str) -> list[str]:
        if source not in self._sources:
            self._sources[source] = _match_source(source, self.by_source.keys())
        return self._sources[source]

    def _examples(self) -> str:
        if not self.by_source:
            return f" (collection {self.collection!r} holds no pages with a source)"
        some = ", ".join(repr(source) for source in sorted(self.by_source)[:2])
        return f" (collection {self.collection!r} holds {len(self.by_source)} sources, e.g. {some})"


def _match_source(source: str, stored: Iterable[str]) -> list[str]:
    stored = [name for name in stored if name]
    if source in stored:
        return [source]
    try:
        absolute = str(Path(source).expanduser().resolve())
    except (OSError, RuntimeError, ValueError):
        absolute = source
    if absolute in stored:
        return [absolute]
    tail = PurePath(source).parts
    return sorted(name for name in stored if tail and PurePath(name).parts[-len(tail) :] == tail)


def _stored_pages(store: MilvusMultiVectorStore) -> Iterable[StoredPage]:
    ids = store.page_ids()
    for first in range(0, len(ids), _PAGE_BATCH):
        yield from store.get_pages(ids[first : first + _PAGE_BATCH]).values()


def _field(page: StoredPage, name: str) -> object:
    if name in {"source", "page", "page_label", "doc_id"}:
        return getattr(page, name)
    return page.metadata.get(name)


def _ranges(pages: Mapping[int, object]) -> str:
    """``1-4, 7`` for pages {1, 2, 3, 4, 7}."""
    numbers = sorted(pages)
    spans: list[str] = []
    start = previous = numbers[0]
    for number in [*numbers[1:], None]:
        if number is not None and number == previous + 1:
            previous = number
            continue
        spans.append(str(start) if start == previous else f"{start}-{previous}")
        if number is not None:
            start = previous = number
    return ", ".join(spans)
