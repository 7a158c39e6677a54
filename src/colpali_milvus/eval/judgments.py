"""Judged queries: which stored pages answer which question, read from the files people keep.

Two formats are read:

* **Plain JSONL**, one judged query per line::

      {"id": "q1", "query": "What was Q3 revenue?", "relevant": [{"source": "report.pdf", "page": 3}]}
      {"query": "Org chart", "relevant": [{"page_id": "3f2a...-00002", "grade": 2}, {"source": "a.pdf", "page": 1}]}

  ``id`` (or ``query_id``) is optional (the line number stands in); ``query`` is the question's text;
  ``relevant`` names pages by ``page_id`` or by ``source`` and 1-based ``page``, each with an optional
  integer ``grade`` (graded relevance, default 1; 0 means judged not relevant and is left out).
  Other top-level keys (an answer, a note) are ignored.

* **BEIR layout** (ViDoRe's): a folder with ``queries.jsonl`` (``{"_id": ..., "text": ...}``) and
  ``qrels/<split>.tsv`` (``query-id  corpus-id  score``, a header line optional), and optionally
  ``corpus.jsonl``. A corpus id becomes a page through ``corpus.jsonl`` when its record gives
  ``source`` and ``page`` (or ``page_id``); otherwise it names the stored page whose metadata key
  ``corpus_field`` (default ``corpus_id``) has that value, or, with ``corpus_field="page_id"``, the
  page with that id. Queries that ``qrels`` does not judge are left out.

Files are read as UTF-8; a leading byte order mark (which Excel and Windows editors write) is
skipped. Every error names the file and the line (:class:`JudgmentError`, an
:class:`~colpali_milvus.errors.InvalidInputError`).
"""

from __future__ import annotations

import csv
import json
import logging
import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from os import PathLike
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from colpali_milvus.errors import InvalidInputError

__all__ = [
    "DEFAULT_CORPUS_FIELD",
    "Judgment",
    "JudgmentError",
    "check_query_vectors",
    "PageRef",
    "read_beir",
    "read_judgments",
    "read_jsonl",
    "read_query_vectors",
]

logger = logging.getLogger(__name__)

FloatArray = npt.NDArray[np.float32]

#: The metadata key a BEIR corpus id is looked up under, unless ``corpus.jsonl`` names the page.
DEFAULT_CORPUS_FIELD = "corpus_id"


class JudgmentError(InvalidInputError):
    """A judgment file that cannot be used: malformed line, empty query, unknown page...

    ``where`` is ``"<file> line <n>"`` (or the file alone), and starts the message.
    """

    def __init__(self, where: str, message: str) -> None:
        super().__init__(f"{where}: {message}" if where else message)
        self.where = where


@dataclass(frozen=True, slots=True)
class PageRef:
    """One judged page as a judgment names it: by page id, by ``(source, page)``, or by a metadata value.

    Use the constructors :meth:`by_id`, :meth:`at` and :meth:`by_field`. ``page`` is 1-based.
    """

    page_id: str | None = None
    source: str | None = None
    page: int | None = None
    field: str | None = None
    value: str | None = None

    def __post_init__(self) -> None:
        kinds = [self.page_id is not None, self.source is not None or self.page is not None, self.field is not None]
        if sum(kinds) != 1:
            raise InvalidInputError("a judged page is named by page_id, by source and page, or by field and value")
        if self.page_id is not None and (not isinstance(self.page_id, str) or not self.page_id):
            raise InvalidInputError(f"page_id must be a non-empty string, got {self.page_id!r}")
        if kinds[1]:
            if not isinstance(self.source, str) or not self.source:
                raise InvalidInputError(f"source must be a non-empty string, got {self.source!r}")
            if isinstance(self.page, bool) or not isinstance(self.page, int) or self.page < 1:
                raise InvalidInputError(f"page must be a positive integer (1-based), got {self.page!r}")
        if self.field is not None and (not isinstance(self.value, str) or not self.value):
            raise InvalidInputError(f"the value of {self.field!r} must be a non-empty string, got {self.value!r}")

    @classmethod
    def by_id(cls, page_id: str) -> PageRef:
        return cls(page_id=page_id)

    @classmethod
    def at(cls, source: str | PathLike[str], page: int) -> PageRef:
        return cls(source=os.fspath(source), page=page)

    @classmethod
    def by_field(cls, field: str, value: object) -> PageRef:
        """The page whose metadata key (or typed column) ``field`` equals ``value`` (compared as text)."""
        if field == "page_id":
            return cls(page_id=str(value))
        return cls(field=field, value=str(value))

    def __str__(self) -> str:
        if self.page_id is not None:
            return f"page id {self.page_id!r}"
        if self.field is not None:
            return f"{self.field} {self.value!r}"
        return f"page {self.page} of {self.source!r}"


