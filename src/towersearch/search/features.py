"""Features of (query, candidate product) pairs for the learned ranking stage.

Every feature is a number per candidate, computed the same way at training time (``towersearch train``), in
``evaluate`` and in the service. :data:`FEATURES` lists them with what they mean; a feature that does not apply
(a query without numbers, a catalogue without categories) is NaN, which LightGBM treats as missing.

Engagement features come from a :class:`RankingContext`: per-product counts and the categories and products engaged
for each logged query, taken from the log the towers were trained on and stored with the ranker, so training and
serving see the same numbers. The queries the ranker itself learns from are never in that log (a query's own
clicks would otherwise be its label).
"""

from __future__ import annotations

import functools
import json
import re
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from cachetools import LRUCache

from towersearch.data.io import atomic_path
from towersearch.data.schema import Product, normalize_query, split_category
from towersearch.errors import ArtifactError
from towersearch.search.ann import FaissIndex
from towersearch.search.lexical import DEFAULT_FIELDS as BM25_FIELDS
from towersearch.search.retriever import find_sorted

if TYPE_CHECKING:
    from towersearch.search.hybrid import Candidates

FEATURES: dict[str, str] = {
    "bm25": "BM25 score of the product text (name, brand, category, size, attributes) for the query",
    "bm25_name": "BM25 score of the product name alone",
    "dense": "cosine of the query tower's and the product tower's vectors",
    "fused": "the hybrid fusion's score (its calibrated blend, union blend or RRF)",
    "rank_bm25": "rank in the BM25 candidate list (candidates + 1 when absent)",
    "rank_dense": "rank in the dense candidate list (candidates + 1 when absent)",
    "rank_fused": "rank in the fused list",
    "name_coverage": "share of the query's (stemmed, stop-word-free) terms found in the name",
    "text_coverage": "share of the query's terms found anywhere in the product text",
    "phrase_in_name": "1 when the whole normalised query occurs in the normalised name",
    "number_match": "share of the query's numbers (sizes, model numbers) found in the product text; NaN without",
    "query_terms": "number of query terms",
    "name_terms": "number of name terms",
    "product_ctr": "product clicks per impression in the log, smoothed towards the log's mean",
    "product_cvr": "product conversions (carts, purchases) per impression, smoothed",
    "product_impressions": "log(1 + impressions) of the product; 0 for a product the log never showed",
    "department_affinity": "share of the engagement of the nearest logged queries that went to this department",
    "category_affinity": "the same for the product's full category path; NaN when the catalogue has none",
    "neighbour_engagement": "similarity-weighted engagement of this product by the nearest logged queries",
    "brand_in_query": "1 when the query holds every word of the product's brand; NaN for a product without one",
    "type_coverage": "share of the query's terms other than the product's brand words found in the name",
    "bm25_share": "the BM25 score over the best BM25 score among the query's candidates (1 for its best lexical match)",
    "dense_gap": "the cosine minus the best cosine among the query's candidates (0 for the towers' first choice)",
    "name_trigrams": "share of the query's character trigrams (of each word, with its ends) found in the name's: "
    "coverage that survives typos, split and joined words",
}
DIRECTIONS: dict[str, int] = {
    "bm25": 1,
    "bm25_name": 1,
    "dense": 1,
    "fused": 1,
    "rank_bm25": -1,
    "rank_dense": -1,
    "rank_fused": -1,
    "name_coverage": 1,
    "text_coverage": 1,
    "phrase_in_name": 1,
    "number_match": 1,
    "product_ctr": 1,
    "product_cvr": 1,
    "product_impressions": 1,
    "department_affinity": 1,
    "category_affinity": 1,
    "neighbour_engagement": 1,
    "type_coverage": 1,
    "bm25_share": 1,
    "dense_gap": 1,
    "name_trigrams": 1,
}
"""How a feature may move the ranker's score when the ranker is trained monotone (``RankerConfig.monotone``): 1 never
down when the feature grows, -1 never up; features not listed (term counts) are unconstrained.

Exposure (``product_impressions``) never counts against a product: a product shown and ignored already scores low
on its click and conversion rates. Left free, the trees learn "never shown, so more likely right" from logs made
of judged pools (each product judged for one or two queries, so the log's products are other queries' answers),
which a store's own log does not share."""
TOKEN = re.compile(r"(?u)\b\w\w+\b")
NUMBER = re.compile(r"\d+(?:[.,/]\d+)?")
PRIOR_WEIGHT = 20.0
"""Pseudo-impressions of the smoothing prior: a product needs about this many impressions to move its rates."""
BRAND_FEATURES = ("brand_in_query", "type_coverage")
"""Features that read the brand field: without a brand anywhere in the catalogue they are missing or copy
``name_coverage``, so a ranker of such a catalogue leaves them out (:func:`usable_features`)."""


