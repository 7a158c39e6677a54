from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from colpali_milvus import FilterError, InvalidInputError
from colpali_milvus.store.filters import compile_filter


@pytest.mark.parametrize(
    ("structured", "expected"),
    [
        (None, ""),
        ({"source": "a.pdf"}, 'source == "a.pdf"'),
        ({"page": [1, 2]}, "page in [1, 2]"),
        ({"page": {"$gte": 2, "$lt": 5}}, "(page >= 2 and page < 5)"),
        ({"source": {"$nin": ["a", "b"]}}, 'source not in ["a", "b"]'),
        ({"year": 2024}, 'metadata["year"] == 2024'),
        ({"draft": True}, 'metadata["draft"] == true'),
        ({"score": 0.5}, 'metadata["score"] == 0.5'),
        ({"year": [2023, 2024]}, '(metadata["year"] == 2023 or metadata["year"] == 2024)'),
        ({"year": {"$nin": [1, 2]}}, '(metadata["year"] != 1 and metadata["year"] != 2)'),
        (
            {"$or": [{"source": "a.pdf"}, {"page": 3}]},
            '(source == "a.pdf" or page == 3)',
        ),
        (
            {"source": "a.pdf", "page": 1},
            '(source == "a.pdf" and page == 1)',
        ),
    ],
)
def test_structured_filters_compile_to_milvus_expressions(structured: dict | None, expected: str) -> None:
    assert compile_filter(structured) == expected


@pytest.mark.parametrize(
    "empty", [{}, {"$or": [{}]}, {"$and": [{"page": 1}, {}]}, {"$or": [{"source": "a"}, {"$and": [{}]}]}]
)
def test_an_empty_filter_clause_is_refused_never_read_as_match_all(empty: dict) -> None:
    with pytest.raises(FilterError, match="empty filter"):
        compile_filter(empty)


def test_quotes_and_backslashes_are_escaped() -> None:
    assert compile_filter({"source": 'a"b\\c.pdf'}) == 'source == "a\\"b\\\\c.pdf"'
    injected = compile_filter({"source": '" or page > 0 or source == "'})
    assert injected == 'source == "\\" or page > 0 or source == \\""'


@pytest.mark.parametrize(
    "bad",
    [
        {"page": "1"},  # page is an int column
        {"source": 3},
        {"page": True},
        {"page": 1.5},
        {"bad key": 1},
        {'x"]': 1},
        {"$where": "1"},
        {"page": {"$regex": "1"}},
        {"page": {"$in": []}},
        {"page": {"$in": "12"}},
        {"$or": []},
        {"year": float("nan")},
        {"year": None},
        {"year": {"nested": 1}},
        {"source": "line\x00break"},
        "source == 'x'",
    ],
)
def test_unsafe_or_ill_typed_filters_are_refused(bad: object) -> None:
    with pytest.raises(FilterError) as raised:
        compile_filter(bad)  # type: ignore[arg-type]
    assert isinstance(raised.value, InvalidInputError)


def _parse_string_literal(expression: str) -> str:
    """Undo the escaping of one double-quoted literal, the way Milvus's parser reads it."""
    assert expression.startswith('source == "')
    assert expression.endswith('"')
    body = expression[len('source == "') : -1]
    out, i = [], 0
    escapes = {"\\": "\\", '"': '"', "n": "\n", "r": "\r", "t": "\t"}
    while i < len(body):
        char = body[i]
        if char == "\\":
            out.append(escapes[body[i + 1]])
            i += 2
        else:
            assert char != '"', "an unescaped quote would end the literal early"
            out.append(char)
            i += 1
    return "".join(out)


@given(
    st.text(
        alphabet=st.characters(
            blacklist_categories=("Cs",),
            blacklist_characters="\x00\x01\x02\x03\x04\x05\x06\x07\x08\x0b\x0c\x0e\x0f\x10\x11\x12\x13\x14\x15\x16\x17\x18\x19\x1a\x1b\x1c\x1d\x1e\x1f\x7f",
        )
    )
)
def test_any_string_value_stays_one_literal(value: str) -> None:
    assert _parse_string_literal(compile_filter({"source": value})) == value
