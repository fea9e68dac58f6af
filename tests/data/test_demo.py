"""The demo store generator: formats, sizes, determinism, the held-out split and the simulated behaviour."""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from pathlib import Path

import pytest

from towersearch.data import load_catalog, load_judgements, load_log, normalize_query
from towersearch.data.demo import DemoConfig, build_demo_store, generate_demo_store, product_types
from towersearch.errors import ConfigError

SMALL = {"n_products": 1000, "n_searches": 2000}


def _load(folder: Path):
    catalog = load_catalog(folder / "catalog.csv")
    ids = set(catalog.ids)
    events, log_report = load_log(folder / "log.csv", product_ids=ids)
    judgements, judgement_report = load_judgements(folder / "judgements.csv", product_ids=ids)
    assert log_report.skipped == Counter() and judgement_report.skipped == Counter()
    return catalog, events, judgements


@pytest.fixture(scope="module")
def default_store(tmp_path_factory) -> dict:
    """The store at its default sizes (about a second to build), loaded back through the validating readers."""
    folder = tmp_path_factory.mktemp("demo-default")
    summary = generate_demo_store(folder, DemoConfig())
    catalog, events, judgements = _load(folder)
    return {"folder": folder, "summary": summary, "catalog": catalog, "events": events, "judgements": judgements}


@pytest.fixture(scope="module")
def small_store():
    """A small store in memory, with the simulator's true grade of every event."""
    return build_demo_store(DemoConfig(**SMALL))


def test_taxonomy_has_the_breadth_and_the_confusable_pairs():
    types = {t.name: t for t in product_types()}
    assert len(types) >= 150
    assert len({t.department for t in types.values()}) >= 15
    for a, b in [
        ("flour tortillas", "tortilla chips"),
        ("peanut butter", "peanuts"),
        ("peanut butter", "butter"),
        ("ice cream", "ice cream cones"),
        ("ice cream", "ice"),
        ("coffee", "coffee creamer"),
        ("chicken breast", "chicken broth"),
        ("chicken breast", "chicken nuggets"),
        ("apple", "apple juice"),
        ("apple", "apple sauce"),
        ("white rice", "rice cakes"),
        ("lemon", "lemonade"),
    ]:
        assert types[a].category != types[b].category, (a, b)
    assert "mac n cheese" in types["macaroni and cheese"].synonyms
    assert "oj" in types["orange juice"].synonyms
    assert "tp" in types["toilet paper"].synonyms
    assert "garbanzo beans" in types["chickpeas"].synonyms
    assert "coriander" in types["cilantro"].synonyms
    assert "courgette" in types["zucchini"].synonyms


def test_default_store_meets_the_numbers(default_store):
    summary, catalog, events = default_store["summary"], default_store["catalog"], default_store["events"]
    assert len(catalog) == summary["products"] == 5000
    assert len({p.department for p in catalog}) >= 15
    assert summary["departments"] >= 15 and summary["product_types"] >= 150 and summary["brands"] >= 200
    assert len(events) == summary["events_total"] >= 50_000
    assert Counter(e.event for e in events) == Counter(summary["events"])
    assert summary["judged_queries"] >= 300
    assert set(summary["files"]) == {"catalog", "log", "judgements", "reviews"}
    assert summary["reviews"] > 5000 and summary["products_with_reviews"] > 2500


def test_catalogue_rows_look_like_a_grocery_store(default_store):
    catalog = default_store["catalog"]
    for product in catalog:
        assert re.fullmatch(r"P\d{6}", product.product_id)
        assert re.fullmatch(r"[a-z ]+ > [a-z &]+", product.category)
        assert product.brand and product.name.startswith(product.brand)
        assert product.size and product.description.endswith(".")
        assert set(product.attributes) <= {"dietary", "flavor", "variety"}
    names = [p.name for p in catalog]
    assert any("Organic" in n for n in names)
    # Names do not always contain the type: some macaroni and cheese is sold as "Shells & Cheddar".
    assert any(n.endswith("Shells & Cheddar") for n in names)
    dietary = Counter(d.strip() for p in catalog for d in p.attributes.get("dietary", "").split(",") if d.strip())
    assert {"organic", "gluten free", "vegan", "kosher", "non-gmo"} <= set(dietary)


def test_cold_start_products_are_new_and_have_no_events(default_store):
    summary, catalog, events = default_store["summary"], default_store["catalog"], default_store["events"]
    cold = {p.product_id for p in catalog if p.created_at >= summary["log_end"]}
    assert len(cold) == summary["cold_start_products"] == 250
    assert not cold & {e.product_id for e in events}
    assert max(e.timestamp for e in events) < summary["log_end"]
    # Some judged queries are answered by new products only, so cold-start retrieval can be measured.
    judgements = default_store["judgements"]
    cold_only = [q for q, graded in judgements.items() if {p for p, g in graded.items() if g == 3} <= cold]
    assert len(cold_only) == summary["judged_queries_cold_start_only"] > 0


