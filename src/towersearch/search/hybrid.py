"""Hybrid retrieval: fuse lexical and dense candidate lists."""

from __future__ import annotations

from collections.abc import Sequence

from towersearch.search.retriever import Hit, Retriever


def reciprocal_rank_fusion(rankings: Sequence[Sequence[Hit]], *, k: int = 10, c: float = 60.0) -> list[Hit]:
    """Reciprocal rank fusion (Cormack et al., 2009): score = Σ 1 / (c + rank) over the lists that hold a product."""
    scores: dict[str, float] = {}
    for ranking in rankings:
        for rank, hit in enumerate(ranking, start=1):
            scores[hit.product_id] = scores.get(hit.product_id, 0.0) + 1.0 / (c + rank)
    best = sorted(scores.items(), key=lambda item: (-item[1], item[0]))[:k]
    return [Hit(pid, score) for pid, score in best]


class HybridRetriever:
    """Reciprocal rank fusion of a lexical and a dense retriever.

    Args:
        lexical: The BM25 retriever.
        dense: The dense retriever.
        candidates: How many candidates to take from each before fusing.
        c: The RRF constant (60 in the original paper).
    """

    name = "hybrid"

    def __init__(self, lexical: Retriever, dense: Retriever, *, candidates: int = 100, c: float = 60.0) -> None:
        self.lexical = lexical
        self.dense = dense
        self.candidates = candidates
        self.c = c

    def search(self, queries: Sequence[str], k: int = 10) -> list[list[Hit]]:
        depth = max(k, self.candidates)
        lexical = self.lexical.search(queries, depth)
        dense = self.dense.search(queries, depth)
        return [reciprocal_rank_fusion([lx, dn], k=k, c=self.c) for lx, dn in zip(lexical, dense, strict=True)]
