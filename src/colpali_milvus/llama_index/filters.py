"""LlamaIndex ``MetadataFilters`` translated into the core's structured filter (never a raw string)."""

from __future__ import annotations

from typing import Any

from llama_index.core.vector_stores.types import FilterCondition, FilterOperator, MetadataFilter, MetadataFilters

from colpali_milvus.errors import FilterError

__all__ = ["to_filter"]

_OPERATORS = {
    FilterOperator.EQ: "$eq",
    FilterOperator.NE: "$ne",
    FilterOperator.GT: "$gt",
    FilterOperator.GTE: "$gte",
    FilterOperator.LT: "$lt",
    FilterOperator.LTE: "$lte",
    FilterOperator.IN: "$in",
    FilterOperator.NIN: "$nin",
}
_CONDITIONS = {FilterCondition.AND: "$and", FilterCondition.OR: "$or"}


def to_filter(filters: MetadataFilters | None) -> dict[str, Any] | None:
    """``MetadataFilters`` (nested, AND/OR) as a structured filter for :meth:`ColPaliIndex.search`."""
    if filters is None or not filters.filters:
        return None
    condition = filters.condition or FilterCondition.AND
    if condition not in _CONDITIONS:
        raise FilterError(f"unsupported filter condition {condition!r} (use AND or OR)")
    clauses = [_clause(item) for item in filters.filters]
    return {_CONDITIONS[condition]: clauses}


def _clause(item: MetadataFilter | MetadataFilters) -> dict[str, Any]:
    if isinstance(item, MetadataFilters):
        nested = to_filter(item)
        if nested is None:
            raise FilterError("empty nested MetadataFilters")
        return nested
    operator = _OPERATORS.get(item.operator)
    if operator is None:
        raise FilterError(f"unsupported filter operator {item.operator!r} on {item.key!r}")
    return {item.key: {operator: item.value}}
