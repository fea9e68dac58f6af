"""Dense retrieval: query tower against product-tower embeddings, cosine similarity, exact search."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from towersearch.data.schema import Product
from towersearch.search.retriever import Hit
from towersearch.text import TextConfig, product_text, query_text

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer


def encode_products(
    model: SentenceTransformer,
    products: Sequence[Product],
    text: TextConfig,
    *,
    batch_size: int = 128,
    progress: bool = False,
) -> np.ndarray:
    """L2-normalised float32 product embeddings, through the product (document) tower."""
    texts = [product_text(p, text) for p in products]
    emb = model.encode_document(
        texts, batch_size=batch_size, show_progress_bar=progress, convert_to_numpy=True, normalize_embeddings=True
    )
    return np.ascontiguousarray(emb, dtype=np.float32)


def encode_queries(
    model: SentenceTransformer, queries: Sequence[str], text: TextConfig, *, batch_size: int = 256
) -> np.ndarray:
    """L2-normalised float32 query embeddings, through the query tower."""
    emb = model.encode_query(
        [query_text(q, text) for q in queries],
        batch_size=batch_size,
        show_progress_bar=False,
        convert_to_numpy=True,
        normalize_embeddings=True,
    )
    return np.ascontiguousarray(emb, dtype=np.float32)


class DenseRetriever:
    """Exact cosine search over precomputed product embeddings.

    Args:
        model: The towers (or the untrained base model).
        product_ids: Ids in the row order of ``embeddings``.
        embeddings: Normalised product embeddings, shape (products, dim).
        text: The text configuration the model expects.
    """

    name = "dense"

    def __init__(
        self, model: SentenceTransformer, product_ids: Sequence[str], embeddings: np.ndarray, text: TextConfig
    ) -> None:
        if len(product_ids) != len(embeddings):
            raise ValueError(f"{len(product_ids)} product ids but {len(embeddings)} embeddings")
        self.model = model
        self.product_ids = list(product_ids)
        self.embeddings = embeddings
        self.text = text

    @classmethod
    def from_products(
        cls, model: SentenceTransformer, products: Sequence[Product], text: TextConfig, *, progress: bool = False
    ) -> DenseRetriever:
        """Encode the catalogue and build the retriever."""
        emb = encode_products(model, products, text, progress=progress)
        return cls(model, [p.product_id for p in products], emb, text)

    def search(self, queries: Sequence[str], k: int = 10) -> list[list[Hit]]:
        if not queries:
            return []
        q = encode_queries(self.model, queries, self.text)
        return self.search_vectors(q, k)

    def search_vectors(self, vectors: np.ndarray, k: int = 10) -> list[list[Hit]]:
        """Top ``k`` products for each (normalised) query vector."""
        k = min(k, len(self.product_ids))
        scores = vectors @ self.embeddings.T
        top = np.argpartition(-scores, k - 1, axis=1)[:, :k]
        results = []
        for row, cand in zip(scores, top, strict=True):
            order = cand[np.lexsort((cand, -row[cand]))]
            results.append([Hit(self.product_ids[i], float(row[i])) for i in order])
        return results
