"""Autocomplete: completions from past searches, matched on any word's start, typo-tolerant, ranked by
engagement and conversion, and semantically de-duplicated.

Candidates are built at index time (:func:`build_candidates`): normalised log queries with their search count,
conversion rate (carts or purchases per search) and no-click rate, filtered for junk (too long, too rare,
blocklisted, or returning nothing), plus catalogue phrases (product types, brands, brand + type) for stores or
products with little history, ranked below real queries of equal match.

Matching uses one sorted array of keys, one key per word start of every candidate ("string cheese" gives
"string cheese" and "cheese"), searched by binary search. The best candidates of every prefix (up to
``precomputed_prefix`` characters) that matches many keys are precomputed, so the widest ranges cost one
dictionary lookup. Prefixes of
four or more characters also match at one edit (two from eight characters): one-edit neighbours (deletions,
substitutions, insertions, transpositions over the candidates' own alphabet) are looked up the same way.

Score (weights in :class:`SuggestConfig`)::

    score = match_weight[match] * (log1p(searches) + conversion_weight * conversion_rate) * source_weight[source]

with ``match`` one of ``query_start`` (the whole query starts with the prefix), ``word_start`` (a later word
does) or ``fuzzy`` (one or two edits away), and ``source`` ``log`` or ``catalog``.

De-duplication is greedy in score order: a candidate is folded into an already chosen one when their cheap
normal forms agree ("&" / "and" / "n", plural / singular, spaces: "ice cream" / "icecream"), when their query-tower
embeddings have a cosine similarity of at least ``dedup_threshold``, or when one looks like a typo of the other
(one edit apart, same first letter, at least ``typo_min_chars`` long, and a cosine of at least
``typo_similarity``: "toliet paper" folds into "toilet paper", "chops" stays apart from "chips"). The response
lists what was folded into each suggestion. ``dedup_threshold`` was tuned on the demo store's held-out sessions
(``benchmarks/bench_autocomplete.py``).
"""

from __future__ import annotations

import bisect
import json
import math
import re
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from rapidfuzz.distance import OSA

from towersearch.data.schema import LogEvent, Product, normalize_query
from towersearch.errors import ArtifactError, ConfigError

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
    fuzzy_rows: int = field(default=30, metadata={"help": "Keys taken per one-edit neighbour of a prefix."})

    def __post_init__(self) -> None:
        if not 0.0 < self.dedup_threshold <= 1.01:
            raise ConfigError(f"dedup_threshold must be in (0, 1], got {self.dedup_threshold}")
        if self.min_searches < 1 or self.max_chars < 1 or self.max_words < 1:
            raise ConfigError("min_searches, max_chars and max_words must be >= 1")


@dataclass
class Candidate:
    """A completion the store may offer."""

    text: str
    searches: float
    conversion_rate: float = 0.0
    no_click_rate: float = 0.0
    source: str = "log"


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
) -> list[Candidate]:
    """Candidates from the log (and, for cold start, the catalogue), filtered for junk."""
    config = config or SuggestConfig()
    blocklist = blocklist or set()
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
    out: dict[str, Candidate] = {}
    for query, n in searches.items():
        if n < config.min_searches or len(query) > config.max_chars or len(query.split()) > config.max_words:
            continue
        if _blocked(query, blocklist) or (returns_nothing is not None and returns_nothing(query)):
            continue
        out[query] = Candidate(
            query,
            float(n),
            conversion_rate=min(1.0, len(converted.get(query, ())) / n),
            no_click_rate=1.0 - min(1.0, len(clicked.get(query, ())) / n),
        )
    for phrase in catalog_phrases(products):
        if phrase not in out and not _blocked(phrase, blocklist) and len(phrase) <= config.max_chars:
            out[phrase] = Candidate(phrase, config.catalog_searches, source="catalog")
    return sorted(out.values(), key=lambda c: c.text)


_NOISE = re.compile(r"[^a-z0-9&' -]+")


