"""Autocomplete: completions from past searches, matched on any word's start, typo-tolerant, ranked by
engagement and conversion, and semantically de-duplicated.

Candidates are built at index time (:func:`build_candidates`): normalised log queries with their search count,
conversion rate (carts or purchases per search) and no-click rate, filtered for junk (too long, too rare,
blocklisted, or returning nothing), plus catalogue phrases (product types, brands, brand + type) for stores or
products with little history, ranked below real queries of equal match.

Matching uses one sorted array of keys, one key per word start of every candidate ("string cheese" gives
"string cheese" and "cheese"), searched by binary search. The keys are stored compactly (:class:`_SortedKeys`: each
distinct key once in one UTF-8 buffer, and its first eight bytes as an integer that numpy searches): about 30 bytes
a key with its candidate, where a list of Python strings took about 80 (four and a half million keys for a million
candidates). The best candidates of every prefix (up to ``precomputed_prefix`` characters) that matches many keys
are precomputed, so the widest ranges cost one dictionary lookup. Prefixes of four or more characters also match at
one edit (two from eight characters): one-edit neighbours (deletions, substitutions, insertions, transpositions over
the candidates' own alphabet) are looked up the same way.

Score (weights in :class:`SuggestConfig`)::

    score = match_weight[match] * (log1p(searches) + conversion_weight * conversion_rate) * source_weight[source]

with ``match`` one of ``query_start`` (the whole query starts with the prefix), ``word_start`` (a later word
does) or ``fuzzy`` (one or two edits away), and ``source`` ``log`` or ``catalog``.

De-duplication is greedy in score order: a candidate is folded into an already chosen one when their cheap
normal forms agree ("&" / "and" / "n", plural / singular, spaces: "ice cream" / "icecream", known abbreviations:
"mac" / "macaroni"), or, when no modifier word of the catalogue tells them apart (see
:mod:`towersearch.search.phrases`: "vegan macaroni and cheese" is not "macaroni and cheese"), when their query-tower
embeddings have a cosine similarity of at least ``dedup_threshold``, or of at least ``typo_similarity`` when they
differ only by spelling slips or short forms ("toliet paper" folds into "toilet paper", "chops" stays apart from
"chips"). Misspelt log queries were already folded into their canonical spelling when the candidates were built,
and stay as aliases: their words still match. The response lists what was folded into each suggestion among the
candidates ranked above the last one shown; answers to repeated prefixes are cached (``cache_size``).
``dedup_threshold`` was tuned on the demo store's held-out sessions (``benchmarks/bench_autocomplete.py``).
"""

from __future__ import annotations

import bisect
import json
import math
import threading
from array import array
from collections import Counter
from collections.abc import Callable, Container, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from cachetools import LRUCache
from rapidfuzz import process
from rapidfuzz.distance import OSA

from towersearch.data.schema import LogEvent, Product, normalize_query
from towersearch.errors import ArtifactError, ConfigError
from towersearch.search.phrases import (
    Vocabulary,
    catalog_phrase_counts,
    catalog_phrases,
    content_words,
    correct,
    malformed,
    normal_form,
    normal_words,
    singular,
)

__all__ = [
    "Candidate",
    "SuggestConfig",
    "Suggester",
    "Suggestion",
    "build_candidates",
    "catalog_candidates",
    "catalog_phrases",
    "load_blocklist",
    "load_suggestions",
    "normal_form",
    "save_suggestions",
    "singular",
]

MATCHES = ("query_start", "word_start", "fuzzy")


@dataclass(frozen=True)
class SuggestConfig:
    """How candidates are built, matched, ranked and de-duplicated."""

    min_searches: int = field(default=2, metadata={"help": "Log queries searched fewer times are dropped."})
    max_chars: int = field(default=50, metadata={"help": "Longer queries are dropped."})
    max_words: int = field(default=6, metadata={"help": "Queries with more words are dropped."})
    conversion_weight: float = field(default=2.0, metadata={"help": "Weight of the conversion rate in the score."})
    query_start_weight: float = field(default=1.0, metadata={"help": "Score factor when the query starts with it."})
    word_start_weight: float = field(default=0.7, metadata={"help": "Score factor when a later word starts with it."})
    fuzzy_weight: float = field(default=0.4, metadata={"help": "Score factor of a typo-tolerant match."})
    catalog_weight: float = field(default=0.5, metadata={"help": "Score factor of catalogue (cold-start) phrases."})
    catalog_searches: float = field(default=2.0, metadata={"help": "Pseudo search count of a catalogue phrase."})
    fuzzy_min_chars: int = field(default=4, metadata={"help": "Shortest prefix matched with one edit."})
    fuzzy2_min_chars: int = field(default=8, metadata={"help": "Shortest prefix matched with two edits."})
    dedup_threshold: float = field(default=0.85, metadata={"help": "Fold candidates at least this similar (cosine)."})
    typo_similarity: float = field(
        default=0.5, metadata={"help": "Fold a one-edit spelling variant at least this similar (cosine)."}
    )
    typo_min_chars: int = field(default=5, metadata={"help": "Shortest text folded as a spelling variant."})
    max_prefix_chars: int = field(default=100, metadata={"help": "Longest prefix accepted."})
    precomputed_prefix: int = field(default=6, metadata={"help": "Precompute wide prefixes up to this length."})
    precompute_rows: int = field(default=1000, metadata={"help": "…that match at least this many keys."})
    pool: int = field(default=60, metadata={"help": "Candidates ranked per request before de-duplication."})
    fuzzy_rows: int = field(default=30, metadata={"help": "Best keys taken per one-edit neighbour of a prefix."})
    cache_size: int = field(default=10_000, metadata={"help": "Answers kept for repeated prefixes (0 = none)."})

    def __post_init__(self) -> None:
        if not 0.0 < self.dedup_threshold <= 1.01:
            raise ConfigError(f"dedup_threshold must be in (0, 1], got {self.dedup_threshold}")
        if self.min_searches < 1 or self.max_chars < 1 or self.max_words < 1:
            raise ConfigError("min_searches, max_chars and max_words must be >= 1")


