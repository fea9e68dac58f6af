"""A loaded index folder: every retriever over its stored parts, filters, similar products and autocomplete.

The engine reads what ``towersearch index`` stored and composes the retrievers with
:func:`~towersearch.search.factory.compose`, the same function ``evaluate --catalog`` uses, so a mode runs the same
code in evaluation, the CLI and the service. Query vectors come from the head-query table built at index time, an
LRU cache, or the query tower (:class:`~towersearch.search.dense.QueryEncoder`). The service loads one
:class:`SearchEngine` at start-up and swaps in a new one on reload.
"""

from __future__ import annotations

import functools
import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from towersearch.data.catalog import load_catalog
from towersearch.data.schema import Product, normalize_query, split_category
from towersearch.errors import ArtifactError, ConfigError
from towersearch.index.artifacts import INDEX_KIND, model_fingerprint, read_manifest
from towersearch.index.generations import index_root
from towersearch.reviews.insights import load_index_insights
from towersearch.search.ann import FaissIndex, single_threaded_numpy_blas, single_threaded_search
from towersearch.search.autocomplete import Suggester, Suggestion
from towersearch.search.dense import DenseRetriever, Feedback, QueryEncoder
from towersearch.search.factory import compose, default_retriever, prepare
from towersearch.search.hybrid import Fusion
from towersearch.search.lexical import BM25Retriever
from towersearch.search.ranker import Ranker
from towersearch.search.retriever import Retriever
from towersearch.text import TextConfig

MODES = ("ranked", "hybrid", "dense", "lexical")
"""Search modes, as the CLI and the service name them; ``lexical`` is the ``bm25`` retriever, ``ranked`` needs a
model with a ranker."""
MODE_RETRIEVER = {"ranked": "ranked", "hybrid": "hybrid", "dense": "dense", "lexical": "bm25"}
INDEX_FILES = ("products.parquet", "embeddings.npy", "ann.faiss", "bm25", "head_queries.json", "head_queries.npy")


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


