"""Hybrid retrieval: fuse lexical and dense candidate lists."""

from __future__ import annotations

from collections.abc import Sequence

from towersearch.search.retriever import Hit, Retriever


def reciprocal_rank_fusion(
    rankings: Sequence[Sequence[Hit]], *, k: int = 10, c: float = 60.0, weights: Sequence[float] | None = None
) -> list[Hit]:
    """Weighted reciprocal rank fusion (Cormack et al., 2009).

    A product's score is Σ w / (c + rank) over the lists that hold it; every weight is 1 unless ``weights`` says.
    """
    weights = weights or [1.0] * len(rankings)
    scores: dict[str, float] = {}
    for ranking, weight in zip(rankings, weights, strict=True):
        for rank, hit in enumerate(ranking, start=1):
            scores[hit.product_id] = scores.get(hit.product_id, 0.0) + weight / (c + rank)
    best = sorted(scores.items(), key=lambda item: (-item[1], item[0]))[:k]
    return [Hit(pid, score) for pid, score in best]


class HybridRetriever:
    """Reciprocal rank fusion of a lexical and a dense retriever.

    Args:
        lexical: The BM25 retriever.
        dense: The dense retriever.
        candidates: How many candidates to take from each before fusing.
        c: The RRF constant (60 in the original paper).
        dense_weight: Weight of the dense list against 1 for the lexical one; training calibrates it on
            held-out log queries and stores it with the model.
    """

    name = "hybrid"

    def __init__(
        self,
        lexical: Retriever,
        dense: Retriever,
        *,
        candidates: int = 100,
        c: float = 60.0,
        dense_weight: float = 1.0,
    ) -> None:
        self.lexical = lexical
        self.dense = dense
        self.candidates = candidates
        self.c = c
        self.dense_weight = dense_weight

    def search(self, queries: Sequence[str], k: int = 10) -> list[list[Hit]]:
        depth = max(k, self.candidates)
        lexical = self.lexical.search(queries, depth)
        dense = self.dense.search(queries, depth)
        weights = (1.0, self.dense_weight)
        return [
            reciprocal_rank_fusion([lx, dn], k=k, c=self.c, weights=weights)
            for lx, dn in zip(lexical, dense, strict=True)
        ]
