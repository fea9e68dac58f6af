"""Ranking metrics over graded judgements: NDCG@k, Recall@k, MRR@k, and two that say how far the judgements reach.

Conventions (documented in the README): NDCG uses the grade itself as the gain with a ``log2(rank + 1)``
discount, and the ideal ranking is built from every judged product of the query; Recall and MRR count a product
as relevant when its grade is at least ``relevant_grade``; unjudged products count as irrelevant.

Judgements are usually pooled: raters graded what some engine showed, and every other product is unjudged.
``judged@10`` (the share of the first 10 products that carry a grade, any grade) and ``condensed_ndcg@10`` (NDCG@10
of the list with its unjudged products taken out first, Sakai's condensed list; ``trec_eval -J``) show when a
retriever is marked down for finding products nobody judged rather than for finding wrong ones.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence


def dcg(gains: Sequence[float]) -> float:
    """Discounted cumulative gain of gains listed by rank (rank 1 first)."""
    return sum(g / math.log2(rank + 2) for rank, g in enumerate(gains) if g)


def ndcg_at_k(ranked: Sequence[str], grades: Mapping[str, float], k: int, *, judged_only: bool = False) -> float:
    """NDCG@k of one ranked list; 0 when no judged product has a positive grade.

    ``judged_only``: the condensed list's NDCG@k (unjudged products dropped before the cut at ``k``).
    """
    ideal = dcg(sorted((g for g in grades.values() if g > 0), reverse=True)[:k])
    if ideal == 0:
        return 0.0
    if judged_only:
        ranked = [pid for pid in ranked if pid in grades]
    return dcg([grades.get(pid, 0.0) for pid in ranked[:k]]) / ideal


def judged_at_k(ranked: Sequence[str], grades: Mapping[str, float], k: int) -> float:
    """Share of the first ``k`` places held by a judged product (any grade, 0 included); a shorter list's empty
    places count as unjudged."""
    return sum(pid in grades for pid in ranked[:k]) / k


def recall_at_k(ranked: Sequence[str], grades: Mapping[str, float], k: int, relevant_grade: float = 1.0) -> float:
    """Share of the relevant products found in the top ``k``; 0 when there are none."""
    relevant = {pid for pid, g in grades.items() if g >= relevant_grade}
    if not relevant:
        return 0.0
    return len(relevant.intersection(ranked[:k])) / len(relevant)


def mrr_at_k(ranked: Sequence[str], grades: Mapping[str, float], k: int, relevant_grade: float = 1.0) -> float:
    """Reciprocal rank of the first relevant product in the top ``k`` (0 if none)."""
    for rank, pid in enumerate(ranked[:k], start=1):
        if grades.get(pid, 0.0) >= relevant_grade:
            return 1.0 / rank
    return 0.0


METRICS = ("ndcg@10", "recall@10", "recall@100", "mrr@10")
"""The four standard metrics: the ones every table and chart shows."""
POOL_METRICS = ("judged@10", "condensed_ndcg@10")
"""How far the judgements reach into each list (see the module's docstring)."""
ALL_METRICS = METRICS + POOL_METRICS


def query_metrics(ranked: Sequence[str], grades: Mapping[str, float], relevant_grade: float = 1.0) -> dict[str, float]:
    """Every metric of :data:`ALL_METRICS` for one query."""
    return {
        "ndcg@10": ndcg_at_k(ranked, grades, 10),
        "recall@10": recall_at_k(ranked, grades, 10, relevant_grade),
        "recall@100": recall_at_k(ranked, grades, 100, relevant_grade),
        "mrr@10": mrr_at_k(ranked, grades, 10, relevant_grade),
        "judged@10": judged_at_k(ranked, grades, 10),
        "condensed_ndcg@10": ndcg_at_k(ranked, grades, 10, judged_only=True),
    }


def mean_metrics(per_query: Sequence[Mapping[str, float]]) -> dict[str, float]:
    """Average each metric of :data:`ALL_METRICS` over queries (0 for no queries)."""
    if not per_query:
        return dict.fromkeys(ALL_METRICS, 0.0)
    return {m: sum(q[m] for q in per_query) / len(per_query) for m in ALL_METRICS}
