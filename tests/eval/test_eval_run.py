"""evaluate() on hand-made pages (see eval_data.py): metrics, the exhaustive reference, configurations."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from collections.abc import Sequence
from typing import Any

import numpy as np
import pytest
from eval_data import MODEL, QUERIES

from colpali_milvus import MilvusMultiVectorStore
from colpali_milvus.errors import InvalidInputError
from colpali_milvus.eval import Configuration, Judgment, PageRef, evaluate, parse_compare
from colpali_milvus.types import PageHit

LOG2_3 = math.log2(3)

# alpha: p4 (grade 2) and p1 (grade 1), ranked p1, p4; beta: p3, tied at 0 with three others, never in
# the top 2; gamma: p5, ranked first.
JUDGMENTS = [
    Judgment("alpha", "alpha", {PageRef.at("b.pdf", 1): 2, PageRef.at("a.pdf", 1): 1}),
    Judgment("beta", "beta", {PageRef.by_id("p3"): 1}),
    Judgment("gamma", "gamma", {PageRef.by_field("corpus_id", "c-p5"): 1}),
]
# Worked out by hand from the table in eval_data.py, per query (alpha, beta, gamma), then averaged.
EXPECTED = {
    "ndcg@1": (1 / 3 + 0 + 1) / 3,  # alpha: p1 (gain 1) where p4 (gain 3) would be ideal
    "ndcg@2": ((1 + 3 / LOG2_3) / (3 + 1 / LOG2_3) + 0 + 1) / 3,
    "recall@1": (1 / 2 + 0 + 1) / 3,
    "recall@2": (1 + 0 + 1) / 3,
    "mrr@2": (1 + 0 + 1) / 3,
    "hit@1": 2 / 3,
}


def test_metrics_of_the_engine_and_of_exhaustive_maxsim_equal_the_hand_computed_values(
    hand: MilvusMultiVectorStore,
) -> None:
    report = evaluate(hand, JUDGMENTS, query_vectors=QUERIES, ks=(2, 1))

    assert report.ks == (1, 2)
    assert (report.queries, report.judged_pages, report.collection, report.model_name) == (3, 4, "hand", MODEL)
    reference, engine = report.runs
    assert (reference.name, reference.exhaustive, engine.name) == ("exhaustive MaxSim", True, "given store")
    for run in (reference, engine):
        for key, value in EXPECTED.items():
            assert run.metrics[key] == pytest.approx(value), f"{run.name}: {key}"
    for k in (1, 2):
        assert engine.metrics[f"exact_recall@{k}"] == engine.metrics[f"agreement@{k}"] == 1.0
    assert engine.inexact_scores == 0
    assert [r.page_ids[:1] for r in engine.per_query] == [("p1",), ("p2",), ("p5",)]
    assert engine.latency_ms is not None and 0 < engine.latency_ms["p50"] <= engine.latency_ms["p95"]
    assert (engine.pages, engine.vectors, reference.pages) == (5, 5, 5)


class DropsTheBestHit:
    """A store whose engine loses the best page of every query (and, optionally, misreports scores)."""

    def __init__(self, store: MilvusMultiVectorStore, score_offset: float = 0.0) -> None:
        self._store = store
        self._offset = score_offset

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)

    def search(self, query_vectors: np.ndarray, k: int = 5, **kwargs: Any) -> list[PageHit]:
        hits = self._store.search(query_vectors, k=k + 1, **kwargs)[1:]
        return [PageHit(hit.page_id, hit.score + self._offset, hit.metadata) for hit in hits]


def test_the_engines_own_loss_is_measured_against_exhaustive_maxsim(hand: MilvusMultiVectorStore) -> None:
    report = evaluate(DropsTheBestHit(hand), JUDGMENTS, query_vectors=QUERIES, ks=(1, 2))

    engine = report.engine_runs[0]
    # @1: the best page is always missing. @2: the exhaustive top 2 is {best, second}; the engine has
    # the second (alpha p4 0.8, beta p4 0.6) or a page tied with it (gamma: four pages at 0): 1 of 2.
    assert engine.metrics["exact_recall@1"] == 0.0
    assert engine.metrics["exact_recall@2"] == pytest.approx(0.5)
    assert engine.metrics["agreement@1"] == engine.metrics["agreement@2"] == 0.0
    # and against the judgments: alpha now finds p4 (grade 2) first
    assert engine.metrics["ndcg@1"] == pytest.approx((1 + 0 + 0) / 3)
    assert report.exhaustive_runs[0].metrics["ndcg@1"] == pytest.approx(EXPECTED["ndcg@1"])  # unchanged
    assert engine.inexact_scores == 0

    misreported = evaluate(DropsTheBestHit(hand, score_offset=1.0), JUDGMENTS, query_vectors=QUERIES, ks=(2,))
    assert misreported.engine_runs[0].inexact_scores == 6  # every hit's score is off


def test_configurations_side_by_side_and_another_collection(hand: MilvusMultiVectorStore) -> None:
    configurations = [*parse_compare(["rerank_depth=default,1"]), Configuration({"collection": "pooled"})]
    stages: list[tuple[str, int, int]] = []

    report = evaluate(
        hand,
        JUDGMENTS,
        query_vectors=[QUERIES["alpha"], QUERIES["beta"], QUERIES["gamma"]],
        configurations=configurations,
        ks=(1, 2),
        progress=lambda stage, done, total: stages.append((stage, done, total)),
    )

    names = [(run.name, run.collection) for run in report.runs]
    assert names == [
        ("exhaustive MaxSim", "hand"),
        ("exhaustive MaxSim", "pooled"),
        ("default", "hand"),
        ("rerank_depth=1", "hand"),
        ("collection_name=pooled", "pooled"),
    ]
    for name in ("default", "rerank_depth=1"):
        run = next(r for r in report.engine_runs if r.name == name)
        assert run.metrics["ndcg@2"] == pytest.approx(EXPECTED["ndcg@2"])
        assert run.metrics["agreement@2"] == 1.0
        assert run.open_s is not None and run.first_search_s is not None
    # In `pooled` p1 is e3: alpha ranks p4 (grade 2) first, gamma ranks p1 (1.0) above p5 (0.8); its own
    # exhaustive pass agrees.
    pooled = report.runs[4]
    assert pooled.metrics["ndcg@1"] == pytest.approx((1 + 0 + 0) / 3)
    assert report.runs[1].metrics["ndcg@1"] == pytest.approx((1 + 0 + 0) / 3)
    assert pooled.metrics["agreement@2"] == 1.0
    seen = [stage for stage, done, total in stages if done == total]
    assert seen == [
        "default",
        "rerank_depth=1",
        "collection_name=pooled",
        "exhaustive MaxSim",
        "exhaustive MaxSim [pooled]",
    ]

    text = report.table()
    assert text.splitlines()[0].startswith("3 judged queries, 4 judged pages; collection 'hand' (5 pages)")
    assert text.splitlines()[1].split() == [
        "configuration",
        "nDCG@1",
        "nDCG@2",
        "R@1",
        "R@2",
        "MRR@2",
        "hit@1",
        "exact",
        "R@1",
        "exact",
        "R@2",
        "agree@1",
        "agree@2",
        "p50",
        "ms",
        "p95",
        "ms",
    ]
    assert text.splitlines()[3].split()[:4] == ["exhaustive", "MaxSim", "[pooled]", "0.333"]
    data = json.loads(report.to_json(per_query=True))
    assert [run["name"] for run in data["runs"]][2:] == ["default", "rerank_depth=1", "collection_name=pooled"]
    assert data["runs"][2]["per_query"][0]["page_ids"][0] == "p1"
    assert data["ks"] == [1, 2] and data["notes"]["query_vectors"] == "given"
    assert "per_query" not in json.loads(report.to_json())["runs"][0]


class WordEmbedder:
    """Query text to the hand-made query vectors."""

    model_name = MODEL

    def __init__(self) -> None:
        self.calls: list[list[str]] = []

    def embed_images(self, images: Sequence[Any]) -> list[np.ndarray]:
        raise NotImplementedError

    def embed_queries(self, queries: Sequence[str]) -> list[np.ndarray]:
        self.calls.append(list(queries))
        return [QUERIES[query] for query in queries]


def test_text_queries_are_embedded_once_for_every_configuration(hand: MilvusMultiVectorStore) -> None:
    embedder = WordEmbedder()

    report = evaluate(hand, JUDGMENTS, embedder=embedder, configurations=parse_compare(["cache=true,false"]), ks=(1, 2))

    assert embedder.calls == [["alpha", "beta", "gamma"]]
    assert [run.name for run in report.engine_runs] == ["cache=true", "cache=false"]
    for run in report.engine_runs:
        assert run.metrics["ndcg@2"] == pytest.approx(EXPECTED["ndcg@2"])
        assert run.metrics["agreement@2"] == 1.0
    assert report.notes["query_vectors"] == "embedded"
    with pytest.raises(InvalidInputError, match="the judged queries are text: pass an embedder"):
        evaluate(hand, JUDGMENTS)


def test_configurations_are_checked_against_the_store_constructor() -> None:
    assert [c.name for c in parse_compare(["rerank_depth=8,default", "cache=true,false,none"])] == [
        "rerank_depth=8 cache=true",
        "rerank_depth=8 cache=false",
        "rerank_depth=8 cache=none",
        "cache=true",
        "cache=false",
        "cache=none",
    ]
    assert parse_compare([]) == [Configuration()]
    assert parse_compare(["collection=other", "timeout=2.5"])[0].options == {
        "collection_name": "other",
        "timeout": 2.5,
    }
    with pytest.raises(InvalidInputError, match=r"'rerank_dept' is not an option of MilvusMultiVectorStore \(it takes"):
        parse_compare(["rerank_dept=8"])
    for reserved in ("uri=x.db", "token=secret", "create=true"):
        with pytest.raises(InvalidInputError, match="a configuration cannot set"):
            parse_compare([reserved])
    with pytest.raises(InvalidInputError, match="--compare takes KEY=VALUE"):
        parse_compare(["rerank_depth"])
    with pytest.raises(InvalidInputError, match="compared twice"):
        parse_compare(["collection=a", "collection_name=b"])
    with pytest.raises(InvalidInputError, match="not an option"):
        Configuration({"nonsense": 1})


def test_a_configuration_must_hold_the_queries_model_and_dim(hand: MilvusMultiVectorStore) -> None:
    with pytest.raises(InvalidInputError, match="'test/other', the queries are for 'test/hand-made'"):
        evaluate(hand, JUDGMENTS, query_vectors=QUERIES, configurations=[{"collection_name": "other_model"}])
    with pytest.raises(InvalidInputError, match="holds 8-d vectors, the queries are 4-d"):
        evaluate(hand, JUDGMENTS, query_vectors=QUERIES, configurations=[{"collection_name": "wide"}])
    with pytest.raises(InvalidInputError, match="ks must be positive integers"):
        evaluate(hand, JUDGMENTS, query_vectors=QUERIES, ks=(0, 5))


def test_no_exhaustive_pass_when_asked(hand: MilvusMultiVectorStore) -> None:
    report = evaluate(hand, JUDGMENTS, query_vectors=QUERIES, ks=(1,), exhaustive=False)

    (run,) = report.runs
    assert "exact_recall@1" not in run.metrics and run.inexact_scores is None
    row = report.table().splitlines()[2].split()
    assert row[0:2] == ["given", "store"] and row[-4:-2] == ["-", "-"]  # exact R@1, agree@1


def test_importing_the_evaluation_loads_neither_torch_nor_pymilvus() -> None:
    code = "import colpali_milvus.eval, sys; print(sorted({'torch', 'pymilvus'} & set(sys.modules)))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"
