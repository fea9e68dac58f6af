"""Product and query text: the opt-in reviews field, attribute text without review_text, TextConfig round trips."""

from __future__ import annotations

import json

import pytest

from towersearch.data.schema import Product
from towersearch.errors import ConfigError
from towersearch.model import MODEL_META, model_text_config, text_config_dict
from towersearch.text import (
    DEFAULT_FIELDS,
    MARKERS,
    PRODUCT_FIELDS,
    REVIEW_ATTRIBUTE,
    TextConfig,
    attribute_text,
    field_value,
    parse_fields,
    product_text,
)

REVIEW = "Best mac and cheese for the kids' lunches, creamy and cheap at $1.99 | Creamy, but the box is small"
FIELDS = "name,brand,category,size,attributes,description,reviews"


def _product(**attributes: str) -> Product:
    return Product(
        product_id="p1",
        name="Shells & Cheddar",
        brand="Homestyle",
        category="pantry > pasta & sauce",
        size="6 oz",
        description="Macaroni and cheese dinner from Homestyle.",
        attributes={"dietary": "organic", "flavor": "white cheddar", **attributes},
    )


def test_reviews_is_an_opt_in_field_with_its_marker():
    assert MARKERS["reviews"] == "[PRV]" and "reviews" in PRODUCT_FIELDS and "reviews" not in DEFAULT_FIELDS
    assert parse_fields(FIELDS)[-1] == "reviews"
    product = _product(review_text=REVIEW)
    assert "[PRV]" not in product_text(product) and "lunches" not in product_text(product)
    text = product_text(product, TextConfig(fields=parse_fields(FIELDS)))
    assert text.endswith("[PRV] " + REVIEW)
    assert text.startswith("[PN] Shells & Cheddar [PBN] Homestyle [PCS] pantry > pasta & sauce [PSZ] 6 oz ")
    assert "[PAS] organic, flavor: white cheddar [PDS] Macaroni" in text
    plain = product_text(product, TextConfig(fields=("name", "reviews"), markers=False))
    assert plain == f"Shells & Cheddar {REVIEW}"


def test_reviews_field_is_clipped_and_absent_without_review_text():
    product = _product(review_text=f"  {REVIEW}  ")
    words = REVIEW.split()
    assert field_value(product, "reviews", TextConfig()) == REVIEW  # 22 words, under the default 40
    assert field_value(product, "reviews", TextConfig(max_review_words=5)) == " ".join(words[:5])
    assert field_value(product, "reviews", TextConfig(max_review_words=0)) == ""
    config = TextConfig(fields=("name", "reviews"))
    assert product_text(_product(), config) == "[PN] Shells & Cheddar"
    assert product_text(_product(review_text=""), config) == "[PN] Shells & Cheddar"
    assert product_text(product, TextConfig(fields=("name", "reviews"), max_review_words=3)) == (
        "[PN] Shells & Cheddar [PRV] Best mac and"
    )


def test_attribute_text_leaves_review_text_out():
    assert REVIEW_ATTRIBUTE == "review_text"
    attributes = {"dietary": "organic, kosher", REVIEW_ATTRIBUTE: REVIEW, "flavor": "white cheddar"}
    assert attribute_text(attributes, 6) == "organic, kosher, flavor: white cheddar"
    # The review text does not take a place among the values kept either.
    assert attribute_text({REVIEW_ATTRIBUTE: REVIEW, "flavor": "white cheddar"}, 1) == "flavor: white cheddar"
    assert "lunches" not in product_text(_product(review_text=REVIEW), TextConfig(fields=("attributes",)))


def test_negative_max_review_words_is_refused():
    with pytest.raises(ConfigError, match=r"max_review_words must be >= 0"):
        TextConfig(max_review_words=-1)


def test_text_config_round_trips_through_a_model_folder(tmp_path):
    config = TextConfig(fields=parse_fields(FIELDS), markers=True, max_review_words=12)
    stored = text_config_dict(config)
    assert stored["max_review_words"] == 12 and stored["fields"][-1] == "reviews"
    (tmp_path / MODEL_META).write_text(json.dumps({"text": stored}), encoding="utf-8")
    assert model_text_config(tmp_path) == config


def test_a_model_saved_before_the_reviews_field_still_loads(tmp_path):
    old = {"fields": list(DEFAULT_FIELDS), "markers": True, "max_description_words": 24, "max_attribute_values": 6}
    (tmp_path / MODEL_META).write_text(json.dumps({"text": old}), encoding="utf-8")
    config = model_text_config(tmp_path)
    assert config == TextConfig() and config.max_review_words == 40