def catalog_phrases(products: Sequence[Product]) -> list[str]:
    """Product types (the last one or two words of names), brands, and brand + type."""
    phrases: set[str] = set()
    for p in products:
        words = [w for w in _NOISE.sub(" ", normalize_query(p.name)).split() if not w.isdigit()]
        if not words:
            continue
        kind = " ".join(words[-2:])
        phrases.add(kind)
        brand = normalize_query(p.brand)
        if brand:
            phrases.add(brand)
            phrases.add(f"{brand} {kind}")
    return sorted(phrases)


# -- normal forms for cheap de-duplication ---------------------------------------------------------------------
_AND = re.compile(r"\s*(?:&|\band\b|\bn\b|\+)\s*")


def singular(word: str) -> str:
    """A rough English singular: berries → berry, boxes → box, apples → apple (short words and -ss untouched)."""
    if len(word) <= 3 or word.endswith("ss"):
        return word
    if word.endswith("ies") and len(word) > 4:
        return word[:-3] + "y"
    if word.endswith(("ches", "shes", "xes", "zes", "oes")):
        return word[:-2]
    if word.endswith("s"):
        return word[:-1]
    return word


def normal_form(text: str) -> str:
    """``mac & cheese``, ``mac n cheese`` and ``mac and cheeses`` share one normal form."""
    text = _AND.sub(" and ", normalize_query(text))
    return " ".join(singular(w) for w in text.split())


