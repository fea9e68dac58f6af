"""A loaded index folder: dense, lexical and hybrid search with filters, and a query-embedding cache.

Query vectors come, in order, from the head-query table built at index time, an in-memory LRU cache, or the
query tower. The service loads one :class:`SearchEngine` at start-up and swaps in a new one on reload.
"""

from __future__ import annotations

import json
import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from towersearch.data.catalog import load_catalog
from towersearch.data.schema import Product, normalize_query, split_category
from towersearch.errors import ArtifactError, ConfigError
from towersearch.index.ann import FaissIndex, single_threaded_search
from towersearch.index.artifacts import model_fingerprint, read_manifest
from towersearch.index.build import INDEX_KIND
from towersearch.index.lexical import BM25Retriever
from towersearch.search.autocomplete import Suggester, Suggestion
from towersearch.search.hybrid import Fusion
from towersearch.search.retriever import Hit
from towersearch.text import TextConfig

MODES = ("hybrid", "dense", "lexical")


@dataclass
class Result:
    """One search result: the product, its final score and rank, and each retriever's score."""

    product: Product
    score: float
    rank: int
    scores: dict[str, float] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        p = self.product
        return {
            "product_id": p.product_id,
            "name": p.name,
            "brand": p.brand,
            "category": p.category,
            "department": p.department,
            "size": p.size,
            "score": round(self.score, 6),
            "scores": {k: round(v, 6) for k, v in self.scores.items()},
            "rank": self.rank,
        }


class QueryCache:
    """A thread-safe LRU cache of query vectors."""

    def __init__(self, size: int = 10_000) -> None:
        self.size = size
        self._data: OrderedDict[str, np.ndarray] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def get(self, key: str) -> np.ndarray | None:
        with self._lock:
            vector = self._data.get(key)
            if vector is None:
                self.misses += 1
                return None
            self._data.move_to_end(key)
            self.hits += 1
            return vector

    def put(self, key: str, vector: np.ndarray) -> None:
        if self.size <= 0:
            return
        with self._lock:
            self._data[key] = vector
            self._data.move_to_end(key)
            while len(self._data) > self.size:
                self._data.popitem(last=False)


