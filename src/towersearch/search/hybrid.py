"""Hybrid retrieval: fuse lexical and dense candidate lists.

Three fusions are offered, each with one knob that training calibrates on held-out log queries. Without
calibration (the untrained model, or a log too small to hold queries out) the default is the blend at
``alpha = 0.5``: on CrowdFlower's real queries it was level with plain RRF for the untrained model (NDCG@10
0.8044 against 0.8029, four query splits) and ahead of it for trained towers (0.8120 against 0.8099).

- ``rrf``: weighted reciprocal rank fusion (Cormack et al., 2009); ``dense_weight`` weighs the dense list.
- ``blend``: a convex combination of min-max normalised scores, ``alpha · dense + (1 - alpha) · lexical``
  (Bruch et al., 2023, found it beats RRF once ``alpha`` is tuned on a few queries). A product missing from a list
  scores 0 there.
- ``union``: the blend over the union of both lists with every candidate scored by both retrievers (its BM25 score
  and its cosine, read for just those products), each min-max normalised over the union, so a product one list
  missed is placed by its real score there rather than by 0. On Home Depot's held-out log queries it led the blend
  (0.3889 against 0.3846 at ``alpha = 0.4``; ``benchmarks/README.md``). It needs retrievers that score given
  catalogue rows (``score_rows`` on BM25, ``score_vector_rows`` on dense), as the built-in ones do.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, fields
from functools import partial

import numpy as np

from towersearch.errors import ConfigError
from towersearch.search.retriever import Hit, Retriever, RowScores

METHODS = ("rrf", "blend", "union")

Rescore = Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]
"""Catalogue rows -> their BM25 scores and their cosines for the query at hand (what ``union`` fusion reads)."""


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
    return _top(scores, k)


def _min_max(ranking: Sequence[Hit]) -> dict[str, float]:
    if not ranking:
        return {}
    scores = [h.score for h in ranking]
    low, high = min(scores), max(scores)
    span = high - low
    return {h.product_id: (h.score - low) / span if span > 0 else 1.0 for h in ranking}


def score_blend(rankings: Sequence[Sequence[Hit]], *, k: int = 10, weights: Sequence[float]) -> list[Hit]:
    """Σ w · (min-max normalised score) over the lists; a product absent from a list gets 0 from it."""
    scores: dict[str, float] = {}
    for ranking, weight in zip(rankings, weights, strict=True):
        for pid, s in _min_max(ranking).items():
            scores[pid] = scores.get(pid, 0.0) + weight * s
    return _top(scores, k)


def _top(scores: dict[str, float], k: int) -> list[Hit]:
    best = sorted(scores.items(), key=lambda item: (-item[1], item[0]))[:k]
    return [Hit(pid, score) for pid, score in best]


@dataclass(frozen=True)
class Fusion:
    """How a lexical and a dense list become one: ``method`` with its knob (see the module docstring)."""

    method: str = "blend"
    c: float = 60.0
    dense_weight: float = 1.0
    alpha: float = 0.5

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ConfigError(f"unknown fusion method {self.method!r}; allowed: {', '.join(METHODS)}")
        if self.c <= 0 or self.dense_weight < 0:
            raise ConfigError(f"fusion needs c > 0 and dense_weight >= 0, got c={self.c}, {self.dense_weight}")
        if not 0.0 <= self.alpha <= 1.0:
            raise ConfigError(f"fusion alpha must be within [0, 1], got {self.alpha}")

    @classmethod
    def from_dict(cls, data: Mapping | None) -> Fusion:
        """From a manifest or model-metadata ``fusion`` entry (unknown keys ignored, missing ones defaulted)."""
        data = data or {}
        return cls(**{k: data[k] for k in ("method", "c", "dense_weight", "alpha") if k in data})

    def as_dict(self) -> dict:
        return {"method": self.method, "c": self.c, "dense_weight": self.dense_weight, "alpha": self.alpha}

    @property
    def label(self) -> str:
        return f"rrf@{self.dense_weight:g}" if self.method == "rrf" else f"{self.method}@{self.alpha:g}"

    def fuse(self, lexical: Sequence[Hit], dense: Sequence[Hit], k: int) -> list[Hit]:
        """Fuse two hit lists (``rrf`` and ``blend``; ``union`` must rescore, so it needs :meth:`fuse_rows`)."""
        if self.method == "union":
            raise ConfigError("union fusion scores every candidate in both retrievers; it needs row lists")
        if self.method == "rrf":
            return reciprocal_rank_fusion([lexical, dense], k=k, c=self.c, weights=(1.0, self.dense_weight))
        return score_blend([lexical, dense], k=k, weights=(1.0 - self.alpha, self.alpha))

    def contribution(self, scores: np.ndarray, weight: float) -> np.ndarray:
        """What each entry of one ranked list (its scores, best first) adds to a product's fused score."""
        if self.method == "rrf":
            return weight / (self.c + np.arange(1, len(scores) + 1, dtype=np.float64))
        if not len(scores):
            return scores
        low, high = scores.min(), scores.max()
        span = high - low
        return weight * ((scores - low) / span if span > 0 else np.ones_like(scores))

    def fuse_rows(
        self, lexical: RowScores, dense: RowScores, k: int, id_rank: np.ndarray, rescore: Rescore | None = None
    ) -> Candidates:
        """:meth:`fuse` on row lists: the same scores and order (ties by product id, whose sort position per row is
        ``id_rank``), with each candidate's score and rank in both lists. ``union`` fusion also needs ``rescore``
        (both retrievers' scores of the union's rows); the candidates still report the lists' own scores."""
        (lx_rows, lx_scores), (dn_rows, dn_scores) = lexical, dense
        weights = (1.0, self.dense_weight) if self.method == "rrf" else (1.0 - self.alpha, self.alpha)
        union, inverse = np.unique(np.concatenate([lx_rows, dn_rows]), return_inverse=True)
        lx_at, dn_at = inverse[: len(lx_rows)], inverse[len(lx_rows) :]
        if self.method == "union":
            if rescore is None:
                raise ConfigError("union fusion needs both retrievers' scores of every candidate (rescore)")
            bm25_all, cosine_all = rescore(union)
            fused = self.contribution(np.asarray(bm25_all, dtype=np.float64), weights[0])
            fused = fused + self.contribution(np.asarray(cosine_all, dtype=np.float64), weights[1])
        else:
            fused = np.zeros(len(union))
            np.add.at(fused, lx_at, self.contribution(lx_scores, weights[0]))  # lexical first, as fuse adds them
            np.add.at(fused, dn_at, self.contribution(dn_scores, weights[1]))
        order = np.lexsort((id_rank[union], -fused))[:k]
        bm25, dense_score = np.full(len(union), np.nan), np.full(len(union), np.nan)
        rank_bm25, rank_dense = np.zeros(len(union), dtype=np.int64), np.zeros(len(union), dtype=np.int64)
        bm25[lx_at], rank_bm25[lx_at] = lx_scores, np.arange(1, len(lx_rows) + 1)
        dense_score[dn_at], rank_dense[dn_at] = dn_scores, np.arange(1, len(dn_rows) + 1)
        return Candidates(
            union[order], fused[order], bm25[order], dense_score[order], rank_bm25[order], rank_dense[order]
        )


