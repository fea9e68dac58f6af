import pytest

from tests.conftest import shared_data
from towersearch.data import load_catalog
from towersearch.errors import ConfigError
from towersearch.search.lexical import BM25Retriever, postings_sorted


def test_bm25_ranks_lexical_matches(tiny_store):
    catalog = load_catalog(tiny_store["catalog"])
    bm25 = BM25Retriever(catalog.products)
    (milk,), (chips,), (nothing,) = (bm25.search([q], k=3) for q in ("milk", "tortilla chips", "zzz"))
    assert {h.product_id for h in milk[:2]} == {"p1", "p2"}
    assert chips[0].product_id == "p4"
    assert nothing == []
    assert all(h.score > 0 for h in milk)


def test_bm25_stemming_matches_plurals(tiny_store):
    products = load_catalog(tiny_store["catalog"]).products
    stemmed = BM25Retriever(products, fields=("name",), stemmer="english")
    plain = BM25Retriever(products, fields=("name",), stemmer="none")
    assert stemmed.search(["tortilla"])[0][0].product_id in {"p3", "p4"}
    assert "p3" not in [h.product_id for h in plain.search(["tortilla"])[0]]


def test_bm25_save_load_round_trip(tiny_store, tmp_path):
    catalog = load_catalog(tiny_store["catalog"])
    bm25 = BM25Retriever(catalog.products)
    bm25.save(tmp_path / "bm25")
    again = BM25Retriever.load(tmp_path / "bm25", catalog.ids, stemmer="english", stopwords="en")
    assert again.search(["cola", "milk"], 5) == bm25.search(["cola", "milk"], 5)


def test_bm25_bad_stemmer(tiny_store):
    with pytest.raises(ConfigError, match="unknown stemmer 'klingon'; allowed: english, none"):
        BM25Retriever(load_catalog(tiny_store["catalog"]).products, stemmer="klingon")


def test_bm25_reproduces_instacart_aisle_reference(tmp_path):
    """The shared data README reports BM25 (bm25s, English stopwords) on names: NDCG@10 0.363, Recall@100 0.267."""
    from towersearch.data.importers.instacart import import_instacart
    from towersearch.data.judgements import load_judgements
    from towersearch.evaluation.report import evaluate

    import_instacart(shared_data("instacart-sample"), tmp_path, judgements=True, category=False)
    catalog = load_catalog(tmp_path / "catalog.csv")
    judged, _ = load_judgements(tmp_path / "judgements.csv")
    bm25 = BM25Retriever(catalog.products, fields=("name",), stemmer="none", spelling=False)
    result = evaluate({"bm25": bm25}, judged)
    assert result.queries == 129
    assert result.metrics["bm25"]["ndcg@10"] == pytest.approx(0.363, abs=0.01)
    assert result.metrics["bm25"]["recall@100"] == pytest.approx(0.267, abs=0.01)


def test_candidate_scores_equal_the_full_corpus_scores(tiny_store):
    """The fast path (posting lists at the candidates' rows) against bm25s's own full-corpus scoring."""
    import numpy as np

    catalog = load_catalog(tiny_store["catalog"])
    bm25 = BM25Retriever(catalog.products)
    scores = bm25._bm25.scores
    assert postings_sorted(scores["indices"], np.asarray(scores["indptr"]))  # bm25s keeps each term's in order
    unsorted = BM25Retriever(catalog.products)  # the same postings, each term's reversed: sorted once on first use
    matrix, indptr = unsorted._bm25.scores, np.asarray(scores["indptr"])
    order = np.concatenate([np.arange(a, b)[::-1] for a, b in zip(indptr[:-1], indptr[1:], strict=True)])
    matrix["indices"], matrix["data"] = matrix["indices"][order], matrix["data"][order]
    assert not postings_sorted(matrix["indices"], indptr)
    rows = np.array([5, 0, 3, 2])
    for query in ("milk", "organic milk milk", "tortilla chips", "cola soda pop", "zzz unknown", ""):
        tokens = [t for t in bm25s_tokens(bm25, query) if t in bm25._bm25.vocab_dict]
        full = np.asarray(bm25._bm25.get_scores(tokens), dtype=np.float32) if tokens else np.zeros(6)
        np.testing.assert_allclose(bm25.score_rows(query, rows), full[rows], rtol=1e-6, atol=1e-7)
        np.testing.assert_array_equal(unsorted.score_rows(query, rows), bm25.score_rows(query, rows))


