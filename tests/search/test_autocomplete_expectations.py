"""Autocomplete as people expect it: the prefixes of ``tests/fixtures/autocomplete_expectations.json`` on the demo
store and the Instacart catalogue, with the untrained query tower for the folding decisions."""

from itertools import combinations
from pathlib import Path

import pytest
from rapidfuzz.distance import OSA

from tests.conftest import shared_data
from towersearch.data import load_catalog
from towersearch.data.demo import DemoConfig, build_demo_store
from towersearch.data.importers.instacart import import_instacart
from towersearch.evaluation.expectations import check, load_expectations, suggester_for
from towersearch.model import load_model, model_text_config
from towersearch.search.dense import encode_queries
from towersearch.search.phrases import catalog_phrase_counts, content_words, words_of

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "autocomplete_expectations.json"
CASES = load_expectations(FIXTURE)
EXTRA = ["a", "b", "c", "s", "t", "p", "fro", "org", "veg", "sal", "bre", "cra", "pas", "sau", "wat", "egg"]


@pytest.fixture(scope="module")
def encode():
    model = load_model(None)
    text = model_text_config(None)
    return lambda texts: encode_queries(model, texts, text)


@pytest.fixture(scope="module")
def demo_store():
    return build_demo_store(DemoConfig(seed=0))


@pytest.fixture(scope="module")
def instacart_products(tmp_path_factory):
    out = tmp_path_factory.mktemp("instacart")
    import_instacart(shared_data("instacart-full"), out, judgements=False)
    return load_catalog(out / "catalog.csv").products


@pytest.fixture(scope="module")
def suggesters(demo_store, instacart_products, encode):
    prefixes = {store: [c.prefix for c in CASES if c.store == store] + EXTRA for store in ("demo", "instacart")}
    return {
        "demo": suggester_for(demo_store.events, demo_store.products, prefixes["demo"], encode),
        "instacart": suggester_for([], instacart_products, prefixes["instacart"], encode),
    }


def test_the_fixture_has_forty_prefixes_of_both_stores():
    assert len(CASES) >= 40 and {c.store for c in CASES} == {"demo", "instacart"}


@pytest.mark.parametrize("case", CASES, ids=[f"{c.store}:{c.prefix}" for c in CASES])
def test_people_would_accept_the_suggestions(case, suggesters):
    outcome = check(case, suggesters[case.store].suggest)
    assert outcome.passed, f"{case.why}: {outcome.failures}; shown {outcome.shown}"


@pytest.mark.parametrize("store", ["demo", "instacart"])
def test_no_shown_suggestion_is_a_misspelling_of_another(store, suggesters):
    """Two shown suggestions within two edits are both made of catalogue words ("chips", "chops"), never a typo."""
    suggester = suggesters[store]
    prefixes = [c.prefix for c in CASES if c.store == store] + EXTRA
    for prefix in prefixes:
        shown = [s.text for s in suggester.suggest(prefix, 8)]
        for a, b in combinations(shown, 2):
            if OSA.distance(a, b, score_cutoff=2) <= 2:
                words = content_words(a) | content_words(b)
                unknown = [w for w in words if w not in suggester.modifiers and w.isalpha()]
                assert not unknown, f"{prefix!r}: {a!r} and {b!r} are {OSA.distance(a, b)} edits apart"


@pytest.mark.parametrize("store", ["demo", "instacart"])
def test_every_catalogue_phrase_is_well_formed_and_comes_from_a_product(store, demo_store, instacart_products):
    products = demo_store.products if store == "demo" else instacart_products
    texts = [" ".join(words_of(f"{p.brand} {p.name} {p.attributes.get('type', '')}")) for p in products]
    vocabulary = {w for t in texts for w in t.split()}
    for phrase in catalog_phrase_counts(products):
        words = phrase.split()
        assert len(set(words)) == len(words) or f"{words[0]} {words[0]}" in " ".join(texts), phrase
        assert words[0] not in {"and", "&", "with", "n", "or", "of"} and words[-1] not in {"and", "&", "with"}, phrase
        assert set(words) <= vocabulary, phrase
