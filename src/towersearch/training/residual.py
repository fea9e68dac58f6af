"""Training the towers on what BM25 misses (``TrainConfig.lexical_residual``).

Hybrid search adds the towers' cosine to BM25's score, so the towers are most useful where BM25 is wrong. CLEAR
(Gao et al., 2021, "Complement Lexical Retrieval Model with Semantic Residual Embeddings") trains the dense model
on the lexical model's residual: its margin shrinks where BM25 already separates the positive from the negative
and grows where BM25 prefers the negative. The same idea in the in-batch softmax loss: every logit of a batch,
query i against product j, becomes ``scale × (cos(q_i, p_j) + w × bm25(q_i, p_j) / best_i)``, with ``best_i`` the
query's top BM25 score in the catalogue. The bias carries no gradient; the towers learn only what it lacks.

Each training row carries its query's number and its products' catalogue rows in the dataset's ``label`` column
(``[query, positive row, negative row…]``), which the sentence-transformers trainer hands to the loss untouched.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from sentence_transformers.sentence_transformer.losses import MultipleNegativesRankingLoss
from sentence_transformers.util import cos_sim

if TYPE_CHECKING:
    from towersearch.search.lexical import BM25Retriever


class LexicalBias:
    """BM25 scores of the (query, product) pairs of a batch, each divided by the query's best catalogue score."""

    def __init__(self, bm25: BM25Retriever, queries: Sequence[str]) -> None:
        self.bm25 = bm25
        self.queries = list(queries)
        self._best: dict[int, float] = {}

    def best(self, query: int) -> float:
        if query not in self._best:
            rows, scores = self.bm25.search_rows([self.queries[query]], k=1)[0]
            self._best[query] = float(scores[0]) if len(rows) else 0.0
        return self._best[query]

    def matrix(self, labels: torch.Tensor) -> torch.Tensor:
        """``(batch, batch × columns)``: row i scores query i against every product of the batch in the loss's
        order (every row's positive, then every row's first negative, …)."""
        ids = labels.detach().cpu().numpy().astype(np.int64)
        rows = ids[:, 1:].T.reshape(-1)
        out = np.zeros((len(ids), len(rows)), dtype=np.float32)
        for i, query in enumerate(ids[:, 0]):
            best = self.best(int(query))
            if best > 0:
                out[i] = self.bm25.score_rows(self.queries[query], rows) / best
        return torch.from_numpy(out)


class LexicalResidualLoss(MultipleNegativesRankingLoss):
    """:class:`MultipleNegativesRankingLoss` (self-adversarial weighting included) over cosine plus ``weight`` ×
    :class:`LexicalBias`; one process, ``query_to_doc`` only."""

    def __init__(self, model: Any, bias: LexicalBias, weight: float, **kwargs: Any) -> None:
        super().__init__(model, similarity_fct=self._similarity, **kwargs)
        self.bias = bias
        self.weight = weight
        self._batch_bias: torch.Tensor | None = None

    def _similarity(self, queries: torch.Tensor, docs: torch.Tensor) -> torch.Tensor:
        sim = cos_sim(queries, docs)
        if self._batch_bias is None or self._batch_bias.shape != sim.shape:
            raise RuntimeError("lexical residual: the batch's BM25 scores do not match its similarity matrix")
        return sim + self.weight * self._batch_bias.to(sim.device, sim.dtype)

    def forward(self, sentence_features, labels: torch.Tensor) -> torch.Tensor:
        self._batch_bias = self.bias.matrix(labels)
        try:
            return super().forward(sentence_features, labels)
        finally:
            self._batch_bias = None

    def get_config_dict(self) -> dict[str, Any]:
        return {**super().get_config_dict(), "lexical_residual": self.weight}
