"""Run judged queries against one or several store configurations, side by side.

A :class:`Configuration` is a set of :class:`~colpali_milvus.store.milvus.MilvusMultiVectorStore`
keyword arguments (``rerank_depth``, ``cache``, ``candidates_per_vector``, ``collection_name`` for another
collection, ...), checked against the constructor's signature. Each configuration opens its own
store on the same uri; the queries are embedded once and reused by every one of them.

For each configuration: one untimed warm-up search (it fills a cache), then one timed search per
query with ``k = max(ks)``. Then, per collection, one exhaustive exact-MaxSim pass over every stored
page (:mod:`colpali_milvus.eval.exhaustive`) gives the reference that the engine's own loss is
measured against, and the quality of exact search itself (the model's share of the misses).
"""

from __future__ import annotations

import inspect
import itertools
import logging
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from colpali_milvus.errors import InvalidInputError
from colpali_milvus.eval import metrics
from colpali_milvus.eval.exhaustive import ExactRanking, exhaustive_search
from colpali_milvus.eval.judgments import Judgment, check_query_vectors
from colpali_milvus.eval.report import EvalReport, QueryResult, RunReport
from colpali_milvus.eval.resolve import ResolvedJudgment, resolve

if TYPE_CHECKING:
    from colpali_milvus.embed.protocol import MultiVectorEmbedder
    from colpali_milvus.store.milvus import MilvusMultiVectorStore

__all__ = ["Configuration", "Progress", "evaluate", "parse_compare", "store_options"]

logger = logging.getLogger(__name__)

FloatArray = npt.NDArray[np.float32]

#: ``progress(stage, done, total)``: called as each stage (embedding, a configuration, an exhaustive pass) advances.
Progress = Callable[[str, int, int], None]

#: Constructor arguments a configuration may not set: the evaluation decides them.
_RESERVED_OPTIONS = frozenset({"self", "uri", "token", "create"})
#: Short names the CLI accepts.
_ALIASES = {"collection": "collection_name"}
_QUERY_BATCH = 8
EXHAUSTIVE = "exhaustive MaxSim"


@dataclass(frozen=True)
class Configuration:
    """Store keyword arguments to evaluate under a name (by default ``key=value ...``, or ``default``)."""

    options: Mapping[str, Any] = field(default_factory=dict)
    label: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "options", store_options(self.options))  # aliases resolved, keys checked

    @property
    def name(self) -> str:
        if self.label:
            return self.label
        return " ".join(f"{key}={_show(value)}" for key, value in self.options.items()) or "default"


def store_options(options: Mapping[str, Any]) -> dict[str, Any]:
    """``options`` checked against ``MilvusMultiVectorStore``'s keyword arguments (aliases resolved)."""
    from colpali_milvus.store.milvus import MilvusMultiVectorStore

    parameters = inspect.signature(MilvusMultiVectorStore).parameters
    allowed = sorted(name for name in parameters if name not in _RESERVED_OPTIONS)
    checked: dict[str, Any] = {}
    for key, value in options.items():
        name = _ALIASES.get(key, key)
        if name in _RESERVED_OPTIONS:
            raise InvalidInputError(f"a configuration cannot set {key!r}: the evaluation sets it")
        if name not in parameters:
            raise InvalidInputError(
                f"{key!r} is not an option of MilvusMultiVectorStore (it takes {', '.join(allowed)})"
            )
        checked[name] = value
    return checked


def parse_compare(specs: Sequence[str]) -> list[Configuration]:
    """Configurations from ``KEY=V1,V2,...`` axes, one per combination of their values.

    ``rerank_depth=64,128`` and ``cache=true,false`` give four configurations. Values are read as
    integers, floats, ``true``/``false``, ``none``, or text; ``default`` leaves the key out (the
    store's own default). ``collection`` stands for ``collection_name``.
    """
    axes: list[list[tuple[str, Any]]] = []
    for spec in specs:
        key, sep, values = spec.partition("=")
        key = key.strip()
        if not sep or not key or not values.strip():
            raise InvalidInputError(f"--compare takes KEY=VALUE[,VALUE...], got {spec!r}")
        name = next(iter(store_options({key: None})))
        if any(name == other for axis in axes for other, _ in axis):
            raise InvalidInputError(f"{key!r} is compared twice")
        axes.append([(name, _value(text.strip())) for text in values.split(",")])
    combos = itertools.product(*axes) if axes else [()]
    return [Configuration({key: value for key, value in combo if value is not _DEFAULT}) for combo in combos]


_DEFAULT = object()


def _value(text: str) -> Any:
    lowered = text.lower()
    if lowered == "default":
        return _DEFAULT
    if lowered in {"true", "false"}:
        return lowered == "true"
    if lowered in {"none", "null"}:
        return None
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def _show(value: Any) -> str:
    return str(value).lower() if isinstance(value, bool) or value is None else str(value)


