"""The demo store's reviews.csv: format, determinism, the other files untouched, skew, kinds and their signals."""

from __future__ import annotations

import random
import re
import string
from collections import Counter
from datetime import date, timedelta
from pathlib import Path

import pytest

from towersearch.data import load_catalog
from towersearch.data.demo import DemoConfig, build_demo_store, generate_demo_store, product_types
from towersearch.data.demo.reviews import KINDS, capitalise, poisson, review_words
from towersearch.errors import ConfigError
from towersearch.reviews.data import load_reviews

SMALL = {"n_products": 600, "n_searches": 300, "seed": 4}
OTHER_FILES = ("catalog.csv", "log.csv", "judgements.csv")
PERIOD_END = (date.fromisoformat(DemoConfig.start_date) + timedelta(days=DemoConfig.days)).isoformat()
SLOTS = {
    "type", "brand", "other", "variant", "size", "diet", "price", "good", "good2", "con", "moment", "moment2",
    "audience", "use", "period", "strong", "STRONG",
}  # fmt: skip


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> dict:
    """A small store written to disk, its reviews read back, and the in-memory store with the kinds."""
    folder = tmp_path_factory.mktemp("demo-reviews")
    summary = generate_demo_store(folder, DemoConfig(**SMALL))
    reviews, report = load_reviews(folder / "reviews.csv")
    memory = build_demo_store(DemoConfig(**SMALL))
    assert [r.review_id for r in memory.reviews] == [r.review_id for r in reviews]
    return {
        "folder": folder,
        "summary": summary,
        "catalog": load_catalog(folder / "catalog.csv"),
        "reviews": reviews,
        "report": report,
        "kinds": memory.review_kinds,
    }


def test_reviews_csv_is_read_by_load_reviews_and_matches_the_catalogue(store):
    reviews, summary, catalog = store["reviews"], store["summary"], store["catalog"]
    assert store["report"].skipped == Counter() and len(reviews) == summary["reviews"]
    assert summary["files"]["reviews"] == str(store["folder"] / "reviews.csv")
    assert {r.product_id for r in reviews} <= set(catalog.ids)
    assert [r.review_id for r in reviews] == [f"R{i:07d}" for i in range(1, len(reviews) + 1)]
    assert sum(summary["reviews_by_kind"].values()) == len(reviews) and list(summary["reviews_by_kind"]) == list(KINDS)
    assert summary["products_with_reviews"] == len({r.product_id for r in reviews})
    for review in reviews:
        assert review.text and review.rating in (1.0, 2.0, 3.0, 4.0, 5.0)
        assert 0 <= review.helpful_votes <= review.total_votes
        assert catalog[review.product_id].created_at <= review.created_at < PERIOD_END
    # In product order, then time.
    keys = [(catalog.position(r.product_id), r.created_at) for r in reviews]
    assert keys == sorted(keys)


def test_counts_are_skewed_about_two_per_product_and_few_for_cold_start(store):
    catalog, reviews, summary = store["catalog"], store["reviews"], store["summary"]
    per = Counter(r.product_id for r in reviews)
    counts = [per[p.product_id] for p in catalog]
    assert 1.6 <= len(reviews) / len(catalog) <= 2.4
    assert sum(c <= 1 for c in counts) > 0.45 * len(catalog)  # many products have none or one
    assert max(counts) >= 10  # popular ones have many
    cold = [per[p.product_id] for p in catalog if p.created_at >= summary["log_end"]]
    assert len(cold) == summary["cold_start_products"] and sum(cold) <= 0.25 * len(cold)


def test_every_kind_appears_with_its_signals(store):
    reviews, kinds = store["reviews"], store["kinds"]
    by_kind = {k: [r for r, kind in zip(reviews, kinds, strict=True) if kind == k] for k in KINDS}
    assert all(by_kind[k] for k in KINDS)
    share = {k: len(v) / len(reviews) for k, v in by_kind.items()}
    assert 0.15 < share["highly_useful"] < 0.35 and 0.005 < share["obnoxious"] < 0.08
    useful, passionate, balanced = by_kind["highly_useful"], by_kind["passionate"], by_kind["balanced"]
    # Highly useful: long, several details (a number or a price among them often), rated 3 to 5, helpful votes.
    assert sum(len(r.text.split()) > 40 for r in useful) > 0.3 * len(useful)
    assert all(len(r.text.split()) >= 10 and r.rating >= 3 for r in useful)
    assert sum(bool(re.search(r"\$\d|\d+(\.\d+)? ?(oz|lb|ct|pk|fl oz|gal|qt)\b", r.text)) for r in useful) > 0.3 * len(
        useful
    )
    # Passionate: two or more exclamation marks and words in capitals, rated at the ends of the scale.
    assert all(r.text.count("!") >= 2 for r in passionate)
    assert sum(bool(re.search(r"\b[A-Z]{3,}\b", r.text)) for r in passionate) > 0.5 * len(passionate)
    assert {r.rating for r in passionate} <= {1.0, 2.0, 5.0}
    # Balanced: a pro and a con, with a middle rating.
    contrast = re.compile(r"\b(but|however|although|downside|complaint|do not like|cons)\b", re.IGNORECASE)
    assert all(contrast.search(r.text) and 2 <= r.rating <= 4 for r in balanced)
    # Short: a few generic words with hardly any votes; obnoxious: no product word, rarely helpful.
    assert all(len(r.text.split()) <= 5 for r in by_kind["short"])
    assert sum(r.total_votes for r in by_kind["short"]) < sum(r.total_votes for r in useful)
    for review in by_kind["obnoxious"]:
        assert review.helpful_votes <= 0.2 * review.total_votes + 1
    helpful = {k: sum(r.helpful_votes for r in v) / max(1, sum(r.total_votes for r in v)) for k, v in by_kind.items()}
    assert helpful["highly_useful"] > 0.75 > helpful["obnoxious"]