class SearchEngine:
    """Everything needed to answer searches from one index folder.

    Use :meth:`load`; ``model`` may name the model folder to use, which must be the one the index was built with.
    """

    def __init__(self, folder: Path, manifest: dict, model, products: list[Product], embeddings: np.ndarray,
                 ann: FaissIndex, bm25: BM25Retriever, heads: dict[str, int], head_vectors: np.ndarray,
                 cache_size: int = 10_000) -> None:  # fmt: skip
        self.folder = folder
        self.manifest = manifest
        self.model = model
        self.products = products
        self.rows = {p.product_id: i for i, p in enumerate(products)}
        self.embeddings = embeddings
        self.ann = ann
        self.bm25 = bm25
        self.heads = heads
        self.head_vectors = head_vectors
        self.cache = QueryCache(cache_size)
        self.suggester = Suggester.load(folder) if (folder / "suggest.jsonl").is_file() else None
        self.text = TextConfig(**{k: tuple(v) if k == "fields" else v for k, v in manifest["text"].items()})
        self.fusion = Fusion.from_dict(manifest.get("fusion"))

    @classmethod
    def load(
        cls,
        folder: str | Path,
        *,
        model: str | Path | None = None,
        cache_size: int = 10_000,
        quantize_queries: bool = False,
    ) -> SearchEngine:
        """Load an index folder, checking its manifest and that ``model`` (if given) is the one it was built with.

        ``quantize_queries`` runs live query encoding through an int8 copy of the towers (PyTorch dynamic
        quantisation of the linear layers): about 2.2× faster on CPU, at about 1% NDCG@10 (see
        ``benchmarks/results/encoding.md``). Product and head-query vectors stay those of the index.

        Raises:
            ArtifactError: not an index folder, a missing file, or a different model.
        """
        from towersearch.model import load_model

        folder = Path(folder)
        manifest = read_manifest(folder, INDEX_KIND)
        built_with = manifest["model"]
        model_dir = Path(model) if model is not None else Path(built_with["path"])
        if not model_dir.is_dir():
            raise ArtifactError(f"the index's model folder {model_dir} is missing; pass the model it was built with")
        fingerprint = model_fingerprint(model_dir)
        if fingerprint != built_with["fingerprint"]:
            raise ArtifactError(
                f"index {folder} was built with model {built_with['path']} (fingerprint {built_with['fingerprint']}), "
                f"not with {model_dir} (fingerprint {fingerprint}): rebuild the index with `towersearch index`"
            )
        for name in ("products.parquet", "embeddings.npy", "ann.faiss", "bm25", "head_queries.json"):
            if not (folder / name).exists():
                raise ArtifactError(f"index {folder} is incomplete: {name} is missing")
        products = load_catalog(folder / "products.parquet").products
        embeddings = np.load(folder / "embeddings.npy", allow_pickle=False)
        if embeddings.shape != (len(products), manifest["dim"]):
            raise ArtifactError(f"index {folder}: embeddings shape {embeddings.shape} does not match the manifest")
        ann = FaissIndex.load(folder / "ann.faiss", manifest["ann"]["kind"])
        bm = manifest["bm25"]
        bm25 = BM25Retriever.load(
            folder / "bm25", [p.product_id for p in products], stemmer=bm["stemmer"], stopwords=bm["stopwords"]
        )
        heads = json.loads((folder / "head_queries.json").read_text(encoding="utf-8"))
        head_vectors = np.load(folder / "head_queries.npy", allow_pickle=False)
        encoder = load_model(model_dir)
        single_threaded_search()
        if quantize_queries:
            encoder = quantize(encoder)
        return cls(folder, manifest, encoder, products, embeddings, ann, bm25,
                   {q: i for i, q in enumerate(heads)}, head_vectors, cache_size)  # fmt: skip

    # -- query vectors -------------------------------------------------------------------------------------------
    def query_vector(self, query: str) -> tuple[np.ndarray, str]:
        """The query tower's vector for ``query`` and where it came from: ``head``, ``cache`` or ``model``."""
        from towersearch.search.dense import encode_queries

        key = normalize_query(query)
        row = self.heads.get(key)
        if row is not None:
            return self.head_vectors[row], "head"
        vector = self.cache.get(key)
        if vector is not None:
            return vector, "cache"
        vector = encode_queries(self.model, [key], self.text)[0]
        self.cache.put(key, vector)
        return vector, "model"

    # -- retrieval -----------------------------------------------------------------------------------------------
    def dense(self, query: str, k: int) -> list[Hit]:
        vector, _ = self.query_vector(query)
        scores, rows = self.ann.search(vector[None, :], k)
        return [Hit(self.products[r].product_id, float(s)) for s, r in zip(scores[0], rows[0], strict=True) if r >= 0]

    def lexical(self, query: str, k: int) -> list[Hit]:
        return self.bm25.search([normalize_query(query)], k)[0]

    def search(
        self,
        query: str,
        *,
        k: int = 10,
        mode: str = "hybrid",
        department: str | None = None,
        category: str | None = None,
        min_score: float | None = None,
        candidates: int = 100,
    ) -> list[Result]:
        """Search with one of :data:`MODES`, optional department / category-prefix filters and a score cut-off."""
        if mode not in MODES:
            raise ConfigError(f"unknown mode {mode!r}; allowed: {', '.join(MODES)}")
        if not normalize_query(query):
            raise ConfigError("empty query")
        depth = max(k, candidates) * (5 if department or category else 1)
        dense = self.dense(query, depth) if mode in ("dense", "hybrid") else []
        lexical = self.lexical(query, depth) if mode in ("lexical", "hybrid") else []
        if mode == "hybrid":
            fused = self.fusion.fuse(lexical, dense, depth)
        else:
            fused = dense or lexical
        per = {"dense": {h.product_id: h.score for h in dense}, "bm25": {h.product_id: h.score for h in lexical}}
        results: list[Result] = []
        for hit in fused:
            product = self.products[self.rows[hit.product_id]]
            if department and product.department.casefold() != department.casefold():
                continue
            if category and not _under(product.category, category):
                continue
            if min_score is not None and hit.score < min_score:
                continue
            scores = {name: values[hit.product_id] for name, values in per.items() if hit.product_id in values}
            if mode == "hybrid":
                scores["fused"] = hit.score
            results.append(Result(product, hit.score, len(results) + 1, scores))
            if len(results) == k:
                break
        return results

    def suggest(self, prefix: str, k: int = 8, *, dedup: bool = True) -> list[Suggestion]:
        """Autocomplete suggestions for ``prefix`` (empty when the index was built without candidates)."""
        if self.suggester is None:
            return []
        return self.suggester.suggest(prefix, k, dedup=dedup)

    def similar(self, product_id: str, k: int = 10) -> list[Result]:
        """Products nearest to ``product_id`` in the product tower's space (itself left out).

        Raises:
            KeyError: an unknown product id.
        """
        row = self.rows[product_id]
        scores, rows = self.ann.search(self.embeddings[row][None, :], k + 1)
        results = []
        for s, r in zip(scores[0], rows[0], strict=True):
            if r < 0 or r == row:
                continue
            results.append(Result(self.products[r], float(s), len(results) + 1, {"dense": float(s)}))
        return results[:k]

    def retriever(self, mode: str) -> _ModeRetriever:
        """This engine as a :class:`~towersearch.search.retriever.Retriever` of one mode (for evaluation)."""
        return _ModeRetriever(self, mode)


def quantize(model):
    """An int8 copy of ``model`` for CPU inference (dynamic quantisation of every ``nn.Linear``)."""
    import warnings

    import torch

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # PyTorch marks the torch.ao API as deprecated in favour of torchao
        return torch.ao.quantization.quantize_dynamic(model, {torch.nn.Linear}, dtype=torch.qint8)


def _under(path: str, prefix: str) -> bool:
    levels, want = split_category(path.casefold()), split_category(prefix.casefold())
    return levels[: len(want)] == want


class _ModeRetriever:
    def __init__(self, engine: SearchEngine, mode: str) -> None:
        self.engine = engine
        self.mode = mode
        self.name = {"lexical": "bm25"}.get(mode, mode)

    def search(self, queries: Sequence[str], k: int = 10) -> list[list[Hit]]:
        out = []
        for q in queries:
            results = self.engine.search(q, k=k, mode=self.mode)
            out.append([Hit(r.product.product_id, r.score) for r in results])
        return out