# -- evaluate ---------------------------------------------------------------------------------------


def evaluate(
    target: Any,
    judgments: Sequence[Judgment | ResolvedJudgment],
    *,
    query_vectors: Mapping[str, Any] | Sequence[Any] | None = None,
    embedder: MultiVectorEmbedder | None = None,
    configurations: Sequence[Configuration | Mapping[str, Any]] | None = None,
    ks: Sequence[int] = (5, 10),
    exhaustive: bool = True,
    token: str | None = None,
    allow_unknown: bool = False,
    rtol: float = metrics.DEFAULT_RTOL,
    progress: Progress | None = None,
) -> EvalReport:
    """Measure retrieval quality and speed on judged queries, for one or several configurations.

    Args:
        target: a ``MilvusMultiVectorStore``, or anything with a ``.store`` (``ColPaliIndex``,
            ``PageCollection``); a ``ColPaliIndex`` also brings its embedder.
        judgments: judged queries (see :mod:`colpali_milvus.eval.judgments`), or ones resolved already.
        query_vectors: the queries' ``(n_tokens, dim)`` arrays, by query id or in order; without
            them the query texts are embedded with ``embedder``.
        embedder: embeds the query texts (by default the target's).
        configurations: store keyword arguments to compare, each opened as its own store on the
            target's uri; ``None`` evaluates the target's store as it is.
        ks: the cut-offs; searches ask for ``max(ks)`` pages.
        exhaustive: also score every stored page exactly (per collection) for ``exact_recall@k``,
            ``agreement@k`` and the reference row. Streams the whole collection once per run.
        token: the server token for the configurations' own stores.
        allow_unknown: leave out judged pages that are not stored instead of raising.
        rtol: relative tolerance within which MaxSim scores count as tied.
        progress: ``progress(stage, done, total)`` as the work advances.
    """
    store = getattr(target, "store", target)
    embedder = embedder if embedder is not None else getattr(target, "embedder", None)
    cutoffs = _check_ks(ks)
    top = cutoffs[-1]
    runs_of = [Configuration(dict(c)) if isinstance(c, Mapping) else c for c in configurations or []]
    raw = [j.judgment if isinstance(j, ResolvedJudgment) else j for j in judgments]
    if not raw:
        raise InvalidInputError("no judged queries")
    if all(isinstance(j, ResolvedJudgment) for j in judgments):
        base = [j for j in judgments if isinstance(j, ResolvedJudgment)]
    else:
        base = resolve(raw, store, allow_unknown=allow_unknown)
    kept = [resolved.judgment for resolved in base]
    vectors, embed_s = _query_vectors(kept, query_vectors, embedder, store.dim, progress)
    resolved_in = {store.collection_name: {r.query_id: r for r in base}}

    engine: list[_EngineRun] = []
    if not runs_of:
        engine.append(_search_all(store, "given store", {}, kept, vectors, top, progress, opened=None))
    for configuration in runs_of:
        engine.append(_run_configuration(store, configuration, kept, vectors, top, token, progress))
    for run in engine:
        if run.collection not in resolved_in:
            resolved_in[run.collection] = {r.query_id: r for r in _resolve_in(store, run, kept, token, allow_unknown)}

    references: dict[str, tuple[list[ExactRanking], float, int]] = {}
    if exhaustive:
        for collection in dict.fromkeys(run.collection for run in engine):
            wanted = [
                set().union(*(run.rankings[i] for run in engine if run.collection == collection))
                for i in range(len(kept))
            ]
            references[collection] = _reference(store, collection, vectors, top, wanted, token, progress)

    runs: list[RunReport] = []
    for collection, (rankings, seconds, pages) in references.items():
        runs.append(_exhaustive_report(collection, kept, rankings, resolved_in[collection], cutoffs, seconds, pages))
    for run in engine:
        reference = references.get(run.collection)
        runs.append(_engine_report(run, kept, resolved_in[run.collection], reference, cutoffs, rtol))
    return EvalReport(
        ks=cutoffs,
        runs=tuple(runs),
        collection=store.collection_name,
        uri=store.display_uri,
        model_name=store.model_name,
        queries=len(kept),
        judged_pages=len({page for r in base for page in r.grades}),
        rtol=rtol,
        notes={
            "query_vectors": "embedded" if query_vectors is None else "given",
            "embed_ms_per_query": None if embed_s is None else round(1000 * embed_s / len(kept), 2),
            "ndcg_gain": "2**grade - 1, discount log2(rank + 1)",
            "latency": "one store.search per query after one untimed warm-up; p50/p95 over queries",
        },
    )


