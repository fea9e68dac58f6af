"""The demo reviews: a skewed number of reviews per product, of five kinds, written from the templates of
``reviews.toml``.

How many reviews a product gets follows its popularity (a Poisson draw around ``reviews_per_product`` times its
popularity over the average), so many products have none or one and a few popular ones have dozens; cold-start
products have a twentieth of the rate. Each review is of one kind, with a star rating and helpfulness votes that go
with it (:data:`KIND_SPECS`). Draws come from the "reviews" random stream only, so the other files do not change.
"""

from __future__ import annotations

import math
import random
import re
import string
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from importlib.resources import files
from typing import Any

from towersearch.data.demo.catalog import DemoCatalog
from towersearch.data.demo.config import DemoConfig, iso, stage_rng
from towersearch.reviews.data import Review

REVIEWS_FILE = "reviews.toml"

KINDS = ("highly_useful", "passionate", "balanced", "short", "obnoxious")
"""The kinds of demo review (the first three are intents of :data:`towersearch.reviews.data.INTENTS`; ``short`` is a
generic line such as "Good."; ``obnoxious`` is hostile to people, with no product content)."""

COLD_START_RATE = 0.05
"""A cold-start product's review rate, relative to a live product of the same popularity."""
MAX_RATE = 200.0
"""The highest expected review count of one product."""
HISTORY_DAYS = 730
"""Reviews are dated from the product's creation, at most this many days before the end of the period."""


@dataclass(frozen=True, slots=True)
class KindSpec:
    """How often a kind of review is written, its star ratings, and the helpfulness votes it collects."""

    share: float
    ratings: tuple[int, ...]
    rating_weights: tuple[float, ...]
    mean_votes: float
    helpful_ratio: tuple[float, float]


KIND_SPECS: Mapping[str, KindSpec] = {
    "highly_useful": KindSpec(0.24, (5, 4, 3), (0.5, 0.4, 0.1), 6.0, (0.75, 1.0)),
    "passionate": KindSpec(0.2, (5, 1, 2), (0.78, 0.17, 0.05), 3.0, (0.3, 0.8)),
    "balanced": KindSpec(0.15, (4, 3, 2), (0.45, 0.4, 0.15), 4.0, (0.6, 0.95)),
    "short": KindSpec(0.38, (), (), 0.6, (0.0, 0.6)),  # the rating comes with the text
    "obnoxious": KindSpec(0.03, (1, 2, 5), (0.6, 0.2, 0.2), 2.5, (0.0, 0.2)),
}
"""Per kind: share of reviews, ratings and their weights, mean total votes, range of helpful / total votes."""

DEPARTMENT_LISTS = ("good", "cons", "moments", "audience", "price")
_SENTENCE_START = re.compile(r"(^|[.!?]\s+)([a-z])")


@dataclass(frozen=True)
class ReviewWords:
    """The templates and word lists of ``reviews.toml`` (its header describes the slots)."""

    periods: tuple[str, ...]
    strong: tuple[str, ...]
    titles: Mapping[str, tuple[str, ...]]
    openers: tuple[str, ...]
    closers: tuple[str, ...]
    details: Mapping[str, tuple[str, ...]]
    passionate_positive: tuple[str, ...]
    passionate_negative: tuple[str, ...]
    pros: tuple[str, ...]
    joins: tuple[str, ...]
    balanced_closers: tuple[str, ...]
    short: tuple[tuple[str, int], ...]
    obnoxious: tuple[str, ...]
    departments: Mapping[str, Mapping[str, Any]]

    def lists(self, category: str) -> dict[str, Any]:
        """The department lists for a category path: the department's, each replaced by the aisle's if it has one.

        Raises:
            KeyError: the department has no lists.
        """
        department = category.split(">")[0].strip()
        return {**self.departments[department], **self.departments.get(category, {})}


