"""Training pairs from a search log and a catalogue.

* **Positives**: a (query, product) pair that was clicked, added to cart or bought, with its counts.
* **High-quality positives**: pairs converted (cart or purchase) at least ``min_conversions`` times with a
  conversion rate (conversions per click) of at least ``min_conversion_rate``: ITEMS' "repeatedly converted" pairs.
* **Cold-start synthetic pairs**: products with no positive get queries built from their own fields (type, brand +
  type, attribute + type, name fragments), capped per product and marked ``synthetic``. In a grocery catalogue
  they also get the broader food terms above their type in WordNet (``food_term``: "cheddar" → "cheese", "dairy
  product"; see :func:`food_terms`). A user-supplied generator (a paraphraser, an LLM) can add more through
  :class:`QueryGenerator` (``generated``).
"""

from __future__ import annotations

import importlib
import random
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np

from towersearch.data.schema import LogEvent, Product, normalize_query, split_category
from towersearch.errors import ConfigError
from towersearch.search.phrases import singular

QueryGenerator = Callable[[Product], list[str]]
"""A hook that proposes extra synthetic queries for a product."""

FOOD_CATALOGUE_SHARE = 0.3
"""``food_terms="auto"`` adds food terms when at least this share of the catalogue's products has a type WordNet knows
as a food. Grocery catalogues measured: 0.64 (Instacart sample), 0.54 (all of Instacart, with its household and
beauty aisles), 0.76 (the demo store); other goods: 0.05 (CrowdFlower), 0.03 (Home Depot)."""
FOOD_TERMS = ("auto", "on", "off")


@dataclass(frozen=True)
class PairConfig:
    """How positives are mined from the log and how cold-start queries are made."""

    min_conversions: int = field(
        default=2, metadata={"help": "A high-quality positive was added to cart or bought at least this often."}
    )
    min_conversion_rate: float = field(
        default=0.2, metadata={"help": "…and converted on at least this share of its clicks (0-1)."}
    )
    min_clicks: int = field(default=1, metadata={"help": "A (noisy) positive needs at least this many clicks."})
    cold_start: bool = field(default=True, metadata={"help": "Add synthetic queries for products with no positive."})
    synthetic_per_product: int = field(default=4, metadata={"help": "Most synthetic queries per cold-start product."})
    synthetic_ratio: float = field(
        default=0.25,
        metadata={
            "help": "With a log, keep at most this many synthetic pairs per log positive (sampled, every cold-start "
            "product keeps one); without a log all are kept."
        },
    )
    seed: int = field(default=0, metadata={"help": "Seed for choosing among synthetic queries."})
    typo_share: float = field(
        default=0.0,
        metadata={
            "help": "Stage 1 also learns from this share of the log's positives (a seeded sample) with one keyboard "
            "slip in a query word of 4+ letters, so misspelled queries land near their products; 0 = off."
        },
    )
    neighbour_queries: bool = field(
        default=False,
        metadata={
            "help": "Add, per cold-start product, the generic type word most common among its nearest products (by "
            "the untrained model) when its own name lacks it ('soda' for a cola). Off: on the Instacart aisle task "
            "it made 845 such queries and left trained dense NDCG@10 level (0.5126 against 0.5135 without)."
        },
    )
    food_terms: str = field(
        default="auto",
        metadata={
            "help": "Add, per cold-start product, the broader food terms above its type in WordNet ('cheddar' -> "
            "'cheese', 'dairy product'): auto = when at least 30% of the catalogue's products have a food type (a "
            "grocery store), on, off."
        },
    )

    def __post_init__(self) -> None:
        if self.min_conversions < 1:
            raise ConfigError(f"min_conversions must be >= 1, got {self.min_conversions}")
        if not 0.0 <= self.min_conversion_rate <= 1.0:
            raise ConfigError(f"min_conversion_rate must be between 0 and 1, got {self.min_conversion_rate}")
        if self.min_clicks < 1:
            raise ConfigError(f"min_clicks must be >= 1, got {self.min_clicks}")
        if self.synthetic_ratio < 0:
            raise ConfigError(f"synthetic_ratio must be >= 0, got {self.synthetic_ratio}")
        if self.synthetic_per_product < 0:
            raise ConfigError(f"synthetic_per_product must be >= 0, got {self.synthetic_per_product}")
        if not 0.0 <= self.typo_share <= 1.0:
            raise ConfigError(f"typo_share must be between 0 and 1, got {self.typo_share}")
        if self.food_terms not in FOOD_TERMS:
            raise ConfigError(f"food_terms must be one of {', '.join(FOOD_TERMS)}, got {self.food_terms!r}")