def _check_ks(ks: Sequence[int]) -> tuple[int, ...]:
    values = list(ks)
    if not values or any(isinstance(k, bool) or not isinstance(k, int) or k <= 0 for k in values):
        raise InvalidInputError(f"ks must be positive integers, got {ks!r}")
    return tuple(sorted(set(values)))


def _query_vectors(
    judgments: Sequence[Judgment],
    given: Mapping[str, Any] | Sequence[Any] | None,
    embedder: MultiVectorEmbedder | None,
    dim: int,
    progress: Progress | None,
) -> tuple[list[FloatArray], float | None]:
    if given is not None:
        return check_query_vectors(judgments, given, dim), None
    if embedder is None:
        raise InvalidInputError(
            "the judged queries are text: pass an embedder (or a ColPaliIndex), or their query_vectors"
        )
    started = time.perf_counter()
    embedded: list[FloatArray] = []
    for first in range(0, len(judgments), _QUERY_BATCH):
        batch = judgments[first : first + _QUERY_BATCH]
        embedded += embedder.embed_queries([judgment.query for judgment in batch])
        if progress is not None:
            progress("embedding queries", len(embedded), len(judgments))
    return check_query_vectors(judgments, embedded, dim), time.perf_counter() - started


@dataclass
class _EngineRun:
    name: str
    collection: str
    options: dict[str, Any]
    rankings: list[tuple[str, ...]]
    scores: list[tuple[float, ...]]
    latencies_ms: list[float]
    pages: int
    vectors: int | None
    open_s: float | None
    first_search_s: float
    seconds: float


def _run_configuration(
    base: MilvusMultiVectorStore,
    configuration: Configuration,
    judgments: Sequence[Judgment],
    vectors: Sequence[FloatArray],
    k: int,
    token: str | None,
    progress: Progress | None,
) -> _EngineRun:
    from colpali_milvus.store.milvus import MilvusMultiVectorStore

    options = {"collection_name": base.collection_name, **store_options(configuration.options)}
    started = time.perf_counter()
    store = MilvusMultiVectorStore(base.uri, token=token, create=False, **options)
    try:
        opened = time.perf_counter() - started
        _check_same_model(base, store, configuration.name)
        return _search_all(
            store, configuration.name, dict(configuration.options), judgments, vectors, k, progress, opened=opened
        )
    finally:
        store.close()


def _check_same_model(base: MilvusMultiVectorStore, store: MilvusMultiVectorStore, name: str) -> None:
    if store.dim != base.dim:
        raise InvalidInputError(
            f"configuration {name!r}: collection {store.collection_name!r} holds {store.dim}-d vectors, "
            f"the queries are {base.dim}-d"
        )
    if store.model_name and base.model_name and store.model_name != base.model_name:
        raise InvalidInputError(
            f"configuration {name!r}: collection {store.collection_name!r} was built with model "
            f"{store.model_name!r}, the queries are for {base.model_name!r}"
        )


def _search_all(
    store: MilvusMultiVectorStore,
    name: str,
    options: dict[str, Any],
    judgments: Sequence[Judgment],
    vectors: Sequence[FloatArray],
    k: int,
    progress: Progress | None,
    *,
    opened: float | None,
) -> _EngineRun:
    started = time.perf_counter()
    store.search(vectors[0], k=k)  # warm-up: fills the cache of a cached path, untimed
    first_search_s = time.perf_counter() - started
    rankings: list[tuple[str, ...]] = []
    scores: list[tuple[float, ...]] = []
    latencies: list[float] = []
    for i, query in enumerate(vectors):
        begin = time.perf_counter()
        hits = store.search(query, k=k)
        latencies.append(1000 * (time.perf_counter() - begin))
        rankings.append(tuple(hit.page_id for hit in hits))
        scores.append(tuple(hit.score for hit in hits))
        if progress is not None:
            progress(name, i + 1, len(vectors))
    logger.info("%s: %d searches, p50 %.1f ms", name, len(vectors), float(np.percentile(latencies, 50)))
    return _EngineRun(
        name=name,
        collection=store.collection_name,
        options=options,
        rankings=rankings,
        scores=scores,
        latencies_ms=latencies,
        pages=store.count(),
        vectors=store.info().vectors,
        open_s=opened,
        first_search_s=first_search_s,
        seconds=time.perf_counter() - started,
    )


def _open_collection(
    base: MilvusMultiVectorStore, collection: str, token: str | None
) -> tuple[MilvusMultiVectorStore, bool]:
    """The base store for its own collection, else a new store on ``collection`` (to be closed: ``True``)."""
    if collection == base.collection_name:
        return base, False
    from colpali_milvus.store.milvus import MilvusMultiVectorStore

    return MilvusMultiVectorStore(base.uri, token=token, collection_name=collection, create=False), True


