import random

import pytest

from towersearch.data import LogEvent, Product
from towersearch.errors import ConfigError, DataError
from towersearch.training.negatives import skipped_products
from towersearch.training.pairs import (
    PairConfig,
    aggregate_events,
    cold_start_pairs,
    load_generator,
    mine_pairs,
    select_stage2,
    synthetic_queries,
)


def ev(query, pid, event, count=1):
    return LogEvent(query=query, product_id=pid, event=event, count=count)


LOG = [
    ev("Milk", "p1", "impression", 10),
    ev("milk ", "p1", "click", 5),
    ev("MILK", "p1", "add_to_cart", 3),
    ev("milk", "p1", "purchase", 2),
    ev("milk", "p2", "click", 10),  # clicked a lot, converted once: a noisy positive
    ev("milk", "p2", "add_to_cart", 1),
    ev("milk", "p3", "impression", 4),  # only seen: no positive
    ev("oat  milk", "p4", "add_to_cart", 2),  # converted without a logged click
    ev("bread", "p5", "click", 1),
]


def test_aggregate_normalises_queries_and_counts():
    stats = aggregate_events(LOG)
    milk = stats[("milk", "p1")]
    assert (milk.impressions, milk.clicks, milk.add_to_carts, milk.purchases) == (10, 5, 3, 2)
    assert milk.conversions == 3 and milk.conversion_rate == pytest.approx(0.6)
    assert ("oat milk", "p4") in stats


def test_skipped_products_were_shown_and_never_engaged_with():
    log = [*LOG, ev("Bread", "p6", "impression", 2), ev("bread", "p7", "impression"), ev("bread", "p7", "purchase")]
    assert skipped_products(log) == {"bread": ["p6"], "milk": ["p3"]}


def test_positives_and_high_quality_filter():
    positives, hq = mine_pairs(LOG)
    assert [(p.query, p.product_id) for p in positives] == [
        ("bread", "p5"),
        ("milk", "p1"),
        ("milk", "p2"),
        ("oat milk", "p4"),
    ]
    # p2 converted once in 10 clicks; p4 converted twice with no click (rate 1.0)
    assert [(p.query, p.product_id) for p in hq] == [("milk", "p1"), ("oat milk", "p4")]
    assert {p.kind for p in hq} == {"high_quality"}
    strict = PairConfig(min_conversions=3, min_conversion_rate=0.7)
    assert mine_pairs(LOG, strict)[1] == []


