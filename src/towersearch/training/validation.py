"""Held-out log queries: an honest check of a trained model and the calibration of hybrid fusion.

A seeded sample of the log's queries is kept out of training. Their engaged products become judgements
(grade 2 when converted, 1 when only clicked), and after training the dense list's weight in the hybrid
reciprocal rank fusion is chosen on them, so each store gets the blend its own data supports rather than a
constant tuned on one data set.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from towersearch.data.catalog import Catalog
from towersearch.data.judgements import Judgements
from towersearch.data.schema import LogEvent, normalize_query
from towersearch.text import TextConfig
from towersearch.training.pairs import aggregate_events

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

DENSE_WEIGHTS = (0.5, 1.0, 1.5, 2.0, 3.0, 5.0)
"""Dense-list weights tried in the fusion (1 = plain RRF)."""
TOLERANCE = 0.005
"""NDCG@10 differences below this count as ties when choosing the weight."""


def choose_weight(ndcg: dict[str, float]) -> float:
    """The dense weight from validation NDCG@10 (keys ``bm25``, ``dense``, ``hybrid@<w>``); see
    :func:`calibrate_fusion`."""
    best = max(ndcg[f"hybrid@{w:g}"] for w in DENSE_WEIGHTS)
    tied = [w for w in DENSE_WEIGHTS if ndcg[f"hybrid@{w:g}"] >= best - TOLERANCE]
    return max(tied) if ndcg["dense"] >= ndcg["bm25"] else min(tied)


def split_validation(
    events: Sequence[LogEvent], *, max_queries: int, max_share: float, seed: int, min_queries: int = 20
) -> tuple[list[LogEvent], Judgements]:
    """Hold out a seeded sample of engaged queries: returns the training events and the held-out judgements.

    At most ``max_queries`` queries and ``max_share`` of the engaged ones are held out; with fewer than
    ``min_queries`` available nothing is held out (an empty judgements dict).
    """
    stats = aggregate_events(events)
    engaged: dict[str, dict[str, float]] = {}
    for (query, pid), s in stats.items():
        if s.conversions or s.clicks:
            engaged.setdefault(query, {})[pid] = 2.0 if s.conversions else 1.0
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
    bm25_fields: Sequence[str] = ("name", "brand", "category", "size", "attributes"),
) -> dict[str, Any]:
    """NDCG@10 of BM25, dense and hybrid for each dense weight on the held-out queries, and the weight to use.

    Judgements made from a log favour the engine that produced it: shoppers can only click what it showed. So
    weights within ``TOLERANCE`` of the best count as tied, and a tie goes to the largest dense weight when the
    dense retriever alone scores at least as well as BM25 on these queries (else to the smallest).
    """
    from towersearch.evaluation.report import evaluate
    from towersearch.index.lexical import BM25Retriever
    from towersearch.search.dense import DenseRetriever
    from towersearch.search.hybrid import HybridRetriever

    bm25 = BM25Retriever(catalog.products, fields=bm25_fields)
    dense = DenseRetriever.from_products(model, catalog.products, text)
    retrievers: dict[str, Any] = {"bm25": bm25, "dense": dense}
    for w in DENSE_WEIGHTS:
        retrievers[f"hybrid@{w:g}"] = HybridRetriever(bm25, dense, dense_weight=w)
    result = evaluate(retrievers, judgements)
    ndcg = {name: round(m["ndcg@10"], 4) for name, m in result.metrics.items()}
    best = choose_weight(ndcg)
    return {"method": "rrf", "c": 60.0, "dense_weight": best, "validation_queries": result.queries, "ndcg@10": ndcg}