@dataclass(frozen=True)
class Candidates:
    """A fused list as arrays, best first: what the ranking stage reads and what hybrid search turns into hits.

    Args:
        rows: Catalogue rows.
        fused: The fusion's scores.
        bm25, dense: Each product's score in the BM25 and the dense list (NaN where it was not in that list).
        rank_bm25, rank_dense: Its rank in each list (1 = first; 0 where it was not in that list).
    """

    rows: np.ndarray
    fused: np.ndarray
    bm25: np.ndarray
    dense: np.ndarray
    rank_bm25: np.ndarray
    rank_dense: np.ndarray

    def __len__(self) -> int:
        return len(self.rows)

    def take(self, index) -> Candidates:
        """The candidates at ``index`` (a slice or an array of positions), in that order."""
        return Candidates(*(getattr(self, f.name)[index] for f in fields(self)))

    def scores(self) -> list[dict[str, float]]:
        """Per candidate, the scores a :class:`Hit` carries: ``fused`` and, where it was in that list, ``bm25`` and
        ``dense``."""
        out = []
        for fused, bm25, dense, in_bm25, in_dense in zip(
            self.fused.tolist(), self.bm25.tolist(), self.dense.tolist(), self.rank_bm25.tolist(),
            self.rank_dense.tolist(), strict=True,
        ):  # fmt: skip
            scores = {"fused": fused}
            if in_bm25:
                scores["bm25"] = bm25
            if in_dense:
                scores["dense"] = dense
            out.append(scores)
        return out

    def hits(self, product_ids: Sequence[str]) -> list[Hit]:
        """The candidates as hits, scored by the fusion."""
        return [Hit(product_ids[r], s["fused"], s) for r, s in zip(self.rows.tolist(), self.scores(), strict=True)]