def _resolve_in(
    base: MilvusMultiVectorStore, run: _EngineRun, judgments: Sequence[Judgment], token: str | None, allow: bool
) -> list[ResolvedJudgment]:
    store, owned = _open_collection(base, run.collection, token)
    try:
        return resolve(judgments, store, allow_unknown=allow)
    finally:
        if owned:
            store.close()


def _reference(
    base: MilvusMultiVectorStore,
    collection: str,
    vectors: Sequence[FloatArray],
    depth: int,
    wanted: Sequence[set[str]],
    token: str | None,
    progress: Progress | None,
) -> tuple[list[ExactRanking], float, int]:
    store, owned = _open_collection(base, collection, token)
    stage = EXHAUSTIVE if collection == base.collection_name else f"{EXHAUSTIVE} [{collection}]"

    def report(done: int, total: int) -> None:
        if progress is not None:
            progress(stage, done, total)

    try:
        started = time.perf_counter()
        rankings = exhaustive_search(store, vectors, depth, wanted=wanted, progress=report)
        return rankings, time.perf_counter() - started, store.count()
    finally:
        if owned:
            store.close()


# -- metrics ----------------------------------------------------------------------------------------


def _judged(ranking: Sequence[str], grades: Mapping[str, int], ks: Sequence[int]) -> dict[str, float]:
    values = {f"ndcg@{k}": metrics.ndcg_at_k(ranking, grades, k) for k in ks}
    values.update({f"recall@{k}": metrics.recall_at_k(ranking, grades, k) for k in ks})
    values[f"mrr@{ks[-1]}"] = metrics.reciprocal_rank(ranking[: ks[-1]], grades)
    values["hit@1"] = metrics.hit_at_k(ranking, grades, 1)
    return values


def _means(results: Sequence[QueryResult]) -> dict[str, float]:
    if not results:
        return {}
    return {key: float(np.mean([r.metrics[key] for r in results])) for key in results[0].metrics}


def _grades(resolved: Mapping[str, ResolvedJudgment], query_id: str) -> Mapping[str, int]:
    found = resolved.get(query_id)
    return found.grades if found is not None else {}


def _exhaustive_report(
    collection: str,
    judgments: Sequence[Judgment],
    rankings: Sequence[ExactRanking],
    resolved: Mapping[str, ResolvedJudgment],
    ks: Sequence[int],
    seconds: float,
    pages: int,
) -> RunReport:
    results = tuple(
        QueryResult(j.query_id, ranking.page_ids, _judged(ranking.page_ids, _grades(resolved, j.query_id), ks))
        for j, ranking in zip(judgments, rankings, strict=True)
    )
    return RunReport(
        name=EXHAUSTIVE,
        collection=collection,
        options={},
        queries=len(results),
        pages=pages,
        metrics=_means(results),
        exhaustive=True,
        seconds=seconds,
        per_query=results,
    )


def _engine_report(
    run: _EngineRun,
    judgments: Sequence[Judgment],
    resolved: Mapping[str, ResolvedJudgment],
    reference: tuple[list[ExactRanking], float, int] | None,
    ks: Sequence[int],
    rtol: float,
) -> RunReport:
    results: list[QueryResult] = []
    inexact = 0
    for i, judgment in enumerate(judgments):
        ranking = run.rankings[i]
        values = _judged(ranking, _grades(resolved, judgment.query_id), ks)
        if reference is not None:
            exact = reference[0][i]
            scores = [exact.wanted.get(page, -math.inf) for page in ranking]
            for k in ks:
                values[f"exact_recall@{k}"] = metrics.exact_recall_at_k(scores, exact.scores, k, rtol=rtol)
                values[f"agreement@{k}"] = float(metrics.agrees_at_k(scores, exact.scores, k, rtol=rtol))
            inexact += sum(
                abs(reported - true) > rtol * max(1.0, abs(true))
                for reported, true in zip(run.scores[i], scores, strict=True)
            )
        results.append(QueryResult(judgment.query_id, ranking, values, run.latencies_ms[i]))
    latencies = np.asarray(run.latencies_ms)
    return RunReport(
        name=run.name,
        collection=run.collection,
        options=run.options,
        queries=len(results),
        pages=run.pages,
        metrics=_means(results),
        vectors=run.vectors,
        latency_ms={
            "p50": float(np.percentile(latencies, 50)),
            "p95": float(np.percentile(latencies, 95)),
            "mean": float(latencies.mean()),
            "max": float(latencies.max()),
        },
        open_s=run.open_s,
        first_search_s=run.first_search_s,
        seconds=run.seconds,
        inexact_scores=inexact if reference is not None else None,
        per_query=tuple(results),
    )