def parse_review_words(text: str) -> ReviewWords:
    """Parse the TOML text of ``reviews.toml``.

    Raises:
        tomllib.TOMLDecodeError: the text is not TOML.
        KeyError: a list is missing.
        ValueError: a department lacks one of :data:`DEPARTMENT_LISTS`.
    """
    data = tomllib.loads(text)
    useful, passionate, balanced = data["useful"], data["passionate"], data["balanced"]
    departments = {name: {k: tuple(v) for k, v in table.items()} for name, table in data["departments"].items()}
    for name, table in departments.items():
        missing = [k for k in DEPARTMENT_LISTS if k not in table]
        if ">" not in name and missing:
            raise ValueError(f"department {name!r} of {REVIEWS_FILE} lacks {', '.join(missing)}")
    return ReviewWords(
        periods=tuple(data["periods"]),
        strong=tuple(data["strong"]),
        titles={k: tuple(v) for k, v in data["titles"].items()},
        openers=tuple(useful["openers"]),
        closers=tuple(useful["closers"]),
        details={k: tuple(v) for k, v in useful["details"].items()},
        passionate_positive=tuple(passionate["positive"]),
        passionate_negative=tuple(passionate["negative"]),
        pros=tuple(balanced["pros"]),
        joins=tuple(balanced["joins"]),
        balanced_closers=tuple(balanced["closers"]),
        short=tuple((str(t), int(r)) for t, r in data["short"]["texts"]),
        obnoxious=tuple(data["obnoxious"]["texts"]),
        departments=departments,
    )


@cache
def review_words() -> ReviewWords:
    """The demo store's review templates (read once, then cached)."""
    return parse_review_words(files(__package__).joinpath(REVIEWS_FILE).read_text(encoding="utf-8"))


@cache
def _slots_of(template: str) -> tuple[str, ...]:
    return tuple(name for _, name, _, _ in string.Formatter().parse(template) if name)


def _eligible(templates: Sequence[str], slots: Mapping[str, str]) -> list[str]:
    """The templates whose every slot has a value."""
    return [t for t in templates if all(slots.get(name) for name in _slots_of(t))]


def _fill(rng: random.Random, templates: Sequence[str], slots: Mapping[str, str]) -> str:
    """One of the usable templates, filled ("" when none is usable)."""
    usable = _eligible(templates, slots)
    return rng.choice(usable).format(**slots) if usable else ""


def capitalise(text: str) -> str:
    """Upper-case the first letter of every sentence: "best mac n cheese. ok" -> "Best mac n cheese. Ok"."""
    return _SENTENCE_START.sub(lambda m: m.group(1) + m.group(2).upper(), text)


def poisson(rng: random.Random, rate: float) -> int:
    """A Poisson draw (Knuth's method; a rounded normal above a rate of 30)."""
    if rate <= 0:
        return 0
    if rate > 30:
        return max(0, round(rng.gauss(rate, math.sqrt(rate))))
    limit, count, p = math.exp(-rate), 0, rng.random()
    while p > limit:
        p *= rng.random()
        count += 1
    return count


@dataclass
class DemoReviews:
    """The generated reviews, in product order then time, and the kind each was written as (ground truth)."""

    reviews: list[Review]
    kinds: list[str]