def test_select_stage2_takes_the_cleanest_pairs_there_are_enough_of():
    positives, hq = mine_pairs(LOG)  # 4 positives, 3 of them converted, 2 high-quality
    assert select_stage2(positives, hq, 2) == ("high_quality", hq)
    which, converted = select_stage2(positives, hq, 3)
    assert which == "converted" and [p.product_id for p in converted] == ["p1", "p2", "p4"]
    assert {p.kind for p in converted} == {"converted"}
    assert select_stage2(positives, hq, 4) == ("positives", positives)
    loose = PairConfig(min_conversions=1, min_conversion_rate=0.05)
    assert len(mine_pairs(LOG, loose)[1]) == 3


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"min_conversions": 0}, "min_conversions must be >= 1"),
        ({"min_conversion_rate": 1.5}, "min_conversion_rate must be between 0 and 1"),
        ({"synthetic_per_product": -1}, "synthetic_per_product must be >= 0"),
    ],
)
def test_bad_pair_config(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        PairConfig(**kwargs)


def test_synthetic_queries_come_from_the_product_fields():
    p = Product(
        "p9",
        "Crunchy Valley Sea Salt Tortilla Chips 12 oz",
        brand="Crunchy Valley",
        category="snacks > chips",
        attributes={"dietary": "gluten free"},
    )
    queries = synthetic_queries(p, limit=10, rng=random.Random(0))
    assert queries[0] == "tortilla chips"
    assert "chips" in queries and "crunchy valley tortilla chips" in queries
    assert "gluten free tortilla chips" in queries
    assert all("12" not in q and "oz" not in q.split() for q in queries)
    assert len(synthetic_queries(p, limit=2)) == 2


def test_type_phrases_come_from_the_head_of_the_name():
    soup = synthetic_queries(Product("p1", "Noodle Soup Mix With Chicken Broth"), limit=10, rng=random.Random(0))
    assert soup[0] == "soup mix" and not any("broth" in q for q in soup)
    sausage = synthetic_queries(Product("p2", "Smoked Sausage with Chile Peppers"), limit=10, rng=random.Random(0))
    assert "sausage" in sausage and not any("pepper" in q for q in sausage)
    bar = synthetic_queries(Product("p3", "Salted Caramel Lean Protein & Fiber Bar"), limit=10, rng=random.Random(3))
    assert all(q.split()[0] not in ("&", "and") and q.split()[-1] not in ("&", "and") for q in bar)


def test_cold_start_only_for_products_without_positives():
    products = [Product("p1", "Organic Whole Milk"), Product("p2", "Flour Tortillas", brand="La Banderita")]
    pairs = cold_start_pairs(products, covered={"p1"}, config=PairConfig(synthetic_per_product=3))
    assert {p.product_id for p in pairs} == {"p2"} and {p.kind for p in pairs} == {"synthetic"}
    assert 1 <= len(pairs) <= 3
    extra = cold_start_pairs(products, covered={"p1"}, generator=lambda p: ["Wraps  for Tacos"])
    assert "wraps for tacos" in [p.query for p in extra]


def test_load_generator():
    assert load_generator("random:random") is random.random
    with pytest.raises(ConfigError, match="module:function"):
        load_generator("random")
    with pytest.raises(ConfigError, match="cannot load query generator 'random:nope'"):
        load_generator("random:nope")


def test_cap_synthetic_keeps_one_query_per_product_first():
    from towersearch.training.pairs import Pair, cap_synthetic

    pairs = [Pair(f"q{i}", f"p{i % 3}", "synthetic") for i in range(9)]
    assert cap_synthetic(pairs, 20) == pairs
    capped = cap_synthetic(pairs, 4, seed=1)
    assert len(capped) == 4 and {p.product_id for p in capped} == {"p0", "p1", "p2"}
    assert len(cap_synthetic(pairs, 2)) == 2
    assert cap_synthetic(pairs, 4, seed=1) == capped  # seeded


def test_neighbour_queries_name_what_the_neighbours_are():
    import numpy as np

    from towersearch.data.schema import Product
    from towersearch.training.pairs import cold_start_pairs, head_word, neighbour_queries

    names = ["Coca-Cola Classic", "Diet Soda", "Orange Soda", "Lemon Lime Soda", "Cream Soda", "Sharp Cheddar",
             "Swiss Cheese", "Mozzarella Cheese", "Colby Jack Cheese", "Greek Yogurt With Honey"]  # fmt: skip
    products = [Product(str(i), n) for i, n in enumerate(names)]
    groups = [0, 0, 0, 0, 0, 1, 1, 1, 1, 2]
    emb = np.eye(3, dtype=np.float32)[groups] + 0.01 * np.arange(10, dtype=np.float32)[:, None]
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    generic = neighbour_queries(products, emb, neighbours=4, min_count=3)
    assert generic["0"] == "soda" and generic["5"] == "cheese"
    assert "1" not in generic, "a soda already says soda"
    assert "9" not in generic, "fewer than min_count neighbours agree"
    assert head_word("Greek Yogurt With Honey") == "yogurt"
    pairs = cold_start_pairs(products, covered=set(), generic=generic)
    assert ("soda", "0") in {(p.query, p.product_id) for p in pairs}


def test_broad_queries_example_generator():
    from towersearch.training.generators import broad_queries, plural

    assert [plural(w) for w in ("berry", "box", "chip", "chips", "day", "peach")] == [
        "berries", "boxes", "chips", "chips", "days", "peaches"]  # fmt: skip
    chips = Product("p1", "Kettle Brand Sea Salt Potato Chips", brand="Kettle Brand", category="snacks > chips")
    assert broad_queries(chips) == ["potato chips", "chips", "snacks"]
    cola = Product("p2", "Coca-Cola Classic Cola", brand="Coca-Cola")
    assert broad_queries(cola) == ["classic cola", "colas"]
    assert load_generator("towersearch.training.generators:broad_queries") is broad_queries
    pairs = cold_start_pairs([chips], set(), generator=broad_queries)
    assert {"snacks", "chips"} <= {p.query for p in pairs}


def test_hypernym_queries_example_generator():
    from towersearch.training.generators import hypernym_queries

    assert hypernym_queries(Product("p1", "Extra Sharp Cheddar")) == ["cheese", "dairy product"]
    assert hypernym_queries(Product("p2", "Restaurant Style Tortilla Chips"))[:1] == ["corn chip"]  # two words first
    assert "vegetable" in hypernym_queries(Product("p3", "European Cucumber"))
    assert hypernym_queries(Product("p4", "100% Recycled Aluminum Foil")) == []  # not a food
    assert hypernym_queries(Product("p5", "")) == []
    pairs = cold_start_pairs([Product("p1", "Extra Sharp Cheddar")], set(), generator=hypernym_queries)
    kinds = {p.query: p.kind for p in pairs}
    assert kinds["cheese"] == kinds["dairy product"] == "generated"  # the generator's own, counted apart
    assert "synthetic" in kinds.values()  # the built-in queries stay synthetic


def test_food_terms_go_to_grocery_catalogues_only():
    from towersearch.training.pairs import FOOD_CATALOGUE_SHARE, PairConfig, food_share, food_terms

    grocery = [Product("g1", "Extra Sharp Cheddar"), Product("g2", "Acme Cola"), Product("g3", "Paper Towels")]
    hardware = [Product("h1", "Wine Rack"), Product("h2", "Cordless Drill"), Product("h3", "Wood Screws"),
                Product("h4", "Garden Hose")]  # fmt: skip
    assert food_share(grocery) == pytest.approx(2 / 3) and food_share([]) == 0.0
    assert food_terms(hardware[0]) == ["meat"]  # why the terms need a grocery catalogue: a rack of lamb
    assert food_share(hardware) == 0.25 < FOOD_CATALOGUE_SHARE < food_share(grocery)
    pairs = cold_start_pairs(grocery, {"g2"}, food=True, generator=lambda p: ["Cheese!", "sharp cheddar deal"])
    kinds = {(p.product_id, p.query): p.kind for p in pairs}
    assert kinds["g1", "cheese"] == kinds["g1", "dairy product"] == "food_term"  # the generator's "cheese" not again
    assert kinds["g1", "sharp cheddar deal"] == "generated" and kinds["g1", "sharp cheddar"] == "synthetic"
    assert not any(pid == "g2" for pid, _ in kinds)  # covered by the log
    assert "food_term" not in {p.kind for p in cold_start_pairs(grocery, set())}  # off unless asked
    with pytest.raises(ConfigError, match="food_terms must be one of auto, on, off"):
        PairConfig(food_terms="yes")


WORDNET_INDEX = """  1 licence line
chip n 2 1 @ 2 0 00000001 00000002
cheddar n 1 1 @ 1 0 00000003
"""
WORDNET_DATA = """  1 licence line
  2 WordNet Copyright
00000001 09 n 01 chip 0 000 | a fragment of wood
00000002 13 n 02 chip 0 crisp 0 001 @ 00000004 n 0000 | a thin fried slice
00000003 13 n 01 cheddar 0 001 @ 00000005 n 0000 | hard cheese
00000004 13 n 01 snack_food 0 001 @ 00000006 n 0000 | food eaten between meals
00000005 13 n 01 cheese 0 001 @ 00000007 n 0000 | solid food from milk
00000006 13 n 01 foodstuff 0 000 | too broad
00000007 13 n 01 dairy_product 0 000 | milk products
"""


def test_food_hypernyms_follow_the_food_sense_and_round_trip(tmp_path):
    from towersearch.training.wordnet import food_hypernyms, load_table, write_table

    (tmp_path / "index.noun").write_text(WORDNET_INDEX)
    (tmp_path / "data.noun").write_text(WORDNET_DATA)
    table = food_hypernyms(tmp_path)
    # "chip"'s first sense is wood (file 09): the food sense is taken; "foodstuff" says nothing and is dropped
    assert table == {"chip": ["snack food"], "cheddar": ["cheese", "dairy product"]}
    out = tmp_path / "table.tsv"
    write_table(table, tmp_path, out)
    text = out.read_text()
    assert "# WordNet Copyright" in text and "chip\tsnack food" in text
    assert load_table(out) == {"cheddar": ("cheese", "dairy product"), "chip": ("snack food",)}
    bad = tmp_path / "bad.tsv"
    bad.write_text("# header\ncheddar cheese\n")
    with pytest.raises(DataError, match=r"bad.tsv, line 2: expected"):
        load_table(bad)


def test_typo_pairs_misspell_one_long_word_of_a_seeded_share():
    from towersearch.training.pairs import Pair, typo_pairs

    positives = [Pair(f"organic whole milk {i}", f"p{i}", "positive") for i in range(400)]
    positives.append(Pair("oj", "p-short", "positive"))  # no word of 4+ letters: never misspelled
    typos = typo_pairs(positives, 0.25, seed=0)
    assert 70 <= len(typos) <= 130 and all(t.kind == "typo" for t in typos)
    assert typos == typo_pairs(positives, 0.25, seed=0), "seeded"
    for t in typos:
        words, original = t.query.split(), f"organic whole milk {t.product_id[1:]}".split()
        changed = [(a, b) for a, b in zip(words, original, strict=True) if a != b]
        assert len(changed) == 1 and changed[0][1] in ("organic", "whole", "milk")
        assert changed[0][0][0] == changed[0][1][0], "the first letter stays"
    assert typo_pairs(positives, 0.0, seed=0) == []