@dataclass
class PairStats:
    """Event counts of one (query, product) pair."""

    query: str
    product_id: str
    impressions: int = 0
    clicks: int = 0
    add_to_carts: int = 0
    purchases: int = 0

    @property
    def conversions(self) -> int:
        """Carts or purchases, whichever the log has more of (a purchase usually follows a cart)."""
        return max(self.add_to_carts, self.purchases)

    @property
    def engagements(self) -> int:
        """Clicks, or conversions where a log records conversions without clicks."""
        return max(self.clicks, self.conversions)

    @property
    def conversion_rate(self) -> float:
        return self.conversions / self.engagements if self.engagements else 0.0


@dataclass(frozen=True)
class Pair:
    """One training pair. ``kind`` is ``positive``, ``high_quality``, ``synthetic``, ``food_term`` (a cold-start
    product's broader food term, :func:`food_terms`), ``generated`` (a cold-start query from a ``--query-generator``
    that the others did not already hold) or ``typo``."""

    query: str
    product_id: str
    kind: str
    weight: int = 1
    conversions: int = 0


def aggregate_events(events: Iterable[LogEvent]) -> dict[tuple[str, str], PairStats]:
    """Count events per (normalised query, product)."""
    stats: dict[tuple[str, str], PairStats] = {}
    attr = {"impression": "impressions", "click": "clicks", "add_to_cart": "add_to_carts", "purchase": "purchases"}
    for e in events:
        key = (normalize_query(e.query), e.product_id)
        s = stats.get(key)
        if s is None:
            s = stats[key] = PairStats(*key)
        name = attr[e.event]
        setattr(s, name, getattr(s, name) + e.count)
    return stats


def is_positive(s: PairStats, config: PairConfig) -> bool:
    return s.clicks >= config.min_clicks or s.conversions > 0


def is_high_quality(s: PairStats, config: PairConfig) -> bool:
    return s.conversions >= config.min_conversions and s.conversion_rate >= config.min_conversion_rate


def mine_pairs(events: Iterable[LogEvent], config: PairConfig | None = None) -> tuple[list[Pair], list[Pair]]:
    """All positives and, separately, the high-quality ones, sorted for determinism.

    Returns:
        ``(positives, high_quality)``; every high-quality pair is also in ``positives`` (kind ``positive``).
    """
    config = config or PairConfig()
    positives: list[Pair] = []
    high_quality: list[Pair] = []
    for key in sorted(stats := aggregate_events(events)):
        s = stats[key]
        if not is_positive(s, config):
            continue
        positives.append(Pair(s.query, s.product_id, "positive", s.engagements, s.conversions))
        if is_high_quality(s, config):
            high_quality.append(Pair(s.query, s.product_id, "high_quality", s.conversions, s.conversions))
    return positives, high_quality


def select_stage2(positives: Sequence[Pair], high_quality: list[Pair], min_pairs: int) -> tuple[str, list[Pair]]:
    """The cleanest pairs there are at least ``min_pairs`` of, for the second training stage: high-quality, else
    converted at least once, else all positives. Returns ``(which, pairs)``.

    A log whose rows each record one conversion (judgements turned into events, say) has no repeatedly converted
    pair; converted pairs are then the best stand-in for high-quality ones.
    """
    if len(high_quality) >= min_pairs:
        return "high_quality", high_quality
    converted = [Pair(p.query, p.product_id, "converted", p.weight, p.conversions) for p in positives if p.conversions]
    if len(converted) >= min_pairs:
        return "converted", converted
    return "positives", list(positives)


_SIZE = re.compile(r"\b\d+(\.\d+)?\s*(%|oz|fl oz|lb|lbs|g|kg|ml|l|ct|pk|pack|count|gal|qt|pt)?\b", re.IGNORECASE)
_PUNCT = re.compile(r"[^\w\s&'-]+")


def _clean(text: str) -> str:
    return normalize_query(_PUNCT.sub(" ", _SIZE.sub(" ", text)))


_CONNECTORS = re.compile(r"\s(?:with|in|for|featuring|made with|served with)\s", re.IGNORECASE)
_EDGE_WORDS = frozenset({"&", "and", "or", "of", "the", "a", "an", "with", "in", "for", "on", "to", "-", "'"})


def _trim(words: list[str]) -> list[str]:
    """Drop joining words ("&", "of", "with", …) from both ends of a phrase."""
    start, end = 0, len(words)
    while start < end and words[start] in _EDGE_WORDS:
        start += 1
    while end > start and words[end - 1] in _EDGE_WORDS:
        end -= 1
    return words[start:end]


def _head(name: str) -> str:
    """The name before a connector such as "with" or "in" (the whole name when that leaves nothing)."""
    head = _CONNECTORS.split(f" {name} ", maxsplit=1)[0].strip()
    return head if _clean(head) else name