@dataclass(frozen=True)
class Judgment:
    """One judged query: its text and the pages that answer it, with their grades (all > 0).

    ``where`` says where it was read (``"judged.jsonl line 4"``), for error messages.
    """

    query_id: str
    query: str
    relevant: Mapping[PageRef, int]
    where: str = field(default="", compare=False)
    extra: Mapping[str, Any] = field(default_factory=dict, compare=False)

    def __post_init__(self) -> None:
        if not isinstance(self.query_id, str) or not self.query_id:
            raise JudgmentError(self.where, f"the query id must be a non-empty string, got {self.query_id!r}")
        if not isinstance(self.query, str) or not self.query.strip():
            raise JudgmentError(self.where, f"query {self.query_id!r} has no text (an empty query)")
        if not self.relevant:
            raise JudgmentError(self.where, f"query {self.query_id!r} names no relevant page")
        for ref, grade in self.relevant.items():
            if not isinstance(ref, PageRef):
                raise JudgmentError(self.where, f"relevant pages must be PageRefs, got {ref!r}")
            if isinstance(grade, bool) or not isinstance(grade, int) or grade < 1:
                raise JudgmentError(self.where, f"the grade of {ref} must be a positive integer, got {grade!r}")


# -- plain JSONL --------------------------------------------------------------------------------

_ITEM_KEYS = {"page_id", "source", "page", "grade", "relevance"}


def read_jsonl(path: str | PathLike[str]) -> list[Judgment]:
    """Judged queries from a plain JSONL file (see the module docstring for the format)."""
    judgments: list[Judgment] = []
    seen: dict[str, str] = {}
    for number, record in _json_lines(Path(path)):
        where = f"{path} line {number}"
        if "_id" in record and "query" not in record:
            raise JudgmentError(where, "this looks like a BEIR queries.jsonl: pass its folder instead")
        query = record.get("query")
        if not isinstance(query, str):
            raise JudgmentError(where, f'"query" must be the question\'s text, got {query!r}')
        query_id = _text_id(record.get("id", record.get("query_id", f"line-{number}")), where, "id")
        if query_id in seen:
            raise JudgmentError(where, f"query id {query_id!r} is used on {seen[query_id]} too")
        seen[query_id] = where
        items = record.get("relevant")
        if not isinstance(items, list):
            raise JudgmentError(where, f'"relevant" must be a list of pages, got {items!r}')
        relevant: dict[PageRef, int] = {}
        for item in items:
            ref, grade = _jsonl_item(item, where)
            if grade > 0:
                relevant[ref] = max(grade, relevant.get(ref, 0))
        extra = {key: value for key, value in record.items() if key not in {"id", "query_id", "query", "relevant"}}
        judgments.append(Judgment(query_id, query, relevant, where, extra))
    if not judgments:
        raise JudgmentError(str(path), "no judged queries in the file")
    return judgments


def _jsonl_item(item: object, where: str) -> tuple[PageRef, int]:
    if not isinstance(item, dict):
        raise JudgmentError(
            where, f'each relevant page must be an object like {{"source": ..., "page": ...}}, got {item!r}'
        )
    unknown = set(item) - _ITEM_KEYS
    if unknown:
        raise JudgmentError(
            where, f"unknown keys {sorted(unknown)} in a relevant page (it takes {', '.join(sorted(_ITEM_KEYS))})"
        )
    grade = _grade(item.get("grade", item.get("relevance", 1)), where)
    try:
        if "page_id" in item:
            if "source" in item or "page" in item:
                raise InvalidInputError("give page_id, or source and page, not both")
            return PageRef.by_id(item["page_id"]), grade
        if "source" not in item or "page" not in item:
            raise InvalidInputError(f"a relevant page needs page_id, or both source and page: {item!r}")
        return PageRef.at(item["source"], item["page"]), grade
    except InvalidInputError as error:
        raise JudgmentError(where, str(error)) from error
    except TypeError as error:  # os.fspath of a non-path
        raise JudgmentError(where, f"source must be a string, got {item['source']!r}") from error


def _grade(value: object, where: str) -> int:
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise JudgmentError(where, f"a grade must be a non-negative integer, got {value!r}")
    return value


def _text_id(value: object, where: str, what: str) -> str:
    if isinstance(value, bool) or not isinstance(value, (str, int)) or str(value) == "":
        raise JudgmentError(where, f"{what} must be a non-empty string or an integer, got {value!r}")
    return str(value)


