"""A seeded generator of a realistic grocery marketplace: catalogue, search log, graded judgements and reviews.

:func:`generate_demo_store` writes three files in the formats of :mod:`towersearch.data.schema` and a fourth in that
of :mod:`towersearch.reviews.data`:

``catalog.csv``
    Products drawn from a hand-written taxonomy of 17 departments, about 60 aisles and 300+ product types. Each
    type has a canonical name, colloquial names and abbreviations ("pop", "mac n cheese", "oj", "tp",
    "garbanzo beans", "courgette"), plausible sizes, the dietary attributes that can apply (organic, gluten free,
    vegan, kosher, ...), flavour/scent/variety words and alternative product-name heads, so that a product's name
    does not always contain its type ("Shells & Cheddar" for macaroni and cheese). Brands are invented (a few
    hundred, each tied to one to four related departments, with specialty aisles) plus four store brands that span
    many departments. Confusable types that share words but are different intents sit in different aisles:
    tortillas / tortilla chips, peanut butter / peanuts / butter, ice cream / ice cream cones / ice, coffee /
    coffee creamer, chicken breast / chicken broth / chicken nuggets, apple / apple juice / apple sauce,
    rice / rice cakes, lemon / lemonade. About ``cold_start_fraction`` of the products are new: created in the
    last days of the period, after the log ends, with no events at all; some of them come from brands that are
    entirely new.

``log.csv``
    Simulated searches. Each search picks a query intent (a product type, a generic word such as "milk" or
    "chips", a brand, brand + type, attribute + type, variant + type, or one of a few things the store does not
    sell) with Zipf popularity over intent rank, then a surface form: the canonical text most often, else a
    synonym or abbreviation, a misspelling (curated ones such as "avacado", "bananna", "brocoli", or a random
    single edit of a long word), sometimes extra words ("chips for party") or swapped word order. The simulated
    store answers with ``page_size`` products: mostly relevant ones (fewer when the query is a synonym or
    misspelled, as a lexical engine would), some of the same aisle, some lexically similar but wrong (names
    sharing a word with the query) and some random, ranked by a noisy score. The shopper views the top four
    positions and scrolls further with probability 1/2 per extra position: ``impression`` rows are written
    for the viewed positions only (4 to ``page_size``, about 5 on average). ``click`` probability is an
    examination term that decays with position (1 / position^0.7) times an attractiveness that depends on the
    true relevance grade, including rare noise clicks on irrelevant products; ``add_to_cart`` follows a click,
    mostly on truly relevant products, and ``purchase`` follows a cart at checkout at the end of the session.
    Sessions hold one to several searches with monotone ISO-8601 timestamps; a shopper whose misspelled or
    colloquial query got no click often retypes it canonically. ``count`` is always 1. A share of the intents
    (``heldout_fraction``, stratified over popularity, plus every intent that only cold-start products answer)
    is held out: none of their surface forms appears in the log.

``judgements.csv``
    Graded relevance for the held-out intents only: the canonical text and, for about a third of the intents, a
    colloquial or misspelled form as a separate query. Grades: 3 = right type and every brand / attribute /
    variant asked for; 2 = right type but a different brand, attribute or variant (a substitute); 1 = related
    (same aisle, or an explicit complement such as salsa for tortilla chips); 0 = a sample of irrelevant
    products, the confusable near-misses (tortilla chips for "tortillas") first. Every grade-3 product is judged,
    grades 2, 1 and 0 are sampled. Every judged query has at least one grade-3 product, and no judged query
    appears in the log (after :func:`~towersearch.data.schema.normalize_query`).

``reviews.csv``
    Product reviews in the format of :mod:`towersearch.reviews.data`, about ``reviews_per_product`` per product on
    average (0 writes none), skewed by popularity: a product's count is a Poisson draw around the mean times its
    popularity over the average, so many products have none or one and popular ones dozens; cold-start products,
    created in the last days, get a twentieth of the rate, so few of them have any. Each review is of one kind:
    *highly useful* (about a quarter: the product's quality and one to four concrete details of other kinds, its
    size, a price, what it is used for, who it suits, a comparison with another brand of the type, a dietary
    attribute, written with the type's canonical or colloquial names as shoppers do: "Best mac n cheese for the
    kids' lunches: good quality every single time"; often over 40 words, rated 3 to 5, most of its votes helpful),
    *passionate* (a fifth: exclamations, capitals and strong words, rated 5 or, when angry, 1 or 2), *balanced*
    (a real pro and a real con of the product joined by "but", "the only downside is", ..., rated 2 to 4),
    *short* (a generic line such as "Good." or "Fast delivery", with few votes) and a rare *obnoxious* one (3%:
    hostile to the seller or to other reviewers, nothing about the product, its votes rarely helpful). Reviews
    are dated between the product's creation and the end of the period (at most two years back) and numbered
    ``R0000001``, ... in product order, then time.

Known simplifications:
    Relevance is defined by the taxonomy (type, aisle, brand, attribute, variant), not by people; cross-aisle
    substitutes are graded 0 unless listed as complements. Shoppers have no personal preferences and sessions do
    not refine queries beyond retyping; the simulated store's ranking does not learn from the log; prices,
    stock-outs, promotions and seasonality (other than the hour of day) are not modelled; products created
    during the log period are all cold-start and the log ends before they are created; a handful of showcase
    searches ("mac and cheese", "mac n cheese", "macaroni and cheese", "macaroni & cheese", "avacado",
    "bananna", "pop", "oj", "tp", ...) are always included once so that features relying on them have
    something to find, and their intents are never held out. Reviews are filled-in templates: each is of exactly
    one kind (a real review can be useful and passionate at once), qualities and drawbacks are per department
    (or aisle), not per product, prices in reviews are invented per review (the catalogue has none), reviewers
    have no history, and neither the log nor the judgements depend on the reviews.

Where it lives:
    The taxonomy and the word lists (brand name parts, generic synonyms, misspellings, complements, ...) are package
    data files next to this one, ``taxonomy.txt`` and ``words.toml``, read by :mod:`.taxonomy` and :mod:`.vocab`;
    the review templates are ``reviews.toml``, read by :mod:`.reviews`. The stages are :mod:`.catalog` (brands and
    products), :mod:`.intents` (query intents, the held-out split and the true relevance grades), :mod:`.log` (the
    simulated searches), :mod:`.judgements` and :mod:`.reviews`; :mod:`.config` holds :class:`DemoConfig`. Each
    stage draws from its own seeded random stream, so turning reviews off (or changing their templates) leaves
    the other three files byte-identical.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from towersearch.data.catalog import write_catalog
from towersearch.data.demo.catalog import DemoCatalog
from towersearch.data.demo.config import DemoConfig, iso
from towersearch.data.demo.intents import Intents
from towersearch.data.demo.judgements import JudgedQueries, judge
from towersearch.data.demo.log import SearchLog, simulate_log
from towersearch.data.demo.reviews import KINDS, DemoReviews, make_reviews
from towersearch.data.demo.taxonomy import ProductType, product_types
from towersearch.data.judgements import write_judgements
from towersearch.data.log import write_log
from towersearch.data.schema import EVENTS, LogEvent, Product, normalize_query
from towersearch.reviews.data import Review, write_reviews

__all__ = ["DemoConfig", "DemoStore", "ProductType", "build_demo_store", "generate_demo_store", "product_types"]


@dataclass
class DemoStore:
    """A generated demo store in memory, before it is written.

    Attributes:
        products: The catalogue.
        events: The search log, in time order.
        judgements: ``(query, product_id, grade)`` rows for the held-out queries.
        event_grades: The true relevance grade (0 to 3) of each event's product for the intent behind its query;
            the simulator's ground truth, for tests and analysis.
        summary: Counts describing the store (see :func:`generate_demo_store`).
        query_intents: The intent behind each normalised query text of the log (its canonical text): several
            spellings of one intent map to the same value. Ground truth for autocomplete de-duplication.
        reviews: Product reviews, in product order then time (empty when ``reviews_per_product`` is 0).
        review_kinds: The kind each review was written as (one of ``"highly_useful"``, ``"passionate"``,
            ``"balanced"``, ``"short"``, ``"obnoxious"``); ground truth for the review intent classifier.
    """

    products: list[Product]
    events: list[LogEvent]
    judgements: list[tuple[str, str, float]]
    event_grades: list[int]
    summary: dict[str, Any]
    query_intents: dict[str, str] = field(default_factory=dict)
    reviews: list[Review] = field(default_factory=list)
    review_kinds: list[str] = field(default_factory=list)


def build_demo_store(config: DemoConfig | None = None) -> DemoStore:
    """Generate a demo store in memory (see the module docstring for what it models).

    Args:
        config: The settings; defaults to :class:`DemoConfig` ().

    Raises:
        ConfigError: a setting is out of range.
    """
    config = config or DemoConfig()
    config.validate()
    catalog = DemoCatalog(config)
    intents = Intents(config, catalog)
    log = simulate_log(config, catalog, intents)
    judged = judge(config, catalog, intents)
    reviews = make_reviews(config, catalog)
    summary = _summary(config, catalog, intents, log, judged, reviews)
    return DemoStore(
        catalog.products,
        log.events,
        judged.rows,
        log.event_grades,
        summary,
        log.query_intents,
        reviews.reviews,
        reviews.kinds,
    )


def _summary(
    config: DemoConfig,
    catalog: DemoCatalog,
    intents: Intents,
    log: SearchLog,
    judged: JudgedQueries,
    reviews: DemoReviews,
) -> dict[str, Any]:
    events = Counter(e.event for e in log.events)
    kinds = Counter(reviews.kinds)
    grades = Counter(g for _, _, g in judged.rows)
    used_types = {catalog.p_type[j] for j in range(len(catalog.products))}
    return {
        "seed": config.seed,
        "products": len(catalog.products),
        "departments": len({catalog.types[t].department for t in used_types}),
        "aisles": len({catalog.type_aisle[t] for t in used_types}),
        "product_types": len(used_types),
        "brands": len({catalog.p_brand[j] for j in range(len(catalog.products))}),
        "new_brands": sum(1 for b in catalog.brands if b.new),
        "cold_start_products": sum(catalog.p_cold),
        "events": {e: events.get(e, 0) for e in EVENTS},
        "events_total": len(log.events),
        "searches": log.searches,
        "sessions": log.sessions,
        "zero_click_searches": log.zero_click,
        "unstocked_searches": log.unstocked,
        "distinct_queries": len({normalize_query(e.query) for e in log.events}),
        "intents": len(intents.ranked),
        "heldout_intents": len(intents.heldout),
        "judged_queries": judged.queries,
        "judged_queries_with_cold_start": judged.with_cold_start,
        "judged_queries_cold_start_only": judged.cold_start_only,
        "judgements": len(judged.rows),
        "judgements_by_grade": {str(g): grades.get(float(g), 0) for g in (3, 2, 1, 0)},
        "reviews": len(reviews.reviews),
        "reviews_by_kind": {k: kinds.get(k, 0) for k in KINDS},
        "products_with_reviews": len({r.product_id for r in reviews.reviews}),
        "log_start": iso(catalog.t0),
        "log_end": iso(catalog.log_end),
    }


def generate_demo_store(out_dir: str | Path, config: DemoConfig | None = None) -> dict[str, Any]:
    """Generate a demo grocery store and write ``catalog.csv``, ``log.csv``, ``judgements.csv`` and ``reviews.csv``
    to ``out_dir`` (``reviews.csv`` only when ``reviews_per_product`` is above 0).

    Each file is written atomically. The same seed and settings give byte-identical files.

    Args:
        out_dir: The folder (created if missing).
        config: The settings; defaults to :class:`DemoConfig` ().

    Returns:
        A summary: counts of products, departments, aisles, product types, brands, cold-start products, events by
        type, searches, sessions, distinct queries, intents, held-out intents, judged queries and judgements,
        reviews (by kind, and the products that have any), and the paths of the files.

    Raises:
        ConfigError: a setting is out of range.
    """
    store = build_demo_store(config)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    files = {name: out / f"{name}.csv" for name in ("catalog", "log", "judgements")}
    write_catalog(store.products, files["catalog"])
    write_log(store.events, files["log"])
    write_judgements(store.judgements, files["judgements"])
    if store.reviews:
        files["reviews"] = out / "reviews.csv"
        write_reviews(files["reviews"], store.reviews)
    return {**store.summary, "files": {name: str(path) for name, path in files.items()}}
