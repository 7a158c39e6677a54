"""What an evaluation measured, per configuration: as a table to read and as JSON to keep."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = ["EvalReport", "QueryResult", "RunReport"]


@dataclass(frozen=True)
class QueryResult:
    """One query in one run: the pages returned (best first), its metrics and its search time."""

    query_id: str
    page_ids: tuple[str, ...]
    metrics: Mapping[str, float]
    latency_ms: float | None = None


@dataclass(frozen=True)
class RunReport:
    """One configuration's results (or the exhaustive reference's, ``exhaustive=True``).

    ``metrics`` holds the means over queries: ``ndcg@k``, ``recall@k``, ``mrr@K`` (K the largest k),
    ``hit@1`` and, for an engine run with the reference computed, ``exact_recall@k`` and
    ``agreement@k``. ``latency_ms`` has ``p50``, ``p95``, ``mean`` and ``max`` of the timed searches
    (one per query, after one untimed warm-up); ``open_s`` is the time to open the store and
    ``first_search_s`` the warm-up search (which fills a cache). ``inexact_scores`` counts hits whose
    reported score differs from the exact MaxSim of the page (always 0 for a correct engine).
    """

    name: str
    collection: str
    options: Mapping[str, Any]
    queries: int
    pages: int
    metrics: Mapping[str, float]
    exhaustive: bool = False
    vectors: int | None = None
    latency_ms: Mapping[str, float] | None = None
    open_s: float | None = None
    first_search_s: float | None = None
    seconds: float | None = None  # the whole run (for the exhaustive reference: the streamed pass)
    inexact_scores: int | None = None
    per_query: tuple[QueryResult, ...] = field(default=(), repr=False)

    def to_dict(self, *, per_query: bool = False) -> dict[str, Any]:
        data: dict[str, Any] = {
            "name": self.name,
            "kind": "exhaustive" if self.exhaustive else "engine",
            "collection": self.collection,
            "options": dict(self.options),
            "queries": self.queries,
            "pages": self.pages,
            "vectors": self.vectors,
            "metrics": {key: round(value, 4) for key, value in self.metrics.items()},
            "latency_ms": None if self.latency_ms is None else {k: round(v, 2) for k, v in self.latency_ms.items()},
            "open_s": _rounded(self.open_s, 3),
            "first_search_s": _rounded(self.first_search_s, 3),
            "seconds": _rounded(self.seconds, 2),
            "inexact_scores": self.inexact_scores,
        }
        if per_query:
            data["per_query"] = [
                {
                    "query_id": result.query_id,
                    "page_ids": list(result.page_ids),
                    "metrics": {key: round(value, 4) for key, value in result.metrics.items()},
                    "latency_ms": _rounded(result.latency_ms, 3),
                }
                for result in self.per_query
            ]
        return data


@dataclass(frozen=True)
class EvalReport:
    """Every run of one evaluation, side by side: :meth:`table` to read, :meth:`to_json` to keep."""

    ks: tuple[int, ...]
    runs: tuple[RunReport, ...]
    collection: str
    uri: str
    model_name: str | None
    queries: int
    judged_pages: int
    rtol: float
    notes: Mapping[str, Any] = field(default_factory=dict)

    @property
    def engine_runs(self) -> tuple[RunReport, ...]:
        return tuple(run for run in self.runs if not run.exhaustive)

    @property
    def exhaustive_runs(self) -> tuple[RunReport, ...]:
        return tuple(run for run in self.runs if run.exhaustive)

    def run(self, name: str) -> RunReport:
        """The run of the configuration called ``name`` (``"exhaustive MaxSim"`` for the reference)."""
        for run in self.runs:
            if run.name == name:
                return run
        raise KeyError(f"no run named {name!r} (runs: {', '.join(run.name for run in self.runs)})")

    def to_dict(self, *, per_query: bool = False) -> dict[str, Any]:
        return {
            "collection": self.collection,
            "uri": self.uri,
            "model": self.model_name,
            "queries": self.queries,
            "judged_pages": self.judged_pages,
            "ks": list(self.ks),
            "tie_rtol": self.rtol,
            "runs": [run.to_dict(per_query=per_query) for run in self.runs],
            "notes": dict(self.notes),
        }

    def to_json(self, *, per_query: bool = False, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(per_query=per_query), indent=indent, ensure_ascii=False)

    def table(self) -> str:
        """A plain-text table: one row per run, quality against the judgments, against exhaustive, latency."""
        top = max(self.ks)
        header = [
            "configuration",
            *(f"nDCG@{k}" for k in self.ks),
            *(f"R@{k}" for k in self.ks),
            f"MRR@{top}",
            "hit@1",
            *(f"exact R@{k}" for k in self.ks),
            *(f"agree@{k}" for k in self.ks),
            "p50 ms",
            "p95 ms",
        ]
        several = len({run.collection for run in self.runs}) > 1
        rows = [header]
        for run in (*self.exhaustive_runs, *self.engine_runs):
            name = f"{run.name} [{run.collection}]" if several and run.collection not in run.name else run.name
            metrics = run.metrics
            rows.append(
                [
                    name,
                    *(_cell(metrics.get(f"ndcg@{k}")) for k in self.ks),
                    *(_cell(metrics.get(f"recall@{k}")) for k in self.ks),
                    _cell(metrics.get(f"mrr@{top}")),
                    _cell(metrics.get("hit@1")),
                    *(_cell(metrics.get(f"exact_recall@{k}")) for k in self.ks),
                    *(_cell(metrics.get(f"agreement@{k}")) for k in self.ks),
                    _cell(None if run.latency_ms is None else run.latency_ms["p50"], ".1f"),
                    _cell(None if run.latency_ms is None else run.latency_ms["p95"], ".1f"),
                ]
            )
        summary = (
            f"{self.queries} judged queries, {self.judged_pages} judged pages; collection {self.collection!r} "
            f"({self.runs[0].pages} pages) at {self.uri}; model {self.model_name or '-'}"
        )
        return summary + "\n" + _layout(rows)


def _layout(rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = []
    for row in rows:
        cells = [row[0].ljust(widths[0]), *(cell.rjust(width) for cell, width in zip(row[1:], widths[1:], strict=True))]
        lines.append("  ".join(cells).rstrip())
    return "\n".join(lines)


def _cell(value: float | None, spec: str = ".3f") -> str:
    return "-" if value is None else format(value, spec)


def _rounded(value: float | None, digits: int) -> float | None:
    return None if value is None else round(value, digits)
