"""Structured metadata filters compiled into safe Milvus boolean expressions.

The filter language is the small Mongo-style dialect LangChain vector stores use::

    {"source": "report.pdf"}                       source == "report.pdf"
    {"page": [1, 2]}                               page in [1, 2]
    {"page": {"$gte": 2, "$lt": 5}}                (page >= 2 and page < 5)
    {"$or": [{"source": "a.pdf"}, {"year": 2024}]} (source == "a.pdf" or metadata["year"] == 2024)

Keys are page columns (``source``, ``page``, ``page_label``, ``doc_id``, ``page_id``) or the user's
own metadata keys, which must be identifiers. Values are str, int, float or bool, type-checked per
column, and rendered as literals with every quote and backslash escaped, so no value can change the
shape of the expression. Raw Milvus expressions are accepted only through the store's explicit
``expr=`` parameter, never through here.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from typing import Any

from colpali_milvus.errors import FilterError
from colpali_milvus.store.schema import FILTER_COLUMN_TYPES as COLUMN_TYPES
from colpali_milvus.types import PAGE_ID_FORBIDDEN_CHARS

__all__ = ["COLUMN_TYPES", "Filter", "compile_filter", "join_clauses", "string_literal"]

Filter = Mapping[str, Any]

_COMPARISONS = {"$eq": "==", "$ne": "!=", "$gt": ">", "$gte": ">=", "$lt": "<", "$lte": "<="}
_MEMBERSHIP = {"$in", "$nin"}
_LOGICAL = {"$and": " and ", "$or": " or "}
_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,127}")
_ESCAPES = {"\\": "\\\\", '"': '\\"', "\n": "\\n", "\r": "\\r", "\t": "\\t"}


def compile_filter(filter: Filter | None) -> str:
    """Compile a structured filter into a Milvus expression; ``None`` (no filter) gives ``""``.

    An empty filter (``{}``, or ``{}`` inside ``$and``/``$or``) is refused rather than read as
    "match everything": in a ``delete`` that reading would wipe the collection.
    """
    if filter is None:
        return ""
    return _compile_mapping(filter)


def _compile_mapping(filter: Any) -> str:
    if not isinstance(filter, Mapping):
        raise FilterError(f"a filter must be a mapping, got {type(filter).__name__}")
    if not filter:
        raise FilterError("empty filter: give at least one condition (or no filter at all)")
    clauses = [_compile_entry(key, value) for key, value in filter.items()]
    return _join(clauses, " and ")


def _compile_entry(key: str, value: Any) -> str:
    if not isinstance(key, str):
        raise FilterError(f"filter keys must be strings, got {key!r}")
    if key in _LOGICAL:
        if not isinstance(value, Sequence) or isinstance(value, str) or not value:
            raise FilterError(f"{key} takes a non-empty list of filters")
        return _join([_compile_mapping(item) for item in value], _LOGICAL[key])
    if key.startswith("$"):
        raise FilterError(f"unknown filter operator {key!r}")
    field = _field(key)
    if isinstance(value, Mapping):
        if not value:
            raise FilterError(f"empty operator mapping for {key!r}")
        return _join([_compile_operator(field, key, op, operand) for op, operand in value.items()], " and ")
    if isinstance(value, list | tuple | set | frozenset):
        return _compile_operator(field, key, "$in", list(value))
    return _compile_operator(field, key, "$eq", value)


def _compile_operator(field: str, key: str, op: str, operand: Any) -> str:
    if op in _COMPARISONS:
        return f"{field} {_COMPARISONS[op]} {_literal(key, operand)}"
    if op in _MEMBERSHIP:
        if isinstance(operand, str | bytes) or not isinstance(operand, Sequence | set | frozenset):
            raise FilterError(f"{op} on {key!r} takes a list of values")
        values = list(operand)
        if not values:
            raise FilterError(f"{op} on {key!r} needs at least one value")
        literals = [_literal(key, value) for value in values]
        if key in COLUMN_TYPES:
            keyword = "in" if op == "$in" else "not in"
            return f"{field} {keyword} [{', '.join(literals)}]"
        # Milvus cannot apply `in` to a JSON path everywhere (Milvus Lite refuses it): spell it out.
        comparison, joiner = ("==", " or ") if op == "$in" else ("!=", " and ")
        return _join([f"{field} {comparison} {literal}" for literal in literals], joiner)
    raise FilterError(f"unknown filter operator {op!r} on {key!r}")


def _field(key: str) -> str:
    if key in COLUMN_TYPES:
        return key
    if not _KEY.fullmatch(key):
        raise FilterError(f"metadata filter keys must be identifiers ([A-Za-z_][A-Za-z0-9_]*), got {key!r}")
    return f'metadata["{key}"]'


def _literal(key: str, value: Any) -> str:
    expected = COLUMN_TYPES.get(key)
    if isinstance(value, bool):
        if expected is not None:
            raise FilterError(f"{key!r} takes {expected.__name__} values, got a bool")
        return "true" if value else "false"
    if isinstance(value, int):
        if expected not in (None, int):
            raise FilterError(f"{key!r} takes {expected.__name__} values, got {value!r}")
        return str(int(value))
    if isinstance(value, float):
        if expected not in (None,):
            raise FilterError(f"{key!r} takes {expected.__name__} values, got {value!r}")
        if not math.isfinite(value):
            raise FilterError(f"filter values must be finite, got {value!r} for {key!r}")
        return repr(value)
    if isinstance(value, str):
        if expected not in (None, str):
            raise FilterError(f"{key!r} takes {expected.__name__} values, got {value!r}")
        return string_literal(value)
    raise FilterError(f"filter values must be str, int, float or bool, got {type(value).__name__} for {key!r}")


def string_literal(value: str) -> str:
    """``value`` as a Milvus string literal, quoted, with every quote, backslash and line break escaped.

    Refuses the control characters no literal can spell: the same ones a page id may not hold
    (:data:`~colpali_milvus.types.PAGE_ID_FORBIDDEN_CHARS`), so every page id has a literal.
    """
    if PAGE_ID_FORBIDDEN_CHARS.search(value):
        raise FilterError("filter strings may not contain control characters")
    escaped = "".join(_ESCAPES.get(char, char) for char in value)
    return f'"{escaped}"'


def _join(clauses: list[str], joiner: str) -> str:
    if len(clauses) == 1:
        return clauses[0]
    return "(" + joiner.join(clauses) + ")"


def join_clauses(*clauses: str | None) -> str:
    """AND together Milvus expressions, skipping empty ones (``""`` when none is left)."""
    present = [clause for clause in clauses if clause]
    if len(present) <= 1:
        return present[0] if present else ""
    return " and ".join(f"({clause})" for clause in present)
