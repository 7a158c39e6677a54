"""Is it good on my pages? Retrieval quality and speed on your own judged queries.

    from colpali_milvus.eval import evaluate, read_judgments

    report = evaluate(index, read_judgments("judged.jsonl"), configurations=[{"rerank_depth": 64}, {}])
    print(report.table())

Given an index or a store and judged queries (query text or vectors, and the pages that answer
them, optionally graded), :func:`evaluate` reports, per configuration of the store:

* against the judgments: nDCG@k, recall@k, MRR and hit@1 (see :mod:`colpali_milvus.eval.metrics`);
* against exact exhaustive MaxSim over the same stored vectors: recall@k and top-k agreement, so the
  engine's own loss (candidate gathering) is told apart from the model's, whose quality the
  ``exhaustive MaxSim`` row shows;
* latency p50/p95 of ``store.search``.

Readers take plain JSONL judgments and BEIR-style folders (ViDoRe's layout); see
:mod:`colpali_milvus.eval.judgments`. Nothing here imports torch or a framework.
"""

from __future__ import annotations

from colpali_milvus.eval.exhaustive import ExactRanking, exhaustive_search, maxsim_many
from colpali_milvus.eval.judgments import (
    DEFAULT_CORPUS_FIELD,
    Judgment,
    JudgmentError,
    PageRef,
    read_beir,
    read_jsonl,
    read_judgments,
    read_query_vectors,
)
from colpali_milvus.eval.metrics import (
    agrees_at_k,
    exact_recall_at_k,
    hit_at_k,
    ndcg_at_k,
    recall_at_k,
    reciprocal_rank,
)
from colpali_milvus.eval.report import EvalReport, QueryResult, RunReport
from colpali_milvus.eval.resolve import ResolvedJudgment, resolve
from colpali_milvus.eval.run import Configuration, Progress, evaluate, parse_compare

__all__ = [
    "DEFAULT_CORPUS_FIELD",
    "Configuration",
    "EvalReport",
    "ExactRanking",
    "Judgment",
    "JudgmentError",
    "PageRef",
    "Progress",
    "QueryResult",
    "ResolvedJudgment",
    "RunReport",
    "agrees_at_k",
    "evaluate",
    "exact_recall_at_k",
    "exhaustive_search",
    "hit_at_k",
    "maxsim_many",
    "ndcg_at_k",
    "parse_compare",
    "read_beir",
    "read_jsonl",
    "read_judgments",
    "read_query_vectors",
    "recall_at_k",
    "reciprocal_rank",
    "resolve",
]
