"""Held-out log queries: an honest check of a trained model and the calibration of hybrid fusion.

A seeded sample of the log's queries is kept out of training. Their engaged products become judgements
(grade 2 when converted, 1 when only clicked), and after training the hybrid fusion (method and knob) is
chosen on them together with the ranker's held-out queries (also unseen by the towers), so each store gets the
blend its own data supports rather than a constant tuned on one data set.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from towersearch.data.catalog import Catalog
from towersearch.data.judgements import Judgements
from towersearch.data.schema import LogEvent, normalize_query
from towersearch.search.hybrid import Fusion
from towersearch.search.lexical import DEFAULT_FIELDS as BM25_FIELDS
from towersearch.text import TextConfig
from towersearch.training.pairs import aggregate_events

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

DENSE_WEIGHTS = (0.5, 1.0, 1.5, 2.0, 3.0, 5.0)
"""Dense-list weights tried in reciprocal rank fusion (1 = plain RRF)."""
BLEND_ALPHAS = (0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)
"""Dense shares tried in the normalised score blend and in the union blend."""
TOLERANCE = 0.005
"""NDCG@10 differences below this count as ties when choosing the fusion on up to :data:`TOLERANCE_QUERIES`
queries; on more the tie band narrows with the standard error, ``TOLERANCE * sqrt(TOLERANCE_QUERIES / n)``."""
TOLERANCE_QUERIES = 200
INTERPOLATION_WEIGHTS = (1.0, 0.75, 0.5)
"""Weights of the trained towers tried when merging them back with the weights training started from (1 = as
trained); see :func:`choose_interpolation`."""
UNCALIBRATED_INTERPOLATION = 0.5
"""The weight used without held-out queries (no log, or one too small to hold queries out): towers trained on
synthetic queries or on a hundred logged ones forget more than they learn, and halfway back is where the Instacart
aisle task and CrowdFlower measured best (benchmarks/README, "Merging the trained towers with the base model")."""
UNCALIBRATED_FUSION = Fusion("blend", alpha=0.6)
"""The fusion of trained towers without held-out queries to calibrate one on. The untrained model's best blend is
0.5 (the default :class:`~towersearch.search.hybrid.Fusion`), but towers trained on a store's text read it better
than BM25 does and earn more of the blend: on CrowdFlower, whose 130-query log is too small to hold queries out,
all 18 trained runs recorded scored higher at 0.6 than at 0.5 (both query splits), and the demo store's held-out
log queries mostly choose 0.6–0.8 (benchmarks/README, "Uncalibrated fusion of trained towers")."""
FEEDBACK_WEIGHT = 0.5
"""The weight of pseudo-relevance feedback tried on held-out log queries and used without any (3 feedback products,
``q + 0.5 × their mean``; benchmarks/README, "Pseudo-relevance feedback")."""


def tolerance(queries: int) -> float:
    """The tie band for a calibration on ``queries`` queries (see :data:`TOLERANCE`)."""
    return TOLERANCE * min(1.0, math.sqrt(TOLERANCE_QUERIES / max(queries, 1)))


def fusion_candidates() -> list[Fusion]:
    """Every fusion the calibration tries."""
    return [Fusion("rrf", dense_weight=w) for w in DENSE_WEIGHTS] + [
        Fusion(method, alpha=a) for method in ("blend", "union") for a in BLEND_ALPHAS
    ]


def _dense_share(fusion: Fusion) -> float:
    return fusion.dense_weight / (1.0 + fusion.dense_weight) if fusion.method == "rrf" else fusion.alpha


def choose_fusion(ndcg: dict[str, float], candidates: Sequence[Fusion], *, tie: float = TOLERANCE) -> Fusion:
    """The fusion from validation NDCG@10 (keys ``bm25``, ``dense`` and each candidate's label), counting
    candidates within ``tie`` of the best as tied; see :func:`calibrate_fusion`."""
    best = max(ndcg[f.label] for f in candidates)
    tied = [f for f in candidates if ndcg[f.label] >= best - tie]
    lean = max if ndcg["dense"] >= ndcg["bm25"] else min
    return lean(tied, key=lambda f: (_dense_share(f), ndcg[f.label]))


def choose_interpolation(
    model: SentenceTransformer,
    start: SentenceTransformer,
    catalog: Catalog,
    judgements: Judgements,
    text: TextConfig,
    *,
    weights: Sequence[float] = INTERPOLATION_WEIGHTS,
    lexical=None,
) -> tuple[dict[str, Any], Any]:
    """Merge the trained towers back with ``start`` (WiSE-FT) at the weight the held-out queries support.

    Each weight of ``weights`` is scored on ``judgements`` (queries the towers never trained on): by dense NDCG@10,
    or, when ``lexical`` (a BM25 index of ``catalog``) is given, by the hybrid's: the best of the fusion candidates
    the calibration will try, since the towers serve fused with BM25 (``TrainConfig.interpolation_by="hybrid"``;
    better on Home Depot, worse on the demo store: benchmarks/README, "The merge weight chosen by the hybrid").
    Weights within :func:`tolerance` of the best count as tied and the tie goes to the highest (the towers as
    trained, when 1 is among them). Without judgements the weight is :data:`UNCALIBRATED_INTERPOLATION`. ``model``
    is changed in place.

    Returns:
        The summary (chosen weight, validation queries, each weight's dense NDCG@10 and, with ``lexical``, its best
        fusion's as ``hybrid_ndcg@10``) and a dense retriever over ``catalog`` encoded by the merged model (None
        without judgements), to save the calibration an encoding.
    """
    from towersearch.encoders import onnx_copy
    from towersearch.evaluation.report import evaluate
    from towersearch.search.dense import DenseRetriever
    from towersearch.training.towers import interpolate

    if not judgements:
        interpolate(model, start, UNCALIBRATED_INTERPOLATION)
        return {"chosen": UNCALIBRATED_INTERPOLATION, "validation_queries": 0}, None
    trained = {name: value.detach().clone() for name, value in model.state_dict().items()}
    lexical_memo = remembered(lexical) if lexical is not None else None  # BM25's lists do not depend on the weight
    ndcg: dict[float, float] = {}
    hybrid: dict[float, float] = {}
    dense_of: dict[float, Any] = {}
    queries = 0
    for weight in weights:
        model.load_state_dict(trained)
        interpolate(model, start, weight)
        dense_of[weight] = DenseRetriever.from_products(onnx_copy(model), catalog.products, text)
        retrievers: dict[str, Any] = {"dense": dense_of[weight]}
        if lexical_memo is not None:
            retrievers.update(_fusions(fusion_candidates(), lexical_memo, RememberedLists(dense_of[weight])))
        result = evaluate(retrievers, judgements)
        scores = {name: round(m["ndcg@10"], 4) for name, m in result.metrics.items()}
        ndcg[weight], queries = scores.pop("dense"), result.queries
        if scores:
            hybrid[weight] = max(scores.values())
    tie = tolerance(queries)
    score = hybrid or ndcg
    best = max(score.values())
    chosen = max(w for w in weights if score[w] >= best - tie)
    model.load_state_dict(trained)
    interpolate(model, start, chosen)
    summary = {
        "chosen": chosen,
        "validation_queries": queries,
        "tie": round(tie, 5),
        "ndcg@10": {str(w): v for w, v in ndcg.items()},
    }
    if hybrid:
        summary["hybrid_ndcg@10"] = {str(w): v for w, v in hybrid.items()}
    return summary, dense_of[chosen]


def choose_feedback(dense: Any, judgements: Judgements, *, weight: float = FEEDBACK_WEIGHT) -> dict[str, Any]:
    """Pseudo-relevance feedback for ``dense`` (a :class:`~towersearch.search.dense.DenseRetriever`, set in place):
    ``weight`` when its dense NDCG@10 on ``judgements`` (held-out log queries) beats no feedback by more than
    :func:`tolerance`, else none; without judgements ``weight``, as :func:`choose_interpolation` merges without them.

    Returns the summary (chosen weight, validation queries, each weight's NDCG@10)."""
    from towersearch.evaluation.report import evaluate
    from towersearch.search.dense import Feedback

    if not judgements:
        dense.feedback = Feedback(weight=weight)
        return {"chosen": weight, "validation_queries": 0}
    ndcg: dict[float, float] = {}
    queries = 0
    for w in (0.0, weight):
        dense.feedback = Feedback(weight=w)
        result = evaluate({"dense": dense}, judgements)
        ndcg[w], queries = round(result.metrics["dense"]["ndcg@10"], 4), result.queries
    tie = tolerance(queries)
    chosen = weight if ndcg[weight] > ndcg[0.0] + tie else 0.0
    dense.feedback = Feedback(weight=chosen)
    return {
        "chosen": chosen,
        "validation_queries": queries,
        "tie": round(tie, 5),
        "ndcg@10": {str(w): v for w, v in ndcg.items()},
    }


def engaged_judgements(events: Sequence[LogEvent]) -> Judgements:
    """Judgements from a log: per normalised query, its engaged products (grade 2 when converted, 1 when only
    clicked)."""
    engaged: Judgements = {}
    for (query, pid), s in aggregate_events(events).items():
        if s.conversions or s.clicks:
            engaged.setdefault(query, {})[pid] = 2.0 if s.conversions else 1.0
    return engaged


def split_validation(
    events: Sequence[LogEvent], *, max_queries: int, max_share: float, seed: int, min_queries: int = 20
) -> tuple[list[LogEvent], Judgements]:
    """Hold out a seeded sample of engaged queries: returns the training events and the held-out judgements.

    At most ``max_queries`` queries and ``max_share`` of the engaged ones are held out; with fewer than
    ``min_queries`` available nothing is held out (an empty judgements dict).
    """
    engaged = engaged_judgements(events)
    n = min(max_queries, int(len(engaged) * max_share))
    if n < min_queries:
        return list(events), {}
    chosen = set(random.Random(seed).sample(sorted(engaged), n))
    kept = [e for e in events if normalize_query(e.query) not in chosen]
    return kept, {q: engaged[q] for q in sorted(chosen)}


def calibrate_fusion(
    model: SentenceTransformer,
    catalog: Catalog,
    judgements: Judgements,
    text: TextConfig,
    *,
    bm25_fields: Sequence[str] = BM25_FIELDS,
    dense=None,
    lexical=None,
    spelling: bool = True,
) -> dict[str, Any]:
    """NDCG@10 of BM25, dense and each fusion candidate on the held-out queries, and the fusion to use.

    ``dense`` may pass a dense retriever over ``catalog`` already encoded by ``model``, saving an encoding pass, and
    ``lexical`` a BM25 index of ``catalog`` already built (``bm25_fields`` and ``spelling`` then go unused).

    Reciprocal rank fusion (over dense weights), the normalised score blend and the union blend (over dense shares)
    are tried.
    Judgements made from a log favour the engine that produced it: shoppers can only click what it showed. So
    candidates within :func:`tolerance` of the best count as tied (0.005 NDCG@10 on up to 200 queries, narrowing
    with the standard error on more), and a tie goes to the one leaning most on the dense
    list when the dense retriever alone scores at least as well as BM25 on these queries (else the least).
    """
    from towersearch.evaluation.report import evaluate
    from towersearch.search.dense import DenseRetriever
    from towersearch.search.lexical import BM25Retriever

    # each retriever remembered once, so its own row and every fusion read the same lists (and query vectors)
    bm25 = remembered(lexical or BM25Retriever(catalog.products, fields=bm25_fields, spelling=spelling))
    dense = remembered(dense or DenseRetriever.from_products(model, catalog.products, text))
    candidates = fusion_candidates()
    retrievers: dict[str, Any] = {"bm25": bm25, "dense": dense, **_fusions(candidates, bm25, dense)}
    result = evaluate(retrievers, judgements)
    ndcg = {name: round(m["ndcg@10"], 4) for name, m in result.metrics.items()}
    tie = tolerance(result.queries)
    chosen = choose_fusion(ndcg, candidates, tie=tie)
    return {"validation_queries": result.queries, "tie": round(tie, 5), "ndcg@10": ndcg, "chosen": chosen.as_dict()}


def _fusions(candidates: Sequence[Fusion], lexical: RememberedLists, dense: RememberedLists) -> dict[str, Any]:
    """A hybrid retriever per fusion candidate, by label, all reading the same remembered lists (so each query is
    searched and encoded once however many fusions are scored)."""
    from towersearch.search.hybrid import HybridRetriever

    return {fusion.label: HybridRetriever(lexical, dense, fusion=fusion) for fusion in candidates}


def remembered(retriever) -> RememberedLists:
    """``retriever`` remembering its lists: itself when it already does (so callers that pass one share it)."""
    return retriever if isinstance(retriever, RememberedLists) else RememberedLists(retriever)


class RememberedLists:
    """A retriever that remembers its lists (and a dense one its query vectors), so trying many fusions searches
    and encodes each query once; everything else is the retriever's own. BM25's and the dense retriever's hits are
    made from the remembered row lists. Pass one BM25 wrapped in it to :func:`choose_interpolation` and
    :func:`calibrate_fusion` and its lists are searched once for both."""

    def __init__(self, inner) -> None:
        self.inner = inner
        self.memo: dict[tuple[str, str, int], Any] = {}

    def __getattr__(self, name: str):
        if name == "inner":  # not set yet (a copy being made): no recursion
            raise AttributeError(name)
        return getattr(self.inner, name)

    def _remembered(self, kind: str, queries: Sequence[str], k: int, compute) -> list:
        missing = [q for q in dict.fromkeys(queries) if (kind, q, k) not in self.memo]
        if missing:
            for q, answer in zip(missing, compute(missing), strict=True):
                self.memo[(kind, q, k)] = answer
        return [self.memo[(kind, q, k)] for q in queries]

    def search(self, queries: Sequence[str], k: int = 10) -> list:
        from towersearch.search.dense import DenseRetriever
        from towersearch.search.lexical import BM25Retriever
        from towersearch.search.retriever import hits_from_rows

        if isinstance(self.inner, BM25Retriever | DenseRetriever):  # their hits are their row lists: share those
            ids, source = self.inner.product_ids, self.inner.name
            return [hits_from_rows(ids, rows, scores, source) for rows, scores in self.search_rows(queries, k)]
        return self._remembered("hits", queries, k, lambda qs: self.inner.search(qs, k))

    def search_rows(self, queries: Sequence[str], k: int = 10) -> list:
        from towersearch.search.dense import DenseRetriever

        if isinstance(self.inner, DenseRetriever):  # from the remembered query vectors, which union fusion reads too
            inner = self.inner
            return self._remembered(
                "rows", queries, k, lambda qs: inner.search_vectors_rows(inner.search_vectors_of(self.encode(qs)), k)
            )
        return self._remembered("rows", queries, k, lambda qs: self.inner.search_rows(qs, k))

    def encode(self, queries: Sequence[str]) -> np.ndarray:
        if not queries:
            return self.inner.encode(queries)
        return np.stack(self._remembered("vector", queries, 0, lambda qs: list(self.inner.encode(qs))))