def _json_lines(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """``(line number, object)`` of every non-blank line; a line that is not a JSON object is an error."""
    try:
        with path.open(encoding="utf-8-sig") as file:
            for number, line in enumerate(file, start=1):
                if not line.strip():
                    continue
                try:
                    record = json.loads(line)
                except json.JSONDecodeError as error:
                    raise JudgmentError(f"{path} line {number}", f"not valid JSON ({error.msg})") from error
                if not isinstance(record, dict):
                    raise JudgmentError(f"{path} line {number}", f"expected a JSON object, got {line.strip()[:80]}")
                yield number, record
    except UnicodeDecodeError as error:
        raise JudgmentError(str(path), f"not UTF-8 text ({error.reason})") from error
    except OSError as error:
        raise JudgmentError(str(path), f"cannot read the file ({error.strerror or error})") from error


# -- BEIR layout --------------------------------------------------------------------------------


def read_beir(
    folder: str | PathLike[str],
    *,
    split: str | None = None,
    qrels: str | PathLike[str] | None = None,
    corpus_field: str = DEFAULT_CORPUS_FIELD,
) -> list[Judgment]:
    """Judged queries from a BEIR-style folder: ``queries.jsonl``, ``qrels/<split>.tsv``, ``corpus.jsonl``.

    ``split`` picks the qrels file (``test`` when there are several and it is one of them); ``qrels``
    names the file directly. See the module docstring for how corpus ids become pages.
    """
    root = Path(folder)
    queries_path = root / "queries.jsonl"
    if not queries_path.is_file():
        raise JudgmentError(str(root), "no queries.jsonl (a BEIR folder has queries.jsonl and qrels/<split>.tsv)")
    qrels_path = Path(qrels) if qrels is not None else _qrels_file(root, split)
    texts: dict[str, tuple[str, str]] = {}
    for number, record in _json_lines(queries_path):
        where = f"{queries_path} line {number}"
        query_id = _text_id(record.get("_id"), where, '"_id"')
        text = record.get("text")
        if not isinstance(text, str):
            raise JudgmentError(where, f'"text" must be the query\'s text, got {text!r}')
        if query_id in texts:
            raise JudgmentError(where, f"query id {query_id!r} is used on {texts[query_id][1]} too")
        texts[query_id] = (text, where)
    pages = _corpus_pages(root / "corpus.jsonl", corpus_field)

    judged: dict[str, dict[PageRef, int]] = {}
    first_line: dict[str, str] = {}
    for where, query_id, corpus_id, grade in _qrels_rows(qrels_path):
        if query_id not in texts:
            raise JudgmentError(where, f"query id {query_id!r} is not in {queries_path}")
        ref = pages.get(corpus_id) or PageRef.by_field(corpus_field, corpus_id)
        grades = judged.setdefault(query_id, {})
        first_line.setdefault(query_id, where)
        if grade > 0:
            grades[ref] = max(grade, grades.get(ref, 0))
    judgments: list[Judgment] = []
    for query_id, grades in judged.items():
        if not grades:
            logger.warning("query %r has no relevant page in %s (all grades 0): left out", query_id, qrels_path)
            continue
        text, where = texts[query_id]
        judgments.append(Judgment(query_id, text, grades, where))
    if not judgments:
        raise JudgmentError(str(qrels_path), "no query with a relevant page")
    return judgments


def _qrels_file(root: Path, split: str | None) -> Path:
    folder = root / "qrels"
    if split is not None:
        path = folder / f"{split}.tsv"
        if not path.is_file():
            raise JudgmentError(str(root), f"no qrels/{split}.tsv")
        return path
    found = sorted(folder.glob("*.tsv")) if folder.is_dir() else []
    if len(found) == 1:
        return found[0]
    if not found:
        raise JudgmentError(str(root), "no qrels/*.tsv (a BEIR folder has queries.jsonl and qrels/<split>.tsv)")
    if (folder / "test.tsv").is_file():
        return folder / "test.tsv"
    raise JudgmentError(str(root), f"several qrels files ({', '.join(p.stem for p in found)}): pick one with split")


def _qrels_rows(path: Path) -> Iterator[tuple[str, str, str, int]]:
    """``(where, query id, corpus id, grade)`` of each line of a qrels TSV (3 columns, or TREC's 4)."""
    try:
        with path.open(encoding="utf-8-sig", newline="") as file:
            for number, row in enumerate(csv.reader(file, delimiter="\t"), start=1):
                where = f"{path} line {number}"
                cells = [cell.strip() for cell in row]
                if not any(cells):
                    continue
                if number == 1 and cells[0].lower() in {"query-id", "query_id", "qid"}:
                    continue  # the header
                if len(cells) == 4:  # TREC: query-id, iteration, corpus-id, score
                    cells = [cells[0], cells[2], cells[3]]
                if len(cells) != 3 or not cells[0] or not cells[1]:
                    raise JudgmentError(where, f"expected query-id<TAB>corpus-id<TAB>score, got {chr(9).join(row)!r}")
                try:
                    grade = float(cells[2])
                except ValueError as error:
                    raise JudgmentError(where, f"the score must be a number, got {cells[2]!r}") from error
                yield where, cells[0], cells[1], _grade(grade, where)
    except UnicodeDecodeError as error:
        raise JudgmentError(str(path), f"not UTF-8 text ({error.reason})") from error
    except OSError as error:
        raise JudgmentError(str(path), f"cannot read the file ({error.strerror or error})") from error


def _corpus_pages(path: Path, corpus_field: str) -> dict[str, PageRef]:
    """Corpus ids that ``corpus.jsonl`` maps to a page (``source`` + ``page``, or ``page_id``)."""
    if not path.is_file():
        return {}
    pages: dict[str, PageRef] = {}
    for number, record in _json_lines(path):
        where = f"{path} line {number}"
        corpus_id = _text_id(record.get("_id", record.get("corpus-id")), where, '"_id"')
        try:
            if record.get("page_id") is not None:
                pages[corpus_id] = PageRef.by_id(str(record["page_id"]))
            elif record.get("source") is not None and record.get("page") is not None:
                pages[corpus_id] = PageRef.at(str(record["source"]), record["page"])
            elif record.get(corpus_field) is not None:
                pages[corpus_id] = PageRef.by_field(corpus_field, record[corpus_field])
        except InvalidInputError as error:
            raise JudgmentError(where, str(error)) from error
    return pages


# -- any of them ----------------------------------------------------------------------------------


def read_judgments(
    path: str | PathLike[str], *, split: str | None = None, corpus_field: str = DEFAULT_CORPUS_FIELD
) -> list[Judgment]:
    """Judged queries from a BEIR folder, a BEIR qrels ``.tsv`` (its folder is the one above
    ``qrels/``) or a plain JSONL file."""
    target = Path(path)
    if target.is_dir():
        return read_beir(target, split=split, corpus_field=corpus_field)
    if target.suffix.lower() == ".tsv":
        return read_beir(target.parent.parent, qrels=target, corpus_field=corpus_field)
    if not target.exists():
        raise JudgmentError(str(target), "no such file or folder")
    return read_jsonl(target)


def read_query_vectors(path: str | PathLike[str]) -> dict[str, FloatArray]:
    """Query vectors from an ``.npz``: one ``(n_tokens, dim)`` array per query id (the array's name)."""
    try:
        with np.load(Path(path), allow_pickle=False) as data:
            vectors = {str(name): np.asarray(data[name], dtype=np.float32) for name in data.files}
    except (OSError, ValueError) as error:
        raise InvalidInputError(f"{path}: not a readable .npz of query vectors ({error})") from error
    for name, array in vectors.items():
        if array.ndim != 2 or array.shape[0] == 0:
            raise InvalidInputError(
                f"{path}: query {name!r} must be a non-empty (n_tokens, dim) array, got shape {array.shape}"
            )
    return vectors


def check_query_vectors(
    judgments: Sequence[Judgment], vectors: Mapping[str, Any] | Sequence[Any], dim: int
) -> list[FloatArray]:
    """One ``(n, dim)`` float32 array per judgment, from a mapping by query id or a list in order."""
    if isinstance(vectors, Mapping):
        missing = [j.query_id for j in judgments if j.query_id not in vectors]
        if missing:
            shown = ", ".join(repr(query_id) for query_id in missing[:5])
            more = f" and {len(missing) - 5} more" if len(missing) > 5 else ""
            raise InvalidInputError(f"no query vectors for {len(missing)} judged queries: {shown}{more}")
        arrays = [vectors[j.query_id] for j in judgments]
    else:
        arrays = list(vectors)
        if len(arrays) != len(judgments):
            raise InvalidInputError(f"{len(arrays)} query vector arrays for {len(judgments)} judged queries")
    checked: list[FloatArray] = []
    for judgment, array in zip(judgments, arrays, strict=True):
        matrix = np.asarray(array, dtype=np.float32)
        if matrix.ndim != 2 or matrix.shape[0] == 0 or matrix.shape[1] != dim:
            raise InvalidInputError(
                f"query {judgment.query_id!r}: expected a non-empty (n, {dim}) array, got shape {matrix.shape}"
            )
        if not np.isfinite(matrix).all():
            raise InvalidInputError(f"query {judgment.query_id!r}: vectors contain NaN or infinity")
        checked.append(np.ascontiguousarray(matrix))
    return checked
