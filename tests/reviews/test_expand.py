"""Product-signal expansion with review text: which reviews, in which order, clipped, written as a catalogue."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tests.conftest import CATALOG_CSV, CLASSIFIED_CSV, CLASSIFIED_HEADER, REVIEWS_CSV
from towersearch.cli import app
from towersearch.data.catalog import load_catalog, write_catalog
from towersearch.data.schema import Product
from towersearch.errors import ConfigError, DataError
from towersearch.reviews.data import Review
from towersearch.reviews.expand import SEPARATOR, expand_catalog, review_snippet, select_reviews
from towersearch.text import TextConfig, product_text

PRODUCTS = [
    Product("p1", "Shells & Cheddar", "Homestyle", attributes={"dietary": "organic", "origin": "US"}),
    Product("p2", "Whole Milk", "Dairy Pure", attributes={"review_text": "an old review"}),
    Product("p3", "Cola", "Fizz"),
]
REVIEWS = [
    Review("a", "p1", "Creamy and cheap, the kids love it for lunch.", helpful_votes=1),
    Review("b", "p1", "Best mac and cheese for the kids' lunches; 6 oz feeds two.", helpful_votes=5),
    Review("c", "p1", "Whoever wrote the other reviews is an idiot.", helpful_votes=9),
    Review("d", "p1", "Good.", helpful_votes=None),
    Review("e", "p1", "Tastes like | the name brand but cheaper at $1.99 a box", helpful_votes=0),
    Review("f", "p2", "Fresh for a week after opening, better than the store brand.", helpful_votes=2),
    Review("g", "p9", "A product the store no longer sells.", helpful_votes=3),
    Review("h", "p3", "Not classified.", helpful_votes=3),
]
LABELS = {"highly_useful": 0, "passionate": 0, "obnoxious": 0, "balanced": 0}


def _intents(**probabilities: float) -> dict:
    """review_id → (labels, probabilities); ``c`` is labelled obnoxious."""
    out = {}
    for review_id, p in probabilities.items():
        labels = {**LABELS, "highly_useful": int(p >= 0.5), "obnoxious": int(review_id == "c")}
        out[review_id] = (labels, {"highly_useful": p, "passionate": 0.1, "obnoxious": 0.1, "balanced": 0.1})
    return out


INTENTS = _intents(a=0.8, b=0.8, c=0.99, d=0.1, e=0.7, f=0.6, g=0.9)


def test_select_reviews_orders_by_usefulness_then_votes_then_id_and_skips_obnoxious():
    chosen = select_reviews(REVIEWS, INTENTS, per_product=3)
    # c is the most likely useful but obnoxious; a and b tie on p, b has more helpful votes; h is not classified.
    assert [r.review_id for r in chosen["p1"]] == ["b", "a", "e"]
    assert [r.review_id for r in chosen["p2"]] == ["f"] and "p3" not in chosen
    assert [r.review_id for r in select_reviews(REVIEWS, INTENTS, per_product=1)["p1"]] == ["b"]
    # Same probability and votes: the smaller review_id first; no votes counts as 0.
    tied = [Review("z", "p1", "x", helpful_votes=0), Review("y", "p1", "x"), Review("x", "p1", "x", helpful_votes=1)]
    assert [r.review_id for r in select_reviews(tied, _intents(x=0.5, y=0.5, z=0.5), per_product=5)["p1"]] == [
        "x",
        "y",
        "z",
    ]
    with pytest.raises(ConfigError, match="per_product must be at least 1; got 0"):
        select_reviews(REVIEWS, INTENTS, per_product=0)


def test_expand_catalog_joins_clips_and_keeps_everything_else():
    products, summary = expand_catalog(PRODUCTS, REVIEWS, INTENTS, per_product=2, max_words=6)
    p1, p2, p3 = products
    assert p1.attributes == {
        "dietary": "organic",
        "origin": "US",
        "review_text": "Best mac and cheese for the" + SEPARATOR + "Creamy and cheap, the kids love",
    }
    assert p2.attributes == {"review_text": "Fresh for a week after opening,"}  # the old text replaced
    assert p3 == PRODUCTS[2] and (p1.name, p1.brand) == ("Shells & Cheddar", "Homestyle")
    assert PRODUCTS[0].attributes == {"dietary": "organic", "origin": "US"}  # the input is left as it was
    assert summary.as_dict() == {
        "products": 3,
        "products_expanded": 2,
        "reviews_used": 3,
        "reviews": 8,
        "unclassified": 1,
        "obnoxious": 1,
        "unknown_product": 1,
    }
    three, _ = expand_catalog(PRODUCTS, REVIEWS, INTENTS, per_product=3)
    # ";" cannot be stored in an attribute value and "|" is the separator: both are replaced.
    assert three[0].attributes["review_text"].split(SEPARATOR) == [
        "Best mac and cheese for the kids' lunches, 6 oz feeds two.",
        "Creamy and cheap, the kids love it for lunch.",
        "Tastes like / the name brand but cheaper at $1.99 a box",
    ]


def test_review_snippet():
    assert review_snippet("  one two;three |  four five ", 4) == "one two,three / four"
    assert review_snippet("short", 40) == "short"


def test_expand_refuses_bad_settings_and_unrelated_files():
    with pytest.raises(ConfigError, match="max_words must be at least 1; got 0"):
        expand_catalog(PRODUCTS, REVIEWS, INTENTS, max_words=0)
    with pytest.raises(DataError, match=r"none of the 8 reviews has a classification row \(for example 'a'\)"):
        expand_catalog(PRODUCTS, REVIEWS, _intents(q=0.5))
    bad = [Product("p1", "X", attributes={"note": "a;b"})]
    with pytest.raises(DataError, match="cannot be stored"):
        expand_catalog(bad, REVIEWS, INTENTS)


def test_expanded_catalogue_round_trips_and_feeds_the_reviews_field(tmp_path):
    products, _ = expand_catalog(PRODUCTS, REVIEWS, INTENTS)
    for suffix in ("csv", "jsonl", "parquet"):
        write_catalog(products, tmp_path / f"out.{suffix}")
        assert load_catalog(tmp_path / f"out.{suffix}").products == products, suffix
    config = TextConfig(fields=("name", "attributes", "reviews"))
    assert product_text(products[0], config) == (
        "[PN] Shells & Cheddar [PAS] organic, origin: US [PRV] Best mac and cheese for the kids' lunches, 6 oz feeds "
        "two. | Creamy and cheap, the kids love it for lunch."
    )


def _files(tmp_path: Path) -> dict[str, Path]:
    paths = {}
    for name, text in {"catalog": CATALOG_CSV, "reviews": REVIEWS_CSV, "intents": CLASSIFIED_CSV}.items():
        paths[name] = tmp_path / f"{name}.csv"
        paths[name].write_text(text, encoding="utf-8")
    return paths


def test_cli_expand(tmp_path):
    files = _files(tmp_path)
    out = tmp_path / "expanded.csv"
    args = ["reviews", "expand", str(files["catalog"]), str(files["reviews"]), "--intents", str(files["intents"])]
    result = CliRunner().invoke(app, [*args, "--out", str(out), "--per-product", "1", "--max-words", "4", "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["products_expanded"] == 2 and summary["reviews_used"] == 2 and summary["path"] == str(out)
    assert summary["obnoxious"] == 1 and summary["unknown_product"] == 1
    catalog = load_catalog(out)
    # p1: r1 and r2 tie on p_highly_useful, r2 has more helpful votes; r3 is obnoxious.
    assert catalog["p1"].attributes == {
        "dietary": "organic, kosher",
        "origin": "US",
        "review_text": "Kept fresh for seven",
    }
    assert catalog["p3"].attributes["review_text"] == "Warm them in a"
    assert "review_text" not in catalog["p2"].attributes and len(catalog) == 6
    result = CliRunner().invoke(app, [*args, "--out", str(tmp_path / "table.csv")])
    assert result.exit_code == 0, result.output
    assert "products expanded" in result.stdout and "reviews used" in result.stdout
    assert load_catalog(tmp_path / "table.csv")["p1"].attributes["review_text"] == (
        "Kept fresh for seven days after opening, which beats the store brand. | Fresh and creamy every time."
    )


def test_cli_expand_names_a_bad_classified_file(tmp_path):
    files = _files(tmp_path)
    files["intents"].write_text(f"{CLASSIFIED_HEADER}\nr1,1,0,0,0,1.5,0.1,0.1,0.1\n", encoding="utf-8")
    result = CliRunner().invoke(
        app,
        ["reviews", "expand", str(files["catalog"]), str(files["reviews"]), "--intents", str(files["intents"]),
         "--out", str(tmp_path / "x.csv")],
    )  # fmt: skip
    assert result.exit_code != 0
    assert "p_highly_useful" in str(result.exception) and not (tmp_path / "x.csv").exists()