# -- matching ------------------------------------------------------------------------------------------------------
class Suggester:
    """Answers prefixes from a candidate list (see the module docstring)."""

    def __init__(
        self, candidates: Sequence[Candidate], embeddings: np.ndarray | None = None, config: SuggestConfig | None = None
    ) -> None:
        self.config = config or SuggestConfig()
        self.candidates = list(candidates)
        if embeddings is not None and len(embeddings) != len(self.candidates):
            raise ArtifactError(f"{len(embeddings)} suggestion embeddings for {len(self.candidates)} candidates")
        self.embeddings = embeddings
        c = self.config
        self.base = np.array(
            [
                (math.log1p(x.searches) + c.conversion_weight * x.conversion_rate)
                * (c.catalog_weight if x.source == "catalog" else 1.0)
                for x in self.candidates
            ],
            dtype=np.float64,
        )
        self.normal = [normal_form(x.text).replace(" ", "") for x in self.candidates]
        entries = []
        for cid, cand in enumerate(self.candidates):
            words = cand.text.split()
            for i in range(len(words)):
                entries.append((" ".join(words[i:]), cid, i == 0))
        entries.sort()
        self.keys = [e[0] for e in entries]
        self.ids = np.array([e[1] for e in entries], dtype=np.int64)
        self.starts = np.array([e[2] for e in entries], dtype=bool)
        chars = Counter(ch for cand in self.candidates for ch in cand.text)
        self.alphabet = "".join(sorted(ch for ch, _ in chars.most_common(40)))  # the common characters
        self._top: dict[str, list[tuple[float, int, str]]] = {}
        for length in range(1, c.precomputed_prefix + 1):
            start, current = 0, None
            for j, key in enumerate([*self.keys, None]):
                head = key[:length] if key is not None else None
                if head == current:
                    continue
                if current is not None and len(current) == length and j - start >= c.precompute_rows:
                    self._top[current] = self._rank_rows(np.arange(start, j), "exact")
                start, current = j, head

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
        order = np.lexsort((ids, -scores))  # candidates are sorted by text, so ids break ties in text order
        _, first = np.unique(ids[order], return_index=True)
        best = order[np.sort(first)][: c.pool]
        if kind == "fuzzy":
            return [(float(scores[i]), int(ids[i]), "fuzzy") for i in best]
        return [(float(scores[i]), int(ids[i]), "query_start" if starts[i] else "word_start") for i in best]

    def _range(self, prefix: str) -> tuple[int, int]:
        lo = bisect.bisect_left(self.keys, prefix)
        hi = bisect.bisect_left(self.keys, prefix + "\U0010ffff", lo)
        return lo, hi

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
        keys = self.keys
        rows: list[int] = []
        for variant in self._variants(stem):
            lo = bisect.bisect_left(keys, variant)
            if lo < len(keys) and keys[lo].startswith(variant):
                hi = bisect.bisect_left(keys, variant + "\U0010ffff", lo)
                rows.extend(range(lo, min(hi, lo + c.fuzzy_rows)))
        if long:
            n = len(prefix)
            rows = [r for r in rows if OSA.distance(prefix, keys[r][:n], score_cutoff=2) <= 2
                    or OSA.distance(prefix, keys[r][: n + 1], score_cutoff=2) <= 2
                    or OSA.distance(prefix, keys[r][: n - 1], score_cutoff=2) <= 2]  # fmt: skip
        if not rows:
            return []
        return self._rank_rows(np.unique(np.array(rows)), "fuzzy")

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
        ranked = self._exact(key)
        if len(ranked) < k:
            have = {cid for _, cid, _ in ranked}
            ranked = ranked + [t for t in self._fuzzy(key) if t[1] not in have]
            ranked.sort(key=lambda t: (-t[0], self.candidates[t[1]].text))
        chosen: list[tuple[Suggestion, int]] = []
        for score, cid, match in ranked:
            if dedup:
                into = self._duplicate_of(cid, [c for _, c in chosen])
                if into is not None:
                    chosen[into][0].folded.append(self.candidates[cid].text)
                    continue
            if len(chosen) < k:
                chosen.append((Suggestion(self.candidates[cid].text, score, match), cid))
            elif not dedup:
                break
        return [s for s, _ in chosen]

    def _duplicate_of(self, cid: int, chosen: list[int]) -> int | None:
        for i, other in enumerate(chosen):
            if self.normal[cid] == self.normal[other]:
                return i
        if self.embeddings is not None and chosen:
            sims = self.embeddings[chosen] @ self.embeddings[cid]
            best = int(np.argmax(sims))
            if sims[best] >= self.config.dedup_threshold:
                return best
            for i, other in enumerate(chosen):
                if sims[i] >= self.config.typo_similarity and self._spelling_variants(cid, other):
                    return i
        return None

    def _spelling_variants(self, a: int, b: int) -> bool:
        x, y = self.normal[a], self.normal[b]
        return (
            min(len(x), len(y)) >= self.config.typo_min_chars
            and x[0] == y[0]
            and OSA.distance(x, y, score_cutoff=1) <= 1
        )

    # -- persistence -----------------------------------------------------------------------------------------------
    def save(self, folder: str | Path) -> None:
        """``suggest.jsonl`` (candidates), ``suggest_embeddings.npy`` and ``suggest_config.json``."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        with (folder / "suggest.jsonl").open("w", encoding="utf-8") as fh:
            for cand in self.candidates:
                fh.write(json.dumps(asdict(cand), ensure_ascii=False) + "\n")
        if self.embeddings is not None:
            np.save(folder / "suggest_embeddings.npy", self.embeddings)
        (folder / "suggest_config.json").write_text(json.dumps(asdict(self.config), indent=2), encoding="utf-8")

    @classmethod
    def load(cls, folder: str | Path) -> Suggester:
        folder = Path(folder)
        path = folder / "suggest.jsonl"
        if not path.is_file():
            raise ArtifactError(f"{folder} has no autocomplete candidates (suggest.jsonl): rebuild the index")
        candidates = [Candidate(**json.loads(line)) for line in path.read_text(encoding="utf-8").splitlines() if line]
        emb_path = folder / "suggest_embeddings.npy"
        embeddings = np.load(emb_path, allow_pickle=False) if emb_path.is_file() else None
        config = SuggestConfig(**json.loads((folder / "suggest_config.json").read_text(encoding="utf-8")))
        return cls(candidates, embeddings, config)