class Terms:
    """Lower-cased, stop-word-free, stemmed terms (the tokens BM25 sees, by bm25s's own pattern)."""

    def __init__(self, stemmer: str = "english") -> None:
        from bm25s.stopwords import STOPWORDS_EN

        self.stopwords = frozenset(STOPWORDS_EN)
        self._stemmer = None
        if stemmer != "none":
            import Stemmer

            self._stemmer = Stemmer.Stemmer(stemmer)

    def __call__(self, text: str) -> list[str]:
        words = [w for w in TOKEN.findall(text.lower()) if w not in self.stopwords]
        return self._stemmer.stemWords(words) if self._stemmer and words else words


@dataclass
class RankingContext:
    """What the log says, in the form the features read it.

    Args:
        product_ids: Products with engagement, parallel to the count arrays.
        impressions, clicks, conversions: Their counts in the log.
        queries: Logged queries (normalised) with engagement.
        query_vectors: Their query-tower vectors, shape (queries, dim).
        query_departments: Per query, engagement share per department.
        query_categories: Per query, engagement share per category path.
        query_products: Per query, engagement share per product.
    """

    product_ids: list[str]
    impressions: np.ndarray
    clicks: np.ndarray
    conversions: np.ndarray
    queries: list[str]
    query_vectors: np.ndarray
    query_departments: list[dict[str, float]]
    query_categories: list[dict[str, float]]
    query_products: list[dict[str, float]]
    neighbours: int = 10

    @functools.cached_property
    def query_index(self) -> FaissIndex | None:
        """A FAISS inner-product index of ``query_vectors`` (None without queries), built once per context however
        many feature extractors read it: exact (flat) below :class:`~towersearch.search.ann.AnnConfig`'s HNSW
        threshold, as the product index, HNSW above it, so a log of a million queries does not scan 1.5 GB per
        search. Flat FAISS search takes a third of numpy's time per query on the demo's 1,769 queries, which numpy
        must first write every similarity out for."""
        return FaissIndex.build(self.query_vectors) if len(self.queries) else None

    @classmethod
    def empty(cls, dim: int) -> RankingContext:
        z = np.zeros(0)
        return cls([], z, z, z, [], np.zeros((0, dim), dtype=np.float32), [], [], [])

    def save(self, folder: Path) -> None:
        """Write ``context.json`` and ``context_vectors.npy`` into ``folder`` (atomically, each)."""
        data = {
            "products": {
                "ids": self.product_ids,
                "impressions": self.impressions.tolist(),
                "clicks": self.clicks.tolist(),
                "conversions": self.conversions.tolist(),
            },
            "queries": self.queries,
            "departments": self.query_departments,
            "categories": self.query_categories,
            "query_products": self.query_products,
            "neighbours": self.neighbours,
        }
        with atomic_path(folder / "context.json") as tmp:
            tmp.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
        with atomic_path(folder / "context_vectors.npy") as tmp:
            with open(tmp, "wb") as fh:
                np.save(fh, self.query_vectors.astype(np.float32))

    @classmethod
    def load(cls, folder: Path) -> RankingContext:
        try:
            data = json.loads((folder / "context.json").read_text(encoding="utf-8"))
            vectors = np.load(folder / "context_vectors.npy", allow_pickle=False)
        except (OSError, ValueError) as exc:
            raise ArtifactError(f"ranking context in {folder} cannot be read: {exc}") from None
        products = data["products"]
        if len(vectors) != len(data["queries"]):
            raise ArtifactError(f"ranking context in {folder}: {len(data['queries'])} queries, {len(vectors)} vectors")
        return cls(
            products["ids"],
            np.asarray(products["impressions"], dtype=np.float64),
            np.asarray(products["clicks"], dtype=np.float64),
            np.asarray(products["conversions"], dtype=np.float64),
            data["queries"],
            vectors,
            data["departments"],
            data["categories"],
            data["query_products"],
            int(data.get("neighbours", 10)),
        )