def bm25s_tokens(bm25, query):
    import bm25s

    return bm25s.tokenize([query], stopwords=bm25.stopwords, stemmer=bm25._stemmer, show_progress=False,
                          return_ids=False)[0]  # fmt: skip


@pytest.mark.parametrize("stemmer", ["english", "none"])
def test_query_tokens_equal_bm25s_tokenize(stemmer):
    import bm25s

    from towersearch.data import Product
    from towersearch.search.lexical import BM25Retriever

    products = [Product("p1", "Oat Milk"), Product("p2", "Tortilla Chips")]
    retriever = BM25Retriever(products, stemmer=stemmer, spelling=False)
    queries = ["Oat MILK", "the and of", "", "a", "crème fraîche 2% milk!!", "running runners ran", "x-ray 4k tv's",
               "tortilla  chips   tortilla", "Ünïcödé wörds ß", "12 oz", "don't stop"]  # fmt: skip
    want = bm25s.tokenize(queries, stopwords="en", stemmer=retriever._stemmer, show_progress=False, return_ids=False)
    assert [retriever.query_tokens(q) for q in queries] == [list(t) for t in want]


def spelling_catalog():
    from towersearch.data import Product

    names = ["Soft Toilet Paper", "Toilet Bowl Cleaner", "Toilet Seat", "Tall Toilet", "Aluminum Foil",
             "Aluminum Ladder", "LED Bulb 60W", "LED Strip", "Bulb Planter", "Garden Product Tray",
             "Tollet Brand Mop"]  # fmt: skip
    return [Product(f"p{i}", name) for i, name in enumerate(names)]


@pytest.mark.parametrize("stemmer", ["english", "none"])
def test_spelling_reads_unknown_words_as_index_terms(stemmer):
    bm25 = BM25Retriever(spelling_catalog(), stemmer=stemmer)
    stem = bm25._stem
    assert bm25.spell("toliet") == (stem("toilet"),)  # one edit (two letters swapped), the frequent term over "tollet"
    assert bm25.spell("ledbulb") == (stem("led"), stem("bulb"))  # run together
    assert bm25.spell("alumanam") == (stem("aluminum"),)  # two edits from eight letters
    assert bm25.spell("alumnm") == (stem("alumnm"),)  # two edits under eight letters: left alone
    assert bm25.spell("produce") == (stem("produce"),)  # an English word, not sold here, is not "product"
    assert bm25.spell("bulp") == (stem("bulp"),)  # under five letters: too short to tell a slip from a word
    assert bm25.spell("t0liet") == (stem("t0liet"),)  # digits: a model number, never corrected
    assert bm25.spell("toilet") == (stem("toilet"),)  # known
    assert bm25.query_tokens("Toliet PAPER") == [stem("toilet"), stem("paper")]
    off = BM25Retriever(spelling_catalog(), stemmer=stemmer, spelling=False)
    assert off.query_tokens("toliet paper") == [stem("toliet"), stem("paper")]


def test_spelling_finds_what_a_misspelt_query_means():
    on, off = BM25Retriever(spelling_catalog()), BM25Retriever(spelling_catalog(), spelling=False)
    assert on.search(["toliet paper"])[0][0].product_id == "p0"
    assert {h.product_id for h in off.search(["toliet paper"])[0]} == {"p0"}  # "paper" alone
    assert on.search(["ledbulb"])[0][0].product_id == "p6"  # both words
    assert off.search(["ledbulb"]) == [[]]
    assert {h.product_id for h in on.search(["alumanam"], k=5)[0]} == {"p4", "p5"}


