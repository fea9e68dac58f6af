"""Ranking metrics over graded judgements: NDCG@k, Recall@k, MRR@k.

Conventions (documented in the README): NDCG uses the grade itself as the gain with a ``log2(rank + 1)``
discount, and the ideal ranking is built from every judged product of the query; Recall and MRR count a product
as relevant when its grade is at least ``relevant_grade``; unjudged products count as irrelevant.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence


def dcg(gains: Sequence[float]) -> float:
    """Discounted cumulative gain of gains listed by rank (rank 1 first)."""
    return sum(g / math.log2(rank + 2) for rank, g in enumerate(gains) if g)


def ndcg_at_k(ranked: Sequence[str], grades: Mapping[str, float], k: int) -> float:
    """NDCG@k of one ranked list; 0 when no judged product has a positive grade."""
    ideal = dcg(sorted((g for g in grades.values() if g > 0), reverse=True)[:k])
    if ideal == 0:
        return 0.0
    return dcg([grades.get(pid, 0.0) for pid in ranked[:k]]) / ideal


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


def query_metrics(ranked: Sequence[str], grades: Mapping[str, float], relevant_grade: float = 1.0) -> dict[str, float]:
    """The four standard metrics for one query."""
    return {
        "ndcg@10": ndcg_at_k(ranked, grades, 10),
        "recall@10": recall_at_k(ranked, grades, 10, relevant_grade),
        "recall@100": recall_at_k(ranked, grades, 100, relevant_grade),
        "mrr@10": mrr_at_k(ranked, grades, 10, relevant_grade),
    }


def mean_metrics(per_query: Sequence[Mapping[str, float]]) -> dict[str, float]:
    """Average each metric over queries (0 for no queries)."""
    if not per_query:
        return dict.fromkeys(METRICS, 0.0)
    return {m: sum(q[m] for q in per_query) / len(per_query) for m in METRICS}