def test_heldout_queries_are_judged_and_absent_from_the_log(default_store):
    judgements, events = default_store["judgements"], default_store["events"]
    logged = {normalize_query(e.query) for e in events}
    assert not set(judgements) & logged
    assert len(judgements) == default_store["summary"]["judged_queries"]
    for query, graded in judgements.items():
        assert 3.0 in graded.values(), query
        assert set(graded.values()) <= {0.0, 1.0, 2.0, 3.0}
    grades = Counter(g for graded in judgements.values() for g in graded.values())
    assert all(grades[g] > 0 for g in (0.0, 1.0, 2.0, 3.0))


def test_log_has_several_spellings_of_one_intent(default_store):
    # Every search writes an impression at position 1, so these are searches per query.
    events = default_store["events"]
    searches = Counter(normalize_query(e.query) for e in events if e.position == 1 and e.event == "impression")
    for query in ("mac and cheese", "mac n cheese", "macaroni and cheese", "avacado", "avocado", "pop", "oj"):
        assert searches[query] > 0, query
    assert sum(1 for q in searches if " " in q) > len(searches) / 2
    # Zipf: a few head queries are very frequent, the long tail rare.
    counts = sorted(searches.values(), reverse=True)
    assert sum(counts[: len(counts) // 100]) > 0.15 * sum(counts)
    assert sum(1 for c in counts if c == 1) > len(counts) / 3


def test_events_are_well_formed_and_sessions_monotone(default_store):
    events = default_store["events"]
    last: dict[str, str] = {}
    for e in events:
        assert e.count == 1 and e.position is not None and 1 <= e.position <= 10
        assert re.fullmatch(r"S\d{7}", e.session_id)
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", e.timestamp)
        assert e.timestamp >= last.get(e.session_id, "")
        last[e.session_id] = e.timestamp
    days = {e.timestamp[:10] for e in events}
    assert len(days) >= 50


def test_clicks_show_position_bias(default_store):
    shown, clicked = Counter(), Counter()
    for e in default_store["events"]:
        if e.event == "impression":
            shown[e.position] += 1
        elif e.event == "click":
            clicked[e.position] += 1
    assert shown[1] == shown[4] > shown[5] > shown[6]  # the top four positions are always viewed
    ctr = {p: clicked[p] / shown[p] for p in (1, 2, 3, 5)}
    assert ctr[1] > ctr[2] > ctr[3] > ctr[5]
    assert ctr[1] > 2 * ctr[5]


def test_conversions_are_rarer_and_more_relevant_than_clicks(default_store, small_store):
    counts = default_store["summary"]["events"]
    assert counts["impression"] > counts["click"] > counts["add_to_cart"] > counts["purchase"] > 0
    by_event: dict[str, Counter] = defaultdict(Counter)
    for event, grade in zip(small_store.events, small_store.event_grades, strict=True):
        by_event[event.event][grade] += 1

    def relevant_share(event: str) -> float:
        return by_event[event][3] / sum(by_event[event].values())

    assert relevant_share("impression") < relevant_share("click") < relevant_share("add_to_cart")
    assert relevant_share("click") < relevant_share("purchase")
    assert by_event["click"][0] > 0  # noise clicks on irrelevant products


def test_some_searches_get_no_click(small_store):
    summary = small_store.summary
    assert 0 < summary["unstocked_searches"] < 0.05 * summary["searches"]
    assert 0.1 * summary["searches"] < summary["zero_click_searches"] < 0.6 * summary["searches"]


def test_same_seed_gives_identical_files_and_another_seed_differs(tmp_path):
    config = {"n_products": 500, "n_searches": 500}
    generate_demo_store(tmp_path / "a", DemoConfig(**config))
    generate_demo_store(tmp_path / "b", DemoConfig(**config))
    generate_demo_store(tmp_path / "c", DemoConfig(**config, seed=1))
    for name in ("catalog.csv", "log.csv", "judgements.csv", "reviews.csv"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name
        assert (tmp_path / "a" / name).read_bytes() != (tmp_path / "c" / name).read_bytes(), name


def test_small_store_loads_and_scales_down(tmp_path):
    summary = generate_demo_store(tmp_path, DemoConfig(n_products=100, n_searches=100, cold_start_fraction=0))
    catalog, events, judgements = _load(tmp_path)
    assert len(catalog) == 100 and summary["cold_start_products"] == 0
    assert summary["searches"] == 100 and len(events) == summary["events_total"]
    assert judgements and not set(judgements) & {normalize_query(e.query) for e in events}
    assert not list(tmp_path.glob(".*.tmp"))


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"n_products": 99}, r"n_products must be between 100 and 2,000,000; got 99"),
        ({"n_products": 1000.0}, r"n_products must be a whole number"),
        ({"n_searches": 10}, r"n_searches must be between 100"),
        ({"cold_start_fraction": 0.9}, r"cold_start_fraction must be between 0.0 and 0.5; got 0.9"),
        ({"cold_start_fraction": float("nan")}, r"cold_start_fraction must be a number"),
        ({"heldout_fraction": 0}, r"heldout_fraction must be above 0"),
        ({"days": 3}, r"days must be between 14"),
        ({"page_size": 2}, r"page_size must be between 5"),
        ({"start_date": "March 1st"}, r"start_date must be an ISO date"),
        ({"zipf_exponent": 5}, r"zipf_exponent must be between 0.5 and 2.0"),
        ({"seed": True}, r"seed must be a whole number"),
    ],
)
def test_bad_config_raises(settings, message):
    with pytest.raises(ConfigError, match=message):
        DemoConfig(**settings)