@dataclass(slots=True)
class Candidate:
    """A completion the store may offer; ``aliases`` are misspellings folded into it at build time."""

    text: str
    searches: float
    conversion_rate: float = 0.0
    no_click_rate: float = 0.0
    source: str = "log"
    aliases: tuple[str, ...] = ()


@dataclass
class Suggestion:
    text: str
    score: float
    match: str
    folded: list[str] = field(default_factory=list)

    def as_dict(self) -> dict:
        return {"text": self.text, "score": round(self.score, 6), "match": self.match, "folded": self.folded}


# -- candidates ----------------------------------------------------------------------------------------------------
def load_blocklist(path: str | Path | None) -> set[str]:
    """One blocked phrase per line (normalised); ``#`` starts a comment."""
    if path is None:
        return set()
    lines = Path(path).read_text(encoding="utf-8").splitlines()
    return {normalize_query(line.split("#", 1)[0]) for line in lines if line.split("#", 1)[0].strip()}


def _blocked(text: str, blocklist: set[str]) -> bool:
    words = set(text.split())
    return text in blocklist or any(b in words for b in blocklist if " " not in b)


def build_candidates(
    events: Iterable[LogEvent],
    products: Sequence[Product] = (),
    *,
    config: SuggestConfig | None = None,
    blocklist: set[str] | None = None,
    returns_nothing: Callable[[str], bool] | None = None,
    vocabulary: Vocabulary | None = None,
) -> list[Candidate]:
    """Candidates from the log (and, for cold start, the catalogue), filtered for junk.

    With a catalogue (or a ``vocabulary``), misspelt log queries fold into their canonical spelling (see
    :mod:`towersearch.search.phrases`): "avacado" adds its searches to "avocado" and stays as an alias, so typing it
    still finds "avocado", but it is never shown itself. Queries that start or end with a connective or repeat a
    word (unless a product name does: "mahi mahi") are dropped.
    """
    config = config or SuggestConfig()
    blocklist = blocklist or set()
    if vocabulary is None:
        vocabulary = Vocabulary.from_products(products) if products else Vocabulary()
    searches: Counter[str] = Counter()
    clicked: dict[str, set[str]] = {}
    converted: dict[str, set[str]] = {}
    seen: set[tuple[str, str]] = set()
    for i, e in enumerate(events):
        query = normalize_query(e.query)
        search_id = e.session_id or f"row{i}"
        if (query, search_id) not in seen:
            seen.add((query, search_id))
            searches[query] += 1 if e.session_id else e.count
        if e.event == "click":
            clicked.setdefault(query, set()).add(search_id)
        elif e.event in ("add_to_cart", "purchase"):
            converted.setdefault(query, set()).add(search_id)
    phrases = catalog_phrase_counts(products)
    corrections = vocabulary.corrections(searches, phrases) if vocabulary else {}
    repeats = _repeats(vocabulary)
    groups: dict[str, list[str]] = {}
    for query in searches:
        groups.setdefault(correct(query, corrections), []).append(query)
    out: dict[str, Candidate] = {}
    for text, spellings in groups.items():
        n = sum(searches[q] for q in spellings)
        if n < config.min_searches or len(text) > config.max_chars or len(text.split()) > config.max_words:
            continue
        if malformed(text.split(), repeats) or _blocked(text, blocklist):
            continue
        if returns_nothing is not None and returns_nothing(text):
            continue
        n_converted = sum(len(converted.get(q, ())) for q in spellings)
        n_clicked = sum(len(clicked.get(q, ())) for q in spellings)
        out[text] = Candidate(
            text,
            float(n),
            conversion_rate=min(1.0, n_converted / n),
            no_click_rate=1.0 - min(1.0, n_clicked / n),
            aliases=tuple(sorted(q for q in spellings if q != text and searches[q] >= config.min_searches)),
        )
    from_catalog = catalog_candidates(
        products,
        out,
        config=config,
        blocklist=blocklist,
        vocabulary=vocabulary,
        phrases=phrases,
        corrections=corrections,
    )
    out.update((cand.text, cand) for cand in from_catalog)
    return sorted(out.values(), key=lambda c: c.text)


