"""BM25 over product text, with bm25s, and query spelling against the index's own terms.

A query word the index does not know (five letters or more, no digits, not a stopword) is read as the index term
it most likely misspells (:meth:`BM25Retriever.spell`): the most frequent term one edit away (an insertion,
deletion, substitution or swap of neighbours) with the same first letter; else two words the index knows run
together ("ledbulb" → "led bulb"); else, from eight letters, a term two edits away. Terms are compared as the index
stores them (stemmed), so the work is a lookup in the index's vocabulary, about 10 µs a word, and needs nothing
beyond the saved BM25 index. A word the index does not know scores nothing in BM25, so spelling can only add
matches, never take one away.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Sequence
from functools import cache, cached_property
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

SPELL_MIN_CHARS = 5
"""Shortest query word that :meth:`BM25Retriever.spell` corrects."""
SPELL_TWO_EDITS_CHARS = 8
"""Shortest stem corrected two edits away."""
SPLIT_MIN_CHARS = 3
"""Shortest part of a word split in two."""
SURFACE_FILE = "surface.json"
"""The catalogue's word for each stemmed term, saved beside the BM25 index."""


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


def surface_forms(corpus: Sequence[str], stemmer) -> dict[str, str]:
    """Each stemmed term of ``corpus`` → the word that most often gives it there ("toilet" for ``toilet``,
    "accessories" for ``accessori``), alphabetic terms only; without a stemmer, terms are words already."""
    if stemmer is None:
        return {}
    counts: Counter[str] = Counter()
    for text in corpus:
        counts.update(w for w in TOKEN_PATTERN.findall(text.lower()) if w.isalpha())
    words = sorted(counts, key=lambda w: (-counts[w], w))
    out: dict[str, str] = {}
    for word, term in zip(words, stemmer.stemWords(words), strict=True):
        out.setdefault(term, word)
    return {term: word for term, word in out.items() if term != word}  # a term that is its own word needs no entry


@cache
def english_words() -> tuple[str, ...]:
    """The whole alphabetic words of at least three letters in the base model's WordPiece vocabulary (about 20,000
    common English words and names), which query spelling leaves alone."""
    from towersearch.model import base_model_path

    path = base_model_path() / "vocab.txt"
    try:
        lines = path.read_text(encoding="utf-8").split("\n")
    except OSError as exc:
        raise ArtifactError(f"cannot read the base model's vocabulary {path}: {exc}") from None
    return tuple(w for w in lines if len(w) >= 3 and w.isascii() and w.isalpha() and w.islower())


@cache
def english_stems(stemmer: str) -> frozenset[str]:
    """:func:`english_words` as ``stemmer`` stems them (computed once per stemmer)."""
    stem = _stemmer(stemmer)
    words = english_words()
    return frozenset(stem.stemWords(list(words)) if stem is not None else words)


def indexed_texts(products: Sequence[Product], fields: Sequence[str] = DEFAULT_FIELDS) -> list[str]:
    """The text BM25 indexes for each product: its ``fields`` as plain text, leaving out a brand whose every word
    the name already holds ("Gentle Growers Orange" by Gentle Growers). Indexed twice, each brand word would count
    about 1.4 times as much as the name's other words (tf 2 against 1 under ``k1`` = 1.5), so a query of brand and
    type would lean to the brand's other products over the type's other brands."""
    config = TextConfig(fields=tuple(fields), markers=False)
    if "brand" not in config.fields:
        return [product_text(p, config) for p in products]
    without = TextConfig(fields=tuple(f for f in config.fields if f != "brand"), markers=False)

    def in_name(p: Product) -> bool:
        brand = TOKEN_PATTERN.findall(p.brand.casefold())
        return bool(brand) and set(brand) <= set(TOKEN_PATTERN.findall(p.name.casefold()))

    return [product_text(p, without if in_name(p) else config) for p in products]