def _type_phrases(name: str) -> list[str]:
    """Candidate product-type phrases: the last two, one and three words of the name's head (English noun heads).

    The head is the name before a connector such as "with" or "in": "Noodle Soup Mix With Chicken Broth" is a soup
    mix, not a broth. Joining words never start or end a phrase.
    """
    words = [w for w in _clean(_head(name)).split() if (len(w) > 1 or w.isalpha()) and w != "&"]
    phrases = [" ".join(_trim(words[-n:])) for n in (2, 1, 3) if len(words) >= n]
    return list(dict.fromkeys(p for p in phrases if p))


def synthetic_queries(product: Product, limit: int, rng: random.Random | None = None) -> list[str]:
    """Queries a shopper might type for ``product``, built from its own fields only.

    Candidates, best first: type phrase (name suffix), category leaf, brand + type, dietary attribute + type,
    brand alone, a fragment of the name's head. Duplicates and the full name are dropped; at most ``limit`` are kept.
    """
    rng = rng or random.Random(0)
    types = _type_phrases(product.name)
    main = types[0] if types else _clean(product.name)
    brand = _clean(product.brand)
    candidates: list[str] = [main]
    levels = split_category(product.category)
    if levels:
        candidates.append(normalize_query(levels[-1]))
    if brand:
        candidates.append(f"{brand} {main}")
    dietary = [d.strip() for d in product.attributes.get("dietary", "").split(",") if d.strip()]
    if dietary:
        candidates.append(f"{normalize_query(rng.choice(dietary))} {main}")
    candidates.extend(types[1:])
    if brand:
        candidates.append(brand)
    words = _clean(_head(product.name)).split()
    if len(words) > 3:
        start = rng.randrange(0, len(words) - 2)
        candidates.append(" ".join(_trim(words[start : start + 3])))
    full = _clean(product.name)
    out = [c for c in dict.fromkeys(candidates) if c and c != full]
    if not out and full:
        out = [full]
    return out[:limit]


def food_terms(product: Product) -> list[str]:
    """Broader food terms for the product's type, from WordNet (:mod:`towersearch.training.wordnet`).

    The type phrase's last two words are looked up first ("Tortilla Chips" → "tortilla chip"), then its head noun
    ("Sharp Cheddar" → "cheddar" → "cheese", "dairy product"; "European Cucumber" → "vegetable", "produce"), each
    singular and as written. Aisle names are this kind of query ("fresh vegetables", "packaged cheese"), and a
    catalogue of names alone never says them.

    A type that is a food in one of its senses gets food terms whatever the product is ("Wine Rack" → "meat", as a
    rack of lamb), which is why training adds them only to a grocery catalogue (:func:`food_share`).

    Returns:
        At most three terms; none for a type WordNet does not know as a food ("Aluminum Foil").
    """
    from towersearch.training.wordnet import load_table

    types = _type_phrases(product.name)
    if not types:
        return []
    words = types[0].split()
    keys = [singular(words[-1]), words[-1]]
    if len(words) >= 2:
        keys = [f"{singular(words[-2])} {singular(words[-1])}", f"{words[-2]} {words[-1]}", *keys]
    table = load_table()
    for key in keys:
        if key in table:
            return list(table[key][:3])
    return []


def food_share(products: Sequence[Product]) -> float:
    """The share of ``products`` whose type WordNet knows as a food (0 for no products)."""
    return sum(bool(food_terms(p)) for p in products) / len(products) if products else 0.0


def head_word(name: str) -> str:
    """The last word of a name's type phrase ("Greek Yogurt With Honey" → "yogurt"): its generic noun."""
    types = _type_phrases(name)
    return types[0].split()[-1] if types else ""


def neighbour_queries(
    products: Sequence[Product],
    embeddings: np.ndarray,
    *,
    neighbours: int = 10,
    min_count: int = 3,
    min_similarity: float = 0.5,
) -> dict[str, str]:
    """For each product, the head word most common among its ``neighbours`` nearest products, when at least
    ``min_count`` of them (each at cosine ``min_similarity`` or more) share it and the product's own name does not
    hold it.

    Aisle-like queries ("soda", "cheese", "crackers") name what a product is without its own words; products near it
    in the untrained model's space say it. ``embeddings`` are normalised vectors in the row order of ``products``.
    """
    import faiss

    heads = [head_word(p.name) for p in products]
    index = faiss.IndexFlatIP(embeddings.shape[1])
    index.add(np.ascontiguousarray(embeddings, dtype=np.float32))
    sims, rows = index.search(np.ascontiguousarray(embeddings, dtype=np.float32), min(neighbours + 1, len(products)))
    out: dict[str, str] = {}
    for i, product in enumerate(products):
        counts: dict[str, int] = {}
        for j, r in enumerate(rows[i]):
            if r < 0 or r == i or not heads[r] or sims[i][j] < min_similarity:
                continue
            counts[heads[r]] = counts.get(heads[r], 0) + 1
        if not counts:
            continue
        word, count = max(counts.items(), key=lambda item: (item[1], item[0]))
        own = set(_clean(product.name).split())
        if count >= min_count and word not in own and singular(word) not in {singular(w) for w in own}:
            out[product.product_id] = word
    return out