class FeatureExtractor:
    """Computes :data:`FEATURES` for a query's candidates.

    Args:
        products: The catalogue, in the row order of ``embeddings``.
        lexical: The BM25 retriever over the product text (its scores are features).
        name_lexical: BM25 over names alone.
        embeddings: Product-tower embeddings (normalised), row order of ``products``.
        context: Engagement from the log.
        text_fields: The fields of the product text the coverage features read.
        stemmer: The stemmer of the coverage features.
    """

    def __init__(
        self,
        products: Sequence[Product],
        lexical,
        name_lexical,
        embeddings: np.ndarray,
        context: RankingContext,
        *,
        text_fields: Sequence[str] = BM25_FIELDS,
        stemmer: str = "english",
    ) -> None:
        from towersearch.text import TextConfig, product_text

        self.rows = {p.product_id: i for i, p in enumerate(products)}
        self._queries: LRUCache = LRUCache(QUERY_CACHE)
        self._lock = threading.Lock()
        self.lexical = lexical
        self.name_lexical = name_lexical
        self.embeddings = embeddings
        self.context = context
        context.query_index  # noqa: B018  (built now, not on a first search; kept with the context)
        self.terms = Terms(stemmer)
        plain = TextConfig(fields=tuple(text_fields), markers=False)
        self.names = [normalize_query(p.name) for p in products]
        name_terms = [frozenset(self.terms(p.name)) for p in products]
        brand_terms = {brand: frozenset(self.terms(brand)) for brand in {p.brand for p in products}}
        self.brand_terms = [brand_terms[p.brand] for p in products]
        self.has_brands = any(brand_terms.values())
        self.name_term_counts = np.array([len(t) for t in name_terms], dtype=np.float32)
        self.name_terms = Postings(name_terms)
        texts = [product_text(p, plain) for p in products]
        self.text_terms = Postings(frozenset(self.terms(t)) for t in texts)
        self.text_numbers = Postings(frozenset(NUMBER.findall(t.lower())) for t in texts)
        self.name_trigrams = Postings(trigrams(name) for name in self.names)
        categories = [" > ".join(split_category(p.category.casefold())) for p in products]
        self.department_codes, self.department_of = _codes([p.department.casefold() for p in products])
        self.category_codes, self.category_of = _codes(categories)
        self.has_categories = any(categories)
        n = len(products)
        self.ctr = np.zeros(n)
        self.cvr = np.zeros(n)
        self.log_impressions = np.zeros(n)
        c = context
        total = float(c.impressions.sum())
        mean_ctr = float(c.clicks.sum()) / total if total else 0.0
        mean_cvr = float(c.conversions.sum()) / total if total else 0.0
        self.ctr[:] = mean_ctr
        self.cvr[:] = mean_cvr
        for pid, imp, clk, conv in zip(c.product_ids, c.impressions, c.clicks, c.conversions, strict=True):
            row = self.rows.get(pid)
            if row is None:
                continue
            self.ctr[row] = (clk + PRIOR_WEIGHT * mean_ctr) / (imp + PRIOR_WEIGHT)
            self.cvr[row] = (conv + PRIOR_WEIGHT * mean_cvr) / (imp + PRIOR_WEIGHT)
            self.log_impressions[row] = np.log1p(imp)

    def query_part(self, key: str, vector: np.ndarray) -> QueryPart:
        """What the features read of the query alone (normalised ``key`` and its vector), remembered for the
        :data:`QUERY_CACHE` most recent queries: repeated queries skip the nearest-logged-query search."""
        memo = (key, vector.tobytes())
        with self._lock:
            part = self._queries.get(memo)
        if part is not None:
            return part
        neighbours = [(qi, sim) for qi, sim in self._neighbours(vector) if sim > 0]
        c = self.context
        part = QueryPart(
            terms=frozenset(self.terms(key)),
            trigrams=trigrams(key),
            numbers=frozenset(NUMBER.findall(key)),
            share=sum(s for _, s in neighbours) or 1.0,
            department=_lookup(_weighted((c.query_departments[qi], s) for qi, s in neighbours), self.department_codes),
            category=_lookup(_weighted((c.query_categories[qi], s) for qi, s in neighbours), self.category_codes),
            product=_lookup(_weighted((c.query_products[qi], s) for qi, s in neighbours), self.rows),
        )
        with self._lock:
            self._queries[memo] = part
        return part

    def _neighbours(self, vector: np.ndarray) -> list[tuple[int, float]]:
        """The context's ``neighbours`` logged queries nearest ``vector`` (cosine), best first."""
        index = self.context.query_index
        if index is None:
            return []
        sims, ids = index.search(vector.reshape(1, -1), self.context.neighbours)
        return [(int(i), max(float(s), 0.0)) for i, s in zip(ids[0], sims[0], strict=True) if i >= 0]

    def features(self, query: str, vector: np.ndarray, candidates: Candidates, candidates_depth: int) -> np.ndarray:
        """The feature matrix, shape (candidates, len(FEATURES)), in the order of :data:`FEATURES`.

        ``candidates`` are the fused candidates (:meth:`~towersearch.search.hybrid.HybridRetriever.fused_candidates`,
        rows in this extractor's catalogue order), ``vector`` the query's query-tower vector.
        """
        rows = candidates.rows
        m = len(rows)
        out = np.full((m, len(FEATURES)), np.nan, dtype=np.float32)
        if m == 0:
            return out
        key = normalize_query(query)
        out[:, 0] = self.lexical.score_rows(key, rows)
        out[:, 1] = self.name_lexical.score_rows(key, rows)
        out[:, 2] = self.embeddings[rows] @ vector
        absent = candidates_depth + 1
        out[:, 3] = candidates.fused
        out[:, 4] = np.where(candidates.rank_bm25 > 0, candidates.rank_bm25, absent)
        out[:, 5] = np.where(candidates.rank_dense > 0, candidates.rank_dense, absent)
        out[:, 6] = np.arange(1, m + 1)
        part = self.query_part(key, vector)
        q_terms, q_numbers = part.terms, part.numbers
        row_list = rows.tolist()
        n = len(q_terms)
        in_name = self.name_terms.count(q_terms, rows)  # query terms each name holds
        out[:, 7] = in_name / n if n else 0.0
        out[:, 8] = self.text_terms.count(q_terms, rows) / n if n else 0.0
        out[:, 9] = [1.0 if key and key in self.names[r] else 0.0 for r in row_list]
        if q_numbers:
            out[:, 10] = self.text_numbers.count(q_numbers, rows) / len(q_numbers)
        out[:, 12] = self.name_term_counts[rows]
        out[:, 11] = len(q_terms)
        out[:, 13] = self.ctr[rows]
        out[:, 14] = self.cvr[rows]
        out[:, 15] = self.log_impressions[rows]
        # similarity-weighted engagement of the nearest logged queries, per department, category and product
        out[:, 16] = part.department(self.department_of[rows]) / part.share if self.has_categories else np.nan
        out[:, 17] = part.category(self.category_of[rows]) / part.share if self.has_categories else np.nan
        out[:, 18] = part.product(rows)
        out[:, 20] = out[:, 7]
        if part.trigrams:
            out[:, 23] = self.name_trigrams.count(part.trigrams, rows) / len(part.trigrams)
        best_bm25 = out[:, 0].max()  # scores relative to the query's own best: raw BM25 scales with its terms' IDF
        out[:, 21] = out[:, 0] / best_bm25 if best_bm25 > 0 else 0.0
        out[:, 22] = out[:, 2] - out[:, 2].max()
        if self.has_brands:  # the brand's words apart ("gentle growers orange": the brand's avocado, another orange)
            brands = [self.brand_terms[r] for r in row_list]
            out[:, 19] = [(1.0 if b <= q_terms else 0.0) if b else np.nan for b in brands]
            named: dict[frozenset[str], list[int]] = {}
            for i, brand in enumerate(brands):
                if brand & q_terms:
                    named.setdefault(brand, []).append(i)
            for brand, at in named.items():  # candidates whose brand the query names: its words do not count
                shared, at = brand & q_terms, np.asarray(at)
                rest = n - len(shared)
                out[at, 20] = (in_name[at] - self.name_terms.count(shared, rows[at])) / rest if rest else 0.0
        return out