class _Writer:
    """Writes one review of one product at a time from the templates."""

    def __init__(self, catalog: DemoCatalog, words: ReviewWords) -> None:
        self.catalog, self.words = catalog, words
        self.upper = catalog.words.upper
        self.lists = {a: words.lists(a) for a in catalog.aisles}

    def _type_phrase(self, rng: random.Random, j: int) -> str:
        """The product's type as a shopper writes it: the canonical name or, half the time, a colloquial one."""
        t = self.catalog.types[self.catalog.p_type[j]]
        phrase = rng.choice(t.synonyms) if t.synonyms and rng.random() < 0.5 else t.name
        return " ".join(self.upper.get(w, w) for w in phrase.split(" "))

    def _other_brand(self, rng: random.Random, j: int) -> str:
        """Another brand that sells the product's type (an aisle neighbour when none does)."""
        catalog, brand = self.catalog, self.catalog.p_brand[j]
        pool = catalog.all_by_type[catalog.p_type[j]] or catalog.all_by_aisle[catalog.type_aisle[catalog.p_type[j]]]
        others = [catalog.p_brand[k] for k in pool[:30] if catalog.p_brand[k] != brand]
        return catalog.brands[rng.choice(others)].name if others else ""

    def slots(self, rng: random.Random, j: int) -> dict[str, str]:
        """The values of every template slot for one review of product ``j``."""
        catalog, words = self.catalog, self.words
        product = catalog.products[j]
        lists = self.lists[product.category]
        good, good2 = rng.sample(lists["good"], 2)
        moment, moment2 = rng.sample(lists["moments"], 2)
        low, high = lists["price"]
        price = f"${int(rng.uniform(low, high))}.{rng.choice(('29', '49', '79', '99'))}"
        variant = catalog.p_variant[j]
        strong = rng.choice(words.strong)
        return {
            "type": self._type_phrase(rng, j),
            "brand": product.brand,
            "other": self._other_brand(rng, j),
            "variant": " ".join(self.upper.get(w, w) for w in f"{variant} one".split(" ")) if variant else "",
            "size": product.size if product.size[:1].isdigit() else "",
            "diet": rng.choice(catalog.p_diet[j]) if catalog.p_diet[j] else "",
            "price": price,
            "good": good,
            "good2": good2,
            "con": rng.choice(lists["cons"]),
            "moment": moment,
            "moment2": moment2,
            "audience": rng.choice(lists["audience"]),
            "use": catalog.types[catalog.p_type[j]].use,
            "period": rng.choice(words.periods),
            "strong": strong,
            "STRONG": strong.upper(),
        }

    def write(self, rng: random.Random, kind: str, j: int) -> tuple[str, str, int]:
        """Text, title and star rating of one review of ``kind`` for product ``j``."""
        words, spec = self.words, KIND_SPECS[kind]
        if kind == "short":
            text, rating = rng.choice(words.short)
            return text, rng.choice(words.titles["short"]), rating
        rating = rng.choices(spec.ratings, spec.rating_weights)[0]
        if kind == "obnoxious":
            return rng.choice(words.obnoxious), rng.choice(words.titles["obnoxious"]), rating
        slots = self.slots(rng, j)
        if kind == "passionate":
            positive = rating >= 4
            text = _fill(rng, words.passionate_positive if positive else words.passionate_negative, slots)
            title_key = "passionate_positive" if positive else "passionate_negative"
        elif kind == "balanced":
            pro = _fill(rng, words.pros, slots)
            text = rng.choice(words.joins).format(pro=pro, con=slots["con"])
            text = f"{text} {rng.choice(words.balanced_closers)}".strip()
            title_key = "balanced"
        else:
            text = self._useful(rng, slots)
            title_key = "highly_useful"
        title = _fill(rng, words.titles[title_key], slots)
        return capitalise(text), capitalise(title), rating

    def _useful(self, rng: random.Random, slots: Mapping[str, str]) -> str:
        """An opener (often), the product's quality and one to four details of other kinds, a closer (often)."""
        details = self.words.details
        others = [k for k in details if k != "quality" and _eligible(details[k], slots)]
        chosen = ["quality", *rng.sample(others, min(len(others), rng.choice((1, 2, 2, 2, 3, 4))))]
        rng.shuffle(chosen)
        parts = [_fill(rng, details[k], slots) for k in chosen]
        if rng.random() < 0.6:
            parts.insert(0, _fill(rng, self.words.openers, slots))
        if rng.random() < 0.6:
            parts.append(_fill(rng, self.words.closers, slots))
        return " ".join(p for p in parts if p)


def _timestamp(text: str) -> int:
    return int(datetime.fromisoformat(text).timestamp())


def make_reviews(config: DemoConfig, catalog: DemoCatalog) -> DemoReviews:
    """The demo store's reviews (none when ``config.reviews_per_product`` is 0), from the "reviews" stream."""
    rng = stage_rng(config, "reviews")
    if config.reviews_per_product == 0:
        return DemoReviews([], [])
    writer = _Writer(catalog, review_words())
    n = len(catalog.products)
    end = catalog.t0 + config.days * 86400
    weights = [(COLD_START_RATE if catalog.p_cold[j] else 1.0) * catalog.p_pop[j] for j in range(n)]
    scale = config.reviews_per_product * n / sum(weights)
    kinds, shares = list(KIND_SPECS), [s.share for s in KIND_SPECS.values()]
    reviews: list[Review] = []
    review_kinds: list[str] = []
    for j, product in enumerate(catalog.products):
        count = poisson(rng, min(MAX_RATE, scale * weights[j]))
        start = max(_timestamp(product.created_at), end - HISTORY_DAYS * 86400)
        drafts = []
        for _ in range(count):
            kind = rng.choices(kinds, shares)[0]
            text, title, rating = writer.write(rng, kind, j)
            spec = KIND_SPECS[kind]
            total = round(rng.expovariate(1 / spec.mean_votes) * math.sqrt(min(catalog.p_pop[j], 4.0)))
            helpful = min(total, round(total * rng.uniform(*spec.helpful_ratio)))
            created = start + rng.randrange(max(1, end - start))
            drafts.append((created, kind, text, title, rating, helpful, total))
        for created, kind, text, title, rating, helpful, total in sorted(drafts, key=lambda d: d[0]):
            reviews.append(
                Review(
                    review_id=f"R{len(reviews) + 1:07d}",
                    product_id=product.product_id,
                    text=text,
                    title=title,
                    rating=float(rating),
                    helpful_votes=helpful,
                    total_votes=total,
                    created_at=iso(created),
                )
            )
            review_kinds.append(kind)
    return DemoReviews(reviews, review_kinds)