def test_spelling_scores_candidates_as_the_full_search():
    import numpy as np

    bm25 = BM25Retriever(spelling_catalog())
    for query in ("toliet paper", "ledbulb", "alumanam ladder", "zzzzzzz"):
        (rows, scores), = bm25.search_rows([query], k=11)  # fmt: skip
        if len(rows):
            np.testing.assert_allclose(bm25.score_rows(query, rows), scores, rtol=1e-6)


def test_spelling_survives_save_and_load(tmp_path):
    bm25 = BM25Retriever(spelling_catalog())
    bm25.save(tmp_path / "bm25")
    ids = [p.product_id for p in spelling_catalog()]
    again = BM25Retriever.load(tmp_path / "bm25", ids, stemmer="english", stopwords="en")
    assert again.search(["toliet paper", "ledbulb"], 5) == bm25.search(["toliet paper", "ledbulb"], 5)
    plain = BM25Retriever.load(tmp_path / "bm25", ids, stemmer="english", stopwords="en", spelling=False)
    assert plain.search(["ledbulb"]) == [[]]


def test_prepare_builds_the_spelling_tables_before_a_first_query():
    on, off = BM25Retriever(spelling_catalog()), BM25Retriever(spelling_catalog(), spelling=False)
    on.prepare()
    off.prepare()
    assert "_terms" in on.__dict__ and "_terms" not in off.__dict__
    assert on._terms[0][on._stem("toilet")] == 4  # documents holding the term: its document frequency


def test_corrections_name_the_catalogue_words_read(tmp_path):
    from towersearch.data import Product

    products = [*spelling_catalog(), Product("px", "Toilets Accessories Kit"), Product("py", "Drill Accessories")]
    bm25 = BM25Retriever(products)
    assert bm25.corrections("Toliet accesories for the ledbulb 2x4") == {
        "toliet": "toilet",  # the term's most frequent word ("toilet" 4 times, "toilets" once)
        "accesories": "accessories",
        "ledbulb": "led bulb",
    }
    assert bm25.corrections("toilet paper") == {}
    assert BM25Retriever(products, spelling=False).corrections("toliet") == {}
    bm25.save(tmp_path / "bm25")
    ids = [p.product_id for p in products]
    again = BM25Retriever.load(tmp_path / "bm25", ids, stemmer="english", stopwords="en")
    assert again.corrections("toliet accesories") == {"toliet": "toilet", "accesories": "accessories"}
    (tmp_path / "bm25" / "surface.json").unlink()  # an index saved before surface forms: index terms instead
    older = BM25Retriever.load(tmp_path / "bm25", ids, stemmer="english", stopwords="en")
    assert older.corrections("accesories") == {"accesories": "accessori"}


def test_a_brand_the_name_already_holds_is_indexed_once():
    from towersearch.data import Product
    from towersearch.search.lexical import indexed_texts

    texts = indexed_texts(
        [
            Product("a", "Acme Orange", brand="Acme", category="produce"),
            Product("b", "Classic Soda", brand="Acme"),  # the name lacks the brand: indexed from its field
            Product("c", "Sunflower Oil", brand="Sun"),  # "sun" is not a word of the name
        ]
    )
    assert texts == ["Acme Orange produce", "Classic Soda Acme", "Sunflower Oil Sun"]


def test_a_query_of_brand_and_type_prefers_the_type_over_the_brand():
    from towersearch.data import Product

    names = ["Acme Orange", "Acme Apple", "Acme Pear", "Best Orange", "Best Lemon", "Cole Lime", "Cole Plum",
             "Dale Fig"]  # fmt: skip
    products = [Product(f"p{i}", name, brand=name.split()[0]) for i, name in enumerate(names)]
    hits = BM25Retriever(products).search(["acme orange"], k=3)[0]
    assert [h.product_id for h in hits[:2]] == ["p0", "p3"]  # Acme Orange, then Best Orange before Acme's others