def test_useful_reviews_name_the_type_as_shoppers_do(store):
    """Canonical and colloquial names of the product's type, not always words of the product's name."""
    catalog, reviews, kinds = store["catalog"], store["reviews"], store["kinds"]
    names: dict[str, set[str]] = {}
    for t in product_types():
        names.setdefault(t.category, set()).update(n.lower() for n in (t.name, *t.synonyms))
    colloquial = canonical = 0
    for review, kind in zip(reviews, kinds, strict=True):
        if kind != "highly_useful":
            continue
        product, text = catalog[review.product_id], review.text.lower()
        found = [n for n in names[product.category] if re.search(rf"\b{re.escape(n)}\b", text)]
        canonical += any(n in product.name.lower() for n in found)
        colloquial += any(n not in product.name.lower() for n in found)
    assert canonical > 20 and colloquial > 20


def test_same_seed_same_reviews_other_seed_differs(tmp_path):
    config = {"n_products": 300, "n_searches": 200}
    for name, seed in (("a", 0), ("b", 0), ("c", 1)):
        generate_demo_store(tmp_path / name, DemoConfig(**config, seed=seed))
    assert (tmp_path / "a" / "reviews.csv").read_bytes() == (tmp_path / "b" / "reviews.csv").read_bytes()
    assert (tmp_path / "a" / "reviews.csv").read_bytes() != (tmp_path / "c" / "reviews.csv").read_bytes()


def test_reviews_leave_the_other_files_byte_identical_and_zero_turns_them_off(tmp_path):
    config = {"n_products": 300, "n_searches": 200, "seed": 2}
    with_reviews = generate_demo_store(tmp_path / "on", DemoConfig(**config, reviews_per_product=5.0))
    without = generate_demo_store(tmp_path / "off", DemoConfig(**config, reviews_per_product=0))
    for name in OTHER_FILES:
        assert (tmp_path / "on" / name).read_bytes() == (tmp_path / "off" / name).read_bytes(), name
    assert without["reviews"] == 0 and "reviews" not in without["files"]
    assert not (tmp_path / "off" / "reviews.csv").exists()
    assert with_reviews["reviews"] > 3.5 * 300
    assert {k: v for k, v in with_reviews.items() if not k.startswith(("reviews", "products_with", "files"))} == {
        k: v for k, v in without.items() if not k.startswith(("reviews", "products_with", "files"))
    }


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (-1.0, r"reviews_per_product must be between 0.0 and 50.0; got -1.0"),
        (51, r"reviews_per_product must be between 0.0 and 50.0; got 51"),
        ("2", r"reviews_per_product must be a number"),
    ],
)
def test_bad_reviews_per_product_raises(value, message):
    with pytest.raises(ConfigError, match=message):
        DemoConfig(reviews_per_product=value)


def test_templates_name_only_known_slots_and_cover_every_department():
    words = review_words()
    templates = [
        *words.openers,
        *words.closers,
        *(t for ts in words.details.values() for t in ts),
        *words.passionate_positive,
        *words.passionate_negative,
        *words.pros,
        *(t for ts in words.titles.values() for t in ts),
    ]
    for template in templates:
        assert {name for _, name, _, _ in string.Formatter().parse(template) if name} <= SLOTS, template
    assert all({"pro", "con"} == {n for _, n, _, _ in string.Formatter().parse(j) if n} for j in words.joins)
    assert len(templates) + len(words.joins) + len(words.short) + len(words.obnoxious) >= 60
    for t in product_types():
        lists = words.lists(t.category)
        assert len(lists["good"]) >= 2 and len(lists["moments"]) >= 2 and lists["cons"] and lists["audience"], t.name
        assert 0 < lists["price"][0] < lists["price"][1]
    assert set(words.details) == {"quality", "size", "price", "use", "audience", "comparison", "diet"}
    assert {r for _, r in words.short} <= {1, 2, 3, 4, 5}


def test_helpers():
    assert capitalise("best mac n cheese! ok. the $3.49 one? yes") == "Best mac n cheese! Ok. The $3.49 one? Yes"
    rng = random.Random(0)
    draws = [poisson(rng, 2.0) for _ in range(4000)]
    assert 1.9 < sum(draws) / len(draws) < 2.1 and min(draws) == 0
    big = [poisson(rng, 80.0) for _ in range(500)]
    assert 77 < sum(big) / len(big) < 83
    assert poisson(rng, 0.0) == 0


def test_a_low_rate_still_writes_a_readable_file(tmp_path: Path):
    summary = generate_demo_store(tmp_path, DemoConfig(n_products=100, n_searches=100, reviews_per_product=0.5))
    assert set(summary["files"]) == {"catalog", "log", "judgements", "reviews"}
    assert load_reviews(tmp_path / "reviews.csv")[0]