def _repeats(vocabulary: Vocabulary | None) -> str:
    """The word pairs product names double ("mahi mahi"), as :func:`~towersearch.search.phrases.malformed` takes
    them."""
    return " ".join(f"{w} {w}" for w in vocabulary.repeated) if vocabulary else ""


def catalog_candidates(
    products: Sequence[Product],
    taken: Container[str] = (),
    *,
    config: SuggestConfig | None = None,
    blocklist: set[str] | None = None,
    vocabulary: Vocabulary | None = None,
    phrases: Counter[str] | None = None,
    corrections: Mapping[str, str] | None = None,
) -> list[Candidate]:
    """The catalogue's candidates (source ``catalog``): its phrases (product types, brands, brand + type; see
    :func:`~towersearch.search.phrases.catalog_phrase_counts`) in their corrected spelling, with a pseudo search
    count that grows with the products giving each, in the order of first appearance.

    This is the catalogue half of :func:`build_candidates`, which passes the log's candidates as ``taken``; a
    catalogue update recomputes it for the new products and keeps the log's candidates as they were. A phrase's
    spelling corrections depend on the catalogue alone (its words are catalogue words), so leaving ``corrections``
    out (computed here without the log) gives what :func:`build_candidates` gives.

    Args:
        products: The catalogue.
        taken: Texts that are candidates already (from the log): their phrase is left out.
        config: Length limit and pseudo search count.
        blocklist: Phrases never to suggest (normalised), and single words no suggestion may contain.
        vocabulary: The catalogue's vocabulary (default: made from ``products``).
        phrases: :func:`~towersearch.search.phrases.catalog_phrase_counts` of ``products``, if already computed.
        corrections: Misspelt word → correction (default: :meth:`Vocabulary.corrections` of the phrases).
    """
    config = config or SuggestConfig()
    blocklist = blocklist or set()
    if vocabulary is None:
        vocabulary = Vocabulary.from_products(products) if products else Vocabulary()
    phrases = catalog_phrase_counts(products) if phrases is None else phrases
    if corrections is None:
        corrections = vocabulary.corrections({}, phrases) if vocabulary else {}
    repeats = _repeats(vocabulary)
    products_of: Counter[str] = Counter()
    for phrase, count in phrases.items():
        products_of[correct(phrase, corrections)] += count
    out: list[Candidate] = []
    for phrase, count in products_of.items():
        if phrase not in taken and not _blocked(phrase, blocklist) and len(phrase) <= config.max_chars:
            if not malformed(phrase.split(), repeats):  # a correction can make a word appear twice
                out.append(Candidate(phrase, config.catalog_searches * math.sqrt(count), source="catalog"))
    return out


# -- matching ------------------------------------------------------------------------------------------------------
_HEAD = 8
"""Bytes of a key kept as an integer (big-endian, zero-padded) for numpy's binary search."""


def _encode(text: str) -> bytes:
    """UTF-8 (lone surrogates too), whose byte order is the code point order Python sorts strings by."""
    return text.encode("utf-8", "surrogatepass")


def _short(raw: bytes) -> bool:
    """Whether the keys not below ``raw`` are exactly those whose head is not below its head: ``raw`` fits in the
    head and does not end in padding (``"ab"`` is below ``"ab\\x00"``, with the same head)."""
    return 0 < len(raw) <= _HEAD and raw[-1] != 0


class _Strings(Sequence[str]):
    """An immutable sequence of strings kept as one UTF-8 buffer and an array of offsets: 8 bytes per string beside
    its text, where a list holds a Python object of about 50 bytes more."""

    def __init__(self, texts: Iterable[str]) -> None:
        buffer, ends = bytearray(), array("q", [0])
        for text in texts:
            buffer += _encode(text)
            ends.append(len(buffer))
        self.buffer = bytes(buffer)
        self.offsets = np.array(ends, dtype=np.int64)

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def __getitem__(self, i: int | slice) -> str | list[str]:
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(len(self)))]
        if i < 0:
            i += len(self)
        if not 0 <= i < len(self):
            raise IndexError("string index out of range")
        return self.raw(i).decode("utf-8", "surrogatepass")

    def raw(self, i: int) -> bytes:
        """The UTF-8 bytes of string ``i``."""
        return self.buffer[self.offsets[i] : self.offsets[i + 1]]

    def take(self, rows: np.ndarray) -> list[str]:
        """The strings at ``rows``."""
        buffer = self.buffer
        spans = zip(self.offsets[rows].tolist(), self.offsets[rows + 1].tolist(), strict=True)
        return [buffer[a:b].decode("utf-8", "surrogatepass") for a, b in spans]