def test_config_changed_after_creation_is_checked_again(tmp_path):
    config = DemoConfig()
    config.n_products = 10
    with pytest.raises(ConfigError, match="n_products"):
        generate_demo_store(tmp_path, config)
    assert not list(tmp_path.iterdir())


def test_data_files_are_package_data_and_load():
    from importlib.resources import files

    from towersearch.data.demo.taxonomy import TAXONOMY_FILE, parse_taxonomy
    from towersearch.data.demo.vocab import WORDS_FILE, parse_vocabulary, vocabulary

    folder = files("towersearch.data.demo")
    assert folder.joinpath(TAXONOMY_FILE).is_file() and folder.joinpath(WORDS_FILE).is_file()
    types = parse_taxonomy(folder.joinpath(TAXONOMY_FILE).read_text(encoding="utf-8"))
    assert types == product_types() and len(types) >= 150
    words = parse_vocabulary(folder.joinpath(WORDS_FILE).read_text(encoding="utf-8"))
    assert words == vocabulary()
    # The word lists refer to the taxonomy by name: a typo in either file would break generation.
    names = {t.name for t in types}
    generics = {t.generic for t in types if t.generic}
    departments = {t.department for t in types}
    assert {name for pair in words.complements + words.extra_confusables for name in pair} <= names
    assert {intent for intent, _ in words.showcase} <= names | generics
    assert set(words.generic_synonyms) <= generics
    assert set(words.brand_suffix) <= departments and set(words.variant_key) <= departments
    assert sorted(d for group in words.department_groups for d in group) == sorted(departments)
    assert words.misspellings["avocado"][0] == "avacado" and words.dietary_rate["organic"] == 0.2
    assert words.title("macaroni and cheese") == "Macaroni and Cheese" and words.tokens("The Tomatoes") == ["tomato"]


def test_taxonomy_format_skips_comments_and_joins_continuations():
    from towersearch.data.demo.taxonomy import parse_taxonomy

    text = """
    # a comment
    @ pantry > pasta | 16 oz | organic | dinners
    *spaghetti | pasta | spaghetti noodles | thin
    + , angel hair | Spaghetti
    orzo | pasta | | | | 1 lb | -
    """
    spaghetti, orzo = parse_taxonomy(text)
    assert spaghetti.staple and spaghetti.variants == ("thin", "angel hair") and spaghetti.heads == ("Spaghetti",)
    assert spaghetti.sizes == ("16 oz",) and spaghetti.dietary == ("organic",) and spaghetti.use == "dinners"
    assert orzo.category == "pantry > pasta" and orzo.sizes == ("1 lb",) and orzo.dietary == ()
    with pytest.raises(ValueError, match="more than 7 fields"):
        parse_taxonomy("@ a > b | | | x\nname | | | | | | | extra")
    with pytest.raises(ValueError, match="unique"):
        parse_taxonomy("@ a > b | | | x\nname\nname")


def test_same_seed_gives_identical_files_across_processes(tmp_path):
    """Byte-identical output must not depend on string hashing, which differs from one process to the next."""
    import os
    import subprocess
    import sys

    code = (
        "import sys; from towersearch.data.demo import DemoConfig, generate_demo_store; "
        "generate_demo_store(sys.argv[1], DemoConfig(n_products=300, n_searches=300, seed=3))"
    )
    for hash_seed in ("1", "2"):
        env = {**os.environ, "PYTHONHASHSEED": hash_seed}
        subprocess.run([sys.executable, "-c", code, str(tmp_path / hash_seed)], check=True, env=env)
    for name in ("catalog.csv", "log.csv", "judgements.csv", "reviews.csv"):
        assert (tmp_path / "1" / name).read_bytes() == (tmp_path / "2" / name).read_bytes(), name
