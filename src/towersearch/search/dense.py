"""Dense retrieval: the query tower against product-tower embeddings in a vector index (cosine similarity).

:class:`QueryEncoder` turns queries into vectors: from the head-query table built at index time, an LRU cache, or
the query tower, one request at a time (a fast tokenizer must not be shared by threads). :class:`DenseRetriever`
searches a :class:`~towersearch.search.ann.VectorIndex` with them; the in-memory path (``evaluate --catalog``) and
a built index (``evaluate --index``, ``search``, the service) run this same class.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from cachetools import LRUCache

from towersearch.data.schema import Product, normalize_query
from towersearch.errors import ConfigError
from towersearch.search.ann import AnnConfig, FaissIndex, VectorIndex
from towersearch.search.retriever import Hit, RowScores, hits_from_rows
from towersearch.text import TextConfig, product_text, query_text

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer


@dataclass(frozen=True)
class Feedback:
    """Pseudo-relevance feedback on query vectors (Rocchio on embeddings, as Pyserini offers it for dense retrievers):
    a query's vector moves towards the mean of the product vectors it finds first,
    ``q' = normalise(q + weight × mean(top docs products))``, and the search runs again with ``q'``. Broad queries
    ("fresh fruits", "chips pretzels") find the shelf their first hits share rather than the one product nearest
    their words. ``weight`` 0 is off. A trained model records its own (``feedback`` in its metadata; chosen on held-out
    log queries, see ``TrainConfig.feedback``) and every search with that model applies it; product-to-product search
    (``similar``) never does."""

    docs: int = 3
    weight: float = 0.0

    def __post_init__(self) -> None:
        if self.docs < 1 or self.weight < 0:
            raise ConfigError(f"feedback needs docs >= 1 and weight >= 0, got docs={self.docs}, weight={self.weight}")

    @property
    def active(self) -> bool:
        return self.weight > 0

    @classmethod
    def from_dict(cls, data: Mapping | None) -> Feedback:
        """From a model's or an index's ``feedback`` entry (absent: off)."""
        data = data or {}
        return cls(**{k: data[k] for k in ("docs", "weight") if k in data})

    def as_dict(self) -> dict:
        return {"docs": self.docs, "weight": self.weight}


NO_FEEDBACK = Feedback()

TORCH_BATCH_SIZE = 32
"""Products per batch through a PyTorch tower: on 2 cores 32 encoded 242 Home Depot titles (129 demo product texts)
a second against 205–212 (108–113) at 128 (benchmarks/README, "Product encoding batch size")."""


def encode_products(
    model: SentenceTransformer,
    products: Sequence[Product],
    text: TextConfig,
    *,
    batch_size: int | None = None,
    progress: bool = False,
) -> np.ndarray:
    """L2-normalised float32 product embeddings, through the product (document) tower.

    ``batch_size`` defaults to the encoder's own (``default_batch_size``: 16 for ONNX Runtime, where small
    length-bucketed batches were fastest on 2 cores, 127 against 90 products a second at 128) or
    :data:`TORCH_BATCH_SIZE`.
    """
    batch_size = batch_size or getattr(model, "default_batch_size", TORCH_BATCH_SIZE)
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


class QueryEncoder:
    """Query vectors for normalised queries: head-query table first, then an LRU cache, then the query tower.

    Thread-safe: the tower runs under a lock (Hugging Face fast tokenizers raise "Already borrowed" when two threads
    use one at once) and the cache has its own lock.

    Args:
        model: The towers (or the untrained base model).
        text: The text configuration the model expects.
        heads: Head queries (normalised) to their row in ``head_vectors``.
        head_vectors: Query-tower vectors of the head queries, computed at index time.
        cache_size: Live-encoded query vectors to keep (0 disables the cache).
    """

    def __init__(
        self,
        model: SentenceTransformer,
        text: TextConfig,
        *,
        heads: Mapping[str, int] | None = None,
        head_vectors: np.ndarray | None = None,
        cache_size: int = 10_000,
    ) -> None:
        self.model = model
        self.text = text
        self.heads = dict(heads or {})
        self.head_vectors = head_vectors
        self.cache_size = cache_size
        self._cache: LRUCache | None = LRUCache(cache_size) if cache_size > 0 else None
        self._cache_lock = threading.Lock()
        self._model_lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def vector(self, query: str) -> tuple[np.ndarray, str]:
        """The vector of one query and where it came from: ``head``, ``cache`` or ``model``."""
        key = normalize_query(query)
        found = self._known(key)
        if found is not None:
            return found
        vector = self._encode([key])[0]
        self._remember(key, vector)
        return vector, "model"

    def encode(self, queries: Sequence[str]) -> np.ndarray:
        """Vectors of many queries, shape (queries, dim); unknown ones are encoded in one batch."""
        keys = [normalize_query(q) for q in queries]
        vectors: list[np.ndarray | None] = []
        missing: dict[str, list[int]] = {}
        for i, key in enumerate(keys):
            found = self._known(key)
            vectors.append(None if found is None else found[0])
            if found is None:
                missing.setdefault(key, []).append(i)
        if missing:
            fresh = self._encode(list(missing))
            for (key, rows), vector in zip(missing.items(), fresh, strict=True):
                self._remember(key, vector)
                for i in rows:
                    vectors[i] = vector
        if not vectors:
            return np.zeros((0, self.dim), dtype=np.float32)
        return np.stack(vectors).astype(np.float32, copy=False)

    @property
    def dim(self) -> int:
        return int(self.model.get_embedding_dimension())

    def _known(self, key: str) -> tuple[np.ndarray, str] | None:
        row = self.heads.get(key)
        if row is not None and self.head_vectors is not None:
            return self.head_vectors[row], "head"
        if self._cache is None:
            return None
        with self._cache_lock:
            vector = self._cache.get(key)
            if vector is None:
                self.misses += 1
                return None
            self.hits += 1
            return vector, "cache"

    def _remember(self, key: str, vector: np.ndarray) -> None:
        if self._cache is not None:
            with self._cache_lock:
                self._cache[key] = vector

    def _encode(self, keys: list[str]) -> np.ndarray:
        with self._model_lock:
            return encode_queries(self.model, keys, self.text)


class DenseRetriever:
    """Cosine search of query-tower vectors over product-tower embeddings held in a vector index.

    Args:
        encoder: Where query vectors come from.
        product_ids: Ids in the row order of the index.
        index: The vector index (exact or approximate) over the product embeddings.
        embeddings: The product embeddings themselves (row order of ``product_ids``), kept for ``similar`` and
            hard-negative mining.
        feedback: Pseudo-relevance feedback applied to query vectors before they search (off by default).
    """

    name = "dense"

    def __init__(
        self,
        encoder: QueryEncoder,
        product_ids: Sequence[str],
        index: VectorIndex,
        embeddings: np.ndarray,
        feedback: Feedback = NO_FEEDBACK,
    ) -> None:
        if len(product_ids) != len(index) or len(product_ids) != len(embeddings):
            raise ValueError(f"{len(product_ids)} product ids, {len(index)} indexed and {len(embeddings)} embeddings")
        self.encoder = encoder
        self.product_ids = list(product_ids)
        self.index = index
        self.embeddings = embeddings
        self.feedback = feedback

    @classmethod
    def from_products(
        cls,
        model: SentenceTransformer,
        products: Sequence[Product],
        text: TextConfig,
        *,
        progress: bool = False,
        cache_size: int = 0,
        feedback: Feedback = NO_FEEDBACK,
    ) -> DenseRetriever:
        """Encode the catalogue into an exact (flat) index: the in-memory path of ``evaluate --catalog``."""
        emb = encode_products(model, products, text, progress=progress)
        index = FaissIndex.build(emb, AnnConfig(kind="flat"))
        ids = [p.product_id for p in products]
        return cls(QueryEncoder(model, text, cache_size=cache_size), ids, index, emb, feedback)

    @property
    def model(self) -> SentenceTransformer:
        return self.encoder.model

    def search(self, queries: Sequence[str], k: int = 10, where: str | None = None) -> list[list[Hit]]:
        """Top ``k`` products per query; ``where``: see :meth:`search_vectors_rows`."""
        if not queries:
            return []
        rows = self.search_vectors_rows(self.search_vectors_of(self.encode(queries)), k, where=where)
        return [hits_from_rows(self.product_ids, r, s, "dense") for r, s in rows]

    def encode(self, queries: Sequence[str]) -> np.ndarray:
        """The queries' vectors, shape (queries, dim), from the query encoder (and its caches)."""
        return self.encoder.encode(queries)

    def search_vectors_of(self, vectors: np.ndarray) -> np.ndarray:
        """The vectors that search for these query vectors: the same, or moved by :attr:`feedback` towards the mean
        of the products each finds first (normalised again)."""
        if not self.feedback.active or not len(vectors):
            return vectors
        _, rows = self.index.search(vectors, self.feedback.docs)
        moved = np.empty_like(vectors, dtype=np.float32)
        for i, (vector, top) in enumerate(zip(vectors, rows, strict=True)):
            top = top[top >= 0]
            shift = self.embeddings[top].mean(axis=0) if len(top) else 0.0
            moved[i] = vector + self.feedback.weight * shift
        norms = np.linalg.norm(moved, axis=1, keepdims=True)
        return moved / np.where(norms > 0, norms, 1.0)

    def score_vector_rows(self, vector: np.ndarray, rows: np.ndarray) -> np.ndarray:
        """Cosines of one (normalised) query vector with the products at ``rows``."""
        return self.embeddings[np.asarray(rows, dtype=np.int64)] @ vector

    def search_vectors(self, vectors: np.ndarray, k: int = 10) -> list[list[Hit]]:
        """Top ``k`` products for each (normalised) query vector."""
        return [hits_from_rows(self.product_ids, r, s, "dense") for r, s in self.search_vectors_rows(vectors, k)]

    def search_rows(self, queries: Sequence[str], k: int = 10) -> list[RowScores]:
        """:meth:`search` as catalogue rows and scores."""
        if not queries:
            return []
        return self.search_vectors_rows(self.search_vectors_of(self.encode(queries)), k)

    def search_vectors_rows(self, vectors: np.ndarray, k: int = 10, where: str | None = None) -> list[RowScores]:
        """:meth:`search_vectors` as catalogue rows and scores; ``where`` is a filter expression for an index that
        filters itself (``filterable``, as :class:`~towersearch.search.milvus.MilvusIndex`)."""
        if not len(vectors):
            return []
        if where is not None:
            if not getattr(self.index, "filterable", False):
                raise ConfigError(f"the {self.index.kind} vector index cannot filter; filter the results instead")
            scores, rows = self.index.search(vectors, k, where=where)
        else:
            scores, rows = self.index.search(vectors, k)
        out = []
        for srow, rrow in zip(scores, rows, strict=True):
            keep = rrow >= 0
            out.append((rrow[keep].astype(np.int64, copy=False), srow[keep].astype(np.float64)))
        return out