class _SortedKeys(Sequence[str]):
    """The sorted keys of a :class:`Suggester`, one per row, of which many repeat ("cheese" ends thousands of
    candidates): each distinct key once (:class:`_Strings`), the first row of each, and the first ``_HEAD`` bytes of
    each as an integer. Prefixes are found with numpy's ``searchsorted`` on those integers (exact for a prefix of up
    to ``_HEAD`` bytes), then, for a longer prefix, by a binary search over the keys that share its first bytes.

    A prefix's rows run from the first key not below it to the first key not below its successor (its last byte plus
    one), which is the range of the keys that start with it, as UTF-8 sorts like the code points."""

    def __init__(self, distinct: Sequence[str], first_row: np.ndarray) -> None:
        self.distinct = _Strings(distinct)
        self.first_row = first_row
        buffer, offsets = np.frombuffer(self.distinct.buffer, dtype=np.uint8), self.distinct.offsets
        starts, lengths = offsets[:-1], np.diff(offsets)
        self.heads = np.zeros(len(starts), dtype=np.uint64)
        for j in range(_HEAD if len(buffer) else 0):  # byte j of every key, 0 past its end
            byte = np.where(lengths > j, buffer[np.minimum(starts + j, len(buffer) - 1)], 0).astype(np.uint64)
            self.heads |= byte << np.uint64(8 * (_HEAD - 1 - j))

    def __len__(self) -> int:
        return int(self.first_row[-1])

    def __getitem__(self, row: int | slice) -> str | list[str]:
        if isinstance(row, slice):
            return [self[j] for j in range(*row.indices(len(self)))]
        if row < 0:
            row += len(self)
        if not 0 <= row < len(self):
            raise IndexError("key index out of range")
        return self.distinct[int(np.searchsorted(self.first_row, row, side="right")) - 1]

    def take(self, rows: np.ndarray) -> list[str]:
        """The keys of ``rows``."""
        return self.distinct.take(np.searchsorted(self.first_row, rows, side="right") - 1)

    def range(self, prefix: str) -> tuple[int, int]:
        """Rows ``lo:hi`` of the keys that start with ``prefix``."""
        raw = _encode(prefix)
        if not raw:
            return 0, len(self)
        lo, hi = self._first_not_below(raw), self._first_not_below(raw[:-1] + bytes([raw[-1] + 1]))
        return int(self.first_row[lo]), int(self.first_row[hi])

    def ranges(self, prefixes: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """:meth:`range` of many prefixes: row arrays ``lo`` and ``hi``, in one search for the short ones."""
        raw = [_encode(p) for p in prefixes]
        lo, hi = np.zeros(len(raw), dtype=np.int64), np.zeros(len(raw), dtype=np.int64)
        short = np.array([_short(r) for r in raw], dtype=bool)
        if short.any():
            fits = [r for r, ok in zip(raw, short.tolist(), strict=True) if ok]
            heads = np.frombuffer(b"".join(r.ljust(_HEAD, b"\0") for r in fits), dtype=">u8").astype(np.uint64)
            lengths = np.array([len(r) for r in fits], dtype=np.uint64)
            ends = heads + (np.uint64(1) << (np.uint64(8) * (np.uint64(_HEAD) - lengths)))  # the successors
            lo[short] = self.first_row[np.searchsorted(self.heads, heads)]
            hi[short] = self.first_row[np.searchsorted(self.heads, ends)]
        for i in np.flatnonzero(~short).tolist():
            lo[i], hi[i] = self.range(prefixes[i])
        return lo, hi

    def _first_not_below(self, raw: bytes) -> int:
        """The first distinct key that is not below ``raw``."""
        head = np.uint64(int.from_bytes(raw[:_HEAD].ljust(_HEAD, b"\0"), "big"))
        lo = int(np.searchsorted(self.heads, head))
        if _short(raw):  # a key with the same head starts with raw: not below it
            return lo
        hi = int(np.searchsorted(self.heads, head, side="right"))
        return bisect.bisect_left(range(len(self.distinct)), raw, lo, hi, key=self.distinct.raw)


class Suggester:
    """Answers prefixes from a candidate list (see the module docstring)."""

    def __init__(
        self,
        candidates: Sequence[Candidate],
        embeddings: np.ndarray | None = None,
        config: SuggestConfig | None = None,
        modifiers: Iterable[str] = (),
    ) -> None:
        self.config = config or SuggestConfig()
        self.candidates = list(candidates)
        if embeddings is not None and len(embeddings) != len(self.candidates):
            raise ArtifactError(f"{len(embeddings)} suggestion embeddings for {len(self.candidates)} candidates")
        # float16: half the memory (and of the saved, memory-mapped file) at cosines within about 1e-3 of float32;
        # rows are widened to float32 before any product. A memory map (float32 in indexes built before) stays one.
        if embeddings is not None and not isinstance(embeddings, np.memmap):
            embeddings = np.asarray(embeddings, dtype=np.float16)
        self.embeddings = embeddings
        self.modifiers = frozenset(modifiers)
        self._cache = LRUCache(self.config.cache_size) if self.config.cache_size > 0 else None
        self._cache_lock = threading.Lock()
        c = self.config
        self.base = np.fromiter(
            (
                (math.log1p(x.searches) + c.conversion_weight * x.conversion_rate)
                * (c.catalog_weight if x.source == "catalog" else 1.0)
                for x in self.candidates
            ),
            dtype=np.float64,
            count=len(self.candidates),
        )
        self.keys, self.ids, self.starts = self._index(self.candidates)
        # the most key rows one candidate has (a word start of its text or an alias): bounds how many rows of a
        # range can belong to the best ``pool`` candidates
        self._keys_per_candidate = int(np.bincount(self.ids).max()) if len(self.ids) else 1
        forms: dict[str, int] = {}
        self._normal_id = np.fromiter(
            (forms.setdefault(normal_form(x.text).replace(" ", ""), len(forms)) for x in self.candidates),
            dtype=np.int32,
            count=len(self.candidates),
        )  # equal normal forms, equal ids: the cheap de-duplication test
        by_id = list(forms)
        self.normal = _Strings(by_id[i] for i in self._normal_id.tolist())  # the normal form of every candidate
        del forms, by_id
        chars = Counter(ch for cand in self.candidates for ch in cand.text)
        self.alphabet = "".join(sorted(ch for ch, _ in chars.most_common(40)))  # the common characters
        self._top: dict[str, list[tuple[float, int, str]]] = {}
        level = [("", len(self.keys))]  # the wide prefixes one character shorter, with the end of their rows
        for length in range(1, c.precomputed_prefix + 1):
            wide = []
            for parent, hi in level:
                j = self._range(parent + "\x00")[0]  # past the keys equal to the parent: its children follow
                while j < hi:
                    head = self.keys[j][:length]
                    start, j = self._range(head)
                    if j - start >= c.precompute_rows:
                        self._top[head] = self._rank_rows(np.arange(start, j), "exact")
                        wide.append((head, j))
            level = wide

    @staticmethod
    def _index(candidates: Sequence[Candidate]) -> tuple[_SortedKeys, np.ndarray, np.ndarray]:
        """The sorted keys (one per word start of every text and alias), the candidate of each and whether it is the
        start of the text, sorted by key, candidate and start, without repeats.

        Each distinct key is kept once while the rows are collected (a misspelling shares most of its keys with its
        canonical form, "cheese" ends thousands of candidates), and the rows are sorted as integers."""
        number: dict[str, int] = {}
        key_of, cand_of, start_of = array("i"), array("i"), array("b")
        for cid, cand in enumerate(candidates):
            for text in (cand.text, *cand.aliases):  # a misspelling's words find its canonical form
                words = text.split()
                for i in range(len(words)):
                    key_of.append(number.setdefault(" ".join(words[i:]), len(number)))
                    cand_of.append(cid)
                    start_of.append(i == 0)
        distinct = sorted(number)
        rank = np.empty(len(distinct), dtype=np.int64)
        rank[np.fromiter(map(number.__getitem__, distinct), np.int64, len(distinct))] = np.arange(len(distinct))
        del number
        n = max(len(candidates), 1)  # a row as one integer: (key rank * n + candidate) * 2 + start
        rows = (rank[np.frombuffer(key_of, dtype=np.int32)] * n + np.frombuffer(cand_of, dtype=np.int32)) * 2
        rows = np.unique(rows + np.frombuffer(start_of, dtype=np.int8))  # sorted by (key, candidate, start), once each
        del rank, key_of, cand_of, start_of
        keys = rows // (2 * n)
        first_row = np.searchsorted(keys, np.arange(len(distinct) + 1))
        return _SortedKeys(distinct, first_row), (rows // 2 % n).astype(np.int32), (rows % 2).astype(bool)

    def _rank_rows(self, rows: np.ndarray, kind: str) -> list[tuple[float, int, str]]:
        """(score, candidate, match) of key rows, best match per candidate, best first (ties: text order)."""
        c = self.config
        ids = self.ids[rows]
        if kind == "fuzzy":
            starts = np.zeros(len(rows), dtype=bool)
            weights = np.full(len(rows), c.fuzzy_weight)
        else:
            starts = self.starts[rows]
            weights = np.where(starts, c.query_start_weight, c.word_start_weight)
        scores = self.base[ids] * weights
        enough = c.pool * self._keys_per_candidate
        if len(rows) > 2 * enough:  # a wide range: only rows scoring at least the enough-th best can make the pool
            threshold = np.partition(scores, len(scores) - enough)[len(scores) - enough]
            keep = np.flatnonzero(scores >= threshold)
            rows, ids, scores, starts = rows[keep], ids[keep], scores[keep], starts[keep]
        order = np.lexsort((ids, -scores))  # candidates are sorted by text, so ids break ties in text order
        _, first = np.unique(ids[order], return_index=True)
        best = order[np.sort(first)][: c.pool]
        if kind == "fuzzy":
            return [(float(scores[i]), int(ids[i]), "fuzzy") for i in best]
        return [(float(scores[i]), int(ids[i]), "query_start" if starts[i] else "word_start") for i in best]

    def _range(self, prefix: str) -> tuple[int, int]:
        """Rows ``lo:hi`` of the keys that start with ``prefix``."""
        return self.keys.range(prefix)

    def _exact(self, prefix: str) -> list[tuple[float, int, str]]:
        top = self._top.get(prefix)
        if top is not None:
            return top
        lo, hi = self._range(prefix)
        if lo == hi:
            return []
        return self._rank_rows(np.arange(lo, hi), "exact")

    def _variants(self, word: str) -> set[str]:
        """Every string one edit (deletion, transposition, substitution, insertion) away from ``word``."""
        alphabet = self.alphabet
        out: set[str] = set()
        for i in range(len(word) + 1):
            head, tail = word[:i], word[i:]
            if tail:
                out.add(head + tail[1:])
                if len(tail) > 1:
                    out.add(head + tail[1] + tail[0] + tail[2:])
                out.update(head + ch + tail[1:] for ch in alphabet)
            out.update(head + ch + tail for ch in alphabet)
        out.discard(word)
        return out

    def _fuzzy(self, prefix: str) -> list[tuple[float, int, str]]:
        """Keys within one edit of ``prefix`` (two from ``fuzzy2_min_chars`` characters).

        One-edit neighbours of the prefix (of its first ``fuzzy2_min_chars - 2`` characters for long prefixes)
        are looked up by binary search; for long prefixes each key found is then checked against the whole prefix
        (optimal string alignment distance of at most two, with rapidfuzz). Two typos both inside that leading
        part are not found.
        """

        c = self.config
        if len(prefix) < c.fuzzy_min_chars:
            return []
        long = len(prefix) >= c.fuzzy2_min_chars
        stem = prefix[: c.fuzzy2_min_chars - 2] if long else prefix
        rows: list[int] = []
        # a typo of the first letter is not followed (see _plausible_slip), so neither are its variants
        los, his = self.keys.ranges([v for v in self._variants(stem) if v[:1] == stem[:1]])
        for lo, hi in zip(los.tolist(), his.tolist(), strict=True):
            if lo == hi:
                continue
            if hi - lo <= c.fuzzy_rows or long:
                rows.extend(range(lo, min(hi, lo + c.fuzzy_rows)))
            else:  # the best-scored keys of a wide range ("yogurt" is the end of many candidates)
                best = np.argpartition(-self.base[self.ids[lo:hi]], c.fuzzy_rows)[: c.fuzzy_rows]
                rows.extend((lo + best).tolist())
        if not rows:
            return []
        found = np.unique(np.array(rows))
        keys = self.keys.take(found)
        if long:  # within two edits of the whole prefix, the key cut at its length or one more or less
            n = len(prefix)
            near = np.zeros(len(keys), dtype=bool)
            for cut in (n, n + 1, n - 1):
                cuts = [key[:cut] for key in keys]
                near |= process.cdist([prefix], cuts, scorer=OSA.distance, score_cutoff=2, dtype=np.int32)[0] <= 2
            near = near.tolist()
        else:
            near = [True] * len(keys)
        keep = [ok and self._plausible_slip(prefix, key) for ok, key in zip(near, keys, strict=True)]
        if not any(keep):
            return []
        return self._rank_rows(found[np.array(keep)], "fuzzy")

    @staticmethod
    def _plausible_slip(prefix: str, key: str) -> bool:
        """A key a typo of ``prefix`` could mean: at least as long (less one character), with a word for each typed
        word that starts with the same letter and is at most one edit away (two from eight characters; the last,
        partly typed word against the key word's start): "ice c" is not "ice bag", "peanut b" is not "peanuts",
        "dark choc" is not "dark coffee"."""
        typed, words = prefix.split(), key.split()
        if len(key) < len(prefix) - 1 or len(words) < len(typed):
            return False
        for i, (a, b) in enumerate(zip(typed, words, strict=False)):
            if a[0] != b[0]:
                return False
            budget = 2 if len(a) >= 8 else 1 if len(a) >= 4 else 0
            if i == len(typed) - 1 and not prefix.endswith(" "):  # partly typed: against the start of b
                ends = (b[: len(a) - 1], b[: len(a)], b[: len(a) + 1])
                if min(OSA.distance(a, e, score_cutoff=budget + 1) for e in ends) > budget:
                    return False
            elif OSA.distance(a, b, score_cutoff=budget + 1) > budget:
                return False
        return True

    def suggest(self, prefix: str, k: int = 8, *, dedup: bool = True) -> list[Suggestion]:
        """The best ``k`` completions of ``prefix``, each a different intent when ``dedup`` is on.

        Raises:
            ConfigError: an empty or over-long prefix, or ``k`` < 1.
        """
        if k < 1:
            raise ConfigError(f"k must be >= 1, got {k}")
        if len(prefix) > self.config.max_prefix_chars:
            raise ConfigError(f"prefix longer than {self.config.max_prefix_chars} characters")
        key = normalize_query(prefix)
        if not key:
            raise ConfigError("empty prefix")
        if prefix[-1].isspace():
            key += " "  # "mac " has finished the word: no "macaroni"
        if self._cache is None:
            return self._suggest(key, k, dedup)
        with self._cache_lock:
            found = self._cache.get((key, k, dedup))
        if found is None:
            found = self._suggest(key, k, dedup)
            with self._cache_lock:
                self._cache[(key, k, dedup)] = found
        return [Suggestion(s.text, s.score, s.match, list(s.folded)) for s in found]  # callers may change theirs

    def _suggest(self, key: str, k: int, dedup: bool) -> list[Suggestion]:
        ranked = self._exact(key)
        if len(ranked) < k:
            have = {cid for _, cid, _ in ranked}
            ranked = ranked + [t for t in self._fuzzy(key) if t[1] not in have]
            ranked.sort(key=lambda t: (-t[0], self.candidates[t[1]].text))
        if not dedup:
            return [Suggestion(self.candidates[cid].text, score, match) for score, cid, match in ranked[:k]]
        return self._fold(ranked, k)

    def _fold(self, ranked: list[tuple[float, int, str]], k: int) -> list[Suggestion]:
        """Greedy de-duplication of ``ranked`` into at most ``k`` suggestions (see the module docstring).

        Each candidate is compared with the suggestions chosen before it, until ``k`` are chosen: a suggestion lists
        what it folded among the candidates ranked above the last one shown.
        """
        pool = [cid for _, cid, _ in ranked]
        texts = [self.candidates[cid].text for cid in pool]
        forms = self._normal_id[pool].tolist()
        vectors = None
        if self.embeddings is not None and pool:
            vectors = self.embeddings[np.asarray(pool)].astype(np.float32)
        words = [len(content_words(t)) for t in texts]
        normals = self.normal.take(np.asarray(pool)) if vectors is not None else []
        chosen: list[int] = []  # pool positions of the suggestions
        of_form: dict[int, int] = {}  # normal form → its suggestion
        columns: list[list[float]] = []  # cosine of every pool candidate with each suggestion
        out: list[Suggestion] = []
        c = self.config
        for j, (score, _, match) in enumerate(ranked):
            into = of_form.get(forms[j])
            if into is None and columns:
                close = sorted((-col[j], i) for i, col in enumerate(columns) if col[j] >= c.typo_similarity)
                for neg, i in close:
                    o = chosen[i]
                    if -neg < c.dedup_threshold and words[j] != words[o] and abs(len(normals[j]) - len(normals[o])) > 1:
                        continue  # cannot be spelling variants: only a cosine over the threshold would fold them
                    relation = self._relation(texts[j], texts[o], normals[j], normals[o])
                    if relation != "distinct" and (-neg >= c.dedup_threshold or relation == "variant"):
                        into = i
                        break
            if into is not None:
                out[into].folded.append(texts[j])
                continue
            of_form[forms[j]] = len(out)
            chosen.append(j)
            out.append(Suggestion(texts[j], score, match))
            if len(out) == k:
                break  # what ranks below the k-th suggestion is never shown; its folds are not worth their cost
            if vectors is not None:
                columns.append((vectors @ vectors[j]).tolist())
        return out

    def _relation(self, x: str, y: str, normal_x: str, normal_y: str) -> str:
        """``distinct`` when one carries a modifier word the other lacks (a brand, "vegan", a flavour, a type) or
        the same words name another thing ("juice oranges", "orange juice");
        ``variant`` when they differ only by spelling slips or prefix abbreviations ("toliet" / "toilet", "choc" /
        "chocolate"); ``other`` otherwise. ``normal_*`` are the normal forms without spaces."""
        only_a, only_b = set(content_words(x) - content_words(y)), set(content_words(y) - content_words(x))
        modifiers = self.modifiers
        if (not only_b.difference(modifiers) and not only_a.isdisjoint(modifiers)) or (
            not only_a.difference(modifiers) and not only_b.isdisjoint(modifiers)
        ):
            return "distinct"  # a modifier word with no partner it could be a spelling of (two modifiers never pair)
        for u in sorted(only_a):
            for v in sorted(only_b):
                if self._same_word(u, v):
                    only_a.discard(u)
                    only_b.discard(v)
                    break
        if (only_a | only_b) & self.modifiers:
            return "distinct"
        if not only_a and not only_b:  # the same words: in another order, a new head noun is a new thing
            head_a, head_b = normal_words(x)[-1], normal_words(y)[-1]
            if head_a != head_b and head_a in self.modifiers and head_b in self.modifiers:
                return "distinct"  # "juice oranges" are not "orange juice"
            return "variant"
        return "variant" if self._spelling_variants(normal_x, normal_y) else "other"

    def _same_word(self, u: str, v: str) -> bool:
        """A spelling slip (one edit, same first letter, long enough) or a prefix abbreviation of a word the
        catalogue knows, where the other spelling is not a catalogue word itself ("chips" / "chops" are two)."""
        short, long = sorted((u, v), key=len)
        if short in self.modifiers and long in self.modifiers:
            return False
        if len(short) >= 3 and long.startswith(short) and long in self.modifiers and short not in self.modifiers:
            return True
        return len(short) >= self.config.typo_min_chars and u[0] == v[0] and OSA.distance(u, v, score_cutoff=1) <= 1

    def _spelling_variants(self, x: str, y: str) -> bool:
        """Normal forms (without spaces) one edit apart, with the same first letter, long enough."""
        return (
            min(len(x), len(y)) >= self.config.typo_min_chars
            and x[0] == y[0]
            and OSA.distance(x, y, score_cutoff=1) <= 1
        )

    # -- persistence -----------------------------------------------------------------------------------------------
    def save(self, folder: str | Path) -> None:
        """``suggest.jsonl`` (candidates), ``suggest_embeddings.npy``, ``suggest_config.json`` and
        ``suggest_modifiers.json`` (the catalogue's modifier words); see :func:`save_suggestions`."""
        save_suggestions(folder, self.candidates, self.embeddings, self.config, self.modifiers)

    @classmethod
    def load(cls, folder: str | Path) -> Suggester:
        """Load what :meth:`save` wrote (:func:`load_suggestions`).

        Raises:
            ArtifactError: ``folder`` has no ``suggest.jsonl``.
        """
        return cls(*load_suggestions(folder))


def save_suggestions(
    folder: str | Path,
    candidates: Sequence[Candidate],
    embeddings: np.ndarray | None,
    config: SuggestConfig,
    modifiers: Iterable[str],
) -> None:
    """Write the files of a :class:`Suggester` without building one: ``suggest.jsonl`` (candidates),
    ``suggest_embeddings.npy`` (float16, as a suggester holds them), ``suggest_config.json`` and
    ``suggest_modifiers.json``."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    with (folder / "suggest.jsonl").open("w", encoding="utf-8") as fh:
        for cand in candidates:
            row = asdict(cand)
            if not row["aliases"]:
                del row["aliases"]
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")
    if embeddings is not None:
        if not isinstance(embeddings, np.memmap):
            embeddings = np.asarray(embeddings, dtype=np.float16)
        np.save(folder / "suggest_embeddings.npy", embeddings)
    (folder / "suggest_config.json").write_text(json.dumps(asdict(config), indent=2), encoding="utf-8")
    (folder / "suggest_modifiers.json").write_text(json.dumps(sorted(modifiers)), encoding="utf-8")


def load_suggestions(
    folder: str | Path,
) -> tuple[list[Candidate], np.ndarray | None, SuggestConfig, list[str]]:
    """The candidates, embeddings (memory-mapped), configuration and modifier words :func:`save_suggestions` wrote.

    Raises:
        ArtifactError: ``folder`` has no ``suggest.jsonl``.
    """
    folder = Path(folder)
    path = folder / "suggest.jsonl"
    if not path.is_file():
        raise ArtifactError(f"{folder} has no autocomplete candidates (suggest.jsonl): rebuild the index")
    candidates = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if line:
            row = json.loads(line)
            row["aliases"] = tuple(row.get("aliases", ()))
            candidates.append(Candidate(**row))
    emb_path = folder / "suggest_embeddings.npy"
    # memory-mapped: a request reads the rows of a few dozen candidates, so most of the file never loads
    embeddings = np.load(emb_path, mmap_mode="r", allow_pickle=False) if emb_path.is_file() else None
    config = SuggestConfig(**json.loads((folder / "suggest_config.json").read_text(encoding="utf-8")))
    modifiers_path = folder / "suggest_modifiers.json"  # absent in indexes built before it: no modifier guard
    modifiers = json.loads(modifiers_path.read_text(encoding="utf-8")) if modifiers_path.is_file() else []
    return candidates, embeddings, config, modifiers