def usable_features(features: Sequence[str], extractor: FeatureExtractor) -> tuple[str, ...]:
    """``features`` less those the extractor's catalogue cannot inform (:data:`BRAND_FEATURES` without brands)."""
    if extractor.has_brands:
        return tuple(features)
    return tuple(f for f in features if f not in BRAND_FEATURES)


class Postings:
    """Which products hold which terms: per term, its products' rows in ascending order (one array for all terms),
    so the terms a query shares with 100 candidates take a binary search per query term, not a set per product."""

    def __init__(self, term_sets: Iterable[Iterable[str]]) -> None:
        self.vocab: dict[str, int] = {}
        term_ids: list[int] = []
        rows: list[int] = []
        for row, terms in enumerate(term_sets):
            for term in terms:
                term_ids.append(self.vocab.setdefault(term, len(self.vocab)))
                rows.append(row)
        term_arr = np.asarray(term_ids, dtype=np.int64)
        row_arr = np.asarray(rows, dtype=np.int64)
        order = np.lexsort((row_arr, term_arr))
        self.rows = row_arr[order].astype(np.int32)
        self.starts = np.zeros(len(self.vocab) + 1, dtype=np.int64)
        np.cumsum(np.bincount(term_arr, minlength=len(self.vocab)), out=self.starts[1:])

    def count(self, terms: Iterable[str], rows: np.ndarray) -> np.ndarray:
        """How many of ``terms`` (distinct) each product at ``rows`` holds."""
        out = np.zeros(len(rows), dtype=np.float64)
        rows = rows.astype(self.rows.dtype, copy=False)  # searchsorted would otherwise convert the posting lists
        for term in terms:
            t = self.vocab.get(term)
            if t is None:
                continue
            out += find_sorted(self.rows[self.starts[t] : self.starts[t + 1]], rows)[1]
        return out