def cold_start_pairs(
    products: Sequence[Product],
    covered: set[str],
    config: PairConfig | None = None,
    generator: QueryGenerator | None = None,
    generic: dict[str, str] | None = None,
    food: bool = False,
) -> list[Pair]:
    """Synthetic pairs for every product not in ``covered`` (the products that have a positive).

    Each product's queries, in this order: its built-in ones (:func:`synthetic_queries`), a neighbour-derived
    generic query from ``generic`` (:func:`neighbour_queries`), with ``food`` its food terms (:func:`food_terms`,
    kind ``food_term``), then ``generator``'s (kind ``generated``); a query already held is not repeated.
    """
    config = config or PairConfig()
    rng = random.Random(config.seed)
    pairs: list[Pair] = []
    generic = generic or {}
    for product in products:
        if product.product_id in covered:
            continue
        queries = synthetic_queries(product, config.synthetic_per_product, rng)
        if product.product_id in generic:
            queries = list(dict.fromkeys([*queries, generic[product.product_id]]))
        kinds = dict.fromkeys(queries, "synthetic")
        if food:
            for q in food_terms(product):
                kinds.setdefault(normalize_query(q), "food_term")
        if generator is not None:
            for q in generator(product):
                if q and (q := normalize_query(q)):
                    kinds.setdefault(q, "generated")
        pairs.extend(Pair(q, product.product_id, kind) for q, kind in kinds.items())
    return pairs


def cap_synthetic(pairs: Sequence[Pair], limit: int, seed: int = 0) -> list[Pair]:
    """At most ``limit`` synthetic pairs: each product's first query, then a seeded sample of the rest.

    Keeps real log positives from being swamped by synthetic ones in a large catalogue with a small log, while
    every cold-start product still gets (while the limit allows) one query.
    """
    if len(pairs) <= limit:
        return list(pairs)
    first: dict[str, Pair] = {}
    rest: list[Pair] = []
    for p in pairs:
        if p.product_id in first:
            rest.append(p)
        else:
            first[p.product_id] = p
    rng = random.Random(seed)
    kept = list(first.values())
    if len(kept) >= limit:
        return sorted(rng.sample(kept, limit), key=lambda p: (p.product_id, p.query))
    kept += rng.sample(rest, limit - len(kept))
    return sorted(kept, key=lambda p: (p.product_id, p.query))


def load_hook(spec: str, kind: str = "query generator") -> Callable:
    """Import a function given as ``module:function`` (a ``--query-generator`` or another hook; ``kind`` names it in
    errors).

    Raises:
        ConfigError: the spec is malformed or does not name a callable.
    """
    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        raise ConfigError(f"{kind} must be given as module:function, got {spec!r}")
    try:
        func = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as exc:
        raise ConfigError(f"cannot load {kind} {spec!r}: {exc}") from None
    if not callable(func):
        raise ConfigError(f"{kind} {spec!r} is not callable")
    return func


def load_generator(spec: str) -> QueryGenerator:
    """Import a query generator given as ``module:function`` (see :func:`load_hook`)."""
    return load_hook(spec, "query generator")


def typo_pairs(positives: Sequence[Pair], share: float, seed: int) -> list[Pair]:
    """A seeded ``share`` of ``positives`` again, each with one keyboard slip (:func:`~towersearch.data.typos.typo`)
    in one of its query words of at least 4 letters (kind ``typo``); positives without such a word are skipped."""
    from towersearch.data.typos import typo

    rng = random.Random(seed + 104729)
    chosen = [p for p in positives if rng.random() < share]
    out = []
    for p in chosen:
        words = p.query.split()
        long_words = [i for i, w in enumerate(words) if len(w) >= 4 and w.isalpha()]
        if not long_words:
            continue
        i = rng.choice(long_words)
        slipped = typo(words[i], rng)
        if slipped == words[i]:  # swapped two equal letters
            continue
        words[i] = slipped
        out.append(Pair(" ".join(words), p.product_id, "typo", p.weight, p.conversions))
    return out