class SearchEngine:
    """Everything needed to answer searches from one index folder.

    Use :meth:`load`, which checks the manifest and the model and reads the stored parts.

    Args:
        folder: The index folder.
        manifest: Its manifest.
        products: The catalogue, in index row order.
        lexical: BM25 over the catalogue.
        dense: Dense retrieval over the stored vector index.
        suggester: Autocomplete, if the index has candidates.
        ranker: The ranking stage, if the model has one.
        insights: Review insights per product id, if the index has them
            (:mod:`towersearch.reviews.insights`).
    """

    def __init__(
        self,
        folder: Path,
        manifest: dict,
        products: list[Product],
        lexical: BM25Retriever,
        dense: DenseRetriever,
        suggester: Suggester | None = None,
        ranker: Ranker | None = None,
        insights: dict[str, dict[str, Any]] | None = None,
    ) -> None:
        self.folder = folder
        self.root = index_root(folder)
        self.manifest = manifest
        self.products = products
        self.rows = {p.product_id: i for i, p in enumerate(products)}
        self.lexical = lexical
        self.dense = dense
        self.suggester = suggester
        self.fusion = Fusion.from_dict(manifest.get("fusion"))
        self.ranker = ranker
        self.insights = insights or {}
        self.retrievers: dict[str, Retriever] = compose(lexical, dense, self.fusion, ranker=ranker, products=products)
        default = default_retriever(self.retrievers)
        prepare(self.retrievers, default)  # the default mode's first search is as fast as any other
        self.default_mode = {v: k for k, v in MODE_RETRIEVER.items()}[default]

    def close(self) -> None:
        """Release what the engine holds outside the process: the Milvus client of an index on Milvus (its
        connection is shared and reference-counted by pymilvus, so other engines on the same server keep theirs).
        Searches on a closed engine fail; call it only once no request can reach the engine. Idempotent."""
        close = getattr(self.dense.index, "close", None)
        if close is not None:
            close()

    @classmethod
    def load(
        cls,
        folder: str | Path,
        *,
        model: str | Path | None = None,
        cache_size: int = 10_000,
        quantize_queries: bool = False,
        encoder: str = "auto",
    ) -> SearchEngine:
        """Load an index folder, checking its manifest and that ``model`` (if given) is the one it was built with.

        ``folder`` is an index folder (``INDEX_DIR``): its ``CURRENT`` file is read once and every file comes from
        the generation it names (:func:`~towersearch.index.generations.resolve`); an index of the older layout
        (files directly in ``folder``, no ``CURRENT``) loads too. ``engine.folder`` is the folder loaded (the
        generation); :func:`~towersearch.index.generations.index_root` of it gives ``INDEX_DIR`` back. The towers
        come from the generation's own ``model/`` copy unless ``model`` overrides them (older indexes: the absolute
        path their manifest records).

        Live queries are encoded with ONNX Runtime when the model folder holds an export of its weights (every index
        built by this version does), else with PyTorch; ``encoder`` (``auto``, ``onnx``, ``torch``) chooses
        (:func:`towersearch.encoders.load_encoder`). ``quantize_queries`` runs them through int8 towers (the
        export's int8 graphs, or PyTorch dynamic quantisation of the linear layers): faster on CPU at a small cost in
        NDCG@10 (see ``benchmarks/results/encoding.md``). Product and head-query vectors stay those of the index.

        Review insights (``review_insights.json``) are loaded when the generation has them; an index built without
        them serves none.

        Raises:
            ArtifactError: not an index folder, a missing or unreadable file, or a different model.
        """
        from towersearch.encoders import load_encoder
        from towersearch.index.artifacts import index_model_dir
        from towersearch.index.generations import resolve

        folder = resolve(folder)  # CURRENT is read once: everything below comes from that one generation
        manifest = read_manifest(folder, INDEX_KIND)
        built_with = manifest["model"]
        model_dir = Path(model) if model is not None else index_model_dir(folder, built_with)
        if not model_dir.is_dir():
            raise ArtifactError(f"the index's model folder {model_dir} is missing; pass the model it was built with")
        fingerprint = model_fingerprint(model_dir)
        if fingerprint != built_with["fingerprint"]:
            built_from = built_with.get("source", built_with["path"])
            raise ArtifactError(
                f"index {folder} was built with model {built_from} (fingerprint {built_with['fingerprint']}), "
                f"not with {model_dir} (fingerprint {fingerprint}): rebuild the index with `towersearch index`"
            )
        on_milvus = manifest["ann"]["kind"] == "milvus"
        for name in INDEX_FILES:
            if name == "ann.faiss" and on_milvus:
                continue  # the vectors are in Milvus; milvus_ids.npy is checked when it connects
            if not (folder / name).exists():
                raise ArtifactError(f"index {folder} is incomplete: {name} is missing")
        products = load_catalog(folder / "products.parquet").products
        ids = [p.product_id for p in products]
        embeddings = _load_array(folder / "embeddings.npy")
        if embeddings.shape != (len(products), manifest["dim"]):
            raise ArtifactError(f"index {folder}: embeddings shape {embeddings.shape} does not match the manifest")
        if on_milvus:
            from towersearch.search.milvus import MilvusIndex

            ann = MilvusIndex.load(folder, manifest["ann"])
        else:
            ann = FaissIndex.load(folder / "ann.faiss", manifest["ann"]["kind"])  # with ann_ids.npy, where it exists
        if len(ann) != len(products):
            raise ArtifactError(
                f"index {folder}: the vector index holds {len(ann)} live vectors for {len(products)} products"
            )
        bm = manifest["bm25"]
        lexical = BM25Retriever.load(
            folder / "bm25",
            ids,
            stemmer=bm["stemmer"],
            stopwords=bm["stopwords"],
            spelling=bm.get("spelling", False),  # an index built before query spelling serves as it was built
        )
        try:
            heads = json.loads((folder / "head_queries.json").read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise ArtifactError(f"{folder / 'head_queries.json'} is not valid JSON: {exc.msg}") from None
        head_vectors = _load_array(folder / "head_queries.npy")
        if len(head_vectors) != len(heads):
            raise ArtifactError(f"index {folder}: {len(heads)} head queries but {len(head_vectors)} head vectors")
        suggester = Suggester.load(folder) if (folder / "suggest.jsonl").is_file() else None
        insights = load_index_insights(folder, manifest)  # None for an index built without reviews
        encoder_model = load_encoder(model_dir, backend=encoder, quantized=quantize_queries, fingerprint=fingerprint)
        single_threaded_search()
        single_threaded_numpy_blas()
        text = TextConfig(**{k: tuple(v) if k == "fields" else v for k, v in manifest["text"].items()})
        encoder = QueryEncoder(
            encoder_model,
            text,
            heads={q: i for i, q in enumerate(heads)},
            head_vectors=head_vectors,
            cache_size=cache_size,
        )
        dense = DenseRetriever(encoder, ids, ann, embeddings, Feedback.from_dict(manifest.get("feedback")))
        return cls(folder, manifest, products, lexical, dense, suggester, Ranker.load(model_dir), insights)

    @property
    def modes(self) -> list[str]:
        """The modes this index serves."""
        return [m for m in MODES if MODE_RETRIEVER[m] in self.retrievers]

    # -- query vectors -------------------------------------------------------------------------------------------
    def query_vector(self, query: str) -> tuple[np.ndarray, str]:
        """The query tower's vector for ``query`` and where it came from: ``head``, ``cache`` or ``model``."""
        return self.dense.encoder.vector(query)

    @property
    def model(self):
        """The towers serving live queries."""
        return self.dense.encoder.model

    @property
    def embeddings(self) -> np.ndarray:
        return self.dense.embeddings

    # -- retrieval -----------------------------------------------------------------------------------------------
    def retriever(self, mode: str) -> Retriever:
        """The retriever behind a mode (``lexical``/``bm25``, ``dense``, ``hybrid``, ``ranked``)."""
        name = MODE_RETRIEVER.get(mode, mode)
        if name not in self.retrievers:
            if mode == "ranked":
                raise ConfigError("mode 'ranked' needs a model with a ranker; this index's model has none")
            raise ConfigError(f"unknown mode {mode!r}; allowed: {', '.join(self.modes)}")
        return self.retrievers[name]

    def search(
        self,
        query: str,
        *,
        k: int = 10,
        mode: str | None = None,
        department: str | None = None,
        category: str | None = None,
        min_score: float | None = None,
        candidates: int = 100,
    ) -> list[Result]:
        """Search with one of :data:`MODES` (default: :attr:`default_mode`), optional department / category-prefix
        filters and a score cut-off.

        Filters apply to the retriever's ranking: with a filter, ``5 × max(k, candidates)`` products are retrieved
        so that ``k`` of them usually pass, and four times as many again (up to the whole catalogue) while fewer
        than ``k`` pass and the retriever had more to give; a vector index that filters as it searches (Milvus)
        does it in one go in ``dense`` mode.
        """
        mode = mode or self.default_mode
        if mode not in MODES:
            raise ConfigError(f"unknown mode {mode!r}; allowed: {', '.join(MODES)}")
        if not normalize_query(query):
            raise ConfigError("empty query")
        depth = max(k, candidates) * 5 if department or category else k
        where = None
        if MODE_RETRIEVER.get(mode, mode) == "dense" and getattr(self.dense.index, "filterable", False):
            from towersearch.search.milvus import filter_expression

            where = filter_expression(department, category)  # the vector index filters as it searches
        while True:
            if where is not None:
                hits = self.dense.search([query], k, where=where)[0]
            else:
                hits = self.retriever(mode).search([query], depth)[0]
            results = self._filtered(hits, k, department, category, min_score)
            # the filter kept fewer than k of a full list, the catalogue has products beyond it and the filter's
            # products are not all found yet: look deeper
            more = where is None and bool(department or category) and len(hits) >= depth and depth < len(self.products)
            below = more and min_score is not None and hits[-1].score < min_score
            if len(results) >= k or not more or below or len(results) >= self._matching(department, category):
                return results
            depth = min(depth * 4, len(self.products))

    def _matching(self, department: str | None, category: str | None) -> int:
        """At most how many products pass the filters: the smaller of the department's and the category's sizes."""
        counts = self._filter_counts
        sizes = [len(self.products)]
        if department:
            sizes.append(counts[0].get(department.casefold(), 0))
        if category:
            sizes.append(counts[1].get(" > ".join(split_category(category.casefold())), 0))
        return min(sizes)

    @functools.cached_property
    def _filter_counts(self) -> tuple[Counter, Counter]:
        """Products per department and per category path prefix (computed on the first filtered search)."""
        departments: Counter = Counter(p.department.casefold() for p in self.products)
        categories: Counter = Counter()
        for p in self.products:
            levels = split_category(p.category.casefold())
            categories.update(" > ".join(levels[: i + 1]) for i in range(len(levels)))
        return departments, categories

    def _filtered(
        self, hits, k: int, department: str | None, category: str | None, min_score: float | None
    ) -> list[Result]:
        results: list[Result] = []
        for hit in hits:
            product = self.products[self.rows[hit.product_id]]
            if department and product.department.casefold() != department.casefold():
                continue
            if category and not _under(product.category, category):
                continue
            if min_score is not None and hit.score < min_score:
                continue
            results.append(Result(product, hit.score, len(results) + 1, dict(hit.scores)))
            if len(results) == k:
                break
        return results

    def suggest(self, prefix: str, k: int = 8, *, dedup: bool = True) -> list[Suggestion]:
        """Autocomplete suggestions for ``prefix`` (empty when the index was built without candidates)."""
        if self.suggester is None:
            return []
        return self.suggester.suggest(prefix, k, dedup=dedup)

    def review_insights(self, product_id: str) -> dict[str, Any] | None:
        """A product's review insights (``reviews``, ``intent_share``, ``most_useful``), or None when it has none
        (no reviews, or an index built without them)."""
        return self.insights.get(product_id)

    def corrections(self, query: str, mode: str | None = None) -> dict[str, str]:
        """The query words BM25 read as other catalogue words in ``mode`` (``{"toliet": "toilet"}``; see
        :meth:`BM25Retriever.corrections`); empty in ``dense`` mode, which reads the query as typed."""
        if MODE_RETRIEVER.get(mode or self.default_mode) == "dense":
            return {}
        return self.lexical.corrections(query)

    def similar(self, product_id: str, k: int = 10) -> list[Result]:
        """Products nearest to ``product_id`` in the product tower's space (itself left out).

        Raises:
            KeyError: an unknown product id (a deleted product is unknown).
        """
        row = self.rows.get(product_id)
        if row is None:
            raise KeyError(f"unknown product {product_id!r}: not in the index")
        hits = self.dense.search_vectors(self.embeddings[row][None, :], k + 1)[0]
        results = []
        for hit in hits:
            if hit.product_id == product_id:
                continue
            results.append(Result(self.products[self.rows[hit.product_id]], hit.score, len(results) + 1, hit.scores))
        return results[:k]


def _load_array(path: Path) -> np.ndarray:
    try:
        return np.load(path, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise ArtifactError(f"{path} cannot be read as a numpy array: {exc}") from None


def _under(path: str, prefix: str) -> bool:
    levels, want = split_category(path.casefold()), split_category(prefix.casefold())
    return levels[: len(want)] == want