QUERY_CACHE = 4096
"""Queries whose query-only feature parts a :class:`FeatureExtractor` remembers."""


@dataclass(frozen=True)
class QueryPart:
    """What the features read of a query alone: its terms and numbers, and the similarity-weighted engagement of its
    nearest logged queries (each a function from codes to weights) with the sum of their similarities (``share``,
    1 when there is none)."""

    terms: frozenset[str]
    trigrams: frozenset[str]
    numbers: frozenset[str]
    share: float
    department: Callable[[np.ndarray], np.ndarray]
    category: Callable[[np.ndarray], np.ndarray]
    product: Callable[[np.ndarray], np.ndarray]


def trigrams(text: str) -> frozenset[str]:
    """Character trigrams of each word of ``text`` (lower case), the word's ends marked: ``"deck"`` gives ``#de``,
    ``dec``, ``eck``, ``ck#``; a word of one character gives none."""
    out: set[str] = set()
    for word in TOKEN.findall(text.lower()):  # words of two characters or more
        padded = f"#{word}#"
        out.update(padded[i : i + 3] for i in range(len(padded) - 2))
    return frozenset(out)


def _codes(values: Sequence[str]) -> tuple[dict[str, int], np.ndarray]:
    """Integer codes of ``values`` (first seen, first coded) and the code of each."""
    codes: dict[str, int] = {}
    of = np.array([codes.setdefault(v, len(codes)) for v in values], dtype=np.int64)
    return codes, of


def _lookup(weights: dict[str, float], codes: dict[str, int]):
    """A function from an array of codes to each code's weight in ``weights`` (0 for codes without one), reading
    only the few keys of ``weights`` whatever the number of codes."""
    pairs = sorted((codes[key], value) for key, value in weights.items() if key in codes)
    if not pairs:
        return lambda at: np.zeros(len(at))
    keys = np.array([k for k, _ in pairs], dtype=np.int64)
    values = np.array([v for _, v in pairs], dtype=np.float64)

    def weight_of(at: np.ndarray) -> np.ndarray:
        pos, found = find_sorted(keys, at)
        return np.where(found, values[pos], 0.0)

    return weight_of


def _weighted(shares) -> dict[str, float]:
    """Sum of ``sim × share`` per key over (shares, sim) pairs, added in their order."""
    out: dict[str, float] = {}
    for share, sim in shares:
        for key, value in share.items():
            out[key] = out.get(key, 0.0) + sim * value
    return out