class BM25Retriever:
    """Okapi BM25 (Lucene variant) over the chosen product fields.

    Args:
        products: The catalogue, in index order.
        fields: Product fields to index (plain text, no markers).
        stemmer: ``"english"`` (Snowball) or ``"none"``.
        stopwords: bm25s stopword list name (``"en"``) or ``None``.
        k1: BM25 term-frequency saturation.
        b: BM25 length normalisation.
        spelling: Read a query word the index does not know as the index term it most likely misspells (see the
            module docstring); off, such a word matches nothing.
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
        spelling: bool = True,
    ) -> None:
        import bm25s

        self.product_ids = [p.product_id for p in products]
        self.spelling = spelling
        self.stemmer_name = stemmer
        self.stopwords = stopwords
        self._stemmer = _stemmer(stemmer)
        corpus = indexed_texts(products, fields)
        tokens = bm25s.tokenize(corpus, stopwords=stopwords, stemmer=self._stemmer, show_progress=False)
        self._bm25 = bm25s.BM25(k1=k1, b=b)
        self._bm25.index(tokens, show_progress=False)
        self.surface = surface_forms(corpus, self._stemmer) if spelling else {}

    @cached_property
    def _stop(self) -> frozenset[str]:
        return _stopword_set(self.stopwords)

    def query_tokens(self, query: str) -> list[str]:
        """The terms of ``query`` as ``bm25s.tokenize`` makes them (lower case, its token pattern, stopwords out,
        stemmed), without its per-call progress-bar objects, which cost more than the tokenising on a short query
        (equal results, tested); with :attr:`spelling`, a word the index does not know as :meth:`spell` reads it."""
        words = [t for t in TOKEN_PATTERN.findall(query.lower()) if t not in self._stop]
        tokens = self._stemmer.stemWords(words) if self._stemmer is not None and words else words
        if not self.spelling:
            return tokens
        return [term for _, _, read in self._readings(words, tokens) for term in read]

    def _readings(self, words: list[str], tokens: list[str]):
        """``(word, its term, the terms it is read as)`` for each query word: its own term when the index knows it,
        else what :meth:`spell` reads."""
        vocab = self._bm25.vocab_dict
        for word, token in zip(words, tokens, strict=True):
            yield word, token, (token,) if token in vocab else self.spell(word)

    def prepare(self) -> None:
        """Build the spelling tables now (about 50 ms at 50,000 products), not on the first misspelt query."""
        if self.spelling:
            self._terms, self._english  # noqa: B018  (the properties build them)
            import rapidfuzz.process  # noqa: F401

    def spell(self, word: str) -> tuple[str, ...]:
        """The index terms an unknown query ``word`` most likely stands for (``(stem of word,)`` when none).

        In order: the most frequent term (by document frequency) one edit from the word's stem with its first letter;
        the word split in two known parts of at least three letters (the split whose rarer part is most frequent);
        from eight letters, the most frequent term two edits away. Words under five letters, with a digit, or that
        the index knows stay as they are.
        """
        key = word.lower()
        cache = self._spelled
        if key in cache:
            return cache[key]
        stem = self._stem(key)
        out: tuple[str, ...] = (stem,)
        if (
            len(key) >= SPELL_MIN_CHARS
            and key.isalpha()
            and stem not in self._bm25.vocab_dict
            and stem not in self._english
        ):
            out = (
                self._near(stem, 1)
                or self._split(key)
                or (self._near(stem, 2) if len(stem) >= SPELL_TWO_EDITS_CHARS else None)
                or out
            )
        if len(cache) < 100_000:
            cache[key] = out
        return out

    def _stem(self, word: str) -> str:
        return self._stemmer.stemWord(word) if self._stemmer is not None else word

    def _near(self, stem: str, edits: int) -> tuple[str] | None:
        from rapidfuzz import process
        from rapidfuzz.distance import OSA

        df, by_letter = self._terms
        found = process.extract(stem, by_letter.get(stem[0], ()), scorer=OSA.distance, score_cutoff=edits, limit=None)
        if not found:
            return None
        return (min(found, key=lambda t: (t[1], -df[t[0]], t[0]))[0],)

    def _split(self, word: str) -> tuple[str, str] | None:
        df, _ = self._terms
        best: tuple[int, str, str] | None = None
        for i in range(SPLIT_MIN_CHARS, len(word) - SPLIT_MIN_CHARS + 1):
            head, tail = word[:i], word[i:]
            if head in self._stop or tail in self._stop:
                continue
            a, b = self._stem(head), self._stem(tail)
            if a in df and b in df and (best is None or min(df[a], df[b]) > best[0]):
                best = (min(df[a], df[b]), a, b)
        return None if best is None else (best[1], best[2])

    @property
    def _english(self) -> frozenset[str]:
        """Stems of the English words the base model's tokenizer holds whole: a query word among them is spelt
        right, only not sold here ("produce", "specialty"), and is not read as a catalogue term."""
        return english_stems(self.stemmer_name)

    @cached_property
    def _spelled(self) -> dict[str, tuple[str, ...]]:
        return {}

    @cached_property
    def _terms(self) -> tuple[dict[str, int], dict[str, list[str]]]:
        """Document frequency of each index term, and the alphabetic terms of at least three letters by first
        letter (the candidates of :meth:`spell`)."""
        counts = np.diff(np.asarray(self._bm25.scores["indptr"]))
        df = {t: int(counts[i]) for t, i in self._bm25.vocab_dict.items() if t and i < len(counts)}
        by_letter: dict[str, list[str]] = {}
        for term in sorted(df):
            if len(term) >= SPLIT_MIN_CHARS and term.isalpha():
                by_letter.setdefault(term[0], []).append(term)
        return df, by_letter

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

    def corrections(self, query: str) -> dict[str, str]:
        """Each word of ``query`` that :meth:`spell` reads as something else, and what it reads it as, in the
        catalogue's words ("toliet" → "toilet", "ledbulb" → "led bulb"): what a search page shows as "showing
        results for". Empty without :attr:`spelling`."""
        if not self.spelling:
            return {}
        words = [t for t in TOKEN_PATTERN.findall(query.lower()) if t not in self._stop]
        tokens = [self._stem(w) for w in words]
        return {
            word: " ".join(self.surface.get(t, t) for t in read)
            for word, token, read in self._readings(words, tokens)
            if read != (token,)
        }

    def save(self, path: str | Path) -> None:
        """Save the index (plain numpy and JSON files, no pickle) into folder ``path``, with the catalogue's word
        for each term (``surface.json``, for :meth:`corrections`)."""
        self._bm25.save(str(path), show_progress=False)
        if self.surface:
            (Path(path) / SURFACE_FILE).write_text(json.dumps(self.surface, ensure_ascii=False), encoding="utf-8")

    @classmethod
    def load(
        cls,
        path: str | Path,
        product_ids: Sequence[str],
        *,
        stemmer: str,
        stopwords: str | None,
        spelling: bool = True,
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
        self.spelling = spelling
        self._stemmer = _stemmer(stemmer)
        self._bm25 = bm25
        surface = Path(path) / SURFACE_FILE
        try:  # an index saved before surface forms existed shows corrections as index terms
            self.surface = json.loads(surface.read_text(encoding="utf-8")) if spelling and surface.is_file() else {}
        except (OSError, json.JSONDecodeError) as exc:
            raise ArtifactError(f"{surface} is not readable JSON: {exc}") from None
        return self
