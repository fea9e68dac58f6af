"""BM25 over product text, with bm25s."""

from __future__ import annotations

import re
from collections.abc import Sequence
from functools import cached_property
from pathlib import Path

import numpy as np

from towersearch.data.schema import Product
from towersearch.errors import ArtifactError, ConfigError
from towersearch.search.retriever import NO_ROWS, Hit, RowScores, find_sorted, hits_from_rows, top_k
from towersearch.text import TextConfig, product_text

STEMMERS = ("english", "none")
DEFAULT_FIELDS = ("name", "brand", "category", "size", "attributes")
"""The product fields BM25 indexes unless told otherwise (plain text, no markers)."""


TOKEN_PATTERN = re.compile(r"(?u)\b\w\w+\b")
"""bm25s's default token pattern."""


def _stopword_set(stopwords: str | None) -> frozenset[str]:
    from bm25s.tokenization import _infer_stopwords

    return frozenset(_infer_stopwords(stopwords)) if stopwords else frozenset()


def postings_sorted(indices: np.ndarray, indptr: np.ndarray) -> bool:
    """Whether each term's slice ``indices[indptr[t]:indptr[t + 1]]`` is strictly ascending."""
    if len(indices) < 2:
        return True
    starts = np.zeros(len(indices), dtype=bool)
    starts[indptr[(indptr > 0) & (indptr < len(indices))]] = True  # a list may start below the previous one's end
    return bool(np.all((np.diff(indices) > 0) | starts[1:]))


def _stemmer(language: str):
    if language == "none":
        return None
    if language not in STEMMERS:
        raise ConfigError(f"unknown stemmer {language!r}; allowed: {', '.join(STEMMERS)}")
    import Stemmer

    return Stemmer.Stemmer(language)


class BM25Retriever:
    """Okapi BM25 (Lucene variant) over the chosen product fields.

    Args:
        products: The catalogue, in index order.
        fields: Product fields to index (plain text, no markers).
        stemmer: ``"english"`` (Snowball) or ``"none"``.
        stopwords: bm25s stopword list name (``"en"``) or ``None``.
        k1: BM25 term-frequency saturation.
        b: BM25 length normalisation.
    """

    name = "bm25"

    def __init__(
        self,
        products: Sequence[Product],
        *,
        fields: Sequence[str] = DEFAULT_FIELDS,
        stemmer: str = "english",
        stopwords: str | None = "en",
        k1: float = 1.5,
        b: float = 0.75,
    ) -> None:
        import bm25s

        self.product_ids = [p.product_id for p in products]
        self.stemmer_name = stemmer
        self.stopwords = stopwords
        self._stemmer = _stemmer(stemmer)
        config = TextConfig(fields=tuple(fields), markers=False)
        corpus = [product_text(p, config) for p in products]
        tokens = bm25s.tokenize(corpus, stopwords=stopwords, stemmer=self._stemmer, show_progress=False)
        self._bm25 = bm25s.BM25(k1=k1, b=b)
        self._bm25.index(tokens, show_progress=False)

    @cached_property
    def _stop(self) -> frozenset[str]:
        return _stopword_set(self.stopwords)

    def query_tokens(self, query: str) -> list[str]:
        """The terms of ``query`` as ``bm25s.tokenize`` makes them (lower case, its token pattern, stopwords out,
        stemmed), without its per-call progress-bar objects, which cost more than the tokenising on a short query
        (equal results, tested)."""
        tokens = [t for t in TOKEN_PATTERN.findall(query.lower()) if t not in self._stop]
        return self._stemmer.stemWords(tokens) if self._stemmer is not None and tokens else tokens

    def search(self, queries: Sequence[str], k: int = 10) -> list[list[Hit]]:
        """The top ``k`` products by BM25 score for each query; products with score 0 are left out."""
        return [hits_from_rows(self.product_ids, r, s, "bm25") for r, s in self.search_rows(queries, k)]

    def search_rows(self, queries: Sequence[str], k: int = 10) -> list[RowScores]:
        """:meth:`search` as catalogue rows and scores."""
        k = min(k, len(self.product_ids))
        results: list[RowScores] = []
        for query in queries:
            known = [t for t in self.query_tokens(query) if t in self._bm25.vocab_dict]
            if not known:
                results.append(NO_ROWS)
                continue
            scores = self._bm25.get_scores(known)
            top = top_k(scores, k)
            best = scores[top].astype(np.float64)
            keep = best > 0
            results.append((top[keep].astype(np.int64, copy=False), best[keep]))
        return results

    def score_rows(self, query: str, rows: np.ndarray) -> np.ndarray:
        """BM25 scores of the products at ``rows`` for one query (0 where no term matches).

        Reads only the candidates' entries of each query term's posting list, so a re-ranking stage pays for its
        hundred candidates rather than for the whole catalogue; equal to ``get_scores`` at those rows (tested).
        """
        rows = np.asarray(rows, dtype=np.int64)
        out = np.zeros(len(rows), dtype=np.float64)
        tokens = self.query_tokens(query)
        ids = [self._bm25.vocab_dict[t] for t in tokens if t in self._bm25.vocab_dict]
        if not ids or not len(rows):
            return out.astype(np.float32)
        data, indices, indptr = self._postings
        at_rows = rows.astype(indices.dtype, copy=False)
        for t in ids:  # a repeated query term counts again, as in bm25s
            start, end = indptr[t], indptr[t + 1]
            if end == start:
                continue
            pos, hit = find_sorted(indices[start:end], at_rows)
            out[hit] += data[start:end][pos[hit]]
        return out.astype(np.float32)

    @cached_property
    def _postings(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """bm25s's score matrix by term (``data``, ``indices``, ``indptr``), each term's documents in ascending
        order so :meth:`score_rows` can binary-search them. bm25s builds them so (scipy's canonical form); any other
        order is sorted here once."""
        matrix = self._bm25.scores
        data, indices, indptr = matrix["data"], matrix["indices"], np.asarray(matrix["indptr"])
        if not postings_sorted(indices, indptr):
            term = np.repeat(np.arange(len(indptr) - 1), np.diff(indptr))
            order = np.lexsort((indices, term))
            data, indices = data[order], indices[order]
        return data, indices, indptr

    def save(self, path: str | Path) -> None:
        """Save the index (plain numpy and JSON files, no pickle) into folder ``path``."""
        self._bm25.save(str(path), show_progress=False)

    @classmethod
    def load(
        cls, path: str | Path, product_ids: Sequence[str], *, stemmer: str, stopwords: str | None
    ) -> BM25Retriever:
        """Load an index saved by :meth:`save` for the given product order."""
        import bm25s

        try:
            bm25 = bm25s.BM25.load(str(path))
        except FileNotFoundError as exc:
            raise ArtifactError(f"BM25 index missing in {path}: {exc}") from None
        self = cls.__new__(cls)
        self.product_ids = list(product_ids)
        self.stemmer_name = stemmer
        self.stopwords = stopwords
        self._stemmer = _stemmer(stemmer)
        self._bm25 = bm25
        return self