class HybridRetriever:
    """Fusion of a lexical and a dense retriever.

    Args:
        lexical: The BM25 retriever.
        dense: The dense retriever.
        candidates: How many candidates to take from each before fusing.
        fusion: The fusion; training calibrates it on held-out log queries and stores it with the model.
    """

    name = "hybrid"

    def __init__(
        self, lexical: Retriever, dense: Retriever, *, candidates: int = 100, fusion: Fusion | None = None
    ) -> None:
        self.lexical = lexical
        self.dense = dense
        self.candidates = candidates
        self.fusion = fusion or Fusion()
        self._row_fusion: bool | None = None
        self._id_rank: np.ndarray | None = None

    @property
    def product_ids(self) -> list[str]:
        """Ids in catalogue row order (the lexical and the dense retriever's, which must agree for row fusion)."""
        return self.dense.product_ids

    def _rows_fuse(self) -> bool:
        """Whether both retrievers give row lists over the same catalogue rows (else fusion goes by hits)."""
        if self._row_fusion is None:
            lexical_ids = getattr(self.lexical, "product_ids", None)
            dense_ids = getattr(self.dense, "product_ids", None)
            self._row_fusion = (
                hasattr(self.lexical, "search_rows")
                and hasattr(self.dense, "search_rows")
                and dense_ids is not None
                and (lexical_ids is dense_ids or lexical_ids == dense_ids)
            )
        return self._row_fusion

    @property
    def id_rank(self) -> np.ndarray:
        """Per catalogue row, its product id's position in sorted order (fusion breaks ties by product id)."""
        if self._id_rank is None:
            ids = self.product_ids
            rank = np.empty(len(ids), dtype=np.int64)
            rank[sorted(range(len(ids)), key=ids.__getitem__)] = np.arange(len(ids))
            self._id_rank = rank
        return self._id_rank

    def search(self, queries: Sequence[str], k: int = 10) -> list[list[Hit]]:
        depth = max(k, self.candidates)
        if self._rows_fuse():
            ids = self.product_ids
            return [c.hits(ids) for c in self.fused_candidates(queries, depth, k=k)]
        lexical = self.lexical.search(queries, depth)
        dense = self.dense.search(queries, depth)
        return [_with_scores(self.fusion.fuse(lx, dn, k), lx, dn) for lx, dn in zip(lexical, dense, strict=True)]

    def fused_candidates(
        self, queries: Sequence[str], depth: int, vectors: np.ndarray | None = None, *, k: int | None = None
    ) -> list[Candidates]:
        """For each query, the fusion of the lexical and the dense top ``depth`` cut to its top ``k`` (default
        ``depth``), as arrays; ``vectors`` may pass the queries' query-tower vectors when the caller has them already
        (the dense retriever's feedback, if any, is applied here, as its own search applies it).

        Raises:
            ConfigError: retrievers without row lists over the same catalogue (a ranking stage needs them).
        """
        if not self._rows_fuse():
            raise ConfigError("fused candidates need a lexical and a dense retriever over the same catalogue rows")
        union = self.fusion.method == "union"
        if vectors is None and union:
            vectors = self.dense.encode(queries)  # the union's cosines need the vectors: encode once for both
        if vectors is not None:
            vectors = self.dense.search_vectors_of(vectors)  # pseudo-relevance feedback, where the model has it
        lexical = self.lexical.search_rows(queries, depth)
        dense = (
            self.dense.search_rows(queries, depth)
            if vectors is None
            else self.dense.search_vectors_rows(vectors, depth)
        )
        rank = self.id_rank
        k = depth if k is None else k
        return [
            self.fusion.fuse_rows(lx, dn, k, rank, partial(self._scores_at, query, vectors[i]) if union else None)
            for i, (query, lx, dn) in enumerate(zip(queries, lexical, dense, strict=True))
        ]

    def _scores_at(self, query: str, vector: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Both retrievers' scores of the products at ``rows`` for one query (what ``union`` fusion reads)."""
        return self.lexical.score_rows(query, rows), self.dense.score_vector_rows(vector, rows)


def _with_scores(fused: Sequence[Hit], lexical: Sequence[Hit], dense: Sequence[Hit]) -> list[Hit]:
    """The fused hits, each carrying its BM25 and dense scores (where it was in that list) and the fused one."""
    lx = {h.product_id: h.score for h in lexical}
    dn = {h.product_id: h.score for h in dense}
    out = []
    for hit in fused:
        scores = {"fused": hit.score}
        if hit.product_id in lx:
            scores["bm25"] = lx[hit.product_id]
        if hit.product_id in dn:
            scores["dense"] = dn[hit.product_id]
        out.append(Hit(hit.product_id, hit.score, scores))
    return out
